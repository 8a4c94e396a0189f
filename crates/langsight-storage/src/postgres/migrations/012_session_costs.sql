-- A session's token figures beside its rollup, written with it at ingest: the cost breakdown ranks thousands of
-- sessions by cost without parsing their rollups.
ALTER TABLE sessions ADD COLUMN model_id TEXT;
ALTER TABLE sessions ADD COLUMN input_tokens BIGINT;
ALTER TABLE sessions ADD COLUMN output_tokens BIGINT;
ALTER TABLE sessions ADD COLUMN thinking_tokens BIGINT;
ALTER TABLE sessions ADD COLUMN span_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN agent_name TEXT;
UPDATE sessions SET model_id = r->>'model_id',
    input_tokens = (r->>'total_input_tokens')::bigint,
    output_tokens = (r->>'total_output_tokens')::bigint,
    thinking_tokens = (r->>'total_thinking_tokens')::bigint,
    span_count = coalesce((r->>'span_count')::bigint, 0),
    agent_name = r->>'agent_name'
FROM (SELECT project_id AS p, session_id AS s, rollup::jsonb AS r FROM sessions WHERE rollup <> '') AS old
WHERE sessions.project_id = old.p AND sessions.session_id = old.s;
