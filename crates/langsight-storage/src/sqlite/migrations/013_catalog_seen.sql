-- When spans first and last named each catalog entry (registered at ingest); NULL = never seen in a span.
ALTER TABLE agent_metadata ADD COLUMN first_seen_at INTEGER;
ALTER TABLE agent_metadata ADD COLUMN last_seen_at INTEGER;
ALTER TABLE server_metadata ADD COLUMN first_seen_at INTEGER;
ALTER TABLE server_metadata ADD COLUMN last_seen_at INTEGER;
