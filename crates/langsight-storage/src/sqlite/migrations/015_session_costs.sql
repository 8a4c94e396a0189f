-- A session's token figures beside its rollup, written with it at ingest: the cost breakdown ranks thousands of
-- sessions by cost without parsing their rollups.
ALTER TABLE sessions ADD COLUMN model_id TEXT;
ALTER TABLE sessions ADD COLUMN input_tokens INTEGER;
ALTER TABLE sessions ADD COLUMN output_tokens INTEGER;
ALTER TABLE sessions ADD COLUMN thinking_tokens INTEGER;
ALTER TABLE sessions ADD COLUMN span_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN agent_name TEXT;
UPDATE sessions SET model_id = json_extract(rollup, '$.model_id'),
    input_tokens = json_extract(rollup, '$.total_input_tokens'),
    output_tokens = json_extract(rollup, '$.total_output_tokens'),
    thinking_tokens = json_extract(rollup, '$.total_thinking_tokens'),
    span_count = coalesce(json_extract(rollup, '$.span_count'), 0),
    agent_name = json_extract(rollup, '$.agent_name')
WHERE rollup <> '';
