-- MCP server metadata managed through the API (per project; '' = no project), and the tools agents saw.
CREATE TABLE server_metadata (
    id          TEXT    NOT NULL PRIMARY KEY,
    project_id  TEXT    NOT NULL DEFAULT '',
    server_name TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    owner       TEXT    NOT NULL DEFAULT '',
    tags_json   TEXT    NOT NULL DEFAULT '[]',
    transport   TEXT    NOT NULL DEFAULT '',
    url         TEXT    NOT NULL DEFAULT '',
    runbook_url TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (project_id, server_name)
);

CREATE TABLE server_tools (
    project_id    TEXT    NOT NULL DEFAULT '',
    server_name   TEXT    NOT NULL,
    tool_name     TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    input_schema  TEXT    NOT NULL DEFAULT '{}',
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (project_id, server_name, tool_name)
);
