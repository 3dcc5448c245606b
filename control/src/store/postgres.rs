//! PostgreSQL store: several cost-control replicas share one ledger. Each
//! operation is one transaction; per-tenant advisory locks serialize the
//! budget arithmetic across replicas (see `postgres_sql`).

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{IsolationLevel, NoTls};

use super::postgres_reads as r;
use super::postgres_sql as q;
use super::{Store, StoreError, StoreResult};
use crate::ledger;
use crate::model::{
    Alert, Allowance, AllowanceRequest, Budget, IngestOutcome, PurgeEntry, PurgeKind, ReportQuery,
    ReportRow, Snapshot, SpendBatch, TenantState,
};

pub struct PostgresStore {
    pool: Pool,
}

fn pool_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Runs `$body` inside a transaction on a pooled client and commits it.
macro_rules! in_tx {
    ($self:ident, $iso:expr, |$t:ident| $body:expr) => {{
        let mut client = $self.pool.get().await.map_err(pool_err)?;
        let $t = client
            .build_transaction()
            .isolation_level($iso)
            .start()
            .await
            .map_err(q::err)?;
        let out = $body;
        $t.commit().await.map_err(q::err)?;
        Ok(out)
    }};
}

impl PostgresStore {
    /// Connects to `url`; with `schema`, every table lives in that schema
    /// (created if missing), which is how tests isolate themselves.
    pub async fn connect(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        let mut cfg: tokio_postgres::Config = url.parse().map_err(q::err)?;
        if let Some(s) = schema {
            if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(StoreError::Backend(format!("bad schema name {s:?}")));
            }
            cfg.options(format!("-c search_path={s}"));
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr).max_size(16).build().map_err(pool_err)?;
        let client = pool.get().await.map_err(pool_err)?;
        if let Some(s) = schema {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s};"
                ))
                .await
                .map_err(q::err)?;
        }
        // Replicas may start together: create the schema under a lock.
        client
            .batch_execute(&format!(
                "SELECT pg_advisory_lock(7007); {} SELECT pg_advisory_unlock(7007);",
                q::SCHEMA
            ))
            .await
            .map_err(q::err)?;
        drop(client);
        Ok(Self { pool })
    }
}

const RC: IsolationLevel = IsolationLevel::ReadCommitted;
const RR: IsolationLevel = IsolationLevel::RepeatableRead;

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client.simple_query("SELECT 1").await.map_err(q::err)?;
        Ok(())
    }

    async fn put_budget(&self, budget: Budget, now_ms: i64) -> StoreResult<TenantState> {
        in_tx!(self, RC, |t| ledger::put_budget(&*t, &budget, now_ms)
            .await?)
    }

    async fn budgets(&self, tenant: Option<&str>, now_ms: i64) -> StoreResult<Vec<TenantState>> {
        in_tx!(self, RR, |t| ledger::states(&*t, tenant, now_ms).await?)
    }

    async fn ingest(&self, batch: SpendBatch, now_ms: i64) -> StoreResult<IngestOutcome> {
        in_tx!(self, RC, |t| ledger::ingest(&*t, &batch, now_ms).await?)
    }

    async fn grant(&self, req: AllowanceRequest, now_ms: i64) -> StoreResult<Allowance> {
        in_tx!(self, RC, |t| ledger::grant(&*t, &req, now_ms).await?)
    }

    async fn release(&self, allowance_id: &str, now_ms: i64) -> StoreResult<i64> {
        in_tx!(self, RC, |t| ledger::release(&*t, allowance_id, now_ms)
            .await?)
    }

    async fn expire_leases(&self, now_ms: i64) -> StoreResult<u64> {
        in_tx!(self, RC, |t| ledger::expire(&*t, now_ms).await?)
    }

    async fn version(&self) -> StoreResult<i64> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one("SELECT v FROM meta WHERE k = 'version'", &[])
            .await
            .map_err(q::err)?;
        Ok(row.get(0))
    }

    async fn snapshot(&self, now_ms: i64) -> StoreResult<Snapshot> {
        in_tx!(self, RR, |t| Snapshot {
            version: q::version(&t).await?.to_string(),
            generated_at_ms: now_ms,
            tenants: ledger::states(&*t, None, now_ms).await?,
            purges: r::purges(&t).await?,
        })
    }

    async fn purge(&self, tenant: &str, kind: PurgeKind, value: &str) -> StoreResult<PurgeEntry> {
        in_tx!(self, RC, |t| r::purge(&t, tenant, kind, value).await?)
    }

    async fn alerts(&self, tenant: Option<&str>, limit: i64) -> StoreResult<Vec<Alert>> {
        in_tx!(self, RC, |t| r::alerts(&t, tenant, limit).await?)
    }

    async fn alert_attempted(&self, id: i64, attempts: i32, delivered: bool) -> StoreResult<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "UPDATE alerts SET attempts = $2, delivered = $3 WHERE id = $1",
                &[&id, &attempts, &delivered],
            )
            .await
            .map_err(q::err)?;
        Ok(())
    }

    async fn report(&self, query: ReportQuery) -> StoreResult<Vec<ReportRow>> {
        in_tx!(self, RC, |t| r::report(&t, &query).await?)
    }
}
