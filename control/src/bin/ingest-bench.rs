//! Benchmark: spend events ingested per second into the embedded SQLite
//! store through the HTTP app (in process, `oneshot`), in batches of 500,
//! from several concurrent clients, then snapshot latency while ingest runs.
//! Prints one machine-readable line:
//! `ingest-bench events_per_sec=... batches=... snapshot_p50_us=... snapshot_p99_us=...`
//! Usage: ingest-bench [SECONDS] [CLIENTS] [TENANTS]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use cost_control::auth::{Tokens, DEV_ADMIN_TOKEN, DEV_GATEWAY_TOKEN};
use cost_control::clock::SystemClock;
use cost_control::store::sqlite::SqliteStore;
use cost_control::AppState;
use tower::ServiceExt;

const BATCH: usize = 500;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn body(id: u64, tenants: u64, now: u128) -> String {
    let mut events = Vec::with_capacity(BATCH);
    for i in 0..BATCH as u64 {
        events.push(serde_json::json!({
            "tenant": format!("tenant-{}", (id + i) % tenants), "service": "search", "route": "/v1/items",
            "provider": "openai", "strategy": "cache", "cost_micros": 120 + i % 7, "baseline_micros": 400, "ts": now as i64
        }));
    }
    serde_json::json!({"batch_id": format!("bench-{id}"), "gateway_id": "bench", "events": events})
        .to_string()
}

fn req(method: &str, uri: &str, token: &str, body: Body) -> Result<Request<Body>, String> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| e.to_string())
}

async fn bench() -> Result<String, String> {
    let (secs, clients, tenants) = (arg(1, 5), arg(2, 8), arg(3, 20).max(1));
    let dir = std::env::temp_dir().join(format!("ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = Arc::new(SqliteStore::open(dir.join("bench.db")).map_err(|e| e.to_string())?);
    let state = AppState::new(store, Arc::new(SystemClock), Tokens::dev(), vec![]);
    let app = cost_control::app(state);
    for t in 0..tenants {
        let b = format!(r#"{{"tenant":"tenant-{t}","daily":"1000000","monthly":"10000000"}}"#);
        app.clone()
            .oneshot(req("PUT", "/v1/budgets", DEV_ADMIN_TOKEN, Body::from(b))?)
            .await
            .map_err(|e| e.to_string())?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis();
    // Bodies are prepared up front so the measurement is the service, not the client.
    let next = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (app, next, events, stop) = (app.clone(), next.clone(), events.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let r = match req(
                    "POST",
                    "/v1/spend",
                    DEV_GATEWAY_TOKEN,
                    Body::from(body(id, tenants, now)),
                ) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                match app.clone().oneshot(r).await {
                    Ok(resp) if resp.status().is_success() => {
                        events.fetch_add(BATCH as u64, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
        }));
    }
    // Snapshot latency while ingest runs (the version changes with every batch).
    let mut lat = Vec::new();
    let deadline = started + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let t = Instant::now();
        let resp = app
            .clone()
            .oneshot(req(
                "GET",
                "/v1/snapshot",
                DEV_GATEWAY_TOKEN,
                Body::empty(),
            )?)
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("snapshot answered {}", resp.status()));
        }
        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
        lat.push(t.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = events.load(Ordering::Relaxed);
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "ingest-bench store=sqlite batch={BATCH} clients={clients} tenants={tenants} seconds={elapsed:.1} events={n} events_per_sec={:.0} snapshot_samples={} snapshot_p50_us={} snapshot_p99_us={}",
        n as f64 / elapsed,
        lat.len(),
        pct(0.50),
        pct(0.99)
    ))
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ingest-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench()) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ingest-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
