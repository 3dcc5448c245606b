//! SQLite schema and the synchronous queries the SQLite store runs, each on
//! a connection that is already inside the caller's transaction.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{day_buckets, new_id, StoreError, StoreResult};
use crate::budget::{crossings, state, Usage};
use crate::model::{
    Alert, Allowance, AllowanceRequest, Budget, IngestOutcome, SpendBatch, TenantState,
};
use crate::window::{day_start, month_bounds};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('version', 1);
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, utc_offset_minutes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS budgets (
  tenant TEXT NOT NULL, service TEXT NOT NULL, daily_micros INTEGER, monthly_micros INTEGER,
  soft_percent INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (tenant, service));
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL, received_ms INTEGER NOT NULL, events INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, tenant TEXT NOT NULL, service TEXT NOT NULL,
  route TEXT NOT NULL, provider TEXT NOT NULL, strategy TEXT NOT NULL, cost_micros INTEGER NOT NULL,
  baseline_micros INTEGER NOT NULL, ts_ms INTEGER NOT NULL, allowance_id TEXT,
  count INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant, ts_ms);
CREATE TABLE IF NOT EXISTS daily_spend (
  tenant TEXT NOT NULL, service TEXT NOT NULL, day_start_ms INTEGER NOT NULL,
  cost_micros INTEGER NOT NULL, baseline_micros INTEGER NOT NULL,
  PRIMARY KEY (tenant, service, day_start_ms));
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, service TEXT NOT NULL, gateway_id TEXT NOT NULL,
  granted_micros INTEGER NOT NULL, settled_micros INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_open ON leases (tenant, status, expires_ms);
CREATE TABLE IF NOT EXISTS purges (
  tenant TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, generation INTEGER NOT NULL,
  PRIMARY KEY (tenant, kind, value));
CREATE TABLE IF NOT EXISTS alerts (
  id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, service TEXT NOT NULL, window TEXT NOT NULL,
  window_start_ms INTEGER NOT NULL, level TEXT NOT NULL, spent_micros INTEGER NOT NULL,
  limit_micros INTEGER NOT NULL, fired_ms INTEGER NOT NULL, delivered INTEGER NOT NULL,
  attempts INTEGER NOT NULL, UNIQUE (tenant, service, window, window_start_ms, level));
";

/// Bring a store written by an earlier version up to this schema: events
/// gained `count` (requests a folded sum stands for). SQLite has no
/// `ADD COLUMN IF NOT EXISTS`, so look first.
pub fn migrate(c: &Connection) -> StoreResult<()> {
    let has_count = c
        .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'count'")
        .and_then(|mut s| s.exists([]))
        .map_err(err)?;
    if !has_count {
        c.execute_batch("ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1")
            .map_err(err)?;
    }
    Ok(())
}

pub fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub fn bump_version(c: &Connection) -> StoreResult<()> {
    c.prepare_cached("UPDATE meta SET v = v + 1 WHERE k = 'version'")
        .and_then(|mut s| s.execute([]))
        .map_err(err)?;
    Ok(())
}

