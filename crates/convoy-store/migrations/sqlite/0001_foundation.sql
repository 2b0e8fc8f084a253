-- Users, their tokens, the site's hosts and the commands sent to them.
-- Times are Unix milliseconds (UTC).

CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'reader')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE hosts (
    hostname            TEXT PRIMARY KEY NOT NULL,
    personality         TEXT NOT NULL,
    zone                TEXT,
    pod                 TEXT,
    cluster             TEXT,
    administrative      TEXT NOT NULL CHECK (administrative IN ('locked', 'unlocked')),
    credential_hash     TEXT NOT NULL UNIQUE,
    capacity_cpus       INTEGER NOT NULL,
    capacity_memory_mib INTEGER NOT NULL,
    load_cpus           REAL NOT NULL,
    load_memory_mib     INTEGER NOT NULL,
    boot_id             TEXT NOT NULL,
    os                  TEXT NOT NULL,
    agent_version       TEXT NOT NULL,
    state_fs_free_bytes INTEGER NOT NULL,
    last_seen           INTEGER,
    enrolled_at         INTEGER NOT NULL
);

CREATE TABLE commands (
    id            TEXT PRIMARY KEY NOT NULL,
    hostname      TEXT NOT NULL REFERENCES hosts(hostname) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    dispatched_at INTEGER,
    completed_at  INTEGER,
    outcome       TEXT
);
CREATE INDEX commands_unfinished ON commands(hostname, completed_at);
