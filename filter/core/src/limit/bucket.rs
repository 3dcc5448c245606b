//! Token bucket arithmetic, all in integers so that every worker computes
//! the same level from the same record (no float drift between workers).
//!
//! The refill rate is kept in micro-tokens per second and the level in
//! nano-tokens, so that whole milliseconds times the rate mint a whole
//! number of units: nothing is rounded away however often the bucket is
//! read (milli-tokens would lose the fraction minted per millisecond by a
//! rate such as 0.3/s, or need a remainder field). A u32 capacity in
//! nano-tokens still fits a u64 (4.3e18 < 1.8e19).

use super::algo::Decision;

/// One token, in the level's unit (nano-tokens).
pub(crate) const TOKEN: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Nano-tokens available at `last_ms`.
    pub level: u64,
    /// The instant up to which refill has been credited.
    pub last_ms: u64,
}

/// The refill rate in micro-tokens per second (= nano-tokens per ms).
/// `as` saturates: NaN and negative rates give 0 (no refill), infinity
/// gives `u64::MAX`.
pub(crate) fn rate_micro(refill_per_s: f64) -> u64 {
    (refill_per_s * 1e6).round() as u64
}

/// Milliseconds needed to mint `nano` nano-tokens (rounded up, so the
/// answer is never early); `u64::MAX` when nothing is ever minted.
pub(crate) fn ms_for(nano: u64, rate: u64) -> u64 {
    if nano == 0 {
        return 0;
    }
    if rate == 0 {
        return u64::MAX;
    }
    nano.div_ceil(rate)
}

impl Bucket {
    pub fn fresh(cap: u64, now_ms: u64) -> Bucket {
        Bucket {
            level: cap,
            last_ms: now_ms,
        }
    }

    /// Credit the refill up to `now_ms`, capped at `cap` nano-tokens.
    pub fn refill(&mut self, cap: u64, rate: u64, now_ms: u64) {
        // A capacity lowered by a new config applies at once.
        self.level = self.level.min(cap);
        if now_ms <= self.last_ms {
            // The clock went back (or another worker's clock is ahead):
            // mint nothing and keep `last_ms`, so no interval is ever
            // credited twice when clocks disagree.
            return;
        }
        let minted = u128::from(now_ms - self.last_ms) * u128::from(rate);
        // Below `cap - level`, so it fits a u64 whenever it is used.
        self.level = match u64::try_from(minted) {
            Ok(m) if m < cap - self.level => self.level + m,
            _ => cap,
        };
        self.last_ms = now_ms;
    }

    /// Milliseconds from `now_ms` until the level reaches `target`
    /// nano-tokens, ignoring the cap (requests ahead in a queue take
    /// their tokens as they come, so the cap never stops the minting);
    /// `u64::MAX` for never.
    pub fn wait_ms(&self, target: u64, rate: u64, now_ms: u64) -> u64 {
        if self.level >= target {
            return 0;
        }
        match ms_for(target - self.level, rate) {
            u64::MAX => u64::MAX,
            ms => self.last_ms.saturating_add(ms).saturating_sub(now_ms),
        }
    }
}

/// One request against the bucket: refill, then take one token if there
/// is one.
#[cfg(test)]
pub(crate) fn decide(
    b: Bucket,
    capacity: u32,
    refill_per_s: f64,
    now_ms: u64,
) -> (Bucket, Decision) {
    let (b, d, _) = take(b, capacity, refill_per_s, now_ms, 1);
    (b, d)
}

/// As [`decide`], taking up to `want` tokens at once (at least one, or
/// none when not even one is there): the decision is the first one's,
/// and the count is how many were taken.
pub(crate) fn take(
    mut b: Bucket,
    capacity: u32,
    refill_per_s: f64,
    now_ms: u64,
    want: u32,
) -> (Bucket, Decision, u32) {
    let cap = u64::from(capacity) * TOKEN;
    let rate = rate_micro(refill_per_s);
    b.refill(cap, rate, now_ms);
    let whole = u32::try_from(b.level / TOKEN).unwrap_or(u32::MAX);
    let taken = whole.min(want.max(1));
    let admitted = taken > 0;
    b.level -= u64::from(taken) * TOKEN;
    let d = Decision {
        admitted,
        remaining: u32::try_from(b.level / TOKEN).unwrap_or(u32::MAX),
        reset_ms: b.wait_ms(cap, rate, now_ms),
        retry_after_ms: if admitted {
            0
        } else {
            b.wait_ms(TOKEN, rate, now_ms)
        },
    };
    (b, d, taken)
}

