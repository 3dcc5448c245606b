//! The shared table against the in-memory host: creation, claims across
//! workers, results, damaged and missing keys, CAS exhaustion, and the
//! property that workers never hold more half-open probes than allowed.

use super::*;
use crate::mem_host::{MemHost, SharedStore};
use crate::route::breaker::State;
use crate::shared::route_health;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;
const RULE: usize = 3;

fn cfg() -> BreakerConfig {
    BreakerConfig {
        failures: 2,
        failure_rate: 0.5,
        min_requests: 4,
        window_ms: 1_000,
        open_ms: 500,
        probes: 1,
        probe_timeout_ms: 300,
    }
}

fn open_provider(h: &mut MemHost, n: usize, i: usize, now: u64) {
    for _ in 0..2 {
        record(h, RULE, n, i, false, 10, Claim::Normal, now, &cfg()).unwrap();
    }
    assert_eq!(read(h, RULE, n).providers[i].state(), State::Open);
}

#[test]
fn create_never_overwrites() {
    let mut h = MemHost::new();
    create(&mut h, RULE, 2).unwrap();
    assert_eq!(
        h.shared.borrow().value(&route_health(RULE)),
        Some(&Table::fresh(2).encode()[..])
    );
    open_provider(&mut h, 2, 1, T0);
    create(&mut h, RULE, 2).unwrap();
    assert_eq!(read(&h, RULE, 2).providers[1].state(), State::Open);
}

#[test]
fn a_closed_claim_writes_nothing() {
    let store = SharedStore::new_shared();
    let mut h = MemHost::with_store(store.clone());
    create(&mut h, RULE, 3).unwrap();
    let writes = store.borrow().writes;
    assert_eq!(
        pick(&mut h, RULE, 3, &[2, 0, 1], T0, &cfg()),
        Ok(Some((2, Claim::Normal)))
    );
    assert_eq!(store.borrow().writes, writes);
}

#[test]
fn pick_skips_open_providers_and_out_of_range_indices() {
    let mut h = MemHost::new();
    create(&mut h, RULE, 3).unwrap();
    open_provider(&mut h, 3, 0, T0);
    assert_eq!(
        pick(&mut h, RULE, 3, &[7, 0, 2, 1], T0 + 1, &cfg()),
        Ok(Some((2, Claim::Normal)))
    );
    open_provider(&mut h, 3, 1, T0);
    open_provider(&mut h, 3, 2, T0);
    assert_eq!(
        pick(&mut h, RULE, 3, &[0, 1, 2], T0 + 499, &cfg()),
        Ok(None)
    );
    assert_eq!(pick(&mut h, RULE, 3, &[], T0 + 499, &cfg()), Ok(None));
}

/// The last probe place goes to one worker only; the other falls through
/// to the next provider of its order.
#[test]
fn a_probe_place_is_taken_once_across_workers() {
    let store = SharedStore::new_shared();
    let mut a = MemHost::with_store(store.clone());
    let mut b = MemHost::with_store(store.clone());
    create(&mut a, RULE, 2).unwrap();
    open_provider(&mut a, 2, 0, T0);
    let now = T0 + 500;
    assert_eq!(
        pick(&mut a, RULE, 2, &[0, 1], now, &cfg()),
        Ok(Some((0, Claim::Probe)))
    );
    store.borrow_mut().inject_conflicts(3);
    assert_eq!(
        pick(&mut b, RULE, 2, &[0, 1], now, &cfg()),
        Ok(Some((1, Claim::Normal)))
    );
    assert_eq!(read(&b, RULE, 2).providers[0].state(), State::HalfOpen);
    // The probe succeeds (probes = 1): closed for everyone.
    assert_eq!(
        record(&mut a, RULE, 2, 0, true, 40, Claim::Probe, now + 40, &cfg()),
        Ok(Transition::Closed)
    );
    assert_eq!(
        pick(&mut b, RULE, 2, &[0, 1], now + 41, &cfg()),
        Ok(Some((0, Claim::Normal)))
    );
}

