//! Issue 9, end to end on each host (Envoy, and Kong's engine; two
//! workers): the built filter, the real cost-control with its SQLite
//! store, the demo API. Every request of a
//! priced rule is reported, budgets hold across two gateways, and an outage
//! of cost-control loses and double-counts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::http::{self, Resp};
use e2e::procs::wait_for;
use e2e::stack::Stack;
use serde_json::{json, Value};

const PRICE: u64 = 2_000; // $0.002 per call
const BUDGET_EXCEEDED: &str =
    r#"{"error":"budget_exceeded","message":"the tenant's budget for this period is spent"}"#;

fn filter(gateway: &str, credit: &str) -> Options {
    Options {
        filter: json!({
            "version": 1,
            "identity": {"priority_header": {"name": "x-priority", "trusted": true}},
            "accounting": {
                "cost_control": "cost_control", "token": "gateway-dev-token",
                "gateway_id": gateway, "flush_ms": 100, "backoff_min_ms": 100,
                "backoff_max_ms": 1000, "timeout_ms": 1000,
                "budgets": {"lease": "0.01", "retry_ms": 200}
            },
            "routes": [
                {"name": "paid", "match": {"prefix": "/api/paid/"}, "debug_headers": true,
                 "cost": {"cost_per_call": "0.002", "provider": "demo",
                          "budget": {"fail_open_credit": credit}}},
                {"name": "cached", "match": {"prefix": "/api/cached/"}, "debug_headers": true,
                 "cache": {}, "cost": {"cost_per_call": 0.002}},
                {"name": "items", "match": {"prefix": "/api/items/"}, "debug_headers": true,
                 "coalesce": {}, "cost": {"cost_per_call": "0.002"}},
                {"name": "quotes", "match": {"prefix": "/api/quotes/"}, "debug_headers": true,
                 "batch": {"upstream": "demo_api", "path": "/api/batch", "window_ms": 200, "max_size": 8},
                 "cost": {"cost_per_call": "0.002", "batch": {"per_batch": "0.001", "per_member": "0.0001"}}},
                {"name": "chat", "match": {"prefix": "/v1/chat/completions"}, "debug_headers": true,
                 "cost": {"cost_per_call": "0.001",
                          "tokens": {"models": {
                              "demo-small": {"prompt_per_1k": "0.5", "completion_per_1k": "1.5"},
                              "demo-large": {"prompt_per_1k": "5", "completion_per_1k": "15"}},
                              "default_model": "demo-small"}}}
            ]
        }),
        jwt: false,
    }
}

fn get(url: &str, tenant: &str, priority: Option<&str>) -> Resp {
    let mut h = vec![("x-tenant-id", tenant)];
    if let Some(p) = priority {
        h.push(("x-priority", p));
    }
    http::request_fresh("GET", url, &h, None)
}

/// Wait until the ledger holds `events` events of `tenant` (the filter
/// flushes every 100 ms), then a little longer for any extra to show.
fn ledger_settles(s: &Stack, tenant: &str, events: u64) -> Value {
    wait_for(
        &format!("{events} spend events of {tenant} in the ledger"),
        Duration::from_secs(30),
        || (s.control().total_events(tenant) >= events).then_some(()),
    );
    s.control().spend(tenant, "strategy")
}

fn row<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no {key} row in {report}"))
}

