//! sqlite queries for purge generations, alerts and spend reports (split
//! from `sqlite_sql` to keep files small).

use rusqlite::{params, Connection};

use super::sqlite_sql::{bump_version, err};
use super::{report_by_time, report_row, report_sql, StoreResult};
use crate::model::{Alert, PurgeEntry, PurgeKind, ReportQuery, ReportRow};

pub fn purges(c: &Connection) -> StoreResult<Vec<PurgeEntry>> {
    let mut s = c
        .prepare_cached(
            "SELECT tenant, kind, value, generation FROM purges ORDER BY tenant, kind, value",
        )
        .map_err(err)?;
    let rows = s
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let (tenant, kind, value, generation) = row.map_err(err)?;
        let kind = PurgeKind::parse(&kind).unwrap_or(PurgeKind::Key);
        out.push(PurgeEntry {
            tenant,
            kind,
            value,
            generation,
        });
    }
    Ok(out)
}

pub fn purge(
    c: &Connection,
    tenant: &str,
    kind: PurgeKind,
    value: &str,
) -> StoreResult<PurgeEntry> {
    let generation: i64 = c
        .query_row(
            "INSERT INTO purges (tenant, kind, value, generation) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (tenant, kind, value) DO UPDATE SET generation = generation + 1
             RETURNING generation",
            params![tenant, kind.as_str(), value],
            |r| r.get(0),
        )
        .map_err(err)?;
    bump_version(c)?;
    Ok(PurgeEntry {
        tenant: tenant.into(),
        kind,
        value: value.into(),
        generation,
    })
}

pub fn alerts(c: &Connection, tenant: Option<&str>, limit: i64) -> StoreResult<Vec<Alert>> {
    let mut s = c
        .prepare_cached(
            "SELECT id, tenant, service, window, window_start_ms, level, spent_micros, limit_micros,
             fired_ms, delivered, attempts FROM alerts WHERE ?1 IS NULL OR tenant = ?1
             ORDER BY id DESC LIMIT ?2",
        )
        .map_err(err)?;
    let rows = s
        .query_map(params![tenant, limit], |r| {
            Ok(Alert {
                id: r.get(0)?,
                tenant: r.get(1)?,
                service: r.get(2)?,
                window: r.get(3)?,
                window_start_ms: r.get(4)?,
                level: r.get(5)?,
                spent_micros: r.get(6)?,
                limit_micros: r.get(7)?,
                fired_at_ms: r.get(8)?,
                delivered: r.get(9)?,
                attempts: r.get(10)?,
            })
        })
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

pub fn report(c: &Connection, q: &ReportQuery) -> StoreResult<Vec<ReportRow>> {
    let sql = report_sql(
        q,
        |i| format!("?{i}"),
        "'total'",
        |col| format!("COALESCE(SUM({col}), 0)"),
    );
    let by_time = report_by_time(q);
    let mut s = c.prepare(&sql).map_err(err)?;
    let map = |r: &rusqlite::Row<'_>| {
        let key = if by_time {
            Err(r.get::<_, i64>(0)?)
        } else {
            Ok(r.get::<_, String>(0)?)
        };
        Ok(report_row(q, key, r.get(1)?, r.get(2)?, r.get(3)?))
    };
    let rows = match &q.tenant {
        Some(t) => s.query_map(params![t, q.from_ms, q.to_ms], map),
        None => s.query_map(params![q.from_ms, q.to_ms], map),
    }
    .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}
