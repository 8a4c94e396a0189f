-- Schema drift, one row per change (the original's flat form).
CREATE TABLE schema_drift_events (
    id            INTEGER PRIMARY KEY,
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
    has_breaking  INTEGER NOT NULL,
    detected_at   INTEGER NOT NULL
);
CREATE INDEX drift_by_server ON schema_drift_events (project_id, server_name, id);
