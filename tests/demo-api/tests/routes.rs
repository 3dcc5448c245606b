//! In-process tests of the resource, echo and fallback routes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

#[tokio::test]
async fn resource_default_answer() {
    let app = new_app("primary");
    let a = get(&app, "/api/quotes/7").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("cache-control"), Some("max-age=60"));
    assert_eq!(a.header("set-cookie"), None);
    assert_eq!(
        a.json(),
        json!({"resource":"quotes","id":"7","provider":"primary","call":1})
    );
    // Field order as documented.
    assert_eq!(
        &a.body[..],
        br#"{"resource":"quotes","id":"7","provider":"primary","call":1}"#
    );
    let b = get(&app, "/api/quotes/7").await;
    assert_eq!(b.json()["call"], 2);
}

#[tokio::test]
async fn resource_header_params() {
    let app = new_app("p");
    let a = get(
        &app,
        "/api/items/1?cache-control=max-age%3D1&set-cookie=sid%3Dabc%3B%20Path%3D%2F\
         &cache-tag=items,item-1&expires=Thu,%2001%20Jan%202037%2000:00:00%20GMT&etag=%22v1%22",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("cache-control"), Some("max-age=1"));
    assert_eq!(a.header("set-cookie"), Some("sid=abc; Path=/"));
    assert_eq!(a.header("cache-tag"), Some("items,item-1"));
    assert_eq!(a.header("expires"), Some("Thu, 01 Jan 2037 00:00:00 GMT"));
    assert_eq!(a.header("etag"), Some("\"v1\""));
    for cc in ["no-store", "private"] {
        let a = get(&app, &format!("/api/items/1?cache-control={cc}")).await;
        assert_eq!(a.header("cache-control"), Some(cc));
    }
}

#[tokio::test]
async fn resource_vary_and_echo_header() {
    let app = new_app("p");
    let req = request(
        "GET",
        "/api/items/1?vary=X-Tenant&echo-header=Authorization&echo-header=x-a&echo-header=x-missing",
        &[("x-tenant", "t1"), ("authorization", "Bearer k"), ("x-a", "1")],
        "",
    );
    let a = send(&app, req).await;
    assert_eq!(a.header("vary"), Some("X-Tenant"));
    let body = a.json();
    assert_eq!(body["vary"], json!({"x-tenant": "t1"}));
    assert_eq!(
        body["headers"],
        json!({"authorization": "Bearer k", "x-a": "1", "x-missing": null})
    );
    // Absent varied header: empty string.
    let a = get(&app, "/api/items/1?vary=Accept-Language").await;
    assert_eq!(a.json()["vary"], json!({"accept-language": ""}));
}

#[tokio::test]
async fn resource_status_and_delay() {
    let app = new_app("p");
    let a = get(&app, "/api/items/1?status=429").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.json()["resource"], "items");
    let start = std::time::Instant::now();
    let a = get(&app, "/api/items/1?delay_ms=150").await;
    assert!(start.elapsed() >= std::time::Duration::from_millis(150));
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/api/items/1?status=abc").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/api/items/1?status=1000").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&app, "/api/items/1?delay_ms=-1").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn resource_size_is_exact() {
    let app = new_app("primary");
    // Unpadded body length for call numbers of one digit.
    let plain = get(&app, "/api/a/b").await.body.len();
    assert_eq!(
        plain,
        r#"{"resource":"a","id":"b","provider":"primary","call":1}"#.len()
    );
    for size in (plain + 1..plain + 30).chain([1000, 4096, 100_000]) {
        post(&app, "/__reset", "").await;
        let a = get(&app, &format!("/api/a/b?size={size}")).await;
        assert_eq!(a.body.len(), size, "size={size}");
        let body = a.json();
        assert_eq!(body["call"], 1);
        assert_eq!(body["resource"], "a");
        if size >= plain + 9 {
            assert!(body["pad"].as_str().unwrap().bytes().all(|b| b == b'x'));
        }
    }
    // Smaller than the body: unchanged.
    let a = get(&app, "/api/a/b?size=10").await;
    assert!(a.body.len() > 10);
    assert!(a.json().get("pad").is_none());
}

