use thiserror::Error;

/// What went wrong in storage. Request handlers map these to status codes; the text of `Backend` is logged,
/// never sent to clients.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The backend failed (I/O, corruption, SQL error). A server-side fault.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The backend is temporarily unable to take the request (busy, shutting down); the client may retry.
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (e.g. a slug already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Start-up could not open the backend; the message names the setting to fix.
    #[error("{0}")]
    Open(String),
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                StorageError::Unavailable(e.to_string())
            }
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StorageError::Conflict(e.to_string())
            }
            _ => StorageError::Backend(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for StorageError {
    fn from(e: serde_json::Error) -> Self {
        StorageError::Backend(format!("stored JSON is unreadable: {e}"))
    }
}
