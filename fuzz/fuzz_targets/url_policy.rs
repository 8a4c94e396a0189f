//! The outbound URL policy (SSRF rules for MCP and webhook URLs set through the API), without DNS: the
//! fuzzer also plays the resolver. Input: one flag byte (bit 0 webhook, bit 1 private networks allowed,
//! bit 2 unresolvable names allowed, bit 3 the lookup fails, bits 4..7 how many addresses it answers), then
//! each address (a tag byte, even for IPv4 (4 bytes), odd for IPv6 (16 bytes)), then the URL.
//!
//! Invariants, judged by an oracle written independently of the policy: an allowed URL is http(s); never
//! connects to a cloud-metadata, unspecified or multicast address, nor (unless private networks are allowed)
//! to a loopback, private or link-local one — including IPv4 addresses carried inside IPv6 (mapped,
//! compatible, NAT64, 6to4); it connects to exactly the literal address or the resolver's answer; its host is
//! never a metadata name; MCP and webhook URLs get the same verdict.
#![no_main]

use langsight_server::url_policy::{check_with, Checked, Purpose, UrlRejected};
use libfuzzer_sys::fuzz_target;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll, Waker};

/// Runs the check with `answer` as the resolver's reply. The policy awaits nothing but the resolver, which
/// answers at once, so one poll finishes it.
fn judge(
    raw: &str,
    purpose: Purpose,
    allow_private: bool,
    allow_unresolvable: bool,
    answer: &Option<Vec<IpAddr>>,
) -> (Result<Checked, UrlRejected>, Option<(String, u16)>) {
    let asked = std::cell::RefCell::new(None);
    let result = {
        let fut = check_with(raw, purpose, allow_private, allow_unresolvable, |name: String, port: u16| {
            *asked.borrow_mut() = Some((name, port));
            let reply = match answer {
                Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
                None => Err(std::io::Error::other("no such host")),
            };
            std::future::ready(reply)
        });
        let mut fut = std::pin::pin!(fut);
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("the URL policy awaited something other than the resolver"),
        }
    };
    (result, asked.into_inner())
}

/// IPv4 addresses an IPv6 address carries (and the IPv4 address itself).
fn carried_v4(ip: IpAddr) -> Vec<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => vec![v4],
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let o = v6.octets();
            let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
            let mut out = Vec::new();
            if s[..5] == [0; 5] && (s[5] == 0xffff || (s[5] == 0 && !(s[6] == 0 && s[7] <= 1))) {
                out.push(last); // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible; not :: or ::1)
            }
            if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
                out.push(last); // ::ffff:0:a.b.c.d (SIIT)
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                out.push(last); // NAT64 well-known prefix
            }
            if s[0] == 0x2002 {
                out.push(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 6to4
            }
            out
        }
    }
}

fn metadata_v4(ip: Ipv4Addr) -> bool {
    [[169, 254, 169, 254], [100, 100, 100, 200], [192, 0, 0, 192]].contains(&ip.octets())
}

/// Never to be contacted, whatever the switches say.
fn forbidden(ip: IpAddr) -> bool {
    let v6_forbidden = match ip {
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) || v6.is_unspecified() || v6.is_multicast()
        }
        IpAddr::V4(_) => false,
    };
    v6_forbidden || carried_v4(ip).into_iter().any(|v4| metadata_v4(v4) || v4.is_unspecified() || v4.is_multicast())
}

/// Only with private networks allowed.
fn private(ip: IpAddr) -> bool {
    let v6_private = match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
        IpAddr::V4(_) => false,
    };
    v6_private || carried_v4(ip).into_iter().any(|v4| v4.is_loopback() || v4.is_private() || v4.is_link_local())
}

fn metadata_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "metadata" || h == "instance-data" || h.ends_with(".internal")
}

fn parse_input(data: &[u8]) -> Option<(u8, Option<Vec<IpAddr>>, &str)> {
    let (&flags, mut rest) = data.split_first()?;
    let mut ips = Vec::new();
    for _ in 0..(flags >> 4) {
        let (&tag, r) = rest.split_first()?;
        let n = if tag % 2 == 0 { 4 } else { 16 };
        let bytes = r.get(..n)?;
        ips.push(match n {
            4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap()),
            _ => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap()),
        });
        rest = &r[n..];
    }
    let answer = (flags & 8 == 0).then_some(ips);
    Some((flags, answer, std::str::from_utf8(rest).ok()?))
}

fuzz_target!(|data: &[u8]| {
    let Some((flags, answer, raw)) = parse_input(data) else { return };
    let purpose = if flags & 1 == 0 { Purpose::McpServer } else { Purpose::Webhook };
    let allow_private = flags & 2 != 0;
    let allow_unresolvable = flags & 4 != 0;
    let (result, asked) = judge(raw, purpose, allow_private, allow_unresolvable, &answer);

    let other = if purpose == Purpose::McpServer { Purpose::Webhook } else { Purpose::McpServer };
    let (other_result, _) = judge(raw, other, allow_private, allow_unresolvable, &answer);
    assert_eq!(result.is_ok(), other_result.is_ok(), "MCP and webhook URLs judged differently: {raw:?}");

    let Ok(checked) = result else { return };
    let url = url::Url::parse(raw.trim()).expect("an allowed URL parses");
    assert!(matches!(url.scheme(), "http" | "https"), "scheme {} allowed", url.scheme());
    assert_eq!(checked.url, url);
    let port = url.port_or_known_default().expect("http(s) has a default port");
    for a in &checked.addrs {
        assert_eq!(a.port(), port);
        assert!(!forbidden(a.ip()), "{raw:?} allowed to reach {}", a.ip());
        assert!(allow_private || !private(a.ip()), "{raw:?} allowed to reach private {}", a.ip());
    }
    match url.host().expect("an allowed URL has a host") {
        url::Host::Ipv4(ip) => {
            assert!(asked.is_none(), "an IP literal was looked up");
            assert_eq!(checked.addrs, vec![SocketAddr::new(ip.into(), port)]);
        }
        url::Host::Ipv6(ip) => {
            assert!(asked.is_none(), "an IP literal was looked up");
            assert_eq!(checked.addrs, vec![SocketAddr::new(ip.into(), port)]);
        }
        url::Host::Domain(d) => {
            assert!(!d.is_empty());
            assert!(!metadata_name(d), "metadata host name {d:?} allowed");
            let name = d.trim_end_matches('.').to_ascii_lowercase();
            assert!(
                allow_private || !(name == "localhost" || name.ends_with(".localhost")),
                "localhost allowed without private networks: {raw:?}"
            );
            let (asked_name, asked_port) = asked.expect("a host name was not looked up");
            assert_eq!((asked_name.as_str(), asked_port), (name.as_str(), port));
            let expected: Vec<SocketAddr> = answer.iter().flatten().map(|ip| SocketAddr::new(*ip, port)).collect();
            assert_eq!(checked.addrs, expected, "connects elsewhere than the resolver's answer");
            assert!(allow_unresolvable || !checked.addrs.is_empty(), "an unresolvable name allowed");
        }
    }
});
