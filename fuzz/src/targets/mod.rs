//! The targets, by where their bytes come from.

pub mod bodies;
pub mod control;
pub mod exchange;
pub mod http;
pub mod shared;