/// Expected wait of the request at queue `position`: the time for
/// `position + 1` tokens to be there.
pub(crate) fn peek(
    mut b: Bucket,
    capacity: u32,
    refill_per_s: f64,
    now_ms: u64,
    position: u32,
) -> u64 {
    let cap = u64::from(capacity) * TOKEN;
    let rate = rate_micro(refill_per_s);
    b.refill(cap, rate, now_ms);
    let target = (u64::from(position) + 1).saturating_mul(TOKEN);
    b.wait_ms(target, rate, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    /// Run requests at the given offsets from T0; the admitted pattern.
    fn run(capacity: u32, refill: f64, offsets: &[u64]) -> Vec<bool> {
        let mut b = Bucket::fresh(u64::from(capacity) * TOKEN, T0);
        offsets
            .iter()
            .map(|&o| {
                let (next, d) = decide(b, capacity, refill, T0 + o);
                if d.admitted {
                    b = next;
                }
                d.admitted
            })
            .collect()
    }

    #[test]
    fn take_takes_what_is_there_up_to_want() {
        let b = Bucket::fresh(5 * TOKEN, T0);
        let (b, d, n) = take(b, 5, 1.0, T0, 3);
        assert_eq!((d.admitted, n, d.remaining), (true, 3, 2));
        let (b, d, n) = take(b, 5, 1.0, T0, 3);
        assert_eq!((d.admitted, n, d.remaining), (true, 2, 0));
        let (_, d, n) = take(b, 5, 1.0, T0, 3);
        assert_eq!((d.admitted, n, d.retry_after_ms), (false, 0, 1000));
        // `want` 0 counts as 1: a request always asks for its own token.
        let (_, d, n) = take(Bucket::fresh(TOKEN, T0), 5, 1.0, T0, 0);
        assert_eq!((d.admitted, n), (true, 1));
    }

    #[test]
    fn arithmetic_table() {
        // (capacity, refill/s, request offsets ms, expected admissions)
        let cases: &[(u32, f64, &[u64], &[bool])] = &[
            // A burst takes the capacity, then nothing until refill.
            (3, 1.0, &[0, 0, 0, 0], &[true, true, true, false]),
            // One token per second comes back.
            (
                1,
                1.0,
                &[0, 999, 1000, 1500, 2000],
                &[true, false, true, false, true],
            ),
            // Refill is capped: a long idle time gives back capacity only.
            (
                2,
                10.0,
                &[0, 0, 60_000, 60_000, 60_000],
                &[true, true, true, true, false],
            ),
            // Slow rate: 0.5/s needs 2 s, made of many small steps.
            (
                1,
                0.5,
                &[0, 500, 1000, 1500, 1999, 2000],
                &[true, false, false, false, false, true],
            ),
            // Fast rate: 1000/s gives one token per ms.
            (
                1,
                1000.0,
                &[0, 0, 1, 1, 2],
                &[true, false, true, false, true],
            ),
        ];
        for (cap, refill, offsets, want) in cases {
            assert_eq!(
                &run(*cap, *refill, offsets),
                want,
                "cap {cap} refill {refill} at {offsets:?}"
            );
        }
    }

    #[test]
    fn sub_milli_refill_is_not_lost_to_frequent_calls() {
        // 0.3 tokens/s = 0.3 milli-tokens per ms: one call per ms must
        // still add up to a token after 3334 ms (3333 is not enough).
        let mut b = Bucket {
            level: 0,
            last_ms: T0,
        };
        let rate = rate_micro(0.3);
        for t in 1..=3333 {
            b.refill(TOKEN, rate, T0 + t);
        }
        assert_eq!(b.level, TOKEN - 100_000);
        b.refill(TOKEN, rate, T0 + 3334);
        assert_eq!(b.level, TOKEN);
    }

    #[test]
    fn clock_going_back_mints_nothing() {
        let rate = rate_micro(1.0);
        let mut b = Bucket {
            level: 0,
            last_ms: T0 + 10_000,
        };
        b.refill(5 * TOKEN, rate, T0);
        assert_eq!(
            b,
            Bucket {
                level: 0,
                last_ms: T0 + 10_000
            }
        );
        // Back to the later time: still nothing minted for the detour.
        b.refill(5 * TOKEN, rate, T0 + 10_000);
        assert_eq!(b.level, 0);
        b.refill(5 * TOKEN, rate, T0 + 11_000);
        assert_eq!(b.level, TOKEN);
    }

    #[test]
    fn decision_fields() {
        let b = Bucket {
            level: 3 * TOKEN / 2,
            last_ms: T0,
        };
        let (b, d) = decide(b, 4, 2.0, T0);
        assert_eq!(
            d,
            Decision {
                admitted: true,
                remaining: 0,
                reset_ms: 1750,
                retry_after_ms: 0
            }
        );
        let (_, d) = decide(b, 4, 2.0, T0 + 100);
        // 0.5 + 0.2 tokens: 0.3 more needed at 2/s = 150 ms.
        assert_eq!(
            d,
            Decision {
                admitted: false,
                remaining: 0,
                reset_ms: 1650,
                retry_after_ms: 150
            }
        );
    }

    #[test]
    fn lowered_capacity_caps_the_level() {
        let b = Bucket {
            level: 100 * TOKEN,
            last_ms: T0,
        };
        let (_, d) = decide(b, 2, 1.0, T0);
        assert_eq!(d.remaining, 1);
    }

    #[test]
    fn peek_counts_tokens_for_the_queue_ahead() {
        let b = Bucket {
            level: 0,
            last_ms: T0,
        };
        assert_eq!(peek(b, 10, 2.0, T0, 0), 500);
        assert_eq!(peek(b, 10, 2.0, T0, 3), 2000);
        // Beyond the capacity too: those ahead take their tokens.
        assert_eq!(peek(b, 1, 2.0, T0, 3), 2000);
        assert_eq!(peek(b, 1, 0.0, T0, 0), u64::MAX);
    }

    #[test]
    fn rates_quantize_safely() {
        assert_eq!(rate_micro(f64::NAN), 0);
        assert_eq!(rate_micro(-1.0), 0);
        assert_eq!(rate_micro(f64::INFINITY), u64::MAX);
        assert_eq!(rate_micro(0.5), 500_000);
        let b = Bucket {
            level: 0,
            last_ms: T0,
        };
        let mut full = b;
        full.refill(u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(full.level, u64::MAX);
    }
}
