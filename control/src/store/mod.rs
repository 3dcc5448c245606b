//! The storage trait and its two implementations: SQLite (embedded default,
//! one file in WAL mode) and PostgreSQL (several replicas, one ledger).
//!
//! Every mutating operation is one transaction that also bumps the state
//! version the snapshot reports, so a snapshot with an unchanged version is
//! unchanged (apart from the clock; see `api::snapshot`).

pub mod postgres;
mod postgres_reads;
mod postgres_sql;
pub mod sqlite;
mod sqlite_reads;
mod sqlite_sql;

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{
    Alert, Allowance, AllowanceRequest, Budget, IngestOutcome, PurgeEntry, PurgeKind, ReportQuery,
    ReportRow, Snapshot, SpendBatch, TenantState,
};
use crate::window::format_time;

#[derive(Debug)]
pub enum StoreError {
    /// The store could not be reached or failed; the message is for logs only.
    Backend(String),
    /// The request refers to something that does not exist.
    NotFound(&'static str),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Backend(m) => write!(f, "store error: {m}"),
            StoreError::NotFound(what) => write!(f, "{what} not found"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the store answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Creates or replaces a budget; the utc offset applies to the whole tenant.
    async fn put_budget(&self, budget: Budget, now_ms: i64) -> StoreResult<TenantState>;
    /// Budgets with their current state, of one tenant or of all.
    async fn budgets(&self, tenant: Option<&str>, now_ms: i64) -> StoreResult<Vec<TenantState>>;
    /// Commits a batch durably before returning; a known batch id is a no-op.
    async fn ingest(&self, batch: SpendBatch, now_ms: i64) -> StoreResult<IngestOutcome>;
    /// Grants at most what every applicable budget has left, as a lease.
    async fn grant(&self, req: AllowanceRequest, now_ms: i64) -> StoreResult<Allowance>;
    /// Returns a lease's unused part to the pool; answers the amount returned.
    async fn release(&self, allowance_id: &str, now_ms: i64) -> StoreResult<i64>;
    /// Marks leases past their expiry as expired; answers how many.
    async fn expire_leases(&self, now_ms: i64) -> StoreResult<u64>;
    /// The current state version (cheap).
    async fn version(&self) -> StoreResult<i64>;
    /// All budget states and purge generations, consistent with `version`.
    /// The returned snapshot's `version` is the store version as a string.
    async fn snapshot(&self, now_ms: i64) -> StoreResult<Snapshot>;
    /// Bumps the generation of a tenant's prefix, tag or key.
    async fn purge(&self, tenant: &str, kind: PurgeKind, value: &str) -> StoreResult<PurgeEntry>;
    /// Fired alerts, newest first.
    async fn alerts(&self, tenant: Option<&str>, limit: i64) -> StoreResult<Vec<Alert>>;
    /// Records a delivery attempt's outcome.
    async fn alert_attempted(&self, id: i64, attempts: i32, delivered: bool) -> StoreResult<()>;
    /// Cost, baseline and savings over `[from, to)`, of one tenant or of all,
    /// grouped by a column or by hour or day buckets.
    async fn report(&self, q: ReportQuery) -> StoreResult<Vec<ReportRow>>;
}

/// Opens `sqlite:PATH` or `postgres://...`.
pub async fn open(spec: &str) -> StoreResult<Arc<dyn Store>> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(path)?))
    } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PostgresStore::connect(spec, None).await?,
        ))
    } else {
        Err(StoreError::Backend(format!(
            "unknown store {spec:?}: use sqlite:PATH or postgres://..."
        )))
    }
}

/// A budget row's soft-limit percent as stored, clamped to 0..=100 (a row
/// written by hand or by an older version may hold anything; both stores
/// read it through here so they cannot disagree).
pub(crate) fn soft_percent(stored: i64) -> u8 {
    stored.clamp(0, 100) as u8
}

/// A fresh random id (128 bits, hex) for leases.
pub fn new_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// A spend report's query for both dialects. The key is `'total'`, a
/// column, or a time bucket's start: `ts_ms` less its (euclidean) remainder
/// at the offset, which SQLite and PostgreSQL compute alike (both truncate
/// `%` towards zero). Bound parameters: `p(1)` the tenant (only when
/// given), then from and to. `text` is the dialect's text literal of
/// `'total'`, `sum` wraps an aggregate (PostgreSQL's SUM of BIGINT is a
/// NUMERIC).
pub(crate) fn report_sql(
    q: &ReportQuery,
    p: impl Fn(usize) -> String,
    text: &str,
    sum: impl Fn(&str) -> String,
) -> String {
    let key = match q.group_by {
        None => text.to_owned(),
        Some(g) => match (g.column(), g.bucket_ms()) {
            (Some(col), _) => col.to_owned(),
            (None, Some(w)) => {
                // Integers of ours (an offset within ±14 h), not input text.
                let off = i64::from(q.offset_minutes) * 60_000;
                format!("ts_ms - (((ts_ms + {off}) % {w}) + {w}) % {w}")
            }
            (None, None) => text.to_owned(),
        },
    };
    let (tenant, first) = match q.tenant {
        Some(_) => (format!("tenant = {} AND ", p(1)), 2),
        None => (String::new(), 1),
    };
    format!(
        "SELECT {key}, {}, {}, {} FROM events WHERE {tenant}ts_ms >= {} AND ts_ms < {} GROUP BY 1 ORDER BY 1",
        sum("count"),
        sum("cost_micros"),
        sum("baseline_micros"),
        p(first),
        p(first + 1),
    )
}

/// A report row from its key (text) or bucket start, and its sums.
pub(crate) fn report_row(
    q: &ReportQuery,
    key: Result<String, i64>,
    events: i64,
    cost: i64,
    base: i64,
) -> ReportRow {
    let (key, start_ms) = match key {
        Ok(k) => (k, None),
        Err(start) => (format_time(start, q.offset_minutes), Some(start)),
    };
    ReportRow {
        key,
        start_ms,
        events,
        cost_micros: cost,
        baseline_micros: base,
        savings_micros: base - cost,
    }
}

/// Whether a report's key is a time bucket (an integer column).
pub(crate) fn report_by_time(q: &ReportQuery) -> bool {
    q.group_by.and_then(|g| g.bucket_ms()).is_some()
}
