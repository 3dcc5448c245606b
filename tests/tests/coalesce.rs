//! Issue 4, end to end on each host (Envoy, and Kong's engine; two
//! workers): identical concurrent requests cost one upstream call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use e2e::envoy_config::Options;
use e2e::http::{self, Resp};
use e2e::procs::wait_for;
use e2e::stack::Stack;
use e2e::wire::RawRequest;
use serde_json::json;

fn stack(kind: GatewayKind, name: &str) -> Stack {
    Stack::start_on(
        kind,
        name,
        Options {
            filter: json!({
                "version": 1,
                "routes": [
                    {"name": "live", "match": {"prefix": "/api/live/"}, "sla_ms": 5000,
                     "coalesce": {"grace_ms": 5000}},
                    {"name": "items", "match": {"prefix": "/api/items/"}, "sla_ms": 5000,
                     "cache": {}, "coalesce": {"grace_ms": 5000}},
                    {"name": "orders", "match": {"prefix": "/api/orders/"}, "sla_ms": 5000,
                     "coalesce": {"idempotency_key": true}},
                    {"name": "posts", "match": {"prefix": "/api/posts/"}, "sla_ms": 5000, "coalesce": {}},
                    {"name": "fast", "match": {"prefix": "/api/fast/"}, "sla_ms": 200, "coalesce": {}}
                ]
            }),
            jwt: false,
        },
    )
}

/// `n` requests fired together from their own connections.
fn burst(
    s: &Stack,
    n: usize,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<(Resp, Duration)> {
    // Each request is its own client on its own connection.
    let barrier = Barrier::new(n);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    let t = Instant::now();
                    let r = http::request_fresh(method, &s.url(path), headers, body);
                    (r, t.elapsed())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("<none>")
}

on_both_hosts!(two_hundred_identical_requests_cost_one_upstream_call);
fn two_hundred_identical_requests_cost_one_upstream_call(kind: GatewayKind) {
    let s = stack(kind, "coalesce-200");
    let path = "/api/live/1?cache-control=no-store&delay_ms=300";
    let answers = burst(&s, 200, "GET", path, &[("x-tenant-id", "acme")], None);
    assert_eq!(
        s.demo.calls_for("/api/live/1"),
        1,
        "exactly one upstream call"
    );
    let leader_body = answers
        .iter()
        .find(|(r, _)| x_cache(r) != "COALESCED")
        .expect("a leader")
        .0
        .text();
    let mut coalesced = 0;
    for (r, _) in &answers {
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), leader_body, "every answer is the leader's");
        if x_cache(r) == "COALESCED" {
            coalesced += 1;
            assert_eq!(
                r.header("cache-status"),
                Some("cost-optimizer; fwd=miss; collapsed")
            );
            assert!(r.header("x-request-id").is_some());
        }
    }
    assert_eq!(coalesced, 199);
    let stat = |w: &str| format!("wasmcustom.cost_optimizer.route.live.coalesce.{w}");
    s.with_envoy_stat(&stat("leaders"), |n| assert_eq!(n, 1));
    s.with_envoy_stat(&stat("coalesced"), |n| assert_eq!(n, 199));
}

on_both_hosts!(tenants_do_not_share_and_the_cache_stores_once);
fn tenants_do_not_share_and_the_cache_stores_once(kind: GatewayKind) {
    let s = stack(kind, "coalesce-tenants");
    let path = "/api/live/2?cache-control=no-store&delay_ms=300";
    std::thread::scope(|sc| {
        let a = sc.spawn(|| burst(&s, 10, "GET", path, &[("x-tenant-id", "acme")], None));
        let b = sc.spawn(|| burst(&s, 10, "GET", path, &[("x-tenant-id", "globex")], None));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_ne!(
            a[0].0.body, b[0].0.body,
            "each tenant got its own upstream answer"
        );
    });
    assert_eq!(s.demo.calls_for("/api/live/2"), 2);

    // A cacheable resource: one call, stored once, then hits.
    let answers = burst(&s, 20, "GET", "/api/items/3?delay_ms=300", &[], None);
    assert!(answers.iter().all(|(r, _)| r.status == 200));
    assert_eq!(s.demo.calls_for("/api/items/3"), 1);
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.items.cache.stores",
        |stores| assert_eq!(stores, 1),
    );
    assert_eq!(x_cache(&s.get("/api/items/3?delay_ms=300", &[])), "HIT");
}

