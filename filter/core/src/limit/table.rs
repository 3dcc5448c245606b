//! The gateway-wide table of limit states in shared data: one key per
//! slot (`cost_optimizer/l/{slot}`), pre-created so that every update is a
//! compare-and-swap on an existing key (atomic on Envoy and Kong alike).
//!
//! Errors are returned, not hidden: the caller fails open (treats an error
//! as "admit"), because a limiter that cannot reach its table must not
//! take the API down. That includes `CasMismatch` when more writers
//! contended than the retry bound allows.

use super::algo::{self, Algorithm, Decision};
use crate::host::{Host, HostError};
use crate::shared::cas_update;
use crate::shared::fnv1a;

use crate::shared::limit_slot as slot_key;

/// Create every slot with an empty record unless it exists (never
/// overwrites a live state, so a reconfigure keeps the counts).
pub fn create(host: &mut impl Host, slots: u32) -> Result<(), HostError> {
    let empty = algo::empty_state();
    for s in 0..slots {
        host.shared_create(&slot_key(s), &empty)?;
    }
    Ok(())
}

/// The slot of a limit key, and the tag that tells its state apart from
/// another key's in the same slot.
pub fn slot_of(key: &str, slots: u32) -> (u32, u64) {
    let tag = fnv1a(&[b"limit", key.as_bytes()]);
    ((tag % u64::from(slots.max(1))) as u32, tag)
}

/// Count one request of `key`: read, decide, write back with CAS, retried
/// a bounded number of times. A refused request writes nothing (its
/// refill is a function of time and is credited by the next admission).
pub fn acquire(
    host: &mut impl Host,
    slots: u32,
    key: &str,
    algo: &Algorithm,
    now_ms: u64,
) -> Result<Decision, HostError> {
    acquire_many(host, slots, key, algo, now_ms, 1).map(|(d, _)| d)
}

/// As [`acquire`], taking up to `want` admissions in the one
/// compare-and-swap (a worker's lease); how many were taken.
pub fn acquire_many(
    host: &mut impl Host,
    slots: u32,
    key: &str,
    algo: &Algorithm,
    now_ms: u64,
    want: u32,
) -> Result<(Decision, u32), HostError> {
    let (slot, tag) = slot_of(key, slots);
    let shared_key = slot_key(slot);
    let mut decision = None;
    let mut update = |bytes: &[u8]| {
        let (next, d, taken) = algo::decide_many(Some(bytes), tag, algo, now_ms, want);
        decision = Some((d, taken));
        d.admitted.then_some(next)
    };
    match cas_update(host, &shared_key, &mut update) {
        // A slot past the end of the table created at configure time
        // (slots raised without a restart, or creation failed): create it
        // now, empty, and try again once.
        Err(HostError::NotFound) => {
            host.shared_create(&shared_key, &algo::empty_state())?;
            cas_update(host, &shared_key, &mut update)?;
        }
        other => other?,
    }
    decision.ok_or(HostError::NotFound)
}

