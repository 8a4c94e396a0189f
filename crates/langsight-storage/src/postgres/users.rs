//! [`UserStore`] for PostgreSQL. Lockout updates take a row lock, so concurrent failures from several
//! workers or hosts are all counted.

use super::PgStorage;
use crate::model::{AcceptInvite, AuditEvent, Invite, LockoutPolicy, User};
use crate::{StorageError, UserStore};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str = "id, email, password_hash, role, active, created_at, last_login_at";

fn user_from_row(r: &Row) -> User {
    User {
        id: r.get(0),
        email: r.get(1),
        password_hash: r.get(2),
        role: r.get(3),
        active: r.get(4),
        created_at: r.get(5),
        last_login_at: r.get(6),
    }
}

async fn insert_user(c: &impl deadpool_postgres::GenericClient, u: &User) -> Result<(), StorageError> {
    let n = c
        .execute(
            &format!(
                "INSERT INTO users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email) DO NOTHING"
            ),
            &[&u.id, &u.email, &u.password_hash, &u.role, &u.active, &u.created_at, &u.last_login_at],
        )
        .await?;
    if n == 0 {
        return Err(StorageError::Conflict(format!("a user with email '{}' exists", u.email)));
    }
    Ok(())
}

#[async_trait]
impl UserStore for PgStorage {
    async fn count_users(&self) -> Result<u64, StorageError> {
        let n: i64 = self.client().await?.query_one("SELECT count(*) FROM users", &[]).await?.get(0);
        Ok(n as u64)
    }

    async fn create_user(&self, user: User) -> Result<(), StorageError> {
        insert_user(&self.client().await?, &user).await
    }

