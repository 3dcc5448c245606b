//! Cost accounting and budgets (DESIGN.md steps 5 and 8): what a request
//! cost and would have cost ([`model`]), the per-worker buffer of spend
//! events for `cost-control` ([`spend`]), the gateway's share of each
//! tenant's budget in shared data ([`budget`]) and a worker's slices of it
//! ([`budget_slice`]).

pub mod budget;
mod budget_record;
pub mod budget_slice;
pub mod model;
pub mod spend;
pub mod stream_usage;
