//! Issue 3, end to end on each host (Envoy, and Kong's engine; two
//! workers): the response cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use e2e::envoy_config::Options;
use e2e::http::{self, Resp};
use e2e::procs::wait_for;
use e2e::stack::Stack;
use serde_json::{json, Value};

const MAX_ENTRY: usize = 8192;

fn cache_stack(kind: GatewayKind, name: &str) -> Stack {
    Stack::start_on(
        kind,
        name,
        Options {
            filter: json!({
                "version": 1,
                "cache_store": {"max_entries": 1024, "ways": 4, "max_entry_bytes": 65536},
                "routes": [
                    {"name": "items", "match": {"prefix": "/api/items"}, "debug_headers": true,
                     "cache": {"vary": ["accept-language"], "related_prefixes": ["/api/items"],
                               "max_entry_bytes": MAX_ENTRY}},
                    {"name": "things", "match": {"prefix": "/api/things"},
                     "cache": {"ignore_query": ["utm_source"]}}
                ]
            }),
            jwt: false,
        },
    )
}

fn call_no(r: &Resp) -> u64 {
    r.json()["call"]
        .as_u64()
        .unwrap_or_else(|| panic!("no call number in {}", r.text()))
}

fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("<none>")
}

on_both_hosts!(second_get_is_a_hit_and_repeats_over_both_workers_cost_one_call);
fn second_get_is_a_hit_and_repeats_over_both_workers_cost_one_call(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-hit");
    let first = s.get("/api/items/1", &[("x-tenant-id", "acme")]);
    assert_eq!((first.status, x_cache(&first)), (200, "MISS"));
    assert_eq!(
        first.header("cache-status"),
        Some("cost-optimizer; fwd=miss; stored")
    );
    let second = s.get("/api/items/1", &[("x-tenant-id", "acme")]);
    assert_eq!(x_cache(&second), "HIT", "{:?}", second.headers);
    assert_eq!(second.text(), first.text());
    assert!(second
        .header("cache-status")
        .unwrap()
        .starts_with("cost-optimizer; hit; ttl="));
    assert!(second.header("age").is_some());
    assert!(second.header("x-request-id").is_some());
    assert_ne!(second.header("x-request-id"), first.header("x-request-id"));
    assert_eq!(second.header("x-optimizer-tenant"), Some("acme"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(s.demo.calls_for("/api/items/1"), 1);

    // Twenty more, each on a connection of its own from four threads at
    // once, so both workers serve some: the entry lives in shared data.
    let barrier = Barrier::new(4);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            let (s, barrier, first) = (&s, &barrier, &first);
            sc.spawn(move || {
                barrier.wait();
                for _ in 0..5 {
                    let r = http::request_fresh(
                        "GET",
                        &s.url("/api/items/1"),
                        &[("x-tenant-id", "acme")],
                        None,
                    );
                    assert_eq!((r.status, x_cache(&r)), (200, "HIT"), "{r:?}");
                    assert_eq!(r.text(), first.text(), "a hit carries the stored bytes");
                }
            });
        }
    });
    assert_eq!(
        s.demo.calls_for("/api/items/1"),
        1,
        "one upstream call for 22 requests"
    );
    // Envoy only: the filter's counters and their Prometheus form come
    // from Envoy's admin; Kong's engine here (bare nginx) serves neither.
    if let Some(envoy) = s.gateway.envoy() {
        assert_eq!(
            envoy.stat("wasmcustom.cost_optimizer.route.items.cache.hits"),
            21
        );
        assert_eq!(
            envoy.stat("wasmcustom.cost_optimizer.route.items.cache.stores"),
            1
        );
        let prom = http::get(
            &format!("http://127.0.0.1:{}/stats/prometheus", s.ports.admin),
            &[],
        )
        .text();
        assert!(
            prom.contains("cost_optimizer_route_items_cache_hits"),
            "metrics in /stats/prometheus"
        );
    }
}

on_both_hosts!(tenants_never_see_each_others_entries);
fn tenants_never_see_each_others_entries(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-tenants");
    let a = s.get("/api/items/7", &[("x-tenant-id", "acme")]);
    let a2 = s.get("/api/items/7", &[("x-tenant-id", "acme")]);
    assert_eq!(x_cache(&a2), "HIT");
    let b = s.get("/api/items/7", &[("x-tenant-id", "globex")]);
    assert_eq!(x_cache(&b), "MISS");
    assert_ne!(
        call_no(&a),
        call_no(&b),
        "tenant B must get its own upstream answer"
    );
    let anon = s.get("/api/items/7", &[]);
    assert_eq!(x_cache(&anon), "MISS");
    assert_eq!(s.demo.calls_for("/api/items/7"), 3);
}