on_both_hosts!(a_budget_holds_across_two_gateways_and_high_passes_with_a_warning);
fn a_budget_holds_across_two_gateways_and_high_passes_with_a_warning(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "acct-budget", filter("gw-a", "0.05"));
    let second = s.second_gateway(filter("gw-b", "0.05"));
    s.control().put_budget("capped", 100_000); // $0.10 a day
    let urls = [s.url(""), second.url("")];

    // Four clients per gateway, until each has been refused 5 times.
    let results: Vec<Resp> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let base = urls[t % 2].clone();
                sc.spawn(move || {
                    let mut out = Vec::new();
                    let mut refused = 0;
                    for i in 0..200 {
                        let r = get(&format!("{base}/api/paid/{t}-{i}"), "capped", None);
                        refused += usize::from(r.status == 429);
                        out.push(r);
                        if refused >= 5 {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.status == 200).count() as u64;
    for r in &results {
        match r.status {
            200 => assert_eq!(r.header("x-optimizer-cost"), Some("2000")),
            429 => assert_eq!(
                r.text(),
                BUDGET_EXCEEDED,
                "the filter's body, byte for byte"
            ),
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let report = ledger_settles(&s, "capped", ok);
    let spent = report["total"]["cost_micros"].as_u64().unwrap();
    eprintln!("budget: {ok} served, {spent} micros spent of 100000");
    assert!(
        spent <= 100_000 + PRICE,
        "spend {spent} over the $0.10 budget plus one call"
    );
    assert_eq!(spent, ok * PRICE, "every served call is in the ledger once");
    assert_eq!(
        s.demo.calls_under("/api/paid/"),
        ok,
        "calls the demo API saw"
    );
    // Leftovers of leases sit in gateway pools until they expire; most of
    // the budget is still spent.
    assert!(ok >= 25, "only {ok} calls of the 50 the budget allows");

    // Another tenant is unaffected, on both gateways.
    for base in &urls {
        assert_eq!(
            get(&format!("{base}/api/paid/free"), "free", None).status,
            200
        );
    }
    // `high` passes over the budget, with a warning.
    let r = get(
        &format!("{}/api/paid/high", urls[1]),
        "capped",
        Some("high"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-optimizer-warning"), Some("budget-exceeded"));
    assert_eq!(
        get(&format!("{}/api/paid/low", urls[0]), "capped", Some("low")).status,
        429
    );
}

on_both_hosts!(an_outage_of_cost_control_loses_nothing_and_counts_nothing_twice);
fn an_outage_of_cost_control_loses_nothing_and_counts_nothing_twice(kind: GatewayKind) {
    let mut s = Stack::start_with_control_on(kind, "acct-outage", filter("gw-o", "1.00"));
    let ok = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let base = s.url("");
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let load = sc.spawn(|| {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = get(&format!("{base}/api/paid/{i}"), "steady", None);
                if r.status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
                statuses.push(r.status);
                i += 1;
                // A steady 50 requests per second.
                std::thread::sleep(Duration::from_millis(20));
            }
            statuses
        });
        let served = |n: u64| {
            let start = ok.load(Ordering::SeqCst);
            wait_for(
                &format!("{n} more requests served"),
                Duration::from_secs(30),
                || (ok.load(Ordering::SeqCst) >= start + n).then_some(()),
            )
        };
        served(30);
        s.control_mut().stop();
        // The outage itself is the scenario: traffic keeps flowing with
        // cost-control down, for 400 requests (8 s at the pace above,
        // through many of the filter's retries and backoffs), within the
        // fail-open credit of $1.00 (500 calls at $0.002).
        let down = std::time::Instant::now();
        served(400);
        eprintln!(
            "outage: 400 served in {} ms while cost-control was down",
            down.elapsed().as_millis()
        );
        s.control_mut().restart();
        served(30);
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap()
    });
    assert!(
        statuses.iter().all(|s| *s == 200),
        "fail_open credit kept everything flowing: {statuses:?}"
    );
    let ok = ok.load(Ordering::SeqCst);
    let report = ledger_settles(&s, "steady", ok);
    let calls = s.demo.calls_under("/api/paid/");
    assert_eq!(calls, ok);
    assert_eq!(
        report["total"]["events"].as_u64().unwrap(),
        calls,
        "no event lost, none counted twice"
    );
    assert_eq!(
        report["total"]["cost_micros"].as_u64().unwrap(),
        calls * PRICE
    );
}

on_both_hosts!(cache_hits_are_reported_as_savings);
fn cache_hits_are_reported_as_savings(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "acct-cache", filter("gw-c", "0.05"));
    let mut hits = 0;
    for i in 0..100 {
        let r = get(&s.url(&format!("/api/cached/{}", i % 10)), "cachy", None);
        assert_eq!(r.status, 200);
        if r.header("x-cache") == Some("HIT") {
            hits += 1;
            assert_eq!(r.header("x-optimizer-cost"), Some("0"));
            assert_eq!(r.header("x-optimizer-saving"), Some("2000"));
        } else {
            assert_eq!(r.header("x-optimizer-cost"), Some("2000"));
            assert_eq!(r.header("x-optimizer-saving"), Some("0"));
        }
    }
    assert_eq!(hits, 90);
    let report = ledger_settles(&s, "cachy", 100);
    let total = &report["total"];
    assert_eq!(total["events"], 100);
    assert_eq!(total["baseline_micros"], 100 * PRICE, "baseline: 100 calls");
    assert_eq!(total["cost_micros"], 10 * PRICE, "actual: 10 calls");
    assert_eq!(total["savings_micros"], 90 * PRICE);
    assert_eq!(row(&report, "cache")["events"], 90);
    assert_eq!(row(&report, "upstream")["events"], 10);
    assert_eq!(s.demo.calls_under("/api/cached/"), 10);
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.cached.cost.cache.saving_micros",
        |saving| assert_eq!(saving, 90 * PRICE),
    );
}

on_both_hosts!(tokens_are_priced_from_the_usage_object);
fn tokens_are_priced_from_the_usage_object(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "acct-tokens", filter("gw-t", "0.05"));
    let chat = |model: &str, words: &str, max_tokens: u64| {
        let body = json!({"model": model, "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": words}]});
        http::request_fresh(
            "POST",
            &s.url("/v1/chat/completions"),
            &[
                ("x-tenant-id", "chatty"),
                ("content-type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    };
    let mut want = 0;
    for (model, words, max) in [
        ("demo-small", "one two three four five", 100),
        ("demo-large", "a b c", 7),
        ("unknown-model", "x", 1), // priced at the default model
    ] {
        let r = chat(model, words, max);
        assert_eq!(r.status, 200, "{}", r.text());
        let usage = &r.json()["usage"];
        let (p, c) = (
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["completion_tokens"].as_u64().unwrap(),
        );
        let (pp, cp) = match model {
            "demo-large" => (5_000_000, 15_000_000),
            _ => (500_000, 1_500_000),
        };
        want += (p * pp + c * cp).div_ceil(1000);
    }
    let report = ledger_settles(&s, "chatty", 3);
    assert_eq!(report["total"]["cost_micros"].as_u64().unwrap(), want);
    assert_eq!(report["total"]["baseline_micros"].as_u64().unwrap(), want);
}

/// `n` GETs released together, each on its own connection.
fn burst(s: &Stack, n: usize, path: impl Fn(usize) -> String + Sync, tenant: &str) -> Vec<Resp> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, url) = (&barrier, s.url(&path(i)));
                sc.spawn(move || {
                    barrier.wait();
                    get(&url, tenant, None)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

on_both_hosts!(coalesced_followers_cost_nothing_and_batch_members_share_the_batch_price);
fn coalesced_followers_cost_nothing_and_batch_members_share_the_batch_price(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "acct-strategies", filter("gw-s", "0.05"));
    // Identical requests to a slow upstream: one call, the rest wait for it.
    let answers = burst(&s, 8, |_| "/api/items/1?delay_ms=300".into(), "mixed");
    assert!(answers.iter().all(|r| r.status == 200));
    let calls = s.demo.calls_under("/api/items/");
    assert_eq!(calls, 1, "one upstream call for eight identical requests");
    let coalesced = answers
        .iter()
        .filter(|r| r.header("x-optimizer-cost") == Some("0"))
        .count() as u64;
    assert_eq!(
        coalesced,
        8 - calls,
        "every answer not from a call was free"
    );
    // Distinct quotes at once: batched, each pays its share.
    let answers = burst(&s, 8, |i| format!("/api/quotes/{i}"), "mixed");
    assert!(answers
        .iter()
        .all(|r| r.status == 200 && r.header("x-cache") == Some("BATCHED")));
    let batches = s.demo.calls()["batches"].as_u64().unwrap();
    let shares: u64 = answers
        .iter()
        .map(|r| {
            r.header("x-optimizer-cost")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        shares,
        batches * 1_000 + 8 * 100,
        "shares add up to the batch calls' price"
    );

    let report = ledger_settles(&s, "mixed", 16);
    assert_eq!(row(&report, "coalesced")["events"], coalesced);
    assert_eq!(row(&report, "coalesced")["cost_micros"], 0);
    assert_eq!(row(&report, "upstream")["cost_micros"], calls * PRICE);
    assert_eq!(row(&report, "batched")["events"], 8);
    assert_eq!(row(&report, "batched")["cost_micros"], shares);
    assert_eq!(row(&report, "batched")["baseline_micros"], 8 * PRICE);
    assert_eq!(report["total"]["events"], 16);
}
