-- A search or a sort of the sessions list other than the default reads the newest 10,000 sessions of the window
-- by start time, with the columns it filters, searches and sorts by. Read from the table, each of those rows
-- brings its rollup text along (about 200 ms for 10,000 sessions); this index carries every one of those columns,
-- so the window is one ordered index scan (about 10 ms). The primary key (project_id, session_id) is part of
-- every index entry of a WITHOUT ROWID table.
CREATE INDEX sessions_window ON sessions (first_call_at, last_call_at, project_id, health_tag, span_count,
    input_tokens, output_tokens, agent_name);
