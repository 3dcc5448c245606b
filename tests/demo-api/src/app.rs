//! The router: control routes plus the API fallback.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::counters::Tallies;
use crate::faults::{FaultRequest, FaultRule};
use crate::{api, respond, AppState};

/// The whole demo-api.
///
/// Control routes: `GET /healthz`, `GET /__calls`, `POST|GET /__faults`,
/// `POST /__reset`. Everything else goes to [`api::entry`], which answers
/// the API routes and 404s the rest.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/__calls", get(calls))
        .route("/__faults", get(list_faults).post(install_faults))
        .route("/__reset", axum::routing::post(reset))
        .fallback(api::entry)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct Calls<'a> {
    #[serde(flatten)]
    tallies: Tallies,
    /// Last call sequence number drawn.
    call: u64,
    provider: &'a str,
    /// Server-sent events produced by streamed answers so far (a test
    /// reads it to tell whether a client got an event before the last one
    /// was even produced).
    stream_events: u64,
}

async fn calls(State(state): State<AppState>) -> Response {
    let calls = Calls {
        tallies: state.counters.snapshot(),
        call: state.counters.last_call(),
        provider: &state.provider,
        stream_events: state.counters.stream_events(),
    };
    respond::json(StatusCode::OK, &calls)
}

#[derive(Serialize)]
struct FaultList {
    faults: usize,
    rules: Vec<FaultRule>,
}

async fn list_faults(State(state): State<AppState>) -> Response {
    let rules = state.faults.list();
    respond::json(
        StatusCode::OK,
        &FaultList {
            faults: rules.len(),
            rules,
        },
    )
}

async fn install_faults(State(state): State<AppState>, body: Bytes) -> Response {
    let req: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return respond::error_detail(
                StatusCode::BAD_REQUEST,
                "invalid_fault",
                &format!("invalid fault JSON: {e}"),
            )
        }
    };
    match state.faults.apply(&req) {
        Ok(n) => respond::json(StatusCode::OK, &serde_json::json!({ "faults": n })),
        Err(msg) => respond::error_detail(StatusCode::BAD_REQUEST, "invalid_fault", &msg),
    }
}

async fn reset(State(state): State<AppState>) -> Response {
    state.counters.reset();
    state.faults.clear();
    respond::json(StatusCode::OK, &serde_json::json!({ "reset": true }))
}
