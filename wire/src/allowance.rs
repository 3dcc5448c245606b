//! `POST /v1/allowances`: a gateway asks for a lease on part of a
//! tenant's remaining budget, and `cost-control` answers with the grant
//! and the budget's state after it.

use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::money::Micros;

/// The request. The filter writes it with borrowed strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize + AsRef<str>",
    deserialize = "S: Deserialize<'de> + Default"
))]
pub struct AllowanceRequest<S> {
    pub gateway_id: S,
    pub tenant: S,
    /// Empty (or absent): the lease is bounded by the tenant-wide budget only.
    #[serde(default, skip_serializing_if = "crate::is_empty")]
    pub service: S,
    // `deserialize_with` (of the type's own impl) so that an absent field
    // is "missing field", not the amount's own "expected ..." error.
    #[serde(deserialize_with = "Micros::deserialize")]
    pub want_micros: Micros,
    /// Absent: `cost-control`'s default lease TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u32>,
}

/// The answer. The fields the filter does not use have defaults, so it
/// reads an answer that lacks them, and it skips the names
/// (`AllowanceGrant<serde::de::IgnoredAny>`, smaller in the wasm).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowanceGrant<S = String> {
    /// Absent when nothing was granted (no lease is created).
    #[serde(default)]
    pub allowance_id: Option<String>,
    #[serde(default)]
    pub tenant: S,
    #[serde(default)]
    pub service: S,
    #[serde(default)]
    pub gateway_id: S,
    pub granted_micros: i64,
    #[serde(default)]
    pub expires_at_ms: i64,
    /// What is left for others after this grant (null: no budget, unlimited).
    #[serde(default)]
    pub remaining_micros: Option<i64>,
    /// A budget bounding this lease crossed its soft limit.
    #[serde(default)]
    pub soft: bool,
    /// A budget bounding this lease is spent.
    #[serde(default)]
    pub hard: bool,
}
