-- Alerts: the inbox, each delivery attempt's outcome, per-project settings, and SLOs.
CREATE TABLE fired_alerts (
    id            TEXT    NOT NULL PRIMARY KEY,
    project_id    TEXT    NOT NULL DEFAULT '',
    alert_type    TEXT    NOT NULL,
    severity      TEXT    NOT NULL,
    server_name   TEXT    NOT NULL DEFAULT '',
    session_id    TEXT,
    title         TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    fired_at      INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'active',
    acked_at      INTEGER,
    acked_by      TEXT,
    snoozed_until INTEGER,
    resolved_at   INTEGER
);
CREATE INDEX fired_alerts_by_project ON fired_alerts (project_id, status, fired_at);
CREATE INDEX fired_alerts_by_time ON fired_alerts (fired_at);

CREATE TABLE alert_deliveries (
    id         INTEGER PRIMARY KEY,
    alert_id   TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert_id);

CREATE TABLE alert_config (
    project_id       TEXT    NOT NULL PRIMARY KEY,
    slack_webhook    TEXT,
    webhook_url      TEXT,
    alert_types_json TEXT    NOT NULL DEFAULT '{}',
    updated_at       INTEGER NOT NULL
);

CREATE TABLE agent_slos (
    id           TEXT    NOT NULL PRIMARY KEY,
    project_id   TEXT    NOT NULL DEFAULT '',
    agent_name   TEXT    NOT NULL,
    metric       TEXT    NOT NULL,
    target       REAL    NOT NULL,
    window_hours INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX agent_slos_by_project ON agent_slos (project_id, agent_name);
