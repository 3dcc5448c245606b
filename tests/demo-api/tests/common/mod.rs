//! Helpers shared by the in-process tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, Response, StatusCode};
use axum::Router;
use demo_api::{app, AppState};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub fn new_app(provider: &str) -> Router {
    app(AppState::new(provider))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Body chunks as produced by the response body (for `chunked=1`).
    pub frames: usize,
    pub response_extensions: axum::http::Extensions,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp: Response<Body> = app.clone().oneshot(req).await.unwrap();
    let (parts, mut body) = resp.into_parts();
    let mut bytes = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: Bytes::from(bytes),
        frames,
        response_extensions: parts.extensions,
    }
}

pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    send(app, request("GET", uri, &[], "")).await
}

pub async fn post(app: &Router, uri: &str, body: &str) -> Answer {
    send(app, request("POST", uri, &[], body)).await
}

pub async fn calls(app: &Router) -> Value {
    let a = get(app, "/__calls").await;
    assert_eq!(a.status, StatusCode::OK);
    a.json()
}

pub async fn fault(app: &Router, rule: Value) -> Value {
    let a = post(app, "/__faults", &rule.to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.json()
}
