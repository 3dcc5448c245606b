//! Issue 15, end to end on each host (Envoy, and Kong's engine; two
//! workers): the cache's RFC 9111 behaviour against an origin that sends
//! every kind of caching header (the demo API's `header=name:value`,
//! `etag=`, `last-modified=`, and its `304`s to matching conditionals).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::gateway::GatewayKind;
use e2e::http::{self, enc, Resp};
use e2e::on_both_hosts;
use e2e::procs::wait_for;
use e2e::stack::Stack;
use serde_json::json;

fn rfc_stack(kind: GatewayKind, name: &str) -> Stack {
    Stack::start_on(
        kind,
        name,
        Options {
            filter: json!({
                "version": 1,
                "cache_store": {"max_entries": 1024, "ways": 4, "max_entry_bytes": 65536},
                "routes": [
                    // No early (XFetch) refresh: it is random, and a
                    // fresh entry refreshed early would never be seen
                    // stale by the tests that wait for it to go stale.
                    {"name": "items", "match": {"prefix": "/api/items"},
                     "cache": {"refresh": {"target": "demo_api"}, "xfetch_beta": 0}}
                ]
            }),
            jwt: false,
        },
    )
}

fn call_no(r: &Resp) -> u64 {
    r.json()["call"]
        .as_u64()
        .unwrap_or_else(|| panic!("no call number in {:?} {}", r.headers, r.text()))
}

fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("<none>")
}

const T: [(&str, &str); 1] = [("x-tenant-id", "acme")];

on_both_hosts!(a_write_elsewhere_in_flight_does_not_stop_storing_but_one_to_the_same_uri_does);
/// Bug 1 (RFC 9111 §4.4): a successful write invalidates its own target
/// URI, not every response in flight.
fn a_write_elsewhere_in_flight_does_not_stop_storing_but_one_to_the_same_uri_does(
    kind: GatewayKind,
) {
    let s = rfc_stack(kind, "rfc-write-elsewhere");
    for (target, write_to, hit_after) in [
        ("/api/items/slow", "/api/items/other", true),
        ("/api/items/same", "/api/items/same", false),
    ] {
        let path = format!("{target}?delay_ms=400");
        std::thread::scope(|sc| {
            let get = sc.spawn(|| s.get(&path, &T));
            // The GET is at the origin (in flight) before the write goes.
            wait_for("the GET at the origin", Duration::from_secs(10), || {
                (s.demo.calls_for(target) == 1).then_some(())
            });
            let w = http::request("PUT", &s.url(write_to), &T, Some(b"{}"));
            assert_eq!(w.status, 200, "{w:?}");
            let first = get.join().unwrap();
            assert_eq!(x_cache(&first), "MISS");
            assert_eq!(
                first.header("cache-status"),
                Some("cost-optimizer; fwd=miss; stored")
            );
            let again = s.get(&path, &T);
            if hit_after {
                assert_eq!(x_cache(&again), "HIT", "{target}: {:?}", again.headers);
                assert_eq!(call_no(&again), call_no(&first));
            } else {
                assert_eq!(
                    x_cache(&again),
                    "MISS",
                    "{target}: the write made it unreachable"
                );
                assert_ne!(call_no(&again), call_no(&first));
            }
        });
    }
}

on_both_hosts!(a_stored_partial_answer_is_never_served_to_a_plain_get);
/// Bug 2 (§3.3): a 206 is not stored, so a GET without `Range` never
/// gets one from the cache.
fn a_stored_partial_answer_is_never_served_to_a_plain_get(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-206");
    let path = format!(
        "/api/items/part?status=206&header={}",
        enc("content-range:bytes 0-4/10")
    );
    let first = s.get(&path, &T);
    assert_eq!(first.status, 206);
    assert_eq!(
        first.header("cache-status"),
        Some("cost-optimizer; fwd=miss")
    );
    let second = s.get(&path, &T);
    assert_eq!(x_cache(&second), "MISS", "{:?}", second.headers);
    assert_ne!(call_no(&second), call_no(&first));
}

