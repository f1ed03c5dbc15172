//! The caller's network address: which one to believe, and whether a client's allow-list
//! contains it.
//!
//! The address is the TCP peer's, unless that peer is a trusted proxy (`server.trusted_proxies`):
//! then it is the right-most `x-forwarded-for` entry that is not itself a trusted proxy, as
//! reverse proxies and meshes append the address they saw. An untrusted peer's header is never
//! read: anyone can send one.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::domain::error::{Error, Result};

/// Most trusted hops walked through; a longer chain of trusted proxies is a loop.
const MAX_HOPS: usize = 32;

/// The same address in one canonical form: an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what
/// a dual-stack socket reports for an IPv4 peer) becomes the IPv4 address.
pub fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

/// Parses one address as a caller names it (`client_address` of `IntrospectRequest`); `field`
/// names it in the error.
pub fn parse_address(field: &str, raw: &str) -> Result<IpAddr> {
    raw.trim()
        .parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| Error::invalid(field, "is not an IPv4 or IPv6 address"))
}

/// Whether `addr` may use a client whose allow-list is `cidrs` (empty: any address).
pub fn allowed(cidrs: &[IpNet], addr: IpAddr) -> bool {
    cidrs.is_empty() || cidrs.iter().any(|net| net.contains(&canonical(addr)))
}

/// Whether `addr` is one of the trusted proxies.
fn trusted(proxies: &[IpNet], addr: IpAddr) -> bool {
    proxies.iter().any(|net| net.contains(&addr))
}

/// The client's address, given the TCP peer, the `x-forwarded-for` header values in the order
/// received (each may hold a comma-separated list) and the trusted proxies.
///
/// The chain is read from the right, one hop at a time, and only as far as the first address
/// that is not a trusted proxy: whatever a client wrote further left is never parsed, so a
/// long, garbled or non-ASCII prefix changes nothing. `None` only when the address cannot be
/// known: no peer (an in-process call), or a trusted proxy that wrote something unreadable or
/// an endless chain of trusted hops. A client with an allow-list is then refused.
pub fn resolve<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if !trusted(proxies, peer) {
        return Some(peer);
    }
    let values: Vec<&str> = forwarded_for.into_iter().collect();
    let hops = values
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(','))
        .filter(|entry| !entry.trim().is_empty());
    // Walk from the nearest hop outwards; the first address not of a trusted proxy is the
    // client. If every hop is a trusted proxy, the farthest one is the client.
    let mut client = peer;
    for (walked, entry) in hops.enumerate() {
        if walked >= MAX_HOPS {
            return None;
        }
        let addr = parse_hop(entry)?;
        client = addr;
        if !trusted(proxies, addr) {
            break;
        }
    }
    Some(client)
}

