//! Issue 19, what an attacker or a broken upstream sends, end to end on
//! each host (Envoy, and Kong's engine; two workers): cache poisoning
//! through headers the cache key leaves out, path tricks, identity values
//! that are not safe text, upstream caching fields that are garbage, and
//! batch answers that lie about their members or are huge. Each gets the
//! outcome the README's "Hostile input" section documents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::gateway::GatewayKind;
use e2e::http::{self, Resp};
use e2e::on_both_hosts;
use e2e::stack::Stack;
use e2e::wire::{parse_response, RawRequest};
use serde_json::{json, Value};

fn stack(kind: GatewayKind, name: &str) -> Stack {
    Stack::start_on(
        kind,
        name,
        Options {
            filter: json!({
                "version": 1,
                "routes": [
                    {"name": "items", "match": {"prefix": "/api/items/"}, "cache": {}},
                    {"name": "small", "match": {"prefix": "/api/small/"},
                     "cache": {"max_entry_bytes": 2048}},
                    {"name": "quotes", "match": {"prefix": "/api/quotes/"}, "sla_ms": 4000,
                     "batch": {"upstream": "demo_api", "path": "/api/batch", "window_ms": 300, "max_size": 4}}
                ]
            }),
            jwt: false,
        },
    )
}

fn get(s: &Stack, path: &str, headers: &[(&str, &str)]) -> Resp {
    http::request_fresh("GET", &s.url(path), headers, None)
}

fn json_body(r: &Resp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.text()))
}

/// Headers some applications trust to build links or to route, which the
/// cache key leaves out (some of `shared_answers.bypass_headers`' default).
/// The demo API reflects each in its body when asked (`echo-header=`), as
/// a vulnerable application would, and sends no `Vary` for it.
const UNKEYED: [&str; 8] = [
    "x-forwarded-host",
    "x-forwarded-scheme",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-host",
    "x-http-method-override",
    "forwarded",
];

on_both_hosts!(headers_the_key_leaves_out_never_reach_another_clients_cached_answer);
fn headers_the_key_leaves_out_never_reach_another_clients_cached_answer(kind: GatewayKind) {
    let s = stack(kind, "adv-unkeyed");
    for (i, name) in UNKEYED.iter().enumerate() {
        let path = format!("/api/items/p{i}?echo-header={name}");
        let evil = "evil.example";
        let attacker = get(&s, &path, &[("x-tenant-id", "t"), (name, evil)]);
        assert_eq!(attacker.status, 200, "{name}: {}", attacker.text());
        let victim = get(&s, &path, &[("x-tenant-id", "t")]);
        assert_eq!(victim.status, 200);
        assert!(
            !victim.text().contains(evil),
            "{name}: the victim got the attacker's reflected value: {}",
            victim.text()
        );
        // And the victim's own answer is cached: the header only bypassed.
        let again = get(&s, &path, &[("x-tenant-id", "t")]);
        assert_eq!(again.header("x-cache"), Some("HIT"), "{name}");
        assert_eq!(
            json_body(&again)["call"],
            json_body(&victim)["call"],
            "{name}"
        );
    }
}

/// Raw path pairs a cache might wrongly treat as one resource. The first
/// is stored; the second, from the same tenant, must get what the
/// upstream answers for it (checked against a second tenant, for whom it
/// is a miss).
const PATH_TRICKS: [(&str, &str); 9] = [
    ("/api/items/t1", "/api/items/%74%31"),
    ("/api/items/t2", "/api/items/./t2"),
    ("/api/items/t3", "/api/items/x/../t3"),
    ("/api/items/t4", "/api/items/%2e%2e/items/t4"),
    ("/api/items/t5", "/api/items/%252e%252e/items/t5"),
    ("/api/items/t6", "/API/items/t6"),
    ("/api/items/t7", "/api/items/T7"),
    ("/api/items/t8", "/api/items/t8;x=1"),
    ("/api/items/t9", "/api/items/t9%2Fa"),
];

fn raw_get(s: &Stack, path: &str, tenant: &str) -> Resp {
    RawRequest::send(
        s.ports.listen,
        "GET",
        path,
        &[("x-tenant-id", tenant)],
        None,
    )
    .response()
}

/// What identifies a demo answer's resource (its `call` differs per call).
fn resource(r: &Resp) -> (u16, Value, Value) {
    if r.status != 200 {
        return (r.status, Value::Null, Value::Null);
    }
    let v = json_body(r);
    (r.status, v["resource"].clone(), v["id"].clone())
}

on_both_hosts!(path_tricks_never_serve_another_paths_body);
fn path_tricks_never_serve_another_paths_body(kind: GatewayKind) {
    let s = stack(kind, "adv-paths");
    for (stored, trick) in PATH_TRICKS {
        let first = raw_get(&s, stored, "a");
        assert_eq!(first.status, 200, "{stored}: {}", first.text());
        let tricked = raw_get(&s, trick, "a");
        let upstream_view = raw_get(&s, trick, "b");
        assert_ne!(
            upstream_view.header("x-cache"),
            Some("HIT"),
            "{trick}: tenant b never asked before"
        );
        assert_eq!(
            resource(&tricked),
            resource(&upstream_view),
            "{trick} after {stored}: a's answer is not what the upstream gives for it"
        );
        // The other tenant never gets a's stored answer for the plain path.
        let other = raw_get(&s, stored, "c");
        assert_ne!(
            other.header("x-cache"),
            Some("HIT"),
            "{stored} for tenant c"
        );
    }
}

