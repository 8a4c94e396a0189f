-- Server metadata and tools, the alert inbox, delivery outcomes, per-project alert settings and SLOs.
CREATE TABLE server_metadata (
    id          TEXT   PRIMARY KEY,
    project_id  TEXT   NOT NULL DEFAULT '',
    server_name TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    owner       TEXT   NOT NULL DEFAULT '',
    tags_json   TEXT   NOT NULL DEFAULT '[]',
    transport   TEXT   NOT NULL DEFAULT '',
    url         TEXT   NOT NULL DEFAULT '',
    runbook_url TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, server_name)
);

CREATE TABLE server_tools (
    project_id    TEXT   NOT NULL DEFAULT '',
    server_name   TEXT   NOT NULL,
    tool_name     TEXT   NOT NULL,
    description   TEXT   NOT NULL DEFAULT '',
    input_schema  TEXT   NOT NULL DEFAULT '{}',
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    PRIMARY KEY (project_id, server_name, tool_name)
);

CREATE TABLE fired_alerts (
    id            TEXT PRIMARY KEY,
    project_id    TEXT   NOT NULL DEFAULT '',
    alert_type    TEXT   NOT NULL,
    severity      TEXT   NOT NULL,
    server_name   TEXT   NOT NULL DEFAULT '',
    session_id    TEXT,
    title         TEXT   NOT NULL,
    message       TEXT   NOT NULL,
    fired_at      BIGINT NOT NULL,
    status        TEXT   NOT NULL DEFAULT 'active',
    acked_at      BIGINT,
    acked_by      TEXT,
    snoozed_until BIGINT,
    resolved_at   BIGINT
);
CREATE INDEX fired_alerts_by_project ON fired_alerts (project_id, status, fired_at);
CREATE INDEX fired_alerts_by_time ON fired_alerts (fired_at);

CREATE TABLE alert_deliveries (
    id         BIGSERIAL PRIMARY KEY,
    alert_id   TEXT   NOT NULL,
    channel    TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    attempts   BIGINT NOT NULL,
    last_error TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert_id);

CREATE TABLE alert_config (
    project_id       TEXT PRIMARY KEY,
    slack_webhook    TEXT,
    webhook_url      TEXT,
    alert_types_json TEXT   NOT NULL DEFAULT '{}',
    updated_at       BIGINT NOT NULL
);

CREATE TABLE agent_slos (
    id           TEXT PRIMARY KEY,
    project_id   TEXT             NOT NULL DEFAULT '',
    agent_name   TEXT             NOT NULL,
    metric       TEXT             NOT NULL,
    target       DOUBLE PRECISION NOT NULL,
    window_hours BIGINT           NOT NULL,
    created_at   BIGINT           NOT NULL
);
CREATE INDEX agent_slos_by_project ON agent_slos (project_id, agent_name);
