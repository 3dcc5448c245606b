//! Each strategy's order: cost, the SLA rule, latency with unmeasured
//! providers first, the weighted draw and its distribution, config order;
//! and that every order is a permutation whatever the inputs.

use super::*;
use crate::route::breaker::{BreakerConfig, Claim};
use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_oneof, proptest, Just};

fn c(cost_micros: u64) -> Candidate {
    Candidate {
        cost_micros,
        weight: 1,
    }
}

fn w(weight: u32) -> Candidate {
    Candidate {
        cost_micros: 0,
        weight,
    }
}

fn unmeasured() -> Provider {
    Provider::default()
}

/// A provider measured long enough at a steady latency that p50 = p95 =
/// `ms`.
fn measured(ms: u64) -> Provider {
    let mut p = Provider::default();
    for _ in 0..80 {
        p.record(true, ms, Claim::Normal, 0, &BreakerConfig::default());
    }
    assert_eq!((p.p50_ms(), p.p95_ms()), (Some(ms), Some(ms)));
    p
}

#[test]
fn cheapest_by_cost_then_index() {
    let cands = [c(300), c(100), c(200), c(100)];
    assert_eq!(order(Strategy::Cheapest, &cands, &[], 0, 0.5), [1, 3, 2, 0]);
}

#[test]
fn cheapest_puts_providers_over_the_sla_last() {
    let cands = [c(300), c(100), c(200), c(50), c(400)];
    let health = [
        measured(100), // fits
        measured(600), // over
        unmeasured(),  // unknown counts as fitting
        measured(900), // over
        measured(500), // exactly the SLA fits
    ];
    assert_eq!(
        order(Strategy::Cheapest, &cands, &health, 500, 0.5),
        [2, 0, 4, 3, 1]
    );
    // No SLA: cost alone.
    assert_eq!(
        order(Strategy::Cheapest, &cands, &health, 0, 0.5),
        [3, 1, 2, 0, 4]
    );
    // Every provider over it: cost order again.
    assert_eq!(
        order(Strategy::Cheapest, &cands, &health, 1, 0.5),
        [2, 3, 1, 0, 4]
    );
}

#[test]
fn cheapest_ignores_a_p95_not_yet_known() {
    let mut few = Provider::default();
    for _ in 0..4 {
        few.record(true, 10_000, Claim::Normal, 0, &BreakerConfig::default());
    }
    let cands = [c(200), c(100)];
    assert_eq!(
        order(Strategy::Cheapest, &cands, &[measured(10), few], 500, 0.5),
        [1, 0]
    );
}

#[test]
fn fastest_measures_the_unknown_first_then_by_p50() {
    let cands = [c(1), c(5), c(1), c(0), c(2)];
    let health = [
        measured(300),
        unmeasured(),
        measured(100),
        measured(100),
        unmeasured(),
    ];
    // Unknown 4 (cost 2) and 1 (cost 5); then p50 100 with cost 0 before
    // cost 1; then 300.
    assert_eq!(
        order(Strategy::Fastest, &cands, &health, 0, 0.5),
        [4, 1, 3, 2, 0]
    );
    // Missing health entries count as unmeasured; same cost ties by index.
    assert_eq!(
        order(
            Strategy::Fastest,
            &[c(1), c(1), c(1)],
            &[measured(5)],
            0,
            0.5
        ),
        [1, 2, 0]
    );
}

#[test]
fn ordered_is_config_order() {
    let cands = [c(9), c(1), c(5)];
    let health = [measured(900), measured(1), unmeasured()];
    assert_eq!(
        order(Strategy::Ordered, &cands, &health, 10, 0.9),
        [0, 1, 2]
    );
}

#[test]
fn weighted_first_pick_then_config_order() {
    let cands = [w(1), w(0), w(3)];
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, 0.0), [0, 1, 2]);
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, 0.249), [0, 1, 2]);
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, 0.25), [2, 0, 1]);
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, 0.999), [2, 0, 1]);
}

