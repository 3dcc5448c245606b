//! Issue 13, end to end on each host (Envoy, and Kong's engine; two
//! workers) with the real cost-control: a request that waited (for its tenant's first budget
//! lease, or in the rate limiter's medium-priority queue) continues with
//! coalescing and batching exactly as if it had not waited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::sync::Barrier;

use e2e::envoy_config::Options;
use e2e::http::{self, Resp};
use e2e::stack::Stack;
use serde_json::{json, Value};

fn options(routes: Value) -> Options {
    Options {
        filter: json!({
            "version": 1,
            "accounting": {
                "cost_control": "cost_control", "token": "gateway-dev-token",
                "gateway_id": "gw-resume", "flush_ms": 100, "timeout_ms": 1000,
                "budgets": {"lease": "1", "retry_ms": 200}
            },
            "routes": routes
        }),
        jwt: false,
    }
}

/// `n` identical requests fired together, each on its own connection (so
/// Envoy spreads them over both workers).
fn burst(s: &Stack, n: usize, path: &str, tenant: &str) -> Vec<Resp> {
    let barrier = Barrier::new(n);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    http::request_fresh("GET", &s.url(path), &[("x-tenant-id", tenant)], None)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn assert_one_call_for_all(s: &Stack, answers: &[Resp], upstream_path: &str) {
    for r in answers {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let bodies: Vec<&[u8]> = answers.iter().map(|r| r.body.as_slice()).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every answer is the leader's: {:?}",
        answers
            .iter()
            .map(|r| (r.text(), r.header("x-cache").map(str::to_string)))
            .collect::<Vec<_>>()
    );
    let coalesced = answers
        .iter()
        .filter(|r| r.header("x-cache") == Some("COALESCED"))
        .count();
    assert_eq!(coalesced, answers.len() - 1, "all but the leader coalesced");
    assert_eq!(
        s.demo.calls_for(upstream_path),
        1,
        "exactly one upstream call"
    );
}

on_both_hosts!(a_cold_burst_of_a_new_tenant_waits_for_its_lease_then_coalesces);
fn a_cold_burst_of_a_new_tenant_waits_for_its_lease_then_coalesces(kind: GatewayKind) {
    let s = Stack::start_with_control_on(
        kind,
        "resume-lease",
        options(json!([
            {"name": "live", "match": {"prefix": "/api/live/"}, "sla_ms": 5000,
             "coalesce": {"grace_ms": 5000},
             "cost": {"cost_per_call": "0.002", "budget": {}}}
        ])),
    );
    let path = "/api/live/cold?cache-control=no-store&delay_ms=1000";
    let answers = burst(&s, 50, path, "newcomer");
    assert_one_call_for_all(&s, &answers, "/api/live/cold");
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.live.budget.waited",
        |waited| {
            assert!(waited >= 1, "the burst waited for the first lease");
            eprintln!("50 requests, 1 upstream call, {waited} waited for the lease");
        },
    );
}

on_both_hosts!(a_cold_burst_through_the_limiters_queue_still_coalesces);
fn a_cold_burst_through_the_limiters_queue_still_coalesces(kind: GatewayKind) {
    let s = Stack::start_with_control_on(
        kind,
        "resume-limit",
        options(json!([
            {"name": "live", "match": {"prefix": "/api/live/"}, "sla_ms": 5000,
             "priority": "medium",
             "limit": {"by": "tenant", "queue_bound": 100,
                       "token_bucket": {"capacity": 10, "refill_per_s": 20.0}},
             "coalesce": {"grace_ms": 5000},
             "cost": {"cost_per_call": "0.002", "budget": {}}}
        ])),
    );
    // 40 beyond the bucket's 10 wait up to 2 s for tokens; the leader's
    // answer takes 3 s, so every admitted request finds it in flight.
    let path = "/api/live/queued?cache-control=no-store&delay_ms=3000";
    let answers = burst(&s, 50, path, "queued-newcomer");
    assert_one_call_for_all(&s, &answers, "/api/live/queued");
    for r in &answers {
        assert!(
            r.header("ratelimit").is_some(),
            "limiter fields on every answer"
        );
    }
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.live.limit.queued",
        |queued| {
            // Tokens come back at 20/s: unless the burst took more than a
            // second to arrive, at least 20 of it queued.
            assert!(queued >= 20, "most of the burst was queued: {queued}");
            eprintln!("50 requests, {queued} queued, 1 upstream call");
        },
    );
}

on_both_hosts!(a_queued_medium_request_on_a_batched_rule_joins_a_batch);
fn a_queued_medium_request_on_a_batched_rule_joins_a_batch(kind: GatewayKind) {
    let s = Stack::start_on(
        kind,
        "resume-batch",
        Options {
            filter: json!({
                "version": 1,
                "routes": [
                    {"name": "q", "match": {"prefix": "/api/quotes/"}, "sla_ms": 5000,
                     "priority": "medium",
                     "limit": {"by": "route", "queue_bound": 16,
                               "token_bucket": {"capacity": 1, "refill_per_s": 10.0}},
                     "batch": {"upstream": "demo_api", "path": "/api/batch",
                               "window_ms": 600, "window_min_ms": 600, "max_size": 8}}
                ]
            }),
            jwt: false,
        },
    );
    let n = 4;
    let barrier = Barrier::new(n);
    let answers: Vec<Resp> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, s) = (&barrier, &s);
                sc.spawn(move || {
                    barrier.wait();
                    http::request_fresh(
                        "GET",
                        &s.url(&format!("/api/quotes/{i}")),
                        &[("x-tenant-id", "acme")],
                        None,
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in answers.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-cache"), Some("BATCHED"), "quote {i}");
        assert_eq!(r.json()["id"], i.to_string());
    }
    assert_eq!(
        s.demo.calls_under("/api/quotes/"),
        0,
        "no quote went upstream alone"
    );
    s.with_envoy_stat("wasmcustom.cost_optimizer.route.q.limit.queued", |queued| {
        assert!(queued >= 1, "some waited in the limiter's queue");
        eprintln!("{n} quotes, {queued} queued first, all batched");
    });
}
