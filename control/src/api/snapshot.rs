//! `GET /v1/snapshot?since=V` (gateway): budget states and purge generations.
//!
//! The version is `"<store version>.<minute>"`: the store version changes on
//! every write (spend, grant, release, lease expiry sweep, budget, purge) and
//! the minute part makes windows roll over (tenant offsets are whole minutes)
//! even when nothing is written. `since` equal to the current version is
//! answered `304` after one cheap version read; the serialized snapshot is
//! cached per version.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::body::query;
use crate::auth::Gateway;
use crate::error::ApiError;
use crate::metrics::inc;
use crate::state::AppState;

#[derive(Deserialize)]
struct Params {
    since: Option<String>,
}

fn version_of(store_version: &str, now_ms: i64) -> String {
    format!("{store_version}.{}", now_ms.div_euclid(60_000))
}

fn not_modified(state: &AppState, version: &str) -> Response {
    inc(&state.metrics.snapshots_not_modified, 1);
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn full(version: &str, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        h.insert(header::ETAG, v);
    }
    r
}

pub async fn get(
    _: Gateway,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p: Params = query(raw.as_deref())?;
    let now = state.now_ms();
    let current = version_of(&state.store.version().await?.to_string(), now);
    if p.since.as_deref() == Some(current.as_str()) {
        return Ok(not_modified(&state, &current));
    }
    let cached = state.snapshot_cache.lock().ok().and_then(|c| {
        c.as_ref()
            .filter(|(v, _)| *v == current)
            .map(|(_, b)| b.clone())
    });
    if let Some(body) = cached {
        return Ok(full(&current, body));
    }
    let mut snap = state.store.snapshot(now).await?;
    snap.version = version_of(&snap.version, now);
    if p.since.as_deref() == Some(snap.version.as_str()) {
        return Ok(not_modified(&state, &snap.version));
    }
    let body = Bytes::from(serde_json::to_vec(&snap).map_err(|_| ApiError::Unavailable)?);
    if let Ok(mut c) = state.snapshot_cache.lock() {
        *c = Some((snap.version.clone(), body.clone()));
    }
    Ok(full(&snap.version, body))
}
