-- When spans first and last named each catalog entry (registered at ingest); NULL = never seen in a span.
ALTER TABLE agent_metadata ADD COLUMN IF NOT EXISTS first_seen_at BIGINT;
ALTER TABLE agent_metadata ADD COLUMN IF NOT EXISTS last_seen_at BIGINT;
ALTER TABLE server_metadata ADD COLUMN IF NOT EXISTS first_seen_at BIGINT;
ALTER TABLE server_metadata ADD COLUMN IF NOT EXISTS last_seen_at BIGINT;
