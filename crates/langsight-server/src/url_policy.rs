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
    /// The URL's host exactly as an HTTP client looks it up (`Url::host_str`, so `example.com.` keeps its dot):
    /// the name the addresses are pinned to. A pin under any other spelling would be missed by the client,
    /// which would then resolve the name afresh.
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// Public unicast: allowed.
    Public,
    /// Loopback, RFC 1918, link-local, unique-local, shared (CGNAT), documentation and reserved ranges.
    Private,
    /// Never allowed: cloud metadata, unspecified, multicast, broadcast.
    Forbidden,
}

/// AWS's IPv6 metadata endpoint.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v6(v6: Ipv6Addr) -> Class {
    if v6 == AWS_METADATA_V6 || v6.is_unspecified() || v6.is_multicast() {
        return Class::Forbidden;
    }
    if v6.is_loopback() {
        return Class::Private;
    }
    if let Some(class) = classify_embedded_v4(v6) {
        return class;
    }
    let seg = v6.segments();
    let private = (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF protocol assignments 2001::/23
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard 100::/64
        || (seg[0] & 0xff00) == 0; // the rest of ::/8, reserved by the IETF
    if private {
        Class::Private
    } else {
        Class::Public
    }
}

/// The class of an IPv6 address that carries an IPv4 address — translation (NAT64, SIIT) and tunnelling
/// (6to4, Teredo) forms, IPv4-mapped and IPv4-compatible — or `None` for any other address.
///
/// A packet to such an address ends at (or is steered by) the IPv4 address inside: `64:ff9b::a9fe:a9fe`
/// reaches 169.254.169.254 through a NAT64 gateway, `2002:7f00:1::` is 127.0.0.1's 6to4 site. So the
/// address gets the class of the IPv4 it carries (the worst of the two a Teredo address carries), and forms
/// that are not globally routable themselves are never better than private.
fn classify_embedded_v4(v6: Ipv6Addr) -> Option<Class> {
    let seg = v6.segments();
    let o = v6.octets();
    let at = |i: usize| Ipv4Addr::new(o[i], o[i + 1], o[i + 2], o[i + 3]);
    let last32 = at(12);
    // ::ffff:0:0/96, IPv4-mapped: a dual-stack socket connects to the IPv4 address itself.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(classify_v4(v4));
    }
    // 64:ff9b::/96, the NAT64 well-known prefix (RFC 6052): the translator forwards to the last 32 bits.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(classify_v4(last32));
    }
    // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): not global, and the IPv4 address sits where the network's
    // prefix length (/48 … /96) puts it. Judged at /96 (the usual choice); a cloud-metadata address at any
    // other RFC 6052 position is refused too.
    if seg[..3] == [0x64, 0xff9b, 1] {
        let others = [
            Ipv4Addr::new(o[6], o[7], o[9], o[10]),  // /48
            Ipv4Addr::new(o[7], o[9], o[10], o[11]), // /56
            at(9),                                   // /64
        ];
        let metadata = others.into_iter().any(is_metadata_v4);
        let class = if metadata { Class::Forbidden } else { classify_v4(last32) };
        return Some(class.max(Class::Private));
    }
    // 2002::/16, 6to4: the IPv4 address of the site's relay in bits 16..48.
    if seg[0] == 0x2002 {
        return Some(classify_v4(at(2)));
    }
    // 2001::/32, Teredo (RFC 4380): the server's IPv4 address in bits 32..64 and the client's, inverted, in
    // the last 32 bits. Both are contacted; the worse decides, and the range stays at least private (it lies in
    // the IETF protocol block 2001::/23).
    if seg[..2] == [0x2001, 0] {
        let client = Ipv4Addr::from(!u32::from(last32));
        return Some(classify_v4(at(4)).max(classify_v4(client)).max(Class::Private));
    }
    // ::ffff:0:0:0/96, IPv4-translated (RFC 2765, SIIT), and ::/96, IPv4-compatible (deprecated): neither is
    // routable as IPv6, so at least private.
    if seg[..6] == [0, 0, 0, 0, 0xffff, 0] || seg[..6] == [0, 0, 0, 0, 0, 0] {
        return Some(classify_v4(last32).max(Class::Private));
    }
    None
}

