//! The records the API exchanges and the stores keep.

use serde::{Deserialize, Serialize};

/// A budget for a tenant (`service == ""`) or for one service of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub tenant: String,
    /// Empty for the tenant-wide budget.
    pub service: String,
    pub daily_limit_micros: Option<i64>,
    pub monthly_limit_micros: Option<i64>,
    pub soft_limit_percent: u8,
    /// The tenant's fixed offset from UTC, minutes east; windows follow it.
    pub utc_offset_minutes: i32,
}

/// One spend event as validated from the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendEvent {
    pub tenant: String,
    pub service: String,
    pub route: String,
    pub provider: String,
    pub strategy: String,
    pub cost_micros: i64,
    pub baseline_micros: i64,
    pub ts_ms: i64,
    pub allowance_id: Option<String>,
    /// How many requests this event stands for: 1, or more for a sum a
    /// gateway folded when its buffer was full.
    #[serde(default = "one")]
    pub count: i64,
}

fn one() -> i64 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendBatch {
    pub batch_id: String,
    pub gateway_id: String,
    pub events: Vec<SpendEvent>,
}

/// What a store answers to an ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestOutcome {
    /// The batch id had been committed before; nothing was counted again.
    pub duplicate: bool,
    pub events: usize,
    /// Alerts that this batch fired (each fires once per window).
    pub fired: Vec<Alert>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowanceRequest {
    pub gateway_id: String,
    pub tenant: String,
    pub service: String,
    pub want_micros: i64,
    pub ttl_ms: i64,
}

/// A lease on part of a tenant's remaining budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// Absent when nothing was granted (no lease is created).
    pub allowance_id: Option<String>,
    pub tenant: String,
    pub service: String,
    pub gateway_id: String,
    pub granted_micros: i64,
    pub expires_at_ms: i64,
    /// What is left for others after this grant (null: no budget, unlimited).
    pub remaining_micros: Option<i64>,
}

/// What the snapshot carries is the shared wire definition
/// (`optimizer-wire`), read by the filter; `TenantState` is also what the
/// budget API shows.
pub use optimizer_wire::{PurgeEntry, PurgeKind, Snapshot, TenantState};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub tenant: String,
    pub service: String,
    /// `daily` or `monthly`.
    pub window: String,
    pub window_start_ms: i64,
    /// `soft` or `hard`.
    pub level: String,
    pub spent_micros: i64,
    pub limit_micros: i64,
    pub fired_at_ms: i64,
    pub delivered: bool,
    pub attempts: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Service,
    Route,
    Provider,
    Strategy,
    Tenant,
    /// Hour buckets at the report's UTC offset.
    Hour,
    /// Calendar-day buckets at the report's UTC offset.
    Day,
}

impl GroupBy {
    /// The events column rows are keyed by; `None` for time buckets.
    pub fn column(self) -> Option<&'static str> {
        match self {
            GroupBy::Service => Some("service"),
            GroupBy::Route => Some("route"),
            GroupBy::Provider => Some("provider"),
            GroupBy::Strategy => Some("strategy"),
            GroupBy::Tenant => Some("tenant"),
            GroupBy::Hour | GroupBy::Day => None,
        }
    }

    /// The width of a time bucket; `None` for column groups.
    pub fn bucket_ms(self) -> Option<i64> {
        match self {
            GroupBy::Hour => Some(3_600_000),
            GroupBy::Day => Some(crate::window::DAY_MS),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportQuery {
    /// `None`: every tenant.
    pub tenant: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: Option<GroupBy>,
    /// Minutes east of UTC that hour and day buckets start at.
    pub offset_minutes: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    /// The group's value (`"total"` when not grouped; a time bucket's
    /// start in RFC 3339 at the report's offset).
    pub key: String,
    /// A time bucket's start, unix ms (absent for other groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    pub events: i64,
    pub cost_micros: i64,
    pub baseline_micros: i64,
    pub savings_micros: i64,
}
