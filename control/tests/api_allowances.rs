//! Allowance leases, the snapshot with its 304, and purge generations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{event, Backend, Harness, ADMIN, GATEWAY, T0};
use serde_json::json;

async fn grant(
    h: &Harness,
    tenant: &str,
    service: &str,
    want: serde_json::Value,
) -> serde_json::Value {
    let body =
        json!({"gateway_id": "gw-1", "tenant": tenant, "service": service, "want_micros": want});
    let (s, v) = h
        .call("POST", "/v1/allowances", Some(GATEWAY), Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn leases_grant_settle_release_expire(b: Backend) {
    let h = Harness::new(b).await;
    h.set_budget(json!({"tenant": "acme", "daily_limit_micros": 1000}))
        .await;
    let a = grant(&h, "acme", "", json!(600)).await;
    assert_eq!(
        (a["granted_micros"].as_i64(), a["remaining_micros"].as_i64()),
        (Some(600), Some(400))
    );
    assert_eq!(a["expires_at_ms"], T0 + 60_000);
    let a_id = a["allowance_id"].as_str().unwrap().to_owned();
    let b2 = grant(&h, "acme", "", json!("0.000600")).await;
    assert_eq!(b2["granted_micros"], 400, "grants at most what is left");
    let c = grant(&h, "acme", "", json!(1)).await;
    assert_eq!(
        (c["granted_micros"].as_i64(), c["allowance_id"].is_null()),
        (Some(0), true)
    );
    let st = h.state_of("acme", "").await;
    assert_eq!(
        (
            st["outstanding_micros"].as_i64(),
            st["remaining_micros"].as_i64(),
            st["hard"].as_bool()
        ),
        (Some(1000), Some(0), Some(true))
    );
    // Spend 250 against lease A settles it: outstanding + spend stays 1000.
    let mut e = event("acme", "s", 250, T0);
    e["allowance_id"] = json!(a_id);
    h.spend("s1", vec![e]).await;
    let st = h.state_of("acme", "").await;
    assert_eq!(
        (
            st["daily_spent_micros"].as_i64(),
            st["outstanding_micros"].as_i64()
        ),
        (Some(250), Some(750))
    );
    // Releasing A returns its unused 350.
    let (s, v) = h
        .call(
            "DELETE",
            &format!("/v1/allowances/{a_id}"),
            Some(GATEWAY),
            None,
        )
        .await;
    assert_eq!(
        (s, v["returned_micros"].as_i64()),
        (StatusCode::OK, Some(350)),
        "{v}"
    );
    let (_, v) = h
        .call(
            "DELETE",
            &format!("/v1/allowances/{a_id}"),
            Some(GATEWAY),
            None,
        )
        .await;
    assert_eq!(v["returned_micros"], 0, "a second release returns nothing");
    assert_eq!(h.state_of("acme", "").await["remaining_micros"], 350);
    let (s, _) = h
        .call(
            "DELETE",
            "/v1/allowances/no-such-lease",
            Some(GATEWAY),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Lease B expires: its 400 returns to the pool, at once in queries and via the sweep.
    h.clock.advance_ms(60_001);
    assert_eq!(h.state_of("acme", "").await["remaining_micros"], 750);
    assert_eq!(h.store.expire_leases(T0 + 60_001).await.unwrap(), 1);
    assert_eq!(
        grant(&h, "acme", "", json!(5000)).await["granted_micros"],
        750
    );
    // No budget: unlimited, the want is granted.
    let u = grant(&h, "free", "", json!(123)).await;
    assert_eq!(
        (
            u["granted_micros"].as_i64(),
            u["remaining_micros"].is_null()
        ),
        (Some(123), true)
    );
}

async fn service_budgets_bound_grants(b: Backend) {
    let h = Harness::new(b).await;
    h.set_budget(json!({"tenant": "acme", "daily_limit_micros": 1000}))
        .await;
    h.set_budget(json!({"tenant": "acme", "service": "search", "daily_limit_micros": 300}))
        .await;
    assert_eq!(
        grant(&h, "acme", "search", json!(500)).await["granted_micros"],
        300
    );
    assert_eq!(
        grant(&h, "acme", "chat", json!(900)).await["granted_micros"],
        700
    );
    assert_eq!(
        grant(&h, "acme", "chat", json!(1)).await["granted_micros"],
        0
    );
}

async fn allowance_validation(b: Backend) {
    let h = Harness::new(b).await;
    let cases = [
        (
            json!({"gateway_id": "g", "tenant": "a", "want_micros": 0}),
            "want_micros",
        ),
        (
            json!({"gateway_id": "g", "tenant": "a", "want_micros": "x"}),
            "want_micros",
        ),
        (json!({"gateway_id": "g", "tenant": "a"}), "want_micros"),
        (json!({"gateway_id": "g", "want_micros": 5}), "tenant"),
        (json!({"tenant": "a", "want_micros": 5}), "gateway_id"),
        (
            json!({"gateway_id": "g", "tenant": "a", "want_micros": 5, "ttl_secs": 0}),
            "ttl_secs",
        ),
        (
            json!({"gateway_id": "g", "tenant": "a", "want_micros": 5, "ttl_secs": 999999}),
            "ttl_secs",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = h
            .call("POST", "/v1/allowances", Some(GATEWAY), Some(body.clone()))
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {v}"
        );
    }
}

async fn snapshot_versions_and_304(b: Backend) {
    let h = Harness::new(b).await;
    h.set_budget(json!({"tenant": "acme", "daily_limit_micros": 100, "soft_limit_percent": 50}))
        .await;
    let (s, hdr, body) = h.raw("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(s, StatusCode::OK);
    let snap: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let v1 = snap["version"].as_str().unwrap().to_owned();
    assert_eq!(hdr["etag"].to_str().unwrap(), format!("\"{v1}\""));
    assert_eq!(snap["tenants"][0]["remaining_micros"], 100);
    assert_eq!(
        (
            snap["tenants"][0]["soft"].as_bool(),
            snap["tenants"][0]["hard"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let (s, _, body) = h
        .raw(
            "GET",
            &format!("/v1/snapshot?since={v1}"),
            Some(GATEWAY),
            None,
        )
        .await;
    assert_eq!((s, body.len()), (StatusCode::NOT_MODIFIED, 0));
    // Spend changes it: soft flag now set.
    h.spend("p1", vec![event("acme", "", 60, T0)]).await;
    let (s, v) = h
        .call(
            "GET",
            &format!("/v1/snapshot?since={v1}"),
            Some(GATEWAY),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v2 = v["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    assert_eq!(
        (
            v["tenants"][0]["soft"].as_bool(),
            v["tenants"][0]["remaining_micros"].as_i64()
        ),
        (Some(true), Some(40))
    );
    // The minute part moves even with no write (window rollover).
    h.clock.advance_ms(60_000);
    let (s, _) = h
        .call(
            "GET",
            &format!("/v1/snapshot?since={v2}"),
            Some(GATEWAY),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

async fn purge_bumps_generations(b: Backend) {
    let h = Harness::new(b).await;
    let p = |body| h.call("POST", "/v1/purge", Some(ADMIN), Some(body));
    let (s, v) = p(json!({"tenant": "acme", "prefix": "/api/items"})).await;
    assert_eq!(
        (s, v["generation"].as_i64(), v["kind"].as_str()),
        (StatusCode::OK, Some(1), Some("prefix"))
    );
    let (_, v) = p(json!({"tenant": "acme", "prefix": "/api/items"})).await;
    assert_eq!(v["generation"], 2);
    let (_, v) = p(json!({"tenant": "acme", "tag": "catalog"})).await;
    assert_eq!(
        (v["generation"].as_i64(), v["kind"].as_str()),
        (Some(1), Some("tag"))
    );
    let (_, v) = p(json!({"tenant": "acme", "key": "GET /api/items/1"})).await;
    assert_eq!(v["kind"], "key");
    for (body, field) in [
        (json!({"tenant": "acme"}), "prefix"),
        (
            json!({"tenant": "acme", "prefix": "/a", "tag": "t"}),
            "prefix",
        ),
        (json!({"tenant": "acme", "tag": ""}), "tag"),
        (json!({"prefix": "/a"}), "tenant"),
    ] {
        let (s, v) = p(body.clone()).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {v}"
        );
    }
    let (_, snap) = h.call("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    let purges = snap["purges"].as_array().unwrap();
    assert_eq!(purges.len(), 3);
    assert!(
        purges.contains(
            &json!({"tenant": "acme", "kind": "prefix", "value": "/api/items", "generation": 2})
        ),
        "{snap}"
    );
}

crate::both_stores!(
    leases_grant_settle_release_expire,
    service_budgets_bound_grants,
    allowance_validation,
    snapshot_versions_and_304,
    purge_bumps_generations,
);
