//! Parked requests continue where they stopped: a request the limiter
//! queued, or that waited for its tenant's first lease, meets the stages
//! after that one (budget, coalescing, batching) exactly as if it had not
//! waited.

use super::*;
use crate::config::parse;
use crate::mem_host::MemHost;

const COALESCED_BUDGET: &str = r#"{"version":1,
  "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","budgets":{"lease":"0.1","slots":4}},
  "routes":[{"name":"live","match":{"prefix":"/live/"},"sla_ms":5000,"priority":"medium",
    "coalesce":{},
    LIMIT
    "cost":{"cost_per_call":"0.002","budget":{}}}]}"#;

const LIMIT: &str = r#""limit":{"by":"tenant","token_bucket":{"capacity":1,"refill_per_s":10.0}},"#;

fn setup(cfg: &str) -> (Filter, Worker, MemHost) {
    let mut h = MemHost::new();
    let f = Filter::new(parse(cfg.as_bytes()).unwrap(), &mut h);
    f.create_tables(&mut h).unwrap();
    let w = Worker::new(&f.config, &mut h);
    (f, w, h)
}

fn get(f: &Filter, w: &mut Worker, h: &mut MemHost, stream: StreamId, path: &str) -> Verdict {
    h.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        ("x-tenant-id".into(), b"fresh".to_vec()),
    ];
    on_request_headers(f, w, h, stream)
}

fn phase(w: &Worker, stream: StreamId) -> Phase {
    w.requests[&stream].phase
}

/// Answer the lease callout the timer made.
fn grant(f: &Filter, w: &mut Worker, h: &mut MemHost) {
    let call = h
        .last_callout_to("/v1/allowances")
        .expect("a lease call")
        .clone();
    h.callout_headers = vec![(":status".into(), b"200".to_vec())];
    h.callout_body =
        br#"{"allowance_id":"L1","granted_micros":100000,"expires_at_ms":900000}"#.to_vec();
    let n = h.callout_body.len();
    on_callout_response(f, w, h, call.token, n);
}

fn respond(f: &Filter, w: &mut Worker, h: &mut MemHost, stream: StreamId, body: &[u8]) {
    h.response_headers = vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), b"text/plain".to_vec()),
    ];
    h.response_chunk = body.to_vec();
    on_response_headers(f, w, h, stream, false);
    on_response_body(f, w, h, stream, body.len(), true);
}

#[test]
fn a_cold_burst_that_waited_for_its_first_lease_still_coalesces() {
    let cfg = COALESCED_BUDGET.replace("LIMIT", "");
    let (f, mut w, mut h) = setup(&cfg);
    h.now_ms = 10_000;
    for s in 1..=5 {
        assert_eq!(get(&f, &mut w, &mut h, s, "/live/x"), Verdict::Pause);
        assert_eq!(phase(&w, s), Phase::Parked(Wait::Lease));
    }
    on_tick(&f, &mut w, &mut h);
    grant(&f, &mut w, &mut h);
    assert_eq!(h.resumed, vec![1], "one leader goes upstream");
    assert_eq!(phase(&w, 1), Phase::Upstream);
    for s in 2..=5 {
        assert_eq!(phase(&w, s), Phase::Parked(Wait::Leader), "stream {s}");
    }
    respond(&f, &mut w, &mut h, 1, b"hello");
    let answered: Vec<StreamId> = h.replies.iter().map(|r| r.stream).collect();
    assert_eq!(answered, vec![2, 3, 4, 5]);
    assert!(h.replies.iter().all(|r| r.body == b"hello"));
    for s in 2..=5 {
        assert_eq!(phase(&w, s), Phase::Answered(Served::Coalesced));
    }
    assert_eq!(h.resumed, vec![1]);
    assert_eq!(h.counter("cost_optimizer.route.live.budget.waited"), 5);
}