pub fn version(c: &Connection) -> StoreResult<i64> {
    c.prepare_cached("SELECT v FROM meta WHERE k = 'version'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(err)
}

fn offset(c: &Connection, tenant: &str) -> StoreResult<i32> {
    let v = c
        .prepare_cached("SELECT utc_offset_minutes FROM tenants WHERE tenant = ?1")
        .and_then(|mut s| s.query_row([tenant], |r| r.get(0)).optional())
        .map_err(err)?;
    Ok(v.unwrap_or(0))
}

fn budget_rows(c: &Connection, tenant: Option<&str>) -> StoreResult<Vec<Budget>> {
    let mut s = c
        .prepare_cached(
            "SELECT b.tenant, b.service, b.daily_micros, b.monthly_micros, b.soft_percent,
                    COALESCE(t.utc_offset_minutes, 0)
             FROM budgets b LEFT JOIN tenants t ON t.tenant = b.tenant
             WHERE ?1 IS NULL OR b.tenant = ?1 ORDER BY b.tenant, b.service",
        )
        .map_err(err)?;
    let rows = s
        .query_map([tenant], |r| {
            Ok(Budget {
                tenant: r.get(0)?,
                service: r.get(1)?,
                daily_limit_micros: r.get(2)?,
                monthly_limit_micros: r.get(3)?,
                soft_limit_percent: super::soft_percent(r.get(4)?),
                utc_offset_minutes: r.get(5)?,
            })
        })
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

fn spent(c: &Connection, b: &Budget, from: i64, to: i64) -> StoreResult<i64> {
    c.prepare_cached(
        "SELECT COALESCE(SUM(cost_micros), 0) FROM daily_spend WHERE tenant = ?1
         AND (?2 = '' OR service = ?2) AND day_start_ms >= ?3 AND day_start_ms < ?4",
    )
    .and_then(|mut s| s.query_row(params![b.tenant, b.service, from, to], |r| r.get(0)))
    .map_err(err)
}

fn usage(c: &Connection, b: &Budget, now: i64) -> StoreResult<Usage> {
    let day = day_start(now, b.utc_offset_minutes);
    let (ms, me) = month_bounds(now, b.utc_offset_minutes);
    let outstanding: i64 = c
        .prepare_cached(
            "SELECT COALESCE(SUM(granted_micros - settled_micros), 0) FROM leases
             WHERE tenant = ?1 AND status = 'open' AND expires_ms > ?3
             AND (?2 = '' OR service = ?2)",
        )
        .and_then(|mut s| s.query_row(params![b.tenant, b.service, now], |r| r.get(0)))
        .map_err(err)?;
    Ok(Usage {
        day_spent: spent(c, b, day, day + 1)?,
        month_spent: spent(c, b, ms, me)?,
        outstanding,
    })
}

pub fn states(c: &Connection, tenant: Option<&str>, now: i64) -> StoreResult<Vec<TenantState>> {
    let mut out = Vec::new();
    for b in budget_rows(c, tenant)? {
        let u = usage(c, &b, now)?;
        out.push(state(&b, u, now));
    }
    Ok(out)
}

pub fn put_budget(c: &Connection, b: &Budget, now: i64) -> StoreResult<TenantState> {
    c.execute(
        "INSERT INTO tenants (tenant, utc_offset_minutes) VALUES (?1, ?2)
         ON CONFLICT (tenant) DO UPDATE SET utc_offset_minutes = excluded.utc_offset_minutes",
        params![b.tenant, b.utc_offset_minutes],
    )
    .map_err(err)?;
    c.execute(
        "INSERT INTO budgets (tenant, service, daily_micros, monthly_micros, soft_percent, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant, service) DO UPDATE SET
         daily_micros = excluded.daily_micros, monthly_micros = excluded.monthly_micros,
         soft_percent = excluded.soft_percent, updated_ms = excluded.updated_ms",
        params![b.tenant, b.service, b.daily_limit_micros, b.monthly_limit_micros, b.soft_limit_percent, now],
    )
    .map_err(err)?;
    bump_version(c)?;
    let u = usage(c, b, now)?;
    Ok(state(b, u, now))
}

pub fn ingest(c: &Connection, batch: &SpendBatch, now: i64) -> StoreResult<IngestOutcome> {
    let fresh = c
        .prepare_cached(
            "INSERT OR IGNORE INTO batches (batch_id, gateway_id, received_ms, events) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![batch.batch_id, batch.gateway_id, now, batch.events.len()]))
        .map_err(err)?;
    if fresh == 0 {
        return Ok(IngestOutcome {
            duplicate: true,
            events: batch.events.len(),
            fired: vec![],
        });
    }
    {
        let mut ins = c
            .prepare_cached(
                "INSERT INTO events (batch_id, tenant, service, route, provider, strategy,
                 cost_micros, baseline_micros, ts_ms, allowance_id, count)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            )
            .map_err(err)?;
        let mut settle = c
            .prepare_cached(
                "UPDATE leases SET settled_micros = MIN(granted_micros, settled_micros + ?1)
                 WHERE id = ?2 AND tenant = ?3 AND status = 'open' AND expires_ms > ?4",
            )
            .map_err(err)?;
        for e in &batch.events {
            ins.execute(params![
                batch.batch_id,
                e.tenant,
                e.service,
                e.route,
                e.provider,
                e.strategy,
                e.cost_micros,
                e.baseline_micros,
                e.ts_ms,
                e.allowance_id,
                e.count
            ])
            .map_err(err)?;
            if let Some(id) = &e.allowance_id {
                settle
                    .execute(params![e.cost_micros, id, e.tenant, now])
                    .map_err(err)?;
            }
        }
    }
    let mut offsets: HashMap<String, i32> = HashMap::new();
    for e in &batch.events {
        if !offsets.contains_key(&e.tenant) {
            offsets.insert(e.tenant.clone(), offset(c, &e.tenant)?);
        }
    }
    let buckets = day_buckets(batch, |t| offsets.get(t).copied().unwrap_or(0));
    let mut up = c
        .prepare_cached(
            "INSERT INTO daily_spend (tenant, service, day_start_ms, cost_micros, baseline_micros)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, service, day_start_ms) DO UPDATE SET
             cost_micros = cost_micros + excluded.cost_micros,
             baseline_micros = baseline_micros + excluded.baseline_micros",
        )
        .map_err(err)?;
    for ((tenant, service, day), (cost, base)) in &buckets {
        up.execute(params![tenant, service, day, cost, base])
            .map_err(err)?;
    }
    let mut fired = Vec::new();
    let mut budgets: HashMap<String, Vec<Budget>> = HashMap::new();
    for (tenant, service, day) in buckets.keys() {
        if !budgets.contains_key(tenant) {
            budgets.insert(tenant.clone(), budget_rows(c, Some(tenant))?);
        }
        let applicable = budgets.get(tenant).into_iter().flatten();
        for b in applicable.filter(|b| b.service.is_empty() || &b.service == service) {
            let (ms, me) = month_bounds(*day, b.utc_offset_minutes);
            let (ds, msp) = (spent(c, b, *day, day + 1)?, spent(c, b, ms, me)?);
            for x in crossings(b, *day, ds, msp) {
                let n = c
                    .prepare_cached(
                        "INSERT OR IGNORE INTO alerts (tenant, service, window, window_start_ms, level,
                         spent_micros, limit_micros, fired_ms, delivered, attempts)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![b.tenant, b.service, x.window, x.window_start_ms, x.level, x.spent, x.limit, now])
                    })
                    .map_err(err)?;
                if n == 1 {
                    fired.push(Alert {
                        id: c.last_insert_rowid(),
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
    bump_version(c)?;
    Ok(IngestOutcome {
        duplicate: false,
        events: batch.events.len(),
        fired,
    })
}

pub fn grant(c: &Connection, req: &AllowanceRequest, now: i64) -> StoreResult<Allowance> {
    let applicable: Vec<Budget> = budget_rows(c, Some(&req.tenant))?
        .into_iter()
        .filter(|b| b.service.is_empty() || b.service == req.service)
        .collect();
    let mut left: Option<i64> = None;
    for b in &applicable {
        let r = crate::budget::remaining(b, usage(c, b, now)?);
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
        c.execute(
            "INSERT INTO leases (id, tenant, service, gateway_id, granted_micros, settled_micros,
             created_ms, expires_ms, status) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, 'open')",
            params![
                lease,
                req.tenant,
                req.service,
                req.gateway_id,
                granted,
                now,
                expires
            ],
        )
        .map_err(err)?;
        bump_version(c)?;
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

pub fn release(c: &Connection, id: &str, now: i64) -> StoreResult<i64> {
    let row: Option<(i64, String, i64)> = c
        .query_row(
            "SELECT granted_micros - settled_micros, status, expires_ms FROM leases WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(err)?;
    let Some((unused, status, expires)) = row else {
        return Err(StoreError::NotFound("allowance"));
    };
    if status != "open" || expires <= now {
        return Ok(0);
    }
    c.execute("UPDATE leases SET status = 'released' WHERE id = ?1", [id])
        .map_err(err)?;
    bump_version(c)?;
    Ok(unused)
}

pub fn expire(c: &Connection, now: i64) -> StoreResult<u64> {
    let n = c
        .execute(
            "UPDATE leases SET status = 'expired' WHERE status = 'open' AND expires_ms <= ?1",
            [now],
        )
        .map_err(err)?;
    if n > 0 {
        bump_version(c)?;
    }
    Ok(n as u64)
}