on_both_hosts!(invalid_expires_is_already_expired_and_every_date_format_parses);
/// Bug 3 (§5.3; RFC 9110 §5.6.7).
fn invalid_expires_is_already_expired_and_every_date_format_parses(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-expires");
    for (i, (expires, cached)) in [
        ("Thu 18 Aug 2050 07:00:00 GMT", false),
        ("Thu, 18 Aug 2050 7:00:00 GMT", false),
        ("Thu, 18 Aug 2050 07:00:00 GMT", true),
        ("Thursday, 18-Aug-50 07:00:00 GMT", true),
        ("Thu Aug 18 07:00:00 2050", true),
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/api/items/exp{i}?cache-control=&expires={}", enc(expires));
        let a = s.get(&path, &T);
        let b = s.get(&path, &T);
        let want = if cached { "HIT" } else { "MISS" };
        assert_eq!(
            x_cache(&b),
            want,
            "Expires: {expires}: {:?} {:?}",
            a.headers,
            b.headers
        );
    }
}

on_both_hosts!(a_list_valued_age_counts_and_a_hit_keeps_the_origin_date);
/// Bugs 4 and 5 (§5.1, §3.1; RFC 9110 §6.6.1).
fn a_list_valued_age_counts_and_a_hit_keeps_the_origin_date(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-age-date");
    // Age 7200 (first member) against max-age 3600: stale on arrival.
    let stale = format!(
        "/api/items/age-list?cache-control={}&header={}",
        enc("max-age=3600"),
        enc("age:7200, 0")
    );
    s.get(&stale, &T);
    assert_eq!(x_cache(&s.get(&stale, &T)), "MISS");
    // Age 100: fresh, and the hit's Age includes it.
    let aged = format!(
        "/api/items/age-100?cache-control={}&header={}",
        enc("max-age=3600"),
        enc("age:100")
    );
    let first = s.get(&aged, &T);
    let date = first.header("date").expect("origin Date").to_string();
    let hit = s.get(&aged, &T);
    assert_eq!(x_cache(&hit), "HIT");
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!(age >= 100, "age {age}");
    // A hit a second or more later still carries the origin's Date.
    let later = wait_for("a hit a second later", Duration::from_secs(10), || {
        let r = s.get(&aged, &T);
        (r.header("age").and_then(|a| a.parse::<u64>().ok()) > Some(age)).then_some(r)
    });
    assert_eq!(x_cache(&later), "HIT");
    assert_eq!(
        later.header("date"),
        Some(date.as_str()),
        "{:?}",
        later.headers
    );
    assert_eq!(
        later.headers.iter().filter(|(k, _)| k == "date").count(),
        1,
        "one Date: {:?}",
        later.headers
    );
}

on_both_hosts!(fields_named_by_connection_are_not_replayed);
/// Bug 6 (§3.1). On Kong, nginx drops the origin's `connection` field
/// before any filter sees it (and passes the fields it names on to the
/// client on a miss), so there the cache replays what the host passed.
fn fields_named_by_connection_are_not_replayed(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-connection");
    let path = format!(
        "/api/items/conn?header={}&header={}&header={}",
        enc("connection:x-hop"),
        enc("x-hop:1"),
        enc("x-kept:2")
    );
    s.get(&path, &T);
    let hit = s.get(&path, &T);
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.header("x-kept"), Some("2"));
    let want = match kind {
        GatewayKind::Envoy => None,
        GatewayKind::Kong => Some("1"),
    };
    assert_eq!(hit.header("x-hop"), want, "{:?}", hit.headers);
}

