//! G (coalescing) and H (batching): counts of upstream calls rather than
//! throughput. Each runs against a baseline (the filter loaded, no rule
//! matching: every request goes upstream) and, when the filter supports
//! the strategy, against the strategy. Each result carries its verdict
//! (`problems`: empty when it passed; anything there fails the bench).

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
    /// Answers marked `x-cache: COALESCED` (a follower answered with its
    /// leader's response).
    pub coalesced: u64,
    /// Answers marked `x-cache: HIT`: none expected (G's rules have no
    /// cache, so a coalesced answer is never mistaken for a hit).
    pub hits: u64,
    pub elapsed_ms: u128,
    /// What failed the verdict (empty: passed).
    pub problems: Vec<String>,
}

/// G for every N against one Envoy running `filters`; distinct paths per
/// N. `coalescing`: whether the filter's rule coalesces (else every
/// request must go upstream).
///
/// Verdict: every answer 200; the path in the demo API's `by_path` (a
/// missing key fails: it is not read as 0 calls); no `x-cache: HIT`; and
/// every upstream call accounted for by one answer that was not
/// coalesced (without coalescing: N calls, none coalesced). The goal of
/// one call per burst is reported, not enforced: a request that arrives
/// after its leader's grace is a leader of its own.
pub fn coalescing(
    bench: &Bench,
    name: &str,
    filters: &Filters,
    coalescing: bool,
) -> Result<Vec<GResult>, String> {
    let envoy = start_envoy(bench, name, filters)?;
    let result = (|| {
        let mut out = Vec::new();
        for n in G_SIZES {
            bench.demo_reset()?;
            let path = format!("/api/items/g{n}");
            let url = bench.url(&format!("{path}?{QUERY}&delay_ms={G_DELAY_MS}"));
            let start = Instant::now();
            let answers = burst(&url, n)?;
            let elapsed_ms = start.elapsed().as_millis();
            let calls = bench.demo_calls()?["by_path"][&path].as_u64();
            let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
            let count = |want: &str| {
                answers
                    .iter()
                    .filter(|(_, x)| x.to_ascii_uppercase().starts_with(want))
                    .count() as u64
            };
            let (coalesced, hits) = (count("COALESCED"), count("HIT"));
            let mut r = GResult {
                n,
                statuses: histogram(&statuses),
                upstream_calls: calls.unwrap_or(0),
                coalesced,
                hits,
                elapsed_ms,
                problems: Vec::new(),
            };
            r.problems = g_problems(&r, &path, calls.is_some(), coalescing);
            out.push(r);
        }
        Ok(out)
    })();
    bench.stop_gateway(envoy)?;
    result
}

/// G's verdict for one burst (see [`coalescing`]).
fn g_problems(r: &GResult, path: &str, counted: bool, coalescing: bool) -> Vec<String> {
    let mut p = Vec::new();
    let ok: u64 = r
        .statuses
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, n)| n)
        .sum();
    if ok != r.n as u64 {
        p.push(format!(
            "N = {}: {} of {} answers were not 200",
            r.n,
            r.n as u64 - ok,
            r.n
        ));
    }
    if !counted {
        p.push(format!(
            "N = {}: the demo API's /__calls has no by_path entry for {path} (no upstream call counted)",
            r.n
        ));
    }
    if r.hits > 0 {
        p.push(format!(
            "N = {}: {} answers say x-cache: HIT on a rule without cache",
            r.n, r.hits
        ));
    }
    let not_coalesced = r.n as u64 - r.coalesced;
    if coalescing && counted && r.upstream_calls != not_coalesced {
        p.push(format!(
            "N = {}: {} upstream calls but {not_coalesced} answers not coalesced (each call should answer one leader)",
            r.n, r.upstream_calls
        ));
    }
    if !coalescing && (r.coalesced > 0 || (counted && r.upstream_calls != r.n as u64)) {
        p.push(format!(
            "N = {}: without a matching rule expected {} upstream calls and no coalesced answer, got {} calls and {} coalesced",
            r.n, r.n, r.upstream_calls, r.coalesced
        ));
    }
    p
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

