//! The allowance table against the in-memory host: reservation arithmetic
//! under injected CAS conflicts, leases replacing leases, outage credit,
//! eviction and damaged bytes.

use super::*;
use crate::cost::budget_record::MAX_TENANT;
use crate::mem_host::{MemHost, SharedStore};
use proptest::prelude::*;

const SLOTS: u32 = 8;
const T0: u64 = 1_000_000;

fn policy() -> Policy {
    Policy {
        allow_overdraft: false,
        on_unavailable: OnUnavailable::FailOpen,
        credit_micros: 10_000,
        low_water_micros: 5_000,
        renew_before_ms: 1_000,
    }
}

fn grant(id: &str, micros: i64) -> Grant {
    Grant {
        allowance_id: (micros > 0).then(|| id.to_string()),
        granted_micros: micros,
        expires_at_ms: (T0 + 60_000) as i64,
        soft: false,
        hard: false,
    }
}

fn host() -> MemHost {
    let mut h = MemHost::new();
    create(&mut h, SLOTS).unwrap();
    h
}

#[test]
fn a_first_request_waits_for_a_lease_then_spends_it() {
    let mut h = host();
    let r = reserve(&mut h, SLOTS, "acme", 2_000, T0, policy()).unwrap();
    assert_eq!(r.kind, Kind::Pending);
    assert!(r.needs_refill);
    assert!(claim_refill(&mut h, SLOTS, "acme", T0, 5_000, policy()).unwrap());
    assert!(
        !claim_refill(&mut h, SLOTS, "acme", T0 + 1, 5_000, policy()).unwrap(),
        "one refiller at a time"
    );
    apply_grant(&mut h, SLOTS, "acme", &grant("L1", 10_000), T0, 1_000).unwrap();
    let r = reserve(&mut h, SLOTS, "acme", 2_000, T0, policy()).unwrap();
    assert_eq!(r.kind, Kind::Granted);
    assert_eq!(r.allowance_id.as_deref(), Some("L1"));
    assert!(!r.needs_refill, "8000 left, above the low water");
    settle(
        &mut h,
        SLOTS,
        "acme",
        (2_000, 500),
        Source::Lease(Some("L1")),
        T0,
    )
    .unwrap();
    assert_eq!(read(&h, SLOTS, "acme").unwrap().pool_micros, 9_500);
    for _ in 0..4 {
        assert_eq!(
            reserve(&mut h, SLOTS, "acme", 2_000, T0, policy())
                .unwrap()
                .kind,
            Kind::Granted
        );
    }
    let r = reserve(&mut h, SLOTS, "acme", 2_000, T0, policy()).unwrap();
    assert_eq!(r.kind, Kind::Pending, "1500 left: less than the estimate");
    assert!(r.needs_refill);
}

#[test]
fn an_empty_grant_exhausts_and_only_high_overdraws() {
    let mut h = host();
    apply_grant(&mut h, SLOTS, "acme", &grant("", 0), T0, 1_000).unwrap();
    let r = reserve(&mut h, SLOTS, "acme", 2_000, T0, policy()).unwrap();
    assert_eq!(r.kind, Kind::Exhausted);
    let high = Policy {
        allow_overdraft: true,
        ..policy()
    };
    let r = reserve(&mut h, SLOTS, "acme", 2_000, T0, high).unwrap();
    assert_eq!(r.kind, Kind::Overdraft);
    assert_eq!(read(&h, SLOTS, "acme").unwrap().pool_micros, -2_000);
    assert!(
        !claim_refill(&mut h, SLOTS, "acme", T0 + 10, 5_000, policy()).unwrap(),
        "not before the retry time"
    );
    assert!(claim_refill(&mut h, SLOTS, "acme", T0 + 1_000, 5_000, policy()).unwrap());
    // The budget was raised: the debt is paid from the new lease.
    apply_grant(
        &mut h,
        SLOTS,
        "acme",
        &grant("L2", 10_000),
        T0 + 1_000,
        1_000,
    )
    .unwrap();
    let e = read(&h, SLOTS, "acme").unwrap();
    assert_eq!((e.pool_micros, e.exhausted), (8_000, false));
}

