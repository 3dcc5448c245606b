//! Issue 3: the cache's memory is bounded by config, whatever the number
//! of distinct keys (on each host: Envoy, and Kong's engine; two workers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::envoy_config::Options;
use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;
use e2e::stack::Stack;
use serde_json::json;

const MAX_ENTRIES: u64 = 1000;
const MAX_ENTRY_BYTES: u64 = 4096;
const L1_BYTES: u64 = 1 << 20;
const KEYS: usize = 100_000;
/// What the gateway itself may grow by under this load besides the cache
/// (Envoy's stats, connection buffers, allocator slack; nginx's pools and
/// wasm memory pages), measured here at a few MiB.
const SLACK_BYTES: u64 = 48 << 20;

on_both_hosts!(a_hundred_thousand_distinct_keys_stay_within_the_configured_bound);
fn a_hundred_thousand_distinct_keys_stay_within_the_configured_bound(kind: GatewayKind) {
    let s = Stack::start_on(
        kind,
        "cache-bound",
        Options {
            filter: json!({
                "version": 1,
                "cache_store": {"max_entries": MAX_ENTRIES, "ways": 4, "max_entry_bytes": MAX_ENTRY_BYTES,
                                "l1_max_entries": 200, "l1_max_bytes": L1_BYTES},
                "routes": [{"name": "items", "match": {"prefix": "/api/items/"}, "cache": {}}]
            }),
            jwt: false,
        },
    );
    // Warm the connections and the allocator before the baseline.
    for i in 0..200 {
        s.get(&format!("/api/items/warm{i}"), &[]);
    }
    let before = s.gateway.memory_bytes();
    let threads = 8;
    std::thread::scope(|sc| {
        for t in 0..threads {
            let s = &s;
            sc.spawn(move || {
                for i in (t..KEYS).step_by(threads) {
                    let r = s.get(&format!("/api/items/k{i}?size=512"), &[]);
                    assert_eq!(r.status, 200);
                }
            });
        }
    });
    let after = s.gateway.memory_bytes();
    // Envoy only: Kong's engine here (bare nginx) serves no filter counters.
    if let Some(envoy) = s.gateway.envoy() {
        let stores = envoy.stat("wasmcustom.cost_optimizer.route.items.cache.stores");
        let evictions = envoy.stat("wasmcustom.cost_optimizer.route.items.cache.evictions");
        assert_eq!(stores, KEYS as u64 + 200);
        assert!(
            stores - evictions <= MAX_ENTRIES,
            "live entries {} exceed the bound {MAX_ENTRIES} (stores {stores}, evictions {evictions})",
            stores - evictions
        );
        eprintln!("stores {stores} evictions {evictions}");
    }
    let bound = MAX_ENTRIES * MAX_ENTRY_BYTES + 2 * L1_BYTES + SLACK_BYTES;
    let growth = after.saturating_sub(before);
    eprintln!(
        "{} memory: before {before}, after {after}, growth {growth}, bound {bound}",
        kind.name()
    );
    assert!(
        growth <= bound,
        "the gateway grew by {growth} bytes, more than the configured {bound}"
    );

    // The oldest keys were pushed out, the newest are still there. (The
    // parallel phase's last indexes are not its last stores: threads run
    // at their own pace. So store 40 more, one after another.)
    for i in 0..40 {
        s.get(&format!("/api/items/last{i}?size=512"), &[]);
    }
    let first = s.get("/api/items/k0?size=512", &[]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let hits = (0..40)
        .filter(|i| {
            s.get(&format!("/api/items/last{i}?size=512"), &[])
                .header("x-cache")
                == Some("HIT")
        })
        .count();
    eprintln!("{hits} of the 40 newest keys still cached");
    // 40 keys over 250 slots of 4 ways: a slot receiving 5 of them (odds
    // about 1 in 5,000) pushes out one.
    assert!(
        hits >= 39,
        "only {hits} of the 40 newest keys were still cached"
    );
}