    async fn create_first_user(&self, u: User) -> Result<bool, StorageError> {
        // Under READ COMMITTED two transactions could both see an empty table; the table lock (which
        // conflicts with itself and with every insert) serialises them, across hosts too.
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").await?;
        let n = tx
            .execute(
                &format!(
                    "INSERT INTO users ({COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE NOT EXISTS (SELECT 1 FROM users)"
                ),
                &[&u.id, &u.email, &u.password_hash, &u.role, &u.active, &u.created_at, &u.last_login_at],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StorageError> {
        let email = email.trim().to_lowercase();
        let row =
            self.client().await?.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"), &[&email]).await?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StorageError> {
        let row = self.client().await?.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"), &[&id]).await?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn list_users(&self) -> Result<Vec<User>, StorageError> {
        let rows =
            self.client().await?.query(&format!("SELECT {COLUMNS} FROM users ORDER BY created_at, id"), &[]).await?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    async fn set_user_role(&self, id: &str, role: &str) -> Result<Option<User>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("UPDATE users SET role = $2 WHERE id = $1 RETURNING {COLUMNS}"), &[&id, &role])
            .await?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn deactivate_user(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self.client().await?.execute("UPDATE users SET active = FALSE WHERE id = $1", &[&id]).await? > 0)
    }

    async fn set_password(&self, id: &str, hash: &str, at: i64) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("UPDATE users SET password_hash = $2 WHERE id = $1", &[&id, &hash]).await?;
        let n = tx
            .execute("UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", &[&id, &at])
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn touch_login(&self, id: &str, at: i64) -> Result<(), StorageError> {
        self.client().await?.execute("UPDATE users SET last_login_at = $2 WHERE id = $1", &[&id, &at]).await?;
        Ok(())
    }

    async fn create_invite(&self, i: Invite) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO invite_tokens (token_hash, email, role, created_by, created_at, expires_at, used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&i.token_hash, &i.email, &i.role, &i.created_by, &i.created_at, &i.expires_at, &i.used_at],
            )
            .await?;
        Ok(())
    }

    async fn accept_invite(&self, token_hash: &str, mut user: User, now: i64) -> Result<AcceptInvite, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT email, role, expires_at, used_at FROM invite_tokens WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )
            .await?;
        let Some(row) = row else { return Ok(AcceptInvite::Unknown) };
        let (email, role, expires_at, used_at): (String, String, i64, Option<i64>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if used_at.is_some() {
            return Ok(AcceptInvite::Used);
        }
        if now >= expires_at {
            return Ok(AcceptInvite::Expired);
        }
        user.email = email;
        user.role = role;
        match insert_user(&tx, &user).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => return Ok(AcceptInvite::EmailTaken),
            Err(e) => return Err(e),
        }
        tx.execute("UPDATE invite_tokens SET used_at = $2 WHERE token_hash = $1", &[&token_hash, &now]).await?;
        tx.commit().await?;
        Ok(AcceptInvite::Created(user))
    }

    async fn locked_until(&self, email: &str, now: i64) -> Result<Option<i64>, StorageError> {
        let email = email.trim().to_lowercase();
        let row = self
            .client()
            .await?
            .query_opt("SELECT locked_until FROM login_failures WHERE email = $1", &[&email])
            .await?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).filter(|u| *u > now))
    }

    async fn record_login_failure(&self, email: &str, now: i64, p: LockoutPolicy) -> Result<Option<i64>, StorageError> {
        let email = email.trim().to_lowercase();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Create the row if missing, then lock it: concurrent failures serialise here.
        tx.execute(
            "INSERT INTO login_failures (email, fail_count, window_start, locked_until) VALUES ($1, 0, $2, NULL) \
             ON CONFLICT (email) DO NOTHING",
            &[&email, &now],
        )
        .await?;
        let row = tx
            .query_one(
                "SELECT fail_count, window_start, locked_until FROM login_failures WHERE email = $1 FOR UPDATE",
                &[&email],
            )
            .await?;
        let (n, start, locked): (i64, i64, Option<i64>) = (row.get(0), row.get(1), row.get(2));
        let (count, start) =
            if now - start < p.window_micros && locked.is_none_or(|l| l > now) { (n + 1, start) } else { (1, now) };
        let new_lock = (count >= i64::from(p.max_failures)).then_some(now + p.lock_micros);
        tx.execute(
            "UPDATE login_failures SET fail_count = $2, window_start = $3, locked_until = coalesce($4, CASE WHEN $5 THEN NULL ELSE locked_until END) \
             WHERE email = $1",
            &[&email, &count, &start, &new_lock, &(count == 1)],
        )
        .await?;
        tx.commit().await?;
        Ok(new_lock)
    }

    async fn clear_login_failures(&self, email: &str) -> Result<(), StorageError> {
        let email = email.trim().to_lowercase();
        self.client().await?.execute("DELETE FROM login_failures WHERE email = $1", &[&email]).await?;
        Ok(())
    }

    async fn audit(&self, e: AuditEvent) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO audit_logs (at, event, user_id, ip, details, project_id) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&e.at, &e.event, &e.user_id, &e.ip, &e.details, &e.project_id],
            )
            .await?;
        Ok(())
    }

    async fn audit_log(&self, limit: usize, offset: usize) -> Result<(u64, Vec<AuditEvent>), StorageError> {
        let client = self.client().await?;
        let total: i64 = client.query_one("SELECT count(*) FROM audit_logs", &[]).await?.get(0);
        let rows = client
            .query(
                "SELECT id, at, event, user_id, ip, details, project_id FROM audit_logs ORDER BY id DESC LIMIT $1 OFFSET $2",
                &[&(limit as i64), &(offset as i64)],
            )
            .await?;
        let events = rows
            .iter()
            .map(|r| AuditEvent {
                id: r.get(0),
                at: r.get(1),
                event: r.get(2),
                user_id: r.get(3),
                ip: r.get(4),
                details: r.get(5),
                project_id: r.get(6),
            })
            .collect();
        Ok((total as u64, events))
    }

    async fn create_session(
        &self,
        id_hash: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO user_sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[&id_hash, &user_id, &now, &expires_at],
            )
            .await?;
        Ok(())
    }

    async fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<String>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT user_id FROM user_sessions WHERE id_hash = $1 AND ended_at IS NULL AND expires_at > $2",
                &[&id_hash, &now],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn end_session(&self, id_hash: &str, now: i64) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE user_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL",
                &[&id_hash, &now],
            )
            .await?;
        Ok(n > 0)
    }

    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: i64) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE user_sessions SET ended_at = $3 WHERE user_id = $1 AND ended_at IS NULL \
                 AND ($2::text IS NULL OR id_hash <> $2)",
                &[&user_id, &keep, &now],
            )
            .await?;
        client.execute("DELETE FROM user_sessions WHERE user_id = $1 AND expires_at < $2", &[&user_id, &now]).await?;
        Ok(n)
    }
}
