//! The cache's epoch counter (`cache/generations.rs`): a lookup reads the
//! host counter `cost_optimizer.cache.epoch` instead of the shared epoch,
//! and still sees every invalidation another worker makes at its next
//! request; a bump that does not move the counter (another version of the
//! filter) is seen at the next tick.

use super::*;
use crate::cache::generations::Generations;
use crate::mem_host::{MemHost, SharedStore};

const CFG: &str = r#"{"version":1,"routes":[{"name":"items","match":{"prefix":"/items/"},
    "sla_ms":1000,"cache":{}}]}"#;
const T: u64 = 1_000_000;

fn ask(f: &Filter, h: &mut MemHost, w: &mut Worker, id: u32, method: &str) -> Verdict {
    h.request_headers = vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), b"/items/1".to_vec()),
        (":authority".into(), b"api".to_vec()),
    ];
    on_request_headers(f, w, h, id)
}

/// A GET that goes upstream, answered 200 and stored.
fn fill(f: &Filter, h: &mut MemHost, w: &mut Worker, id: u32) {
    assert_eq!(ask(f, h, w, id, "GET"), Verdict::Continue, "a miss");
    h.response_headers = vec![
        (":status".into(), b"200".to_vec()),
        ("cache-control".into(), b"max-age=600".to_vec()),
    ];
    h.response_chunk = b"item one".to_vec();
    on_response_headers(f, w, h, id, false);
    on_response_body(f, w, h, id, 8, true);
    on_done(f, w, h, id);
}

/// A write (`method`) answered `status`, then the next GET on another
/// worker's view: a miss.
fn write_then_miss(
    f: &Filter,
    (h, w): (&mut MemHost, &mut Worker),
    (other, other_w): (&mut MemHost, &mut Worker),
    id: u32,
    (method, status): (&str, &[u8]),
) {
    assert_eq!(ask(f, h, w, id, method), Verdict::Continue);
    h.response_headers = vec![(":status".into(), status.to_vec())];
    on_response_headers(f, w, h, id, true);
    on_done(f, w, h, id);
    assert_eq!(
        ask(f, other, other_w, id + 1, "GET"),
        Verdict::Continue,
        "a miss"
    );
}

#[test]
fn a_hit_reads_the_counter_not_shared_data_and_sees_another_workers_write() {
    let store = SharedStore::new_shared();
    let (mut a, f, mut wa) = test_worker(&store, CFG, T);
    let (mut b, _, mut wb) = test_worker(&store, CFG, T);
    assert!(f.checks_epoch());
    fill(&f, &mut a, &mut wa, 1);
    assert_eq!(ask(&f, &mut a, &mut wa, 2, "GET"), Verdict::Pause, "a hit");
    a.take_calls();
    assert_eq!(ask(&f, &mut a, &mut wa, 3, "GET"), Verdict::Pause, "a hit");
    let calls = a.take_calls();
    assert_eq!(calls.get("shared_get"), None, "{calls:?}");
    assert_eq!(calls.get("counter_value"), Some(&1), "{calls:?}");

    // A write on the other worker, answered: the next lookup on the first
    // misses. It reads no shared epoch unless the counter moved (above), so
    // the counter carried the write.
    write_then_miss(&f, (&mut b, &mut wb), (&mut a, &mut wa), 4, ("PUT", b"204"));
}

#[test]
fn a_bump_that_leaves_the_counter_alone_is_seen_at_the_next_tick() {
    let store = SharedStore::new_shared();
    let (mut a, f, mut wa) = test_worker(&store, CFG, T);
    let (mut b, _, _) = test_worker(&store, CFG, T);
    fill(&f, &mut a, &mut wa, 1);
    assert_eq!(ask(&f, &mut a, &mut wa, 2, "GET"), Verdict::Pause, "a hit");
    // Another version of the filter bumps every slot and not the counter.
    let slots = f.config.cache_store.generation_slots;
    let all: Vec<u32> = (0..slots).collect();
    Generations::bump(&mut b, slots, &all, None).unwrap();
    assert_eq!(
        ask(&f, &mut a, &mut wa, 3, "GET"),
        Verdict::Pause,
        "until the tick, the counter says nothing moved"
    );
    on_tick(&f, &mut wa, &mut a);
    assert_eq!(
        ask(&f, &mut a, &mut wa, 4, "GET"),
        Verdict::Continue,
        "a miss"
    );
}

#[test]
fn the_timer_reads_the_epoch_key_at_most_once_a_second() {
    let store = SharedStore::new_shared();
    let (mut a, f, mut wa) = test_worker(&store, CFG, T);
    let reads = |h: &MemHost| h.take_calls().get("shared_get").copied().unwrap_or(0);
    reads(&a);
    // The first check reads the epoch and, the worker's copy being empty,
    // the table; the next only the epoch, a second later.
    for (now, want) in [
        (T, 2),
        (T + 10, 0),
        (T + 999, 0),
        (T + 1_000, 1),
        (T + 1_010, 0),
    ] {
        a.now_ms = now;
        on_tick(&f, &mut wa, &mut a);
        assert_eq!(reads(&a), want, "tick at {now}");
    }
}

#[test]
fn a_host_that_keeps_no_counter_values_leaves_lookups_on_the_shared_epoch() {
    let store = SharedStore::new_shared();
    store.borrow_mut().null_counters = true;
    let (mut a, f, mut wa) = test_worker(&store, CFG, T);
    let (mut b, _, mut wb) = test_worker(&store, CFG, T);
    assert!(!f.checks_epoch());
    assert!(a
        .logs
        .borrow()
        .iter()
        .any(|(_, m)| m.contains("cost_optimizer.cache.epoch")));
    fill(&f, &mut a, &mut wa, 1);
    a.take_calls();
    assert_eq!(ask(&f, &mut a, &mut wa, 2, "GET"), Verdict::Pause, "a hit");
    let calls = a.take_calls();
    assert_eq!(calls.get("shared_get"), Some(&1), "the epoch: {calls:?}");
    assert_eq!(calls.get("counter_value"), None, "{calls:?}");
    write_then_miss(
        &f,
        (&mut b, &mut wb),
        (&mut a, &mut wa),
        3,
        ("DELETE", b"200"),
    );
}

#[test]
fn only_a_config_that_caches_defines_and_probes_the_counter() {
    let store = SharedStore::new_shared();
    let cfg = r#"{"version":1,"routes":[{"name":"live","match":{"prefix":"/live/"},
        "sla_ms":1000,"coalesce":{}}]}"#;
    let (h, f, _) = test_worker(&store, cfg, T);
    assert!(!f.checks_epoch());
    assert_eq!(h.counter("cost_optimizer.cache.epoch"), 0);
    // Each worker of a caching config adds 1 when it probes.
    let (a, _, _) = test_worker(&store, CFG, T);
    let (_, g, _) = test_worker(&store, CFG, T);
    assert!(g.checks_epoch() && g.has_timer());
    let id = g.metrics.cache_epoch.unwrap();
    assert_eq!(a.counter_value(id), Some(2));
}
