-- Spans, session rollups, hourly tool aggregates, health results and drift: the `postgres` mode's analytics
-- (in `dual` mode these live in ClickHouse).
CREATE TABLE spans (
    seq                   BIGSERIAL PRIMARY KEY,
    span_id               TEXT             NOT NULL,
    parent_span_id        TEXT,
    span_type             TEXT             NOT NULL,
    trace_id              TEXT,
    session_id            TEXT,
    server_name           TEXT             NOT NULL,
    tool_name             TEXT             NOT NULL,
    started_at            BIGINT           NOT NULL,
    ended_at              BIGINT           NOT NULL,
    latency_ms            DOUBLE PRECISION NOT NULL,
    status                TEXT             NOT NULL,
    error                 TEXT,
    agent_name            TEXT,
    input_json            TEXT,
    output_json           TEXT,
    llm_input             TEXT,
    llm_output            TEXT,
    replay_of             TEXT,
    project_id            TEXT             NOT NULL DEFAULT '',
    input_tokens          BIGINT,
    output_tokens         BIGINT,
    model_id              TEXT,
    finish_reason         TEXT,
    cache_read_tokens     BIGINT,
    cache_creation_tokens BIGINT,
    thinking_tokens       BIGINT,
    target_agent_name     TEXT,
    lineage_provenance    TEXT             NOT NULL,
    lineage_status        TEXT             NOT NULL,
    schema_version        TEXT             NOT NULL
);
CREATE INDEX spans_by_session ON spans (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX spans_by_server_time ON spans (server_name, started_at);

-- One row per session, maintained at ingest; `agents` copies rollup.agents_used for filtering.
CREATE TABLE sessions (
    project_id    TEXT   NOT NULL,
    session_id    TEXT   NOT NULL,
    first_call_at BIGINT NOT NULL,
    last_call_at  BIGINT NOT NULL,
    health_tag    TEXT,
    agents        TEXT[] NOT NULL DEFAULT '{}',
    rollup        TEXT   NOT NULL,
    PRIMARY KEY (project_id, session_id)
);
CREATE INDEX sessions_by_last ON sessions (last_call_at);

CREATE TABLE tool_hourly (
    project_id  TEXT             NOT NULL,
    server_name TEXT             NOT NULL,
    tool_name   TEXT             NOT NULL,
    hour        BIGINT           NOT NULL,
    calls       BIGINT           NOT NULL,
    errors      BIGINT           NOT NULL,
    latency_sum DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (project_id, server_name, tool_name, hour)
);
CREATE INDEX tool_hourly_by_hour ON tool_hourly (hour);

CREATE TABLE health_results (
    id          BIGSERIAL PRIMARY KEY,
    server_name TEXT             NOT NULL,
    project_id  TEXT             NOT NULL DEFAULT '',
    status      TEXT             NOT NULL,
    latency_ms  DOUBLE PRECISION,
    tools_count BIGINT           NOT NULL DEFAULT 0,
    tools       TEXT             NOT NULL DEFAULT '[]',
    schema_hash TEXT,
    error       TEXT,
    checked_at  BIGINT           NOT NULL
);
CREATE INDEX health_by_server ON health_results (project_id, server_name, id);

CREATE TABLE schema_drift_events (
    id            BIGSERIAL PRIMARY KEY,
    server_name   TEXT    NOT NULL,
    project_id    TEXT    NOT NULL DEFAULT '',
    tool_name     TEXT    NOT NULL,
    drift_type    TEXT    NOT NULL,
    change_kind   TEXT    NOT NULL,
    param_name    TEXT,
    old_value     TEXT,
    new_value     TEXT,
    previous_hash TEXT    NOT NULL,
    current_hash  TEXT    NOT NULL,
    has_breaking  BOOLEAN NOT NULL,
    detected_at   BIGINT  NOT NULL
);
CREATE INDEX drift_by_server ON schema_drift_events (project_id, server_name, id);
