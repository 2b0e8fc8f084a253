-- Active alarms, one per alarm id and entity, and their history: every raise ('set') and
-- clear ('clear'), written in the same transaction as the change to the active set.
CREATE TABLE alarms (
    uuid           TEXT PRIMARY KEY,
    alarm_id       TEXT NOT NULL,
    entity         TEXT NOT NULL,
    severity       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    mgmt_affecting INTEGER NOT NULL,
    raised_at      INTEGER NOT NULL,
    source         TEXT NOT NULL,
    UNIQUE (alarm_id, entity)
);
CREATE TABLE alarm_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid           TEXT NOT NULL,
    alarm_id       TEXT NOT NULL,
    entity         TEXT NOT NULL,
    severity       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    mgmt_affecting INTEGER NOT NULL,
    state          TEXT NOT NULL,
    at             INTEGER NOT NULL,
    source         TEXT NOT NULL
);
