//! A worker's slices of a tenant's budget pool (`cost/budget_slice.rs`)
//! through the pipeline against the in-memory host: requests reserve from
//! the slice without shared data, the money of the lease is always in the
//! pool, a slice or a request, and the timer gives a slice's rest back.

use super::*;
use crate::config::parse;
use crate::cost::budget;
use crate::cost::budget_slice::{SLICE_MS, SLICE_REQUESTS};
use crate::mem_host::{MemHost, SharedStore};

/// A $10 lease, $0.002 a request: far above the low-water mark (20 % of
/// the lease), so slices are taken.
const CFG: &str = r#"{"version":1,
  "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","flush_ms":100,
                "budgets":{"lease":"10","slots":4}},
  "routes":[
  {"name":"paid","match":{"prefix":"/paid/"},"debug_headers":true,
   "cost":{"cost_per_call":"0.002","budget":{}}}]}"#;

const LEASE: i64 = 10_000_000;
const PRICE: i64 = 2_000;
const NOW: u64 = 10_000;

fn worker(host: &mut MemHost) -> (Filter, Worker) {
    let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), host);
    filter.create_tables(host).unwrap();
    let worker = Worker::new(&filter.config, host);
    (filter, worker)
}

fn grant(h: &mut MemHost, id: &str) {
    let g = budget::Grant {
        allowance_id: Some(id.to_string()),
        granted_micros: LEASE,
        expires_at_ms: 600_000,
        soft: false,
        hard: false,
    };
    budget::apply_grant(h, 4, "acme", &g, NOW, 1_000).unwrap();
}

/// One request of `acme`, answered 200; whether shared data was read.
fn served(f: &Filter, w: &mut Worker, h: &mut MemHost, stream: StreamId) -> bool {
    h.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), format!("/paid/{stream}").into_bytes()),
        ("x-tenant-id".into(), b"acme".to_vec()),
    ];
    h.take_calls();
    assert_eq!(
        on_request_headers(f, w, h, stream),
        Verdict::Continue,
        "request {stream} not sent on"
    );
    let read_shared = h.take_calls().contains_key("shared_get");
    h.response_headers = vec![(":status".into(), b"200".to_vec())];
    on_response_headers(f, w, h, stream, true);
    on_done(f, w, h, stream);
    assert_eq!(h.response_header("x-optimizer-cost"), Some("2000"));
    read_shared
}

fn pool(h: &MemHost) -> i64 {
    budget::read(h, 4, "acme").unwrap().pool_micros
}

fn slice(w: &Worker) -> i64 {
    w.budgeter.slices.get("acme").map_or(0, |s| s.micros)
}

#[test]
fn requests_reserve_from_the_workers_slice_and_the_lease_is_all_accounted() {
    let mut h = MemHost::new();
    h.now_ms = NOW;
    let (f, mut w) = worker(&mut h);
    grant(&mut h, "L1");
    let n = SLICE_REQUESTS + 2;
    let mut shared_reads = 0;
    for i in 1..=n {
        shared_reads += usize::from(served(&f, &mut w, &mut h, i as StreamId));
        // Every micro of the lease is in the pool, the slice or spent.
        assert_eq!(pool(&h) + slice(&w) + i * PRICE, LEASE, "after request {i}");
    }
    // The first took a slice of SLICE_REQUESTS requests; the one after
    // those took the next.
    assert_eq!(shared_reads, 2, "shared data read once per slice");
    // The slice's time is up: the timer gives its rest back.
    h.now_ms = NOW + SLICE_MS;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(slice(&w), 0);
    assert!(w.budgeter.slices.is_empty());
    assert_eq!(pool(&h), LEASE - n * PRICE, "the pool is whole again");
    // Every spend is reported against the lease its money came from.
    let report = h.last_callout_to("/v1/spend").expect("the spend report");
    let body: serde_json::Value = serde_json::from_slice(report.body.as_ref().unwrap()).unwrap();
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len() as i64, n);
    assert!(events.iter().all(|e| e["allowance_id"] == "L1"), "{body}");
}

