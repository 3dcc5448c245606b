//! Rate-limit settings: the gateway-wide table (`limit_store`) and each
//! rule's `limit` block.

use serde::Deserialize;

use super::ConfigError;
use crate::limit::algo::Algorithm;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimitStore {
    pub slots: u32,
}

impl Default for RawLimitStore {
    fn default() -> Self {
        RawLimitStore { slots: 4096 }
    }
}

pub fn compile_limit_store(raw: RawLimitStore) -> Result<u32, ConfigError> {
    if !(1..=1_000_000).contains(&raw.slots) {
        return Err(ConfigError::at("limit_store.slots", "must be 1..=1000000"));
    }
    Ok(raw.slots)
}

/// What a limit counts requests by.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitBy {
    Tenant,
    Service,
    Route,
    TenantRoute,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenBucket {
    pub capacity: u32,
    pub refill_per_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlidingWindow {
    pub limit: u32,
    pub window_s: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteLimit {
    #[serde(default = "default_by")]
    pub by: LimitBy,
    #[serde(default)]
    pub token_bucket: Option<RawTokenBucket>,
    #[serde(default)]
    pub sliding_window: Option<RawSlidingWindow>,
    #[serde(default = "default_queue")]
    pub queue_bound: u32,
}

fn default_by() -> LimitBy {
    LimitBy::TenantRoute
}

fn default_queue() -> u32 {
    64
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteLimit {
    pub by: LimitBy,
    pub algorithm: Algorithm,
    /// Paused medium-priority requests per worker, beyond which: 429.
    pub queue_bound: u32,
}

pub fn compile_route_limit(f: &str, raw: RawRouteLimit) -> Result<RouteLimit, ConfigError> {
    let algorithm = match (raw.token_bucket, raw.sliding_window) {
        (Some(b), None) => {
            if b.capacity == 0 || b.capacity > 10_000_000 {
                return Err(ConfigError::at(
                    format!("{f}.token_bucket.capacity"),
                    "must be 1..=10000000",
                ));
            }
            if !(b.refill_per_s.is_finite()
                && b.refill_per_s > 0.0
                && b.refill_per_s <= 10_000_000.0)
            {
                return Err(ConfigError::at(
                    format!("{f}.token_bucket.refill_per_s"),
                    "must be > 0 and <= 10000000",
                ));
            }
            Algorithm::TokenBucket {
                capacity: b.capacity,
                refill_per_s: b.refill_per_s,
            }
        }
        (None, Some(w)) => {
            if w.limit == 0 {
                return Err(ConfigError::at(
                    format!("{f}.sliding_window.limit"),
                    "must be > 0",
                ));
            }
            if !(1..=86_400).contains(&w.window_s) {
                return Err(ConfigError::at(
                    format!("{f}.sliding_window.window_s"),
                    "must be 1..=86400",
                ));
            }
            Algorithm::SlidingWindow {
                limit: w.limit,
                window_ms: w.window_s * 1000,
            }
        }
        _ => {
            return Err(ConfigError::at(
                f.to_string(),
                "needs exactly one of token_bucket or sliding_window",
            ))
        }
    };
    if raw.queue_bound > 100_000 {
        return Err(ConfigError::at(
            format!("{f}.queue_bound"),
            "must be <= 100000",
        ));
    }
    Ok(RouteLimit {
        by: raw.by,
        algorithm,
        queue_bound: raw.queue_bound,
    })
}
