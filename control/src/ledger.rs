//! The ledger's rules, once for every store: idempotent ingest by batch id,
//! day and month windows, grants bounded by what every applicable budget
//! has left after outstanding leases, release, expiry, and soft/hard alert
//! crossing (once per window).
//!
//! A store implements [`LedgerTx`]: a handful of primitive queries that run
//! inside the transaction the store opened (each a few lines of SQL in its
//! dialect) and nothing else. The store's `Store` methods open a transaction
//! and call the functions here. Adding a store is one file of SQL that
//! implements this trait, plus its line in the test macro's `Backend::ALL`.

use std::collections::{BTreeMap, HashMap};

use crate::budget::{crossings, remaining, state, Crossing, Usage};
use crate::model::{
    Alert, Allowance, AllowanceRequest, Budget, IngestOutcome, SpendBatch, TenantState,
};
use crate::store::{new_id, StoreError, StoreResult};
use crate::window::{day_start, month_bounds};

/// A lease as `release` needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    /// granted − settled.
    pub unused: i64,
    /// `open`, `released` or `expired`.
    pub status: String,
    pub expires_ms: i64,
}

/// The primitive queries of one store, run inside one open transaction.
/// None of them decides anything: every rule lives in this module.
#[allow(async_fn_in_trait)] // implemented and awaited inside the crate only
pub trait LedgerTx {
    /// Serializes budget arithmetic for a tenant until the transaction ends
    /// (a no-op where a single writer already does).
    async fn lock_tenant(&self, tenant: &str) -> StoreResult<()>;
    /// Budget rows (with their tenant's offset) of one tenant or all, in
    /// (tenant, service) order; the soft percent through `store::soft_percent`.
    async fn budget_rows(&self, tenant: Option<&str>) -> StoreResult<Vec<Budget>>;
    /// A tenant's UTC offset in minutes (0 if it has no budget).
    async fn tenant_offset(&self, tenant: &str) -> StoreResult<i32>;
    /// Cost in `daily_spend` of a budget's tenant (and service, unless the
    /// budget's service is empty) over day starts in `[from, to)`.
    async fn sum_spent(&self, b: &Budget, from: i64, to: i64) -> StoreResult<i64>;
    /// granted − settled over a budget's open leases not expired at `now`.
    async fn sum_outstanding(&self, b: &Budget, now: i64) -> StoreResult<i64>;
    /// Upserts the tenant's offset and the budget row.
    async fn upsert_budget(&self, b: &Budget, now: i64) -> StoreResult<()>;
    /// Records a batch id; false if it was already recorded.
    async fn insert_batch(&self, batch: &SpendBatch, now: i64) -> StoreResult<bool>;
    /// Inserts every event of the batch.
    async fn insert_events(&self, batch: &SpendBatch) -> StoreResult<()>;
    /// Adds `cost` to an open, unexpired lease's settled amount, at most up
    /// to what it granted.
    async fn settle(&self, lease: &str, tenant: &str, cost: i64, now: i64) -> StoreResult<()>;
    /// Adds to a (tenant, service, day) row of `daily_spend`.
    async fn add_daily(&self, key: &(String, String, i64), cost: i64, base: i64)
        -> StoreResult<()>;
    /// Inserts an alert unless that (budget, window, level) has one; answers
    /// the new id.
    async fn insert_alert_if_new(
        &self,
        b: &Budget,
        x: &Crossing,
        now: i64,
    ) -> StoreResult<Option<i64>>;
    /// Inserts an open lease.
    async fn insert_lease(
        &self,
        id: &str,
        req: &AllowanceRequest,
        granted: i64,
        now: i64,
        expires: i64,
    ) -> StoreResult<()>;
    /// A lease, locked for the rest of the transaction where that matters.
    async fn lease(&self, id: &str) -> StoreResult<Option<LeaseRow>>;
    /// Marks a lease released.
    async fn mark_released(&self, id: &str) -> StoreResult<()>;
    /// Marks open leases with `expires_ms <= now` expired; answers how many.
    async fn mark_expired(&self, now: i64) -> StoreResult<u64>;
    /// Bumps the state version the snapshot reports.
    async fn bump_version(&self) -> StoreResult<()>;
}

/// Spend and outstanding leases that apply to a budget at `now`.
pub async fn usage(t: &impl LedgerTx, b: &Budget, now: i64) -> StoreResult<Usage> {
    let day = day_start(now, b.utc_offset_minutes);
    let (ms, me) = month_bounds(now, b.utc_offset_minutes);
    Ok(Usage {
        day_spent: t.sum_spent(b, day, day + 1).await?,
        month_spent: t.sum_spent(b, ms, me).await?,
        outstanding: t.sum_outstanding(b, now).await?,
    })
}

/// Budget states of one tenant or of all.
pub async fn states(
    t: &impl LedgerTx,
    tenant: Option<&str>,
    now: i64,
) -> StoreResult<Vec<TenantState>> {
    let mut out = Vec::new();
    for b in t.budget_rows(tenant).await? {
        let u = usage(t, &b, now).await?;
        out.push(state(&b, u, now));
    }
    Ok(out)
}

pub async fn put_budget(t: &impl LedgerTx, b: &Budget, now: i64) -> StoreResult<TenantState> {
    t.lock_tenant(&b.tenant).await?;
    t.upsert_budget(b, now).await?;
    t.bump_version().await?;
    let u = usage(t, b, now).await?;
    Ok(state(b, u, now))
}