/// Evenly spread draws give exactly the weights' proportions; a
/// zero-weight provider is never first.
#[test]
fn weighted_distribution_follows_the_weights() {
    let cands = [w(1), w(0), w(3), w(4), w(0)];
    let draws = 80_000;
    let mut first = [0usize; 5];
    for k in 0..draws {
        let o = order(Strategy::Weighted, &cands, &[], 0, k as f64 / draws as f64);
        first[o[0]] += 1;
    }
    assert_eq!(first, [10_000, 0, 30_000, 40_000, 0]);

    // Pseudo-random draws land near them.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut first = [0usize; 5];
    for _ in 0..draws {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (seed >> 11) as f64 / (1u64 << 53) as f64;
        first[order(Strategy::Weighted, &cands, &[], 0, r)[0]] += 1;
    }
    for (i, want) in [0.125, 0.0, 0.375, 0.5, 0.0].into_iter().enumerate() {
        let got = first[i] as f64 / draws as f64;
        assert!((got - want).abs() < 0.01, "provider {i}: {got} vs {want}");
    }
}

#[test]
fn weighted_with_all_zero_weights_spreads_evenly() {
    let cands = [w(0), w(0), w(0), w(0)];
    let mut first = [0usize; 4];
    for k in 0..400 {
        first[order(Strategy::Weighted, &cands, &[], 0, k as f64 / 400.0)[0]] += 1;
    }
    assert_eq!(first, [100; 4]);
}

#[test]
fn weighted_clamps_odd_draws() {
    let cands = [w(1), w(1), w(2)];
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, 1.0)[0], 2);
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, 7.5)[0], 2);
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, -3.0)[0], 0);
    assert_eq!(order(Strategy::Weighted, &cands, &[], 0, f64::NAN)[0], 0);
    assert_eq!(
        order(Strategy::Weighted, &cands, &[], 0, f64::INFINITY)[0],
        2
    );
    let huge = [w(u32::MAX), w(u32::MAX)];
    assert_eq!(order(Strategy::Weighted, &huge, &[], 0, 0.75), [1, 0]);
}

#[test]
fn no_candidates_no_order() {
    for s in [
        Strategy::Cheapest,
        Strategy::Fastest,
        Strategy::Weighted,
        Strategy::Ordered,
    ] {
        assert!(order(s, &[], &[measured(1)], 10, 0.5).is_empty());
    }
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        Just(Strategy::Cheapest),
        Just(Strategy::Fastest),
        Just(Strategy::Weighted),
        Just(Strategy::Ordered),
    ]
}

proptest! {
    #[test]
    fn every_index_exactly_once(
        s in strategy(),
        cands in proptest::collection::vec((any::<u64>(), any::<u32>()), 0..10),
        latencies in proptest::collection::vec(proptest::option::of(0u64..5_000), 0..12),
        sla in any::<u64>(),
        r in any::<f64>(),
    ) {
        let cands: Vec<Candidate> = cands
            .into_iter()
            .map(|(cost_micros, weight)| Candidate { cost_micros, weight })
            .collect();
        let health: Vec<Provider> = latencies
            .into_iter()
            .map(|l| l.map_or_else(unmeasured, measured))
            .collect();
        let mut o = order(s, &cands, &health, sla, r);
        o.sort_unstable();
        prop_assert_eq!(o, (0..cands.len()).collect::<Vec<_>>());
    }

    /// A zero-weight provider is first only when every weight is zero.
    #[test]
    fn zero_weight_never_first_unless_all_are(
        weights in proptest::collection::vec(0u32..4, 1..9),
        r in 0.0f64..1.0,
    ) {
        let cands: Vec<Candidate> = weights.iter().map(|&x| w(x)).collect();
        let first = order(Strategy::Weighted, &cands, &[], 0, r)[0];
        prop_assert!(weights[first] > 0 || weights.iter().all(|&x| x == 0));
    }
}
