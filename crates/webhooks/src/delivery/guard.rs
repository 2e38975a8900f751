//! The SSRF guard: which IP addresses deliveries may go to, checked on the addresses a name
//! resolves to (so a name cannot smuggle in a private address) and on IP-literal URLs.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

/// Special-purpose ranges refused by default, each with the reason given in errors
/// (IANA's IPv4 and IPv6 special-purpose address registries, plus multicast).
const REFUSED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\""),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved (IPv4-compatible)"),
    ("64:ff9b:1::/48", "reserved (local-use NAT64)"),
    ("100::/64", "reserved (discard-only)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("5f00::/16", "reserved (SRv6)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved (site-local)"),
    ("ff00::/8", "multicast"),
];

static REFUSED_NETS: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    REFUSED
        .iter()
        .filter_map(|(net, why)| net.parse().ok().map(|net| (net, *why)))
        .collect()
});

/// The IPv4 address an IPv6 address stands for, when it embeds one: IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Why an address is special-purpose, or `None` for an ordinary public unicast address.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = embedded_v4(v6) {
            return special_purpose(IpAddr::V4(v4));
        }
        // Outside 2000::/3 nothing is assigned for global unicast.
        if v6.segments()[0] & 0xe000 != 0x2000 && !REFUSED_NETS.iter().any(|(n, _)| n.contains(&ip))
        {
            return Some("reserved (not global unicast)");
        }
    }
    REFUSED_NETS
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

/// Which addresses deliveries may connect to.
///
/// By default only public unicast addresses: private, loopback, link-local, CGNAT,
/// multicast and reserved ranges (IPv4 and IPv6, including IPv4 addresses embedded in IPv6)
/// are refused. Subnets on the allow-list are permitted whatever they are.
///
/// ```
/// use switchyard_webhooks::delivery::AddressPolicy;
///
/// let policy = AddressPolicy::default();
/// assert!(policy.check("203.0.114.7".parse()?).is_ok());
/// assert!(policy.check("10.1.2.3".parse()?).is_err());
/// assert!(policy.check("::ffff:127.0.0.1".parse()?).is_err());
///
/// let tests = AddressPolicy::default().allow("127.0.0.0/8".parse()?);
/// assert!(tests.check("127.0.0.1".parse()?).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// Also permits addresses in `subnet`.
    #[must_use]
    pub fn allow(mut self, subnet: IpNet) -> Self {
        self.allowed.push(subnet);
        self
    }

    /// The subnets on the allow-list.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether deliveries may go to `url` as far as can be told without resolving it: an
    /// IP-literal host must be permitted; a name is checked when a delivery resolves it.
    /// Call it when an endpoint is created or changed, so one that can never be delivered to
    /// is refused then rather than retried on every attempt.
    ///
    /// ```
    /// use switchyard_webhooks::delivery::AddressPolicy;
    ///
    /// let policy = AddressPolicy::default();
    /// assert!(policy.check_url("https://hooks.example.com/in").is_ok());
    /// assert!(policy.check_url("http://127.0.0.1:8080/in").is_err());
    /// assert!(policy.check_url("http://[::1]/").is_err());
    /// assert!(policy.check_url("http://169.254.169.254/latest/meta-data").is_err());
    /// ```
    ///
    /// # Errors
    /// [`RefusedAddress`] for an IP-literal host the policy refuses.
    pub fn check_url(&self, url: &str) -> Result<(), RefusedAddress> {
        match url.parse::<http::Uri>() {
            Ok(uri) => self.check_uri(&uri),
            Err(_) => Ok(()),
        }
    }

    /// [`AddressPolicy::check_url`] for a parsed URI.
    pub(crate) fn check_uri(&self, uri: &http::Uri) -> Result<(), RefusedAddress> {
        match uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok())
        {
            Some(ip) => self.check(ip),
            None => Ok(()),
        }
    }

    /// Whether a delivery may connect to `ip`.
    ///
    /// # Errors
    /// [`RefusedAddress`] naming the address and the range it is in.
    pub fn check(&self, ip: IpAddr) -> Result<(), RefusedAddress> {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if self
            .allowed
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
        {
            return Ok(());
        }
        match special_purpose(ip) {
            None => Ok(()),
            Some(range) => Err(RefusedAddress { ip, range }),
        }
    }
}

/// An address the [`AddressPolicy`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused to connect to {ip}: a {range} address (SSRF guard; allow its subnet to permit it)"
)]
pub struct RefusedAddress {
    /// The address.
    pub ip: IpAddr,
    /// The kind of range it is in.
    pub range: &'static str,
}

/// Why a name could not be resolved to a permitted address.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        host: String,
        #[source]
        source: io::Error,
    },
    /// Recorded in the attempt, which the endpoint's owner reads: it says that the guard
    /// refused the host, not what the host resolved to (that would map the sender's internal
    /// names for them). The addresses go to the sender's log.
    #[error(
        "refused to connect to {host}: it resolves to no permitted address (SSRF guard; allow its subnet to permit it)"
    )]
    Refused {
        host: String,
        refused: RefusedAddress,
    },
    #[error("{host} resolves to no address")]
    Empty { host: String },
}

/// A hyper DNS resolver that drops every address the policy refuses, failing when none is
/// left. The connector connects only to what this returns, so there is no window between the
/// check and the connection.
#[derive(Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy }
    }
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver").finish_non_exhaustive()
    }
}

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, ResolveError>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    host: host.clone(),
                    source,
                })?;
            let mut permitted = Vec::new();
            let mut first_refusal = None;
            for addr in found {
                match policy.check(addr.ip()) {
                    Ok(()) => permitted.push(addr),
                    Err(refused) => {
                        first_refusal.get_or_insert(refused);
                    }
                }
            }
            match (permitted.is_empty(), first_refusal) {
                (false, _) => Ok(permitted.into_iter()),
                (true, Some(refused)) => {
                    tracing::warn!(%host, ip = %refused.ip, range = refused.range,
                        "a delivery's host resolves only to refused addresses");
                    Err(ResolveError::Refused { host, refused })
                }
                (true, None) => Err(ResolveError::Empty { host }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn refuses_special_ranges_and_accepts_public_ones() {
        let policy = AddressPolicy::default();
        for refused in [
            "0.0.0.0",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.251",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "4000::1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(policy.check(ip).is_err(), "{refused} should be refused");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.169.0.1",
            "203.0.114.1",
            "2606:4700:4700::1111",
            "2a00:1450:4007:80e::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(policy.check(ip).is_ok(), "{public} should be allowed");
        }
    }

    #[test]
    fn the_allow_list_opens_subnets_in_both_notations() {
        let policy = AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap());
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(policy.check("::1".parse().unwrap()).is_err());
        let err = policy.check("10.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused to connect to 10.0.0.1: a private address (SSRF guard; allow its subnet to \
             permit it)"
        );
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_fail() {
        use tower_service::Service as _;
        let mut resolver = GuardedResolver::new(Arc::new(AddressPolicy::default()));
        let name: Name = "localhost".parse().unwrap();
        let err = resolver.call(name).await.unwrap_err();
        assert!(
            matches!(err, ResolveError::Refused { .. }),
            "localhost must not pass: {err}"
        );
        let mut open = GuardedResolver::new(Arc::new(
            AddressPolicy::default()
                .allow("127.0.0.0/8".parse().unwrap())
                .allow("::1/128".parse().unwrap()),
        ));
        let addrs: Vec<_> = open
            .call("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
