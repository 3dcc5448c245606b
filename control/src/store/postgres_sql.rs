//! PostgreSQL schema and the ledger's primitive queries in PostgreSQL's
//! dialect, run inside the caller's transaction; the rules are in
//! `crate::ledger`. `lock_tenant` takes the tenant's advisory transaction
//! lock, so grants and spend reports for one tenant are serialized across
//! every replica sharing the database.

use tokio_postgres::Transaction;

use super::{soft_percent, StoreError, StoreResult};
use crate::budget::Crossing;
use crate::ledger::{LeaseRow, LedgerTx};
use crate::model::{AllowanceRequest, Budget, SpendBatch, SpendEvent};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BIGINT NOT NULL);
INSERT INTO meta (k, v) VALUES ('version', 1) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, utc_offset_minutes INT NOT NULL);
CREATE TABLE IF NOT EXISTS budgets (
  tenant TEXT NOT NULL, service TEXT NOT NULL, daily_micros BIGINT, monthly_micros BIGINT,
  soft_percent INT NOT NULL, updated_ms BIGINT NOT NULL, PRIMARY KEY (tenant, service));
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL, received_ms BIGINT NOT NULL, events INT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id BIGSERIAL PRIMARY KEY, batch_id TEXT NOT NULL, tenant TEXT NOT NULL, service TEXT NOT NULL,
  route TEXT NOT NULL, provider TEXT NOT NULL, strategy TEXT NOT NULL, cost_micros BIGINT NOT NULL,
  baseline_micros BIGINT NOT NULL, ts_ms BIGINT NOT NULL, allowance_id TEXT);
ALTER TABLE events ADD COLUMN IF NOT EXISTS count BIGINT NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant, ts_ms);
CREATE TABLE IF NOT EXISTS daily_spend (
  tenant TEXT NOT NULL, service TEXT NOT NULL, day_start_ms BIGINT NOT NULL,
  cost_micros BIGINT NOT NULL, baseline_micros BIGINT NOT NULL,
  PRIMARY KEY (tenant, service, day_start_ms));
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, service TEXT NOT NULL, gateway_id TEXT NOT NULL,
  granted_micros BIGINT NOT NULL, settled_micros BIGINT NOT NULL, created_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_open ON leases (tenant, status, expires_ms);
CREATE TABLE IF NOT EXISTS purges (
  tenant TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, generation BIGINT NOT NULL,
  PRIMARY KEY (tenant, kind, value));
CREATE TABLE IF NOT EXISTS alerts (
  id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, service TEXT NOT NULL, \"window\" TEXT NOT NULL,
  window_start_ms BIGINT NOT NULL, level TEXT NOT NULL, spent_micros BIGINT NOT NULL,
  limit_micros BIGINT NOT NULL, fired_ms BIGINT NOT NULL, delivered BOOLEAN NOT NULL,
  attempts INT NOT NULL, UNIQUE (tenant, service, \"window\", window_start_ms, level));
";

pub fn err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(format!("{}: {}", db.code().code(), db.message())),
        None => StoreError::Backend(e.to_string()),
    }
}

type Tx<'a> = Transaction<'a>;

pub async fn bump_version(t: &Tx<'_>) -> StoreResult<()> {
    t.execute("UPDATE meta SET v = v + 1 WHERE k = 'version'", &[])
        .await
        .map_err(err)?;
    Ok(())
}

pub async fn version(t: &Tx<'_>) -> StoreResult<i64> {
    let row = t
        .query_one("SELECT v FROM meta WHERE k = 'version'", &[])
        .await
        .map_err(err)?;
    Ok(row.get(0))
}

