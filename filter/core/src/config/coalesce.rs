//! Coalescing settings: the gateway-wide in-flight table
//! (`coalesce_store`) and each rule's `coalesce` block.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCoalesceStore {
    pub slots: u32,
    pub tick_ms: u64,
}

impl Default for RawCoalesceStore {
    fn default() -> Self {
        RawCoalesceStore {
            slots: 1024,
            tick_ms: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoalesceStore {
    /// In-flight table size (fixed key space in shared data).
    pub slots: u32,
    /// Timer period while followers wait on this worker.
    pub tick_ms: u64,
}

pub fn compile_coalesce_store(raw: RawCoalesceStore) -> Result<CoalesceStore, ConfigError> {
    if !(1..=65_536).contains(&raw.slots) {
        return Err(ConfigError::at("coalesce_store.slots", "must be 1..=65536"));
    }
    if !(1..=1000).contains(&raw.tick_ms) {
        return Err(ConfigError::at(
            "coalesce_store.tick_ms",
            "must be 1..=1000",
        ));
    }
    Ok(CoalesceStore {
        slots: raw.slots,
        tick_ms: raw.tick_ms,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCoalesce {
    #[serde(default)]
    pub max_wait_ms: Option<u64>,
    #[serde(default)]
    pub share_5xx: bool,
    #[serde(default = "default_body")]
    pub max_body_bytes: u32,
    #[serde(default = "default_grace")]
    pub grace_ms: u64,
    #[serde(default)]
    pub idempotency_key: bool,
}

fn default_body() -> u32 {
    1024 * 1024
}

fn default_grace() -> u64 {
    200
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCoalesce {
    /// How long a follower waits before going upstream on its own.
    pub max_wait_ms: u64,
    /// Whether followers get the leader's 5xx (else they go upstream).
    pub share_5xx: bool,
    /// Largest leader body shared; a bigger one releases the followers.
    pub max_body_bytes: u32,
    /// Late arrivals this long after the leader finished get its answer.
    pub grace_ms: u64,
    /// Coalesce non-idempotent methods that carry the same
    /// `Idempotency-Key`.
    pub idempotency_key: bool,
}

pub fn compile_route_coalesce(
    f: &str,
    raw: RawRouteCoalesce,
    sla_ms: u64,
) -> Result<RouteCoalesce, ConfigError> {
    let max_wait_ms = raw.max_wait_ms.unwrap_or(sla_ms);
    if max_wait_ms == 0 || max_wait_ms > sla_ms {
        return Err(ConfigError::at(
            format!("{f}.max_wait_ms"),
            format!("must be 1..={sla_ms} (the rule's sla_ms)"),
        ));
    }
    if !(1..=64 * 1024 * 1024).contains(&raw.max_body_bytes) {
        return Err(ConfigError::at(
            format!("{f}.max_body_bytes"),
            "must be 1..=67108864",
        ));
    }
    if raw.grace_ms > 60_000 {
        return Err(ConfigError::at(format!("{f}.grace_ms"), "must be <= 60000"));
    }
    Ok(RouteCoalesce {
        max_wait_ms,
        share_5xx: raw.share_5xx,
        max_body_bytes: raw.max_body_bytes,
        grace_ms: raw.grace_ms,
        idempotency_key: raw.idempotency_key,
    })
}
