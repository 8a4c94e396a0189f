-- One row per MCP health check. `tools` is the JSON list of {name, description, input_schema} (only kept
-- for successful checks).
CREATE TABLE health_results (
    id           INTEGER PRIMARY KEY,
    server_name  TEXT    NOT NULL,
    project_id   TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL,
    latency_ms   REAL,
    tools_count  INTEGER NOT NULL DEFAULT 0,
    tools        TEXT    NOT NULL DEFAULT '[]',
    schema_hash  TEXT,
    error        TEXT,
    checked_at   INTEGER NOT NULL
);
CREATE INDEX health_by_server_time ON health_results (project_id, server_name, checked_at);
