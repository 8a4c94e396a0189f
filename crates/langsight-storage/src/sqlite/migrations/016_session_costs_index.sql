-- The cost breakdown ranks the newest sessions by their token figures. Reading those columns from the sessions
-- table meant a primary-key lookup per session and, past the rollup text, its overflow pages (33 ms for 5,000
-- sessions at a million spans); this partial index covers the query, so it is one ordered index scan (10 ms).
-- The primary key (project_id, session_id) is part of every index entry of a WITHOUT ROWID table.
CREATE INDEX sessions_costs ON sessions (first_call_at, last_call_at, project_id, model_id, input_tokens,
    output_tokens, thinking_tokens, span_count, agent_name) WHERE model_id IS NOT NULL;
