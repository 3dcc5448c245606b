//! Hostile names (quotes, SQL metacharacters, LIKE wildcards, unicode,
//! control characters, spaces, the length bound) round-trip byte for byte
//! through every route that takes them, filters select exactly their own
//! tenant, and no other tenant's data is touched. Against both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::{Backend, Harness, ADMIN, GATEWAY, T0};
use serde_json::{json, Value};

/// Every name is a tenant, and also its own service, route, provider,
/// strategy, gateway id and purge value. Distinct byte strings that some
/// comparisons would confuse (case, NFC/NFD, trailing space, `%`/`_`
/// against what a LIKE pattern would match) are all here.
fn names() -> Vec<String> {
    let mut v: Vec<String> = [
        "acme",
        "Acme",
        " acme",
        "acme ",
        "  acme  ",
        "abc",
        "ab",
        "a%",
        "a_c",
        "%",
        "_",
        "%%",
        "a\\%",
        "'",
        "\"",
        "\\",
        ";",
        "--",
        "' OR 1=1 --",
        "\" OR \"\"=\"",
        "Robert'); DROP TABLE spend;--",
        "x'; DELETE FROM events; --",
        "1; DROP TABLE budgets",
        "$1",
        "?",
        "*",
        "[a-z]",
        "café",
        "cafe\u{301}",
        "中文租户",
        "🦀💸",
        "👩‍👩‍👧",
        "مستأجر",
        "שלום",
        "\u{202E}evil\u{202C}",
        "a\u{200B}b",
        "Z\u{0351}\u{0352}\u{0353}a\u{0300}\u{0301}",
        "line\nbreak",
        "tab\there",
        "cr\rlf",
        "bell\u{7}",
        "del\u{7f}",
        "{\"json\":1}",
        "<script>alert(1)</script>",
        "/api/items?x=1&y=2#f",
        "a+b=c&d",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // At the bound: 200 bytes, in 2-byte, 3-byte and 4-byte characters.
    v.push("é".repeat(100));
    v.push(format!("{}ab", "中".repeat(66)));
    v.push("🦀".repeat(50));
    v.push("x".repeat(200));
    for n in &v {
        assert!(n.len() <= 200, "{n:?}");
    }
    v
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn ev(name: &str, cost: i64, lease: Option<&str>) -> Value {
    let mut e = json!({
        "tenant": name, "service": name, "route": name, "provider": name,
        "strategy": name, "cost_micros": cost, "baseline_micros": cost * 3, "ts": T0,
    });
    if let Some(id) = lease {
        e["allowance_id"] = json!(id);
    }
    e
}

/// The cost each name spends: distinct, so a row read for the wrong
/// tenant shows.
fn cost_of(i: usize) -> i64 {
    1_000 + i as i64
}

async fn get(h: &Harness, path: &str) -> Value {
    let (s, v) = h.call("GET", path, Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    v
}

fn rows(v: &Value) -> BTreeMap<String, (i64, i64)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                (
                    r["events"].as_i64().unwrap(),
                    r["cost_micros"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

async fn hostile_names_round_trip(b: Backend) {
    let h = Harness::new(b).await;
    let names = names();
    // A bystander set up first: nothing below may change it.
    h.set_budget(json!({"tenant": "bystander", "daily_limit_micros": 1_000_000}))
        .await;
    h.spend("bystander-1", vec![ev("bystander", 77, None)])
        .await;
    let bystander_before = get(&h, "/v1/budgets?tenant=bystander").await;

    for (i, n) in names.iter().enumerate() {
        let cost = cost_of(i);
        // A tenant-wide budget and one for the service of the same name;
        // the daily limit is the cost, so the spend below fires alerts.
        let v = h
            .set_budget(
                json!({"tenant": n, "daily_limit_micros": cost, "monthly_limit_micros": 10 * cost}),
            )
            .await;
        assert_eq!(
            (v["tenant"].as_str(), v["service"].as_str()),
            (Some(n.as_str()), Some(""))
        );
        let v = h
            .set_budget(json!({"tenant": n, "service": n, "daily_limit_micros": 2 * cost}))
            .await;
        assert_eq!(
            (v["tenant"].as_str(), v["service"].as_str()),
            (Some(n.as_str()), Some(n.as_str()))
        );

        let (s, g) = h
            .call(
                "POST",
                "/v1/allowances",
                Some(GATEWAY),
                Some(json!({"gateway_id": n, "tenant": n, "service": n, "want_micros": 10})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n:?}: {g}");
        assert_eq!(g["tenant"].as_str(), Some(n.as_str()), "{g}");
        assert_eq!(g["service"].as_str(), Some(n.as_str()), "{g}");
        assert_eq!(g["gateway_id"].as_str(), Some(n.as_str()), "{g}");
        assert_eq!(g["granted_micros"], 10, "{n:?}: {g}");
        let lease = g["allowance_id"].as_str().unwrap().to_owned();

        // The names are distinct, so each is its own batch id too.
        let batch_id = n.clone();
        let body =
            json!({"batch_id": batch_id, "gateway_id": n, "events": [ev(n, cost, Some(&lease))]});
        let (s, v) = h
            .call("POST", "/v1/spend", Some(GATEWAY), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::OK, "{n:?}: {v}");
        assert_eq!(v["batch_id"].as_str(), Some(batch_id.as_str()));
        assert_eq!(
            (v["accepted"].as_i64(), v["duplicate"].as_bool()),
            (Some(1), Some(false))
        );
        // The same hostile batch id again is a duplicate, counted once.
        let (s, v) = h.call("POST", "/v1/spend", Some(GATEWAY), Some(body)).await;
        assert_eq!(
            (s, v["duplicate"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{v}"
        );

        let (s, p) = h
            .call(
                "POST",
                "/v1/purge",
                Some(ADMIN),
                Some(json!({"tenant": n, "key": n})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n:?}: {p}");
        assert_eq!(
            (p["tenant"].as_str(), p["value"].as_str()),
            (Some(n.as_str()), Some(n.as_str()))
        );
        assert_eq!(
            p["generation"], 1,
            "{n:?}: a purge of another name was taken for this one"
        );
    }

    // Every name reads back exactly, and its filters select only its own rows.
    for (i, n) in names.iter().enumerate() {
        let cost = cost_of(i);
        let e = enc(n);
        let v = get(&h, &format!("/v1/budgets?tenant={e}")).await;
        let got: Vec<(&str, &str)> = v["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["tenant"].as_str().unwrap(),
                    b["service"].as_str().unwrap(),
                )
            })
            .collect();
        let mut want = vec![(n.as_str(), ""), (n.as_str(), n.as_str())];
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "budgets?tenant={n:?}");
        for st in v["budgets"].as_array().unwrap() {
            // The spend settled the lease: outstanding 0, spend = cost.
            assert_eq!(st["daily_spent_micros"], cost, "{n:?}: {st}");
            assert_eq!(st["outstanding_micros"], 0, "{n:?}: {st}");
        }

        for group in ["service", "route", "provider", "strategy", "tenant"] {
            let v = get(
                &h,
                &format!("/v1/spend?tenant={e}&from={T0}&group_by={group}"),
            )
            .await;
            assert_eq!(v["tenant"].as_str(), Some(n.as_str()));
            let want: BTreeMap<String, (i64, i64)> = [(n.clone(), (1, cost))].into();
            assert_eq!(rows(&v), want, "spend?tenant={n:?}&group_by={group}");
        }
        let v = get(&h, &format!("/v1/spend?tenant={e}&from={T0}")).await;
        assert_eq!(v["total"]["events"], 1, "{n:?}: {v}");
        assert_eq!(v["total"]["cost_micros"], cost, "{n:?}: {v}");
        assert_eq!(v["total"]["savings_micros"], 2 * cost, "{n:?}: {v}");

        let v = get(&h, &format!("/v1/alerts?tenant={e}")).await;
        let alerts = v["alerts"].as_array().unwrap();
        assert!(
            !alerts.is_empty(),
            "{n:?}: the spend reached the limit: {v}"
        );
        for a in alerts {
            assert_eq!(a["tenant"].as_str(), Some(n.as_str()), "{a}");
        }
    }

    // Unfiltered reads: every tenant once, by its exact name.
    let mut want: BTreeMap<String, (i64, i64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), (1, cost_of(i))))
        .collect();
    want.insert("bystander".into(), (1, 77));
    assert_eq!(want.len(), names.len() + 1, "the names are distinct");
    let v = get(&h, &format!("/v1/spend?from={T0}&group_by=tenant")).await;
    assert_eq!(rows(&v), want, "group_by=tenant");
    let v = get(&h, "/v1/budgets").await;
    let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
    for st in v["budgets"].as_array().unwrap() {
        *per_tenant
            .entry(st["tenant"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for n in &names {
        assert_eq!(per_tenant.get(n), Some(&2), "{n:?} in {per_tenant:?}");
    }
    assert_eq!(per_tenant.len(), names.len() + 1);

    let (s, snap) = h.call("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(s, StatusCode::OK);
    let purges: Vec<(String, String)> = snap["purges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["tenant"].as_str().unwrap().to_owned(),
                p["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want_purges: Vec<(String, String)> =
        names.iter().map(|n| (n.clone(), n.clone())).collect();
    want_purges.sort();
    let mut purges_sorted = purges.clone();
    purges_sorted.sort();
    assert_eq!(purges_sorted, want_purges);
    let snap_tenants: std::collections::BTreeSet<&str> = snap["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    for n in &names {
        assert!(
            snap_tenants.contains(n.as_str()),
            "{n:?} not in the snapshot"
        );
    }

    // The bystander is as it was, and a name's filter does not reach it.
    assert_eq!(
        get(&h, "/v1/budgets?tenant=bystander").await,
        bystander_before
    );
    for probe in [
        "%",
        "_",
        "b%",
        "bystande_",
        "' OR 1=1 --",
        "bystander ",
        "Bystander",
    ] {
        let v = get(&h, &format!("/v1/spend?tenant={}&from={T0}", enc(probe))).await;
        let own = names.iter().position(|n| n == probe).map(cost_of);
        assert_eq!(
            v["total"]["cost_micros"].as_i64(),
            Some(own.unwrap_or(0)),
            "{probe:?}"
        );
    }
}

/// One byte past a bound is refused with the field named, on every route,
/// and nothing is stored.
async fn names_past_the_bound_are_refused(b: Backend) {
    let h = Harness::new(b).await;
    let long = "é".repeat(100) + "x"; // 201 bytes
    let long_route = "r".repeat(1025);
    let ok = "x".repeat(200);
    let cases: Vec<(&str, &str, &str, Value, &str)> = vec![
        (
            "PUT",
            "/v1/budgets",
            ADMIN,
            json!({"tenant": long, "daily_limit_micros": 1}),
            "tenant",
        ),
        (
            "PUT",
            "/v1/budgets",
            ADMIN,
            json!({"tenant": ok, "service": long, "daily_limit_micros": 1}),
            "service",
        ),
        (
            "POST",
            "/v1/allowances",
            GATEWAY,
            json!({"gateway_id": "g", "tenant": long, "want_micros": 1}),
            "tenant",
        ),
        (
            "POST",
            "/v1/allowances",
            GATEWAY,
            json!({"gateway_id": "g", "tenant": ok, "service": long, "want_micros": 1}),
            "service",
        ),
        (
            "POST",
            "/v1/allowances",
            GATEWAY,
            json!({"gateway_id": long, "tenant": ok, "want_micros": 1}),
            "gateway_id",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b", "gateway_id": "g", "events": [ev(&ok, 1, None), ev(&long, 1, None)]}),
            "events[1].tenant",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b", "gateway_id": "g", "events": [{"tenant": ok, "service": long, "cost_micros": 1, "ts": T0}]}),
            "events[0].service",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b", "gateway_id": "g", "events": [{"tenant": ok, "provider": long, "cost_micros": 1, "ts": T0}]}),
            "events[0].provider",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b", "gateway_id": "g", "events": [{"tenant": ok, "route": long_route, "cost_micros": 1, "ts": T0}]}),
            "events[0].route",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": long, "gateway_id": "g", "events": [ev(&ok, 1, None)]}),
            "batch_id",
        ),
        (
            "POST",
            "/v1/purge",
            ADMIN,
            json!({"tenant": long, "prefix": "/"}),
            "tenant",
        ),
    ];
    for (m, p, token, body, field) in cases {
        let (s, v) = h.call(m, p, Some(token), Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{m} {p} {body} -> {v}");
        assert_eq!(v["field"], field, "{m} {p} -> {v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("200") || e.contains("1024")),
            "{v}"
        );
    }
    let (s, v) = h
        .call(
            "GET",
            &format!("/v1/spend?tenant={}", enc(&long)),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("tenant")),
        "{v}"
    );
    // A route at its bound (1024 bytes) is taken, and read back whole.
    let route = "ü".repeat(512);
    h.spend(
        "at-bound",
        vec![json!({"tenant": ok, "route": route, "cost_micros": 5, "ts": T0})],
    )
    .await;
    let v = get(
        &h,
        &format!("/v1/spend?tenant={}&from={T0}&group_by=route", enc(&ok)),
    )
    .await;
    assert_eq!(rows(&v), [(route, (1, 5))].into());
    // Nothing refused was stored.
    assert_eq!(get(&h, "/v1/budgets").await["budgets"], json!([]));
    let v = get(&h, &format!("/v1/spend?from={T0}&group_by=tenant")).await;
    assert_eq!(rows(&v), [(ok.clone(), (1, 5))].into());
    let (_, snap) = h.call("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(snap["purges"], json!([]));
}

/// NUL cannot be stored as PostgreSQL text, so no store takes it: every
/// route that takes a name answers a 400 naming the field, and stores
/// nothing.
async fn nul_in_a_name_is_refused(b: Backend) {
    let h = Harness::new(b).await;
    let nul = "a\u{0}b";
    let cases: Vec<(&str, &str, &str, Value, &str)> = vec![
        (
            "PUT",
            "/v1/budgets",
            ADMIN,
            json!({"tenant": nul, "daily_limit_micros": 1}),
            "tenant",
        ),
        (
            "PUT",
            "/v1/budgets",
            ADMIN,
            json!({"tenant": "t", "service": nul, "daily_limit_micros": 1}),
            "service",
        ),
        (
            "POST",
            "/v1/allowances",
            GATEWAY,
            json!({"gateway_id": "g", "tenant": nul, "want_micros": 1}),
            "tenant",
        ),
        (
            "POST",
            "/v1/allowances",
            GATEWAY,
            json!({"gateway_id": nul, "tenant": "t", "want_micros": 1}),
            "gateway_id",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b", "gateway_id": "g", "events": [ev("t", 1, None), ev(nul, 1, None)]}),
            "events[1].tenant",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b", "gateway_id": "g", "events": [{"tenant": "t", "route": nul, "cost_micros": 1, "ts": T0}]}),
            "events[0].route",
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": nul, "gateway_id": "g", "events": [ev("t", 1, None)]}),
            "batch_id",
        ),
        (
            "POST",
            "/v1/purge",
            ADMIN,
            json!({"tenant": nul, "prefix": "/"}),
            "tenant",
        ),
        (
            "POST",
            "/v1/purge",
            ADMIN,
            json!({"tenant": "t", "tag": nul}),
            "tag",
        ),
    ];
    for (m, p, token, body, field) in cases {
        let (s, v) = h.call(m, p, Some(token), Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{m} {p} {body} -> {v}");
        assert_eq!(v["field"], field, "{m} {p} -> {v}");
    }
    for path in [
        "/v1/spend?tenant=a%00b",
        "/v1/budgets?tenant=a%00b",
        "/v1/alerts?tenant=a%00b",
    ] {
        let (s, v) = h.call("GET", path, Some(ADMIN), None).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("tenant")),
            "{path}: {v}"
        );
    }
    let (s, v) = h
        .call("DELETE", "/v1/allowances/a%00b", Some(GATEWAY), None)
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("id")),
        "{v}"
    );
    assert_eq!(get(&h, "/v1/budgets").await["budgets"], json!([]));
    assert_eq!(
        get(&h, &format!("/v1/spend?from={T0}")).await["total"]["events"],
        0
    );
    let (_, snap) = h.call("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(snap["purges"], json!([]));
}

crate::both_stores!(
    hostile_names_round_trip,
    names_past_the_bound_are_refused,
    nul_in_a_name_is_refused,
);
