-- The System Controller's subclouds and their groups (issue 15). Times are Unix milliseconds.

CREATE TABLE subcloud_groups (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    name                   TEXT NOT NULL UNIQUE,
    description            TEXT NOT NULL,
    update_apply_type      TEXT NOT NULL CHECK (update_apply_type IN ('parallel', 'serial')),
    max_parallel_subclouds INTEGER NOT NULL,
    created_at             INTEGER,
    updated_at             INTEGER
);
-- dcmanager's Default group: id 1, always there (its times are null, as in dcmanager).
INSERT INTO subcloud_groups (id, name, description, update_apply_type, max_parallel_subclouds)
VALUES (1, 'Default', 'Default Subcloud Group', 'parallel', 2);

CREATE TABLE subclouds (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL UNIQUE,
    description       TEXT,
    location          TEXT,
    group_id          INTEGER NOT NULL REFERENCES subcloud_groups(id),
    management        TEXT NOT NULL CHECK (management IN ('managed', 'unmanaged')),
    availability      TEXT NOT NULL CHECK (availability IN ('online', 'offline')),
    deploy_status     TEXT NOT NULL,
    software_version  TEXT,
    -- Where the subcloud's convoyd answers, and the certificate pinned at add time (null
    -- over plain HTTP or when a CA is configured).
    address           TEXT NOT NULL,
    tls_fingerprint   TEXT,
    -- The System Controller's service account on the subcloud. The password is a secret:
    -- this file is readable by convoyd's user only, and it is never logged or answered.
    service_user      TEXT NOT NULL,
    service_password  TEXT NOT NULL,
    -- The bootstrap values given at add time (YAML), kept as given.
    bootstrap_values  TEXT,
    failed_audits     INTEGER NOT NULL DEFAULT 0,
    -- The last audit's observations, JSON.
    audit             TEXT,
    audited_at        INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER
);

CREATE TABLE subcloud_endpoints (
    subcloud_id   INTEGER NOT NULL REFERENCES subclouds(id) ON DELETE CASCADE,
    endpoint_type TEXT NOT NULL,
    sync_status   TEXT NOT NULL CHECK (sync_status IN ('in-sync', 'out-of-sync', 'unknown')),
    PRIMARY KEY (subcloud_id, endpoint_type)
);
