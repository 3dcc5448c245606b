//! `POST /v1/purge` (admin): bump the cache generation of a tenant's path
//! prefix, tag or key; filters see the new generation in the snapshot.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::body::{ident, JsonBody};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::metrics::inc;
use crate::model::{PurgeEntry, PurgeKind};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct PurgeBody {
    tenant: String,
    prefix: Option<String>,
    tag: Option<String>,
    key: Option<String>,
}

pub async fn purge(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(b): JsonBody<PurgeBody>,
) -> Result<Json<PurgeEntry>, ApiError> {
    ident("tenant", &b.tenant, 200)?;
    let given: Vec<(PurgeKind, String)> = [
        (PurgeKind::Prefix, b.prefix),
        (PurgeKind::Tag, b.tag),
        (PurgeKind::Key, b.key),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let [(kind, value)] = <[_; 1]>::try_from(given)
        .map_err(|_| ApiError::invalid("prefix", "give exactly one of prefix, tag, key"))?;
    ident(kind.as_str(), &value, 1024)?;
    let entry = state.store.purge(&b.tenant, kind, &value).await?;
    inc(&state.metrics.purges, 1);
    tracing::info!(tenant = %entry.tenant, kind = kind.as_str(), value = %entry.value,
        generation = entry.generation, "purged");
    Ok(Json(entry))
}
