//! cost-control: budgets and the spend ledger for the API-cost optimizer
//! (issue 7). The library holds the HTTP API ([`app`]), the storage trait
//! and its SQLite and PostgreSQL implementations; `main.rs` is a thin binary.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod budget;
pub mod clock;
pub mod config;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod money;
pub mod openapi;
pub mod spill;
pub mod state;
pub mod store;
pub mod ui;
pub mod window;

pub use state::AppState;
pub use store::Store;

/// The HTTP application: every API route, with auth, limits and metrics,
/// and the dashboard (`/ui/`, see [`ui`]).
pub fn app(state: AppState) -> axum::Router {
    api::router(state).merge(ui::router())
}