#[test]
fn many_workers_contending_get_exactly_the_probe_places() {
    let cfg = BreakerConfig { probes: 3, ..cfg() };
    let store = SharedStore::new_shared();
    let mut hosts: Vec<MemHost> = (0..6).map(|_| MemHost::with_store(store.clone())).collect();
    create(&mut hosts[0], RULE, 1).unwrap();
    for _ in 0..2 {
        record(
            &mut hosts[0],
            RULE,
            1,
            0,
            false,
            10,
            Claim::Normal,
            T0,
            &cfg,
        )
        .unwrap();
    }
    let mut probes = 0;
    for (k, h) in hosts.iter_mut().enumerate() {
        store.borrow_mut().inject_conflicts(k * 2);
        if let Ok(Some((0, Claim::Probe))) = pick(h, RULE, 1, &[0], T0 + 500, &cfg) {
            probes += 1;
        }
    }
    assert_eq!(probes, 3);
    assert_eq!(
        read(&hosts[0], RULE, 1).providers[0].outstanding_probes(T0 + 500, &cfg),
        3
    );
}

#[test]
fn record_reports_transitions_and_feeds_statistics() {
    let mut h = MemHost::new();
    create(&mut h, RULE, 2).unwrap();
    for k in 0..5 {
        let t = record(&mut h, RULE, 2, 1, true, 100 + k, Claim::Normal, T0, &cfg());
        assert_eq!(t, Ok(Transition::None));
    }
    let p = read(&h, RULE, 2).providers[1];
    assert_eq!(p.p50_ms(), Some(101));
    assert_eq!(p.samples(), 5);
    assert_eq!(
        record(&mut h, RULE, 2, 0, false, 1, Claim::Normal, T0, &cfg()),
        Ok(Transition::None)
    );
    assert_eq!(
        record(&mut h, RULE, 2, 0, false, 1, Claim::Normal, T0, &cfg()),
        Ok(Transition::Opened)
    );
}

#[test]
fn a_provider_out_of_range_records_nothing() {
    let store = SharedStore::new_shared();
    let mut h = MemHost::with_store(store.clone());
    create(&mut h, RULE, 2).unwrap();
    let writes = store.borrow().writes;
    assert_eq!(
        record(&mut h, RULE, 2, 2, false, 1, Claim::Probe, T0, &cfg()),
        Ok(Transition::None)
    );
    assert_eq!(store.borrow().writes, writes);
}

#[test]
fn a_missing_key_reads_fresh_and_is_created_on_use() {
    let mut h = MemHost::new();
    assert_eq!(read(&h, RULE, 2), Table::fresh(2));
    assert_eq!(
        pick(&mut h, RULE, 2, &[1, 0], T0, &cfg()),
        Ok(Some((1, Claim::Normal)))
    );
    assert!(h.shared.borrow().value(&route_health(RULE)).is_some());
    let mut h = MemHost::new();
    assert_eq!(
        record(&mut h, RULE, 2, 0, true, 5, Claim::Normal, T0, &cfg()),
        Ok(Transition::None)
    );
    assert_eq!(read(&h, RULE, 2).providers[0].success_rate(), 1.0);
}

#[test]
fn a_damaged_or_resized_table_reads_fresh_and_is_repaired() {
    let mut h = MemHost::new();
    h.shared_put(&route_health(RULE), b"\x00garbage").unwrap();
    assert_eq!(read(&h, RULE, 2), Table::fresh(2));
    record(&mut h, RULE, 2, 0, false, 5, Claim::Normal, T0, &cfg()).unwrap();
    let t = read(&h, RULE, 2);
    assert!(t.providers[0].success_rate() < 1.0);
    // Read for another provider count (a reconfigure): fresh again.
    assert_eq!(read(&h, RULE, 3), Table::fresh(3));
    record(&mut h, RULE, 3, 2, true, 5, Claim::Normal, T0, &cfg()).unwrap();
    assert_eq!(read(&h, RULE, 3).providers.len(), 3);
}

