//! A small in-process cache whose entries expire after a fixed time: for
//! lookups on hot paths whose answers change rarely (API keys, payment
//! accounts). Another API process sees a change once its entry expires.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Entries beyond which expired ones are swept out on insert.
const SWEEP_ABOVE: usize = 100_000;

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: RwLock<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::new(HashMap::new()) }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.read().unwrap();
        entries.get(key).filter(|(_, deadline)| *deadline > Instant::now()).map(|(value, _)| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.write().unwrap();
        if entries.len() > SWEEP_ABOVE {
            let now = Instant::now();
            entries.retain(|_, (_, deadline)| *deadline > now);
        }
        entries.insert(key, (value, Instant::now() + self.ttl));
    }

    pub fn remove(&self, key: &K) {
        self.entries.write().unwrap().remove(key);
    }
}
