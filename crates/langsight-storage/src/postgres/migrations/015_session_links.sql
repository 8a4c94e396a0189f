-- The link pass (delegation edges and missing parents, which need a span's parent and so both spans stored):
-- a session is due when its span count differs from the count the pass last recorded. The partial index holds
-- only due sessions; `links` is what the pass last added to the delegation rollups for the session, so a
-- recomputation adds only the difference. It also counts the session's LLM calls (agent spans naming a model)
-- for the unfinished-sessions list, which reads `missing_parents` through its own partial index.
ALTER TABLE sessions ADD COLUMN linked_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN llm_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN links BYTEA;
ALTER TABLE sessions ADD COLUMN missing_parents BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX sessions_unlinked ON sessions (project_id, session_id) WHERE span_count <> linked_count;
CREATE INDEX sessions_missing_parents ON sessions (last_call_at) WHERE missing_parents;
