-- A session's spans found by an integer key given at its first batch — the seq of its first span — instead of by
-- its id. Session ids are random (UUIDs), so every new session's spans went into a random leaf of the id index:
-- one 4 KiB WAL frame per batch for ~30 small entries, about a third of all bytes written under load (measured).
-- Keys grow with arrival, so a new session's entries append to the index's end; the session row keeps the key
-- (`first_seq`), and reads look it up there. Spans stored before this migration keep no key and stay in the id
-- index, which now holds only them (and the rare span whose session id is blank); reads take both.
ALTER TABLE spans ADD COLUMN session_seq INTEGER;
ALTER TABLE sessions ADD COLUMN first_seq INTEGER;
DROP INDEX spans_by_session;
CREATE INDEX spans_by_session_key ON spans (session_seq) WHERE session_seq IS NOT NULL;
CREATE INDEX spans_by_session ON spans (session_id) WHERE session_id IS NOT NULL AND session_seq IS NULL;
