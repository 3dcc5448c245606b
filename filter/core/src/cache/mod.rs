//! The response cache (DESIGN.md step 3): two tiers (per-worker L1, shared
//! L2), RFC 9111 storage rules, stale-while-revalidate, stale-if-error,
//! early refresh (XFetch), invalidation by generation counters.
//!
//! `request::on_request` decides at request headers (hit, forward, bypass);
//! the `Forward` it returns travels with the exchange and, in `response`,
//! decides at response headers whether to store, then collects the body.

pub mod adaptive;
pub mod conditional;
pub mod control;
pub mod entry;
pub mod generations;
pub mod http_date;
pub mod key;
pub mod l1;
pub mod l2;
pub mod purges;
pub mod range;
pub mod reply;
pub mod request;
pub mod response;
pub mod snapshot;

use crate::config::Config;
use crate::host::{Host, HostError};

pub use request::{on_request, Forward, Outcome};

/// Per-worker cache state.
#[derive(Debug, Default)]
pub struct CacheState {
    pub l1: l1::L1,
    pub gens: generations::Generations,
    /// Indexed like `Config::routes`.
    pub adaptive: Vec<adaptive::Volatility>,
    /// This worker's poll of `cost-control` for purges.
    pub purges: purges::Poller,
    /// Background refreshes queued and in flight.
    pub refreshes: crate::pipeline::cache_refresh::Refreshes,
}

impl CacheState {
    pub fn new(config: &Config) -> Self {
        let s = &config.cache_store;
        CacheState {
            l1: l1::L1::new(s.l1_max_entries, s.l1_max_bytes),
            gens: generations::Generations::default(),
            adaptive: vec![adaptive::Volatility::default(); config.routes.len()],
            purges: purges::Poller::default(),
            refreshes: Default::default(),
        }
    }
}

/// Create the shared tables (once per gateway; later calls find them).
pub fn create_tables(config: &Config, host: &mut impl Host) -> Result<(), HostError> {
    if !config.routes.iter().any(|r| r.cache.is_some()) {
        return Ok(());
    }
    generations::Generations::create(host, config.cache_store.generation_slots)?;
    if purges::polling(config).is_some() {
        purges::create(host, config.cache_store.generation_slots)?;
    }
    l2::create(host, &config.cache_store)
}

/// How a cached or forwarded response is labelled (`x-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Hit,
    Stale,
    Miss,
    Bypass,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Hit => "HIT",
            Label::Stale => "STALE",
            Label::Miss => "MISS",
            Label::Bypass => "BYPASS",
        }
    }
}

/// The RFC 9211 `fwd` parameter: why the cache went upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    Miss,
    /// The request's own directives (`no-cache`, `max-age=0`).
    Request,
    /// Refreshing a stale or nearly expired entry.
    Stale,
    Bypass,
    /// A method the cache does not store (a write).
    Method,
}

impl Fwd {
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::Miss => "miss",
            Fwd::Request => "request",
            Fwd::Stale => "stale",
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
        }
    }
}

/// Name of the cache in `cache-status` (RFC 9211).
pub const CACHE_NAME: &str = "cost-optimizer";
