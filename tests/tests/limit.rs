//! Issue 6, end to end on the real Envoy (two workers): rate limits shared
//! by every worker, with priorities.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Barrier;
use std::time::{Duration, Instant};

use e2e::envoy_config::Options;
use e2e::http::{self, Resp};
use e2e::stack::Stack;
use serde_json::json;

fn stack(name: &str) -> Stack {
    Stack::start(
        name,
        Options {
            filter: json!({
                "version": 1,
                "identity": {"priority_header": {"name": "x-priority", "trusted": true}},
                "routes": [
                    {"name": "reports", "match": {"prefix": "/api/reports/"}, "priority": "low", "sla_ms": 2000,
                     "limit": {"by": "tenant_route", "token_bucket": {"capacity": 10, "refill_per_s": 0.01}}},
                    {"name": "steady", "match": {"prefix": "/api/steady/"}, "priority": "medium", "sla_ms": 2000,
                     "limit": {"by": "route", "token_bucket": {"capacity": 5, "refill_per_s": 10}}},
                    {"name": "tight", "match": {"prefix": "/api/tight/"}, "priority": "medium", "sla_ms": 100,
                     "limit": {"by": "route", "token_bucket": {"capacity": 1, "refill_per_s": 0.1}}},
                    {"name": "small", "match": {"prefix": "/api/small/"}, "priority": "medium", "sla_ms": 5000,
                     "limit": {"by": "route", "queue_bound": 1, "token_bucket": {"capacity": 1, "refill_per_s": 0.5}}}
                ]
            }),
            jwt: false,
        },
    )
}

/// `n` requests released together, each on its own connection.
fn burst(s: &Stack, n: usize, path: &str, headers: &[(&str, &str)]) -> Vec<(Resp, Duration)> {
    let barrier = Barrier::new(n);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    let r =
                        http::request_fresh("GET", &s.url(&format!("{path}{i}")), headers, None);
                    (r, t.elapsed())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn assert_valid_429(r: &Resp) {
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("integer retry-after");
    assert!(retry >= 1);
    let policy = r.header("ratelimit-policy").expect("ratelimit-policy");
    assert!(
        policy.starts_with('"') && policy.contains(";q=") && policy.contains(";w="),
        "{policy}"
    );
    let rl = r.header("ratelimit").expect("ratelimit");
    assert!(rl.contains(";r=0") && rl.contains(";t="), "{rl}");
    let body = r.json();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["retry_after_s"].as_u64(), Some(retry));
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn low_priority_beyond_capacity_is_told_when_to_retry() {
    let s = stack("limit-low");
    let answers = burst(&s, 30, "/api/reports/", &[("x-tenant-id", "acme")]);
    let ok: Vec<_> = answers.iter().filter(|(r, _)| r.status == 200).collect();
    assert_eq!(
        ok.len(),
        10,
        "exactly the capacity is admitted across both workers"
    );
    assert_eq!(s.demo.calls_under("/api/reports/"), 10);
    for (r, _) in &answers {
        if r.status == 200 {
            assert!(
                r.header("ratelimit").is_some(),
                "admitted answers carry ratelimit"
            );
        } else {
            assert_valid_429(r);
        }
    }
    assert_eq!(
        s.envoy
            .stat("wasmcustom.cost_optimizer.route.reports.limit.limited_low"),
        20
    );

    // Another tenant has its own budget.
    let other = burst(&s, 3, "/api/reports/g", &[("x-tenant-id", "globex")]);
    assert!(other.iter().all(|(r, _)| r.status == 200));
}

#[test]
fn high_priority_passes_with_a_warning() {
    let s = stack("limit-high");
    let answers = burst(
        &s,
        15,
        "/api/reports/",
        &[("x-tenant-id", "acme"), ("x-priority", "high")],
    );
    assert!(answers.iter().all(|(r, _)| r.status == 200));
    let warned = answers
        .iter()
        .filter(|(r, _)| r.header("x-optimizer-warning") == Some("rate-limit-exceeded"))
        .count();
    assert_eq!(warned, 5, "those over the capacity of 10 carry the warning");
    assert_eq!(s.demo.calls_under("/api/reports/"), 15);
    assert_eq!(
        s.envoy
            .stat("wasmcustom.cost_optimizer.route.reports.limit.limited_high"),
        5
    );
}

#[test]
fn medium_priority_waits_for_tokens_within_its_sla() {
    let s = stack("limit-medium");
    // Capacity 5, 10 tokens/s: the 10 beyond the capacity need about 1 s.
    let answers = burst(&s, 15, "/api/steady/", &[]);
    for (r, took) in &answers {
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            *took < Duration::from_millis(2_000 + 500),
            "answered within the SLA: {took:?}"
        );
    }
    assert_eq!(s.demo.calls_under("/api/steady/"), 15);
    assert!(
        s.envoy
            .stat("wasmcustom.cost_optimizer.route.steady.limit.queued")
            >= 8
    );
}

#[test]
fn medium_priority_that_could_not_make_its_sla_is_refused_at_once() {
    let s = stack("limit-tight");
    assert_eq!(s.get("/api/tight/1", &[]).status, 200);
    let t = Instant::now();
    let r = s.get("/api/tight/2", &[]);
    let took = t.elapsed();
    assert_valid_429(&r);
    assert_eq!(
        s.envoy
            .stat("wasmcustom.cost_optimizer.route.tight.limit.queued"),
        0,
        "never queued"
    );
    assert!(
        took < Duration::from_millis(1_000),
        "refused at once, not after waiting: {took:?}"
    );
}

#[test]
fn a_full_queue_pushes_back() {
    let s = stack("limit-queue");
    let answers = burst(&s, 6, "/api/small/", &[]);
    let refused: Vec<_> = answers.iter().filter(|(r, _)| r.status == 429).collect();
    assert!(
        !refused.is_empty(),
        "one slot per worker cannot hold five waiting requests"
    );
    for (r, _) in &refused {
        assert_valid_429(r);
    }
    assert!(
        s.envoy
            .stat("wasmcustom.cost_optimizer.route.small.limit.queue_rejects")
            >= 1
    );
}
