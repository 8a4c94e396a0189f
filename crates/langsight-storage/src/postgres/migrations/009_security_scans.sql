-- Security scans per project ('' = operator servers) and server; the newest of each grades the scorecard.
CREATE TABLE IF NOT EXISTS security_scans (
    id              TEXT    PRIMARY KEY,
    project_id      TEXT    NOT NULL,
    server_name     TEXT    NOT NULL,
    scanned_at      BIGINT  NOT NULL,
    scanner_version TEXT    NOT NULL,
    error           TEXT,
    critical        BIGINT  NOT NULL,
    high            BIGINT  NOT NULL,
    medium          BIGINT  NOT NULL,
    low             BIGINT  NOT NULL,
    info            BIGINT  NOT NULL,
    findings_json   TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS security_scans_by_server ON security_scans (project_id, server_name, scanned_at);
