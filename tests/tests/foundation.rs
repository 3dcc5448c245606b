//! Issue 2, end to end on each host (Envoy, and Kong's engine; two
//! workers) with the built `.wasm` in front of the demo API: identify,
//! pass-through, config refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use e2e::envoy_config::Options;
use e2e::gateway::Gateway;
use e2e::http::{self, Resp};
use e2e::jwt;
use e2e::stack::{envoy_bin, wasm_path, Stack};
use serde_json::{json, Value};

fn config(identity: Value) -> Value {
    json!({
        "version": 1,
        "identity": identity,
        "routes": [
            {"name": "items", "match": {"prefix": "/api/items/"}, "priority": "low", "debug_headers": true},
            {"name": "secure", "match": {"prefix": "/api/secure/"}, "require_tenant": true, "debug_headers": true}
        ]
    })
}

fn header_stack(kind: GatewayKind, name: &str, trust_priority: bool) -> Stack {
    Stack::start_on(
        kind,
        name,
        Options {
            filter: config(
                json!({"priority_header": {"name": "x-priority", "trusted": trust_priority}}),
            ),
            jwt: false,
        },
    )
}

fn is_uuid_v4(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            14 => c == '4',
            _ => c.is_ascii_hexdigit(),
        })
}

fn upstream_saw(resp: &Resp, header: &str) -> Option<String> {
    resp.json()["headers"][header].as_str().map(str::to_string)
}

on_both_hosts!(request_id_generated_unique_echoed_and_kept);
fn request_id_generated_unique_echoed_and_kept(kind: GatewayKind) {
    let stack = header_stack(kind, "request-id", false);
    // Many connections in parallel, so both workers generate ids.
    let ids: Vec<(String, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let stack = &stack;
                s.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let r = stack
                                .get(&format!("/api/items/{t}-{i}?echo-header=x-request-id"), &[]);
                            assert_eq!(r.status, 200, "{}", r.text());
                            let id = r
                                .header("x-request-id")
                                .expect("x-request-id on the response")
                                .to_string();
                            (id, upstream_saw(&r, "x-request-id"))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut seen = HashSet::new();
    for (id, upstream) in &ids {
        assert!(is_uuid_v4(id), "generated id {id:?} is not a UUIDv4");
        assert_eq!(
            upstream.as_deref(),
            Some(id.as_str()),
            "upstream got the same id"
        );
        assert!(seen.insert(id.clone()), "duplicate id {id}");
    }
    assert_eq!(seen.len(), 200);

    let r = stack.get(
        "/api/items/kept?echo-header=x-request-id",
        &[("x-request-id", "client-id-42")],
    );
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
    assert_eq!(
        upstream_saw(&r, "x-request-id").as_deref(),
        Some("client-id-42")
    );
    assert_eq!(
        r.headers
            .iter()
            .filter(|(k, _)| k == "x-request-id")
            .count(),
        1,
        "the id is echoed once"
    );
    assert_eq!(stack.demo.calls_under("/api/items/"), 201);
    stack.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.items.requests",
        |requests| assert_eq!(requests, 201),
    );
}

