//! postgres queries for purge generations, alerts and spend reports (split
//! from `postgres_sql` to keep files small).

use super::postgres_sql::{bump_version, err};
use super::{report_by_time, report_row, report_sql, StoreResult};
use crate::model::{Alert, PurgeEntry, PurgeKind, ReportQuery, ReportRow};
use tokio_postgres::Transaction;

type Tx<'a> = Transaction<'a>;

pub async fn purges(t: &Tx<'_>) -> StoreResult<Vec<PurgeEntry>> {
    let rows = t
        .query(
            "SELECT tenant, kind, value, generation FROM purges ORDER BY tenant, kind, value",
            &[],
        )
        .await
        .map_err(err)?;
    Ok(rows
        .iter()
        .map(|r| PurgeEntry {
            tenant: r.get(0),
            kind: PurgeKind::parse(r.get(1)).unwrap_or(PurgeKind::Key),
            value: r.get(2),
            generation: r.get(3),
        })
        .collect())
}

pub async fn purge(
    t: &Tx<'_>,
    tenant: &str,
    kind: PurgeKind,
    value: &str,
) -> StoreResult<PurgeEntry> {
    let row = t
        .query_one(
            "INSERT INTO purges (tenant, kind, value, generation) VALUES ($1, $2, $3, 1)
             ON CONFLICT (tenant, kind, value) DO UPDATE SET generation = purges.generation + 1
             RETURNING generation",
            &[&tenant, &kind.as_str(), &value],
        )
        .await
        .map_err(err)?;
    bump_version(t).await?;
    Ok(PurgeEntry {
        tenant: tenant.into(),
        kind,
        value: value.into(),
        generation: row.get(0),
    })
}

pub async fn alerts(t: &Tx<'_>, tenant: Option<&str>, limit: i64) -> StoreResult<Vec<Alert>> {
    let rows = t
        .query(
            "SELECT id, tenant, service, \"window\", window_start_ms, level, spent_micros, limit_micros,
             fired_ms, delivered, attempts FROM alerts WHERE $1::TEXT IS NULL OR tenant = $1
             ORDER BY id DESC LIMIT $2",
            &[&tenant, &limit],
        )
        .await
        .map_err(err)?;
    Ok(rows
        .iter()
        .map(|r| Alert {
            id: r.get(0),
            tenant: r.get(1),
            service: r.get(2),
            window: r.get(3),
            window_start_ms: r.get(4),
            level: r.get(5),
            spent_micros: r.get(6),
            limit_micros: r.get(7),
            fired_at_ms: r.get(8),
            delivered: r.get(9),
            attempts: r.get(10),
        })
        .collect())
}

pub async fn report(t: &Tx<'_>, q: &ReportQuery) -> StoreResult<Vec<ReportRow>> {
    let sql = report_sql(
        q,
        |i| format!("${i}"),
        "'total'::TEXT",
        |col| format!("COALESCE(SUM({col}), 0)::BIGINT"),
    );
    let rows = match &q.tenant {
        Some(tenant) => t.query(&sql, &[tenant, &q.from_ms, &q.to_ms]).await,
        None => t.query(&sql, &[&q.from_ms, &q.to_ms]).await,
    }
    .map_err(err)?;
    let by_time = report_by_time(q);
    Ok(rows
        .iter()
        .map(|r| {
            let key = if by_time { Err(r.get(0)) } else { Ok(r.get(0)) };
            report_row(q, key, r.get(1), r.get(2), r.get(3))
        })
        .collect())
}
