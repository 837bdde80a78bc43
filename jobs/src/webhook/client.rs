//! The HTTP client webhook deliveries go through.
//!
//! It resolves names itself (after Svix's `webhook_http_client`) and refuses
//! to connect to loopback, private, link-local and other non-public
//! addresses unless the operator allows a network explicitly: a tenant must
//! not be able to make Peyk call into its own network. Redirects are never
//! followed, since a redirect could point anywhere.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Networks allowed even though they are not public (e.g. `127.0.0.0/8`
    /// for tests, or an internal range the operator trusts).
    pub allowed: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn parse(list: &str) -> Result<Self, String> {
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{s}` is not an IP network (e.g. 10.0.0.0/8) or address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// True for addresses on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || (segments[0] == 0x0064 && segments[1] == 0xff9b) // NAT64 can reach private v4
                || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240) // reserved
}

/// The error a refused address produces; found again in reqwest's error
/// chain so the delivery fails permanently with a clear reason.
#[derive(Debug, thiserror::Error)]
///
/// Its message names the host, never the address it resolved to: the
/// tenant who reads it must not learn the operator's internal addresses
/// (`address` is for the worker's log).
#[error(
    "{host} is not a public address (or resolves to one that is not); allow its network in PEYK_WEBHOOK_ALLOWED_NETWORKS to deliver there"
)]
pub struct BlockedAddress {
    pub host: String,
    pub address: IpAddr,
}

struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Refuse when any address is off-limits: a name that resolves to
            // both a public and a private address is a DNS-rebinding attempt.
            if let Some(bad) = resolved.iter().find(|addr| !policy.permits(addr.ip())) {
                return Err(Box::new(BlockedAddress { host, address: bad.ip() }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(resolved.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct WebhookClient {
    pub http: reqwest::Client,
    pub policy: Arc<AddressPolicy>,
}

impl WebhookClient {
    pub fn new(policy: AddressPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            // `HTTP(S)_PROXY`/`ALL_PROXY` are ignored: through a proxy the
            // resolver would check only the proxy's address while the proxy
            // fetched whatever host it was asked for.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver { policy: policy.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("Peyk-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, policy })
    }

    /// Checks a URL whose host is an IP literal (the resolver never sees those).
    pub fn check_literal_host(&self, url: &url::Url) -> Result<(), BlockedAddress> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if self.policy.permits(ip) {
            Ok(())
        } else {
            Err(BlockedAddress { host: ip.to_string(), address: ip })
        }
    }
}

/// Finds a [`BlockedAddress`] anywhere in an error's source chain.
pub fn blocked_address_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BlockedAddress> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(blocked) = e.downcast_ref::<BlockedAddress>() {
            return Some(blocked);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private} must not be public");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "185.143.232.10"] {
            assert!(is_public(public.parse().unwrap()), "{public} must be public");
        }
    }

    #[test]
    fn allow_list_opens_named_networks_only() {
        let policy = AddressPolicy::parse("127.0.0.0/8, ::1").unwrap();
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(policy.permits("::1".parse().unwrap()));
        assert!(!policy.permits("10.0.0.1".parse().unwrap()));
        assert!(AddressPolicy::parse("not-a-network").is_err());
    }
}
