-- Metadata, auth and alerts: what PostgreSQL holds in both `postgres` and `dual` modes. Times are epoch
-- microseconds (BIGINT), as in the SQLite schema, so the code shares one notion of time across backends.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT   NOT NULL,
    key_hash     TEXT   NOT NULL UNIQUE,
    key_prefix   TEXT   NOT NULL,
    role         TEXT   NOT NULL,
    user_id      TEXT,
    project_id   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    seq          BIGSERIAL
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT   NOT NULL,
    slug       TEXT   NOT NULL UNIQUE,
    created_by TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE project_members (
    project_id TEXT   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    added_by   TEXT,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_by_user ON project_members (user_id);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT  NOT NULL,
    last_login_at BIGINT
);

CREATE TABLE invite_tokens (
    token_hash TEXT PRIMARY KEY,
    email      TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE login_failures (
    email        TEXT PRIMARY KEY,
    fail_count   BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT
);

CREATE TABLE audit_logs (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    event      TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    ip         TEXT   NOT NULL,
    details    TEXT   NOT NULL,
    project_id TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_logs_by_time ON audit_logs (at);
