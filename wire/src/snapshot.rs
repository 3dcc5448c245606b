//! `GET /v1/snapshot`: budget states and purge generations. `cost-control`
//! writes `Snapshot` (its default type parameters); the filter reads only
//! the version and the purges, each purge on its own so that one it cannot
//! read (a kind this build does not know) holds up no other.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot<T = Vec<TenantState>, P = PurgeEntry> {
    pub version: String,
    #[serde(default)]
    pub generated_at_ms: i64,
    /// The filter skips them (`serde::de::IgnoredAny`): budgets reach it
    /// through leases.
    #[serde(default)]
    pub tenants: T,
    #[serde(default = "Vec::new")]
    pub purges: Vec<P>,
}

/// Budget state as the snapshot and the budget API show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    pub tenant: String,
    pub service: String,
    pub daily_limit_micros: Option<i64>,
    pub monthly_limit_micros: Option<i64>,
    pub soft_limit_percent: u8,
    pub utc_offset_minutes: i32,
    pub daily_spent_micros: i64,
    pub monthly_spent_micros: i64,
    pub outstanding_micros: i64,
    pub remaining_micros: i64,
    pub soft: bool,
    pub hard: bool,
    pub day_ends_at_ms: i64,
    pub month_ends_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PurgeKind {
    Prefix,
    Tag,
    Key,
}

impl PurgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::Prefix => "prefix",
            PurgeKind::Tag => "tag",
            PurgeKind::Key => "key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prefix" => Some(PurgeKind::Prefix),
            "tag" => Some(PurgeKind::Tag),
            "key" => Some(PurgeKind::Key),
            _ => None,
        }
    }
}

/// The latest generation of a tenant's prefix, tag or key. The filter
/// reads the kind as text (`PurgeEntry<String>`, then [`PurgeKind::parse`]):
/// smaller in the wasm than an enum read from JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeEntry<K = PurgeKind> {
    pub tenant: String,
    pub kind: K,
    pub value: String,
    pub generation: i64,
}
