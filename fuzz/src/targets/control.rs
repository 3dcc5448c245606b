//! cost-control's request bodies and query strings, through its real
//! router (auth, body limit, the handlers' parsing and validation, and the
//! SQLite store for what passes), one request per input.
//!
//! The app lives for many inputs (building it costs a store); it is
//! rebuilt every `REBUILD_EVERY` inputs so the database stays small.
//! The database sits in `/dev/shm` where that exists: the store commits
//! with `synchronous = FULL`, and an fsync per accepted write on a disk
//! would make this target a disk benchmark.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cost_control::alerts::RetryPolicy;
use cost_control::auth::Tokens;
use cost_control::clock::ManualClock;
use cost_control::state::{AppState, Limits};
use cost_control::store::sqlite::SqliteStore;
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token";
const GATEWAY: &str = "fuzz-gateway-token";
/// 2025-03-10T12:00:00Z
const T0: i64 = 1_741_608_000_000;
const REBUILD_EVERY: u32 = 20_000;

struct App {
    rt: tokio::runtime::Runtime,
    router: Router,
    dir: PathBuf,
    used: u32,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "optimizer-fuzz-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

fn build() -> Option<App> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let dir = scratch_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let store = Arc::new(SqliteStore::open(dir.join("cc.db")).ok()?);
    let state = AppState::with(
        store,
        Arc::new(ManualClock::new(T0)),
        Tokens::new(ADMIN, GATEWAY).ok()?,
        Vec::new(),
        Limits::default(),
        RetryPolicy::default(),
    );
    let router = rt.block_on(async { cost_control::app(state) });
    Some(App {
        rt,
        router,
        dir,
        used: 0,
    })
}

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
}

/// (method, path, token) by the input's first byte; the rest is the body,
/// or the query string (the path segment for the DELETE). `GET /v1/wake`
/// is left out: it sleeps for what its query asks (at most 1 s).
const ROUTES: [(&str, &str, &str); 9] = [
    ("PUT", "/v1/budgets", ADMIN),
    ("POST", "/v1/spend", GATEWAY),
    ("POST", "/v1/allowances", GATEWAY),
    ("POST", "/v1/purge", ADMIN),
    ("GET", "/v1/spend?", ADMIN),
    ("GET", "/v1/budgets?", GATEWAY),
    ("GET", "/v1/alerts?", ADMIN),
    ("GET", "/v1/snapshot?", GATEWAY),
    ("DELETE", "/v1/allowances/", GATEWAY),
];

/// One request to cost-control. An input whose query is not a valid URI
/// is dropped here: the HTTP server would refuse it before the router.
pub fn control_json(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (method, path, token) = ROUTES[usize::from(which) % ROUTES.len()];
    let with_body = !path.ends_with('?') && !path.ends_with('/');
    let uri = if with_body {
        path.to_string()
    } else {
        match std::str::from_utf8(rest) {
            Ok(q) => format!("{path}{q}"),
            Err(_) => return,
        }
    };
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(if with_body {
            Body::from(rest.to_vec())
        } else {
            Body::empty()
        });
    let Ok(req) = req else {
        return;
    };
    APP.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|a| a.used >= REBUILD_EVERY) {
            *slot = None;
            crate::exempt_input();
            *slot = build();
        }
        let Some(app) = slot.as_mut() else {
            panic!("cannot build cost-control's app for fuzzing");
        };
        app.used += 1;
        let status = app.rt.block_on(async {
            let res = app.router.clone().oneshot(req).await;
            match res {
                Ok(r) => {
                    let status = r.status();
                    let _ = axum::body::to_bytes(r.into_body(), 1 << 20).await;
                    status
                }
                Err(e) => match e {},
            }
        });
        // An error the service cannot explain is a 500: a store failure
        // or a bug. Neither should come from a request's bytes.
        assert!(
            status.as_u16() < 500,
            "{method} {path}: answered {status} to {:?}",
            String::from_utf8_lossy(rest)
        );
    });
}

pub fn control_json_seeds() -> Vec<Vec<u8>> {
    let with = |route: u8, body: &str| {
        let mut v = vec![route];
        v.extend_from_slice(body.as_bytes());
        v
    };
    vec![
        with(
            0,
            r#"{"tenant":"acme","service":"","daily_limit_micros":20000,"monthly":"1.50","soft_limit_percent":80,"utc_offset":"+05:30"}"#,
        ),
        with(
            1,
            r#"{"batch_id":"gw-1","gateway_id":"gw","events":[{"tenant":"acme","service":"s","route":"/a","provider":"p","strategy":"cache","cost_micros":0,"baseline_micros":2000,"ts":1741607999000},{"tenant":"acme","cost_micros":"0.002","ts":"2025-03-10T11:59:00Z","allowance_id":"x","count":3}]}"#,
        ),
        with(
            2,
            r#"{"gateway_id":"gw","tenant":"acme","service":"","want_micros":5000,"ttl_secs":60}"#,
        ),
        with(3, r#"{"tenant":"acme","prefix":"/api/items"}"#),
        with(
            4,
            "tenant=acme&from=2025-03-01T00:00:00Z&to=2025-03-11&group_by=strategy",
        ),
        with(5, "tenant=acme"),
        with(6, "tenant=acme&since=0"),
        with(7, "since=1741608000000-3"),
        with(8, "0123456789abcdef"),
    ]
}