#[test]
fn a_request_the_limiter_queued_coalesces_when_admitted() {
    let cfg = COALESCED_BUDGET.replace("LIMIT", LIMIT);
    let (f, mut w, mut h) = setup(&cfg);
    h.now_ms = 10_000;
    for s in 1..=4 {
        assert_eq!(get(&f, &mut w, &mut h, s, "/live/y"), Verdict::Pause);
    }
    assert_eq!(phase(&w, 1), Phase::Parked(Wait::Lease), "took the token");
    for s in 2..=4 {
        assert_eq!(phase(&w, s), Phase::Parked(Wait::Limit));
    }
    on_tick(&f, &mut w, &mut h);
    grant(&f, &mut w, &mut h);
    assert_eq!(h.resumed, vec![1]);
    // Tokens come back one per 100 ms: each admitted request follows
    // the leader in flight instead of going upstream.
    for step in 1..=3 {
        h.now_ms = 10_000 + step * 100;
        on_tick(&f, &mut w, &mut h);
    }
    for s in 2..=4 {
        assert_eq!(phase(&w, s), Phase::Parked(Wait::Leader), "stream {s}");
    }
    assert!(w.limiter.queue.is_empty());
    assert_eq!(h.resumed, vec![1]);
    // The pass each admission let go on runs on the time it went on (the
    // coalescing stage elects with it), not the time its headers came.
    for s in 2..=4u32 {
        assert_eq!(
            w.requests[&s].clock_ms,
            10_000 + u64::from(s - 1) * 100,
            "stream {s}"
        );
    }
    respond(&f, &mut w, &mut h, 1, b"once");
    assert_eq!(h.replies.len(), 3);
    assert!(h
        .replies
        .iter()
        .all(|r| r.status == 200 && r.body == b"once"));
    // Each admitted request carries the limiter's fields on its answer
    // path, and the budget reserved for each of them.
    assert!(w.requests[&2].limit.is_some());
    assert_eq!(h.counter("cost_optimizer.route.live.budget.reserved"), 4);
}

#[test]
fn a_request_the_limiter_queued_joins_a_batch_when_admitted() {
    let cfg = r#"{"version":1,"routes":[{"name":"q","match":{"prefix":"/q/"},"sla_ms":5000,
        "priority":"medium",
        "limit":{"by":"route","token_bucket":{"capacity":1,"refill_per_s":10.0}},
        "batch":{"upstream":"demo_api","path":"/api/batch","window_ms":300,"max_size":8}}]}"#;
    let (f, mut w, mut h) = setup(cfg);
    h.now_ms = 1_000;
    assert_eq!(get(&f, &mut w, &mut h, 1, "/q/1"), Verdict::Pause);
    assert_eq!(phase(&w, 1), Phase::Parked(Wait::Batch));
    assert_eq!(get(&f, &mut w, &mut h, 2, "/q/2"), Verdict::Pause);
    assert_eq!(phase(&w, 2), Phase::Parked(Wait::Limit));
    h.now_ms = 1_100;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(phase(&w, 2), Phase::Parked(Wait::Batch), "joined the batch");
    assert!(h.resumed.is_empty());
    h.now_ms = 1_400;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.callouts.len(), 1, "one batch call");
    let sent: serde_json::Value =
        serde_json::from_slice(h.callouts[0].body.as_ref().unwrap()).unwrap();
    let paths: Vec<&str> = sent["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["/q/1", "/q/2"]);
}

#[test]
fn a_stream_that_ends_while_parked_leaves_its_stage_and_the_table() {
    let cfg = COALESCED_BUDGET.replace("LIMIT", LIMIT);
    let (f, mut w, mut h) = setup(&cfg);
    h.now_ms = 10_000;
    get(&f, &mut w, &mut h, 1, "/live/z");
    get(&f, &mut w, &mut h, 2, "/live/z");
    on_done(&f, &mut w, &mut h, 1);
    on_done(&f, &mut w, &mut h, 2);
    assert!(w.requests.is_empty());
    assert!(w.limiter.queue.is_empty());
    assert!(!w.budgeter.has_waiting());
    // A wake for a stream that is gone does nothing.
    on_tick(&f, &mut w, &mut h);
    h.now_ms = 20_000;
    on_tick(&f, &mut w, &mut h);
    assert!(h.resumed.is_empty() && h.replies.is_empty());
}