/// Cloud metadata: AWS/GCP/Azure 169.254.169.254, Alibaba 100.100.100.200, Oracle 192.0.0.192.
fn is_metadata_v4(ip: Ipv4Addr) -> bool {
    ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(192, 0, 0, 192)
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let o = ip.octets();
    if is_metadata_v4(ip) {
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
    check_with(raw, purpose, allow_private, allow_unresolvable, system_lookup).await
}

/// The system resolver's answer for `name`.
pub async fn system_lookup(name: String, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    tokio::net::lookup_host((name.as_str(), port)).await.map(|a| a.collect())
}

/// [`check`] with the name lookup given: tests answer it themselves, to prove that a connection goes to the
/// addresses judged here and not to a second lookup's answer (DNS rebinding).
pub async fn check_with<F, Fut>(
    raw: &str,
    purpose: Purpose,
    allow_private: bool,
    allow_unresolvable: bool,
    resolve: F,
) -> Result<Checked, UrlRejected>
where
    F: FnOnce(String, u16) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Vec<SocketAddr>>>,
{
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
            let host = url.host_str().unwrap_or_default().to_string();
            return Ok(Checked { host, addrs: vec![SocketAddr::new(IpAddr::V4(ip), port)], url });
        }
        url::Host::Ipv6(ip) => {
            judge(IpAddr::V6(ip), allow_private, purpose)?;
            let host = url.host_str().unwrap_or_default().to_string();
            return Ok(Checked { host, addrs: vec![SocketAddr::new(IpAddr::V6(ip), port)], url });
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
    let resolved = resolve(name.clone(), port).await;
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
    let host = url.host_str().unwrap_or(&name).to_string();
    Ok(Checked { url, host, addrs })
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

    /// What `url` gets for each purpose, with and without private networks allowed: `"ok"`, `"private"` or
    /// `"metadata"` (refused whatever the switch says). Both purposes must agree.
    async fn verdict(url: &str) -> (&'static str, &'static str) {
        let mut seen = Vec::new();
        for purpose in [Purpose::McpServer, Purpose::Webhook] {
            let mut pair = ["", ""];
            for (i, allow) in [false, true].into_iter().enumerate() {
                pair[i] = match check(url, purpose, allow, false).await {
                    Ok(_) => "ok",
                    Err(UrlRejected::Private(_, switch)) => {
                        assert_eq!(switch, purpose.switch(), "{url}");
                        "private"
                    }
                    Err(UrlRejected::Reserved(_)) => "metadata",
                    Err(e) => panic!("{url}: unexpected refusal {e}"),
                };
            }
            seen.push((pair[0], pair[1]));
        }
        assert_eq!(seen[0], seen[1], "{url}: MCP and webhook URLs are judged alike");
        seen[0]
    }

    const METADATA: (&str, &str) = ("metadata", "metadata");
    const PRIVATE: (&str, &str) = ("private", "ok");
    const PUBLIC: (&str, &str) = ("ok", "ok");

    #[tokio::test]
    async fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_that_address() {
        let cases = [
            // NAT64 well-known prefix 64:ff9b::/96: the IPv4 address is the last 32 bits.
            ("http://[64:ff9b::a9fe:a9fe]/", METADATA),
            ("http://[64:ff9b::169.254.169.254]:8080/x", METADATA),
            ("http://[64:ff9b::6464:64c8]/", METADATA), // 100.100.100.200
            ("http://[64:ff9b::7f00:1]/", PRIVATE),
            ("http://[64:ff9b::a00:1]/", PRIVATE),
            ("http://[64:ff9b::808:808]/", PUBLIC),
            // Local-use NAT64 64:ff9b:1::/48: never public, metadata at any RFC 6052 position.
            ("http://[64:ff9b:1::a9fe:a9fe]/", METADATA),
            ("http://[64:ff9b:1:a9fe:a9:fe00::]/", METADATA), // /48 layout
            ("http://[64:ff9b:1:ffa9:fe:a9fe::]/", METADATA), // /56 layout
            ("http://[64:ff9b:1:0:a9:fea9:fe00:0]/", METADATA), // /64 layout
            ("http://[64:ff9b:1::808:808]/", PRIVATE),
            // 6to4 2002::/16: the IPv4 address in bits 16..48.
            ("http://[2002:7f00:1::]/", PRIVATE),
            ("http://[2002:c0a8:101::1]/", PRIVATE), // 192.168.1.1
            ("http://[2002:a9fe:a9fe::1]/", METADATA),
            ("http://[2002:808:808::1]/", PUBLIC),
            // IPv4-mapped ::ffff:0:0/96.
            ("http://[::ffff:169.254.169.254]/", METADATA),
            ("http://[::ffff:127.0.0.1]/", PRIVATE),
            ("http://[::ffff:8.8.8.8]/", PUBLIC),
            // IPv4-compatible ::/96 (deprecated): at least private.
            ("http://[::169.254.169.254]/", METADATA),
            ("http://[::10.0.0.1]/", PRIVATE),
            ("http://[::8.8.8.8]/", PRIVATE),
            // IPv4-translated ::ffff:0:0:0/96 (SIIT): at least private (it used to pass as public).
            ("http://[::ffff:0:a9fe:a9fe]/", METADATA),
            ("http://[::ffff:0:7f00:1]/", PRIVATE),
            ("http://[::ffff:0:808:808]/", PRIVATE),
            // Teredo 2001::/32: server IPv4 in bits 32..64, client IPv4 inverted in the last 32; the worse wins.
            ("http://[2001:0:a9fe:a9fe::f7f7:f7f7]/", METADATA), // server 169.254.169.254, client 8.8.8.8
            ("http://[2001:0:808:808::5601:5601]/", METADATA),   // server 8.8.8.8, client 169.254.169.254
            ("http://[2001:0:808:808::80ff:fffe]/", PRIVATE),    // client 127.0.0.1
            ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", PRIVATE), // RFC 4380's example (client 192.0.2.45)
            ("http://[2001:0:808:808::fefe:fefe]/", PRIVATE),    // both public: still the IETF block
            // Loopback and unspecified keep their own classes (not read as ::0.0.0.1 / ::0.0.0.0).
            ("http://[::1]/", PRIVATE),
            ("http://[::]/", METADATA),
            // An ordinary global address is untouched.
            ("http://[2606:4700::1111]/", PUBLIC),
        ];
        for (url, want) in cases {
            assert_eq!(verdict(url).await, want, "{url}");
        }
        let e = rejects("http://[64:ff9b::a9fe:a9fe]/", true).await;
        assert!(e.contains("cloud-metadata"), "{e}");
    }

    #[tokio::test]
    async fn a_name_resolving_to_an_embedding_form_is_judged_by_the_ipv4_inside() {
        let answer = |ip: &'static str| {
            move |_: String, port: u16| async move { Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)]) }
        };
        for (ip, allow) in [("64:ff9b::a9fe:a9fe", true), ("2002:7f00:1::", false), ("::ffff:0:a9fe:a9fe", true)] {
            let e = check_with("http://rebind.example/hook", Purpose::Webhook, allow, false, answer(ip))
                .await
                .expect_err(ip);
            assert!(matches!(e, UrlRejected::ResolvesBlocked { .. }), "{ip}: {e}");
        }
        let ok = check_with("http://nat64.example:81/", Purpose::McpServer, false, false, answer("64:ff9b::808:808"))
            .await
            .unwrap();
        assert_eq!(ok.addrs, vec!["[64:ff9b::808:808]:81".parse().unwrap()]);
    }

    #[tokio::test]
    async fn the_pinned_host_is_the_name_the_client_looks_up() {
        // A trailing dot is another name to a resolver override: the pin must carry it, or the client would
        // miss the pin and look the name up again.
        let c = check("http://LocalHost.:9/x", Purpose::McpServer, true, false).await.unwrap();
        assert_eq!(c.host, "localhost.");
        assert_eq!(c.host, c.url.host_str().unwrap_or_default());
        let c = check("http://[::1]:9/x", Purpose::McpServer, true, false).await.unwrap();
        assert_eq!((c.host.as_str(), c.addrs), ("[::1]", vec!["[::1]:9".parse().unwrap()]));
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