on_both_hosts!(tenant_from_trusted_header_and_priority_header_ignored_when_untrusted);
fn tenant_from_trusted_header_and_priority_header_ignored_when_untrusted(kind: GatewayKind) {
    let stack = header_stack(kind, "tenant-header", false);
    let r = stack.get(
        "/api/items/1",
        &[
            ("x-tenant-id", "acme"),
            ("x-service-id", "billing"),
            ("x-priority", "high"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-optimizer-tenant"), Some("acme"));
    assert_eq!(r.header("x-optimizer-service"), Some("billing"));
    assert_eq!(
        r.header("x-optimizer-priority"),
        Some("low"),
        "untrusted x-priority must not raise priority"
    );
    assert_eq!(r.header("x-optimizer-route"), Some("items"));

    let r = stack.get("/api/items/1", &[]);
    assert_eq!(r.header("x-optimizer-tenant"), Some("anonymous"));

    let r = stack.get("/api/secure/1", &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.text(),
        r#"{"error":"unauthenticated","message":"this route requires a tenant identity"}"#,
        "the filter's body, byte for byte"
    );
    assert!(r.header("x-request-id").is_some());
    assert_eq!(
        stack.demo.calls_for("/api/secure/1"),
        0,
        "a 401 never reaches upstream"
    );
    let r = stack.get("/api/secure/1", &[("x-tenant-id", "acme")]);
    assert_eq!(r.status, 200);
    assert_eq!(stack.demo.calls_for("/api/secure/1"), 1);
    stack.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.secure.unauthenticated",
        |refused| assert_eq!(refused, 1),
    );
}

on_both_hosts!(priority_header_honoured_when_trusted);
fn priority_header_honoured_when_trusted(kind: GatewayKind) {
    let stack = header_stack(kind, "priority-trusted", true);
    let r = stack.get("/api/items/1", &[("x-priority", "high")]);
    assert_eq!(r.header("x-optimizer-priority"), Some("high"));
    let r = stack.get("/api/items/1", &[("x-priority", "bogus")]);
    assert_eq!(
        r.header("x-optimizer-priority"),
        Some("low"),
        "an unknown value keeps the rule's priority"
    );
}

/// Envoy only: the tenant comes from claims that Envoy's `jwt_authn`
/// verified and put in dynamic metadata; Kong's engine (nginx +
/// ngx_wasm_module) has no `jwt_authn`, and the filter never trusts a JWT
/// it did not see verified, so there is nothing to run on Kong.
#[test]
fn tenant_from_jwt_verified_by_envoys_jwt_authn_and_forgery_rejected_envoy_only() {
    let stack = Stack::start(
        "jwt",
        Options {
            filter: config(json!({
                "tenant": [{"jwt_claim": "tenant"}],
                "service": [{"jwt_claim": "service"}]
            })),
            jwt: true,
        },
    );
    let good = jwt::token(
        json!({"sub": "u1", "tenant": "globex", "service": "search"}),
        jwt::KEY,
    );
    let auth = format!("Bearer {good}");
    let r = stack.get(
        "/api/items/1",
        &[("authorization", &auth), ("x-tenant-id", "spoofed")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-optimizer-tenant"), Some("globex"));
    assert_eq!(r.header("x-optimizer-service"), Some("search"));

    // Without a token, a client-sent header is not a source in this config.
    let r = stack.get("/api/items/2", &[("x-tenant-id", "spoofed")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-optimizer-tenant"), Some("anonymous"));

    // A token signed with another key never reaches the filter.
    let forged = jwt::token(
        json!({"sub": "u1", "tenant": "globex"}),
        b"not-the-key-not-the-key-not-the-key!",
    );
    let r = stack.get(
        "/api/items/3",
        &[("authorization", &format!("Bearer {forged}"))],
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("x-optimizer-tenant").is_none());
    assert_eq!(stack.demo.calls_for("/api/items/3"), 0);

    // The secure route needs a tenant: a verified token gives one.
    let r = stack.get("/api/secure/1", &[("authorization", &auth)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        stack
            .get("/api/secure/1", &[("x-tenant-id", "spoofed")])
            .status,
        401
    );
}

on_both_hosts!(unmatched_path_passes_byte_identical);
fn unmatched_path_passes_byte_identical(kind: GatewayKind) {
    let stack = header_stack(kind, "passthrough", false);
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let headers = [
        ("content-type", "application/octet-stream"),
        ("x-tenant-id", "acme"),
        ("x-priority", "high"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("x-custom", "  spaced  value  "),
        ("host", "api.example"),
    ];
    let through = http::request(
        "POST",
        &stack.url("/echo/unmatched?a=1&b=%20"),
        &headers,
        Some(&body),
    );
    let plain = http::request(
        "POST",
        &stack.plain_url("/echo/unmatched?a=1&b=%20"),
        &headers,
        Some(&body),
    );
    assert_eq!(through.status, 200, "{}", through.text());
    let (t, p) = (through.json(), plain.json());
    assert_eq!(
        t["headers"], p["headers"],
        "upstream saw the same headers with and without the filter"
    );
    assert_eq!(t["body_b64"], p["body_b64"]);
    assert_eq!(
        STANDARD.decode(t["body_b64"].as_str().unwrap()).unwrap(),
        body
    );
    assert_eq!(t["path"], p["path"]);
    assert_eq!(t["query"], p["query"]);
    for (name, _) in &through.headers {
        assert!(
            !name.starts_with("x-optimizer"),
            "unmatched response touched: {name}"
        );
        assert_ne!(name, "x-request-id", "unmatched response touched");
    }
    // The same fields (order across different names means nothing in
    // HTTP, RFC 9110 section 5.3, and nginx writes a response that passed
    // a wasm filter in another order than one that did not).
    let names = |r: &Resp| {
        let mut names = r
            .headers
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| k != "date" && k != "x-envoy-upstream-service-time")
            .collect::<Vec<_>>();
        names.sort();
        names
    };
    assert_eq!(names(&through), names(&plain));
}

on_both_hosts!(invalid_config_is_refused_with_the_field_named);
fn invalid_config_is_refused_with_the_field_named(kind: GatewayKind) {
    let ports = e2e::stack::ports();
    let refuse = |filter: Value, name: &str| {
        let options = Options { filter, jwt: false };
        let dir = e2e::procs::scratch_dir(&format!("{name}-{}", kind.name()));
        Gateway::start_expecting_refusal(kind, &ports, &options, &dir)
    };
    let bad = json!({
        "version": 1,
        "routes": [
            {"name": "ok", "match": {"prefix": "/a/"}},
            {"name": "bad", "match": {"prefix": "/b/"}, "sla_ms": 0}
        ]
    });
    let log = refuse(bad, "invalid-config");
    assert!(
        log.contains("invalid configuration: routes[1].sla_ms: must be > 0"),
        "log:\n{log}"
    );

    let unknown =
        json!({"version": 1, "routes": [{"name": "a", "match": {"prefix": "/"}, "slaa_ms": 5}]});
    let log = refuse(unknown, "unknown-field");
    assert!(
        log.contains("invalid configuration: routes[0]"),
        "log:\n{log}"
    );
    assert!(log.contains("unknown field"), "log:\n{log}");
}

/// Envoy only by subject: this checks the shipped `envoy/envoy.yaml`, a
/// deployment file of Envoy (validated by `envoy --mode validate`, then
/// run); the shipped Kong files are Kong's own deployment test.
#[test]
fn shipped_envoy_config_validates_and_serves_through_the_filter() {
    let ports = e2e::stack::ports();
    let yaml = e2e::envoy_config::render_shipped(&ports, &wasm_path());
    let dir = e2e::procs::scratch_dir("validate");
    let path = dir.join("shipped.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = std::process::Command::new(envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "envoy --mode validate failed:\n{text}"
    );
    assert!(text.contains("OK"), "{text}");

    let stack = Stack::start_shipped_with_control("shipped");
    let r = stack.get("/api/items/1", &[("x-tenant-id", "acme")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["resource"], "items");
    assert_eq!(r.header("x-optimizer-route"), Some("items"));
    assert!(r.header("x-request-id").is_some());
    // The demo config caches items, and limits reports per tenant at low
    // priority (capacity 5), so its 429s show.
    assert_eq!(
        stack
            .get("/api/items/1", &[("x-tenant-id", "acme")])
            .header("x-cache"),
        Some("HIT")
    );
    let statuses: Vec<u16> = (0..8)
        .map(|i| {
            stack
                .get(&format!("/api/reports/{i}"), &[("x-tenant-id", "acme")])
                .status
        })
        .collect();
    // Quotes are batched: a burst of 16 on a fresh gateway.
    let quotes: Vec<Resp> = std::thread::scope(|sc| {
        let hs: Vec<_> = (1..=16)
            .map(|i| {
                let url = stack.url(&format!("/api/quotes/{i}"));
                sc.spawn(move || http::request_fresh("GET", &url, &[], None))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(quotes
        .iter()
        .all(|r| r.status == 200 && r.header("x-cache") == Some("BATCHED")));
    assert!(stack.demo.calls()["batches"].as_u64().unwrap() <= 4);
    // GraphQL operations too, answered by position; a POST quote keeps
    // its body; a POST elsewhere passes the buffer filter untouched.
    let ops: Vec<Resp> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let url = stack.url("/graphql");
                let op =
                    serde_json::json!({"query": "{ quote }", "variables": {"id": format!("g{i}")}});
                sc.spawn(move || {
                    http::request_fresh("POST", &url, &[], Some(op.to_string().as_bytes()))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in ops.iter().enumerate() {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-cache"), Some("BATCHED"));
        assert_eq!(r.json()["data"]["quote"]["id"], format!("g{i}"));
    }
    assert!(stack.demo.calls()["graphql_batches"].as_u64().unwrap() >= 1);
    let echo = http::request_fresh("POST", &stack.url("/api/notes/1"), &[], Some(b"plain"));
    assert_eq!(echo.status, 200);
    assert_eq!(echo.json()["body"], "plain");
    // Costs are counted per route and strategy, which stats_tags turn
    // into labels, and reported to cost-control.
    let prom = http::get(
        &format!("http://127.0.0.1:{}/stats/prometheus", stack.ports.admin),
        &[],
    )
    .text();
    assert!(
        prom.lines().any(|l| l.starts_with(
            "cost_optimizer_route_cost_saving_micros{route=\"items\",strategy=\"cache\"}"
        )),
        "no labelled cost counter in:\n{}",
        prom.lines()
            .filter(|l| l.contains("cost_optimizer"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    e2e::procs::wait_for(
        "the items hit in the ledger",
        std::time::Duration::from_secs(10),
        || {
            let r = stack.control().spend("acme", "strategy");
            r["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["key"] == "cache"))
                .then_some(())
        },
    );
    // Capacity 5 refilling 0.5/s: a sixth token only if these took 2 s.
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=6).contains(&admitted), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        8 - admitted,
        "{statuses:?}"
    );
}

/// Counters are held in each worker and sent once a second
/// (`metrics.flush_ms`, default 1,000) instead of one host call per
/// increment: every request is still counted, on both workers, once the
/// workers' timers sent their sums.
#[test]
fn counters_are_held_and_reach_envoy_whole_envoy_only() {
    let mut filter = config(json!({}));
    filter["metrics"] = json!({"flush_ms": 1000});
    let stack = Stack::start("counters-held", Options { filter, jwt: false });
    let name = "wasmcustom.cost_optimizer.route.items.requests";
    // Requests on connections of their own until both workers served some.
    let mut served = [0u32; 2];
    let mut sent = 0u64;
    while sent < 40 || served.contains(&0) {
        assert!(
            sent < 400,
            "one worker served all of {sent} connections: {served:?}"
        );
        let (r, worker) = stack.gateway.probe_worker(
            stack.ports.listen,
            "GET",
            &format!("/api/items/{sent}"),
            &[],
        );
        assert_eq!(r.status, 200);
        served[worker] += 1;
        sent += 1;
    }
    let seen = e2e::procs::wait_for(
        "the workers' held counts on /stats",
        std::time::Duration::from_secs(10),
        || {
            let n = stack.gateway.envoy_stat(name).unwrap();
            (n >= sent).then_some(n)
        },
    );
    assert_eq!(
        seen, sent,
        "every request counted once ({served:?} by worker)"
    );
    assert_eq!(stack.demo.calls_under("/api/items/"), sent);
}

/// A route on which Envoy's per-route `FilterConfig` disables the filter
/// never reaches it (Envoy creates no filter for its requests: `make
/// bench`'s CR), while the filter keeps working on the other routes.
#[test]
fn a_route_with_the_filter_disabled_never_reaches_it_envoy_only() {
    let filter = json!({
        "version": 1,
        "routes": [{"name": "all", "match": {"prefix": "/api/"}, "debug_headers": true}]
    });
    let stack = Stack::start("filter-disabled-route", Options { filter, jwt: false });
    let seen = stack.get("/api/items/1?echo-header=x-request-id", &[]);
    assert_eq!(seen.status, 200);
    assert_eq!(seen.header("x-optimizer-route"), Some("all"));
    assert!(upstream_saw(&seen, "x-request-id").is_some());
    let skipped = stack.get("/api/unfiltered/1?echo-header=x-request-id", &[]);
    assert_eq!(skipped.status, 200);
    assert_eq!(
        skipped.header("x-optimizer-route"),
        None,
        "the rule matches its path, yet the filter never ran"
    );
    assert_eq!(skipped.header("x-request-id"), None);
    assert_eq!(upstream_saw(&skipped, "x-request-id"), None);
    assert_eq!(stack.demo.calls_under("/api/unfiltered/"), 1);
    stack.with_envoy_stat("wasmcustom.cost_optimizer.route.all.requests", |n| {
        assert_eq!(n, 1)
    });
}
