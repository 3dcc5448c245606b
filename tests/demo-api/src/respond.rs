//! Small helpers to build JSON answers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `content-type` of every JSON answer.
pub const JSON: &str = "application/json";

/// Serialize `value` to JSON bytes; `None` only if serialization fails,
/// which cannot happen for the plain structs of this crate.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(value).ok()
}

/// A response with `status`, `content-type: application/json` and `body`.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// A JSON response serializing `value`.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match to_json(value) {
        Some(body) => json_bytes(status, body),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "serialization failed").into_response(),
    }
}

/// `{"error": code}` with `status`.
pub fn error(status: StatusCode, code: &str) -> Response {
    json(status, &serde_json::json!({ "error": code }))
}

/// `{"error": code, "detail": detail}` with `status`.
pub fn error_detail(status: StatusCode, code: &str, detail: &str) -> Response {
    json(
        status,
        &serde_json::json!({ "error": code, "detail": detail }),
    )
}

/// 404 `{"error":"not_found"}`.
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found")
}

/// 400 `{"error":"bad_request","detail":..}`.
pub fn bad_request(detail: &str) -> Response {
    error_detail(StatusCode::BAD_REQUEST, "bad_request", detail)
}
