//! Where a webhook may go: public internet addresses only. A receiver's URL
//! is chosen by a tenant's admin, and anyone can sign up as one, so without
//! this check the delivery worker is a way into the network it runs in: the
//! cloud's metadata service (`169.254.169.254`, `metadata.google.internal`),
//! databases and consoles on private addresses, this server's own ports.
//!
//! A URL is checked twice. When it is registered, a host that is an
//! address, or a name that is local by definition (`localhost`, `*.internal`,
//! a single label), is refused at once, naming the field. When a delivery
//! is sent, the host is checked again (for endpoints stored before this
//! check) and every address its name resolves to is checked by
//! [`GuardedResolver`], the HTTP client's resolver: the addresses it checks
//! are the very ones the client connects to, so a name that resolves to a
//! public address one moment and an internal one the next (DNS rebinding)
//! cannot slip between the check and the connection.
//!
//! `LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST=true` (development) also lets
//! loopback through, and only loopback.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
};

use ipnet::{Ipv4Net, Ipv6Net};

/// Why a webhook target was refused: its host, the address that made it
/// internal when there is one, and which kind of address that is.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.message())]
pub struct TargetRefused {
    /// The host as written in the URL.
    pub host: String,
    /// The refused address: the host itself, or what its name resolved to.
    pub address: Option<IpAddr>,
    /// What is wrong, e.g. "a private address".
    pub reason: &'static str,
}

impl TargetRefused {
    fn message(&self) -> String {
        match self.address {
            Some(ip) if ip.to_string() == self.host.trim_matches(['[', ']']) => format!(
                "must not point to {} ({ip}); webhooks go to public internet addresses only",
                self.reason
            ),
            Some(ip) => format!(
                "must not point to {}: {} resolves to {ip}; webhooks go to public internet addresses only",
                self.reason, self.host
            ),
            None => format!(
                "must not point to {} ({}); webhooks go to public internet addresses only",
                self.reason, self.host
            ),
        }
    }
}

/// IPv4 ranges that are not on the public internet, beyond those the
/// standard library names (private, loopback, link-local, multicast,
/// broadcast, documentation, unspecified).
const INTERNAL_V4: [(Ipv4Net, &str); 5] = [
    (
        Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
        "an unspecified address",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
        "a private address",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24),
        "a reserved address",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
        "a reserved address",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
        "a reserved address",
    ),
];

/// IPv6 ranges that are not on the public internet and carry no IPv4
/// address of their own to check instead.
const INTERNAL_V6: [(Ipv6Net, &str); 5] = [
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
        "a private address",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
        "a reserved address",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
        "a reserved address",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        "a reserved address",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
        "a site-local address",
    ),
];

/// NAT64's well-known prefix: the last 32 bits are an IPv4 address.
const NAT64: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
/// 6to4: bits 16 to 48 are an IPv4 address.
const SIX_TO_FOUR: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);

/// Why `ip` may not receive webhooks, or `None` when it is a public
/// address (or loopback, when `allow_loopback`). An IPv6 address that
/// carries an IPv4 one (mapped, compatible, NAT64, 6to4) is judged by the
/// IPv4 address it reaches.
#[must_use]
pub fn refusal(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4, allow_loopback),
        IpAddr::V6(v6) => refusal_v6(v6, allow_loopback),
    }
}

fn refusal_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_private() {
        return Some("a private address");
    }
    if ip.is_link_local() {
        return Some("a link-local address");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    if ip.is_broadcast() {
        return Some("a broadcast address");
    }
    if ip.is_documentation() {
        return Some("a reserved address");
    }
    INTERNAL_V4
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

fn refusal_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4, allow_loopback);
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    if ip.is_unique_local() {
        return Some("a unique-local address");
    }
    if ip.is_unicast_link_local() {
        return Some("a link-local address");
    }
    INTERNAL_V6
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

/// The IPv4 address an IPv6 one stands for, when it stands for one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = ip.to_bits();
    let low = Ipv4Addr::from_bits(u32::try_from(bits & 0xffff_ffff).unwrap_or(0));
    // IPv4-compatible `::a.b.c.d` (deprecated, still routed by some stacks).
    if bits >> 32 == 0 {
        return Some(low);
    }
    if NAT64.contains(&ip) {
        return Some(low);
    }
    if SIX_TO_FOUR.contains(&ip) {
        return Some(Ipv4Addr::from_bits(
            u32::try_from((bits >> 80) & 0xffff_ffff).unwrap_or(0),
        ));
    }
    None
}