on_both_hosts!(a_stale_entry_is_revalidated_and_a_304_answers_from_it);
/// §4.3.1–§4.3.4: `no-cache` with an `ETag`: stored, revalidated on each
/// use with `If-None-Match`; the origin's `304` is answered from the
/// entry (its body, not a new one).
fn a_stale_entry_is_revalidated_and_a_304_answers_from_it(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-revalidate");
    let path = format!(
        "/api/items/rv?cache-control=no-cache&etag={}&echo-header=if-none-match",
        enc("\"v1\"")
    );
    let first = s.get(&path, &T);
    assert_eq!((first.status, x_cache(&first)), (200, "MISS"));
    assert_eq!(
        first.json()["headers"]["if-none-match"],
        serde_json::Value::Null
    );
    let second = s.get(&path, &T);
    assert_eq!(second.status, 200, "{:?}", second.headers);
    assert_eq!(x_cache(&second), "HIT", "{:?}", second.headers);
    assert_eq!(second.text(), first.text(), "the stored body");
    assert_eq!(
        second.header("cache-status"),
        Some("cost-optimizer; fwd=stale; fwd-status=304; stored")
    );
    assert_eq!(second.header("etag"), Some("\"v1\""));
    assert_eq!(s.demo.calls_for("/api/items/rv"), 2, "one revalidation");
    s.gateway.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.items.cache.revalidated",
        |n| assert_eq!(n, 1),
    );
}

on_both_hosts!(a_client_conditional_request_is_answered_304_from_a_fresh_entry);
/// RFC 9110 §13.2.2 on a fresh hit: If-None-Match (weak comparison)
/// first, then If-Modified-Since.
fn a_client_conditional_request_is_answered_304_from_a_fresh_entry(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-conditional");
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let path = format!(
        "/api/items/cond?etag={}&last-modified={}",
        enc("\"e1\""),
        enc(lm)
    );
    let first = s.get(&path, &T);
    assert_eq!(x_cache(&first), "MISS");
    let h = |k: &'static str, v: &'static str| [T[0], (k, v)];
    let nm = s.get(&path, &h("if-none-match", "W/\"e1\""));
    assert_eq!((nm.status, x_cache(&nm)), (304, "HIT"), "{:?}", nm.headers);
    assert_eq!(nm.body.len(), 0);
    assert_eq!(nm.header("etag"), Some("\"e1\""));
    let other = s.get(&path, &h("if-none-match", "\"e2\""));
    assert_eq!((other.status, x_cache(&other)), (200, "HIT"));
    assert_eq!(other.text(), first.text());
    let ims = s.get(
        &path,
        &h("if-modified-since", "Mon, 07 Nov 1994 00:00:00 GMT"),
    );
    assert_eq!(ims.status, 304);
    let older = s.get(
        &path,
        &h("if-modified-since", "Sat, 05 Nov 1994 00:00:00 GMT"),
    );
    assert_eq!(older.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let both = s.get(
        &path,
        &[
            T[0],
            ("if-none-match", "\"e2\""),
            ("if-modified-since", "Mon, 07 Nov 1994 00:00:00 GMT"),
        ],
    );
    assert_eq!(both.status, 200);
    assert_eq!(s.demo.calls_for("/api/items/cond"), 1);
}

on_both_hosts!(a_range_is_answered_206_from_a_stored_whole_answer);
/// RFC 9110 §14: one byte range from a stored 200; out of range: 416.
fn a_range_is_answered_206_from_a_stored_whole_answer(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-range");
    let path = "/api/items/rng?size=100";
    let whole = s.get(path, &T);
    assert_eq!(whole.body.len(), 100);
    let part = s.get(path, &[T[0], ("range", "bytes=10-19")]);
    assert_eq!(
        (part.status, x_cache(&part)),
        (206, "HIT"),
        "{:?}",
        part.headers
    );
    assert_eq!(part.header("content-range"), Some("bytes 10-19/100"));
    assert_eq!(part.body, whole.body[10..20].to_vec());
    let tail = s.get(path, &[T[0], ("range", "bytes=-5")]);
    assert_eq!(tail.body, whole.body[95..].to_vec());
    let out = s.get(path, &[T[0], ("range", "bytes=500-")]);
    assert_eq!(out.status, 416);
    assert_eq!(out.header("content-range"), Some("bytes */100"));
    assert_eq!(s.demo.calls_for("/api/items/rng"), 1);
}

on_both_hosts!(stale_while_revalidate_answers_at_once_and_refreshes_in_the_background);
/// RFC 5861: once stale, the next request gets the stale entry at once
/// and one background refresh replaces it; no client waits for the origin.
fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-swr");
    // max-age 3: the origin's Date may lag its clock by up to a second
    // and is cut to whole seconds, so the apparent age on arrival can be
    // 1 s (RFC 9111 §4.2.3); the entry is still fresh for a while.
    let path = format!(
        "/api/items/swr?cache-control={}",
        enc("max-age=3, stale-while-revalidate=60")
    );
    let first = s.get(&path, &T);
    assert_eq!(x_cache(&first), "MISS");
    let stale = wait_for("the entry to go stale", Duration::from_secs(10), || {
        let r = s.get(&path, &T);
        assert_ne!(
            x_cache(&r),
            "MISS",
            "no client goes upstream: {:?}",
            r.headers
        );
        (x_cache(&r) == "STALE").then_some(r)
    });
    assert_eq!(call_no(&stale), call_no(&first), "the stale entry, at once");
    let refreshed = wait_for("the background refresh", Duration::from_secs(10), || {
        let r = s.get(&path, &T);
        assert_ne!(x_cache(&r), "MISS", "{:?}", r.headers);
        (x_cache(&r) == "HIT" && call_no(&r) != call_no(&first)).then_some(r)
    });
    assert_eq!(call_no(&refreshed), 2);
    assert_eq!(s.demo.calls_for("/api/items/swr"), 2, "one refresh");
    s.gateway.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.items.cache.refreshes",
        |n| assert_eq!(n, 1),
    );
}

