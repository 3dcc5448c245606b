//! Issue 16, end to end on each host (Envoy, and Kong's engine; two
//! workers; both demo providers): routing to the cheapest healthy
//! provider, circuit breakers shared by the workers, failover by the
//! host's own retries, and routed savings in the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::gateway::GatewayKind;
use e2e::http::{self, Resp};
use e2e::on_both_hosts;
use e2e::procs::wait_for;
use e2e::stack::Stack;
use serde_json::{json, Value};

const PRIMARY: u64 = 2_000; // $0.002 a call
const SECONDARY: u64 = 1_000; // $0.001 a call
const PROBES: u64 = 1;
const FAILURES: u64 = 3;

fn rule() -> Value {
    json!({"name": "search", "match": {"prefix": "/api/search/"}, "debug_headers": true,
           "sla_ms": 2000,
           "routing": {"strategy": "cheapest", "max_attempts": 2,
                       "breaker": {"failures": FAILURES, "open_s": 1, "probes": PROBES},
                       "providers": [
                           {"name": "primary", "upstream": "via_primary", "addresses": ["demo_api"],
                            "cost": {"cost_per_call": "0.002"}},
                           {"name": "secondary", "upstream": "via_secondary", "addresses": ["demo_api_b"],
                            "cost": {"cost_per_call": "0.001"}}]},
           "cost": {"provider": "primary", "cost_per_call": "0.002"}})
}

fn stack(kind: GatewayKind, name: &str) -> Stack {
    Stack::start_on(
        kind,
        name,
        Options {
            filter: json!({"version": 1, "routes": [rule()]}),
            jwt: false,
        },
    )
}

const T: [(&str, &str); 1] = [("x-tenant-id", "acme")];

fn provider(r: &Resp) -> &str {
    r.header("x-optimizer-provider").unwrap_or("<none>")
}

/// The provider named in the demo API's answer (its own `provider`).
fn answered_by(r: &Resp) -> String {
    r.json()["provider"]
        .as_str()
        .unwrap_or("<none>")
        .to_string()
}

fn get(s: &Stack, path: &str) -> Resp {
    http::request_fresh("GET", &s.url(path), &T, None)
}

on_both_hosts!(with_both_healthy_the_cheaper_provider_gets_the_traffic);
fn with_both_healthy_the_cheaper_provider_gets_the_traffic(kind: GatewayKind) {
    let s = stack(kind, "route-cheapest");
    let mut to_secondary = 0;
    for i in 0..200 {
        let r = get(&s, &format!("/api/search/q{i}"));
        assert_eq!(r.status, 200, "{r:?}");
        if provider(&r) == "secondary" {
            assert_eq!(answered_by(&r), "secondary");
            to_secondary += 1;
        }
    }
    assert!(
        to_secondary >= 190,
        "{to_secondary} of 200 to the cheaper provider"
    );
    assert_eq!(s.demo_b.calls_under("/api/search/"), to_secondary);
    assert_eq!(s.demo.calls_under("/api/search/"), 200 - to_secondary);
}

on_both_hosts!(a_failing_provider_is_cut_off_by_its_breaker_and_comes_back_after_a_probe);
fn a_failing_provider_is_cut_off_by_its_breaker_and_comes_back_after_a_probe(kind: GatewayKind) {
    let s = stack(kind, "route-breaker");
    assert_eq!(provider(&get(&s, "/api/search/warm")), "secondary");
    s.demo_b
        .fault(json!({"path_prefix": "/api/search/", "status": 503}));
    // Every answer is a 200: the host fails over to the primary. The
    // breaker opens after FAILURES failures; from then on the secondary
    // sees no request until its open time is over.
    for i in 0..20 {
        let r = get(&s, &format!("/api/search/f{i}"));
        assert_eq!((r.status, provider(&r)), (200, "primary"), "{r:?}");
    }
    let reached = s.demo_b.calls_under("/api/search/f");
    assert!(
        reached <= FAILURES + 1,
        "{reached} requests reached the failing provider (breaker after {FAILURES}; \
         one more may have been in flight on the other worker)"
    );
    // Still failing when the breaker lets a probe through: it opens
    // again, and at most PROBES requests reach it per open period.
    let before = s.demo_b.calls_under("/api/search/");
    wait_for(
        "a probe to reach the failing provider",
        Duration::from_secs(10),
        || {
            let r = get(&s, "/api/search/p");
            assert_eq!(r.status, 200);
            (s.demo_b.calls_under("/api/search/") > before).then_some(())
        },
    );
    assert_eq!(s.demo_b.calls_under("/api/search/") - before, PROBES);
    // Healthy again: a probe succeeds and the breaker closes.
    s.demo_b.fault(json!({"clear": true}));
    let back = wait_for(
        "traffic back on the cheaper provider",
        Duration::from_secs(10),
        || {
            let r = get(&s, "/api/search/b");
            (provider(&r) == "secondary").then_some(r)
        },
    );
    assert_eq!(answered_by(&back), "secondary");
    for i in 0..10 {
        assert_eq!(
            provider(&get(&s, &format!("/api/search/c{i}"))),
            "secondary"
        );
    }
    s.gateway.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.search.routing.provider.secondary.opened",
        |n| assert!(n >= 1, "opened {n}"),
    );
    s.gateway.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.search.routing.provider.secondary.closed",
        |n| assert_eq!(n, 1),
    );
}

