//! A small in-process cache whose entries expire after a fixed time: for
//! lookups on hot paths whose answers change rarely (API keys, payment
//! accounts). Another API process sees a change once its entry expires
//! (or, for keys, once it is told: `auth::watch_key_changes`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Entries beyond which expired ones are swept out on insert.
const SWEEP_ABOVE: usize = 100_000;

pub struct TtlCache<K, V> {
    ttl: Duration,
    /// Entries past which new ones are not kept (when sweeping the expired
    /// ones made no room): a cache filled by what strangers send stays bounded.
    capacity: usize,
    entries: RwLock<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self::bounded(ttl, usize::MAX)
    }

    pub fn bounded(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: RwLock::new(HashMap::new()) }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().unwrap();
        entries.get(key).filter(|(_, deadline)| *deadline > Instant::now()).map(|(value, _)| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap();
        if entries.len() > SWEEP_ABOVE.min(self.capacity.saturating_sub(1)) {
            let now = Instant::now();
            entries.retain(|_, (_, deadline)| *deadline > now);
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(key, (value, Instant::now() + self.ttl));
    }

    pub fn clear(&self) {
        self.entries.write().unwrap().clear();
    }

    pub fn remove(&self, key: &K) {
        self.entries.write().unwrap().remove(key);
    }
}