on_both_hosts!(cdn_cache_control_takes_precedence_for_this_cache);
/// RFC 9213: `CDN-Cache-Control` replaces `Cache-Control` here.
fn cdn_cache_control_takes_precedence_for_this_cache(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-cdn");
    let path = format!(
        "/api/items/cdn?cache-control=no-store&header={}",
        enc("cdn-cache-control:max-age=60")
    );
    s.get(&path, &T);
    let hit = s.get(&path, &T);
    assert_eq!(x_cache(&hit), "HIT", "{:?}", hit.headers);
    assert_eq!(
        hit.header("cache-control"),
        Some("no-store"),
        "passed on as sent"
    );
}

on_both_hosts!(stale_if_error_covers_an_origin_that_resets_the_connection);
/// RFC 5861 `stale-if-error`: an origin that closes the connection
/// without answering (the host's own 502/503) gets the stale entry too.
fn stale_if_error_covers_an_origin_that_resets_the_connection(kind: GatewayKind) {
    let s = rfc_stack(kind, "rfc-sie-reset");
    // Stale at once (max-age=0), kept for revalidation (its ETag) and
    // usable on error for a minute.
    let path = format!(
        "/api/items/sie?cache-control={}&etag={}",
        enc("max-age=0, stale-if-error=60"),
        enc("\"s1\"")
    );
    let first = s.get(&path, &T);
    assert_eq!(x_cache(&first), "MISS");
    s.demo
        .fault(json!({"path_prefix": "/api/items/sie", "abort": true}));
    let stale = s.get(&path, &T);
    assert_eq!(
        (stale.status, x_cache(&stale)),
        (200, "STALE"),
        "{:?}",
        stale.headers
    );
    assert_eq!(stale.text(), first.text());
    let cs = stale.header("cache-status").unwrap();
    assert!(cs.contains("fwd-status=50"), "{cs}");
}