/// One `x-forwarded-for` entry: an address, optionally with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    entry
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = nets(&["10.0.0.0/8"]);
        let got = resolve(Some(ip("192.0.2.7")), ["203.0.113.9"], &proxies);
        assert_eq!(got, Some(ip("192.0.2.7")));
        assert_eq!(
            resolve(Some(ip("192.0.2.7")), [], &[]),
            Some(ip("192.0.2.7"))
        );
    }

    #[test]
    fn a_trusted_proxy_forwards_the_rightmost_untrusted_hop() {
        let proxies = nets(&["10.0.0.0/8"]);
        let got = resolve(
            Some(ip("10.0.0.1")),
            ["198.51.100.1, 203.0.113.9", "10.2.3.4"],
            &proxies,
        );
        // 10.2.3.4 is another proxy; 203.0.113.9 is who reached it; 198.51.100.1 was claimed
        // by that client and is not believed.
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_read() {
        let proxies = nets(&["10.0.0.0/8", "::1/128"]);
        let got = resolve(Some(ip("::ffff:10.0.0.1")), ["[2001:db8::5]:443"], &proxies);
        assert_eq!(got, Some(ip("2001:db8::5")));
        let got = resolve(Some(ip("::1")), ["192.0.2.1:1234"], &proxies);
        assert_eq!(got, Some(ip("192.0.2.1")));
        assert_eq!(
            resolve(Some(ip("::ffff:192.0.2.1")), [], &[]),
            Some(ip("192.0.2.1"))
        );
    }

    #[test]
    fn a_trusted_proxy_without_a_header_is_the_client_and_garbage_is_unknown() {
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), [], &proxies),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(resolve(Some(ip("10.0.0.1")), ["nonsense"], &proxies), None);
        assert_eq!(resolve(None, ["192.0.2.1"], &proxies), None);
        // An endless chain of trusted hops is unknown...
        let loop_ = vec!["10.0.0.9"; MAX_HOPS + 1].join(",");
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), [loop_.as_str()], &proxies),
            None
        );
    }

    #[test]
    fn what_a_client_writes_left_of_its_own_address_changes_nothing() {
        let proxies = nets(&["10.0.0.0/8"]);
        let junk = vec!["x"; 100].join(",");
        for prefix in [junk.as_str(), "\u{fffd}\u{0}", "192.0.2.1, 10.0.0.5"] {
            let header = format!("{prefix}, 203.0.113.9");
            let got = resolve(Some(ip("10.0.0.1")), [header.as_str()], &proxies);
            assert_eq!(got, Some(ip("203.0.113.9")), "{prefix:?}");
        }
        // Across several header values, the last one is nearest.
        let got = resolve(Some(ip("10.0.0.1")), ["junk", "203.0.113.9"], &proxies);
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn allow_lists_compare_mapped_addresses_as_ipv4() {
        let cidrs = nets(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(allowed(&cidrs, ip("10.9.9.9")));
        assert!(allowed(&cidrs, ip("::ffff:10.9.9.9")));
        assert!(allowed(&cidrs, ip("2001:db8::1")));
        assert!(!allowed(&cidrs, ip("127.0.0.1")));
        assert!(!allowed(&cidrs, ip("2001:db9::1")));
        assert!(allowed(&[], ip("127.0.0.1")));
    }

    #[test]
    fn addresses_parse_or_name_the_field() {
        assert_eq!(
            parse_address("client_address", " ::ffff:1.2.3.4 ").unwrap(),
            ip("1.2.3.4")
        );
        let err = parse_address("client_address", "1.2.3").unwrap_err();
        assert!(err.to_string().starts_with("client_address:"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            // IPv4-mapped IPv6, which must compare as the IPv4 address.
            any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        ]
    }

    fn net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0..=32u8).prop_map(|(a, p)| {
                IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), p)
                    .unwrap()
                    .trunc()
            }),
            (any::<u128>(), 0..=128u8).prop_map(|(a, p)| {
                IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p)
                    .unwrap()
                    .trunc()
            }),
        ]
    }

    /// An `x-forwarded-for` entry: an address, with or without a port, or junk.
    fn hop() -> impl Strategy<Value = String> {
        prop_oneof![
            addr().prop_map(|a| a.to_string()),
            (addr(), any::<u16>())
                .prop_map(|(a, port)| std::net::SocketAddr::new(a, port).to_string()),
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn addresses_round_trip_in_canonical_form(a in addr()) {
            let parsed = parse_address("client_address", &a.to_string()).unwrap();
            prop_assert_eq!(parsed, canonical(a));
            prop_assert!(matches!(parsed, IpAddr::V4(_)) || a.to_canonical() == a);
        }

        #[test]
        fn arbitrary_address_text_never_panics(raw in any::<String>()) {
            if let Ok(a) = parse_address("client_address", &raw) {
                prop_assert_eq!(a, canonical(a));
            }
        }

        #[test]
        fn an_untrusted_peer_is_always_the_client(
            peer in addr(),
            proxies in vec(net(), 0..4),
            headers in vec(vec(hop(), 0..5).prop_map(|h| h.join(",")), 0..3),
        ) {
            let got = resolve(Some(peer), headers.iter().map(String::as_str), &proxies);
            if !trusted(&proxies, canonical(peer)) {
                prop_assert_eq!(got, Some(canonical(peer)));
            }
        }

        #[test]
        fn behind_trusted_proxies_the_client_is_an_entry_or_the_peer(
            peer in addr(),
            proxies in vec(net(), 1..4),
            hops in vec(hop(), 0..6),
        ) {
            let header = hops.join(",");
            let got = resolve(Some(peer), [header.as_str()], &proxies);
            if let Some(client) = got {
                // Either a trusted hop chain ended at an untrusted address, or every hop was
                // trusted and the farthest one (or the peer itself) is the client.
                let candidates: Vec<IpAddr> = hops
                    .iter()
                    .filter_map(|h| parse_hop(h))
                    .chain(std::iter::once(canonical(peer)))
                    .collect();
                prop_assert!(candidates.contains(&client), "{client} came from nowhere");
                prop_assert_eq!(client, canonical(client));
            }
        }

        #[test]
        fn allow_lists_agree_with_the_networks(a in addr(), nets in vec(net(), 0..5)) {
            let inside = nets.iter().any(|n| n.contains(&canonical(a)));
            prop_assert_eq!(allowed(&nets, a), nets.is_empty() || inside);
        }
    }
}
