//! `LANGSIGHT_REDIS_URL`: `RedisUrl::parse` over arbitrary text. Beyond "never panics": what it accepts
//! round-trips (written back as a URL with every credential byte percent-encoded, it parses to the same
//! value), hosts are plain names or addresses (no whitespace, brackets or separators inside), the logged
//! form (`redacted`, `Display`, `Debug`) never depends on the password, and the redacted form parses back to
//! the same topology.
#![no_main]

use langsight_shared::url::{Credentials, RedisUrl, Topology};
use libfuzzer_sys::fuzz_target;

fn pct(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn host(h: &str, port: u16) -> String {
    if h.contains(':') {
        format!("[{h}]:{port}")
    } else {
        format!("{h}:{port}")
    }
}

fn hosts(v: &[(String, u16)]) -> String {
    v.iter().map(|(h, p)| host(h, *p)).collect::<Vec<_>>().join(",")
}

/// The full URL, credentials included.
fn render(u: &RedisUrl) -> String {
    let s = if u.tls { "s" } else { "" };
    let userinfo = match (&u.credentials.username, &u.credentials.password) {
        (None, None) => String::new(),
        (user, None) => format!("{}@", pct(user.as_deref().unwrap_or(""))),
        (user, Some(pw)) => format!("{}:{}@", pct(user.as_deref().unwrap_or("")), pct(pw)),
    };
    match &u.topology {
        Topology::Standalone { host: h, port, db } => format!("redis{s}://{userinfo}{}/{db}", host(h, *port)),
        Topology::Sentinel { sentinels, master, db } => {
            format!("redis{s}+sentinel://{userinfo}{}/{master}/{db}", hosts(sentinels))
        }
        Topology::Cluster { nodes } => format!("redis{s}+cluster://{userinfo}{}", hosts(nodes)),
    }
}

fn assert_plain_host(h: &str) {
    assert!(!h.is_empty(), "empty host accepted");
    assert!(!h.chars().any(|c| c.is_whitespace() || c.is_control() || "[]/@,".contains(c)), "host {h:?} accepted");
    if h.contains(':') {
        let addr = h.split('%').next().unwrap_or("");
        assert!(addr.parse::<std::net::Ipv6Addr>().is_ok(), "host {h:?} has a ':' but is not an IPv6 address");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(u) = RedisUrl::parse(raw) else { return };

    match &u.topology {
        Topology::Standalone { host, .. } => assert_plain_host(host),
        Topology::Sentinel { sentinels, master, .. } => {
            sentinels.iter().for_each(|(h, _)| assert_plain_host(h));
            assert!(!master.is_empty() && !master.contains('/'));
        }
        Topology::Cluster { nodes } => nodes.iter().for_each(|(h, _)| assert_plain_host(h)),
    }

    let full = render(&u);
    let again = RedisUrl::parse(&full).unwrap_or_else(|e| panic!("{raw:?} accepted, but not as {full:?}: {e}"));
    assert_eq!(again, u, "{raw:?} written back as {full:?}");

    let logged = u.redacted();
    let from_log = RedisUrl::parse(&logged).unwrap_or_else(|e| panic!("redacted {logged:?} does not parse: {e}"));
    assert_eq!(from_log.topology, u.topology, "redacted {logged:?} names another topology");
    assert_eq!(from_log.tls, u.tls);

    if u.credentials.password.is_some() {
        let mut other = u.clone();
        other.credentials = Credentials { password: Some("\u{1}other".into()), ..u.credentials.clone() };
        assert_eq!(format!("{u:?}"), format!("{other:?}"), "Debug shows the password");
        assert_eq!(u.to_string(), other.to_string(), "Display shows the password");
        assert_eq!(u.redacted(), other.redacted());
    }
});