on_both_hosts!(writes_coalesce_only_with_the_same_idempotency_key);
fn writes_coalesce_only_with_the_same_idempotency_key(kind: GatewayKind) {
    let s = stack(kind, "coalesce-writes");
    let posts = burst(&s, 5, "POST", "/api/posts/1?delay_ms=300", &[], Some(b"{}"));
    assert!(posts.iter().all(|(r, _)| r.status == 200));
    assert_eq!(
        s.demo.calls_for("/api/posts/1"),
        5,
        "a POST is never coalesced"
    );

    let same = burst(
        &s,
        2,
        "POST",
        "/api/orders/1?delay_ms=300",
        &[("idempotency-key", "k-1")],
        Some(b"{\"n\":1}"),
    );
    assert!(same.iter().all(|(r, _)| r.status == 200));
    assert_eq!(
        s.demo.calls_for("/api/orders/1"),
        1,
        "same Idempotency-Key: one call"
    );
    assert_eq!(same[0].0.text(), same[1].0.text());

    let bare = burst(
        &s,
        2,
        "POST",
        "/api/orders/2?delay_ms=300",
        &[],
        Some(b"{}"),
    );
    assert!(bare.iter().all(|(r, _)| r.status == 200));
    assert_eq!(
        s.demo.calls_for("/api/orders/2"),
        2,
        "no Idempotency-Key: not coalesced"
    );
}

on_both_hosts!(a_failing_leader_releases_its_followers_promptly);
fn a_failing_leader_releases_its_followers_promptly(kind: GatewayKind) {
    let s = stack(kind, "coalesce-5xx");
    // Only the first request to reach the upstream gets the 503.
    // (an injected error skips the handler, so the fault carries the latency).
    s.demo.fault(
        json!({"path_prefix": "/api/live/5", "status": 503, "latency_ms": 2000, "count": 1}),
    );
    let path = "/api/live/5?cache-control=no-store&delay_ms=300";
    std::thread::scope(|sc| {
        let leader = sc.spawn(|| http::request_fresh("GET", &s.url(path), &[], None));
        wait_for(
            "the leader to reach the upstream",
            Duration::from_secs(10),
            || (s.demo.calls_for("/api/live/5") == 1).then_some(()),
        );
        // Nine followers on connections of their own; the gateway holds
        // each once it has read its request (so its filter has seen it).
        let followers: Vec<(RawRequest, Instant)> = (0..9)
            .map(|_| {
                (
                    RawRequest::send(s.ports.listen, "GET", path, &[], None),
                    Instant::now(),
                )
            })
            .collect();
        for (f, _) in &followers {
            f.wait_read_by_server();
        }
        let answers: Vec<_> = followers
            .into_iter()
            .map(|(f, t)| sc.spawn(move || (f.response(), t.elapsed())))
            .collect();
        let leader = leader.join().unwrap();
        assert_eq!(leader.status, 503, "the leader gets its own answer");
        for a in answers {
            let (r, took) = a.join().unwrap();
            assert_eq!(r.status, 200, "no follower receives the leader's 503");
            assert_ne!(x_cache(&r), "COALESCED");
            // Released at the leader's failure (2 s), then its own 300 ms
            // call: within the 5 s SLA plus the upstream latency.
            assert!(took < Duration::from_millis(5_000 + 300), "took {took:?}");
        }
    });
    assert_eq!(
        s.demo.calls_for("/api/live/5"),
        10,
        "each follower went upstream itself"
    );
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.live.coalesce.released",
        |released| assert_eq!(released, 9),
    );
}

on_both_hosts!(followers_are_answered_when_the_leaders_client_disconnects);
fn followers_are_answered_when_the_leaders_client_disconnects(kind: GatewayKind) {
    let s = stack(kind, "coalesce-disconnect");
    // The leader's call lasts long enough that its client is surely gone
    // before it ends, however slowly a busy machine sends the followers
    // (at 800 ms the answer sometimes came first and the followers were
    // coalesced, not released); still within the followers' 5 s wait.
    let path = "/api/live/6?cache-control=no-store&delay_ms=4000";
    let leader = RawRequest::send(s.ports.listen, "GET", path, &[], None);
    wait_for(
        "the leader to reach the upstream",
        Duration::from_secs(10),
        || (s.demo.calls_for("/api/live/6") == 1).then_some(()),
    );
    let followers: Vec<RawRequest> = (0..4)
        .map(|_| RawRequest::send(s.ports.listen, "GET", path, &[], None))
        .collect();
    for f in &followers {
        f.wait_read_by_server();
    }
    // The leader's client goes away while its call is in flight.
    let dropped = Instant::now();
    drop(leader);
    let seen: Vec<String> = std::thread::scope(|sc| {
        let answers: Vec<_> = followers
            .into_iter()
            .map(|f| sc.spawn(move || (f.response(), dropped.elapsed())))
            .collect();
        answers
            .into_iter()
            .map(|a| {
                let (r, t) = a.join().unwrap();
                assert_eq!(r.status, 200, "{}", r.text());
                format!("{} after {t:?}", x_cache(&r))
            })
            .collect()
    });
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.live.coalesce.released",
        |released| assert_eq!(released, 4, "followers: {seen:?}"),
    );
}