/// Whether `host` (as a URL writes it: IPv6 in brackets, names in any
/// case, with or without a final dot) is this machine.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    match literal(host) {
        Some(ip) => ip.is_loopback() || ip.to_canonical().is_loopback(),
        None => {
            let name = normalise(host);
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// Checks a URL's host before anything is resolved: an address must be
/// public (see [`refusal`]); a name must not be local by definition. The
/// name's addresses are checked when a delivery is sent.
///
/// # Errors
/// [`TargetRefused`] saying why.
pub fn check_host(host: &str, allow_loopback: bool) -> Result<(), TargetRefused> {
    let refused = |address, reason| TargetRefused {
        host: host.to_owned(),
        address,
        reason,
    };
    if let Some(ip) = literal(host) {
        return match refusal(ip, allow_loopback) {
            Some(reason) => Err(refused(Some(ip), reason)),
            None => Ok(()),
        };
    }
    let name = normalise(host);
    if name == "localhost" || name.ends_with(".localhost") {
        return if allow_loopback {
            Ok(())
        } else {
            Err(refused(None, "a loopback address"))
        };
    }
    // Names that only resolve inside a network: reserved for private use
    // (`.internal`, where cloud metadata services live; `.local`,
    // `.home.arpa`) or reverse lookups; a single label is completed by the
    // resolver's search domains into an intranet name.
    const PRIVATE_SUFFIXES: [&str; 6] = [
        ".internal",
        ".local",
        ".localdomain",
        ".home.arpa",
        ".in-addr.arpa",
        ".ip6.arpa",
    ];
    if !name.contains('.')
        || PRIVATE_SUFFIXES
            .iter()
            .any(|suffix| name.ends_with(suffix) || name == suffix[1..])
    {
        return Err(refused(None, "a name that only resolves inside a network"));
    }
    Ok(())
}

/// The address a URL host is, when it is one. The URL parser has already
/// turned every IPv4 spelling (`0x7f000001`, `2130706433`, `127.1`) into
/// the dotted form, and keeps IPv6 in brackets.
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An error as the HTTP client's resolver returns it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A name lookup: the addresses a host name has.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// A [`Lookup`] from an async function of the host name.
pub fn lookup<F, Fut>(resolve: F) -> Lookup
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'static,
{
    Arc::new(move |host| Box::pin(resolve(host)))
}

/// The system's resolver, on tokio's blocking pool.
#[must_use]
pub fn system_lookup() -> Lookup {
    lookup(|host: String| async move {
        Ok(tokio::net::lookup_host((host.as_str(), 0))
            .await?
            .map(|addr| addr.ip())
            .collect())
    })
}

/// The webhook client's resolver: resolves a name with `lookup`, refuses
/// it when any of its addresses is internal, and otherwise hands exactly
/// the addresses it checked to the client, which connects to one of them.
/// A name with a public and an internal address is refused whole: which
/// one the client would try first is not ours to choose.
pub struct GuardedResolver {
    lookup: Lookup,
    allow_loopback: bool,
}

impl GuardedResolver {
    /// A resolver over `lookup`; loopback passes only when `allow_loopback`.
    #[must_use]
    pub fn new(lookup: Lookup, allow_loopback: bool) -> Self {
        Self {
            lookup,
            allow_loopback,
        }
    }

    /// The checked addresses of `host`.
    ///
    /// # Errors
    /// [`TargetRefused`] for an internal name; the lookup's own error when
    /// it fails or finds nothing. Boxed as the HTTP client wants it, so that
    /// [`refused_in`] finds the refusal among the client error's causes.
    pub async fn resolve_checked(&self, host: &str) -> Result<Vec<IpAddr>, BoxError> {
        check_host(host, self.allow_loopback)?;
        let addresses = (self.lookup)(host.to_owned()).await?;
        if addresses.is_empty() {
            return Err(format!("{host} has no address").into());
        }
        for ip in &addresses {
            if let Some(reason) = refusal(*ip, self.allow_loopback) {
                return Err(Box::new(TargetRefused {
                    host: host.to_owned(),
                    address: Some(*ip),
                    reason,
                }));
            }
        }
        Ok(addresses)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = Self {
            lookup: Arc::clone(&self.lookup),
            allow_loopback: self.allow_loopback,
        };
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = guard.resolve_checked(&host).await?;
            // Port 0: the client puts the URL's port in.
            let addrs: reqwest::dns::Addrs =
                Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The [`TargetRefused`] somewhere in `err`'s chain of causes, if any: how
/// the worker tells a refused address from a receiver that is down.
#[must_use]
pub fn refused_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a TargetRefused> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<TargetRefused>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_of_every_kind_are_refused() {
        for (address, why) in [
            ("127.0.0.1", "a loopback address"),
            ("127.255.0.9", "a loopback address"),
            ("::1", "a loopback address"),
            ("10.0.0.1", "a private address"),
            ("172.16.5.4", "a private address"),
            ("192.168.1.1", "a private address"),
            ("100.64.0.1", "a private address"),
            ("169.254.169.254", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("fd00::1", "a unique-local address"),
            ("fc00::1", "a unique-local address"),
            ("224.0.0.1", "a multicast address"),
            ("ff02::1", "a multicast address"),
            ("0.0.0.0", "an unspecified address"),
            ("0.1.2.3", "an unspecified address"),
            ("::", "an unspecified address"),
            ("255.255.255.255", "a broadcast address"),
            ("240.0.0.1", "a reserved address"),
            ("192.0.2.1", "a reserved address"),
            ("2001:db8::1", "a reserved address"),
            ("fec0::1", "a site-local address"),
            // IPv6 forms that reach an IPv4 address are judged by it.
            ("::ffff:127.0.0.1", "a loopback address"),
            ("::ffff:169.254.169.254", "a link-local address"),
            ("::ffff:10.0.0.1", "a private address"),
            ("::127.0.0.1", "a loopback address"),
            ("64:ff9b::a9fe:a9fe", "a link-local address"),
            ("2002:7f00:1::", "a loopback address"),
            ("2002:a00:1::", "a private address"),
        ] {
            assert_eq!(refusal(ip(address), false), Some(why), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(refusal(ip(address), false), None, "{address}");
        }
    }

    #[test]
    fn the_development_setting_lets_loopback_through_and_nothing_else() {
        assert_eq!(refusal(ip("127.0.0.1"), true), None);
        assert_eq!(refusal(ip("::1"), true), None);
        assert_eq!(refusal(ip("::ffff:127.0.0.1"), true), None);
        assert!(refusal(ip("10.0.0.1"), true).is_some());
        assert!(refusal(ip("169.254.169.254"), true).is_some());
        assert!(check_host("localhost", true).is_ok());
        assert!(check_host("metadata.google.internal", true).is_err());
    }

    #[test]
    fn names_local_by_definition_are_refused_before_any_lookup() {
        for host in [
            "localhost",
            "localhost.",
            "LOCALHOST",
            "api.localhost",
            "metadata.google.internal",
            "metadata.google.internal.",
            "printer.local",
            "router.home.arpa",
            "metadata",
            "intranet",
        ] {
            assert!(check_host(host, false).is_err(), "{host}");
        }
        assert!(check_host("hooks.example.com", false).is_ok());
        assert!(check_host("[2606:4700:4700::1111]", false).is_ok());
        assert!(check_host("[::1]", false).is_err());
    }

    fn answering(addresses: &'static [&'static str]) -> Lookup {
        lookup(move |_| async move { Ok(addresses.iter().map(|a| a.parse().unwrap()).collect()) })
    }

    #[tokio::test]
    async fn a_name_is_refused_when_any_of_its_addresses_is_internal() {
        let guard = GuardedResolver::new(answering(&["93.184.216.34", "10.0.0.7"]), false);
        let err = guard
            .resolve_checked("hooks.example.com")
            .await
            .unwrap_err();
        let refused = refused_in(err.as_ref()).expect("refused");
        assert_eq!(refused.address, Some(ip("10.0.0.7")));
        assert_eq!(
            err.to_string(),
            "must not point to a private address: hooks.example.com resolves to 10.0.0.7; webhooks go to public internet addresses only"
        );
    }

    #[tokio::test]
    async fn the_addresses_checked_are_the_addresses_handed_to_the_client() {
        use reqwest::dns::Resolve;
        let guard = GuardedResolver::new(answering(&["93.184.216.34"]), false);
        let addrs: Vec<SocketAddr> = guard
            .resolve("hooks.example.com".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs, vec!["93.184.216.34:0".parse().unwrap()]);
        let rebound = GuardedResolver::new(answering(&["169.254.169.254"]), false);
        let err = rebound
            .resolve("hooks.example.com".parse().unwrap())
            .await
            .err()
            .expect("refused");
        assert!(refused_in(err.as_ref()).is_some(), "{err}");
    }
}