on_both_hosts!(vary_by_rule_and_by_upstream);
fn vary_by_rule_and_by_upstream(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-vary");
    // Rule varies on accept-language.
    let en = s.get(
        "/api/items/v?echo-header=accept-language",
        &[("accept-language", "en")],
    );
    let fr = s.get(
        "/api/items/v?echo-header=accept-language",
        &[("accept-language", "fr")],
    );
    assert_eq!((x_cache(&en), x_cache(&fr)), ("MISS", "MISS"));
    let en2 = s.get(
        "/api/items/v?echo-header=accept-language",
        &[("accept-language", "en")],
    );
    let fr2 = s.get(
        "/api/items/v?echo-header=accept-language",
        &[("accept-language", "fr")],
    );
    assert_eq!((x_cache(&en2), x_cache(&fr2)), ("HIT", "HIT"));
    assert_eq!(en2.json()["headers"]["accept-language"], "en");
    assert_eq!(fr2.json()["headers"]["accept-language"], "fr");

    // The "things" rule varies on nothing; the upstream says Vary.
    let p = "/api/things/1?vary=accept-language";
    let en = s.get(p, &[("accept-language", "en")]);
    let fr = s.get(p, &[("accept-language", "fr")]);
    assert_eq!(
        x_cache(&fr),
        "MISS",
        "a response varying on the header is not served to another value"
    );
    assert_eq!(fr.json()["vary"]["accept-language"], "fr");
    let en2 = s.get(p, &[("accept-language", "en")]);
    let fr2 = s.get(p, &[("accept-language", "fr")]);
    assert_eq!((x_cache(&en2), x_cache(&fr2)), ("HIT", "HIT"));
    assert_eq!(en2.text(), en.text());
    assert_eq!(fr2.json()["vary"]["accept-language"], "fr");
    assert_eq!(s.demo.calls_for("/api/things/1"), 2);
}

on_both_hosts!(uncacheable_responses_are_never_served_from_cache);
fn uncacheable_responses_are_never_served_from_cache(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-uncacheable");
    for (path, label) in [
        ("/api/items/ns?cache-control=no-store", "no-store"),
        (
            "/api/items/pv?cache-control=private%2C%20max-age%3D60",
            "private",
        ),
        ("/api/items/ck?set-cookie=session%3Dabc", "set-cookie"),
        // A 500 without a lifetime (not heuristically cacheable).
        ("/api/items/st?status=500&cache-control=", "status 500"),
        // A 206 is a part (RFC 9111 §3.3); a 304 only refreshes.
        ("/api/items/pc?status=206", "status 206"),
    ] {
        let a = s.get(path, &[]);
        let b = s.get(path, &[]);
        assert_eq!(x_cache(&b), "MISS", "{label}: {:?}", b.headers);
        assert_ne!(call_no(&a), call_no(&b), "{label}");
        assert_eq!(
            a.header("cache-status"),
            Some("cost-optimizer; fwd=miss"),
            "{label}"
        );
    }
    // With an explicit lifetime any final status is stored (RFC 9111 §3).
    let e = "/api/items/st5?status=503&cache-control=max-age%3D60";
    let a = s.get(e, &[]);
    let b = s.get(e, &[]);
    assert_eq!((b.status, x_cache(&b)), (503, "HIT"), "{:?}", b.headers);
    assert_eq!(call_no(&a), call_no(&b));
    // Request directives: no-store bypasses, no-cache forwards and stores.
    s.get("/api/items/rq", &[]);
    let bypass = s.get("/api/items/rq", &[("cache-control", "no-store")]);
    assert_eq!(x_cache(&bypass), "BYPASS");
    assert_eq!(
        bypass.header("cache-status"),
        Some("cost-optimizer; fwd=bypass")
    );
    let revalidate = s.get("/api/items/rq", &[("cache-control", "no-cache")]);
    assert_eq!(
        revalidate.header("cache-status"),
        Some("cost-optimizer; fwd=request; stored")
    );
    let hit = s.get("/api/items/rq", &[]);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(
        call_no(&hit),
        call_no(&revalidate),
        "the revalidated answer was stored"
    );
    // Authorization: not cached unless the rule opts in.
    let auth = s.get("/api/items/rq", &[("authorization", "Bearer x")]);
    assert_eq!(x_cache(&auth), "BYPASS");
}

/// How far a gateway's clock may lag the test's.
const CLOCK_SLACK_MS: u64 = 50;