#[test]
fn endless_conflicts_give_an_error_and_no_claim() {
    let store = SharedStore::new_shared();
    let mut h = MemHost::with_store(store.clone());
    create(&mut h, RULE, 1).unwrap();
    open_provider(&mut h, 1, 0, T0);
    store.borrow_mut().inject_conflicts(1_000);
    assert_eq!(
        pick(&mut h, RULE, 1, &[0], T0 + 500, &cfg()),
        Err(HostError::CasMismatch)
    );
    assert_eq!(
        record(&mut h, RULE, 1, 0, true, 5, Claim::Normal, T0 + 500, &cfg()),
        Err(HostError::CasMismatch)
    );
    store.borrow_mut().inject_conflicts(0);
    // Nothing was claimed: the place is still free.
    assert_eq!(read(&h, RULE, 1).providers[0].state(), State::Open);
    assert_eq!(
        pick(&mut h, RULE, 1, &[0], T0 + 500, &cfg()),
        Ok(Some((0, Claim::Probe)))
    );
}

#[test]
fn keys_of_rules_are_apart() {
    let mut h = MemHost::new();
    create(&mut h, 0, 1).unwrap();
    create(&mut h, 1, 1).unwrap();
    for _ in 0..2 {
        record(&mut h, 0, 1, 0, false, 1, Claim::Normal, T0, &cfg()).unwrap();
    }
    assert_eq!(read(&h, 0, 1).providers[0].state(), State::Open);
    assert_eq!(read(&h, 1, 1).providers[0].state(), State::Closed);
    assert_eq!(route_health(7), "cost_optimizer/r/h/7");
}

/// A request in flight as the test tracks it.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    provider: usize,
    claim: Claim,
    at: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Three workers on one store, CAS conflicts injected before every
    /// step, random picks and results (latency = time since the claim,
    /// as the filter measures it): the probes the workers hold for a
    /// provider, not yet answered and not timed out, never exceed
    /// `probes`, and never exceed the places the table holds.
    #[test]
    fn workers_never_hold_more_probes_than_allowed(
        n in 1usize..=4,
        probes in 1u32..=4,
        failures in 1u32..=3,
        open_ms in 0u64..400,
        probe_timeout_ms in 1u64..600,
        steps in proptest::collection::vec(
            (0usize..3, 0u8..3, 0u64..120, 0usize..20, any::<u16>(), any::<bool>()),
            1..300),
    ) {
        let cfg = BreakerConfig {
            failures,
            failure_rate: 0.5,
            min_requests: 4,
            window_ms: 1_000,
            open_ms,
            probes,
            probe_timeout_ms,
        };
        let store = SharedStore::new_shared();
        let mut hosts: Vec<MemHost> =
            (0..3).map(|_| MemHost::with_store(store.clone())).collect();
        create(&mut hosts[0], RULE, n).unwrap();
        let mut now = T0;
        let mut in_flight: Vec<InFlight> = Vec::new();
        for (worker, kind, gap, conflicts, choice, ok) in steps {
            now += gap;
            store.borrow_mut().inject_conflicts(conflicts);
            let h = &mut hosts[worker];
            // Two picks for one result, so requests pile up.
            if kind < 2 || in_flight.is_empty() {
                let start = usize::from(choice) % n;
                let order: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
                match pick(h, RULE, n, &order, now, &cfg) {
                    Ok(Some((provider, claim))) => {
                        in_flight.push(InFlight { provider, claim, at: now });
                    }
                    Ok(None) => {}
                    Err(e) => prop_assert_eq!(e, HostError::CasMismatch),
                }
            } else {
                let r = in_flight.swap_remove(usize::from(choice) % in_flight.len());
                // Whether or not the write got through, the request is over.
                if let Err(e) = record(h, RULE, n, r.provider, ok, now - r.at, r.claim, now, &cfg) {
                    prop_assert_eq!(e, HostError::CasMismatch);
                }
            }
            store.borrow_mut().inject_conflicts(0);
            let table = read(&hosts[0], RULE, n);
            for p in 0..n {
                let held = in_flight
                    .iter()
                    .filter(|r| r.provider == p && r.claim == Claim::Probe)
                    .filter(|r| r.at + probe_timeout_ms > now)
                    .count() as u32;
                let places = table.providers[p].outstanding_probes(now, &cfg);
                prop_assert!(held <= probes, "provider {p}: {held} probes out, {probes} allowed");
                prop_assert!(held <= places, "provider {p}: {held} probes out, table holds {places}");
            }
        }
    }
}
