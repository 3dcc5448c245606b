//! `POST /v1/spend`: the filter's spend batch. The filter writes it with
//! borrowed strings (`SpendBatch<&str>`), `cost-control` reads it owned
//! (`SpendBatch<String>`) and validates every field.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::money::Micros;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct SpendBatch<S> {
    /// Kept across retries, so a batch stored twice is counted once.
    pub batch_id: S,
    pub gateway_id: S,
    pub events: Vec<SpendEvent<S>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default"))]
pub struct SpendEvent<S> {
    pub tenant: S,
    #[serde(default)]
    pub service: S,
    #[serde(default)]
    pub route: S,
    #[serde(default)]
    pub provider: S,
    /// The filter writes `"folded"` for a sum of events.
    #[serde(default)]
    pub strategy: S,
    // `deserialize_with` (of the type's own impl) so that an absent field
    // is "missing field", not the amount's own "expected ..." error.
    #[serde(deserialize_with = "Micros::deserialize")]
    pub cost_micros: Micros,
    /// Absent: the cost (nothing saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_micros: Option<Micros>,
    pub ts: Ts<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance_id: Option<S>,
    /// Requests this event stands for (a folded sum); absent: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// When an event happened: milliseconds since the epoch (what the filter
/// writes) or an RFC 3339 text (`cost-control` also accepts it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ts<S> {
    Ms(i64),
    Text(S),
}
