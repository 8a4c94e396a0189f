//! `LANGSIGHT_REDIS_URL`: the five accepted forms, parsed once at start-up.
//!
//! - `redis://[[user]:password@]host[:port][/db]`
//! - `rediss://…` (TLS; `LANGSIGHT_REDIS_CA_FILE` for a private CA)
//! - `redis+sentinel://[:password@]h1:26379,h2:26379,h3:26379/master[/db]` (also `rediss+sentinel://`)
//! - `redis+cluster://[:password@]n1:6379,n2:6379,n3:6379` (also `rediss+cluster://`)
//!
//! The password is kept out of every `Display`/`Debug`, so the URL can be logged.

use std::fmt;

pub const ACCEPTED_FORMS: &str = "redis://[:password@]host[:port][/db], rediss://[:password@]host[:port][/db], \
    redis+sentinel://[:password@]host1:26379,host2:26379/master_name[/db], \
    redis+cluster://[:password@]node1:6379,node2:6379,node3:6379";

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: {} }}",
            self.username,
            if self.password.is_some() { "***" } else { "none" }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Standalone { host: String, port: u16, db: i64 },
    Sentinel { sentinels: Vec<(String, u16)>, master: String, db: i64 },
    Cluster { nodes: Vec<(String, u16)> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub tls: bool,
    pub topology: Topology,
    pub credentials: Credentials,
}

#[derive(Debug, thiserror::Error)]
#[error("LANGSIGHT_REDIS_URL is invalid: {reason}. Accepted forms: {ACCEPTED_FORMS}")]
pub struct UrlError {
    pub reason: String,
}

fn err(reason: impl Into<String>) -> UrlError {
    UrlError { reason: reason.into() }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn host_port(s: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    if s.is_empty() {
        return Err(err("a host is missing"));
    }
    // [v6]:port, host:port, host
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| err(format!("unclosed '[' in '{s}'")))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| err(format!("'{after}' after ']' in '{s}'")))?),
        };
        (h.to_string(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(err(format!("'{s}' has no host")));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || "[]/@,".contains(c)) {
        return Err(err(format!("{host:?} is not a host name or address")));
    }
    // A ':' in a host is only an IPv6 address's (with an optional zone: fe80::1%eth0).
    if host.contains(':') && host.split('%').next().unwrap_or("").parse::<std::net::Ipv6Addr>().is_err() {
        return Err(err(format!("'{s}' is not host:port; write an IPv6 address in brackets ([::1]:6379)")));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| err(format!("'{p}' is not a port number")))?,
        None => default_port,
    };
    Ok((host, port))
}

fn parse_db(s: &str) -> Result<i64, UrlError> {
    s.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| err(format!("'{s}' is not a database number")))
}

