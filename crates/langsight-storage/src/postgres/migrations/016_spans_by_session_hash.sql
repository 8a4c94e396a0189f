-- Spans are read by session only for equality (one session's trace, the link pass's list of sessions), never by
-- range or in session order. A hash index answers those as well and costs a third of the B-tree at every
-- insert: random UUID keys made the B-tree the most expensive of the span indexes to keep (BENCHMARKS.md).
CREATE INDEX spans_by_session_hash ON spans USING hash (session_id) WHERE session_id IS NOT NULL;
DROP INDEX spans_by_session;
