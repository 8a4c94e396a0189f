//! Which URLs the server may be told to contact: the SSRF rules for MCP server URLs and webhook URLs that
//! arrive through the API. URLs from the operator's YAML or environment are trusted as given and never pass
//! through here.
//!
//! One rule set for both, with one switch each (`LANGSIGHT_ALLOW_PRIVATE_MCP_URLS`,
//! `LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS`) that lifts the private-range rule for private networks and tests.
//! Cloud-metadata endpoints stay blocked whatever the switch says: they hand out credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a URL was refused; the text is shown to the caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRejected {
    #[error("URL is not valid: {0}")]
    Invalid(String),
    #[error("URL scheme must be http or https, got: '{0}'")]
    Scheme(String),
    #[error("URL has no hostname")]
    NoHost,
    #[error("blocked hostname: '{0}' (cloud metadata and internal names are never allowed)")]
    MetadataHost(String),
    #[error(
        "'{0}' is a local or private address; set {1}=true to allow private networks (never cloud metadata addresses)"
    )]
    Private(String, &'static str),
    #[error("URL must not target a reserved or cloud-metadata address: {0}")]
    Reserved(IpAddr),
    #[error("hostname '{host}' resolves to a blocked address: {ip}{hint}")]
    ResolvesBlocked { host: String, ip: IpAddr, hint: String },
    #[error("hostname '{0}' could not be resolved")]
    Unresolvable(String),
}

/// What a URL is for: names the switch that would allow private targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    McpServer,
    Webhook,
}

impl Purpose {
    fn switch(self) -> &'static str {
        match self {
            Purpose::McpServer => "LANGSIGHT_ALLOW_PRIVATE_MCP_URLS",
            Purpose::Webhook => "LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS",
        }
    }
}

/// A URL that passed the rules, with the addresses it resolved to (connect to these, not a fresh lookup, so a
/// DNS answer that changes after the check cannot redirect us).
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: reqwest::Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Never allowed: cloud metadata, unspecified, multicast, broadcast.
    Forbidden,
    /// Loopback, RFC 1918, link-local, unique-local, shared (CGNAT), documentation and reserved ranges.
    Private,
    Public,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg = v6.segments();
            // AWS's IPv6 metadata endpoint.
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                return Class::Forbidden;
            }
            if v6.is_unspecified() || v6.is_multicast() {
                return Class::Forbidden;
            }
            let private = v6.is_loopback()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF protocol assignments 2001::/23
                || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard 100::/64
                || (seg[0] == 0 && seg[1..5] == [0, 0, 0, 0] && seg[5] == 0); // ::/96 (IPv4-compatible)
            if private {
                Class::Private
            } else {
                Class::Public
            }
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    // Cloud metadata: AWS/GCP/Azure 169.254.169.254, Alibaba 100.100.100.200, Oracle 192.0.0.192.
    if ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(192, 0, 0, 192)
    {
        return Class::Forbidden;
    }
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || o[0] == 0 {
        return Class::Forbidden;
    }
    let private = ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24
        || ip.is_documentation()
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240; // reserved 240/4
    if private {
        Class::Private
    } else {
        Class::Public
    }
}

fn metadata_host(host: &str) -> bool {
    host == "metadata.google.internal"
        || host == "metadata.internal"
        || host.ends_with(".internal")
        || host == "metadata"
        || host == "instance-data"
}

fn judge(ip: IpAddr, allow_private: bool, purpose: Purpose) -> Result<(), UrlRejected> {
    match classify(ip) {
        Class::Forbidden => Err(UrlRejected::Reserved(ip)),
        Class::Private if !allow_private => Err(UrlRejected::Private(ip.to_string(), purpose.switch())),
        _ => Ok(()),
    }
}

