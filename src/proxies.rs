//! Who the client is behind a reverse proxy (`--trusted-proxies`).
//!
//! Behind nginx every connection comes from the proxy's address, so the per-address
//! socket cap would count the whole deployment as one client and the logs would name the
//! proxy. When the TCP peer is a trusted proxy, the client is read from the headers the
//! proxies append to: `X-Forwarded-For` (or, without it, RFC 7239 `Forwarded: for=`),
//! walked from the right — the hop the nearest proxy saw — past every trusted proxy, to
//! the first address that is not one. That right-most untrusted hop is the one a client
//! cannot choose: anything a client writes in the header itself sits to its left.
//! From any other peer the headers are ignored (a client could write anything there).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed: a list of networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8,192.168.1.7,::1`: comma-separated CIDR networks or single
    /// addresses. Empty: no proxy is trusted.
    pub fn parse(s: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = IpNet::from_str(part)
                .or_else(|_| IpAddr::from_str(part).map(IpNet::from))
                .map_err(|_| format!("`{part}` is not an IP address or a CIDR network"))?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` itself unless it is a trusted proxy; then the
    /// right-most hop of `X-Forwarded-For` (all its header lines, in order), else of
    /// `Forwarded`, that is not a trusted proxy. A hop that is not an address ends the
    /// walk at the last proxy seen, as does a chain made only of trusted proxies.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
        forwarded: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops: Vec<&str> = forwarded_for.flat_map(|line| line.split(',')).collect();
        if hops.is_empty() {
            hops = forwarded.flat_map(forwarded_for_values).collect();
        }
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        canonical(client)
    }
}

/// The `for=` values of one `Forwarded` header line, in order.
fn forwarded_for_values(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').filter_map(|element| {
        element.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then(|| value.trim().trim_matches('"'))
        })
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    IpAddr::from_str(hop)
        .ok()
        .or_else(|| SocketAddr::from_str(hop).ok().map(|a| a.ip()))
        .or_else(|| IpAddr::from_str(hop.strip_prefix('[')?.strip_suffix(']')?).ok())
}

/// An IPv4 address mapped into IPv6 (`::ffff:1.2.3.4`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of an HTTP request (or socket upgrade); `None` without a peer
/// (only in unit tests of handlers).
pub fn client_ip(head: &actix_web::dev::RequestHead, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = head.peer_addr?.ip();
    let values = |name: &'static str| head.headers.get_all(name).filter_map(|v| v.to_str().ok());
    Some(proxies.client_ip(peer, values("x-forwarded-for"), values("forwarded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn resolve(proxies: &str, peer: &str, xff: &[&str], fwd: &[&str]) -> IpAddr {
        TrustedProxies::parse(proxies).expect("parse").client_ip(
            ip(peer),
            xff.iter().copied(),
            fwd.iter().copied(),
        )
    }

    #[test]
    fn lists_parse_networks_and_single_addresses() {
        let p = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.7 ,::1,fd00::/8").expect("ok");
        assert!(p.trusts(ip("10.1.2.3")) && p.trusts(ip("192.168.1.7")) && p.trusts(ip("::1")));
        assert!(p.trusts(ip("::ffff:10.0.0.1")), "v4-mapped");
        assert!(!p.trusts(ip("192.168.1.8")));
        assert_eq!(TrustedProxies::parse(""), Ok(TrustedProxies::default()));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        assert_eq!(
            resolve("10.0.0.0/8", "203.0.113.1", &["1.1.1.1"], &[]),
            ip("203.0.113.1")
        );
        assert_eq!(
            resolve("", "127.0.0.1", &["1.1.1.1"], &["for=2.2.2.2"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let p = "10.0.0.0/8";
        // The client wrote `6.6.6.6` itself; the proxy appended what it saw.
        assert_eq!(
            resolve(p, "10.0.0.2", &["6.6.6.6, 198.51.100.4"], &[]),
            ip("198.51.100.4")
        );
        // Two proxies: the inner one's hop is skipped.
        assert_eq!(
            resolve(p, "10.0.0.2", &["6.6.6.6", "198.51.100.4, 10.0.0.9"], &[]),
            ip("198.51.100.4")
        );
        // Only proxies: the left-most of them.
        assert_eq!(
            resolve(p, "10.0.0.2", &["10.0.0.7, 10.0.0.9"], &[]),
            ip("10.0.0.7")
        );
        // Garbage ends the walk at the last proxy seen.
        assert_eq!(resolve(p, "10.0.0.2", &["nonsense"], &[]), ip("10.0.0.2"));
        assert_eq!(
            resolve(p, "10.0.0.2", &["1.2.3.4, x, 10.0.0.9"], &[]),
            ip("10.0.0.9")
        );
        // No header: the peer.
        assert_eq!(resolve(p, "10.0.0.2", &[], &[]), ip("10.0.0.2"));
        assert_eq!(
            resolve(p, "10.0.0.2", &["198.51.100.4:3456"], &[]),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let p = "10.0.0.0/8";
        let fwd = ["for=6.6.6.6;proto=https, For=\"[2001:db8::1]:4711\";by=10.0.0.2"];
        assert_eq!(resolve(p, "10.0.0.2", &[], &fwd), ip("2001:db8::1"));
        assert_eq!(
            resolve(p, "10.0.0.2", &["198.51.100.4"], &fwd),
            ip("198.51.100.4")
        );
        assert_eq!(
            resolve(p, "10.0.0.2", &[], &["for=unknown"]),
            ip("10.0.0.2")
        );
    }
}
