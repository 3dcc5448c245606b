//! The adaptive batch window: how long a worker holds the first request
//! of a batch waiting for others, from the rate it currently sees.
//!
//! Waiting only pays when company is likely: under heavy traffic a batch
//! fills quickly, so a short window suffices; under light traffic a
//! longer one is needed to gather anyone; below a floor rate the wait
//! would rarely find a partner and only add latency, so no batching.

/// Time constant of the rate estimator: a burst fades to 1/e of its
/// weight after a second, fast enough to follow a change of traffic and
/// slow enough not to swing between two arrivals.
pub const TAU_MS: u64 = 1_000;

/// The batching policy of a route.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Shortest window, used under the heaviest traffic.
    pub window_min_ms: u64,
    /// Longest window: the most latency batching may add to a request.
    pub window_max_ms: u64,
    /// Below this rate (requests per second) nothing is batched.
    pub min_rate_rps: f64,
}

/// The window for a request arriving at `rps` into batches of at most
/// `max_size` members: `None` to send it alone, else the milliseconds to
/// wait for company.
///
/// The window is the time expected to gather `max_size` requests at this
/// rate, `1000 × max_size / rps` ms, clamped to the policy's bounds:
///
/// | rate (rps)                                    | window                  |
/// |-----------------------------------------------|-------------------------|
/// | below `min_rate_rps` (or not a number)        | `None`: no batching     |
/// | up to `1000 × max_size / window_max_ms`       | `window_max_ms`         |
/// | between the two bounds                        | `1000 × max_size / rps` |
/// | from `1000 × max_size / window_min_ms`        | `window_min_ms`         |
///
/// E.g. window 2..=50 ms, 5 rps floor, `max_size` 10: 1 rps → `None`,
/// 5 to 200 rps → 50 ms, 1000 rps → 10 ms, 5000 rps and more → 2 ms.
///
/// A `max_size` below 2 gives `None`: a batch of one is just the request,
/// and waiting for it would be pure delay. If the bounds are inverted the
/// upper one wins (the latency budget is the promise to keep).
pub fn window_ms(policy: &Policy, rps: f64, max_size: u32) -> Option<u64> {
    // NaN is not a rate: refuse it rather than let it reach the arithmetic.
    if max_size < 2 || rps.is_nan() || rps < policy.min_rate_rps || rps < 0.0 {
        return None;
    }
    // 1000 × max_size / rps: infinite at rps 0 (min rate 0), which
    // saturates in the cast and is clamped like any long window.
    let ideal = (f64::from(max_size) * 1000.0 / rps).round() as u64;
    Some(ideal.max(policy.window_min_ms).min(policy.window_max_ms))
}

/// A per-worker request rate, exponentially decayed with time constant
/// [`TAU_MS`]: each arrival adds one to a weight that decays continuously,
/// and the rate is that weight per time constant. Exact for irregular
/// arrivals (the decay depends on the time elapsed, not on a tick), and at
/// a steady rate r it reads r on average (slightly above just after an
/// arrival, slightly below just before the next).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Decayed count of arrivals as of `at_ms`.
    weight: f64,
    /// The latest time seen; never moves backwards.
    at_ms: u64,
}

impl Rate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one request arriving at `now_ms`.
    pub fn observe(&mut self, now_ms: u64) {
        self.weight = self.weight_at(now_ms) + 1.0;
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Requests per second as of `now_ms`.
    pub fn rps(&self, now_ms: u64) -> f64 {
        self.weight_at(now_ms) * 1000.0 / TAU_MS as f64
    }

    /// The weight decayed to `now_ms`. A clock that went backwards (a
    /// worker's clock is not guaranteed monotonic) counts as no time
    /// passed rather than growing the weight.
    fn weight_at(&self, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        self.weight * (-(elapsed as f64) / TAU_MS as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        window_min_ms: 2,
        window_max_ms: 50,
        min_rate_rps: 5.0,
    };

    #[test]
    fn window_policy_table() {
        let cases: &[(f64, u32, Option<u64>)] = &[
            (0.0, 10, None),
            (1.0, 10, None),
            (4.99, 10, None),
            (f64::NAN, 10, None),
            (-1.0, 10, None),
            (5.0, 10, Some(50)),
            (200.0, 10, Some(50)),
            (400.0, 10, Some(25)),
            (1000.0, 10, Some(10)),
            (5000.0, 10, Some(2)),
            (1e9, 10, Some(2)),
            (f64::INFINITY, 10, Some(2)),
            (1000.0, 1, None),
            (1000.0, 0, None),
            (1000.0, 40, Some(40)),
        ];
        for &(rps, max_size, want) in cases {
            assert_eq!(
                window_ms(&POLICY, rps, max_size),
                want,
                "{rps} rps, {max_size}"
            );
        }
    }

    #[test]
    fn zero_floor_batches_even_when_idle_with_the_longest_window() {
        let policy = Policy {
            min_rate_rps: 0.0,
            ..POLICY
        };
        assert_eq!(window_ms(&policy, 0.0, 10), Some(50));
    }

    #[test]
    fn inverted_bounds_keep_the_upper_one() {
        let policy = Policy {
            window_min_ms: 80,
            window_max_ms: 20,
            ..POLICY
        };
        assert_eq!(window_ms(&policy, 1e6, 10), Some(20));
        assert_eq!(window_ms(&policy, 10.0, 10), Some(20));
    }

    #[test]
    fn steady_100_rps_reads_about_100() {
        let mut rate = Rate::new();
        let mut now = 1_000_000;
        for _ in 0..2_000 {
            now += 10;
            rate.observe(now);
        }
        let just_after = rate.rps(now);
        let just_before_next = rate.rps(now + 9);
        assert!((99.0..102.0).contains(&just_after), "{just_after}");
        assert!(
            (98.0..101.0).contains(&just_before_next),
            "{just_before_next}"
        );
    }

    #[test]
    fn irregular_arrivals_average_to_the_rate() {
        // 100 rps as alternating gaps of 2 and 18 ms.
        let mut rate = Rate::new();
        let mut now = 0;
        for i in 0..2_000 {
            now += if i % 2 == 0 { 2 } else { 18 };
            rate.observe(now);
        }
        let rps = rate.rps(now);
        assert!((95.0..106.0).contains(&rps), "{rps}");
    }

    #[test]
    fn idle_decays() {
        let mut rate = Rate::new();
        for t in 0..100 {
            rate.observe(t * 10);
        }
        let busy = rate.rps(990);
        let one_tau = rate.rps(1_990);
        assert!((one_tau / busy - (-1.0f64).exp()).abs() < 1e-9);
        assert!(rate.rps(11_000) < 0.01);
        assert_eq!(rate.rps(u64::MAX), 0.0);
        assert_eq!(Rate::new().rps(5), 0.0);
    }

    #[test]
    fn clock_backwards_counts_as_no_time() {
        let mut rate = Rate::new();
        rate.observe(10_000);
        rate.observe(10_000);
        let now = rate.rps(10_000);
        assert_eq!(rate.rps(9_000), now);
        assert_eq!(rate.rps(0), now);
        // An arrival stamped in the past adds one without decaying or
        // rewinding: the estimate stays anchored at the latest time.
        rate.observe(9_500);
        assert!((rate.rps(10_000) - 3.0).abs() < 1e-9);
        assert!((rate.rps(11_000) - 3.0 * (-1.0f64).exp()).abs() < 1e-9);
    }
}
