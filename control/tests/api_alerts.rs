//! Soft and hard alerts fire once per window and reach a local webhook
//! receiver, retried after a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::{event, Backend, Harness, Now, ADMIN, DAY, GATEWAY, T0};
use serde_json::{json, Value};

/// A webhook receiver that fails its first request (to exercise retries).
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0u32));
    let g = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let (g, calls) = (g.clone(), calls.clone());
            async move {
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n == 1 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                g.lock().unwrap().push(v);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

async fn wait_for(got: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    got.lock().unwrap().clone()
}

async fn soft_and_hard_alerts_fire_once(b: Backend) {
    let (url, got) = receiver().await;
    let h = Harness::with_webhooks(b, vec![url]).await;
    h.set_budget(json!({"tenant": "acme", "daily_limit_micros": 1000}))
        .await;
    h.spend("a1", vec![event("acme", "s", 500, T0)]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(got.lock().unwrap().is_empty(), "no alert below 90%");
    h.spend("a2", vec![event("acme", "s", 450, T0)]).await; // 95%: soft
    let seen = wait_for(&got, 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["alert"]["level"], "soft");
    assert_eq!(seen[0]["type"], "budget_alert");
    h.spend("a3", vec![event("acme", "s", 10, T0)]).await; // still soft: no new alert
    h.spend("a3", vec![event("acme", "s", 10, T0)]).await; // replay
    h.spend("a4", vec![event("acme", "s", 100, T0)]).await; // 106%: hard
    h.spend("a5", vec![event("acme", "s", 100, T0)]).await; // still hard: no new alert
    let seen = wait_for(&got, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen_after = got.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen_after.len(), 2, "fired once per window: {seen_after:?}");
    assert_eq!(seen_after[1]["alert"]["level"], "hard");
    assert_eq!(seen_after[1]["alert"]["spent_micros"], 1060);
    let (s, v) = h
        .call("GET", "/v1/alerts?tenant=acme", Some(GATEWAY), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a["delivered"] == true), "{v}");
    let soft = alerts.iter().find(|a| a["level"] == "soft").unwrap();
    assert_eq!(
        soft["attempts"], 2,
        "the first delivery failed and was retried: {v}"
    );
    // A new day is a new window: the soft alert fires again.
    h.clock.advance_ms(DAY);
    h.spend("a6", vec![event("acme", "s", 950, h.clock.now())])
        .await;
    assert_eq!(wait_for(&got, 3).await.len(), 3);
    let (_, v) = h.call("GET", "/v1/alerts?limit=1", Some(ADMIN), None).await;
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    let (s, v) = h.call("GET", "/v1/alerts?limit=0", Some(ADMIN), None).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
}

/// A soft-limit percent outside 0..=100 in a stored row (written by hand or
/// by an older version) reads as clamped on every store: 300 is 100 (soft
/// only at the limit), -5 is 0 (soft at once). SQLite used to fail the read
/// (300 does not fit a u8) while PostgreSQL clamped.
async fn stored_soft_percent_is_clamped(b: Backend) {
    let h = Harness::new(b).await;
    h.set_budget(json!({"tenant": "acme", "daily_limit_micros": 1000}))
        .await;
    h.raw_db
        .exec("UPDATE budgets SET soft_percent = 300 WHERE tenant = 'acme'")
        .await;
    let s = h.state_of("acme", "").await;
    assert_eq!(s["soft_limit_percent"], 100, "{s}");
    h.spend("c1", vec![event("acme", "s", 950, T0)]).await;
    let s = h.state_of("acme", "").await;
    assert_eq!(
        (s["soft"].as_bool(), s["hard"].as_bool()),
        (Some(false), Some(false)),
        "{s}"
    );
    let (st, v) = h
        .call("GET", "/v1/alerts?tenant=acme", Some(ADMIN), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["alerts"].as_array().unwrap().len(),
        0,
        "95% of a 100% soft limit: {v}"
    );
    h.raw_db
        .exec("UPDATE budgets SET soft_percent = -5 WHERE tenant = 'acme'")
        .await;
    let s = h.state_of("acme", "").await;
    assert_eq!(s["soft_limit_percent"], 0, "{s}");
    assert_eq!(s["soft"], true, "{s}");
    let (st, v) = h.call("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

crate::both_stores!(
    soft_and_hard_alerts_fire_once,
    stored_soft_percent_is_clamped
);
