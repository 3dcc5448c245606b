//! Smart routing across providers, the pure part. A rule lists 1..=8
//! providers of the same API; each request tries them in an order chosen
//! by a strategy, skipping those whose circuit breaker is open, and each
//! response feeds that provider's health, which all workers share.
//!
//! - `breaker`: [`BreakerConfig`], [`State`], [`Transition`], [`Claim`]
//!   and the state machine [`Breaker`] (Closed / Open / HalfOpen with a
//!   bounded number of probes).
//! - `health`: [`Provider`] (breaker + success rate + latency estimates)
//!   and [`Table`], the versioned fixed-size record of a rule's providers.
//! - `choose`: [`Strategy`], [`Candidate`], and [`order`].
//! - `table`: the rule's table in shared data (`cost_optimizer/r/h/{rule}`),
//!   with `create`, `pick` (order walk + claim in one CAS), `record` and
//!   `read`.
//!
//! Typical use: `order(..)` with the health from `table::read`, then
//! `table::pick` (on `Err`, route to `order[0]` without a claim; on
//! `Ok(None)`, every provider is open), and on the response
//! `table::record` with the claim and the time since the pick.

pub mod breaker;
pub mod choose;
pub mod health;
pub mod table;

pub use breaker::{Breaker, BreakerConfig, Claim, State, Transition, MAX_PROBES};
pub use choose::{order, Candidate, Strategy};
pub use health::{Provider, Table, MAX_PROVIDERS, MIN_SAMPLES};
