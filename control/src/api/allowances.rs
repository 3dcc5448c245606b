//! `POST /v1/allowances` and `DELETE /v1/allowances/{id}` (gateway): lease
//! part of a tenant's remaining budget; return what a lease did not use.

use axum::extract::{Path, State};
use axum::Json;
use optimizer_wire::{AllowanceGrant, AllowanceRequest as GrantBody};

use super::body::{ident, short, JsonBody};
use crate::auth::Gateway;
use crate::error::ApiError;
use crate::metrics::inc;
use crate::model::AllowanceRequest;
use crate::state::AppState;

/// The request and the answer are the shared wire types (`optimizer-wire`),
/// the ones the filter writes and reads. The answer is the grant plus the
/// budget's state after it, so a gateway learns of the soft limit without
/// another request.
pub async fn grant(
    _: Gateway,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<GrantBody<String>>,
) -> Result<Json<AllowanceGrant>, ApiError> {
    ident("gateway_id", &b.gateway_id, 200)?;
    ident("tenant", &b.tenant, 200)?;
    short("service", &b.service, 200)?;
    let want_micros = b.want_micros.as_i64();
    if want_micros <= 0 {
        return Err(ApiError::invalid("want_micros", "must be positive"));
    }
    let ttl_ms = match b.ttl_secs {
        None => state.limits.lease_ttl_ms,
        Some(s) => {
            let ms = i64::from(s) * 1000;
            if ms <= 0 || ms > state.limits.max_lease_ttl_ms {
                return Err(ApiError::invalid(
                    "ttl_secs",
                    format!(
                        "must be between 1 and {}",
                        state.limits.max_lease_ttl_ms / 1000
                    ),
                ));
            }
            ms
        }
    };
    let req = AllowanceRequest {
        gateway_id: b.gateway_id,
        tenant: b.tenant,
        service: b.service,
        want_micros,
        ttl_ms,
    };
    let a = state.store.grant(req, state.now_ms()).await?;
    if a.granted_micros > 0 {
        inc(&state.metrics.allowances_granted, 1);
        inc(
            &state.metrics.allowance_granted_micros,
            a.granted_micros as u64,
        );
    }
    // Budgets that bound this lease: the tenant-wide one and, when the
    // lease names a service, that service's.
    let now = state.now_ms();
    let states = state.store.budgets(Some(&a.tenant), now).await?;
    let bounding = states
        .iter()
        .filter(|s| s.service.is_empty() || s.service == a.service);
    let (mut soft, mut hard) = (false, false);
    for s in bounding {
        soft |= s.soft;
        hard |= s.hard;
    }
    Ok(Json(AllowanceGrant {
        allowance_id: a.allowance_id,
        tenant: a.tenant,
        service: a.service,
        gateway_id: a.gateway_id,
        granted_micros: a.granted_micros,
        expires_at_ms: a.expires_at_ms,
        remaining_micros: a.remaining_micros,
        soft,
        hard,
    }))
}

pub async fn release(
    _: Gateway,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    ident("id", &id, 200)?;
    let returned = state.store.release(&id, state.now_ms()).await?;
    Ok(Json(
        serde_json::json!({"allowance_id": id, "returned_micros": returned}),
    ))
}
