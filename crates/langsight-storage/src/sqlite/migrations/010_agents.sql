-- Agents' metadata and prevention settings per project ('' = no project), and the instance settings.
CREATE TABLE agent_metadata (
    id          TEXT    PRIMARY KEY,
    project_id  TEXT    NOT NULL,
    agent_name  TEXT    NOT NULL,
    description TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    tags_json   TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    runbook_url TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, agent_name)
);
CREATE TABLE prevention_configs (
    project_id  TEXT    NOT NULL,
    agent_name  TEXT    NOT NULL,
    config_json TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, agent_name)
);
CREATE TABLE instance_settings (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    settings    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