on_both_hosts!(expiry_and_age);
fn expiry_and_age(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-expiry");
    let p = "/api/items/exp?cache-control=max-age%3D1";
    let start = Instant::now();
    let first = s.get(p, &[]);
    assert_eq!(x_cache(&first), "MISS");
    let hit = s.get(p, &[]);
    if start.elapsed() < Duration::from_millis(900) {
        assert_eq!(x_cache(&hit), "HIT");
    }
    let miss = wait_for("entry to expire", Duration::from_secs(10), || {
        let r = s.get(p, &[]);
        (x_cache(&r) == "MISS").then_some(r)
    });
    // Not before its second is up, give or take the host's clock: nginx
    // reads the time once per pass of its event loop, so on a busy
    // machine Kong's clock (proxy_get_current_time) lags by a few ms
    // (seen: expired 998 ms after the client sent its request).
    assert!(
        start.elapsed() >= Duration::from_millis(1000 - CLOCK_SLACK_MS),
        "expired too early: {:?}",
        start.elapsed()
    );
    assert_ne!(call_no(&miss), call_no(&first));

    let q = "/api/items/age?cache-control=max-age%3D60";
    s.get(q, &[]);
    let age0: u64 = s.get(q, &[]).header("age").unwrap().parse().unwrap();
    assert!(age0 <= 1);
    let aged = wait_for("Age to grow", Duration::from_secs(10), || {
        let a: u64 = s.get(q, &[]).header("age").unwrap().parse().unwrap();
        (a > age0).then_some(a)
    });
    assert!(aged >= 1);
}

on_both_hosts!(a_successful_write_invalidates_the_path_and_related_prefixes);
fn a_successful_write_invalidates_the_path_and_related_prefixes(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-invalidate");
    let t = [("x-tenant-id", "acme")];
    s.get("/api/items/9", &t);
    s.get("/api/items/list?page=1", &t);
    assert_eq!(x_cache(&s.get("/api/items/9", &t)), "HIT");
    assert_eq!(x_cache(&s.get("/api/items/list?page=1", &t)), "HIT");
    // Another tenant's write does not touch acme's entries.
    let w = http::request(
        "PUT",
        &s.url("/api/items/9"),
        &[("x-tenant-id", "globex")],
        Some(b"{}"),
    );
    assert_eq!(w.status, 200);
    assert_eq!(x_cache(&s.get("/api/items/9", &t)), "HIT");
    let w = http::request(
        "PUT",
        &s.url("/api/items/9"),
        &t,
        Some(b"{\"name\":\"new\"}"),
    );
    assert_eq!((w.status, x_cache(&w)), (200, "BYPASS"));
    assert_eq!(x_cache(&s.get("/api/items/9", &t)), "MISS");
    assert_eq!(
        x_cache(&s.get("/api/items/list?page=1", &t)),
        "MISS",
        "related prefix invalidated"
    );
    // A failed write invalidates nothing.
    s.get("/api/items/9", &t);
    let failed = http::request("DELETE", &s.url("/api/items/9?status=500"), &t, None);
    assert_eq!(failed.status, 500);
    assert_eq!(x_cache(&s.get("/api/items/9", &t)), "HIT");
    // Two successful writes (globex's and acme's); the failed one is not
    // counted.
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.items.cache.invalidations",
        |invalidations| assert_eq!(invalidations, 2),
    );
}

on_both_hosts!(head_is_served_from_the_get_entry_and_query_is_normalised);
fn head_is_served_from_the_get_entry_and_query_is_normalised(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-head-query");
    let get = s.get("/api/items/h", &[]);
    let head = http::request("HEAD", &s.url("/api/items/h"), &[], None);
    assert_eq!((head.status, x_cache(&head)), (200, "HIT"));
    assert!(head.body.is_empty());
    assert_eq!(s.demo.calls_for("/api/items/h"), 1);
    assert_eq!(call_no(&get), 1.max(call_no(&get)));

    s.get("/api/things/q?a=1&b=x%20y", &[]);
    for variant in [
        "/api/things/q?b=x+y&a=1",
        "/api/things/q?b=x%20y&a=%31",
        "/api/things/q?a=1&utm_source=mail&b=x%20y",
    ] {
        let r = s.get(variant, &[]);
        assert_eq!(x_cache(&r), "HIT", "{variant}");
    }
    assert_eq!(s.demo.calls_for("/api/things/q"), 1);
}

on_both_hosts!(oversized_bodies_are_delivered_intact_and_not_stored);
fn oversized_bodies_are_delivered_intact_and_not_stored(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-oversize");
    let size = 2 * MAX_ENTRY;
    for path in [
        format!("/api/items/big?size={size}"),
        format!("/api/items/bigc?size={size}&chunked=1"),
    ] {
        let a = s.get(&path, &[]);
        let b = s.get(&path, &[]);
        assert_eq!(a.body.len(), size, "{path}");
        assert_eq!(b.body.len(), size);
        let _: Value = serde_json::from_slice(&a.body).expect("intact JSON");
        assert_eq!(x_cache(&b), "MISS", "{path} must not be stored");
    }
    assert_eq!(s.demo.calls_for("/api/items/big"), 2);
    assert_eq!(s.demo.calls_for("/api/items/bigc"), 2);
    // Just under the limit is stored, chunked or not.
    let ok = format!("/api/items/fits?size={}&chunked=1", MAX_ENTRY - 200);
    s.get(&ok, &[]);
    assert_eq!(x_cache(&s.get(&ok, &[])), "HIT");
}

