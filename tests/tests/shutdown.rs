//! Issue 19, stopping the gateway: the real Envoy (two workers), the built
//! filter, the real cost-control. Envoy 1.40 calls the filter's root
//! `on_done` on SIGTERM but sends no HTTP call made there, so the spend a
//! worker still holds is written to Envoy's log and `cost-control spend
//! replay` puts it in the ledger; replaying twice counts nothing twice.
//! (Kong's engine calls no hook when nginx stops: Envoy only.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::gateway::Gateway;
use e2e::http;
use e2e::procs::wait_for;
use e2e::stack::{workspace_bin, Stack};
use serde_json::json;

const PRICE: u64 = 2_000;

/// A long flush interval: after the first batch (sent at the first tick
/// with events), nothing more is sent before the stop.
fn options() -> Options {
    Options {
        filter: json!({
            "version": 1,
            "accounting": {
                "cost_control": "cost_control", "token": "gateway-dev-token",
                "gateway_id": "gw-stop", "flush_ms": 600000, "max_events": 50
            },
            "routes": [
                {"name": "paid", "match": {"prefix": "/api/paid/"},
                 "cost": {"cost_per_call": "0.002", "provider": "demo"}}
            ]
        }),
        jwt: false,
    }
}

fn paid(s: &Stack, i: usize) {
    let r = http::request_fresh(
        "GET",
        &s.url(&format!("/api/paid/{i}")),
        &[("x-tenant-id", "stopper")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `cost-control spend replay` of `log` against the stack's cost-control:
/// its exit status and what it printed.
fn replay(s: &Stack, log: &std::path::Path) -> (bool, String) {
    let out = Command::new(workspace_bin("cost-control"))
        .args(["spend", "replay", "--dev-tokens", "--server"])
        .arg(s.control().url(""))
        .arg(log)
        .output()
        .unwrap_or_else(|e| panic!("cost-control spend replay: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn spend_held_at_sigterm_reaches_the_ledger_through_the_log_once() {
    let mut s = Stack::start_with_control("stop-sigterm", options());
    // The first request's event goes out at the first tick; wait for it,
    // so what follows stays in the workers' buffers (flush_ms is 10 min).
    paid(&s, 0);
    wait_for(
        "the first event in the ledger",
        Duration::from_secs(30),
        || (s.control().total_events("stopper") == 1).then_some(()),
    );
    let n = 20;
    for i in 1..=n {
        paid(&s, i);
    }
    assert_eq!(
        s.control().total_events("stopper"),
        1,
        "nothing flushed yet"
    );

    let Gateway::Envoy(envoy) = &mut s.gateway else {
        panic!("an Envoy stack");
    };
    let code = envoy.proc.terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "Envoy's exit after SIGTERM");
    let log = envoy.proc.log.clone();
    assert_eq!(
        s.control().total_events("stopper"),
        1,
        "no call made at on_done reached cost-control"
    );

    let (ok, printed) = replay(&s, &log);
    assert!(ok, "replay failed:\n{printed}");
    assert!(printed.contains("accepted"), "{printed}");
    let report = s.control().spend("stopper", "strategy");
    assert_eq!(
        s.control().total_events("stopper"),
        1 + n as u64,
        "{report}"
    );
    assert_eq!(
        report["total"]["cost_micros"].as_u64(),
        Some((1 + n as u64) * PRICE),
        "{report}"
    );

    // The same log again: every batch a duplicate, the ledger unchanged.
    let (ok, printed) = replay(&s, &log);
    assert!(ok, "second replay failed:\n{printed}");
    assert!(!printed.contains("accepted"), "{printed}");
    assert!(printed.contains("duplicate"), "{printed}");
    assert_eq!(s.control().total_events("stopper"), 1 + n as u64);
}
