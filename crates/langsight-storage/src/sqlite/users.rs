//! The SQL of [`UserStore`] for SQLite.

use super::SqliteStorage;
use crate::model::{AcceptInvite, AuditEvent, Invite, LockoutPolicy, User};
use crate::{StorageError, UserStore};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

const COLUMNS: &str = "id, email, password_hash, role, active, created_at, last_login_at";

fn user_from_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        password_hash: r.get(2)?,
        role: r.get(3)?,
        active: r.get(4)?,
        created_at: r.get(5)?,
        last_login_at: r.get(6)?,
    })
}

fn insert_user(conn: &rusqlite::Connection, u: &User) -> Result<(), StorageError> {
    let taken =
        conn.query_row("SELECT 1 FROM users WHERE email = ?1", params![u.email], |_| Ok(())).optional()?.is_some();
    if taken {
        return Err(StorageError::Conflict(format!("a user with email '{}' exists", u.email)));
    }
    conn.execute(
        &format!("INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![u.id, u.email, u.password_hash, u.role, u.active, u.created_at, u.last_login_at],
    )?;
    Ok(())
}

#[async_trait]
impl UserStore for SqliteStorage {
    async fn count_users(&self) -> Result<u64, StorageError> {
        self.read(|conn| Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))? as u64)).await
    }

    async fn create_user(&self, user: User) -> Result<(), StorageError> {
        self.write(move |conn| insert_user(conn, &user)).await
    }

    async fn create_first_user(&self, u: User) -> Result<bool, StorageError> {
        // One statement on the single writer: SQLite's write lock makes the check and the insert atomic,
        // across processes sharing the file too.
        self.write(move |conn| {
            let n = conn.execute(
                &format!(
                    "INSERT INTO users ({COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 \
                     WHERE NOT EXISTS (SELECT 1 FROM users)"
                ),
                params![u.id, u.email, u.password_hash, u.role, u.active, u.created_at, u.last_login_at],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StorageError> {
        let email = email.trim().to_lowercase();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE email = ?1"))?
                .query_row(params![email], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StorageError> {
        let id = id.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
                .query_row(params![id], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY created_at, id"))?;
            let rows = stmt.query_map([], user_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn set_user_role(&self, id: &str, role: &str) -> Result<Option<User>, StorageError> {
        let (id, role) = (id.to_string(), role.to_string());
        self.write(move |conn| {
            conn.execute("UPDATE users SET role = ?2 WHERE id = ?1", params![id, role])?;
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?
                .query_row(params![id], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn deactivate_user(&self, id: &str) -> Result<bool, StorageError> {
        let id = id.to_string();
        self.write(move |conn| Ok(conn.execute("UPDATE users SET active = 0 WHERE id = ?1", params![id])? > 0)).await
    }

    async fn set_password(&self, id: &str, hash: &str, at: i64) -> Result<u64, StorageError> {
        let (id, hash) = (id.to_string(), hash.to_string());
        self.write(move |conn| {
            conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id, hash])?;
            let n = conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )?;
            Ok(n as u64)
        })
        .await
    }

    async fn touch_login(&self, id: &str, at: i64) -> Result<(), StorageError> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.execute("UPDATE users SET last_login_at = ?2 WHERE id = ?1", params![id, at])?;
            Ok(())
        })
        .await
    }

    async fn create_invite(&self, i: Invite) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO invite_tokens (token_hash, email, role, created_by, created_at, expires_at, used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![i.token_hash, i.email, i.role, i.created_by, i.created_at, i.expires_at, i.used_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn accept_invite(&self, token_hash: &str, mut user: User, now: i64) -> Result<AcceptInvite, StorageError> {
        let token_hash = token_hash.to_string();
        self.write(move |conn| {
            let invite = conn
                .query_row(
                    "SELECT email, role, expires_at, used_at FROM invite_tokens WHERE token_hash = ?1",
                    params![token_hash],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((email, role, expires_at, used_at)) = invite else { return Ok(AcceptInvite::Unknown) };
            if used_at.is_some() {
                return Ok(AcceptInvite::Used);
            }
            if now >= expires_at {
                return Ok(AcceptInvite::Expired);
            }
            user.email = email;
            user.role = role;
            match insert_user(conn, &user) {
                Ok(()) => {}
                Err(StorageError::Conflict(_)) => return Ok(AcceptInvite::EmailTaken),
                Err(e) => return Err(e),
            }
            conn.execute("UPDATE invite_tokens SET used_at = ?2 WHERE token_hash = ?1", params![token_hash, now])?;
            Ok(AcceptInvite::Created(user))
        })
        .await
    }

    async fn locked_until(&self, email: &str, now: i64) -> Result<Option<i64>, StorageError> {
        let email = email.trim().to_lowercase();
        self.read(move |conn| {
            let until: Option<Option<i64>> = conn
                .prepare_cached("SELECT locked_until FROM login_failures WHERE email = ?1")?
                .query_row(params![email], |r| r.get(0))
                .optional()?;
            Ok(until.flatten().filter(|u| *u > now))
        })
        .await
    }

    async fn record_login_failure(&self, email: &str, now: i64, p: LockoutPolicy) -> Result<Option<i64>, StorageError> {
        let email = email.trim().to_lowercase();
        self.write(move |conn| {
            let row: Option<(i64, i64, Option<i64>)> = conn
                .query_row(
                    "SELECT fail_count, window_start, locked_until FROM login_failures WHERE email = ?1",
                    params![email],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            // A failure outside the window (or after a lock ended) starts a new window.
            let (count, start) = match row {
                Some((n, start, locked)) if now - start < p.window_micros && locked.is_none_or(|l| l > now) => {
                    (n + 1, start)
                }
                _ => (1, now),
            };
            let locked = (count >= i64::from(p.max_failures)).then_some(now + p.lock_micros);
            // A new window forgets an ended lock; within a window a lock is kept until it ends.
            conn.execute(
                "INSERT INTO login_failures (email, fail_count, window_start, locked_until) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (email) DO UPDATE SET fail_count = ?2, window_start = ?3, \
                 locked_until = coalesce(?4, CASE WHEN ?2 = 1 THEN NULL ELSE locked_until END)",
                params![email, count, start, locked],
            )?;
            Ok(locked)
        })
        .await
    }

    async fn clear_login_failures(&self, email: &str) -> Result<(), StorageError> {
        let email = email.trim().to_lowercase();
        self.write(move |conn| {
            conn.execute("DELETE FROM login_failures WHERE email = ?1", params![email])?;
            Ok(())
        })
        .await
    }

    async fn audit(&self, e: AuditEvent) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit_logs (at, event, user_id, ip, details, project_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![e.at, e.event, e.user_id, e.ip, e.details, e.project_id])?;
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, limit: usize, offset: usize) -> Result<(u64, Vec<AuditEvent>), StorageError> {
        self.read(move |conn| {
            let total: i64 = conn.query_row("SELECT count(*) FROM audit_logs", [], |r| r.get(0))?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, at, event, user_id, ip, details, project_id FROM audit_logs ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )?;
            let rows = stmt.query_map(params![limit as i64, offset as i64], |r| {
                Ok(AuditEvent {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    event: r.get(2)?,
                    user_id: r.get(3)?,
                    ip: r.get(4)?,
                    details: r.get(5)?,
                    project_id: r.get(6)?,
                })
            })?;
            Ok((total as u64, rows.collect::<Result<Vec<_>, _>>()?))
        })
        .await
    }

    async fn create_session(
        &self,
        id_hash: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        let (id_hash, user_id) = (id_hash.to_string(), user_id.to_string());
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO user_sessions (id_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![id_hash, user_id, now, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<String>, StorageError> {
        let id_hash = id_hash.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT user_id FROM user_sessions WHERE id_hash = ?1 AND ended_at IS NULL AND expires_at > ?2",
                )?
                .query_row(params![id_hash, now], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn end_session(&self, id_hash: &str, now: i64) -> Result<bool, StorageError> {
        let id_hash = id_hash.to_string();
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE user_sessions SET ended_at = ?2 WHERE id_hash = ?1 AND ended_at IS NULL",
                params![id_hash, now],
            )? > 0)
        })
        .await
    }

    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: i64) -> Result<u64, StorageError> {
        let (user_id, keep) = (user_id.to_string(), keep.map(String::from));
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE user_sessions SET ended_at = ?3 WHERE user_id = ?1 AND ended_at IS NULL \
                 AND (?2 IS NULL OR id_hash <> ?2)",
                params![user_id, keep, now],
            )?;
            conn.execute("DELETE FROM user_sessions WHERE user_id = ?1 AND expires_at < ?2", params![user_id, now])?;
            Ok(n as u64)
        })
        .await
    }
}
