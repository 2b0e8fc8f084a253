-- The one strategy a controller runs at a time, its steps, each step's phases, and clusters.

CREATE TABLE strategy (
    -- Always 1: the primary key makes "one strategy at a time" a database guarantee.
    slot            INTEGER PRIMARY KEY CHECK (slot = 1),
    id              TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    max_parallel    INTEGER NOT NULL,
    stop_on_failure INTEGER NOT NULL,
    options         TEXT NOT NULL,
    details         TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE strategy_steps (
    strategy_id      TEXT NOT NULL REFERENCES strategy(id) ON DELETE CASCADE,
    target           TEXT NOT NULL,
    position         INTEGER NOT NULL,
    stage            INTEGER NOT NULL,
    grp              TEXT,
    state            TEXT NOT NULL,
    swept            INTEGER NOT NULL DEFAULT 0,
    details          TEXT NOT NULL DEFAULT '',
    pending_end      TEXT,
    command_id       TEXT,
    phase_started_at INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (strategy_id, target)
);

CREATE TABLE step_phases (
    strategy_id TEXT NOT NULL REFERENCES strategy(id) ON DELETE CASCADE,
    target      TEXT NOT NULL,
    phase       TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    result      TEXT,
    details     TEXT NOT NULL DEFAULT '',
    output      TEXT NOT NULL DEFAULT 'null',
    PRIMARY KEY (strategy_id, target, phase)
);

CREATE TABLE clusters (
    name        TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
    -- The strategy that disabled it, which must enable it again.
    disabled_by TEXT,
    updated_at  INTEGER NOT NULL
);
