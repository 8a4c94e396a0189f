-- Users (emails stored lower-cased), invitations (hashes only), login lockout state and the audit log.
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
);

CREATE TABLE invite_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    email      TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE login_failures (
    email        TEXT    NOT NULL PRIMARY KEY,
    fail_count   INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER
);

CREATE TABLE audit_logs (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    ip         TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    project_id TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_logs_by_time ON audit_logs (at);