on_both_hosts!(stale_while_revalidate_serves_stale_while_one_request_refreshes);
fn stale_while_revalidate_serves_stale_while_one_request_refreshes(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-swr");
    let p = "/api/items/swr?cache-control=max-age%3D1%2C%20stale-while-revalidate%3D60";
    let stored_at = Instant::now();
    let first = s.get(p, &[]);
    assert_eq!(x_cache(&first), "MISS");
    // The refresh will take a while upstream.
    s.demo
        .fault(json!({"path_prefix": "/api/items/swr", "latency_ms": 800}));
    // Expiry is an event of the clock: wait until max-age has passed.
    wait_for("max-age to pass", Duration::from_secs(5), || {
        (stored_at.elapsed() > Duration::from_millis(1100)).then_some(())
    });
    let before = s.demo.calls_for("/api/items/swr");
    let answers: Vec<Resp> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8).map(|_| sc.spawn(|| s.get(p, &[]))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let labels: Vec<&str> = answers.iter().map(x_cache).collect();
    assert!(answers.iter().all(|r| r.status == 200));
    assert_eq!(
        labels.iter().filter(|l| **l == "MISS").count(),
        1,
        "exactly one refresh: {labels:?}"
    );
    assert_eq!(
        labels.iter().filter(|l| **l == "STALE").count(),
        7,
        "{labels:?}"
    );
    for r in answers.iter().filter(|r| x_cache(r) == "STALE") {
        assert_eq!(r.text(), first.text());
        assert!(r.header("cache-status").unwrap().contains("ttl=-"));
    }
    assert_eq!(s.demo.calls_for("/api/items/swr") - before, 1);
    // The refreshed answer replaced the stale one. (Early refresh may
    // elect another refresher meanwhile: the upstream took 800 ms of a
    // 1 s lifetime, so what comes next is a hit or a miss, never stale.)
    let after = s.get(p, &[]);
    assert_ne!(x_cache(&after), "STALE");
    assert_ne!(after.body, first.body);
}

on_both_hosts!(a_binary_body_is_served_from_the_cache_byte_for_byte);
/// A hit carries exactly the stored bytes, whatever they are (Kong's
/// engine appends a newline to every local reply; the adapter undoes it).
fn a_binary_body_is_served_from_the_cache_byte_for_byte(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-binary");
    let path = "/api/items/bin?binary=1&size=4099";
    let first = s.get(path, &[("x-tenant-id", "acme")]);
    assert_eq!((first.status, x_cache(&first)), (200, "MISS"));
    assert_eq!(first.body.len(), 4099);
    assert!(first.body.contains(&0) && first.body.contains(&b'\n'));
    assert_ne!(first.body.last(), Some(&b'\n'));
    for _ in 0..3 {
        let hit = s.get(path, &[("x-tenant-id", "acme")]);
        assert_eq!(x_cache(&hit), "HIT");
        assert_eq!(hit.body, first.body, "the stored bytes, no more, no less");
        assert_eq!(hit.header("content-type"), Some("application/octet-stream"));
    }
    assert_eq!(s.demo.calls_for("/api/items/bin"), 1);
}

on_both_hosts!(stale_if_error_serves_the_stale_entry_when_the_upstream_fails);
fn stale_if_error_serves_the_stale_entry_when_the_upstream_fails(kind: GatewayKind) {
    let s = cache_stack(kind, "cache-sie");
    let p = "/api/items/sie?cache-control=max-age%3D1%2C%20stale-if-error%3D60";
    let first = s.get(p, &[]);
    s.demo
        .fault(json!({"path_prefix": "/api/items/sie", "status": 503}));
    let served = wait_for(
        "expiry, then stale on error",
        Duration::from_secs(10),
        || {
            let r = s.get(p, &[]);
            (x_cache(&r) == "STALE").then_some(r)
        },
    );
    assert_eq!(served.status, 200);
    assert_eq!(served.text(), first.text());
    assert!(served
        .header("cache-status")
        .unwrap()
        .contains("fwd-status=503"));
    // Without stale-if-error the error passes through.
    let q = "/api/items/nosie?cache-control=max-age%3D1";
    s.get(q, &[]);
    s.demo
        .fault(json!({"path_prefix": "/api/items/nosie", "status": 503}));
    let r = wait_for("expiry", Duration::from_secs(10), || {
        let r = s.get(q, &[]);
        (r.status == 503).then_some(r)
    });
    assert_eq!(x_cache(&r), "MISS");
}
