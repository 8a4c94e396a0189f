-- sessions_costs (16) and sessions_window (17) carried nearly the same columns, and every session update at ingest
-- rewrites an entry in each (their columns change with every batch). One index with the union of their columns
-- covers both reads — the cost ranking filters `model_id IS NOT NULL` inside it — at one entry per update.
DROP INDEX sessions_costs;
DROP INDEX sessions_window;
CREATE INDEX sessions_window ON sessions (first_call_at, last_call_at, project_id, health_tag, span_count,
    input_tokens, output_tokens, agent_name, thinking_tokens, model_id);
