-- Spans: one row per span as received. No uniqueness on span_id: an SDK retry stores a duplicate, as in
-- the original; seq keeps insertion order.
CREATE TABLE spans (
    seq                   INTEGER PRIMARY KEY,
    span_id               TEXT    NOT NULL,
    parent_span_id        TEXT,
    span_type             TEXT    NOT NULL,
    trace_id              TEXT,
    session_id            TEXT,
    server_name           TEXT    NOT NULL,
    tool_name             TEXT    NOT NULL,
    started_at            INTEGER NOT NULL, -- epoch microseconds, UTC
    ended_at              INTEGER NOT NULL,
    latency_ms            REAL    NOT NULL,
    status                TEXT    NOT NULL,
    error                 TEXT,
    agent_name            TEXT,
    input_json            TEXT,
    output_json           TEXT,
    llm_input             TEXT,
    llm_output            TEXT,
    replay_of             TEXT,
    project_id            TEXT    NOT NULL DEFAULT '',
    input_tokens          INTEGER,
    output_tokens         INTEGER,
    model_id              TEXT,
    finish_reason         TEXT,
    cache_read_tokens     INTEGER,
    cache_creation_tokens INTEGER,
    thinking_tokens       INTEGER,
    target_agent_name     TEXT,
    lineage_provenance    TEXT    NOT NULL,
    lineage_status        TEXT    NOT NULL,
    schema_version        TEXT    NOT NULL
);
CREATE INDEX spans_by_session ON spans (session_id) WHERE session_id IS NOT NULL;

-- One row per session, maintained at ingest (see langsight_core::session). `rollup` is the JSON of
-- SessionRollup; the columns beside it are copies used for filtering and ordering.
CREATE TABLE sessions (
    project_id    TEXT    NOT NULL,
    session_id    TEXT    NOT NULL,
    first_call_at INTEGER NOT NULL,
    last_call_at  INTEGER NOT NULL,
    health_tag    TEXT,
    rollup        TEXT    NOT NULL,
    PRIMARY KEY (project_id, session_id)
) WITHOUT ROWID;
CREATE INDEX sessions_by_start ON sessions (first_call_at);
CREATE INDEX sessions_by_project_start ON sessions (project_id, first_call_at);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    key_prefix   TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    user_id      TEXT,
    project_id   TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT    NOT NULL,
    slug       TEXT    NOT NULL UNIQUE,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE project_members (
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    added_by   TEXT,
    added_at   INTEGER NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_by_user ON project_members (user_id);
