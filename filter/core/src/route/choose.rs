//! The order in which a request tries a rule's providers. Pure: the
//! breaker is not consulted here, the caller walks the order and claims
//! the first provider it can ([`super::table::pick`]), so a provider that
//! is open is skipped without the strategy having to know.

use super::health::Provider;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Lowest cost first; providers missing the latency SLA last.
    Cheapest,
    /// Lowest p50 first; unmeasured providers before all.
    Fastest,
    /// A random first pick in proportion to the weights, then config
    /// order.
    Weighted,
    /// Config order.
    Ordered,
}

/// What the config says of one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub cost_micros: u64,
    pub weight: u32,
}

/// Every index of `candidates` exactly once, best first.
///
/// `health` is indexed like `candidates`; a provider without an entry
/// counts as unmeasured. `sla_ms` is the latency (p95) a provider must
/// meet under [`Strategy::Cheapest`]; 0 means no SLA, since a zero SLA
/// would push every measured provider to the back. `rand01` is a uniform
/// draw in [0, 1) for [`Strategy::Weighted`]; anything else is clamped
/// into it (NaN reads as 0).
pub fn order(
    strategy: Strategy,
    candidates: &[Candidate],
    health: &[Provider],
    sla_ms: u64,
    rand01: f64,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..candidates.len()).collect();
    let cost = |i: usize| candidates.get(i).map_or(u64::MAX, |c| c.cost_micros);
    let p50 = |i: usize| health.get(i).and_then(Provider::p50_ms);
    let p95 = |i: usize| health.get(i).and_then(Provider::p95_ms);
    match strategy {
        Strategy::Ordered => {}
        Strategy::Cheapest => {
            // Unknown latency counts as fitting: a provider is not
            // punished for not having been measured yet.
            let misses = |i: usize| sla_ms > 0 && p95(i).is_some_and(|p| p > sla_ms);
            idx.sort_by_key(|&i| (misses(i), cost(i), i));
        }
        Strategy::Fastest => {
            // `None` sorts before every `Some`: unmeasured providers go
            // first so that they get measured.
            idx.sort_by_key(|&i| (p50(i), cost(i), i));
        }
        Strategy::Weighted => {
            let first = weighted_pick(candidates, rand01);
            if let Some(pos) = idx.iter().position(|&i| i == first) {
                idx.remove(pos);
                idx.insert(0, first);
            }
        }
    }
    idx
}

/// Index drawn in proportion to weight. With every weight zero nothing is
/// preferred, so all are equally likely (the neutral reading of a config
/// that asks to spread but gives no proportions).
fn weighted_pick(candidates: &[Candidate], rand01: f64) -> usize {
    let all_zero = candidates.iter().all(|c| c.weight == 0);
    let weight = |c: &Candidate| if all_zero { 1 } else { u64::from(c.weight) };
    let total = candidates
        .iter()
        .fold(0u64, |sum, c| sum.saturating_add(weight(c)));
    if total == 0 {
        return 0;
    }
    let r = if rand01.is_nan() {
        0.0
    } else {
        rand01.clamp(0.0, 1.0)
    };
    // Floor into 0..total; min() keeps r = 1.0 (or rounding) in range.
    let target = ((r * total as f64) as u64).min(total - 1);
    let mut upto = 0u64;
    for (i, c) in candidates.iter().enumerate() {
        upto = upto.saturating_add(weight(c));
        if target < upto {
            return i;
        }
    }
    0
}

#[cfg(test)]
#[path = "choose_tests.rs"]
mod tests;
