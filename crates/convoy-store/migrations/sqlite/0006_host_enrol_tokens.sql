-- Single-use tokens that let a host that is already enrolled enrol again (a reinstalled host
-- whose credential was lost). Only their SHA-256 is kept; enrolling with one deletes it in the
-- same transaction that replaces the host's credential.
CREATE TABLE host_enrol_tokens (
    token_hash TEXT PRIMARY KEY,
    hostname   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX host_enrol_tokens_hostname ON host_enrol_tokens(hostname);
