//! Batching settings: each rule's `batch` block.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BatchFormat {
    Rest,
    Graphql,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteBatch {
    pub upstream: String,
    /// `:authority` of the batch call; default: `upstream` (under Istio
    /// the cluster is `outbound|port||host`, not a host name).
    #[serde(default)]
    pub authority: Option<String>,
    pub path: String,
    #[serde(default = "default_format")]
    pub format: BatchFormat,
    pub window_ms: u64,
    #[serde(default)]
    pub window_min_ms: Option<u64>,
    #[serde(default = "default_size")]
    pub max_size: u32,
    #[serde(default = "default_body")]
    pub max_body_bytes: u32,
    #[serde(default)]
    pub min_rate_rps: f64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Batch requests that carry a body (POST, PUT, PATCH). Needs Envoy's
    /// `envoy.filters.http.buffer` right after this filter: Envoy turns a
    /// wasm pause at request headers into "stop all", so the filter lets
    /// the headers go on and the buffer filter holds them (no upstream
    /// request starts) while the filter gathers the body. Default: on for
    /// `graphql` (its operations are bodies), off for `rest`.
    #[serde(default)]
    pub bodies: Option<bool>,
}

fn default_format() -> BatchFormat {
    BatchFormat::Rest
}

fn default_size() -> u32 {
    16
}

fn default_body() -> u32 {
    64 * 1024
}

fn default_timeout() -> u64 {
    5_000
}

/// Largest batch: Envoy runs the local replies one host call sends as a
/// nested chain (see `coalesce_stage::ACTIONS_PER_CALL`), so one batch's
/// answers must fit in one call.
pub const MAX_BATCH_SIZE: u32 = 24;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteBatch {
    /// Envoy: a cluster name; Kong: `host:port`.
    pub upstream: String,
    /// `:authority` of the batch call.
    pub authority: String,
    pub path: String,
    pub format: BatchFormat,
    pub window_min_ms: u64,
    pub window_max_ms: u64,
    pub max_size: u32,
    pub max_body_bytes: u32,
    pub min_rate_rps: f64,
    pub timeout_ms: u64,
    pub bodies: bool,
}

pub fn compile_route_batch(
    f: &str,
    raw: RawRouteBatch,
    sla_ms: u64,
) -> Result<RouteBatch, ConfigError> {
    if raw.upstream.is_empty() || raw.upstream.contains(char::is_whitespace) {
        return Err(ConfigError::at(
            format!("{f}.upstream"),
            "must name a cluster (Envoy) or host:port (Kong)",
        ));
    }
    if !raw.path.starts_with('/') {
        return Err(ConfigError::at(format!("{f}.path"), "must start with '/'"));
    }
    if raw.window_ms == 0 {
        return Err(ConfigError::at(format!("{f}.window_ms"), "must be > 0"));
    }
    if raw.window_ms > sla_ms / 2 {
        return Err(ConfigError::at(
            format!("{f}.window_ms"),
            format!("must be at most half the rule's sla_ms ({sla_ms})"),
        ));
    }
    let window_min_ms = raw.window_min_ms.unwrap_or((raw.window_ms / 4).max(1));
    if window_min_ms == 0 || window_min_ms > raw.window_ms {
        return Err(ConfigError::at(
            format!("{f}.window_min_ms"),
            "must be 1..=window_ms",
        ));
    }
    if !(2..=MAX_BATCH_SIZE).contains(&raw.max_size) {
        return Err(ConfigError::at(
            format!("{f}.max_size"),
            format!("must be 2..={MAX_BATCH_SIZE}"),
        ));
    }
    if !(1..=16 * 1024 * 1024).contains(&raw.max_body_bytes) {
        return Err(ConfigError::at(
            format!("{f}.max_body_bytes"),
            "must be 1..=16777216",
        ));
    }
    if !(raw.min_rate_rps.is_finite() && raw.min_rate_rps >= 0.0) {
        return Err(ConfigError::at(format!("{f}.min_rate_rps"), "must be >= 0"));
    }
    if !(1..=60_000).contains(&raw.timeout_ms) {
        return Err(ConfigError::at(
            format!("{f}.timeout_ms"),
            "must be 1..=60000",
        ));
    }
    let authority = raw.authority.unwrap_or_else(|| raw.upstream.clone());
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(ConfigError::at(
            format!("{f}.authority"),
            "must be a host name without spaces",
        ));
    }
    Ok(RouteBatch {
        authority,
        upstream: raw.upstream,
        path: raw.path,
        format: raw.format,
        window_min_ms,
        window_max_ms: raw.window_ms,
        max_size: raw.max_size,
        max_body_bytes: raw.max_body_bytes,
        min_rate_rps: raw.min_rate_rps,
        timeout_ms: raw.timeout_ms,
        bodies: raw.bodies.unwrap_or(raw.format == BatchFormat::Graphql),
    })
}
