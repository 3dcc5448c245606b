//! The per-worker tier: decoded entries of hot keys, bounded in entries
//! and bytes, least recently used out first. A hit here costs no copy out
//! of shared data and no decode.

use std::collections::BTreeMap;
use std::rc::Rc;

use hashbrown::HashMap;

use super::entry::Entry;

#[derive(Debug, Default)]
pub struct L1 {
    map: HashMap<u64, (Rc<Entry>, u64)>,
    /// Use tick → key, oldest first.
    order: BTreeMap<u64, u64>,
    tick: u64,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl L1 {
    pub fn new(max_entries: u32, max_bytes: u64) -> Self {
        L1 {
            max_entries: max_entries as usize,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            ..Default::default()
        }
    }

    pub fn get(&mut self, hash: &u64) -> Option<Rc<Entry>> {
        self.tick += 1;
        let tick = self.tick;
        let (entry, used) = self.map.get_mut(hash)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, *hash);
        Some(entry.clone())
    }

    pub fn put(&mut self, hash: u64, entry: Rc<Entry>) {
        self.remove(&hash);
        let weight = entry.weight();
        if self.max_entries == 0 || weight > self.max_bytes {
            return;
        }
        while self.map.len() >= self.max_entries || self.bytes + weight > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((e, _)) = self.map.remove(&oldest) {
                self.bytes -= e.weight();
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, hash);
        self.bytes += weight;
        self.map.insert(hash, (entry, self.tick));
    }

    pub fn remove(&mut self, hash: &u64) {
        if let Some((e, used)) = self.map.remove(hash) {
            self.order.remove(&used);
            self.bytes -= e.weight();
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Body;

    fn e(size: usize) -> Rc<Entry> {
        Rc::new(Entry {
            key: String::new(),
            stored_ms: 0,
            initial_age_s: 0,
            fresh_until_ms: 0,
            swr_until_ms: 0,
            sie_until_ms: 0,
            keep_until_ms: 0,
            fetch_ms: 0,
            gens: vec![],
            body: Body::Response {
                status: 200,
                headers: vec![],
                body: vec![0; size],
            },
        })
    }

    fn h(i: u8) -> u64 {
        u64::from(i)
    }

    #[test]
    fn bounded_by_entries_with_lru_order() {
        let mut l1 = L1::new(2, 1 << 20);
        l1.put(h(1), e(10));
        l1.put(h(2), e(10));
        assert!(l1.get(&h(1)).is_some()); // 2 is now the oldest
        l1.put(h(3), e(10));
        assert!(l1.get(&h(2)).is_none());
        assert!(l1.get(&h(1)).is_some() && l1.get(&h(3)).is_some());
        assert_eq!(l1.len(), 2);
    }

    #[test]
    fn bounded_by_bytes() {
        let w = e(1000).weight();
        let mut l1 = L1::new(100, (w * 3) as u64);
        for i in 0..10 {
            l1.put(h(i), e(1000));
            assert!(l1.bytes() <= w * 3);
        }
        assert_eq!(l1.len(), 3);
        l1.put(h(50), e(10_000)); // larger than the whole tier: not kept
        assert!(l1.get(&h(50)).is_none());
        l1.remove(&h(9));
        assert_eq!(l1.len(), 2);
        assert_eq!(l1.bytes(), w * 2);
    }
}
