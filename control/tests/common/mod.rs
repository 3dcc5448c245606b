//! Shared test harness: an app over either store, a manual clock, requests
//! through `oneshot`, and the macro that runs a test against both stores.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cost_control::alerts::RetryPolicy;
use cost_control::auth::Tokens;
use cost_control::clock::ManualClock;
use cost_control::state::{AppState, Limits};
use cost_control::store::postgres::PostgresStore;
use cost_control::store::sqlite::SqliteStore;
use cost_control::Store;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-token";
pub const GATEWAY: &str = "test-gateway-token";
/// 2025-03-10T12:00:00Z
pub const T0: i64 = 1_741_608_000_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Every store. A new store is a variant, its line here, its arm in
    /// `store_at` and `spec`, and its line in `both_stores!`.
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

    /// A `--store` argument for a fresh, isolated store of this kind (its
    /// own file in `dir`, or its own PostgreSQL schema).
    pub async fn spec(self, dir: &tempfile::TempDir) -> String {
        match self {
            Backend::Sqlite => format!("sqlite:{}", dir.path().join("cc.db").display()),
            Backend::Postgres => {
                let schema = fresh_schema();
                RawDb::Postgres(String::new())
                    .exec(&format!("CREATE SCHEMA {schema}"))
                    .await;
                let url = pg_url();
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}options=-c%20search_path%3D{schema}")
            }
        }
    }
}

fn fresh_schema() -> String {
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst),
        fastrand::u32(..)
    )
}

/// Where a store's tables live, for tests that write rows by hand.
#[derive(Clone, Debug)]
pub enum RawDb {
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL schema in `pg_url()`'s database.
    Postgres(String),
}

impl RawDb {
    /// Runs SQL statements on the store's tables, outside the service.
    pub async fn exec(&self, sql: &str) {
        match self {
            RawDb::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch(sql).unwrap();
            }
            RawDb::Postgres(schema) => {
                let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let path = if schema.is_empty() {
                    String::new()
                } else {
                    format!("SET search_path TO {schema}; ")
                };
                client.batch_execute(&format!("{path}{sql}")).await.unwrap();
            }
        }
    }
}

pub struct Harness {
    pub app: Router,
    pub raw_db: RawDb,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// The PostgreSQL URL; a missing one fails the test loudly, never skips.
pub fn pg_url() -> String {
    match std::env::var("COST_CONTROL_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "COST_CONTROL_PG_URL is not set: the PostgreSQL tests need a server. Run \
             COST_CONTROL_PG_URL=\"$(scripts/ensure-postgres.sh | tail -n1)\" cargo test -p cost-control"
        ),
    }
}

/// A store of the given kind, isolated from every other test (own file or schema).
pub async fn store(backend: Backend, dir: &tempfile::TempDir) -> Arc<dyn Store> {
    store_at(backend, dir).await.0
}

/// A store and where its tables live.
pub async fn store_at(backend: Backend, dir: &tempfile::TempDir) -> (Arc<dyn Store>, RawDb) {
    match backend {
        Backend::Sqlite => {
            let path = dir.path().join("cc.db");
            (
                Arc::new(SqliteStore::open(&path).unwrap()),
                RawDb::Sqlite(path),
            )
        }
        Backend::Postgres => {
            let schema = fresh_schema();
            let store = PostgresStore::connect(&pg_url(), Some(&schema))
                .await
                .unwrap();
            (Arc::new(store), RawDb::Postgres(schema))
        }
    }
}

impl Harness {
    pub async fn new(backend: Backend) -> Self {
        Self::with_webhooks(backend, vec![]).await
    }

    pub async fn with_webhooks(backend: Backend, webhooks: Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, raw_db) = store_at(backend, &dir).await;
        let clock = Arc::new(ManualClock::new(T0));
        let retry = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
        };
        let limits = Limits {
            max_body_bytes: 64 * 1024,
            ..Limits::default()
        };
        let state = AppState::with(
            store.clone(),
            clock.clone(),
            Tokens::new(ADMIN, GATEWAY).unwrap(),
            webhooks,
            limits,
            retry,
        );
        Self {
            app: cost_control::app(state.clone()),
            raw_db,
            state,
            clock,
            store,
            _dir: dir,
        }
    }

    /// Sends a request; answers the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, bytes) = self
            .raw(method, path, token, body.map(|b| b.to_string()))
            .await;
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, bytes)
    }

    pub async fn set_budget(&self, body: Value) -> Value {
        let (s, v) = self
            .call("PUT", "/v1/budgets", Some(ADMIN), Some(body))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Ingests one batch; asserts it was accepted.
    pub async fn spend(&self, batch_id: &str, events: Vec<Value>) -> Value {
        let body =
            serde_json::json!({"batch_id": batch_id, "gateway_id": "gw-1", "events": events});
        let (s, v) = self
            .call("POST", "/v1/spend", Some(GATEWAY), Some(body))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// The budget state of (tenant, service) from GET /v1/budgets.
    pub async fn state_of(&self, tenant: &str, service: &str) -> Value {
        let (s, v) = self
            .call(
                "GET",
                &format!("/v1/budgets?tenant={tenant}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        v["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["service"] == service)
            .cloned()
            .unwrap_or_else(|| panic!("no budget {tenant}/{service} in {v}"))
    }
}

/// An event at the harness clock's time.
pub fn event(tenant: &str, service: &str, cost: i64, ts: i64) -> Value {
    serde_json::json!({
        "tenant": tenant, "service": service, "route": "/v1/items", "provider": "openai",
        "strategy": "cache", "cost_micros": cost, "baseline_micros": cost * 2, "ts": ts
    })
}

/// Runs every listed `async fn name(backend: Backend)` of the enclosing
/// file on every store: one module per store (`sqlite::name`,
/// `postgres::name`). A new store is one line here.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $crate::store_tests!(sqlite, Sqlite, $($name),*);
        $crate::store_tests!(postgres, Postgres, $($name),*);
    };
}

/// One store's module of `both_stores!`.
#[macro_export]
macro_rules! store_tests {
    ($module:ident, $backend:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::$backend).await
                }
            )*
        }
    };
}

/// Parses a test time (RFC 3339 or date) to unix ms.
pub fn parse(s: &str) -> i64 {
    cost_control::window::parse_time(s).unwrap()
}

pub trait Now {
    fn now(&self) -> i64;
}

impl Now for ManualClock {
    fn now(&self) -> i64 {
        cost_control::clock::Clock::now_ms(self)
    }
}
