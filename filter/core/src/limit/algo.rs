//! The two limiting algorithms behind one pure entry point, and the small
//! binary record a slot of the shared table holds.
//!
//! Record: magic `CRL`, version byte, kind byte (0 empty, 1 bucket,
//! 2 window), the 64-bit tag of the limit key, then three u64 fields
//! (bucket: level in nano-tokens, last refill ms, 0; window: start,
//! current count, previous count), little-endian, 37 bytes in all.
//!
//! Anything that does not decode as a record of this algorithm for this
//! tag reads as a fresh state (full bucket, empty windows): damaged or
//! foreign bytes, a record of the other algorithm (the config changed), or
//! another key's record. The last case is a collision in the fixed table:
//! the new key starts fresh and overwrites the slot, so each of the two
//! keys can be admitted up to one capacity (or window limit) more than it
//! should each time the slot changes hands, and never less. Chaining or
//! probing would avoid it, at the price of more shared-data reads on every
//! request; with a table much larger than the number of live keys, the
//! rare extra burst is the cheaper trade.

use super::{bucket, window};

/// How a limit counts. Built (and validated) by the config; every value,
/// even a zero, is handled without panicking here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Algorithm {
    TokenBucket { capacity: u32, refill_per_s: f64 },
    SlidingWindow { limit: u32, window_ms: u64 },
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    pub admitted: bool,
    /// Requests that would still be admitted right now.
    pub remaining: u32,
    /// Ms until the limit is fully replenished (bucket) or the current
    /// window rolls (window).
    pub reset_ms: u64,
    /// Ms until one request would be admitted; 0 when admitted.
    pub retry_after_ms: u64,
}

const MAGIC: [u8; 3] = *b"CRL";
const VERSION: u8 = 1;
const LEN: usize = 37;
const KIND_EMPTY: u8 = 0;
const KIND_BUCKET: u8 = 1;
const KIND_WINDOW: u8 = 2;

fn encode(kind: u8, tag: u64, fields: [u64; 3]) -> Vec<u8> {
    let mut b = Vec::with_capacity(LEN);
    b.extend_from_slice(&MAGIC);
    b.push(VERSION);
    b.push(kind);
    b.extend_from_slice(&tag.to_le_bytes());
    for f in fields {
        b.extend_from_slice(&f.to_le_bytes());
    }
    b
}

/// The record of a slot no key has used yet (what `table::create` writes).
pub fn empty_state() -> Vec<u8> {
    encode(KIND_EMPTY, 0, [0; 3])
}

/// The three fields of a record of `kind` for `tag`, or `None` when the
/// bytes hold anything else.
fn fields(state: Option<&[u8]>, kind: u8, tag: u64) -> Option<[u64; 3]> {
    let b = state?;
    if b.len() != LEN || b[..3] != MAGIC || b[3] != VERSION || b[4] != kind {
        return None;
    }
    let u =
        |o: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)) };
    if u(5)? != tag {
        return None;
    }
    Some([u(13)?, u(21)?, u(29)?])
}

fn bucket_state(state: Option<&[u8]>, tag: u64, capacity: u32, now_ms: u64) -> bucket::Bucket {
    match fields(state, KIND_BUCKET, tag) {
        Some([level, last_ms, _]) => bucket::Bucket { level, last_ms },
        None => bucket::Bucket::fresh(u64::from(capacity) * bucket::TOKEN, now_ms),
    }
}

fn window_state(state: Option<&[u8]>, tag: u64, window_ms: u64, now_ms: u64) -> window::Window {
    match fields(state, KIND_WINDOW, tag) {
        Some([start, current, previous]) => window::Window {
            start,
            current,
            previous,
        },
        None => window::Window::fresh(now_ms, window_ms.max(1)),
    }
}

/// One request of the key whose tag is `tag` against the slot's `state`
/// (`None`: nothing stored). Returns the state to store if the request is
/// admitted, and the decision. Pure: the caller owns reading and writing.
pub fn decide(
    state: Option<&[u8]>,
    tag: u64,
    algo: &Algorithm,
    now_ms: u64,
) -> (Vec<u8>, Decision) {
    let (next, d, _) = decide_many(state, tag, algo, now_ms, 1);
    (next, d)
}