on_both_hosts!(a_follower_with_a_short_sla_goes_upstream_itself);
fn a_follower_with_a_short_sla_goes_upstream_itself(kind: GatewayKind) {
    let s = stack(kind, "coalesce-timeout");
    let path = "/api/fast/1?delay_ms=1000";
    std::thread::scope(|sc| {
        let leader = sc.spawn(|| http::get(&s.url(path), &[]));
        wait_for(
            "the leader to reach the upstream",
            Duration::from_secs(10),
            || (s.demo.calls_for("/api/fast/1") == 1).then_some(()),
        );
        let follower = http::get(&s.url(path), &[]);
        let leader = leader.join().unwrap();
        assert_eq!((leader.status, follower.status), (200, 200));
        assert_ne!(
            leader.body, follower.body,
            "answered by its own upstream call"
        );
    });
    assert_eq!(s.demo.calls_for("/api/fast/1"), 2);
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.fast.coalesce.timeouts",
        |timeouts| assert_eq!(timeouts, 1),
    );
}

on_both_hosts!(a_leaders_connection_carries_its_next_request);
/// A leader whose followers are answered on its own worker keeps its
/// connection: the next request on it is answered. (Envoy turns the
/// result of the hook that sends a local reply into "stop", even when the
/// reply is for another stream; the leader's last body chunk then never
/// left, and a kept-alive connection carried nothing more.) Sixteen
/// followers on their own connections over two workers: the chance that
/// none shares the leader's worker is 2^-16.
fn a_leaders_connection_carries_its_next_request(kind: GatewayKind) {
    use e2e::wire::KeepAlive;
    let s = stack(kind, "coalesce-keepalive");
    let tenant = [("x-tenant-id", "acme")];
    let path = "/api/live/keepalive?cache-control=no-store&delay_ms=400";
    let mut leader = KeepAlive::connect(s.ports.listen, Duration::from_secs(10));
    leader.send_get(path, &tenant);
    wait_for(
        "the leader's upstream call",
        Duration::from_secs(10),
        || (s.demo.calls_for("/api/live/keepalive") == 1).then_some(()),
    );
    let followers = burst(&s, 16, "GET", path, &tenant, None);
    let first = leader.answer().expect("the leader's answer");
    assert_eq!(first.status, 200);
    assert_ne!(x_cache(&first), "COALESCED", "the kept-alive request led");
    for (r, _) in &followers {
        assert_eq!((r.status, x_cache(r)), (200, "COALESCED"));
        assert_eq!(r.body, first.body);
    }
    assert_eq!(s.demo.calls_for("/api/live/keepalive"), 1);
    leader.send_get("/api/live/after?cache-control=no-store", &tenant);
    let next = leader
        .answer()
        .unwrap_or_else(|e| panic!("the next request on the leader's connection: {e}"));
    assert_eq!(next.status, 200);
    assert!(next.text().contains("\"id\":\"after\""), "{}", next.text());
}

on_both_hosts!(a_read_after_a_write_does_not_follow_a_leader_from_before_it);
/// A GET sent after a PUT to the same item was answered does not take the
/// answer of a GET that went upstream before the PUT: it goes upstream
/// itself and sees the write.
fn a_read_after_a_write_does_not_follow_a_leader_from_before_it(kind: GatewayKind) {
    let s = stack(kind, "coalesce-after-write");
    let tenant = [("x-tenant-id", "acme")];
    let path = "/api/items/aw1?delay_ms=800";
    std::thread::scope(|sc| {
        let early = sc.spawn(|| http::request_fresh("GET", &s.url(path), &tenant, None));
        wait_for(
            "the early GET's upstream call",
            Duration::from_secs(10),
            || (s.demo.calls_for("/api/items/aw1") == 1).then_some(()),
        );
        let put = http::request_fresh("PUT", &s.url("/api/items/aw1"), &tenant, Some(b"{}"));
        assert!(put.status < 300, "PUT: {} {}", put.status, put.text());
        let written = put.json()["call"].as_u64().expect("the PUT's call number");
        let late = http::request_fresh("GET", &s.url(path), &tenant, None);
        assert_eq!(late.status, 200);
        assert_ne!(x_cache(&late), "COALESCED", "{:?}", late.headers);
        let seen = late.json()["call"].as_u64().expect("call number");
        assert!(
            seen > written,
            "the late GET saw call {seen}, the PUT was {written}"
        );
        let early = early.join().unwrap();
        assert_eq!(early.status, 200);
        assert!(early.json()["call"].as_u64().unwrap() < written);
    });
    assert_eq!(
        s.demo.calls_for("/api/items/aw1"),
        3,
        "two GETs and the PUT"
    );
}