impl LedgerTx for Transaction<'_> {
    async fn lock_tenant(&self, tenant: &str) -> StoreResult<()> {
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
            &[&tenant],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn budget_rows(&self, tenant: Option<&str>) -> StoreResult<Vec<Budget>> {
        let rows = self
            .query(
                "SELECT b.tenant, b.service, b.daily_micros, b.monthly_micros, b.soft_percent,
                        COALESCE(t.utc_offset_minutes, 0)
                 FROM budgets b LEFT JOIN tenants t ON t.tenant = b.tenant
                 WHERE $1::TEXT IS NULL OR b.tenant = $1 ORDER BY b.tenant, b.service",
                &[&tenant],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Budget {
                tenant: r.get(0),
                service: r.get(1),
                daily_limit_micros: r.get(2),
                monthly_limit_micros: r.get(3),
                soft_limit_percent: soft_percent(r.get::<_, i32>(4).into()),
                utc_offset_minutes: r.get(5),
            })
            .collect())
    }

    async fn tenant_offset(&self, tenant: &str) -> StoreResult<i32> {
        let row = self
            .query_opt(
                "SELECT utc_offset_minutes FROM tenants WHERE tenant = $1",
                &[&tenant],
            )
            .await
            .map_err(err)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    async fn sum_spent(&self, b: &Budget, from: i64, to: i64) -> StoreResult<i64> {
        let row = self
            .query_one(
                "SELECT COALESCE(SUM(cost_micros), 0)::BIGINT FROM daily_spend WHERE tenant = $1
                 AND ($2 = '' OR service = $2) AND day_start_ms >= $3 AND day_start_ms < $4",
                &[&b.tenant, &b.service, &from, &to],
            )
            .await
            .map_err(err)?;
        Ok(row.get(0))
    }

    async fn sum_outstanding(&self, b: &Budget, now: i64) -> StoreResult<i64> {
        let row = self
            .query_one(
                "SELECT COALESCE(SUM(granted_micros - settled_micros), 0)::BIGINT FROM leases
                 WHERE tenant = $1 AND status = 'open' AND expires_ms > $3 AND ($2 = '' OR service = $2)",
                &[&b.tenant, &b.service, &now],
            )
            .await
            .map_err(err)?;
        Ok(row.get(0))
    }

    async fn upsert_budget(&self, b: &Budget, now: i64) -> StoreResult<()> {
        self.execute(
            "INSERT INTO tenants (tenant, utc_offset_minutes) VALUES ($1, $2)
             ON CONFLICT (tenant) DO UPDATE SET utc_offset_minutes = excluded.utc_offset_minutes",
            &[&b.tenant, &b.utc_offset_minutes],
        )
        .await
        .map_err(err)?;
        self.execute(
            "INSERT INTO budgets (tenant, service, daily_micros, monthly_micros, soft_percent, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, service) DO UPDATE SET
             daily_micros = excluded.daily_micros, monthly_micros = excluded.monthly_micros,
             soft_percent = excluded.soft_percent, updated_ms = excluded.updated_ms",
            &[&b.tenant, &b.service, &b.daily_limit_micros, &b.monthly_limit_micros, &i32::from(b.soft_limit_percent), &now],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn insert_batch(&self, batch: &SpendBatch, now: i64) -> StoreResult<bool> {
        let n = self
            .execute(
                "INSERT INTO batches (batch_id, gateway_id, received_ms, events) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                &[&batch.batch_id, &batch.gateway_id, &now, &(batch.events.len() as i32)],
            )
            .await
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn insert_events(&self, batch: &SpendBatch) -> StoreResult<()> {
        // One statement for the whole batch: columns as arrays.
        let ev = &batch.events;
        let col = |f: fn(&SpendEvent) -> &String| ev.iter().map(f).collect::<Vec<_>>();
        let (tn, sv, rt, pv, st) = (
            col(|e| &e.tenant),
            col(|e| &e.service),
            col(|e| &e.route),
            col(|e| &e.provider),
            col(|e| &e.strategy),
        );
        let cost: Vec<i64> = ev.iter().map(|e| e.cost_micros).collect();
        let base: Vec<i64> = ev.iter().map(|e| e.baseline_micros).collect();
        let ts: Vec<i64> = ev.iter().map(|e| e.ts_ms).collect();
        let al: Vec<Option<&str>> = ev.iter().map(|e| e.allowance_id.as_deref()).collect();
        let count: Vec<i64> = ev.iter().map(|e| e.count).collect();
        self.execute(
            "INSERT INTO events (batch_id, tenant, service, route, provider, strategy, cost_micros,
             baseline_micros, ts_ms, allowance_id, count)
             SELECT $1, * FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                                      $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[], $11::BIGINT[])",
            &[&batch.batch_id, &tn, &sv, &rt, &pv, &st, &cost, &base, &ts, &al, &count],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn settle(&self, lease: &str, tenant: &str, cost: i64, now: i64) -> StoreResult<()> {
        self.execute(
            "UPDATE leases SET settled_micros = LEAST(granted_micros, settled_micros + $1)
             WHERE id = $2 AND tenant = $3 AND status = 'open' AND expires_ms > $4",
            &[&cost, &lease, &tenant, &now],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn add_daily(
        &self,
        (tenant, service, day): &(String, String, i64),
        cost: i64,
        base: i64,
    ) -> StoreResult<()> {
        self.execute(
            "INSERT INTO daily_spend (tenant, service, day_start_ms, cost_micros, baseline_micros)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, service, day_start_ms) DO UPDATE SET
             cost_micros = daily_spend.cost_micros + excluded.cost_micros,
             baseline_micros = daily_spend.baseline_micros + excluded.baseline_micros",
            &[tenant, service, day, &cost, &base],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn insert_alert_if_new(
        &self,
        b: &Budget,
        x: &Crossing,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let row = self
            .query_opt(
                "INSERT INTO alerts (tenant, service, \"window\", window_start_ms, level,
                 spent_micros, limit_micros, fired_ms, delivered, attempts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, 0)
                 ON CONFLICT DO NOTHING RETURNING id",
                &[
                    &b.tenant,
                    &b.service,
                    &x.window,
                    &x.window_start_ms,
                    &x.level,
                    &x.spent,
                    &x.limit,
                    &now,
                ],
            )
            .await
            .map_err(err)?;
        Ok(row.map(|r| r.get(0)))
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
             created_ms, expires_ms, status) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, 'open')",
            &[
                &id,
                &req.tenant,
                &req.service,
                &req.gateway_id,
                &granted,
                &now,
                &expires,
            ],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn lease(&self, id: &str) -> StoreResult<Option<LeaseRow>> {
        let row = self
            .query_opt(
                "SELECT granted_micros - settled_micros, status, expires_ms FROM leases WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(err)?;
        Ok(row.map(|r| LeaseRow {
            unused: r.get(0),
            status: r.get(1),
            expires_ms: r.get(2),
        }))
    }

    async fn mark_released(&self, id: &str) -> StoreResult<()> {
        self.execute(
            "UPDATE leases SET status = 'released' WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn mark_expired(&self, now: i64) -> StoreResult<u64> {
        self.execute(
            "UPDATE leases SET status = 'expired' WHERE status = 'open' AND expires_ms <= $1",
            &[&now],
        )
        .await
        .map_err(err)
    }

    async fn bump_version(&self) -> StoreResult<()> {
        bump_version(self).await
    }
}