on_both_hosts!(a_reset_get_fails_over_and_a_post_without_idempotency_key_is_not_retried);
fn a_reset_get_fails_over_and_a_post_without_idempotency_key_is_not_retried(kind: GatewayKind) {
    let s = stack(kind, "route-failover");
    s.demo_b
        .fault(json!({"path_prefix": "/api/search/reset", "abort": true, "count": 1}));
    let r = get(&s, "/api/search/reset");
    assert_eq!((r.status, provider(&r)), (200, "primary"), "{r:?}");
    assert_eq!(answered_by(&r), "primary");
    assert_eq!(s.demo_b.calls_for("/api/search/reset"), 1);
    s.gateway.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.search.routing.failovers",
        |n| assert_eq!(n, 1),
    );

    s.demo_b
        .fault(json!({"path_prefix": "/api/search/write", "abort": true, "count": 1}));
    let w = http::request_fresh("POST", &s.url("/api/search/write"), &T, Some(b"{}"));
    assert!(w.status >= 500, "{w:?}");
    assert_eq!(s.demo.calls_for("/api/search/write"), 0, "not retried");
    assert_eq!(s.demo_b.calls_for("/api/search/write"), 1);
}

on_both_hosts!(with_every_provider_down_the_answer_is_clear_and_attempts_stay_bounded);
fn with_every_provider_down_the_answer_is_clear_and_attempts_stay_bounded(kind: GatewayKind) {
    let s = stack(kind, "route-down");
    for d in [&s.demo, &s.demo_b] {
        d.fault(json!({"path_prefix": "/api/search/", "status": 503}));
    }
    let n = 20;
    let mut warned = 0;
    for i in 0..n {
        let r = get(&s, &format!("/api/search/d{i}"));
        assert!(r.status == 503 || r.status == 502, "{r:?}");
        if let Some(w) = r.header("x-optimizer-warning") {
            assert!(w.contains("no provider"), "{w}");
            warned += 1;
        }
    }
    let attempts = s.demo.calls_under("/api/search/") + s.demo_b.calls_under("/api/search/");
    assert!(attempts <= 2 * n, "{attempts} attempts for {n} requests");
    assert!(
        warned >= n - 2 * FAILURES - 2,
        "{warned} of {n} refused at once"
    );
}

on_both_hosts!(each_answer_is_priced_at_the_provider_that_served_it);
fn each_answer_is_priced_at_the_provider_that_served_it(kind: GatewayKind) {
    let mut filter = json!({"version": 1, "routes": [rule()],
        "accounting": {"cost_control": "cost_control", "token": "gateway-dev-token",
                       "gateway_id": "gw", "flush_ms": 100}});
    filter["routes"][0]["routing"]["breaker"]["failures"] = json!(1000);
    let s = Stack::start_with_control_on(kind, "route-ledger", Options { filter, jwt: false });
    for i in 0..10 {
        let r = get(&s, &format!("/api/search/l{i}"));
        assert_eq!(provider(&r), "secondary");
        assert_eq!(r.header("x-optimizer-cost"), Some("1000"));
        assert_eq!(r.header("x-optimizer-saving"), Some("1000"));
    }
    // A failover to the default provider: priced at it, no saving.
    s.demo_b
        .fault(json!({"path_prefix": "/api/search/", "status": 503, "count": 1}));
    let r = get(&s, "/api/search/l-failover");
    assert_eq!(provider(&r), "primary");
    wait_for("11 spend events", Duration::from_secs(30), || {
        (s.control().total_events("acme") >= 11).then_some(())
    });
    let by = s.control().spend("acme", "strategy");
    let row = |k: &str| {
        by["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("no {k} row in {by}"))
    };
    let routed = row("routed");
    assert_eq!(routed["cost_micros"], 10 * SECONDARY);
    assert_eq!(routed["baseline_micros"], 10 * PRIMARY);
    assert_eq!(routed["savings_micros"], 10 * (PRIMARY - SECONDARY));
    let upstream = row("upstream");
    assert_eq!(upstream["cost_micros"], PRIMARY);
    assert_eq!(upstream["savings_micros"], 0);
    let by_provider = s.control().spend("acme", "provider");
    assert!(
        by_provider.to_string().contains("secondary"),
        "{by_provider}"
    );
}