#[test]
fn another_worker_sees_the_pool_less_the_slice_until_it_comes_back() {
    let store = SharedStore::new_shared();
    let mut ha = MemHost::with_store(store.clone());
    let mut hb = MemHost::with_store(store);
    ha.now_ms = NOW;
    hb.now_ms = NOW;
    let (fa, mut wa) = worker(&mut ha);
    let (fb, mut wb) = worker(&mut hb);
    grant(&mut ha, "L1");
    served(&fa, &mut wa, &mut ha, 1);
    let held = slice(&wa);
    assert_eq!(held, SLICE_REQUESTS * PRICE);
    assert_eq!(pool(&hb), LEASE - PRICE - held, "B sees A's slice taken");
    // B takes its own slice; both hold one, the pool holds the rest.
    served(&fb, &mut wb, &mut hb, 1);
    assert_eq!(pool(&hb) + slice(&wa) + slice(&wb) + 2 * PRICE, LEASE);
    // A's timer, a second on: A's rest goes back; B's slice is B's.
    ha.now_ms = NOW + SLICE_MS;
    on_tick(&fa, &mut wa, &mut ha);
    assert_eq!(pool(&hb) + slice(&wb) + 2 * PRICE, LEASE);
}

#[test]
fn a_slice_of_a_replaced_lease_is_spent_under_it_and_not_returned_to_the_new_one() {
    let mut h = MemHost::new();
    h.now_ms = NOW;
    let (f, mut w) = worker(&mut h);
    grant(&mut h, "L1");
    served(&f, &mut w, &mut h, 1);
    assert!(slice(&w) > 0);
    // A new lease replaces the pool (the old one's rest is dropped:
    // cost-control returns it when L1 expires).
    grant(&mut h, "L2");
    assert_eq!(pool(&h), LEASE);
    assert!(!served(&f, &mut w, &mut h, 2), "from L1's slice");
    h.now_ms = NOW + SLICE_MS;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(pool(&h), LEASE, "L1's slice is not added to L2's pool");
}

#[test]
fn an_unused_reservation_returns_to_the_slice_without_shared_data() {
    let mut h = MemHost::new();
    h.now_ms = NOW;
    let (f, mut w) = worker(&mut h);
    grant(&mut h, "L1");
    served(&f, &mut w, &mut h, 1);
    let held = slice(&w);
    h.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), b"/paid/gone".to_vec()),
        ("x-tenant-id".into(), b"acme".to_vec()),
    ];
    h.take_calls();
    assert_eq!(on_request_headers(&f, &mut w, &mut h, 2), Verdict::Continue);
    assert_eq!(slice(&w), held - PRICE);
    // The client leaves before any answer.
    on_done(&f, &mut w, &mut h, 2);
    assert_eq!(slice(&w), held, "its estimate is the slice's again");
    let calls = h.take_calls();
    assert!(
        !calls.contains_key("shared_get") && !calls.contains_key("shared_set"),
        "{calls:?}"
    );
}

#[test]
fn near_the_low_water_mark_requests_reserve_one_by_one() {
    let mut h = MemHost::new();
    h.now_ms = NOW;
    let (f, mut w) = worker(&mut h);
    // A pool just above the mark (20 % of the $10 lease): what lies above
    // it is less than 8 estimates, so no slice is taken.
    let g = budget::Grant {
        allowance_id: Some("L1".into()),
        granted_micros: 2_000_000 + 10 * PRICE,
        expires_at_ms: 600_000,
        soft: false,
        hard: false,
    };
    budget::apply_grant(&mut h, 4, "acme", &g, NOW, 1_000).unwrap();
    for i in 1..=3 {
        assert!(served(&f, &mut w, &mut h, i), "request {i} reads the pool");
        assert_eq!(slice(&w), 0);
    }
}
