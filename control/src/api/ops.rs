//! Health, readiness, metrics and the OpenAPI document (no auth).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "store not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "store unreachable"})),
            )
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_string(),
    )
}

#[derive(serde::Deserialize)]
pub struct WakeQuery {
    after_ms: Option<u64>,
}

/// The longest a wake call waits: a waiting request asks again after it.
pub const MAX_WAKE_MS: u64 = 1_000;

/// Answers after `after_ms`. On Kong a paused request can only be woken
/// from its own context, and that context has no timer: the filter calls
/// this to be called back (DESIGN.md "Host facts"). It holds nothing, so
/// it needs no auth; the cap bounds how long a connection is held.
pub async fn wake(axum::extract::Query(q): axum::extract::Query<WakeQuery>) -> impl IntoResponse {
    match q.after_ms {
        Some(ms) if ms <= MAX_WAKE_MS => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "bad_request", "message": format!("after_ms: required, 0..={MAX_WAKE_MS}")})),
        )
            .into_response(),
    }
}
