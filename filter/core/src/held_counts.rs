//! Counter increments a worker holds between its timer's flushes
//! (`metrics.flush_ms`, see `config::metrics` for why).

/// Each counter's sum until the timer sends it: one host call per counter
/// per flush instead of one per increment. Both hosts' adapters keep one
/// per worker (per VM).
#[derive(Debug, Default)]
pub struct HeldCounts {
    holding: bool,
    /// Sums by the host's counter id, open addressing: a power of two
    /// long and at most half full, so an increment finds its sum in a
    /// probe or two (a `BTreeMap` here cost Kong's engine about 230
    /// instructions per increment). A counter keeps its slot (at 0) after
    /// a flush: holding allocates only when a counter moves the first
    /// time. Ids are the host's (small on Envoy, anywhere in `u32` on
    /// Kong), so they are spread before they index.
    slots: Vec<Option<(u32, i64)>>,
    used: usize,
}

/// Fibonacci hashing: the high half of the product spreads nearby ids.
fn spread(id: u32) -> usize {
    ((u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as usize
}

impl HeldCounts {
    pub fn hold(&mut self, on: bool) {
        self.holding = on;
    }

    /// Keep an increment; `false` when not holding (the caller sends it).
    pub fn keep(&mut self, id: u32, delta: i64) -> bool {
        if !self.holding {
            return false;
        }
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = spread(id) & mask;
        loop {
            match &mut self.slots[i] {
                Some((k, sum)) if *k == id => {
                    *sum = sum.saturating_add(delta);
                    return true;
                }
                Some(_) => i = (i + 1) & mask,
                empty @ None => {
                    *empty = Some((id, delta));
                    self.used += 1;
                    return true;
                }
            }
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![None; (old.len() * 2).max(16)];
        let mask = self.slots.len() - 1;
        for (id, sum) in old.into_iter().flatten() {
            let mut i = spread(id) & mask;
            while self.slots[i].is_some() {
                i = (i + 1) & mask;
            }
            self.slots[i] = Some((id, sum));
        }
    }

    /// What is held for counter `id`.
    pub fn held(&self, id: u32) -> i64 {
        self.slots
            .iter()
            .flatten()
            .find(|(k, _)| *k == id)
            .map_or(0, |(_, sum)| *sum)
    }

    /// Hand each counter's held sum to `send` (those not 0) and clear it.
    pub fn drain(&mut self, mut send: impl FnMut(u32, i64)) {
        for (id, sum) in self.slots.iter_mut().flatten() {
            if *sum != 0 {
                send(*id, *sum);
                *sum = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HeldCounts;

    #[test]
    fn held_increments_leave_as_one_sum_per_counter() {
        let mut h = HeldCounts::default();
        assert!(!h.keep(1, 1), "not holding: the caller sends it");
        h.hold(true);
        for _ in 0..5 {
            assert!(h.keep(1, 1));
        }
        assert!(h.keep(7, 250));
        assert!(h.keep(7, -50));
        assert!(h.keep(9, 0));
        assert_eq!((h.held(1), h.held(7), h.held(3)), (5, 200, 0));
        let mut sent = Vec::new();
        h.drain(|id, d| sent.push((id, d)));
        sent.sort();
        assert_eq!(
            sent,
            vec![(1, 5), (7, 200)],
            "a counter that did not move is not sent"
        );
        h.drain(|id, d| panic!("sent twice: {id} {d}"));
        assert!(h.keep(1, 2));
        h.hold(false);
        assert!(!h.keep(1, 1), "no longer holding");
        let mut sent = Vec::new();
        h.drain(|id, d| sent.push((id, d)));
        assert_eq!(sent, vec![(1, 2)], "what was held before still leaves");
    }

    #[test]
    fn many_counters_with_ids_anywhere_keep_their_own_sums() {
        // Kong's ids are spread over u32; Envoy's are small and close.
        let ids: Vec<u32> = (0..500u32)
            .map(|i| {
                if i % 2 == 0 {
                    i * 4 + 1
                } else {
                    i.wrapping_mul(2_654_435_761)
                }
            })
            .collect();
        let mut h = HeldCounts::default();
        h.hold(true);
        for round in 1..=3i64 {
            for (n, id) in ids.iter().enumerate() {
                assert!(h.keep(*id, n as i64 + round));
            }
        }
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(h.held(*id), 3 * n as i64 + 6, "id {id}");
        }
        let mut sent = std::collections::BTreeMap::new();
        h.drain(|id, d| assert!(sent.insert(id, d).is_none(), "{id} sent twice"));
        assert_eq!(sent.len(), ids.len());
        assert!(ids.iter().all(|id| h.held(*id) == 0));
    }

    #[test]
    fn a_sum_saturates_instead_of_wrapping() {
        let mut h = HeldCounts::default();
        h.hold(true);
        h.keep(1, i64::MAX);
        h.keep(1, 5);
        assert_eq!(h.held(1), i64::MAX);
    }
}
