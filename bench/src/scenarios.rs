//! G (coalescing) and H (batching): counts of upstream calls rather than
//! throughput. Each runs against a baseline (the filter loaded, no rule
//! matching: every request goes upstream) and, when the filter supports
//! the strategy, against the strategy.

use std::sync::RwLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::configs::{QUERY, TENANT};
use crate::http;
use crate::stack::{Bench, Gateway, Host, Workers};
use crate::yaml::{Filters, Route};

/// Latency the demo API adds in G, so that all N requests are in flight
/// together.
pub const G_DELAY_MS: u64 = 1000;
pub const G_SIZES: [usize; 3] = [10, 100, 1000];

#[derive(Debug, Clone)]
pub struct GResult {
    pub n: usize,
    /// How many requests got each status (0: no answer), by status.
    pub statuses: Vec<(u16, u64)>,
    pub upstream_calls: u64,
    pub elapsed_ms: u128,
}

/// G for every N against one Envoy running `filters`; distinct paths per
/// N so that one N's cached answer never serves the next.
pub fn coalescing(bench: &Bench, name: &str, filters: &Filters) -> Result<Vec<GResult>, String> {
    let envoy = start_envoy(bench, name, filters)?;
    let result = (|| {
        let mut out = Vec::new();
        for n in G_SIZES {
            bench.demo_reset()?;
            let path = format!("/api/items/g{n}");
            let url = bench.url(&format!("{path}?{QUERY}&delay_ms={G_DELAY_MS}"));
            let start = Instant::now();
            let statuses = burst(&url, n)?;
            let elapsed_ms = start.elapsed().as_millis();
            let calls = bench.demo_calls()?["by_path"][&path].as_u64().unwrap_or(0);
            out.push(GResult {
                n,
                statuses: histogram(&statuses),
                upstream_calls: calls,
                elapsed_ms,
            });
        }
        Ok(out)
    })();
    bench.stop_gateway(envoy)?;
    result
}

/// G and H run on Envoy with one worker on the server core.
fn start_envoy(bench: &Bench, name: &str, filters: &Filters) -> Result<Gateway, String> {
    bench.start_gateway(
        name,
        Host::Envoy,
        filters,
        &Route::Proxy,
        Workers::OnePinned,
    )
}

/// How many of `statuses` had each status, by status.
pub fn histogram(statuses: &[u16]) -> Vec<(u16, u64)> {
    let mut m = std::collections::BTreeMap::new();
    for s in statuses {
        *m.entry(*s).or_insert(0) += 1;
    }
    m.into_iter().collect()
}

/// `n` identical GETs released together; their statuses (0: no answer).
fn burst(url: &str, n: usize) -> Result<Vec<u16>, String> {
    released_together(n, || {
        http::get(url, &[TENANT]).map(|r| r.status).unwrap_or(0)
    })
}

/// `f` run on `n` threads at once: each waits at a closed gate, opened
/// when all are started (or one could not be, which then fails the call
/// once the others are done); their results in thread order.
pub fn released_together<T: Send>(n: usize, f: impl Fn() -> T + Sync) -> Result<Vec<T>, String> {
    let gate = RwLock::new(());
    thread::scope(|sc| {
        let closed = gate
            .write()
            .map_err(|_| "the gate is poisoned".to_string())?;
        let started: Result<Vec<_>, String> = (0..n)
            .map(|_| {
                let (gate, f) = (&gate, &f);
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(sc, move || {
                        drop(gate.read());
                        f()
                    })
                    .map_err(|e| format!("cannot start a client thread: {e}"))
            })
            .collect();
        drop(closed);
        started?
            .into_iter()
            .map(|h| h.join().map_err(|_| "a client thread panicked".to_string()))
            .collect()
    })
}

#[derive(Debug, Clone, Copy)]
pub struct HResult {
    pub requests: usize,
    pub ok: usize,
    pub upstream_calls: u64,
    pub p50_us: u64,
}

impl HResult {
    pub fn calls_per_request(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.upstream_calls as f64 / self.requests as f64
    }
}

const H_WORKERS: usize = 128;

/// H: `rate` requests per second for `seconds`, open loop (each request
/// is sent at its scheduled time whatever the others do), each to its own
/// `/api/quotes/h<i>`; upstream calls counted by the demo API (a batch is
/// one call).
pub fn batching(
    bench: &Bench,
    name: &str,
    filters: &Filters,
    rate: u32,
    seconds: u32,
) -> Result<HResult, String> {
    let envoy = start_envoy(bench, name, filters)?;
    let result = (|| {
        bench.demo_reset()?;
        let total = (rate as usize) * (seconds as usize);
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let base = bench.url("/api/quotes/h");
        let start = Instant::now() + Duration::from_millis(50);
        let mut handles = Vec::new();
        for w in 0..H_WORKERS.min(total.max(1)) {
            let base = base.clone();
            let h = thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut lat = Vec::new();
                    for i in (w..total).step_by(H_WORKERS) {
                        let at = start + interval * (i as u32);
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        let t = Instant::now();
                        let url = format!("{base}{i}?{QUERY}");
                        let ok = http::get(&url, &[TENANT]).is_ok_and(|r| r.status == 200);
                        lat.push((ok, t.elapsed().as_micros() as u64));
                    }
                    lat
                })
                .map_err(|e| format!("cannot start a client thread: {e}"))?;
            handles.push(h);
        }
        let mut lat: Vec<(bool, u64)> = Vec::with_capacity(total);
        for h in handles {
            lat.extend(h.join().unwrap_or_default());
        }
        let calls = bench.demo_total_calls()?;
        let mut us: Vec<u64> = lat.iter().map(|(_, u)| *u).collect();
        us.sort_unstable();
        Ok(HResult {
            requests: lat.len(),
            ok: lat.iter().filter(|(ok, _)| *ok).count(),
            upstream_calls: calls,
            p50_us: us.get(us.len() / 2).copied().unwrap_or(0),
        })
    })();
    bench.stop_gateway(envoy)?;
    result
}
