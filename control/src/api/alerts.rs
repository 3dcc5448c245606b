//! `GET /v1/alerts?tenant=&limit=` (either token): fired alerts, newest first.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;

use super::body::{query, short};
use crate::auth::AnyRole;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
struct Params {
    tenant: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    _: AnyRole,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p: Params = query(raw.as_deref())?;
    if let Some(t) = &p.tenant {
        short("tenant", t, 200)?;
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let alerts = state.store.alerts(p.tenant.as_deref(), limit).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}
