-- Session rows in arrival order (a rowid table) with a small unique index for the (project, session) key, instead
-- of rows kept in key order (WITHOUT ROWID). Session ids are random, so each new session's row — ~900 bytes, most
-- of it rollup text — went into a random leaf of the primary key, four rows to a 4 KiB page: the leaf and, every
-- second or so insert, a split's two more pages were written per new session (about a third of the WAL, the
-- largest share left after migrations 20 and 21, measured). Now the row appends, and the random leaf is the key
-- index's, with ~80 entries to a page, so it seldom splits. `sessions_window` lists `session_id` itself: entries
-- of a rowid table carry the rowid, not the key, and the lists read it from that index alone. The copy rewrites
-- the table once (seconds per million sessions).
CREATE TABLE sessions_by_arrival (
    id              INTEGER PRIMARY KEY,
    project_id      TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    first_call_at   INTEGER NOT NULL,
    last_call_at    INTEGER NOT NULL,
    health_tag      TEXT,
    rollup          TEXT    NOT NULL,
    model_id        TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    thinking_tokens INTEGER,
    span_count      INTEGER NOT NULL DEFAULT 0,
    agent_name      TEXT,
    linked_count    INTEGER NOT NULL DEFAULT 0,
    llm_calls       INTEGER NOT NULL DEFAULT 0,
    links           BLOB,
    missing_parents INTEGER NOT NULL DEFAULT 0,
    first_seq       INTEGER
);
INSERT INTO sessions_by_arrival (project_id, session_id, first_call_at, last_call_at, health_tag, rollup, model_id,
    input_tokens, output_tokens, thinking_tokens, span_count, agent_name, linked_count, llm_calls, links,
    missing_parents, first_seq)
SELECT project_id, session_id, first_call_at, last_call_at, health_tag, rollup, model_id, input_tokens,
    output_tokens, thinking_tokens, span_count, agent_name, linked_count, llm_calls, links, missing_parents, first_seq
FROM sessions ORDER BY first_call_at;
DROP TABLE sessions;
ALTER TABLE sessions_by_arrival RENAME TO sessions;
CREATE UNIQUE INDEX sessions_key ON sessions (project_id, session_id);
CREATE INDEX sessions_by_start ON sessions (first_call_at);
CREATE INDEX sessions_by_project_start ON sessions (project_id, first_call_at);
CREATE INDEX sessions_window ON sessions (first_call_at, last_call_at, project_id, health_tag, span_count,
    input_tokens, output_tokens, agent_name, thinking_tokens, model_id, session_id);
CREATE INDEX sessions_unlinked ON sessions (project_id, session_id) WHERE span_count <> linked_count;
CREATE INDEX sessions_missing_parents ON sessions (last_call_at) WHERE missing_parents = 1;
