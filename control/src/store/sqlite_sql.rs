//! SQLite schema and the ledger's primitive queries in SQLite's dialect,
//! each on a connection already inside the caller's transaction. The rules
//! are in `crate::ledger`. These never await anything: the store runs them
//! on its writer thread with `sqlite::now`.

use rusqlite::{params, Connection, OptionalExtension};

use super::{soft_percent, StoreError, StoreResult};
use crate::budget::Crossing;
use crate::ledger::{LeaseRow, LedgerTx};
use crate::model::{AllowanceRequest, Budget, SpendBatch};

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

impl LedgerTx for Connection {
    async fn lock_tenant(&self, _tenant: &str) -> StoreResult<()> {
        // One writer thread runs every write: already serialized.
        Ok(())
    }

    async fn budget_rows(&self, tenant: Option<&str>) -> StoreResult<Vec<Budget>> {
        let mut s = self
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
                    soft_limit_percent: soft_percent(r.get(4)?),
                    utc_offset_minutes: r.get(5)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    async fn tenant_offset(&self, tenant: &str) -> StoreResult<i32> {
        let v = self
            .prepare_cached("SELECT utc_offset_minutes FROM tenants WHERE tenant = ?1")
            .and_then(|mut s| s.query_row([tenant], |r| r.get(0)).optional())
            .map_err(err)?;
        Ok(v.unwrap_or(0))
    }

    async fn sum_spent(&self, b: &Budget, from: i64, to: i64) -> StoreResult<i64> {
        self.prepare_cached(
            "SELECT COALESCE(SUM(cost_micros), 0) FROM daily_spend WHERE tenant = ?1
             AND (?2 = '' OR service = ?2) AND day_start_ms >= ?3 AND day_start_ms < ?4",
        )
        .and_then(|mut s| s.query_row(params![b.tenant, b.service, from, to], |r| r.get(0)))
        .map_err(err)
    }

    async fn sum_outstanding(&self, b: &Budget, now: i64) -> StoreResult<i64> {
        self.prepare_cached(
            "SELECT COALESCE(SUM(granted_micros - settled_micros), 0) FROM leases
             WHERE tenant = ?1 AND status = 'open' AND expires_ms > ?3
             AND (?2 = '' OR service = ?2)",
        )
        .and_then(|mut s| s.query_row(params![b.tenant, b.service, now], |r| r.get(0)))
        .map_err(err)
    }

    async fn upsert_budget(&self, b: &Budget, now: i64) -> StoreResult<()> {
        self.execute(
            "INSERT INTO tenants (tenant, utc_offset_minutes) VALUES (?1, ?2)
             ON CONFLICT (tenant) DO UPDATE SET utc_offset_minutes = excluded.utc_offset_minutes",
            params![b.tenant, b.utc_offset_minutes],
        )
        .map_err(err)?;
        self.execute(
            "INSERT INTO budgets (tenant, service, daily_micros, monthly_micros, soft_percent, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (tenant, service) DO UPDATE SET
             daily_micros = excluded.daily_micros, monthly_micros = excluded.monthly_micros,
             soft_percent = excluded.soft_percent, updated_ms = excluded.updated_ms",
            params![b.tenant, b.service, b.daily_limit_micros, b.monthly_limit_micros, b.soft_limit_percent, now],
        )
        .map_err(err)?;
        Ok(())
    }

    async fn insert_batch(&self, batch: &SpendBatch, now: i64) -> StoreResult<bool> {
        let n = self
            .prepare_cached(
                "INSERT OR IGNORE INTO batches (batch_id, gateway_id, received_ms, events) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![batch.batch_id, batch.gateway_id, now, batch.events.len()]))
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn insert_events(&self, batch: &SpendBatch) -> StoreResult<()> {
        let mut ins = self
            .prepare_cached(
                "INSERT INTO events (batch_id, tenant, service, route, provider, strategy,
                 cost_micros, baseline_micros, ts_ms, allowance_id, count)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
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
        }
        Ok(())
    }

    async fn settle(&self, lease: &str, tenant: &str, cost: i64, now: i64) -> StoreResult<()> {
        self.prepare_cached(
            "UPDATE leases SET settled_micros = MIN(granted_micros, settled_micros + ?1)
             WHERE id = ?2 AND tenant = ?3 AND status = 'open' AND expires_ms > ?4",
        )
        .and_then(|mut s| s.execute(params![cost, lease, tenant, now]))
        .map_err(err)?;
        Ok(())
    }

    async fn add_daily(
        &self,
        (tenant, service, day): &(String, String, i64),
        cost: i64,
        base: i64,
    ) -> StoreResult<()> {
        self.prepare_cached(
            "INSERT INTO daily_spend (tenant, service, day_start_ms, cost_micros, baseline_micros)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, service, day_start_ms) DO UPDATE SET
             cost_micros = cost_micros + excluded.cost_micros,
             baseline_micros = baseline_micros + excluded.baseline_micros",
        )
        .and_then(|mut s| s.execute(params![tenant, service, day, cost, base]))
        .map_err(err)?;
        Ok(())
    }

    async fn insert_alert_if_new(
        &self,
        b: &Budget,
        x: &Crossing,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let n = self
            .prepare_cached(
                "INSERT OR IGNORE INTO alerts (tenant, service, window, window_start_ms, level,
                 spent_micros, limit_micros, fired_ms, delivered, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 0)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    b.tenant,
                    b.service,
                    x.window,
                    x.window_start_ms,
                    x.level,
                    x.spent,
                    x.limit,
                    now
                ])
            })
            .map_err(err)?;
        Ok((n == 1).then(|| self.last_insert_rowid()))
    }

    async fn insert_lease(
        &self,
        id: &str,
        req: &AllowanceRequest,
        granted: i64,
        now: i64,
        expires: i64,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO leases (id, tenant, service, gateway_id, granted_micros, settled_micros,
             created_ms, expires_ms, status) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, 'open')",
            params![
                id,
                req.tenant,
                req.service,
                req.gateway_id,
                granted,
                now,
                expires
            ],
        )
        .map_err(err)?;
        Ok(())
    }

    async fn lease(&self, id: &str) -> StoreResult<Option<LeaseRow>> {
        self.query_row(
            "SELECT granted_micros - settled_micros, status, expires_ms FROM leases WHERE id = ?1",
            [id],
            |r| {
                Ok(LeaseRow {
                    unused: r.get(0)?,
                    status: r.get(1)?,
                    expires_ms: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(err)
    }

    async fn mark_released(&self, id: &str) -> StoreResult<()> {
        self.execute("UPDATE leases SET status = 'released' WHERE id = ?1", [id])
            .map_err(err)?;
        Ok(())
    }

    async fn mark_expired(&self, now: i64) -> StoreResult<u64> {
        let n = self
            .execute(
                "UPDATE leases SET status = 'expired' WHERE status = 'open' AND expires_ms <= ?1",
                [now],
            )
            .map_err(err)?;
        Ok(n as u64)
    }

    async fn bump_version(&self) -> StoreResult<()> {
        bump_version(self)
    }
}