/// `n` identical GETs released together; their statuses (0: no answer)
/// and `x-cache` values.
fn burst(url: &str, n: usize) -> Result<Vec<(u16, String)>, String> {
    released_together(n, || {
        http::get(url, &[TENANT])
            .map(|r| (r.status, r.header("x-cache").unwrap_or("").to_string()))
            .unwrap_or((0, String::new()))
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

#[derive(Debug, Clone)]
pub struct HResult {
    pub requests: usize,
    pub ok: usize,
    pub upstream_calls: u64,
    /// Requests whose path the demo API counted as a batch member
    /// (`members_by_path`).
    pub batched: usize,
    /// Requests whose path reached the demo API on its own (`by_path`).
    pub alone: usize,
    pub p50_us: u64,
    /// What failed the verdict (empty: passed).
    pub problems: Vec<String>,
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
/// one call). `batching`: whether the filter's rule batches.
///
/// Verdict: every request answered 200; batching, every request's path
/// counted once as a batch member (`members_by_path`) and none on its
/// own; without, every path counted once on its own (`by_path`).
pub fn batching(
    bench: &Bench,
    name: &str,
    filters: &Filters,
    rate: u32,
    seconds: u32,
    batching: bool,
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
        let tallies = bench.demo_calls()?;
        let calls = tallies["total"]
            .as_u64()
            .ok_or("demo API /__calls has no total")?;
        let count = |key: &str, i: usize| tallies[key][format!("/api/quotes/h{i}")].as_u64();
        let batched = (0..total)
            .filter(|&i| count("members_by_path", i) == Some(1))
            .count();
        let alone = (0..total)
            .filter(|&i| count("by_path", i).is_some())
            .count();
        let mut us: Vec<u64> = lat.iter().map(|(_, u)| *u).collect();
        us.sort_unstable();
        let mut r = HResult {
            requests: lat.len(),
            ok: lat.iter().filter(|(ok, _)| *ok).count(),
            upstream_calls: calls,
            batched,
            alone,
            p50_us: us.get(us.len() / 2).copied().unwrap_or(0),
            problems: Vec::new(),
        };
        let once_alone = (0..total)
            .filter(|&i| count("by_path", i) == Some(1))
            .count();
        if r.ok != total || r.requests != total {
            r.problems
                .push(format!("{} of {total} requests answered 200", r.ok));
        }
        if batching && (batched != total || alone != 0) {
            r.problems.push(format!(
                "{batched} of {total} requests answered from a batch (members_by_path), {alone} went upstream on their own"
            ));
        }
        if !batching && (once_alone != total || batched != 0) {
            r.problems.push(format!(
                "without batching expected each of {total} paths upstream once on its own, got {once_alone} (and {batched} as batch members)"
            ));
        }
        Ok(r)
    })();
    bench.stop_gateway(envoy)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(n: usize, statuses: Vec<(u16, u64)>, calls: u64, coalesced: u64, hits: u64) -> GResult {
        GResult {
            n,
            statuses,
            upstream_calls: calls,
            coalesced,
            hits,
            elapsed_ms: 0,
            problems: Vec::new(),
        }
    }

    #[test]
    fn g_verdict() {
        let p = "/api/items/g10";
        assert!(g_problems(&g(10, vec![(200, 10)], 1, 9, 0), p, true, true).is_empty());
        assert!(g_problems(&g(10, vec![(200, 10)], 2, 8, 0), p, true, true).is_empty());
        // A follower without its mark, a hit, a non-200, a missing key.
        assert_eq!(
            g_problems(&g(10, vec![(200, 10)], 1, 8, 0), p, true, true).len(),
            1
        );
        assert_eq!(
            g_problems(&g(10, vec![(200, 10)], 1, 8, 1), p, true, true).len(),
            2
        );
        assert_eq!(
            g_problems(&g(10, vec![(200, 9), (0, 1)], 1, 9, 0), p, true, true).len(),
            1
        );
        let missing = g_problems(&g(10, vec![(200, 10)], 0, 10, 0), p, false, true);
        assert!(missing[0].contains("no by_path entry"), "{missing:?}");
        // Without coalescing: N calls, none coalesced.
        assert!(g_problems(&g(10, vec![(200, 10)], 10, 0, 0), p, true, false).is_empty());
        assert_eq!(
            g_problems(&g(10, vec![(200, 10)], 9, 0, 0), p, true, false).len(),
            1
        );
    }
}
