//! What every handler shares: the store, the clock, tokens, alert delivery,
//! metrics, limits, and the serialized-snapshot cache.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::FromRef;

use crate::alerts::{AlertDispatcher, RetryPolicy};
use crate::auth::Tokens;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct Limits {
    /// Default allowance lease lifetime.
    pub lease_ttl_ms: i64,
    /// Longest lease a gateway may ask for (`ttl_secs`).
    pub max_lease_ttl_ms: i64,
    /// Request body bound (413 beyond it).
    pub max_body_bytes: usize,
    /// Most events in one spend batch.
    pub max_batch_events: usize,
    /// How far in the future an event's `ts` may be (clock skew).
    pub max_future_skew_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 60_000,
            max_lease_ttl_ms: 3_600_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_events: 10_000,
            max_future_skew_ms: 3_600_000,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<Tokens>,
    pub alerts: AlertDispatcher,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    /// Last serialized snapshot: (version, JSON body).
    pub snapshot_cache: Arc<Mutex<Option<(String, Bytes)>>>,
}

// Substates: auth takes the tokens, the metrics middleware the metrics,
// so neither module imports this one (no import circle).
impl FromRef<AppState> for Arc<Tokens> {
    fn from_ref(s: &AppState) -> Self {
        s.tokens.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(s: &AppState) -> Self {
        s.metrics.clone()
    }
}

impl AppState {
    /// State with default limits and retry policy.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        tokens: Tokens,
        webhooks: Vec<String>,
    ) -> Self {
        Self::with(
            store,
            clock,
            tokens,
            webhooks,
            Limits::default(),
            RetryPolicy::default(),
        )
    }

    pub fn with(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        tokens: Tokens,
        webhooks: Vec<String>,
        limits: Limits,
        retry: RetryPolicy,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        Self {
            alerts: AlertDispatcher::new(webhooks, store.clone(), retry, metrics.clone()),
            store,
            clock,
            tokens: Arc::new(tokens),
            metrics,
            limits: Arc::new(limits),
            snapshot_cache: Arc::new(Mutex::new(None)),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
