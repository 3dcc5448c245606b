//! In-process tests of `/__faults` and `/__reset`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use demo_api::server::AbortConnection;
use serde_json::{json, Value};

#[tokio::test]
async fn error_fault_with_count_then_disappears() {
    let app = new_app("p");
    let r = fault(
        &app,
        json!({"path_prefix": "/api/items", "status": 503, "count": 2}),
    )
    .await;
    assert_eq!(r, json!({"faults": 1}));
    assert_eq!(get(&app, "/api/other/1").await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/api/items/1").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&app, "/api/items/2").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&app, "/api/items/3").await.status, StatusCode::OK);
    let listed = get(&app, "/__faults").await.json();
    assert_eq!(listed["faults"], 0);
    // Faulted requests still count.
    assert_eq!(calls(&app).await["total"], 4);
}

#[tokio::test]
async fn error_rate_and_defaults() {
    let app = new_app("p");
    // error_rate alone: status defaults to 503.
    fault(&app, json!({"error_rate": 0.5})).await;
    let mut errors = 0;
    for i in 0..200 {
        let a = get(&app, &format!("/api/r/{i}")).await;
        if a.status == StatusCode::SERVICE_UNAVAILABLE {
            errors += 1;
        } else {
            assert_eq!(a.status, StatusCode::OK);
        }
    }
    assert!((40..=160).contains(&errors), "errors: {errors}");
    // status with error_rate 0: never.
    fault(
        &app,
        json!({"clear": true, "status": 500, "error_rate": 0.0}),
    )
    .await;
    for i in 0..20 {
        assert_eq!(
            get(&app, &format!("/api/r/{i}")).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn latency_fault_applies_to_matching_requests() {
    let app = new_app("p");
    fault(&app, json!({"path_prefix": "/api/slow", "latency_ms": 200})).await;
    let start = Instant::now();
    assert_eq!(get(&app, "/api/slow/1").await.status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(200));
    let start = Instant::now();
    get(&app, "/api/fast/1").await;
    assert!(start.elapsed() < Duration::from_millis(150));
    // Rules combine: latencies add up, and the error applies as well.
    fault(
        &app,
        json!({"path_prefix": "/api/slow/2", "latency_ms": 100, "status": 502}),
    )
    .await;
    let start = Instant::now();
    assert_eq!(
        get(&app, "/api/slow/2").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn abort_fault_marks_the_response() {
    let app = new_app("p");
    fault(
        &app,
        json!({"path_prefix": "/echo", "abort": true, "count": 1}),
    )
    .await;
    let a = post(&app, "/echo/x", "hi").await;
    assert!(a.response_extensions.get::<AbortConnection>().is_some());
    let a = post(&app, "/echo/x", "hi").await;
    assert!(a.response_extensions.get::<AbortConnection>().is_none());
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn garbage_fault() {
    let app = new_app("p");
    fault(&app, json!({"path_prefix": "/graphql", "garbage": true})).await;
    let a = post(&app, "/graphql", r#"{"query":"q"}"#).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(&a.body[..], b"not json{{");
}

#[tokio::test]
async fn drop_members_fault() {
    let app = new_app("p");
    fault(
        &app,
        json!({"path_prefix": "/api/batch", "drop_members": 2, "count": 1}),
    )
    .await;
    let envelope = json!({"requests": [
        {"id": "a", "path": "/api/q/1"}, {"id": "b", "path": "/api/q/2"}, {"id": "c", "path": "/api/q/3"}
    ]})
    .to_string();
    let r = post(&app, "/api/batch", &envelope).await.json();
    let ids: Vec<&str> = r["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a"]);
    // Dropped members were still received.
    assert_eq!(calls(&app).await["batch_members"], 3);
    let r = post(&app, "/api/batch", &envelope).await.json();
    assert_eq!(r["responses"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn faults_do_not_touch_control_routes_or_members() {
    let app = new_app("p");
    fault(&app, json!({"status": 500})).await;
    assert_eq!(get(&app, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/__calls").await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/api/a/1").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    fault(
        &app,
        json!({"clear": true, "path_prefix": "/api/q", "status": 500}),
    )
    .await;
    let envelope = json!({"requests": [{"id": "a", "path": "/api/q/1"}]}).to_string();
    let r = post(&app, "/api/batch", &envelope).await.json();
    assert_eq!(r["responses"][0]["status"], 200);
}

#[tokio::test]
async fn fault_install_clear_and_errors() {
    let app = new_app("p");
    assert_eq!(
        fault(&app, json!({"latency_ms": 1})).await,
        json!({"faults": 1})
    );
    assert_eq!(fault(&app, json!({})).await, json!({"faults": 2}));
    assert_eq!(
        fault(&app, json!({"clear": true})).await,
        json!({"faults": 0})
    );
    assert_eq!(
        fault(&app, json!({"clear": true, "garbage": true})).await,
        json!({"faults": 1})
    );
    let listed = get(&app, "/__faults").await.json();
    assert_eq!(listed["rules"][0]["garbage"], true);
    assert_eq!(listed["rules"][0]["path_prefix"], "/");
    for (body, needle) in [
        ("not json", "invalid fault JSON"),
        (r#"{"latency": 3}"#, "unknown field `latency`"),
        (r#"{"error_rate": "x"}"#, "invalid type"),
        (r#"{"error_rate": 2.0}"#, "error_rate"),
        (r#"{"status": 42}"#, "status"),
        (r#"{"count": 0}"#, "count"),
    ] {
        let a = post(&app, "/__faults", body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        let detail = a.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    assert_eq!(get(&app, "/__faults").await.json()["faults"], 1);
}

#[tokio::test]
async fn reset_zeroes_counters_and_clears_faults() {
    let app = new_app("p");
    get(&app, "/api/a/1").await;
    post(&app, "/graphql", "[{}]").await;
    post(
        &app,
        "/api/batch",
        r#"{"requests":[{"id":"a","path":"/api/a/2"}]}"#,
    )
    .await;
    fault(&app, json!({"status": 500})).await;
    let a = post(&app, "/__reset", "").await;
    assert_eq!(a.status, StatusCode::OK);
    let c = calls(&app).await;
    assert_eq!(c["total"], 0);
    assert_eq!(c["by_path"], json!({}));
    assert_eq!(c["batches"], 0);
    assert_eq!(c["batch_members"], 0);
    assert_eq!(c["members_by_path"], json!({}));
    assert_eq!(c["graphql_batches"], 0);
    let a = get(&app, "/api/a/1").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["call"], Value::from(1));
}
