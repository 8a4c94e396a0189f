//! Query-string parameters with FastAPI's validation answers (422, `loc: ["query", name]`), so a bad
//! `?hours=abc` says which parameter and what range instead of axum's plain-text 400.

use crate::error::ApiError;
use serde_json::json;
use std::collections::HashMap;

pub struct Params(HashMap<String, String>);

/// The query's parameters and the project scope they resolve to for `principal` (`?project_id=`, under the
/// rules of `Principal::scope`): the first step of every project-scoped route.
pub async fn scoped(
    state: &crate::state::AppState,
    principal: &crate::auth::Principal,
    raw: Option<&str>,
) -> Result<(Params, Option<String>), ApiError> {
    let p = Params::parse(raw);
    let project = principal.scope(state, p.text("project_id")).await?;
    Ok((p, project))
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Params(map)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A number parameter within `min..=max`, `default` when absent.
    pub fn float(&self, name: &str, default: f64, min: f64, max: f64) -> Result<f64, ApiError> {
        let Some(raw) = self.0.get(name) else { return Ok(default) };
        let err = |kind: &str, msg: String| {
            ApiError::Unprocessable(json!([{ "type": kind, "loc": ["query", name], "msg": msg, "input": raw }]))
        };
        let n: f64 = raw
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| err("float_parsing", "Input should be a valid number".into()))?;
        if n < min {
            return Err(err("greater_than_equal", format!("Input should be greater than or equal to {min}")));
        }
        if n > max {
            return Err(err("less_than_equal", format!("Input should be less than or equal to {max}")));
        }
        Ok(n)
    }

    /// An integer parameter within `min..=max`, `default` when absent.
    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let Some(raw) = self.0.get(name) else { return Ok(default) };
        let err = |kind: &str, msg: String| {
            ApiError::Unprocessable(json!([{ "type": kind, "loc": ["query", name], "msg": msg, "input": raw }]))
        };
        let n: i64 = raw.trim().parse().map_err(|_| {
            err("int_parsing", "Input should be a valid integer, unable to parse string as an integer".into())
        })?;
        if n < min {
            return Err(err("greater_than_equal", format!("Input should be greater than or equal to {min}")));
        }
        if n > max {
            return Err(err("less_than_equal", format!("Input should be less than or equal to {max}")));
        }
        Ok(n)
    }
}

/// Percent-decoding with `+` as space (form encoding, as browsers and the SDK's `quote` produce).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_validates() {
        let p = Params::parse(Some("agent_name=a%20b+c&hours=48&bad=%zz&end=%4"));
        assert_eq!(p.text("agent_name"), Some("a b c"));
        assert_eq!(p.int("hours", 24, 1, 720).unwrap(), 48);
        assert_eq!(p.int("limit", 50, 1, 1000).unwrap(), 50);
        assert_eq!(p.text("bad"), Some("%zz"));
        assert_eq!(p.text("end"), Some("%4"));
        assert!(Params::parse(Some("hours=0")).int("hours", 24, 1, 720).is_err());
        assert!(Params::parse(Some("hours=x")).int("hours", 24, 1, 720).is_err());
    }
}
