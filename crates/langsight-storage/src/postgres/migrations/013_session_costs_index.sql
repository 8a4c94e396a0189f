-- The cost breakdown ranks the newest sessions by their token figures: an index that carries them lets the
-- ranking read index pages in order instead of fetching each session's (wide) row.
CREATE INDEX sessions_costs ON sessions (first_call_at DESC)
    INCLUDE (last_call_at, project_id, session_id, model_id, input_tokens, output_tokens, thinking_tokens,
             span_count, agent_name)
    WHERE model_id IS NOT NULL;