#[test]
fn a_new_lease_drops_the_rest_of_the_old_one() {
    let mut h = host();
    apply_grant(&mut h, SLOTS, "acme", &grant("L1", 6_000), T0, 1_000).unwrap();
    reserve(&mut h, SLOTS, "acme", 2_000, T0, policy()).unwrap();
    apply_grant(&mut h, SLOTS, "acme", &grant("L2", 10_000), T0, 1_000).unwrap();
    let e = read(&h, SLOTS, "acme").unwrap();
    assert_eq!((e.allowance_id.as_str(), e.pool_micros), ("L2", 10_000));
}

#[test]
fn a_refund_for_a_replaced_lease_does_not_reach_the_new_pool() {
    let mut h = host();
    apply_grant(&mut h, SLOTS, "acme", &grant("L1", 10_000), T0, 1_000).unwrap();
    let r = reserve(&mut h, SLOTS, "acme", 4_000, T0, policy()).unwrap();
    assert_eq!(r.allowance_id.as_deref(), Some("L1"));
    apply_grant(&mut h, SLOTS, "acme", &grant("L2", 10_000), T0, 1_000).unwrap();
    // The request cost 1000 of its 4000: L1's rest returns at
    // cost-control when L1 expires, not here.
    settle(
        &mut h,
        SLOTS,
        "acme",
        (4_000, 1_000),
        Source::Lease(Some("L1")),
        T0,
    )
    .unwrap();
    assert_eq!(read(&h, SLOTS, "acme").unwrap().pool_micros, 10_000);
    // An extra cost is always taken.
    settle(
        &mut h,
        SLOTS,
        "acme",
        (1_000, 3_000),
        Source::Lease(Some("L1")),
        T0,
    )
    .unwrap();
    assert_eq!(read(&h, SLOTS, "acme").unwrap().pool_micros, 8_000);
    // Under the current lease a refund returns.
    settle(
        &mut h,
        SLOTS,
        "acme",
        (3_000, 1_000),
        Source::Lease(Some("L2")),
        T0,
    )
    .unwrap();
    assert_eq!(read(&h, SLOTS, "acme").unwrap().pool_micros, 10_000);
}

#[test]
fn a_lease_is_not_spent_past_its_end() {
    let mut h = host();
    apply_grant(&mut h, SLOTS, "acme", &grant("L1", 10_000), T0, 1_000).unwrap();
    let late = T0 + 60_000 - 500; // inside renew_before_ms
    let r = reserve(&mut h, SLOTS, "acme", 2_000, late, policy()).unwrap();
    assert_eq!(r.kind, Kind::Pending);
    assert_eq!(read(&h, SLOTS, "acme").unwrap().pool_micros, 0);
}

#[test]
fn an_outage_serves_on_bounded_credit_or_refuses_when_fail_closed() {
    let mut h = host();
    apply_failure(&mut h, SLOTS, "acme", T0, 1_000).unwrap();
    let mut served = 0;
    while reserve(&mut h, SLOTS, "acme", 2_000, T0, policy())
        .unwrap()
        .kind
        == Kind::Credit
    {
        served += 1;
    }
    assert_eq!(served, 5, "credit 10000 / 2000");
    assert_eq!(
        reserve(&mut h, SLOTS, "acme", 2_000, T0, policy())
            .unwrap()
            .kind,
        Kind::Unavailable
    );
    let closed = Policy {
        on_unavailable: OnUnavailable::FailClosed,
        ..policy()
    };
    apply_failure(&mut h, SLOTS, "globex", T0, 1_000).unwrap();
    assert_eq!(
        reserve(&mut h, SLOTS, "globex", 1, T0, closed)
            .unwrap()
            .kind,
        Kind::Unavailable
    );
    // Back: a grant clears the outage and its credit.
    apply_grant(
        &mut h,
        SLOTS,
        "acme",
        &grant("L1", 10_000),
        T0 + 2_000,
        1_000,
    )
    .unwrap();
    let e = read(&h, SLOTS, "acme").unwrap();
    assert!(!e.unreachable);
    assert_eq!(e.credit_used_micros, 0);
}