impl RedisUrl {
    pub fn parse(raw: &str) -> Result<RedisUrl, UrlError> {
        let raw = raw.trim();
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| err("it has no scheme (redis://…)"))?;
        let (tls, kind) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, "standalone"),
            "rediss" => (true, "standalone"),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            other => return Err(err(format!("unknown scheme '{other}'"))),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => Credentials { username: None, password: None },
            Some(u) => {
                let (user, pw) = match u.split_once(':') {
                    Some((user, pw)) => (user, Some(pw)),
                    None => (u, None),
                };
                Credentials {
                    username: Some(percent_decode(user)).filter(|s| !s.is_empty()),
                    password: pw.map(percent_decode).filter(|s| !s.is_empty()),
                }
            }
        };
        let path = path.trim_end_matches('/');
        let topology = match kind {
            "standalone" => {
                if hosts.contains(',') {
                    return Err(err("several hosts need redis+sentinel:// or redis+cluster://"));
                }
                let (host, port) = host_port(hosts, 6379)?;
                let db = if path.is_empty() { 0 } else { parse_db(path)? };
                Topology::Standalone { host, port, db }
            }
            "sentinel" => {
                let sentinels = hosts.split(',').map(|h| host_port(h.trim(), 26379)).collect::<Result<Vec<_>, _>>()?;
                let mut parts = path.split('/');
                let master = parts.next().filter(|m| !m.is_empty()).ok_or_else(|| {
                    err("the sentinel form needs the master name after the hosts (…:26379/mymaster/0)")
                })?;
                let db = match parts.next() {
                    Some(d) if !d.is_empty() => parse_db(d)?,
                    _ => 0,
                };
                if parts.next().is_some() {
                    return Err(err("too many path segments after the master name"));
                }
                Topology::Sentinel { sentinels, master: master.to_string(), db }
            }
            _ => {
                if !path.is_empty() {
                    return Err(err("Redis Cluster has no databases: drop the /db part"));
                }
                let nodes = hosts.split(',').map(|h| host_port(h.trim(), 6379)).collect::<Result<Vec<_>, _>>()?;
                Topology::Cluster { nodes }
            }
        };
        Ok(RedisUrl { tls, topology, credentials })
    }

    /// The URL without credentials, for logs: `redis://host:port`.
    pub fn redacted(&self) -> String {
        // IPv6 addresses in brackets, so the logged form is a URL that names the same hosts.
        let host = |h: &str, p: &u16| if h.contains(':') { format!("[{h}]:{p}") } else { format!("{h}:{p}") };
        let hosts = |v: &[(String, u16)]| v.iter().map(|(h, p)| host(h, p)).collect::<Vec<_>>().join(",");
        let s = if self.tls { "s" } else { "" };
        match &self.topology {
            Topology::Standalone { host: h, port, db } if *db == 0 => format!("redis{s}://{}", host(h, port)),
            Topology::Standalone { host: h, port, db } => format!("redis{s}://{}/{db}", host(h, port)),
            Topology::Sentinel { sentinels, master, db } => {
                format!("redis{s}+sentinel://{}/{master}/{db}", hosts(sentinels))
            }
            Topology::Cluster { nodes } => format!("redis{s}+cluster://{}", hosts(nodes)),
        }
    }

    pub fn topology_name(&self) -> &'static str {
        match (&self.topology, self.tls) {
            (Topology::Standalone { .. }, false) => "standalone",
            (Topology::Standalone { .. }, true) => "tls",
            (Topology::Sentinel { .. }, _) => "sentinel",
            (Topology::Cluster { .. }, _) => "cluster",
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let u = RedisUrl::parse("redis://:s3cret@redis:6379").unwrap();
        assert_eq!(u.topology, Topology::Standalone { host: "redis".into(), port: 6379, db: 0 });
        assert_eq!(u.credentials.password.as_deref(), Some("s3cret"));
        assert_eq!(u.redacted(), "redis://redis:6379");
        assert!(!format!("{u:?}").contains("s3cret"));

        let u = RedisUrl::parse("redis://:pw@redis:6379/3").unwrap();
        assert_eq!(u.topology, Topology::Standalone { host: "redis".into(), port: 6379, db: 3 });
        let u = RedisUrl::parse("rediss://:pw@redis:6380").unwrap();
        assert!(u.tls);
        let u = RedisUrl::parse("redis+sentinel://:pw@s1:26379,s2:26379,s3/mymaster/0").unwrap();
        assert_eq!(
            u.topology,
            Topology::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26379), ("s3".into(), 26379)],
                master: "mymaster".into(),
                db: 0
            }
        );
        assert_eq!(u.redacted(), "redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster/0");
        let u = RedisUrl::parse("redis+cluster://:pw@n1:6379,n2:6379,n3:6379").unwrap();
        assert_eq!(u.topology_name(), "cluster");
        let u = RedisUrl::parse("redis://user:p%40ss@[::1]:7000").unwrap();
        assert_eq!(u.credentials.password.as_deref(), Some("p@ss"));
        assert_eq!(u.topology, Topology::Standalone { host: "::1".into(), port: 7000, db: 0 });
        assert_eq!(u.redacted(), "redis://[::1]:7000");
    }

    #[test]
    fn rejects_bad_urls_with_the_accepted_forms() {
        for bad in [
            "localhost:6379",
            "http://x",
            "redis://",
            "redis://h:notaport",
            "redis://h/x",
            "redis+sentinel://s1:26379",
            "redis+cluster://n1/0",
            "redis://a,b",
            // Found by fuzzing: these used to be accepted as odd hosts or a default port.
            "redis://::1",
            "redis://[::1]6380",
            "redis://a b:6379",
            "redis://h\0:6379",
            "redis+sentinel://[a:b]:1/m",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains("redis+sentinel://") && e.contains("LANGSIGHT_REDIS_URL"), "{bad}: {e}");
        }
    }
}
