//! Cost accounting and budgets (DESIGN.md steps 5 and 8): what a request
//! cost and would have cost ([`model`]), the per-worker buffer of spend
//! events for `cost-control` ([`spend`]), and the gateway's share of each
//! tenant's budget in shared data ([`budget`]).

pub mod budget;
mod budget_record;
pub mod model;
pub mod spend;
pub mod stream_usage;