#[tokio::test]
async fn resource_chunked() {
    let app = new_app("p");
    let a = get(&app, "/api/items/1?chunked=1&size=2000").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("content-length").is_none());
    assert!(a.frames >= 3, "frames: {}", a.frames);
    assert_eq!(a.body.len(), 2000);
    assert_eq!(a.json()["id"], "1");
}

#[tokio::test]
async fn resource_head() {
    let app = new_app("p");
    let full = get(&app, "/api/items/1").await;
    let a = send(
        &app,
        request("HEAD", "/api/items/1?cache-control=no-store", &[], ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(
        a.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );
    assert_eq!(calls(&app).await["by_path"]["/api/items/1"], 2);
}

#[tokio::test]
async fn writes_and_echo() {
    let app = new_app("echoer");
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let req = request(
            method,
            "/api/orders/9/lines?a=1&b=%20",
            &[("x-b", "2"), ("x-a", "1"), ("x-a", "3")],
            "héllo",
        );
        let a = send(&app, req).await;
        assert_eq!(a.status, StatusCode::OK);
        let body = a.json();
        assert_eq!(body["method"], method);
        assert_eq!(body["path"], "/api/orders/9/lines");
        assert_eq!(body["query"], "a=1&b=%20");
        assert_eq!(
            body["headers"],
            json!([["x-b", "2"], ["x-a", "1"], ["x-a", "3"]])
        );
        assert_eq!(body["body"], "héllo");
        assert_eq!(body["body_b64"], "aMOpbGxv");
        assert_eq!(body["provider"], "echoer");
        assert!(body["call"].as_u64().unwrap() >= 1);
    }
    // Any method on /echo, GET included; invalid UTF-8 is lossy in
    // `body` and exact in `body_b64`.
    let req = axum::http::Request::builder()
        .method("GET")
        .uri("/echo/x/y?status=201")
        .body(axum::body::Body::from(vec![0xffu8, b'a']))
        .unwrap();
    let a = send(&app, req).await;
    assert_eq!(a.status, StatusCode::CREATED);
    let body = a.json();
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/echo/x/y");
    assert_eq!(body["body"], "\u{fffd}a");
    assert_eq!(body["body_b64"], "/2E=");
    let a = send(&app, request("OPTIONS", "/echo/z?delay_ms=10", &[], "")).await;
    assert_eq!(a.json()["method"], "OPTIONS");
}

#[tokio::test]
async fn not_found_is_not_counted() {
    let app = new_app("p");
    for (method, uri) in [
        ("GET", "/nope"),
        ("GET", "/api/items"),
        ("GET", "/api/a/b/c"),
        ("GET", "/api/batch"),
        ("GET", "/graphql"),
        ("OPTIONS", "/api/a/b"),
    ] {
        let a = send(&app, request(method, uri, &[], "")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(a.json(), json!({"error": "not_found"}));
    }
    let c = calls(&app).await;
    assert_eq!(c["total"], 0);
    assert_eq!(c["by_path"], json!({}));
}

#[tokio::test]
async fn control_routes() {
    let app = new_app("p");
    let a = get(&app, "/healthz").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(&a.body[..], b"ok");
    get(&app, "/api/items/1").await;
    get(&app, "/api/items/1?x=2").await;
    get(&app, "/api/items/2").await;
    let c = calls(&app).await;
    assert_eq!(c["total"], 3);
    assert_eq!(c["by_path"], json!({"/api/items/1": 2, "/api/items/2": 1}));
    assert_eq!(c["batches"], 0);
    assert_eq!(c["batch_members"], 0);
    assert_eq!(c["members_by_path"], json!({}));
    assert_eq!(c["graphql_batches"], 0);
    // Control routes are not calls.
    assert_eq!(calls(&app).await["total"], 3);
}
