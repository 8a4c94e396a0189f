-- Tool calls per (project, server, tool, hour), maintained at ingest: the baseline of anomaly detection and
-- of per-tool reliability, read without scanning spans. `hour` is epoch hours (started_at / 3600 s).
CREATE TABLE tool_hourly (
    project_id  TEXT    NOT NULL,
    server_name TEXT    NOT NULL,
    tool_name   TEXT    NOT NULL,
    hour        INTEGER NOT NULL,
    calls       INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    latency_sum REAL    NOT NULL,
    PRIMARY KEY (project_id, server_name, tool_name, hour)
);
CREATE INDEX tool_hourly_by_hour ON tool_hourly (hour);

INSERT INTO tool_hourly (project_id, server_name, tool_name, hour, calls, errors, latency_sum)
SELECT coalesce(project_id, ''), server_name, tool_name, started_at / 3600000000, count(*),
       sum(status <> 'success'), sum(latency_ms)
FROM spans WHERE span_type = 'tool_call'
GROUP BY coalesce(project_id, ''), server_name, tool_name, started_at / 3600000000;