/// As [`decide`], taking up to `want` admissions at once from a token
/// bucket (a worker's lease, see `lease.rs`); a sliding window always
/// takes one. Returns how many were taken (0 when refused).
pub fn decide_many(
    state: Option<&[u8]>,
    tag: u64,
    algo: &Algorithm,
    now_ms: u64,
    want: u32,
) -> (Vec<u8>, Decision, u32) {
    match *algo {
        Algorithm::TokenBucket {
            capacity,
            refill_per_s,
        } => {
            let b = bucket_state(state, tag, capacity, now_ms);
            let (b, d, taken) = bucket::take(b, capacity, refill_per_s, now_ms, want);
            (encode(KIND_BUCKET, tag, [b.level, b.last_ms, 0]), d, taken)
        }
        Algorithm::SlidingWindow { limit, window_ms } => {
            let w = window_state(state, tag, window_ms, now_ms);
            let (w, d) = window::decide(w, limit, window_ms, now_ms);
            (
                encode(KIND_WINDOW, tag, [w.start, w.current, w.previous]),
                d,
                u32::from(d.admitted),
            )
        }
    }
}

/// Expected ms until the request at 0-based queue `position` could be
/// admitted, assuming those ahead of it are admitted as soon as they can
/// be and nobody else takes from the limit meanwhile. `u64::MAX` when it
/// never could (zero refill or limit). Pure.
pub fn peek_wait_ms(
    state: Option<&[u8]>,
    tag: u64,
    algo: &Algorithm,
    now_ms: u64,
    position: u32,
) -> u64 {
    match *algo {
        Algorithm::TokenBucket {
            capacity,
            refill_per_s,
        } => {
            let b = bucket_state(state, tag, capacity, now_ms);
            bucket::peek(b, capacity, refill_per_s, now_ms, position)
        }
        Algorithm::SlidingWindow { limit, window_ms } => {
            let w = window_state(state, tag, window_ms, now_ms);
            window::peek(w, limit, window_ms, now_ms, position)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000;
    const BUCKET: Algorithm = Algorithm::TokenBucket {
        capacity: 2,
        refill_per_s: 1.0,
    };
    const WINDOW: Algorithm = Algorithm::SlidingWindow {
        limit: 2,
        window_ms: 1000,
    };

    /// Admit requests at `now` until refused; how many were admitted.
    fn drain(state: &mut Vec<u8>, tag: u64, algo: &Algorithm, now: u64) -> u32 {
        let mut n = 0;
        loop {
            let (next, d) = decide(Some(state), tag, algo, now);
            if !d.admitted || n > 100 {
                return n;
            }
            *state = next;
            n += 1;
        }
    }

    #[test]
    fn damaged_or_foreign_bytes_read_as_fresh() {
        let good = decide(None, 7, &BUCKET, T0).0;
        let mut truncated = good.clone();
        truncated.pop();
        let mut new_version = good.clone();
        new_version[3] = 2;
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"garbage".to_vec(),
            truncated,
            new_version,
            empty_state(),
            vec![0xff; LEN],
        ];
        for bytes in cases {
            for algo in [BUCKET, WINDOW] {
                let mut s = bytes.clone();
                assert_eq!(drain(&mut s, 7, &algo, T0), 2, "{bytes:?} {algo:?}");
            }
        }
        // The other algorithm's record (the config changed) reads as fresh.
        let mut s = decide(None, 7, &WINDOW, T0).0;
        assert_eq!(drain(&mut s, 7, &BUCKET, T0), 2);
        let mut s = decide(None, 7, &BUCKET, T0).0;
        assert_eq!(drain(&mut s, 7, &WINDOW, T0), 2);
    }

    #[test]
    fn state_round_trips() {
        for algo in [BUCKET, WINDOW] {
            let (s, d) = decide(None, 7, &algo, T0);
            assert_eq!(d.remaining, 1);
            let (_, d) = decide(Some(&s), 7, &algo, T0);
            assert_eq!((d.admitted, d.remaining), (true, 0));
        }
    }

    #[test]
    fn another_keys_state_is_overwritten_fresh() {
        for algo in [BUCKET, WINDOW] {
            let mut s = empty_state();
            assert_eq!(drain(&mut s, 1, &algo, T0), 2);
            // Key 2 collides: it starts with a full limit and takes over.
            assert_eq!(drain(&mut s, 2, &algo, T0), 2);
            // Key 1 comes back: fresh again, at most one extra capacity.
            assert_eq!(drain(&mut s, 1, &algo, T0), 2);
            assert_eq!(drain(&mut s, 1, &algo, T0), 0);
        }
    }

    #[test]
    fn zero_limits_never_admit_and_never_panic() {
        let algos = [
            Algorithm::TokenBucket {
                capacity: 0,
                refill_per_s: 0.0,
            },
            Algorithm::TokenBucket {
                capacity: 0,
                refill_per_s: f64::NAN,
            },
            Algorithm::SlidingWindow {
                limit: 0,
                window_ms: 0,
            },
        ];
        for algo in algos {
            let (_, d) = decide(None, 1, &algo, T0);
            assert!(!d.admitted);
            assert_eq!(peek_wait_ms(None, 1, &algo, T0, 0), d.retry_after_ms);
            assert!(d.retry_after_ms > 0);
        }
    }

    fn any_algo() -> impl Strategy<Value = Algorithm> {
        prop_oneof![
            (1u32..50, 0.01f64..100.0).prop_map(|(capacity, refill_per_s)| {
                Algorithm::TokenBucket {
                    capacity,
                    refill_per_s,
                }
            }),
            (1u32..50, 1u64..10_000)
                .prop_map(|(limit, window_ms)| Algorithm::SlidingWindow { limit, window_ms }),
        ]
    }

    proptest! {
        #[test]
        fn peek_is_monotone_in_position_and_matches_decide(
            algo in any_algo(),
            offsets in proptest::collection::vec(0u64..3000, 0..60),
            at in 0u64..5000,
        ) {
            // Reach a random state by admitting requests at random times.
            let mut s: Option<Vec<u8>> = None;
            let mut t = T0;
            for o in offsets {
                t += o;
                let (next, d) = decide(s.as_deref(), 9, &algo, t);
                if d.admitted {
                    s = Some(next);
                }
            }
            let now = t + at;
            let (_, d) = decide(s.as_deref(), 9, &algo, now);
            let mut last = 0;
            for p in 0..80 {
                let w = peek_wait_ms(s.as_deref(), 9, &algo, now, p);
                prop_assert!(w >= last, "position {p}: {w} < {last}");
                if p == 0 {
                    prop_assert_eq!(w, d.retry_after_ms);
                }
                last = w;
            }
            // The wait is right: one request fits then, not a ms earlier.
            if !d.admitted {
                let (_, later) = decide(s.as_deref(), 9, &algo, now + d.retry_after_ms);
                prop_assert!(later.admitted);
                let (_, early) = decide(s.as_deref(), 9, &algo, now + d.retry_after_ms - 1);
                prop_assert!(!early.admitted);
            }
        }
        /// Arbitrary bytes, and records of any field values, never panic
        /// and never admit beyond the configured limit.
        #[test]
        fn any_bytes_are_safe(
            algo in any_algo(),
            bytes in proptest::collection::vec(any::<u8>(), 0..48),
            record in proptest::option::of((0u8..4, any::<[u64; 3]>())),
            now in any::<u64>(),
            position in any::<u32>(),
        ) {
            let bytes = match record {
                Some((kind, fields)) => encode(kind, 3, fields),
                None => bytes,
            };
            let (_, d) = decide(Some(&bytes), 3, &algo, now);
            let limit = match algo {
                Algorithm::TokenBucket { capacity, .. } => capacity,
                Algorithm::SlidingWindow { limit, .. } => limit,
            };
            prop_assert!(!d.admitted || d.remaining < limit);
            let _ = peek_wait_ms(Some(&bytes), 3, &algo, now, position);
        }
    }
}