/// The expected wait of the request at queue `position` for `key`, from
/// one read (see [`algo::peek_wait_ms`]); an unreadable slot reads as
/// fresh.
pub fn peek(
    host: &impl Host,
    slots: u32,
    key: &str,
    algo: &Algorithm,
    now_ms: u64,
    position: u32,
) -> u64 {
    let (slot, tag) = slot_of(key, slots);
    let state = host
        .shared_get(&slot_key(slot))
        .ok()
        .flatten()
        .map(|(b, _)| b);
    algo::peek_wait_ms(state.as_deref(), tag, algo, now_ms, position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_host::{MemHost, SharedStore};
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000;
    const BUCKET: Algorithm = Algorithm::TokenBucket {
        capacity: 3,
        refill_per_s: 1.0,
    };

    #[test]
    fn create_makes_every_slot_once() {
        let mut h = MemHost::new();
        create(&mut h, 8).unwrap();
        assert_eq!(h.shared.borrow().len(), 8);
        let (slot, _) = slot_of("acme|reports", 8);
        acquire(&mut h, 8, "acme|reports", &BUCKET, T0).unwrap();
        let before = h.shared.borrow().value(&slot_key(slot)).map(<[u8]>::to_vec);
        create(&mut h, 8).unwrap();
        assert_eq!(
            h.shared.borrow().value(&slot_key(slot)).map(<[u8]>::to_vec),
            before
        );
    }

    #[test]
    fn workers_share_one_budget() {
        let store = SharedStore::new_shared();
        let mut a = MemHost::with_store(store.clone());
        let mut b = MemHost::with_store(store.clone());
        create(&mut a, 16).unwrap();
        let admitted: Vec<bool> = (0..4)
            .map(|i| {
                let h = if i % 2 == 0 { &mut a } else { &mut b };
                acquire(h, 16, "k", &BUCKET, T0).unwrap().admitted
            })
            .collect();
        assert_eq!(admitted, [true, true, true, false]);
        // Another key has its own budget.
        assert!(acquire(&mut b, 16, "other", &BUCKET, T0).unwrap().admitted);
        // A refusal wrote nothing: 3 admissions of "k", 1 of "other".
        assert_eq!(store.borrow().writes, 4);
        assert_eq!(peek(&b, 16, "k", &BUCKET, T0, 0), 1000);
        assert_eq!(peek(&b, 16, "k", &BUCKET, T0, 1), 2000);
    }

    #[test]
    fn a_missing_slot_is_created_on_first_use() {
        let mut h = MemHost::new();
        assert!(acquire(&mut h, 4, "k", &BUCKET, T0).unwrap().admitted);
        assert_eq!(h.shared.borrow().len(), 1);
        assert_eq!(peek(&MemHost::new(), 4, "k", &BUCKET, T0, 0), 0);
    }

    #[test]
    fn endless_conflicts_give_an_error_not_a_hang() {
        let store = SharedStore::new_shared();
        let mut h = MemHost::with_store(store.clone());
        create(&mut h, 4).unwrap();
        store.borrow_mut().inject_conflicts(1000);
        assert_eq!(
            acquire(&mut h, 4, "k", &BUCKET, T0),
            Err(HostError::CasMismatch)
        );
        store.borrow_mut().inject_conflicts(3);
        assert!(acquire(&mut h, 4, "k", &BUCKET, T0).unwrap().admitted);
    }

    #[test]
    fn slots_spread_and_stay_in_range() {
        assert_eq!(slot_of("x", 0).0, 0);
        assert_ne!(slot_of("t|acme", 4096), slot_of("t|globex", 4096));
        assert!((0..1000).all(|i| slot_of(&format!("k{i}"), 10).0 < 10));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Two workers, random CAS conflicts between calls: never more
        /// admitted over T than capacity + refill·T (+1 for rounding), and
        /// every call returns.
        #[test]
        fn shared_bucket_never_over_admits(
            capacity in 1u32..40,
            refill in 0.1f64..50.0,
            steps in proptest::collection::vec((0u64..400, 0usize..24), 1..120),
        ) {
            let algo = Algorithm::TokenBucket { capacity, refill_per_s: refill };
            let store = SharedStore::new_shared();
            let mut hosts = [MemHost::with_store(store.clone()), MemHost::with_store(store.clone())];
            create(&mut hosts[0], 8).unwrap();
            let mut now = T0;
            let mut admitted = 0u64;
            for (i, (gap, conflicts)) in steps.iter().enumerate() {
                now += gap;
                store.borrow_mut().inject_conflicts(*conflicts);
                match acquire(&mut hosts[i % 2], 8, "tenant|route", &algo, now) {
                    Ok(d) => admitted += u64::from(d.admitted),
                    Err(e) => prop_assert_eq!(e, HostError::CasMismatch),
                }
            }
            let t_s = (now - T0) as f64 / 1000.0;
            let bound = f64::from(capacity) + refill * t_s + 1.0;
            prop_assert!(admitted as f64 <= bound, "{admitted} > {bound}");
        }
    }
}