/// Checks `raw` against the rules, resolving its hostname. `allow_unresolvable` keeps a name that does not
/// resolve here (metadata saved for a network this server cannot see); contacting it later checks again.
pub async fn check(
    raw: &str,
    purpose: Purpose,
    allow_private: bool,
    allow_unresolvable: bool,
) -> Result<Checked, UrlRejected> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| UrlRejected::Invalid(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(UrlRejected::Scheme(url.scheme().to_string()));
    }
    let host = match url.host() {
        None => return Err(UrlRejected::NoHost),
        Some(url::Host::Domain("")) => return Err(UrlRejected::NoHost),
        Some(h) => h.to_owned(),
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let name = match host {
        url::Host::Ipv4(ip) => {
            judge(IpAddr::V4(ip), allow_private, purpose)?;
            return Ok(Checked { host: ip.to_string(), addrs: vec![SocketAddr::new(IpAddr::V4(ip), port)], url });
        }
        url::Host::Ipv6(ip) => {
            judge(IpAddr::V6(ip), allow_private, purpose)?;
            return Ok(Checked { host: ip.to_string(), addrs: vec![SocketAddr::new(IpAddr::V6(ip), port)], url });
        }
        url::Host::Domain(d) => d.to_ascii_lowercase(),
    };
    let name = name.trim_end_matches('.').to_string();
    if metadata_host(&name) {
        return Err(UrlRejected::MetadataHost(name));
    }
    if (name == "localhost" || name.ends_with(".localhost")) && !allow_private {
        return Err(UrlRejected::Private(name, purpose.switch()));
    }
    let resolved = tokio::net::lookup_host((name.as_str(), port)).await.map(|a| a.collect::<Vec<SocketAddr>>());
    let addrs = match resolved {
        Ok(a) => a,
        Err(_) if allow_unresolvable => Vec::new(),
        Err(_) => return Err(UrlRejected::Unresolvable(name)),
    };
    if addrs.is_empty() && !allow_unresolvable {
        return Err(UrlRejected::Unresolvable(name));
    }
    for a in &addrs {
        if let Err(e) = judge(a.ip(), allow_private, purpose) {
            let hint = match e {
                UrlRejected::Private(..) => format!("; set {}=true to allow private networks", purpose.switch()),
                _ => String::new(),
            };
            return Err(UrlRejected::ResolvesBlocked { host: name, ip: a.ip(), hint });
        }
    }
    Ok(Checked { url, host: name, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rejects(url: &str, allow_private: bool) -> String {
        check(url, Purpose::Webhook, allow_private, false).await.expect_err(url).to_string()
    }

    #[tokio::test]
    async fn the_usual_attacks_are_refused() {
        assert!(rejects("ftp://example.com/x", false).await.contains("scheme must be http or https, got: 'ftp'"));
        assert!(rejects("http://169.254.169.254/latest/meta-data", false).await.contains("cloud-metadata"));
        // Cloud metadata stays blocked even when private networks are allowed.
        assert!(rejects("http://169.254.169.254/", true).await.contains("cloud-metadata"));
        assert!(rejects("http://[fd00:ec2::254]/", true).await.contains("cloud-metadata"));
        assert!(rejects("http://metadata.google.internal/", true).await.contains("blocked hostname"));
        let local = rejects("http://localhost:8080/hook", false).await;
        assert!(local.contains("LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS=true"), "{local}");
        for private in [
            "http://10.1.2.3/",
            "http://127.0.0.1/",
            "http://192.168.1.1/",
            "http://172.20.0.1/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://100.64.0.1/",
        ] {
            assert!(rejects(private, false).await.contains("private"), "{private}");
        }
        assert!(rejects("http://0.0.0.0/", true).await.contains("reserved"));
        assert!(rejects("http://no-such-host.invalid/", false).await.contains("could not be resolved"));
        // A name that resolves to a private address is judged by the address.
        let named = rejects("http://localtest.localhost/", false).await;
        assert!(named.contains("private"), "{named}");
    }

    #[tokio::test]
    async fn allowed_targets_pass_with_their_addresses() {
        let c = check("http://127.0.0.1:9/x", Purpose::McpServer, true, false).await.unwrap();
        assert_eq!(c.addrs, vec!["127.0.0.1:9".parse().unwrap()]);
        let c = check("http://localhost:9/x", Purpose::McpServer, true, false).await.unwrap();
        assert!(!c.addrs.is_empty() && c.addrs.iter().all(|a| a.ip().is_loopback()));
        assert!(check("https://93.184.215.14/x", Purpose::Webhook, false, false).await.is_ok());
        // Unresolvable names may be kept for later (metadata), and are then checked again at use.
        assert!(check("http://no-such-host.invalid/", Purpose::McpServer, false, true).await.is_ok());
        let e = check("http://10.0.0.1/", Purpose::McpServer, false, false).await.unwrap_err().to_string();
        assert!(e.contains("LANGSIGHT_ALLOW_PRIVATE_MCP_URLS=true"), "{e}");
    }
}