/// Sums events per (tenant, service, day window) so a batch touches few
/// aggregate rows. `offset` gives each tenant's UTC offset.
pub fn day_buckets(
    batch: &SpendBatch,
    offset: impl Fn(&str) -> i32,
) -> BTreeMap<(String, String, i64), (i64, i64)> {
    let mut out = BTreeMap::new();
    for e in &batch.events {
        let day = day_start(e.ts_ms, offset(&e.tenant));
        let slot = out
            .entry((e.tenant.clone(), e.service.clone(), day))
            .or_insert((0_i64, 0_i64));
        slot.0 += e.cost_micros;
        slot.1 += e.baseline_micros;
    }
    out
}

/// Commits a batch once: a known batch id counts nothing again. Settles the
/// leases its events name, adds to the day totals, and fires each alert a
/// touched window crossed for the first time.
pub async fn ingest(t: &impl LedgerTx, batch: &SpendBatch, now: i64) -> StoreResult<IngestOutcome> {
    let mut tenants: Vec<&str> = batch.events.iter().map(|e| e.tenant.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    // Sorted, so two batches never wait on each other's locks in a circle.
    for tenant in &tenants {
        t.lock_tenant(tenant).await?;
    }
    if !t.insert_batch(batch, now).await? {
        return Ok(IngestOutcome {
            duplicate: true,
            events: batch.events.len(),
            fired: vec![],
        });
    }
    t.insert_events(batch).await?;
    for e in &batch.events {
        if let Some(id) = &e.allowance_id {
            t.settle(id, &e.tenant, e.cost_micros, now).await?;
        }
    }
    let mut offsets: HashMap<&str, i32> = HashMap::new();
    for tenant in &tenants {
        offsets.insert(tenant, t.tenant_offset(tenant).await?);
    }
    let buckets = day_buckets(batch, |x| offsets.get(x).copied().unwrap_or(0));
    for (key, (cost, base)) in &buckets {
        t.add_daily(key, *cost, *base).await?;
    }
    let mut fired = Vec::new();
    let mut budgets: HashMap<&str, Vec<Budget>> = HashMap::new();
    for (tenant, service, day) in buckets.keys() {
        if !budgets.contains_key(tenant.as_str()) {
            budgets.insert(tenant, t.budget_rows(Some(tenant)).await?);
        }
        let applicable = budgets.get(tenant.as_str()).into_iter().flatten();
        for b in applicable.filter(|b| b.service.is_empty() || &b.service == service) {
            let (ms, me) = month_bounds(*day, b.utc_offset_minutes);
            let day_spent = t.sum_spent(b, *day, day + 1).await?;
            let month_spent = t.sum_spent(b, ms, me).await?;
            for x in crossings(b, *day, day_spent, month_spent) {
                if let Some(id) = t.insert_alert_if_new(b, &x, now).await? {
                    fired.push(Alert {
                        id,
                        tenant: b.tenant.clone(),
                        service: b.service.clone(),
                        window: x.window.into(),
                        window_start_ms: x.window_start_ms,
                        level: x.level.into(),
                        spent_micros: x.spent,
                        limit_micros: x.limit,
                        fired_at_ms: now,
                        delivered: false,
                        attempts: 0,
                    });
                }
            }
        }
    }
    t.bump_version().await?;
    Ok(IngestOutcome {
        duplicate: false,
        events: batch.events.len(),
        fired,
    })
}

/// Grants at most what every applicable budget (the tenant-wide one and the
/// service's) has left after spend and outstanding leases, as a lease.
pub async fn grant(t: &impl LedgerTx, req: &AllowanceRequest, now: i64) -> StoreResult<Allowance> {
    t.lock_tenant(&req.tenant).await?;
    let applicable: Vec<Budget> = t
        .budget_rows(Some(&req.tenant))
        .await?
        .into_iter()
        .filter(|b| b.service.is_empty() || b.service == req.service)
        .collect();
    let mut left: Option<i64> = None;
    for b in &applicable {
        let r = remaining(b, usage(t, b, now).await?);
        left = Some(left.map_or(r, |l: i64| l.min(r)));
    }
    let granted = match left {
        Some(l) => req.want_micros.min(l.max(0)),
        None => req.want_micros,
    };
    let expires = now + req.ttl_ms;
    let mut id = None;
    if granted > 0 {
        let lease = new_id();
        t.insert_lease(&lease, req, granted, now, expires).await?;
        t.bump_version().await?;
        id = Some(lease);
    }
    Ok(Allowance {
        allowance_id: id,
        tenant: req.tenant.clone(),
        service: req.service.clone(),
        gateway_id: req.gateway_id.clone(),
        granted_micros: granted,
        expires_at_ms: expires,
        remaining_micros: left.map(|l| (l - granted).max(0)),
    })
}

/// Returns an open lease's unused part to the pool; a lease already
/// released or expired returns nothing.
pub async fn release(t: &impl LedgerTx, id: &str, now: i64) -> StoreResult<i64> {
    let Some(lease) = t.lease(id).await? else {
        return Err(StoreError::NotFound("allowance"));
    };
    if lease.status != "open" || lease.expires_ms <= now {
        return Ok(0);
    }
    t.mark_released(id).await?;
    t.bump_version().await?;
    Ok(lease.unused)
}

/// Marks leases past their expiry expired; answers how many.
pub async fn expire(t: &impl LedgerTx, now: i64) -> StoreResult<u64> {
    let n = t.mark_expired(now).await?;
    if n > 0 {
        t.bump_version().await?;
    }
    Ok(n)
}
