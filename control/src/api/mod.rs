//! HTTP routes. Auth per route: see `auth` and control/README.md.

mod alerts;
mod allowances;
pub mod body;
mod budgets;
mod ops;
mod purge;
mod snapshot;
mod spend;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;

use crate::state::AppState;

/// Every route the service serves (method, path) — the OpenAPI test checks
/// that each is documented.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/budgets"),
    ("put", "/v1/budgets"),
    ("post", "/v1/spend"),
    ("get", "/v1/spend"),
    ("post", "/v1/allowances"),
    ("delete", "/v1/allowances/{id}"),
    ("get", "/v1/snapshot"),
    ("post", "/v1/purge"),
    ("get", "/v1/alerts"),
    ("get", "/v1/wake"),
];

pub fn router(state: AppState) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/v1/budgets", get(budgets::list).put(budgets::put))
        .route("/v1/spend", post(spend::ingest).get(spend::report))
        .route("/v1/allowances", post(allowances::grant))
        .route("/v1/allowances/{id}", delete(allowances::release))
        .route("/v1/snapshot", get(snapshot::get))
        .route("/v1/purge", post(purge::purge))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/wake", get(ops::wake))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .with_state(state)
}
