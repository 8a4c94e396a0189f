//! Instance settings (`/api/settings`): payload redaction and AI provider keys. Provider keys are encrypted at
//! rest with ChaCha20-Poly1305 under a key derived from `LANGSIGHT_SECRET_KEY` when it is set; ingest reads the
//! redaction switch through a short cache.

use crate::state::AppState;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use langsight_storage::StorageError;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The providers the settings know, with the environment variable each falls back to.
pub const PROVIDERS: [(&str, &str); 4] =
    [("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY"), ("ollama", "")];

/// How long a worker trusts the redaction switch it read (a change through another worker applies within it).
const CACHE_TTL: Duration = Duration::from_secs(5);

const ENCRYPTED: &str = "enc:v1:";

fn cipher(secret: &str) -> ChaCha20Poly1305 {
    let digest = Sha256::digest(format!("langsight-settings-v1:{secret}").as_bytes());
    ChaCha20Poly1305::new(Key::from_slice(&digest))
}

/// `enc:v1:<hex nonce ‖ ciphertext>` under `secret`, or the value itself without one.
pub fn seal(value: &str, secret: Option<&str>) -> String {
    let Some(secret) = secret else { return value.to_string() };
    if value.is_empty() {
        return String::new();
    }
    let nonce: [u8; 12] = rand::random();
    match cipher(secret).encrypt(Nonce::from_slice(&nonce), value.as_bytes()) {
        Ok(ct) => format!("{ENCRYPTED}{}{}", hex::encode(nonce), hex::encode(ct)),
        Err(_) => String::new(),
    }
}

/// Why a stored key could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("a provider key is stored encrypted but LANGSIGHT_SECRET_KEY is not set; set it to the key it was saved with, or save the provider key again")]
    NoKey,
    #[error("a provider key could not be decrypted with LANGSIGHT_SECRET_KEY (was the key changed?); save the provider key again")]
    WrongKey,
}

/// The plain value of a stored key.
pub fn open(stored: &str, secret: Option<&str>) -> Result<String, OpenError> {
    let Some(sealed) = stored.strip_prefix(ENCRYPTED) else { return Ok(stored.to_string()) };
    let secret = secret.ok_or(OpenError::NoKey)?;
    let bytes = hex::decode(sealed).map_err(|_| OpenError::WrongKey)?;
    if bytes.len() < 12 {
        return Err(OpenError::WrongKey);
    }
    let (nonce, ct) = bytes.split_at(12);
    let plain = cipher(secret).decrypt(Nonce::from_slice(nonce), ct).map_err(|_| OpenError::WrongKey)?;
    String::from_utf8(plain).map_err(|_| OpenError::WrongKey)
}

/// The original's mask: empty stays empty, 8 characters or fewer become `*masked*`, else `abcd...wxyz`.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    match chars.len() {
        0 => String::new(),
        n if n <= 8 => "*masked*".into(),
        n => format!("{}...{}", chars[..4].iter().collect::<String>(), chars[n - 4..].iter().collect::<String>()),
    }
}

/// The stored document, or the defaults.
pub async fn load(state: &AppState) -> Result<Map<String, Value>, StorageError> {
    let stored = state.storage.agents.get_settings().await?;
    let mut doc = stored.and_then(|s| serde_json::from_str::<Map<String, Value>>(&s).ok()).unwrap_or_default();
    doc.entry("redact_payloads").or_insert(json!(false));
    doc.entry("ai_providers").or_insert(json!({}));
    Ok(doc)
}

/// Each provider's public endpoint, used unless the operator or the settings name another.
pub fn default_base_url(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "https://api.anthropic.com",
        "openai" => "https://api.openai.com",
        "gemini" => "https://generativelanguage.googleapis.com",
        _ => "http://localhost:11434",
    }
}

/// Who chose a provider's key or base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The provider's public endpoint (no key: none configured).
    Default,
    /// The operator: environment or yaml, which only someone with the machine can change.
    Operator,
    /// Saved through `PUT /api/settings`, which any instance admin key can call.
    Settings,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Operator => "operator",
            Source::Settings => "settings",
        }
    }
}

/// Where a call to an AI provider goes, with which key.
#[derive(Debug, Clone)]
pub struct ProviderTarget {
    pub key: String,
    pub key_source: Source,
    pub model: String,
    pub base_url: String,
    pub base_source: Source,
}

