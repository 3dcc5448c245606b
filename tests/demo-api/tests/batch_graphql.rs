//! In-process tests of `POST /api/batch` and `POST /graphql`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn batch_answers_members_like_standalone_requests() {
    let app = new_app("primary");
    let envelope = json!({"requests": [
        {"id": "a", "method": "GET", "path": "/api/quotes/7?x=1",
         "headers": {"X-Tenant": "t1"}, "body": null},
        {"id": "b", "method": "GET", "path": "/api/quotes/8?cache-control=no-store&vary=x-tenant",
         "headers": {"x-tenant": "t2"}},
        {"id": "c", "method": "GET", "path": "/not/served"},
        {"id": "d", "method": "POST", "path": "/api/orders", "headers": {"x-k": "v"}, "body": "{\"n\":1}"},
        {"id": "e", "method": "GET", "path": "/api/quotes/9?status=404"}
    ]});
    let a = post(&app, "/api/batch", &envelope.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    let r = a.json()["responses"].as_array().unwrap().clone();
    assert_eq!(r.len(), 5);
    let ids: Vec<&str> = r.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e"]);

    assert_eq!(r[0]["status"], 200);
    assert_eq!(
        r[0]["headers"],
        json!({"content-type": "application/json", "cache-control": "max-age=60"})
    );
    let body: Value = serde_json::from_str(r[0]["body"].as_str().unwrap()).unwrap();
    // The batch call drew call 1; members follow in order.
    assert_eq!(
        body,
        json!({"resource":"quotes","id":"7","provider":"primary","call":2})
    );

    assert_eq!(r[1]["headers"]["cache-control"], "no-store");
    assert_eq!(r[1]["headers"]["vary"], "x-tenant");
    let body: Value = serde_json::from_str(r[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["call"], 3);
    assert_eq!(body["vary"], json!({"x-tenant": "t2"}));

    assert_eq!(r[2]["status"], 404);
    assert_eq!(r[2]["body"], "{\"error\":\"not_found\"}");

    assert_eq!(r[3]["status"], 200);
    let body: Value = serde_json::from_str(r[3]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/api/orders");
    assert_eq!(body["headers"], json!([["x-k", "v"]]));
    assert_eq!(body["body"], "{\"n\":1}");

    assert_eq!(r[4]["status"], 404);

    let c = calls(&app).await;
    assert_eq!(c["total"], 1);
    assert_eq!(c["by_path"], json!({"/api/batch": 1}));
    assert_eq!(c["batches"], 1);
    assert_eq!(c["batch_members"], 5);
    assert_eq!(
        c["members_by_path"],
        json!({"/api/quotes/7": 1, "/api/quotes/8": 1, "/not/served": 1,
               "/api/orders": 1, "/api/quotes/9": 1})
    );
}

#[tokio::test]
async fn batch_member_head_and_defaults() {
    let app = new_app("p");
    let envelope = json!({"requests": [
        {"id": 1, "path": "/api/x/1"},
        {"id": "h", "method": "head", "path": "/api/x/2"},
        {"id": "n", "method": "POST", "path": "/api/batch"},
        {"id": "bad", "method": "GET", "path": "/api/x/3", "headers": {"bad header": "v"}}
    ]});
    let a = post(&app, "/api/batch", &envelope.to_string()).await;
    let r = a.json()["responses"].clone();
    assert_eq!(r[0]["id"], 1);
    assert_eq!(r[0]["status"], 200);
    assert_eq!(r[1]["status"], 200);
    assert_eq!(r[1]["body"], "");
    assert!(r[1]["headers"].get("content-length").is_none());
    assert_eq!(r[2]["status"], 400);
    assert_eq!(r[3]["status"], 400);
}

#[tokio::test]
async fn batch_members_run_concurrently() {
    let app = new_app("p");
    let members: Vec<Value> = (0..10)
        .map(|i| json!({"id": i.to_string(), "path": format!("/api/x/{i}?delay_ms=200")}))
        .collect();
    let start = std::time::Instant::now();
    let a = post(
        &app,
        "/api/batch",
        &json!({ "requests": members }).to_string(),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(a.json()["responses"].as_array().unwrap().len(), 10);
    assert!(took < std::time::Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn invalid_batch_envelope_is_400() {
    let app = new_app("p");
    for body in [
        "",
        "not json",
        "{}",
        "{\"requests\": 3}",
        "{\"requests\": [{\"id\": \"a\"}]}",
    ] {
        let a = post(&app, "/api/batch", body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(a.json()["error"], "invalid_batch");
    }
    // Still calls to /api/batch, but not batches.
    let c = calls(&app).await;
    assert_eq!(c["by_path"]["/api/batch"], 5);
    assert_eq!(c["batches"], 0);
}

#[tokio::test]
async fn graphql_single_object() {
    let app = new_app("gql");
    let a = post(
        &app,
        "/graphql",
        r#"{"query":"{ quote(id: $id) { id } }","variables":{"id":"42"}}"#,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.json(),
        json!({"data": {"quote": {"id": "42", "provider": "gql", "call": 1}}})
    );
    let a = post(&app, "/graphql", r#"{"query":"q"}"#).await;
    assert_eq!(a.json()["data"]["quote"]["id"], Value::Null);
    let c = calls(&app).await;
    assert_eq!(c["by_path"]["/graphql"], 2);
    assert_eq!(c["graphql_batches"], 0);
    assert_eq!(c["batch_members"], 0);
}

#[tokio::test]
async fn graphql_array() {
    let app = new_app("gql");
    let ops = json!([
        {"query": "q", "variables": {"id": 1}},
        {"query": "q", "variables": {"id": "two"}},
        {"query": "q"}
    ]);
    let a = post(&app, "/graphql", &ops.to_string()).await;
    assert_eq!(a.status, StatusCode::OK);
    let answers = a.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["data"]["quote"]["id"], 1);
    assert_eq!(answers[1]["data"]["quote"]["id"], "two");
    assert_eq!(answers[2]["data"]["quote"]["id"], Value::Null);
    let seq: Vec<u64> = answers
        .iter()
        .map(|x| x["data"]["quote"]["call"].as_u64().unwrap())
        .collect();
    assert_eq!(seq, [2, 3, 4]);
    let c = calls(&app).await;
    assert_eq!(c["total"], 1);
    assert_eq!(c["by_path"], json!({"/graphql": 1}));
    assert_eq!(c["graphql_batches"], 1);
    assert_eq!(c["batch_members"], 3);
    assert_eq!(c["members_by_path"], json!({"/graphql": 3}));
    assert_eq!(c["batches"], 0);
}

#[tokio::test]
async fn graphql_invalid_body() {
    let app = new_app("gql");
    for body in ["", "nope", "3"] {
        let a = post(&app, "/graphql", body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.json()["errors"][0]["message"].is_string());
    }
}
