//! The client's address, as far as it can be known: the TCP peer, or the hop a trusted proxy says
//! it received the request from.
//!
//! A forwarding header is a list that every proxy appends to, so only its right end is written by
//! proxies we run; anything to the left of the first untrusted hop was written by the client and
//! proves nothing. The list is therefore walked from the right, through trusted proxies only, and
//! the first address that is not one of them is the client. Only the header the proxies are known
//! to write is read (`X-Forwarded-For` or RFC 7239 `Forwarded`): a proxy passes the other header
//! through untouched, so reading it would let a client choose its own address.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

use crate::configuration::ForwardedHeader;

/// The client address for a request from `peer` carrying `headers`, walking at most `max_hops`
/// hops: the number of proxies that append to the header. A walk that went further would reach
/// hops the client wrote whenever a proxy in the chain is trusted by network but hides the client
/// (k3s's ServiceLB masquerades clients as its own pod addresses, inside the trusted pod network).
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ForwardedHeader,
    max_hops: usize,
) -> Option<IpAddr> {
    let mut current = peer.map(|ip| ip.to_canonical())?;
    if !is_trusted(current, trusted) {
        return Some(current);
    }
    let hops = forwarded_hops(headers, header);
    for hop in hops.iter().rev().take(max_hops) {
        match hop {
            Some(ip) => current = *ip,
            // A hop that names no address (`unknown`, an obfuscated identifier, garbage) ends the
            // trail: the last trusted proxy is the most that can be said.
            None => return Some(current),
        }
        if !is_trusted(current, trusted) {
            return Some(current);
        }
    }
    Some(current)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Every hop of the chosen header, left to right, across repeated header lines; `None` for a hop
/// that is not an address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        // Element by element: a byte that is not UTF-8 spoils its own hop only, not the hops a
        // proxy appended to the same line after it.
        for element in value.as_bytes().split(|b| *b == b',') {
            let node = std::str::from_utf8(element)
                .ok()
                .and_then(|element| match header {
                    ForwardedHeader::XForwardedFor => Some(element.trim()),
                    ForwardedHeader::Forwarded => forwarded_for(element),
                });
            hops.push(node.and_then(parse_node));
        }
    }
    hops
}

/// The `for=` parameter of one RFC 7239 forwarded-element, unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(socket) = node.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(peer: &str, trusted: &[&str], pairs: &[(&str, &str)]) -> Option<IpAddr> {
        client_address(
            Some(ip(peer)),
            &headers(pairs),
            &nets(trusted),
            ForwardedHeader::XForwardedFor,
            16,
        )
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let got = xff("198.51.100.7", &[], &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(got, Some(ip("198.51.100.7")));
    }

    #[test]
    fn an_untrusted_peer_cannot_forward() {
        let got = xff(
            "198.51.100.7",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "203.0.113.9")],
        );
        assert_eq!(got, Some(ip("198.51.100.7")));
    }

    #[test]
    fn the_hop_the_proxy_appended_is_the_client() {
        let got = xff(
            "10.42.0.5",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "203.0.113.9")],
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn hops_forged_by_the_client_are_left_of_the_real_one() {
        // The client sent `X-Forwarded-For: 1.2.3.4`; the proxy appended the real address.
        let got = xff(
            "10.42.0.5",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "1.2.3.4, 203.0.113.9")],
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
        // Forging a trusted address on the left gains nothing either.
        let got = xff(
            "10.42.0.5",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "10.1.1.1, 203.0.113.9")],
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn chains_of_trusted_proxies_are_walked_across_header_lines() {
        let got = xff(
            "10.42.0.5",
            &["10.0.0.0/8", "192.168.0.0/16"],
            &[
                ("x-forwarded-for", "7.7.7.7, 203.0.113.9"),
                ("x-forwarded-for", "192.168.1.1"),
            ],
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn garbage_at_the_right_end_stops_at_the_proxy() {
        let got = xff(
            "10.42.0.5",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "203.0.113.9, not-an-ip")],
        );
        assert_eq!(got, Some(ip("10.42.0.5")));
    }

    #[test]
    fn all_trusted_means_the_leftmost_proxy() {
        let got = xff(
            "10.42.0.5",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "10.1.2.3")],
        );
        assert_eq!(got, Some(ip("10.1.2.3")));
    }

    #[test]
    fn a_bad_byte_spoils_only_its_own_hop() {
        let mut map = HeaderMap::new();
        map.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"6.6.6.6\x80, 203.0.113.9").expect("value"),
        );
        let got = client_address(
            Some(ip("10.42.0.5")),
            &map,
            &nets(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
            16,
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn the_walk_stops_after_the_proxies_in_front() {
        // Traefik (10.42.0.5) behind ServiceLB, which masquerades the client as 10.42.0.9: the
        // hop Traefik appended is the masquerade address; walking on would believe the client.
        let pairs = [("x-forwarded-for", "6.6.6.6, 10.42.0.9")];
        let one = client_address(
            Some(ip("10.42.0.5")),
            &headers(&pairs),
            &nets(&["10.42.0.0/16"]),
            ForwardedHeader::XForwardedFor,
            1,
        );
        assert_eq!(one, Some(ip("10.42.0.9")));
        let unbounded = xff("10.42.0.5", &["10.42.0.0/16"], &pairs);
        assert_eq!(unbounded, Some(ip("6.6.6.6")), "what the bound prevents");
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        assert_eq!(parse_node("192.0.2.1:4711"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
        let got = xff(
            "::ffff:10.42.0.5",
            &["10.0.0.0/8"],
            &[("x-forwarded-for", "203.0.113.9")],
        );
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn rfc7239_forwarded_is_read_only_when_chosen() {
        let pairs = [
            (
                "forwarded",
                r#"for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https"#,
            ),
            ("x-forwarded-for", "5.6.7.8"),
        ];
        let forwarded = client_address(
            Some(ip("10.42.0.5")),
            &headers(&pairs),
            &nets(&["10.0.0.0/8"]),
            ForwardedHeader::Forwarded,
            16,
        );
        assert_eq!(forwarded, Some(ip("2001:db8:cafe::17")));
        let x = xff("10.42.0.5", &["10.0.0.0/8"], &pairs);
        assert_eq!(x, Some(ip("5.6.7.8")));
        let obfuscated = client_address(
            Some(ip("10.42.0.5")),
            &headers(&[("forwarded", "for=_gazonk")]),
            &nets(&["10.0.0.0/8"]),
            ForwardedHeader::Forwarded,
            16,
        );
        assert_eq!(obfuscated, Some(ip("10.42.0.5")));
    }
}