/// One request with raw header bytes, on its own connection.
fn raw_bytes_get(port: u16, path: &str, extra: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n").into_bytes();
    req.extend_from_slice(extra);
    req.extend_from_slice(b"\r\n");
    stream.write_all(&req).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw, "GET")
}

on_both_hosts!(identity_values_that_are_not_safe_text_are_nobodys_and_see_no_tenants_data);
fn identity_values_that_are_not_safe_text_are_nobodys_and_see_no_tenants_data(kind: GatewayKind) {
    let s = stack(kind, "adv-identity");
    let path = "/api/items/who";
    let owner = get(&s, path, &[("x-tenant-id", "t")]);
    assert_eq!(owner.status, 200);
    assert_eq!(
        get(&s, path, &[("x-tenant-id", "t")]).header("x-cache"),
        Some("HIT")
    );
    let long = format!("x-tenant-id: t{}\r\n", "a".repeat(9 * 1024));
    let cases: [(&str, Vec<u8>); 4] = [
        ("not UTF-8", b"x-tenant-id: t\xff\r\n".to_vec()),
        ("Latin-1 lookalike", b"x-tenant-id: \xe9t\r\n".to_vec()),
        ("over 8 KiB", long.into_bytes()),
        ("control character", b"x-tenant-id: t\x01\r\n".to_vec()),
    ];
    for (what, header) in cases {
        let r = raw_bytes_get(s.ports.listen, path, &header);
        // The gateway may refuse the header itself (400, 431); if it lets
        // it through, the filter treats the value as no identity at all.
        if r.status == 200 {
            assert_ne!(
                json_body(&r)["call"],
                json_body(&owner)["call"],
                "{what}: got tenant t's cached answer"
            );
        } else {
            assert!(
                [400, 431].contains(&r.status),
                "{what}: {} {}",
                r.status,
                r.text()
            );
        }
    }
}

on_both_hosts!(upstream_caching_fields_that_are_garbage_are_never_stored_on_their_word);
fn upstream_caching_fields_that_are_garbage_are_never_stored_on_their_word(kind: GatewayKind) {
    let s = stack(kind, "adv-garbage-cc");
    // (query, stored?) — a field that does not parse gives no freshness.
    let cases = [
        ("cache-control=max-age%3Dabc", false),
        ("cache-control=max-age%3D-5", false),
        ("cache-control=max-age%3D99999999999999999999999", true),
        ("cache-control=max-age%3D60%2C%20no-store%3D%22x", false),
        ("cache-control=%2C%2C%2C", false),
        ("cache-control=max-age%3D60&vary=*", false),
        ("cache-control=max-age%3D60&vary=%2C%2C%20x-a%2C%2C", true),
        ("cache-control=public&expires=yesterday", false),
    ];
    for (i, (query, stored)) in cases.iter().enumerate() {
        let path = format!("/api/items/g{i}?{query}");
        let first = get(&s, &path, &[("x-tenant-id", "t")]);
        assert_eq!(first.status, 200, "{query}: {}", first.text());
        let second = get(&s, &path, &[("x-tenant-id", "t")]);
        assert_eq!(second.status, 200, "{query}");
        assert_eq!(
            second.header("x-cache") == Some("HIT"),
            *stored,
            "{query}: x-cache {:?}",
            second.header("x-cache")
        );
    }
}

on_both_hosts!(an_answer_over_the_entry_bound_is_delivered_whole_and_not_stored);
fn an_answer_over_the_entry_bound_is_delivered_whole_and_not_stored(kind: GatewayKind) {
    let s = stack(kind, "adv-entry-bound");
    for (size, stored) in [(1024, true), (4096, false), (1_000_000, false)] {
        let path = format!("/api/small/s{size}?size={size}");
        let first = get(&s, &path, &[("x-tenant-id", "t")]);
        assert_eq!(first.status, 200);
        assert_eq!(first.body.len(), size, "delivered whole");
        let second = get(&s, &path, &[("x-tenant-id", "t")]);
        assert_eq!(second.body.len(), size);
        assert_eq!(second.header("x-cache") == Some("HIT"), stored, "{size}");
    }
}

/// Four members of one batch, each on its own connection.
fn batch_of_four(s: &Stack, tag: &str) -> Vec<Resp> {
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (barrier, url) = (&barrier, s.url(&format!("/api/quotes/{tag}{i}")));
                sc.spawn(move || {
                    barrier.wait();
                    http::request_fresh("GET", &url, &[("x-tenant-id", "t")], None)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

on_both_hosts!(a_batch_answer_that_lies_or_is_huge_answers_each_member_its_own);
fn a_batch_answer_that_lies_or_is_huge_answers_each_member_its_own(kind: GatewayKind) {
    let s = stack(kind, "adv-batch");
    let faults = [
        (
            "dropped",
            json!({"path_prefix": "/api/batch", "drop_members": 2, "count": 1}),
        ),
        (
            "duplicated",
            json!({"path_prefix": "/api/batch", "duplicate_members": true, "count": 1}),
        ),
        (
            "huge",
            json!({"path_prefix": "/api/batch", "pad_bytes": 50 * 1024 * 1024, "count": 1}),
        ),
    ];
    for (tag, fault) in faults {
        s.demo.fault(fault);
        let answers = batch_of_four(&s, tag);
        for (i, r) in answers.iter().enumerate() {
            assert_eq!(r.status, 200, "{tag} member {i}: {}", r.text());
            let v = json_body(r);
            assert_eq!(v["id"], format!("{tag}{i}"), "{tag}: member {i} got {v}");
        }
        s.demo.fault(json!({"clear": true}));
    }
}
