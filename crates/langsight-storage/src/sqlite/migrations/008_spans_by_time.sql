-- Time-window reads of spans (analytics: costs, monitoring, reliability, lineage).
CREATE INDEX spans_by_time ON spans (started_at);
