//! Request batching (issue 5), the pure part: small requests gathered
//! during a short window travel upstream as one call, and each client is
//! answered from its part of the answer.
//!
//! - `codec`: the member and answer types, the REST envelope and GraphQL
//!   array formats ([`encode`] / [`decode`]), and [`batchable`] /
//!   [`batchable_as`], which the caller asks before a request joins.
//! - `window`: the adaptive window policy ([`window_ms`]) over a
//!   per-worker request rate ([`Rate`]).
//!
//! Sizes and counts are bounded by the caller; everything here accepts any
//! input without panicking.

pub mod codec;
pub mod window;

pub use codec::{batchable, batchable_as, decode, encode, member_id, Format, Member, MemberAnswer};
pub use window::{window_ms, Policy, Rate};
