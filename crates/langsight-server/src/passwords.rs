//! Password hashing with Argon2id (memory-hard; the original used bcrypt), always off the async runtime:
//! one hash costs tens of milliseconds of CPU and 19 MiB, and must not stall other requests.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), or `None` if hashing failed.
pub async fn hash(password: String) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).ok()?;
        hasher().hash_password(password.as_bytes(), &salt).ok().map(|h| h.to_string())
    })
    .await
    .ok()
    .flatten()
}

/// Checks a password against a stored PHC string. With `None` (no such user) it hashes anyway, so an
/// unknown email takes as long as a wrong password and cannot be told apart by timing.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let Some(stored) = stored else {
            let _ = hasher().hash_password(password.as_bytes(), &SaltString::encode_b64(&[0u8; 16]).ok()?);
            return Some(false);
        };
        let parsed = PasswordHash::new(&stored).ok()?;
        Some(hasher().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = super::hash("correct horse battery".into()).await.unwrap();
        let b = super::hash("correct horse battery".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(super::verify("correct horse battery".into(), Some(a.clone())).await);
        assert!(!super::verify("wrong horse battery".into(), Some(a)).await);
        assert!(!super::verify("x".into(), None).await);
        assert!(!super::verify("x".into(), Some("not a hash".into())).await);
    }
}
