//! The filter's encoders (`optimizer-core`) against cost-control's
//! handlers: a spend batch, a lease request and its grant, a snapshot with
//! purges. Both sides use `optimizer-wire`; this checks the bytes agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Backend, Harness, ADMIN, GATEWAY, T0};
use optimizer_core::cache::purges::{parse_snapshot, PurgeKind};
use optimizer_core::cost::budget::{lease_request, parse_grant};
use optimizer_core::cost::spend::{SpendBuffer, SpendEvent};
use serde_json::json;

async fn filter_encoders_meet_cost_control_decoders(b: Backend) {
    let h = Harness::new(b).await;
    h.set_budget(json!({"tenant": "acme", "daily_limit_micros": 1000}))
        .await;

    // A lease asked for as the filter asks, read as the filter reads it.
    let body = lease_request("gw-1", "acme", 600, 60);
    let (s, _, answer) = h
        .raw(
            "POST",
            "/v1/allowances",
            Some(GATEWAY),
            Some(String::from_utf8(body).unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let g = parse_grant(&answer).expect("the filter reads the grant");
    assert_eq!((g.granted_micros, g.expires_at_ms), (600, T0 + 60_000));
    let lease = g.allowance_id.clone().expect("a lease id");

    // A batch of one event and one folded sum (buffer of one).
    let mut buf = SpendBuffer::new("gw-1", 7, 1);
    for cost in [100, 50] {
        buf.push(SpendEvent {
            tenant: "acme".into(),
            service: "llm".into(),
            route: "/v1/chat".into(),
            provider: "openai".into(),
            strategy: "cache",
            cost_micros: cost,
            baseline_micros: 300,
            ts_ms: T0 as u64,
            allowance_id: Some(lease.clone()),
        });
    }
    let batch = buf.next_batch(T0 as u64, 0, 10).expect("a batch");
    let (s, _, answer) = h
        .raw(
            "POST",
            "/v1/spend",
            Some(GATEWAY),
            Some(String::from_utf8(batch.body).unwrap()),
        )
        .await;
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let state = h.state_of("acme", "").await;
    assert_eq!(state["daily_spent_micros"], 150, "{state}");

    // A snapshot with a purge, read as the filter reads it.
    let (s, v) = h
        .call(
            "POST",
            "/v1/purge",
            Some(ADMIN),
            Some(json!({"tenant": "acme", "prefix": "/api/items"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, body) = h.raw("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(s, StatusCode::OK);
    let snap = parse_snapshot(&body).expect("the filter reads the snapshot");
    assert_eq!(snap.skipped, 0);
    assert_eq!(snap.purges.len(), 1);
    assert_eq!(
        (snap.purges[0].kind, snap.purges[0].value.as_str()),
        (PurgeKind::Prefix, "/api/items")
    );
}

crate::both_stores!(filter_encoders_meet_cost_control_decoders);
