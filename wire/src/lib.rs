//! The JSON that crosses between the filter (`optimizer-core`, inside the
//! gateway) and `cost-control`, defined once. The filter encodes with these
//! types and `cost-control` decodes with the same ones, so renaming a field
//! on one side does not compile on the other.
//!
//! Each side keeps its own checks on top: `cost-control` bounds lengths and
//! ranges and answers `{"error","field"}` 400s; the filter reads
//! `cost-control`'s answers leniently (defaults for what it does not use).
//!
//! `no_std` + `alloc` with serde only: the filter is a wasm module whose
//! size is watched, and nothing here needs more.

#![no_std]

extern crate alloc;

pub mod civil;
pub mod decimal;
pub mod money;

mod allowance;
mod snapshot;
mod spend;
mod spend_json;

pub use allowance::{AllowanceGrant, AllowanceRequest};
pub use money::Micros;
pub use snapshot::{PurgeEntry, PurgeKind, Snapshot, TenantState};
pub use spend::{SpendBatch, SpendEvent, Ts};

/// `skip_serializing_if` for string fields that are absent when empty.
fn is_empty<S: AsRef<str>>(s: &S) -> bool {
    s.as_ref().is_empty()
}

#[cfg(test)]
mod tests;
