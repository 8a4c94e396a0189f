-- Time-window reads of spans (analytics: costs, monitoring, reliability, lineage).
CREATE INDEX IF NOT EXISTS spans_by_time ON spans (started_at);