#[test]
fn a_full_slot_evicts_only_idle_tenants() {
    let mut h = MemHost::new();
    create(&mut h, 1).unwrap();
    for t in ["a", "b", "c", "d"] {
        apply_grant(&mut h, 1, t, &grant("L", 1_000), T0, 1_000).unwrap();
    }
    assert_eq!(
        reserve(&mut h, 1, "e", 10, T0, policy()).unwrap().kind,
        Kind::TableFull,
        "every way holds a lease"
    );
    let mut h = MemHost::new();
    create(&mut h, 1).unwrap();
    for t in ["a", "b", "c", "d"] {
        reserve(&mut h, 1, t, 10, T0, policy()).unwrap(); // pending: idle entries
    }
    assert_eq!(
        reserve(&mut h, 1, "e", 10, T0, policy()).unwrap().kind,
        Kind::Pending
    );
    assert!(read(&h, 1, "e").is_some());
}

#[test]
fn damaged_or_foreign_records_read_as_empty() {
    for bytes in [&b""[..], b"\x09garbage", b"\x01\x03\x05ab", &[1, 1, 255]] {
        assert!(decode(bytes).is_empty(), "{bytes:?}");
    }
    let mut h = host();
    h.shared_put(&slot_key(slot_of("acme", SLOTS)), b"\xff\xff")
        .unwrap();
    let r = reserve(&mut h, SLOTS, "acme", 1, T0, policy()).unwrap();
    assert_eq!(r.kind, Kind::Pending);
    let e = Entry {
        tenant: "t".repeat(300),
        allowance_id: "x".into(),
        pool_micros: -5,
        soft: true,
        ..Entry::default()
    };
    let back = decode(&encode(&[e]));
    assert_eq!(back[0].tenant.len(), MAX_TENANT);
    assert_eq!(back[0].pool_micros, -5);
    assert!(back[0].soft);
}

/// Found by fuzzing (`allowance`): a record whose credit used (or pool)
/// sits at the end of its range, read with a policy whose credit is
/// u64::MAX, overflowed when the outage credit (or an overdraft) was
/// taken.
#[test]
fn reserving_against_a_record_at_the_end_of_its_range_saturates() {
    let unlimited = Policy {
        credit_micros: u64::MAX,
        allow_overdraft: true,
        ..policy()
    };
    for (e, kind) in [
        (
            Entry {
                tenant: "acme".into(),
                unreachable: true,
                credit_used_micros: u64::MAX - 1,
                expires_at_ms: 1,
                ..Entry::default()
            },
            Kind::Credit,
        ),
        (
            Entry {
                tenant: "acme".into(),
                exhausted: true,
                pool_micros: i64::MIN + 1,
                expires_at_ms: 1,
                ..Entry::default()
            },
            Kind::Overdraft,
        ),
    ] {
        let mut h = host();
        h.shared_put(&slot_key(slot_of("acme", SLOTS)), &encode(&[e]))
            .unwrap();
        let r = reserve(&mut h, SLOTS, "acme", 1_000, T0, unlimited).unwrap();
        assert_eq!(r.kind, kind);
        let after = read(&h, SLOTS, "acme").unwrap();
        assert!(after.credit_used_micros == u64::MAX || after.pool_micros == i64::MIN);
    }
}

