-- The patch repository, the hosts' patch reports, interim lists and application dependencies.

-- What each host's agent reports about its patches (JSON HostSoftware).
ALTER TABLE hosts ADD COLUMN software TEXT NOT NULL DEFAULT '{}';

CREATE TABLE patches (
    id          TEXT PRIMARY KEY NOT NULL,
    -- JSON PatchMetadata, as verified from the bundle.
    metadata    TEXT NOT NULL,
    repo_state  TEXT NOT NULL CHECK (repo_state IN ('Available', 'Applied', 'Committed')),
    -- The verified bundle in the data directory, its size and SHA-256.
    file_name   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- sw-patch's interim_state: hosts that have not reported since a patch was applied or removed.
CREATE TABLE patch_interim (
    patch_id TEXT NOT NULL REFERENCES patches(id) ON DELETE CASCADE,
    hostname TEXT NOT NULL,
    PRIMARY KEY (patch_id, hostname)
);

CREATE TABLE app_dependencies (
    app      TEXT NOT NULL,
    patch_id TEXT NOT NULL,
    PRIMARY KEY (app, patch_id)
);
