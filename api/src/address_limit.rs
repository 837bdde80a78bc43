//! A per-source-address rate limit for the public, unauthenticated
//! endpoints (gateway callbacks, inbound webhooks): a token bucket per client
//! address, in this API process's memory. Beyond it: `429` with
//! `Retry-After`. It bounds what one sender can make Peyk store and do; the
//! per-payment bounds in `record_events` bound what many senders can.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Above this many tracked addresses, idle ones (full buckets) are dropped.
const MAX_TRACKED: usize = 50_000;

pub struct AddressLimiter {
    /// Requests per minute per address; also the burst.
    per_minute: f64,
    /// Take the client's address from `X-Forwarded-For` (its last entry, the
    /// one the proxy in front added) instead of the connection's.
    trust_forwarded_for: bool,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AddressLimiter {
    pub fn new(per_minute: u32, trust_forwarded_for: bool) -> Self {
        Self { per_minute: f64::from(per_minute.max(1)), trust_forwarded_for, buckets: Mutex::new(HashMap::new()) }
    }

    /// The address the request counts against.
    pub fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.trust_forwarded_for {
            let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).last();
            if let Some(address) = forwarded.and_then(|a| a.trim().parse().ok()) {
                return address;
            }
        }
        peer.ip()
    }

    /// Takes a token for `address`; `Err(wait)` when it has none left.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        self.check_at(address, Instant::now())
    }

    fn check_at(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&address) {
            let full_after = Duration::from_secs_f64(self.per_minute / rate);
            buckets.retain(|_, bucket| now.duration_since(bucket.at) < full_after);
        }
        let bucket = buckets.entry(address).or_insert(Bucket { tokens: self.per_minute, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(self.per_minute);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = AddressLimiter::new(60, false);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..60 {
            assert!(limiter.check_at(a, start).is_ok());
        }
        let wait = limiter.check_at(a, start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        // Another address has its own bucket; a second later one more token.
        assert!(limiter.check_at(b, start).is_ok());
        assert!(limiter.check_at(a, start + Duration::from_secs(1)).is_ok());
        assert!(limiter.check_at(a, start + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(AddressLimiter::new(1, false).client_address(peer, &headers), peer.ip());
        // The last entry is the one the trusted proxy added; earlier ones are the sender's word.
        assert_eq!(AddressLimiter::new(1, true).client_address(peer, &headers), "198.51.100.7".parse::<IpAddr>().unwrap());
    }
}
