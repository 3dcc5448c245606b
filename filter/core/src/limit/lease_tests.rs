use super::*;
use crate::limit::table;
use crate::mem_host::{MemHost, SharedStore};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

fn bucket(capacity: u32, refill_per_s: f64) -> Algorithm {
    Algorithm::TokenBucket {
        capacity,
        refill_per_s,
    }
}

#[test]
fn only_large_buckets_are_leased() {
    assert_eq!(chunk(&bucket(999, 1.0)), 1);
    assert_eq!(chunk(&bucket(1_000, 1.0)), 1);
    assert_eq!(chunk(&bucket(5_000, 1.0)), 5);
    assert_eq!(chunk(&bucket(10_000_000, 1e7)), MAX_CHUNK);
    let window = Algorithm::SlidingWindow {
        limit: 1_000_000,
        window_ms: 1000,
    };
    assert_eq!(chunk(&window), 1);
}

#[test]
fn a_lease_admits_its_tokens_then_expires() {
    let mut l = Leases::default();
    assert_eq!(l.admit("k", T0), None);
    let d = Decision {
        admitted: true,
        remaining: 100,
        reset_ms: 7,
        retry_after_ms: 0,
    };
    l.keep("k", 3, d, T0);
    assert_eq!(l.held("k"), 2);
    let first = l.admit("k", T0 + 1).unwrap();
    assert_eq!((first.admitted, first.remaining), (true, 101));
    assert!(l.admit("k", T0 + 1).is_some());
    assert_eq!(
        l.admit("k", T0 + 1),
        None,
        "two tokens left after the first"
    );
    l.keep("k", 5, d, T0);
    assert_eq!(l.admit("k", T0 + LEASE_MS), None, "dropped after LEASE_MS");
    assert_eq!(l.held("k"), 0);
    // A chunk of one leaves nothing to keep.
    l.keep("k", 1, d, T0);
    assert_eq!(l.held("k"), 0);
}

#[test]
fn keys_are_bounded() {
    let mut l = Leases::default();
    let d = Decision::default();
    for i in 0..MAX_KEYS {
        l.keep(&format!("k{i}"), 2, d, T0);
    }
    l.keep("one more", 2, d, T0);
    assert_eq!(l.held("one more"), 0, "full: not kept");
    // Once the others expired, room is made.
    l.keep("one more", 2, d, T0 + LEASE_MS);
    assert_eq!(l.held("one more"), 1);
}

/// One request on `worker` the way the limit stage makes it: from the
/// worker's lease, else through the shared table taking a chunk.
fn admit(host: &mut MemHost, leases: &mut Leases, algo: &Algorithm, now: u64) -> bool {
    if leases.admit("key", now).is_some() {
        return true;
    }
    match table::acquire_many(host, 8, "key", algo, now, chunk(algo)) {
        Ok((d, taken)) => {
            if d.admitted {
                leases.keep("key", taken, d, now);
            }
            d.admitted
        }
        Err(_) => true, // fail open, as the stage does
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Two workers with leases: over the run, never more admitted than
    /// the bucket gave out plus what each worker may still hold (one
    /// chunk each), and never more than one chunk each refused while
    /// the shared bucket had tokens.
    #[test]
    fn leases_keep_the_gateway_bound_within_a_chunk_per_worker(
        capacity in 1_000u32..20_000,
        refill in 1.0f64..5_000.0,
        steps in proptest::collection::vec((0u64..50, 0usize..2), 1..400),
    ) {
        let algo = bucket(capacity, refill);
        let store = SharedStore::new_shared();
        let mut hosts = [MemHost::with_store(store.clone()), MemHost::with_store(store.clone())];
        let mut leases = [Leases::default(), Leases::default()];
        table::create(&mut hosts[0], 8).unwrap();
        let mut now = T0;
        let mut admitted = 0u64;
        for (gap, w) in &steps {
            now += gap;
            admitted += u64::from(admit(&mut hosts[*w], &mut leases[*w], &algo, now));
        }
        let t_s = (now - T0) as f64 / 1000.0;
        let bound = f64::from(capacity) + refill * t_s + 1.0;
        prop_assert!(admitted as f64 <= bound, "{admitted} > {bound}");
        // Tokens taken from the bucket and not yet used are what the
        // workers hold: at most a chunk each.
        for l in &leases {
            prop_assert!(l.held("key") < chunk(&algo));
        }
    }
}
