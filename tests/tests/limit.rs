//! Issue 6, end to end on each host (Envoy, and Kong's engine; two
//! workers): rate limits shared by every worker, with priorities.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use e2e::envoy_config::Options;
use e2e::http::{self, Resp};
use e2e::stack::Stack;
use serde_json::json;

fn stack(kind: GatewayKind, name: &str) -> Stack {
    Stack::start_on(
        kind,
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
    assert_eq!(
        r.text(),
        format!(r#"{{"error":"rate_limited","retry_after_s":{retry}}}"#),
        "the filter's body, byte for byte"
    );
    assert!(r.header("x-request-id").is_some());
}

on_both_hosts!(low_priority_beyond_capacity_is_told_when_to_retry);
fn low_priority_beyond_capacity_is_told_when_to_retry(kind: GatewayKind) {
    let s = stack(kind, "limit-low");
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
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.reports.limit.limited_low",
        |limited| assert_eq!(limited, 20),
    );

    // Another tenant has its own budget.
    let other = burst(&s, 3, "/api/reports/g", &[("x-tenant-id", "globex")]);
    assert!(other.iter().all(|(r, _)| r.status == 200));
}

on_both_hosts!(high_priority_passes_with_a_warning);
fn high_priority_passes_with_a_warning(kind: GatewayKind) {
    let s = stack(kind, "limit-high");
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
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.reports.limit.limited_high",
        |limited| assert_eq!(limited, 5),
    );
}

on_both_hosts!(medium_priority_waits_for_tokens_within_its_sla);
fn medium_priority_waits_for_tokens_within_its_sla(kind: GatewayKind) {
    let s = stack(kind, "limit-medium");
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
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.steady.limit.queued",
        |queued| assert!(queued >= 8, "{queued} queued"),
    );
}

on_both_hosts!(medium_priority_that_could_not_make_its_sla_is_refused_at_once);
fn medium_priority_that_could_not_make_its_sla_is_refused_at_once(kind: GatewayKind) {
    let s = stack(kind, "limit-tight");
    assert_eq!(s.get("/api/tight/1", &[]).status, 200);
    let t = Instant::now();
    let r = s.get("/api/tight/2", &[]);
    let took = t.elapsed();
    assert_valid_429(&r);
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.tight.limit.queued",
        |queued| assert_eq!(queued, 0, "never queued"),
    );
    assert!(
        took < Duration::from_millis(1_000),
        "refused at once, not after waiting: {took:?}"
    );
}

on_both_hosts!(a_full_queue_pushes_back);
fn a_full_queue_pushes_back(kind: GatewayKind) {
    let s = stack(kind, "limit-queue");
    let answers = burst(&s, 6, "/api/small/", &[]);
    let refused: Vec<_> = answers.iter().filter(|(r, _)| r.status == 429).collect();
    assert!(
        !refused.is_empty(),
        "one slot per worker cannot hold five waiting requests"
    );
    for (r, _) in &refused {
        assert_valid_429(r);
    }
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.small.limit.queue_rejects",
        |rejects| assert!(rejects >= 1),
    );
}
