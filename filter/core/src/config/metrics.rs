//! `metrics`: how the filter's counters reach the host.
//!
//! Every counter increment used to be a host call, five to six per
//! request on a priced or cached rule (issue 18 counted about 1,200 of
//! Envoy's instructions each, 2,200 on Kong's engine). A worker now adds
//! them up and sends each counter's sum once per `flush_ms` from its
//! timer, so a counter on the host is at most that much (and one tick)
//! behind, the way Envoy's own stats reach their sinks on an interval.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub flush_ms: u64,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            flush_ms: DEFAULT_FLUSH_MS,
        }
    }
}

/// A second: the worker's idle timer period, so the default costs no
/// extra ticks.
pub const DEFAULT_FLUSH_MS: u64 = 1_000;

/// The longest a counter may wait for the host.
pub const MAX_FLUSH_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    /// Counter sums are sent at the first tick this long after the last
    /// send; 0: every increment is its own host call, at once.
    pub flush_ms: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            flush_ms: DEFAULT_FLUSH_MS,
        }
    }
}

impl Metrics {
    /// Increments wait in the worker for the timer.
    pub fn held(&self) -> bool {
        self.flush_ms > 0
    }
}

pub fn compile_metrics(raw: RawMetrics) -> Result<Metrics, ConfigError> {
    if raw.flush_ms > MAX_FLUSH_MS {
        return Err(ConfigError::at(
            "metrics.flush_ms",
            format!("must be 0..={MAX_FLUSH_MS} (0: every increment at once)"),
        ));
    }
    Ok(Metrics {
        flush_ms: raw.flush_ms,
    })
}
