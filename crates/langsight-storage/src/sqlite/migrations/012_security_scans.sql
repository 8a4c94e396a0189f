-- Security scans per project ('' = operator servers) and server; the newest of each grades the scorecard.
CREATE TABLE security_scans (
    id              TEXT    PRIMARY KEY,
    project_id      TEXT    NOT NULL,
    server_name     TEXT    NOT NULL,
    scanned_at      INTEGER NOT NULL,
    scanner_version TEXT    NOT NULL,
    error           TEXT,
    critical        INTEGER NOT NULL,
    high            INTEGER NOT NULL,
    medium          INTEGER NOT NULL,
    low             INTEGER NOT NULL,
    info            INTEGER NOT NULL,
    findings_json   TEXT    NOT NULL
);
CREATE INDEX security_scans_by_server ON security_scans (project_id, server_name, scanned_at);
