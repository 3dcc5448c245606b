//! `POST /v1/spend` (gateway): batched spend ingest, acknowledged only once
//! durably committed, idempotent per `batch_id`, all-or-nothing validation.
//! `GET /v1/spend` (either token): cost, baseline and savings report.

use axum::extract::{RawQuery, State};
use axum::Json;
use optimizer_wire::{SpendBatch as BatchBody, Ts};
use serde::Deserialize;

use super::body::{ident, query, short, JsonBody};
use crate::auth::{AnyRole, Gateway};
use crate::error::ApiError;
use crate::metrics::inc;
use crate::model::{GroupBy, ReportQuery, SpendBatch, SpendEvent};
use crate::state::AppState;
use crate::window::{month_bounds, parse_time};

// The body is the shared wire type (`optimizer-wire`), the one the filter
// writes; the bounds below are cost-control's own.
fn validate(b: BatchBody<String>, state: &AppState, now: i64) -> Result<SpendBatch, ApiError> {
    ident("batch_id", &b.batch_id, 200)?;
    ident("gateway_id", &b.gateway_id, 200)?;
    if b.events.is_empty() {
        return Err(ApiError::invalid("events", "must not be empty"));
    }
    let max = state.limits.max_batch_events;
    if b.events.len() > max {
        return Err(ApiError::invalid(
            "events",
            format!("at most {max} events per batch"),
        ));
    }
    let mut events = Vec::with_capacity(b.events.len());
    for (i, e) in b.events.into_iter().enumerate() {
        let f = |name: &str| format!("events[{i}].{name}");
        ident(&f("tenant"), &e.tenant, 200)?;
        short(&f("service"), &e.service, 200)?;
        short(&f("route"), &e.route, 1024)?;
        short(&f("provider"), &e.provider, 200)?;
        short(&f("strategy"), &e.strategy, 200)?;
        let ts_ms = match e.ts {
            Ts::Ms(ms) => ms,
            Ts::Text(s) => parse_time(&s).map_err(|m| ApiError::invalid(f("ts"), m))?,
        };
        if ts_ms <= 0 {
            return Err(ApiError::invalid(f("ts"), "must be after 1970"));
        }
        if ts_ms > now + state.limits.max_future_skew_ms {
            return Err(ApiError::invalid(f("ts"), "is in the future"));
        }
        if let Some(id) = &e.allowance_id {
            ident(&f("allowance_id"), id, 200)?;
        }
        let count = e.count.unwrap_or(1);
        if !(1..=1_000_000_000).contains(&count) {
            return Err(ApiError::invalid(f("count"), "must be 1..=1000000000"));
        }
        let cost_micros = e.cost_micros.as_i64();
        events.push(SpendEvent {
            tenant: e.tenant,
            service: e.service,
            route: e.route,
            provider: e.provider,
            strategy: e.strategy,
            cost_micros,
            baseline_micros: e.baseline_micros.map_or(cost_micros, |b| b.as_i64()),
            ts_ms,
            allowance_id: e.allowance_id,
            count,
        });
    }
    Ok(SpendBatch {
        batch_id: b.batch_id,
        gateway_id: b.gateway_id,
        events,
    })
}

pub async fn ingest(
    _: Gateway,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<BatchBody<String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.now_ms();
    let batch = validate(b, &state, now)?;
    let cost: i64 = batch.events.iter().map(|e| e.cost_micros).sum();
    let batch_id = batch.batch_id.clone();
    let out = state.store.ingest(batch, now).await?;
    let m = &state.metrics;
    if out.duplicate {
        inc(&m.spend_batches_duplicate, 1);
    } else {
        inc(&m.spend_batches, 1);
        inc(&m.spend_events, out.events as u64);
        inc(&m.spend_cost_micros, cost.max(0) as u64);
        state.alerts.dispatch(out.fired);
    }
    Ok(Json(serde_json::json!({
        "batch_id": batch_id,
        "accepted": out.events,
        "duplicate": out.duplicate,
    })))
}

#[derive(Deserialize)]
struct ReportParams {
    /// Absent: every tenant.
    tenant: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: Option<GroupBy>,
}

/// `GET /v1/spend`: one tenant's spend, or every tenant's, over `[from,
/// to)`, grouped by a column or by hour or day. Windows and buckets follow
/// the tenant's UTC offset (its budget's), UTC for every tenant.
pub async fn report(
    _: AnyRole,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p: ReportParams = query(raw.as_deref())?;
    if let Some(t) = &p.tenant {
        ident("tenant", t, 200)?;
    }
    let now = state.now_ms();
    let offset = match &p.tenant {
        Some(t) => state
            .store
            .budgets(Some(t), now)
            .await?
            .first()
            .map_or(0, |b| b.utc_offset_minutes),
        None => 0,
    };
    let from_ms = match &p.from {
        Some(s) => parse_time(s).map_err(|e| ApiError::invalid("from", e))?,
        None => month_bounds(now, offset).0,
    };
    let to_ms = match &p.to {
        Some(s) => parse_time(s).map_err(|e| ApiError::invalid("to", e))?,
        None => now + 1,
    };
    if to_ms < from_ms {
        return Err(ApiError::invalid("to", "must not be before from"));
    }
    let q = ReportQuery {
        tenant: p.tenant.clone(),
        from_ms,
        to_ms,
        group_by: p.group_by,
        offset_minutes: offset,
    };
    let rows = state.store.report(q).await?;
    let (mut events, mut cost, mut base) = (0, 0, 0);
    for r in &rows {
        events += r.events;
        cost += r.cost_micros;
        base += r.baseline_micros;
    }
    Ok(Json(serde_json::json!({
        "tenant": p.tenant,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "group_by": p.group_by,
        "utc_offset_minutes": offset,
        "rows": rows,
        "total": {"key": "total", "events": events, "cost_micros": cost,
                  "baseline_micros": base, "savings_micros": base - cost},
    })))
}
