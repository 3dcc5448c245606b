//! Filter configuration: parsed and checked once, in `on_configure`.
//!
//! `parse` turns JSON into a [`Config`] or a [`ConfigError`] that names the
//! failing field the way a user would write it
//! (`routes[2].sla_ms: must be > 0`), so the gateway refuses the filter
//! with a message that says what to fix.

mod accounting;
mod batch;
mod cache;
mod coalesce;
mod compile;
mod cost;
mod limit;
mod metrics;
mod prompt;
mod raw;
pub mod routing;
mod shared_answers;
mod wake;

pub use accounting::{Accounting, Budgets, TICKS_PER_POLL};
pub use batch::{BatchFormat, RouteBatch, MAX_BATCH_SIZE};
pub use cache::{RouteCache, Store};
pub use coalesce::{CoalesceStore, RouteCoalesce};
pub use compile::{Config, Identity, Route, RouteMatch, Source};
pub use cost::{BatchPrice, OnUnavailable, RouteBudget, RouteCost, TokenPricing};
pub use limit::{LimitBy, RouteLimit};
pub use metrics::{Metrics as MetricsConfig, DEFAULT_FLUSH_MS, MAX_FLUSH_MS};
pub use prompt::RoutePrompt;
pub use raw::{Priority, RawHost};
pub use shared_answers::DEFAULT_BYPASS_HEADERS;
pub use wake::Wake;

use std::fmt;

/// The config versions this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `routes[2].sla_ms`; empty for the
    /// document as a whole.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parse and check a config document. Empty input means "all defaults, no
/// routes" (a filter that passes everything through).
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let trimmed = bytes.iter().all(|b| b.is_ascii_whitespace());
    if trimmed {
        return compile::compile(raw::RawConfig {
            version: SUPPORTED_VERSION,
            host: RawHost::default(),
            identity: raw::RawIdentity::default(),
            cache_store: cache::RawStore::default(),
            coalesce_store: coalesce::RawCoalesceStore::default(),
            limit_store: limit::RawLimitStore::default(),
            metrics: metrics::RawMetrics::default(),
            accounting: None,
            wake: None,
            shared_answers: shared_answers::RawSharedAnswers::default(),
            routes: Vec::new(),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw: raw::RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ConfigError::at(field, e.into_inner().to_string())
    })?;
    compile::compile(raw)
}

#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod tests;
