//! API keys: `ls_` + 64 hex characters. Only the SHA-256 of the whole key (prefix included) and its first
//! 11 characters are ever stored, so a database leak reveals no usable key.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of the stored, displayable prefix: `ls_` + 8 hex.
pub const KEY_PREFIX_LEN: usize = 11;

/// A freshly generated key. `raw` is shown to the caller once and never stored.
pub struct GeneratedKey {
    pub raw: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate_api_key() -> GeneratedKey {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let raw = format!("ls_{}", hex::encode(bytes));
    GeneratedKey { hash: hash_api_key(&raw), prefix: raw[..KEY_PREFIX_LEN].to_string(), raw }
}

/// Hex SHA-256 of the key as presented; the lookup key of stored API keys.
pub fn hash_api_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// A random 32-hex identifier (uuid4 without dashes), the id form the original uses for keys and projects.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate_api_key();
        assert_eq!(k.raw.len(), 67);
        assert!(k.raw.starts_with("ls_"));
        assert!(k.raw[3..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(k.prefix, &k.raw[..11]);
        assert_eq!(k.hash, hash_api_key(&k.raw));
        assert_ne!(generate_api_key().raw, k.raw);
    }
}