/// Resolves a provider from the saved settings document and the operator's environment, so that the
/// operator's key never travels to a URL set through the API: a key from the environment goes only to the
/// provider's default endpoint or the operator's base URL; a base URL saved through the API is used only with
/// a key saved through the API beside it (and is checked against the outbound URL policy before each use).
pub fn provider_target(
    state: &AppState,
    doc: &Map<String, Value>,
    provider: &str,
) -> Result<ProviderTarget, OpenError> {
    let saved = doc.get("ai_providers").and_then(|p| p.get(provider)).cloned().unwrap_or(json!({}));
    let text = |k: &str| saved.get(k).and_then(Value::as_str).unwrap_or("").trim().to_string();
    let secret = state.config.secret_key.as_ref().map(|s| s.0.as_str());
    let saved_key = open(&text("api_key"), secret)?;
    let env_var = PROVIDERS.iter().find(|(p, _)| *p == provider).map(|(_, e)| *e).unwrap_or("");
    let env_key = (!env_var.is_empty()).then(|| std::env::var(env_var).ok()).flatten().unwrap_or_default();
    let operator_base = state.config.ai_base_urls.get(provider).cloned().filter(|u| !u.is_empty());
    let saved_base = Some(text("base_url")).filter(|u| !u.is_empty());
    let operator_or_default = || match &operator_base {
        Some(u) => (u.clone(), Source::Operator),
        None => (default_base_url(provider).to_string(), Source::Default),
    };
    let (key, key_source, (base_url, base_source)) = if !saved_key.is_empty() {
        let base = match saved_base {
            Some(u) => (u, Source::Settings),
            None => operator_or_default(),
        };
        (saved_key, Source::Settings, base)
    } else if !env_key.trim().is_empty() {
        (env_key.trim().to_string(), Source::Operator, operator_or_default())
    } else if provider == "ollama" {
        // Ollama needs no key; a URL from the settings is used (after the URL policy) since no secret rides on it.
        let base = match saved_base {
            Some(u) => (u, Source::Settings),
            None => operator_or_default(),
        };
        (String::new(), Source::Default, base)
    } else {
        (String::new(), Source::Default, operator_or_default())
    };
    Ok(ProviderTarget { key, key_source, model: text("model"), base_url, base_source })
}

/// The redaction switch ingest reads, cached per worker.
#[derive(Default)]
pub struct RedactCache(Mutex<Option<(Instant, bool)>>);

impl RedactCache {
    /// Whether payloads must be dropped; a failure to read the settings redacts (fail closed).
    pub async fn redact(&self, state: &AppState) -> bool {
        if state.config.redact_payloads {
            return true;
        }
        if let Some((at, v)) = self.0.lock().ok().and_then(|c| *c) {
            if at.elapsed() < CACHE_TTL {
                return v;
            }
        }
        let v = match load(state).await {
            Ok(doc) => doc.get("redact_payloads").and_then(Value::as_bool).unwrap_or(false),
            Err(e) => {
                tracing::warn!(error = %e, "settings unreadable: redacting payloads");
                return true;
            }
        };
        if let Ok(mut c) = self.0.lock() {
            *c = Some((Instant::now(), v));
        }
        v
    }

    pub fn invalidate(&self) {
        if let Ok(mut c) = self.0.lock() {
            *c = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_only_with_the_right_secret() {
        let sealed = seal("sk-ant-0123456789", Some("s3cret"));
        assert!(sealed.starts_with(ENCRYPTED) && !sealed.contains("sk-ant"));
        assert_ne!(sealed, seal("sk-ant-0123456789", Some("s3cret")), "a fresh nonce each time");
        assert_eq!(open(&sealed, Some("s3cret")).unwrap(), "sk-ant-0123456789");
        assert!(matches!(open(&sealed, Some("other")), Err(OpenError::WrongKey)));
        assert!(matches!(open(&sealed, None), Err(OpenError::NoKey)));
        assert_eq!(seal("plain", None), "plain");
        assert_eq!(open("plain", Some("s3cret")).unwrap(), "plain");
    }

    #[test]
    fn masks_like_the_original() {
        assert_eq!(mask(""), "");
        assert_eq!(mask("12345678"), "*masked*");
        assert_eq!(mask("sk-ant-0123456789"), "sk-a...6789");
    }
}
