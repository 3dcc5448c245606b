//! A worker's lease of tokens from a large shared bucket.
//!
//! Each admission through the shared table is a read and a
//! compare-and-swap of shared data (two host calls, about 1.5 µs of
//! Envoy's CPU, measured by `make bench`'s P rows). For a bucket of at
//! least [`LEASE_FROM`] tokens the worker takes up to [`chunk`] tokens
//! in that one compare-and-swap and admits its next requests of the same
//! key from them, without a host call, for at most [`LEASE_MS`].
//!
//! Every admitted request still spends a token taken from the shared
//! bucket, so the gateway-wide bound holds to within one chunk per
//! worker: over any interval at most `capacity + refill·interval` tokens
//! leave the bucket, and a worker can admit at most `chunk − 1` of them
//! after the interval they were taken in (what it still held). The other
//! side of the trade: while a worker holds tokens, another worker may be
//! refused up to that many requests early. A chunk is at most a
//! thousandth of the capacity, so both are bounded by a per-mille of it
//! per worker. Small buckets (the ones where one token matters) are never
//! leased: every request goes to the shared table, exactly as before.

use std::collections::HashMap;

use super::algo::{Algorithm, Decision};

/// Buckets smaller than this are never leased.
pub const LEASE_FROM: u32 = 1_000;

/// The most tokens one lease takes.
pub const MAX_CHUNK: u32 = 64;

/// A lease's tokens are dropped (never returned: under-admission only)
/// this long after they were taken.
pub const LEASE_MS: u64 = 1_000;

/// Limit keys a worker holds leases for at once; past it, requests of a
/// new key go to the shared table one by one.
pub const MAX_KEYS: usize = 256;

/// Tokens to take per shared-table update for `algo`: 1 (no lease) for a
/// sliding window or a small bucket, else a thousandth of the capacity,
/// at most [`MAX_CHUNK`].
pub fn chunk(algo: &Algorithm) -> u32 {
    match *algo {
        Algorithm::TokenBucket { capacity, .. } if capacity >= LEASE_FROM => {
            (capacity / LEASE_FROM).clamp(1, MAX_CHUNK)
        }
        _ => 1,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    tokens: u32,
    until_ms: u64,
    /// The shared bucket's decision when the tokens were taken.
    taken: Decision,
}

/// The worker's leases, by limit key.
#[derive(Debug, Default)]
pub struct Leases {
    by_key: HashMap<String, Lease>,
}

impl Leases {
    /// Admit one request of `key` from a live lease; `None` when there is
    /// none (the caller goes to the shared table).
    pub fn admit(&mut self, key: &str, now_ms: u64) -> Option<Decision> {
        let lease = self.by_key.get_mut(key)?;
        if lease.tokens == 0 || now_ms >= lease.until_ms {
            self.by_key.remove(key);
            return None;
        }
        lease.tokens -= 1;
        Some(Decision {
            admitted: true,
            // What this worker can still admit: the bucket's level when
            // the chunk was taken and what is left of the chunk.
            remaining: lease.taken.remaining.saturating_add(lease.tokens),
            reset_ms: lease.taken.reset_ms,
            retry_after_ms: 0,
        })
    }

    /// Keep what is left of a chunk: `taken` tokens were taken from the
    /// shared bucket for `key`, one of them by the request being admitted.
    pub fn keep(&mut self, key: &str, taken: u32, decision: Decision, now_ms: u64) {
        let left = taken.saturating_sub(1);
        if left == 0 {
            return;
        }
        if self.by_key.len() >= MAX_KEYS && !self.by_key.contains_key(key) {
            self.by_key
                .retain(|_, l| now_ms < l.until_ms && l.tokens > 0);
            if self.by_key.len() >= MAX_KEYS {
                return; // the tokens are dropped: under-admission only
            }
        }
        self.by_key.insert(
            key.to_string(),
            Lease {
                tokens: left,
                until_ms: now_ms.saturating_add(LEASE_MS),
                taken: decision,
            },
        );
    }

    /// Tokens this worker holds for `key` (tests and the bench's check).
    pub fn held(&self, key: &str) -> u32 {
        self.by_key.get(key).map_or(0, |l| l.tokens)
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
