//! The rate-limit stage against the in-memory host: priorities, the
//! medium queue admitted by the timer, refusals that carry the draft's
//! fields.

use super::*;
use crate::config::parse;
use crate::mem_host::MemHost;

const CFG: &str = r#"{"version":1,
  "identity":{"priority_header":{"name":"x-priority","trusted":true}},
  "routes":[{"name":"r","match":{"prefix":"/r/"},"priority":"medium","sla_ms":1000,
             "limit":{"by":"route","queue_bound":2,"token_bucket":{"capacity":1,"refill_per_s":10}}}]}"#;

fn setup() -> (Filter, Worker, MemHost) {
    let mut host = MemHost::new();
    let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), &mut host);
    filter.create_tables(&mut host).unwrap();
    let worker = Worker::new(&filter.config, &mut host);
    (filter, worker, host)
}

fn ask(
    f: &Filter,
    w: &mut Worker,
    h: &mut MemHost,
    stream: u32,
    priority: &str,
    now: u64,
) -> (Verdict, ()) {
    h.now_ms = now;
    h.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), format!("/r/{stream}").into_bytes()),
        ("x-priority".into(), priority.as_bytes().to_vec()),
    ];
    (on_request_headers(f, w, h, stream), ())
}

#[test]
fn low_is_refused_with_the_drafts_fields_and_high_passes_with_a_warning() {
    let (f, mut w, mut h) = setup();
    let t = 1_000_000;
    assert_eq!(ask(&f, &mut w, &mut h, 1, "low", t).0, Verdict::Continue);
    assert_eq!(ask(&f, &mut w, &mut h, 2, "low", t).0, Verdict::Pause);
    let r = &h.replies[0];
    assert_eq!((r.stream, r.status), (2, 429));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("ratelimit-policy"), Some("\"r\";q=1;w=1"));
    assert!(r.header("ratelimit").unwrap().starts_with("\"r\";r=0;t="));
    assert!(String::from_utf8_lossy(&r.body).contains("\"rate_limited\""));

    let (v, _) = ask(&f, &mut w, &mut h, 3, "high", t);
    assert_eq!(v, Verdict::Continue);
    h.response_headers.clear();
    on_response_headers(&f, &mut w, &mut h, 3, false);
    assert_eq!(
        h.response_header("x-optimizer-warning"),
        Some("rate-limit-exceeded")
    );
    assert!(h.response_header("ratelimit").is_some());
}

#[test]
fn medium_waits_and_the_timer_admits_it_when_a_token_is_back() {
    let (f, mut w, mut h) = setup();
    let t = 1_000_000;
    ask(&f, &mut w, &mut h, 1, "medium", t);
    let (v, _) = ask(&f, &mut w, &mut h, 2, "medium", t);
    assert_eq!(v, Verdict::Pause);
    assert_eq!(w.requests[&2].phase, Phase::Parked(Wait::Limit));
    assert!(h.replies.is_empty(), "queued, not refused");
    assert_eq!(
        h.tick_periods.last(),
        Some(&10),
        "the timer ticks fast while it waits"
    );
    h.now_ms = t + 50;
    on_tick(&f, &mut w, &mut h);
    assert!(h.resumed.is_empty(), "no token yet");
    h.now_ms = t + 100;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.resumed, vec![2]);
    assert_eq!(w.requests[&2].phase, Phase::Upstream);
    // Its response carries the limiter's fields.
    on_response_headers(&f, &mut w, &mut h, 2, false);
    assert!(h.response_header("ratelimit").is_some());
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.tick_periods.last(), Some(&SLOW_TICK_MS));
}

#[test]
fn medium_is_refused_when_the_queue_is_full_or_the_wait_breaks_its_sla() {
    let (f, mut w, mut h) = setup();
    let t = 1_000_000;
    ask(&f, &mut w, &mut h, 1, "medium", t);
    assert_eq!(ask(&f, &mut w, &mut h, 2, "medium", t).0, Verdict::Pause);
    assert_eq!(ask(&f, &mut w, &mut h, 3, "medium", t).0, Verdict::Pause);
    assert!(h.replies.is_empty());
    // Queue bound 2: the next one is pushed back.
    assert_eq!(ask(&f, &mut w, &mut h, 4, "medium", t).0, Verdict::Pause);
    assert_eq!(
        h.replies.last().map(|r| (r.stream, r.status)),
        Some((4, 429))
    );
    assert_eq!(h.counter("cost_optimizer.route.r.limit.queue_rejects"), 1);
}

