-- Dashboard sessions kept server-side, so logout, a password change or a deactivation ends them at once
-- (a signed cookie alone stays valid until it expires). Only a hash of the session id is stored.
CREATE TABLE user_sessions (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER
);
CREATE INDEX user_sessions_by_user ON user_sessions (user_id);
