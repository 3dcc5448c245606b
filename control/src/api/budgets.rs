//! `PUT /v1/budgets` (admin) and `GET /v1/budgets` (either token).

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Deserialize;

use super::body::{ident, query, short, JsonBody};
use crate::auth::{Admin, AnyRole};
use crate::error::ApiError;
use crate::model::{Budget, TenantState};
use crate::money::de_opt_micros;
use crate::state::AppState;
use crate::window::parse_offset;

#[derive(Deserialize)]
#[serde(untagged)]
enum Offset {
    Minutes(i32),
    Text(String),
}

#[derive(Deserialize)]
pub struct PutBudget {
    tenant: String,
    #[serde(default)]
    service: String,
    #[serde(default, alias = "daily", deserialize_with = "de_opt_micros")]
    daily_limit_micros: Option<i64>,
    #[serde(default, alias = "monthly", deserialize_with = "de_opt_micros")]
    monthly_limit_micros: Option<i64>,
    soft_limit_percent: Option<u8>,
    utc_offset: Option<Offset>,
}

pub async fn put(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PutBudget>,
) -> Result<Json<TenantState>, ApiError> {
    ident("tenant", &req.tenant, 200)?;
    short("service", &req.service, 200)?;
    if req.daily_limit_micros.is_none() && req.monthly_limit_micros.is_none() {
        return Err(ApiError::invalid(
            "daily_limit_micros",
            "give daily_limit_micros, monthly_limit_micros or both",
        ));
    }
    let soft = req.soft_limit_percent.unwrap_or(90);
    if !(1..=100).contains(&soft) {
        return Err(ApiError::invalid(
            "soft_limit_percent",
            "must be between 1 and 100",
        ));
    }
    let now = state.now_ms();
    let offset = match req.utc_offset {
        Some(Offset::Minutes(m)) if (-840..=840).contains(&m) => m,
        Some(Offset::Minutes(_)) => {
            return Err(ApiError::invalid(
                "utc_offset",
                "minutes must be within ±840",
            ))
        }
        Some(Offset::Text(s)) => {
            parse_offset(&s).map_err(|e| ApiError::invalid("utc_offset", e))?
        }
        // Absent: keep the tenant's offset.
        None => state
            .store
            .budgets(Some(&req.tenant), now)
            .await?
            .first()
            .map_or(0, |b| b.utc_offset_minutes),
    };
    let budget = Budget {
        tenant: req.tenant,
        service: req.service,
        daily_limit_micros: req.daily_limit_micros,
        monthly_limit_micros: req.monthly_limit_micros,
        soft_limit_percent: soft,
        utc_offset_minutes: offset,
    };
    tracing::info!(tenant = %budget.tenant, service = %budget.service,
        daily = ?budget.daily_limit_micros, monthly = ?budget.monthly_limit_micros, "budget set");
    Ok(Json(state.store.put_budget(budget, now).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    tenant: Option<String>,
}

pub async fn list(
    _: AnyRole,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q: ListQuery = query(raw.as_deref())?;
    if let Some(t) = &q.tenant {
        short("tenant", t, 200)?;
    }
    let budgets = state
        .store
        .budgets(q.tenant.as_deref(), state.now_ms())
        .await?;
    Ok(Json(serde_json::json!({ "budgets": budgets })))
}
