//! `demo-api`: a fake priced HTTP API.
//!
//! It stands in for a paid upstream (every request is a billable "call")
//! in the gateway's end-to-end tests, the demo and the benchmarks. Every
//! answer carries the server's call sequence number, so a test can tell a
//! cached answer from a fresh one, and `/__calls` reports how many calls
//! actually reached the upstream. Faults (latency, errors, resets, garbage,
//! truncated batches) are installed at run time through `/__faults`.
//!
//! The router is exposed as [`app`] so tests can drive it in process; the
//! binary wires it to a socket with [`server::serve`].

pub mod api;
pub mod app;
pub mod batch;
pub mod chat;
pub mod counters;
pub mod echo;
pub mod faults;
pub mod graphql;
pub mod query;
pub mod resource;
pub mod respond;
pub mod server;

use std::sync::Arc;

pub use app::app;
pub use counters::Counters;
pub use faults::Faults;

/// Shared state of one demo-api server: who it pretends to be, what it
/// counted and which faults are installed.
#[derive(Clone)]
pub struct AppState {
    /// Provider name reported in every answer (`--provider`).
    pub provider: Arc<str>,
    /// Call counters reported by `GET /__calls`.
    pub counters: Arc<Counters>,
    /// Fault rules installed by `POST /__faults`.
    pub faults: Arc<Faults>,
}

impl AppState {
    /// Fresh state with zeroed counters and no faults.
    pub fn new(provider: &str) -> Self {
        Self {
            provider: Arc::from(provider),
            counters: Arc::new(Counters::default()),
            faults: Arc::new(Faults::default()),
        }
    }
}