#[test]
fn a_queued_request_whose_sla_runs_out_is_refused_by_the_timer() {
    let mut host = MemHost::new();
    let cfg = r#"{"version":1,"routes":[{"name":"r","match":{"prefix":"/r/"},"priority":"medium","sla_ms":1000,
        "limit":{"by":"route","token_bucket":{"capacity":1,"refill_per_s":1.2}}}]}"#;
    let f = Filter::new(parse(cfg.as_bytes()).unwrap(), &mut host);
    f.create_tables(&mut host).unwrap();
    let mut w = Worker::new(&f.config, &mut host);
    let t = 1_000_000;
    ask(&f, &mut w, &mut host, 1, "medium", t);
    assert_eq!(ask(&f, &mut w, &mut host, 2, "medium", t).0, Verdict::Pause);
    // Another gateway worker takes the token meanwhile.
    let _ = crate::limit::table::acquire(
        &mut host,
        f.config.limit_slots,
        "r|r",
        &f.config.routes[0].limit.as_ref().unwrap().algorithm,
        t + 840,
    );
    host.now_ms = t + 1_001;
    on_tick(&f, &mut w, &mut host);
    assert_eq!(
        host.replies.last().map(|r| (r.stream, r.status)),
        Some((2, 429))
    );
    assert!(host.resumed.is_empty());
}

/// A bucket of 64,000 tokens is leased in chunks of 64: a worker's first
/// request takes 64 from the shared bucket in its one compare-and-swap,
/// its next 63 make no shared-data call, and another worker takes a chunk
/// of its own. The shared bucket shows every token taken.
#[test]
fn a_large_bucket_is_leased_in_chunks_and_every_token_is_counted() {
    let cfg = r#"{"version":1,"routes":[{"name":"r","match":{"prefix":"/r/"},"priority":"low",
        "limit":{"by":"route","token_bucket":{"capacity":64000,"refill_per_s":0.001}}}]}"#;
    let store = crate::mem_host::SharedStore::new_shared();
    let t = 1_000_000;
    let (mut a, fa, mut wa) = test_worker(&store, cfg, t);
    let (mut b, fb, mut wb) = test_worker(&store, cfg, t);
    let shared_calls = |h: &MemHost| {
        let c = h.take_calls();
        c.get("shared_get").copied().unwrap_or(0) + c.get("shared_set").copied().unwrap_or(0)
    };
    assert_eq!(ask(&fa, &mut wa, &mut a, 1, "low", t).0, Verdict::Continue);
    assert_eq!(shared_calls(&a), 2, "read and compare-and-swap");
    for s in 2..=64 {
        assert_eq!(ask(&fa, &mut wa, &mut a, s, "low", t).0, Verdict::Continue);
    }
    assert_eq!(shared_calls(&a), 0, "63 admitted from the lease");
    assert_eq!(wa.limiter.leases.held("r|r"), 0);
    assert_eq!(ask(&fb, &mut wb, &mut b, 1, "low", t).0, Verdict::Continue);
    assert_eq!(wb.limiter.leases.held("r|r"), 63);
    // The 65th request on `a` takes a new chunk.
    ask(&fa, &mut wa, &mut a, 65, "low", t);
    assert_eq!(shared_calls(&a), 2);
    // 3 chunks out of 64,000: 63,808 left for the whole gateway.
    let algo = fa.config.routes[0].limit.as_ref().unwrap().algorithm;
    let (d, _) =
        crate::limit::table::acquire_many(&mut a, fa.config.limit_slots, "r|r", &algo, t, 1)
            .unwrap();
    assert_eq!(d.remaining, 64_000 - 3 * 64 - 1);
    // The answer's RateLimit field counts what this worker can admit.
    on_response_headers(&fa, &mut wa, &mut a, 65, false);
    assert!(a
        .response_header("ratelimit")
        .is_some_and(|v| v.starts_with("\"r\";r=")));
}
