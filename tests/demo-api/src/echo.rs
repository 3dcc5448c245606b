//! Writes (`POST|PUT|PATCH|DELETE /api/*`) and `/echo/*`: echo the request.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde::Serialize;

use crate::api::ApiRequest;
use crate::{respond, AppState};

#[derive(Serialize)]
struct Echo<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    /// `[name, value]` pairs, names lowercase, every value kept.
    headers: Vec<(&'a str, String)>,
    body: String,
    body_b64: String,
    provider: &'a str,
    call: u64,
}

/// 200 JSON echo of `req`.
pub fn answer(state: &AppState, req: &ApiRequest) -> Response {
    let echo = Echo {
        method: req.method.as_str(),
        path: &req.path,
        query: req.query.as_deref().unwrap_or(""),
        headers: req
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        body_b64: base64::engine::general_purpose::STANDARD.encode(&req.body),
        provider: &state.provider,
        call: req.call,
    };
    respond::json(StatusCode::OK, &echo)
}
