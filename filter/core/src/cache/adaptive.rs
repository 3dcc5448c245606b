//! Adaptive TTL: a rule whose entries are invalidated often gets shorter
//! TTLs, a stable one longer, within the rule's bounds. Measured per
//! worker with exponentially decayed counts, so the TTL follows the recent
//! ratio of invalidations to stores.

/// Each new observation weighs this much against the past (per event).
const DECAY: f64 = 0.95;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Volatility {
    stores: f64,
    invalidations: f64,
}

impl Volatility {
    pub fn stored(&mut self) {
        self.stores = self.stores * DECAY + 1.0;
        self.invalidations *= DECAY;
    }

    pub fn invalidated(&mut self) {
        self.invalidations = self.invalidations * DECAY + 1.0;
        self.stores *= DECAY;
    }

    /// Invalidations per store, 0 when nothing is known.
    pub fn ratio(&self) -> f64 {
        if self.stores + self.invalidations < 1e-9 {
            0.0
        } else {
            self.invalidations / self.stores.max(1e-9)
        }
    }

    /// The TTL for this volatility: `max` when entries are never
    /// invalidated, `min` once there is one invalidation per store or more,
    /// linear between.
    pub fn ttl_ms(&self, (min, max): (u64, u64)) -> u64 {
        let r = self.ratio().clamp(0.0, 1.0);
        let span = max.saturating_sub(min) as f64;
        (max as f64 - span * r).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_moves_between_bounds_with_the_ratio() {
        let b = (1_000, 61_000);
        let mut v = Volatility::default();
        assert_eq!(v.ttl_ms(b), 61_000);
        for _ in 0..50 {
            v.stored();
        }
        assert_eq!(v.ttl_ms(b), 61_000);
        for _ in 0..50 {
            v.stored();
            v.stored();
            v.stored();
            v.invalidated();
        }
        let mid = v.ttl_ms(b);
        assert!(mid < 61_000 && mid > 1_000, "{mid}");
        for _ in 0..200 {
            v.invalidated();
        }
        assert_eq!(v.ttl_ms(b), 1_000);
    }
}
