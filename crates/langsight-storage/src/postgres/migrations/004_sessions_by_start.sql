-- The sessions list orders by first_call_at DESC with a LIMIT: walking this index backwards finds the newest
-- sessions without sorting every session of the window.
CREATE INDEX sessions_by_first ON sessions (first_call_at DESC);