#[test]
fn grants_parse_or_are_refused() {
    let g = parse_grant(br#"{"allowance_id":"a","granted_micros":5,"expires_at_ms":9,"remaining_micros":null,"soft":true,"hard":false,"tenant":"t"}"#).unwrap();
    assert_eq!(g.granted_micros, 5);
    assert!(g.soft);
    assert!(parse_grant(br#"{"granted_micros":-1}"#).is_none());
    assert!(parse_grant(b"<html>").is_none());
    let body: serde_json::Value =
        serde_json::from_slice(&lease_request("gw", "acme", 20_000, 60)).unwrap();
    assert_eq!(body["want_micros"], 20_000);
    assert_eq!(body["tenant"], "acme");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Two workers reserving against one lease, with CAS conflicts
    /// injected: never more reserved than granted, and the pool is the
    /// grant minus what was reserved and not given back.
    #[test]
    fn reservations_never_exceed_the_grant(
        steps in proptest::collection::vec((1u64..5_000, 0usize..6, any::<bool>()), 1..80),
        granted in 1i64..200_000,
    ) {
        let store = SharedStore::new_shared();
        let mut hosts = [MemHost::with_store(store.clone()), MemHost::with_store(store.clone())];
        create(&mut hosts[0], SLOTS).unwrap();
        apply_grant(&mut hosts[0], SLOTS, "t", &grant("L", granted), T0, 1_000).unwrap();
        let mut reserved: i64 = 0;
        for (i, (estimate, conflicts, settle_half)) in steps.iter().enumerate() {
            store.borrow_mut().inject_conflicts(*conflicts);
            let h = &mut hosts[i % 2];
            match reserve(h, SLOTS, "t", *estimate, T0, policy()) {
                Ok(r) if r.kind == Kind::Granted => {
                    reserved += *estimate as i64;
                    if *settle_half {
                        let actual = estimate / 2;
                        store.borrow_mut().inject_conflicts(0);
                        settle(h, SLOTS, "t", (*estimate, actual), Source::Lease(Some("L")), T0).unwrap();
                        reserved -= (*estimate - actual) as i64;
                    }
                }
                Ok(r) => prop_assert!(matches!(r.kind, Kind::Pending), "{r:?}"),
                Err(e) => prop_assert_eq!(e, HostError::CasMismatch),
            }
            prop_assert!(reserved <= granted);
        }
        let pool = read(&hosts[0], SLOTS, "t").unwrap().pool_micros;
        prop_assert_eq!(pool, granted - reserved);
    }

    /// Two workers with slices of one lease, reserving, settling (under
    /// and over the estimate, or not at all: the client left) and giving
    /// slices back as time passes, with CAS conflicts injected: every
    /// micro of the lease is always in the pool, a worker's slice, an
    /// open reservation or spent, and never more is reserved than granted.
    #[test]
    fn slices_never_lose_or_make_money(
        steps in proptest::collection::vec(
            (0usize..2, 1u64..60_000, 0u8..4, 0u64..700, 0usize..3),
            1..120,
        ),
        granted in 1i64..5_000_000,
    ) {
        use crate::cost::budget_slice::Slices;
        let store = SharedStore::new_shared();
        let mut hosts = [MemHost::with_store(store.clone()), MemHost::with_store(store.clone())];
        create(&mut hosts[0], SLOTS).unwrap();
        apply_grant(&mut hosts[0], SLOTS, "t", &grant("L", granted), T0, 1_000).unwrap();
        let mut slices = [Slices::default(), Slices::default()];
        // Open reservations: (worker, estimate).
        let mut open: Vec<(usize, u64)> = Vec::new();
        let mut spent: i64 = 0;
        let mut now = T0;
        for (w, estimate, op, advance, conflicts) in steps {
            store.borrow_mut().inject_conflicts(conflicts);
            let h = &mut hosts[w];
            match op {
                // Reserve, from the slice or the pool.
                0 | 1 => {
                    if slices[w].spend("t", estimate, now).is_some() {
                        open.push((w, estimate));
                    } else {
                        let back = slices[w].get("t").cloned();
                        match reserve_sliced(h, SLOTS, "t", estimate, now, policy(), back.as_ref()) {
                            Ok((r, taken)) => {
                                slices[w].replace("t", taken);
                                if r.kind == Kind::Granted {
                                    open.push((w, estimate));
                                }
                            }
                            Err(e) => prop_assert_eq!(e, HostError::CasMismatch),
                        }
                    }
                }
                // Settle the oldest open reservation of this worker at a
                // cost from 0 (the client left) to twice its estimate.
                2 => {
                    if let Some(i) = open.iter().position(|(ow, _)| *ow == w) {
                        let (_, est) = open[i];
                        let actual = estimate % (2 * est + 1);
                        let delta = est as i64 - actual as i64;
                        if !slices[w].settle("t", Some("L"), delta) {
                            store.borrow_mut().inject_conflicts(0);
                            settle(h, SLOTS, "t", (est, actual), Source::Lease(Some("L")), now).unwrap();
                        }
                        open.remove(i);
                        spent += actual as i64;
                    }
                }
                // Time passes; this worker's timer gives due slices back.
                _ => {
                    now += advance;
                    store.borrow_mut().inject_conflicts(0);
                    for (tenant, slice) in slices[w].take_due(now) {
                        return_slice(h, SLOTS, &tenant, &slice, now).unwrap();
                    }
                }
            }
            let pool = read(&hosts[0], SLOTS, "t").unwrap().pool_micros;
            let held: i64 = slices.iter().map(|s| s.get("t").map_or(0, |s| s.micros)).sum();
            let reserved: i64 = open.iter().map(|(_, e)| *e as i64).sum();
            prop_assert_eq!(pool + held + reserved + spent, granted);
            prop_assert!(reserved <= granted);
        }
    }
}
