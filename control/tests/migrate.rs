//! A SQLite store written by an earlier version (events without `count`)
//! opens, keeps its events (each counting as one request), and takes
//! folded sums after the upgrade.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cost_control::model::{ReportQuery, SpendBatch, SpendEvent};
use cost_control::store::{sqlite::SqliteStore, Store};

const T0: i64 = 1_780_000_000_000;

fn event(cost: i64, count: i64) -> SpendEvent {
    SpendEvent {
        tenant: "acme".into(),
        service: String::new(),
        route: "/r".into(),
        provider: "p".into(),
        strategy: "folded".into(),
        cost_micros: cost,
        baseline_micros: cost,
        ts_ms: T0,
        allowance_id: None,
        count,
    }
}

#[tokio::test]
async fn an_old_events_table_gains_count_and_old_rows_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE events (
              id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, tenant TEXT NOT NULL, service TEXT NOT NULL,
              route TEXT NOT NULL, provider TEXT NOT NULL, strategy TEXT NOT NULL, cost_micros INTEGER NOT NULL,
              baseline_micros INTEGER NOT NULL, ts_ms INTEGER NOT NULL, allowance_id TEXT);
             INSERT INTO events (batch_id, tenant, service, route, provider, strategy, cost_micros,
              baseline_micros, ts_ms) VALUES ('old', 'acme', '', '/r', 'p', 'cache', 10, 20, 1780000000000);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let batch = SpendBatch {
        batch_id: "new".into(),
        gateway_id: "gw".into(),
        events: vec![event(300, 3)],
    };
    store.ingest(batch, T0).await.unwrap();
    let rows = store
        .report(ReportQuery {
            tenant: Some("acme".into()),
            from_ms: T0 - 1,
            to_ms: T0 + 1,
            group_by: None,
            offset_minutes: 0,
        })
        .await
        .unwrap();
    let events: i64 = rows.iter().map(|r| r.events).sum();
    assert_eq!(events, 4, "{rows:?}");
    // Opening it again finds the column and changes nothing.
    drop(store);
    SqliteStore::open(&path).unwrap();
}
