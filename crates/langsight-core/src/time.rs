//! Timestamps: microseconds since the Unix epoch, UTC.
//!
//! Stored as a plain integer so every backend (SQLite, PostgreSQL, ClickHouse 18.16) can index and compare it
//! without a datetime type, and rendered on the wire in the formats the original used for each field.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// Parses a timestamp the way pydantic v2 accepts a `datetime`: an ISO-8601 / RFC 3339 string (with `T` or a
/// space, optional fraction, optional `Z` or offset; naive means UTC), or a number of seconds since the epoch
/// (milliseconds when larger than 2e10, as pydantic decides).
pub fn parse_timestamp_str(s: &str) -> Option<Micros> {
    parse_any_str(s).filter(|t| (MIN_MICROS..=MAX_MICROS).contains(t))
}

/// Years 1..=9999: what every backend and renderer handles, and far from integer overflow.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_000_000;

fn parse_any_str(s: &str) -> Option<Micros> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_micros());
    }
    // RFC 3339 with a space separator, or other offset spellings.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_micros());
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(dt.and_utc().timestamp_micros());
        }
        if fmt == "%Y-%m-%d" {
            if let Ok(d) = chrono::NaiveDate::parse_from_str(naive, fmt) {
                return d.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc().timestamp_micros());
            }
        }
    }
    s.parse::<f64>().ok().and_then(parse_timestamp_number)
}

/// Numeric timestamps: seconds, or milliseconds above 2e10 (pydantic's rule).
pub fn parse_timestamp_number(n: f64) -> Option<Micros> {
    if !n.is_finite() {
        return None;
    }
    let secs = if n.abs() > 2e10 { n / 1000.0 } else { n };
    let micros = (secs * 1e6).round();
    // Keep within what chrono can render (years 0..=9999).
    if !(MIN_MICROS as f64..=MAX_MICROS as f64).contains(&micros) {
        return None;
    }
    Some(micros as i64)
}

fn to_datetime(t: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t).unwrap_or_default()
}

/// `date` `sep` `time`, the fraction only when non-zero (as Python prints), then `suffix`. Written by hand:
/// chrono's strftime parses its pattern on every call, which showed in the sessions list's profile.
fn format(t: Micros, sep: char, suffix: &str) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let dt = to_datetime(t);
    let mut out = String::with_capacity(32);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let micros = dt.timestamp_subsec_micros();
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out.push_str(suffix);
    out
}

/// `datetime.isoformat()` of an aware UTC datetime: `2026-03-17T12:00:00.123456+00:00`
/// (the fraction is omitted when zero, as Python does).
pub fn iso_offset(t: Micros) -> String {
    format(t, 'T', "+00:00")
}

/// pydantic's serialisation of an aware UTC datetime: `2026-03-17T12:00:00.123456Z`.
pub fn iso_z(t: Micros) -> String {
    format(t, 'T', "Z")
}

/// `str(datetime)` of an aware UTC datetime: `2026-03-17 12:00:00.123456+00:00`, used by the original for
/// `AgentSession.first_call_at` / `last_call_at`.
pub fn str_datetime(t: Micros) -> String {
    format(t, ' ', "+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        let t = 1_773_748_800_123_000; // 2026-03-17T12:00:00.123Z
        assert_eq!(iso_offset(t), "2026-03-17T12:00:00.123000+00:00");
        assert_eq!(iso_z(t - 123_000), "2026-03-17T12:00:00Z");
        assert_eq!(str_datetime(t + 456), "2026-03-17 12:00:00.123456+00:00");
        assert_eq!(str_datetime(0), "1970-01-01 00:00:00+00:00");
    }

    #[test]
    fn parses_the_forms_pydantic_accepts() {
        let expect = 1_773_748_800_123_000; // 2026-03-17T12:00:00.123Z
        for s in [
            "2026-03-17T12:00:00.123Z",
            "2026-03-17T12:00:00.123+00:00",
            "2026-03-17T13:00:00.123+01:00",
            "2026-03-17 12:00:00.123",
            "2026-03-17T12:00:00.123",
            "2026-03-17 12:00:00.123+00:00",
            "1773748800.123",
        ] {
            assert_eq!(parse_timestamp_str(s), Some(expect), "{s}");
        }
        assert_eq!(parse_timestamp_number(1_773_748_800_123.0), Some(expect));
        assert_eq!(parse_timestamp_str("yesterday"), None);
        assert_eq!(parse_timestamp_str(""), None);
        assert_eq!(parse_timestamp_number(f64::NAN), None);
        assert_eq!(parse_timestamp_number(1e300), None);
        assert_eq!(parse_timestamp_str("-100000-01-01"), None);
        assert_eq!(parse_timestamp_str("+200000-01-01T00:00:00Z"), None);
    }

    #[test]
    fn renders_the_original_formats() {
        let t = 1_773_748_800_123_000;
        assert_eq!(iso_offset(t), "2026-03-17T12:00:00.123000+00:00");
        assert_eq!(iso_z(t), "2026-03-17T12:00:00.123000Z");
        assert_eq!(str_datetime(t), "2026-03-17 12:00:00.123000+00:00");
        assert_eq!(str_datetime(1_773_748_800_000_000), "2026-03-17 12:00:00+00:00");
    }
}
