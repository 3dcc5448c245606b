//! Issue 13, the ledger's detail, end to end on each host (Envoy, and
//! Kong's engine; two workers) and the real cost-control: spend folded while cost-control was
//! down reaches the ledger with every request counted, and a batch
//! cost-control refuses is parked and sent again, so neither money nor
//! request counts are lost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::http;
use e2e::procs::wait_for;
use e2e::stack::Stack;
use serde_json::{json, Value};

const PRICE: u64 = 2_000;

fn options(gateway: &str, max_buffer_events: u32, max_events: u32, flush_ms: u64) -> Options {
    Options {
        filter: json!({
            "version": 1,
            "accounting": {
                "cost_control": "cost_control", "token": "gateway-dev-token",
                "gateway_id": gateway, "flush_ms": flush_ms, "timeout_ms": 1000,
                "backoff_min_ms": 100, "backoff_max_ms": 500,
                "max_events": max_events, "max_buffer_events": max_buffer_events
            },
            "routes": [
                {"name": "paid", "match": {"prefix": "/api/paid/"},
                 "cost": {"cost_per_call": "0.002"}}
            ]
        }),
        jwt: false,
    }
}

/// `n` requests of `tenant`, `threads` at a time, each on a fresh
/// connection (both workers serve them); all must be answered 200.
fn serve(s: &Stack, tenant: &str, n: usize, threads: usize) {
    std::thread::scope(|sc| {
        for t in 0..threads {
            sc.spawn(move || {
                for i in (t..n).step_by(threads) {
                    let r = http::request_fresh(
                        "GET",
                        &s.url(&format!("/api/paid/{i}")),
                        &[("x-tenant-id", tenant)],
                        None,
                    );
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            });
        }
    });
}

/// The ledger once it counts `n` requests of `tenant`.
fn ledger_counts(s: &Stack, tenant: &str, n: u64) -> Value {
    wait_for(
        &format!("{n} requests of {tenant} in the ledger"),
        Duration::from_secs(40),
        || (s.control().total_events(tenant) >= n).then_some(()),
    );
    s.control().spend(tenant, "strategy")
}

on_both_hosts!(spend_folded_during_an_outage_reaches_the_ledger_with_every_request);
fn spend_folded_during_an_outage_reaches_the_ledger_with_every_request(kind: GatewayKind) {
    let mut s = Stack::start_with_control_on(kind, "fold-outage", options("gw-fold", 4, 4, 100));
    s.control_mut().stop();
    let n = 40;
    serve(&s, "folder", n, 4);
    s.control_mut().restart();
    let report = ledger_counts(&s, "folder", n as u64);
    let calls = s.demo.calls_under("/api/paid/");
    assert_eq!(calls, n as u64);
    assert_eq!(report["total"]["events"].as_u64(), Some(calls), "{report}");
    assert_eq!(
        report["total"]["cost_micros"].as_u64(),
        Some(calls * PRICE),
        "{report}"
    );
    let folded = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "folded")
        .unwrap_or_else(|| panic!("nothing was folded: {report}"));
    let folded_events = folded["events"].as_u64().unwrap();
    assert!(
        folded_events > 2,
        "the folded sums stand for their requests: {report}"
    );
    eprintln!("{n} served while down: ledger {report}");
}

on_both_hosts!(a_batch_cost_control_refuses_is_parked_and_its_money_sent_again);
fn a_batch_cost_control_refuses_is_parked_and_its_money_sent_again(kind: GatewayKind) {
    let mut s =
        Stack::start_with_control_on(kind, "fold-refused", options("gw-refused", 1000, 200, 600));
    // This cost-control takes at most 3 events per batch: the gateways'
    // batches (everything of 600 ms) are refused with 400.
    s.control_mut().restart_with(&["--max-batch-events", "3"]);
    let n = 24;
    serve(&s, "refused", n, 6);
    let report = ledger_counts(&s, "refused", n as u64);
    assert_eq!(
        report["total"]["events"].as_u64(),
        Some(n as u64),
        "{report}"
    );
    assert_eq!(
        report["total"]["cost_micros"].as_u64(),
        Some(n as u64 * PRICE),
        "{report}"
    );
    let refused_batches = s.control().requests_served("POST", "/v1/spend", 400);
    assert!(
        refused_batches >= 1,
        "cost-control refused batches first: {refused_batches}"
    );
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.accounting.spend_rejected_events",
        |refused| {
            assert!(refused >= 4, "batches were refused first: {refused}");
            eprintln!("{n} served; {refused} requests' spend was refused, parked and sent again");
        },
    );
}
