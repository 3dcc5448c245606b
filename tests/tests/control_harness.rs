//! The harness's cost-control handle and the stack with cost-control and a
//! second gateway (on each host): the ledger's totals, and what survives a
//! `kill -9`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{SystemTime, UNIX_EPOCH};

use e2e::control::CostControl;
use e2e::envoy_config::Options;
use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;
use e2e::procs::{free_port, port_open, scratch_dir};
use e2e::stack::Stack;
use serde_json::{json, Value};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn event(strategy: &str, cost: u64, baseline: u64) -> Value {
    json!({
        "tenant": "acme", "service": "shop", "route": "items", "provider": "demo_api",
        "strategy": strategy, "cost_micros": cost, "baseline_micros": baseline, "ts": now_ms()
    })
}

fn row<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key:?} in {report}"))
}

#[test]
fn ledger_totals_survive_kill_and_restart() {
    let dir = scratch_dir("control-harness");
    let port = free_port();
    let mut cc = CostControl::start(port, &dir);

    let budget = cc.put_budget("acme", 5_000_000);
    assert_eq!(budget["daily_limit_micros"], 5_000_000, "{budget}");

    let batch = json!({
        "batch_id": "harness-1",
        "gateway_id": "gw-test",
        "events": [
            event("upstream", 2_000, 2_000),
            event("cache", 0, 2_000),
            event("coalesced", 0, 2_000),
            event("batched", 250, 2_000),
        ]
    });
    let ack = cc.post_spend(&batch);
    assert_eq!(
        (ack["accepted"].as_u64(), &ack["duplicate"]),
        (Some(4), &json!(false)),
        "{ack}"
    );

    let check = |cc: &CostControl| {
        assert_eq!(cc.total_events("acme"), 4);
        assert_eq!(cc.total_cost("acme"), 2_250);
        assert_eq!(cc.total_baseline("acme"), 8_000);
        let by = cc.spend("acme", "strategy");
        assert_eq!(row(&by, "cache")["savings_micros"], 2_000, "{by}");
        assert_eq!(row(&by, "batched")["cost_micros"], 250, "{by}");
        let budgets = cc.budgets("acme");
        assert_eq!(
            budgets["budgets"][0]["daily_spent_micros"], 2_250,
            "{budgets}"
        );
        // Other tenants see nothing.
        assert_eq!(cc.total_events("other"), 0);
    };
    check(&cc);

    cc.stop();
    assert!(!cc.is_running());
    assert!(!port_open(port), "port {port} still answers after stop");

    cc.restart();
    assert!(cc.is_running());
    assert_eq!(cc.port, port);
    check(&cc);
    // The batch id was committed with the events: a replay counts nothing.
    let again = cc.post_spend(&batch);
    assert_eq!(again["duplicate"], true, "{again}");
    check(&cc);

    // restart() on a running process kills it first.
    cc.restart();
    check(&cc);
}

on_both_hosts!(stack_with_control_and_a_second_gateway);
fn stack_with_control_and_a_second_gateway(kind: GatewayKind) {
    let options = Options {
        filter: json!({
            "version": 1,
            "routes": [{"name": "items", "match": {"prefix": "/api/items/"}, "debug_headers": true}]
        }),
        jwt: false,
    };
    let stack = Stack::start_with_control_on(kind, "control-stack", options.clone());
    assert_eq!(stack.control().port, stack.ports.control);
    assert_eq!(stack.control().total_events("acme"), 0);

    let second = stack.second_gateway(options);
    assert_eq!(second.gateway.kind(), kind);
    assert_ne!(second.listen_port(), stack.ports.listen);
    assert_eq!(second.ports.control, stack.ports.control);

    let tenant = [("x-tenant-id", "acme")];
    let a = stack.get("/api/items/1", &tenant);
    let b = second.get("/api/items/2", &tenant);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(b.header("x-optimizer-route"), Some("items"));
    assert_eq!(
        (
            stack.demo.calls_for("/api/items/1"),
            stack.demo.calls_for("/api/items/2")
        ),
        (1, 1)
    );

    // The second gateway goes away alone; the stack keeps serving.
    let second_port = second.listen_port();
    drop(second);
    assert!(!port_open(second_port));
    assert_eq!(stack.get("/api/items/3", &tenant).status, 200);
}
