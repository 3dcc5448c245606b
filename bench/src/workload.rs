//! K: a realistic workload, the same fixed request sequence replayed
//! against three Envoys — no filter, Envoy's own cache filter
//! (`simple_http_cache`) alone, and the optimizer configured as a user
//! would (cache and coalescing on the items, batching on the quotes, a
//! rate limit on the reports, a price on every rule) — counting upstream
//! calls (the demo API's `/__calls`) and Envoy's CPU per request.
//!
//! The sequence (seeded, `BENCH_K_SEED`): `BENCH_K_REQUESTS` requests of
//! one tenant; by share of requests, 70 % GETs of an item drawn from a
//! Zipf distribution (s = 1) over 10,000 items, 5 % PUTs of an item drawn
//! the same way (a write, which the optimizer's cache rule turns into an
//! invalidation of the item), 12 % GETs of a quote (uniform over 10,000;
//! `no-store`: live prices, batched by the optimizer), 5 % GETs of a report
//! (uniform over 100; rate-limited by the optimizer, `priority: low`, so
//! a request finding no token gets 429 at once), and 8 % in bursts of 8
//! identical GETs of a uniformly drawn item, sent together on 8
//! connections (mostly an item not cached yet: what coalescing is for).
//!
//! The load client is the bench's own (HTTP/1.1 over keep-alive
//! connections, below): `BENCH_CONNECTIONS` (32) workers, each taking the
//! next step of the sequence when its previous one is answered; a burst
//! step is written to 8 connections of its worker before any answer is
//! read. The client's threads run on the client core.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::configs::TENANT;
use crate::rng::{Rng, Zipf};
use crate::stack::{Bench, Host, Workers};
use crate::yaml::{Filters, Route};

/// The knobs of K.
#[derive(Debug, Clone, Copy)]
pub struct KSettings {
    pub requests: usize,
    pub seed: u64,
    pub connections: usize,
}

/// Items, their Zipf exponent, the burst size, the upstream's latency for
/// a GET of an item or a quote (so that a burst's requests are in flight
/// together), and the price of one upstream call.
pub const ITEMS: usize = 10_000;
pub const ZIPF_S: f64 = 1.0;
pub const BURST: usize = 8;
pub const DELAY_MS: u64 = 10;
pub const PRICE_PER_CALL: &str = "0.002";
const PRICE_MICROS: u64 = 2_000;
/// Shares of requests: single item GETs, writes, quotes, reports, bursts.
pub const SHARES: [(Kind, f64); 5] = [
    (Kind::Item, 0.70),
    (Kind::Write, 0.05),
    (Kind::Quote, 0.12),
    (Kind::Report, 0.05),
    (Kind::Burst, 0.08),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Item,
    Write,
    Quote,
    Report,
    Burst,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Item => "item GET",
            Kind::Write => "item PUT",
            Kind::Quote => "quote GET",
            Kind::Report => "report GET (rate-limited)",
            Kind::Burst => "item GET in a burst",
        }
    }
}

/// One step of the sequence: `n` identical requests sent together (1, or
/// [`BURST`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: Kind,
    /// The item, quote or report number.
    pub key: usize,
    pub n: usize,
}

impl Step {
    pub fn method(&self) -> &'static str {
        if self.kind == Kind::Write {
            "PUT"
        } else {
            "GET"
        }
    }

    /// Path and query.
    pub fn target(&self) -> String {
        match self.kind {
            Kind::Item | Kind::Burst => format!(
                "/api/items/{}?size=1024&cache-control=max-age%3D600&delay_ms={DELAY_MS}",
                self.key
            ),
            Kind::Write => format!("/api/items/{}", self.key),
            Kind::Quote => format!(
                "/api/quotes/{}?size=256&cache-control=no-store&delay_ms={DELAY_MS}",
                self.key
            ),
            Kind::Report => format!("/api/reports/{}?size=512", self.key),
        }
    }

    /// The bytes of one request.
    pub fn request(&self) -> Vec<u8> {
        let body = if self.kind == Kind::Write {
            format!("{{\"item\":{},\"price\":\"1.00\"}}", self.key)
        } else {
            String::new()
        };
        let mut r = format!(
            "{} {} HTTP/1.1\r\nhost: bench\r\n{}: {}\r\n",
            self.method(),
            self.target(),
            TENANT.0,
            TENANT.1
        );
        if !body.is_empty() {
            r.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        r.push_str("\r\n");
        r.push_str(&body);
        r.into_bytes()
    }
}

/// The sequence: exactly `requests` requests (a last burst is cut short
/// to fit), the same for a given seed.
pub fn sequence(requests: usize, seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let zipf = Zipf::new(ITEMS, ZIPF_S);
    // Steps drawn by weight: a burst step carries BURST requests.
    let weights: Vec<(Kind, f64)> = SHARES
        .iter()
        .map(|(k, share)| {
            (
                *k,
                if *k == Kind::Burst {
                    share / BURST as f64
                } else {
                    *share
                },
            )
        })
        .collect();
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut out = Vec::new();
    let mut sent = 0;
    while sent < requests {
        let mut u = rng.unit() * total;
        let mut kind = Kind::Item;
        for (k, w) in &weights {
            kind = *k;
            if u < *w {
                break;
            }
            u -= w;
        }
        let (key, n) = match kind {
            Kind::Item | Kind::Write => (zipf.sample(&mut rng), 1),
            Kind::Quote => (rng.below(ITEMS) + 1, 1),
            Kind::Report => (rng.below(100) + 1, 1),
            Kind::Burst => (rng.below(ITEMS) + 1, BURST.min(requests - sent)),
        };
        sent += n;
        out.push(Step { kind, key, n });
    }
    out
}

/// The optimizer as a user would configure it for this API.
pub fn optimizer_filter() -> Value {
    json!({
        "version": 1,
        "identity": {"tenant": [{"header": TENANT.0}]},
        "cache_store": {"max_entries": 16384},
        "routes": [
            {"name": "items", "match": {"prefix": "/api/items/"}, "sla_ms": 5000,
             "cache": {}, "coalesce": {},
             "cost": {"cost_per_call": PRICE_PER_CALL}},
            {"name": "quotes", "match": {"prefix": "/api/quotes/", "methods": ["GET"]}, "sla_ms": 2000,
             "batch": {"upstream": "demo_api", "path": "/api/batch", "format": "rest",
                       "window_ms": 20, "max_size": 24},
             "cost": {"cost_per_call": PRICE_PER_CALL,
                      "batch": {"per_batch": PRICE_PER_CALL, "per_member": "0"}}},
            {"name": "reports", "match": {"prefix": "/api/reports/"}, "sla_ms": 2000,
             "priority": "low",
             "limit": {"by": "tenant", "token_bucket": {"capacity": 20, "refill_per_s": 50.0}},
             "cost": {"cost_per_call": PRICE_PER_CALL}}
        ]
    })
}

/// The optimizer's configuration for K: [`optimizer_filter`], or the JSON
/// in the file `BENCH_K_FILTER` names (to try another configuration on
/// the same sequence).
pub fn optimizer_config() -> Result<Value, String> {
    match std::env::var("BENCH_K_FILTER") {
        Ok(path) if !path.trim().is_empty() => {
            let text = std::fs::read_to_string(path.trim())
                .map_err(|e| format!("BENCH_K_FILTER: read {path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("BENCH_K_FILTER: {path}: {e}"))
        }
        _ => Ok(optimizer_filter()),
    }
}

/// The three gateways K compares: (id, what, filters).
pub fn setups(optimizer: Value) -> [(&'static str, &'static str, Filters); 3] {
    [
        ("K-none", "Envoy, no filter", Filters::None),
        (
            "K-envoy-cache",
            "Envoy's cache filter (simple_http_cache) alone",
            Filters::SimpleHttpCache,
        ),
        (
            "K-optimizer",
            "the optimizer (cache + coalescing on items, batching on quotes, rate limit on reports, priced)",
            Filters::Wasm(optimizer),
        ),
    ]
}

/// One answer, as the client saw it.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// 0: no answer (a socket error or a timeout).
    pub status: u16,
    pub x_cache: String,
    /// The demo API's `call` number in the body (items and writes).
    pub call: Option<u64>,
    /// Microseconds from the replay's start: sent, answered.
    pub sent_us: u64,
    pub done_us: u64,
    /// Why there was no answer (status 0).
    pub error: Option<String>,
}

/// K on one gateway.
#[derive(Debug, Clone)]
pub struct KRun {
    pub id: &'static str,
    pub title: &'static str,
    pub requests: usize,
    /// Answers by request kind and status (0: socket error or timeout).
    pub statuses: Vec<(Kind, u16, u64)>,
    /// Answers by `x-cache` (`-` when absent).
    pub x_cache: Vec<(String, u64)>,
    pub upstream_calls: u64,
    /// Upstream calls by route: items (reads and writes), quotes (alone),
    /// batch calls, reports.
    pub calls_by_route: [(&'static str, u64); 4],
    pub cpu_us_per_req: f64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Reads of an item answered with its state from before a write to it
    /// that had been answered before the read was sent.
    pub stale_reads: u64,
    pub problems: Vec<String>,
}

impl KRun {
    pub fn cost_micros(&self) -> u64 {
        self.upstream_calls * PRICE_MICROS
    }

    pub fn count(&self, keep: impl Fn(Kind, u16) -> bool) -> u64 {
        self.statuses
            .iter()
            .filter(|(k, s, _)| keep(*k, *s))
            .map(|(_, _, n)| n)
            .sum()
    }
}

/// K: the sequence replayed against each setup in turn, each Envoy fresh
/// (empty caches) with one worker on the server core.
pub fn run(
    bench: &Bench,
    s: &KSettings,
    optimizer: Value,
    ticks_per_second: u64,
) -> Result<Vec<KRun>, String> {
    let steps = sequence(s.requests, s.seed);
    let pin = bench.pin.client.map(PinGuard::pin);
    let mut out = Vec::new();
    for (id, title, filters) in setups(optimizer) {
        println!("==> K on {title}: {} requests", s.requests);
        let r = run_one(bench, &steps, s, id, title, &filters, ticks_per_second)?;
        println!(
            "==> K {id}: {} upstream calls, {:.1} Envoy CPU µs/req, {:.1} s{}",
            r.upstream_calls,
            r.cpu_us_per_req,
            r.seconds,
            if r.problems.is_empty() {
                String::new()
            } else {
                format!("; FAILED: {}", r.problems.join("; "))
            }
        );
        out.push(r);
    }
    drop(pin);
    // The optimizer must not make more calls than no filter.
    if let (Some(none), Some(opt)) = (
        out.iter()
            .find(|r| r.id == "K-none")
            .map(|r| r.upstream_calls),
        out.iter_mut().find(|r| r.id == "K-optimizer"),
    ) {
        if opt.upstream_calls > none {
            opt.problems.push(format!(
                "the optimizer made {} upstream calls, more than no filter ({none})",
                opt.upstream_calls
            ));
        }
    }
    // Nor answer a read with an item's state from before a write that was
    // answered before the read was sent (its cache invalidates on writes,
    // and a request after a write follows no leader from before it).
    if let Some(opt) = out.iter_mut().find(|r| r.id == "K-optimizer") {
        if opt.stale_reads > 0 {
            opt.problems.push(format!(
                "the optimizer answered {} reads with an item's state from before a finished write",
                opt.stale_reads
            ));
        }
    }
    Ok(out)
}

/// `bench --k-replay <port>`: the sequence replayed against a gateway
/// already listening on 127.0.0.1:<port> (to look at one under K's load
/// with its own logs and counters); prints the answers by kind, status
/// and `x-cache`, and the first requests that got none.
pub fn replay_only(port: u16, s: &KSettings) -> String {
    let steps = sequence(s.requests, s.seed);
    let start = Instant::now();
    let answers = replay(port, &steps, s.connections, start);
    let r = summarise("K-replay", "replay", &steps, &answers, &json!({}), 0.0, 0.0);
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(k, st, n)| format!("{} {st}: {n}", k.name()))
        .collect();
    let xc: Vec<String> = r.x_cache.iter().map(|(x, n)| format!("{x} {n}")).collect();
    format!(
        "{} requests in {:.1} s; {}; x-cache: {}; {}",
        r.requests,
        start.elapsed().as_secs_f64(),
        statuses.join(", "),
        xc.join(", "),
        r.problems.join("; ")
    )
}

fn run_one(
    bench: &Bench,
    steps: &[Step],
    s: &KSettings,
    id: &'static str,
    title: &'static str,
    filters: &Filters,
    ticks_per_second: u64,
) -> Result<KRun, String> {
    let gateway =
        bench.start_gateway(id, Host::Envoy, filters, &Route::Proxy, Workers::OnePinned)?;
    let result = (|| {
        bench.demo_reset()?;
        let ticks0 = gateway.cpu_ticks()?;
        let start = Instant::now();
        let answers = replay(bench.ports.listen, steps, s.connections, start);
        let seconds = start.elapsed().as_secs_f64();
        let ticks1 = gateway.cpu_ticks()?;
        let calls = bench.demo_calls()?;
        // Envoy's counters after the replay, for a look afterwards (the
        // filter's own as far as its workers sent them: up to a second,
        // `metrics.flush_ms`, behind).
        if let Ok(r) = crate::http::get(
            &format!("http://127.0.0.1:{}/stats", bench.ports.admin),
            &[],
        ) {
            let _ = std::fs::write(bench.paths.out.join(format!("{id}-stats.txt")), &r.body);
        }
        let cpu_us = ticks1.saturating_sub(ticks0) as f64 * 1e6 / ticks_per_second as f64;
        Ok(summarise(
            id, title, steps, &answers, &calls, cpu_us, seconds,
        ))
    })();
    bench.stop_gateway(gateway)?;
    result
}

/// Counts, verdict and staleness of one replay.
fn summarise(
    id: &'static str,
    title: &'static str,
    steps: &[Step],
    answers: &[Vec<Answer>],
    calls: &Value,
    cpu_us: f64,
    seconds: f64,
) -> KRun {
    let mut statuses: HashMap<(Kind, u16), u64> = HashMap::new();
    let mut x_cache: HashMap<String, u64> = HashMap::new();
    let mut latencies = Vec::new();
    // Each item's writes: (answered at, their call number).
    let mut writes: HashMap<usize, Vec<(u64, u64)>> = HashMap::new();
    for (step, got) in steps.iter().zip(answers) {
        for a in got {
            *statuses.entry((step.kind, a.status)).or_default() += 1;
            let x = if a.x_cache.is_empty() {
                "-"
            } else {
                &a.x_cache
            };
            *x_cache.entry(x.to_string()).or_default() += 1;
            latencies.push(a.done_us.saturating_sub(a.sent_us));
            if step.kind == Kind::Write && (200..300).contains(&a.status) {
                if let Some(c) = a.call {
                    writes.entry(step.key).or_default().push((a.done_us, c));
                }
            }
        }
    }
    let mut stale_reads = 0;
    for (step, got) in steps.iter().zip(answers) {
        if !matches!(step.kind, Kind::Item | Kind::Burst) {
            continue;
        }
        let Some(ws) = writes.get(&step.key) else {
            continue;
        };
        for a in got.iter().filter(|a| a.status == 200) {
            let newest = ws
                .iter()
                .filter(|(done, _)| *done < a.sent_us)
                .map(|(_, c)| *c)
                .max();
            if let (Some(w), Some(c)) = (newest, a.call) {
                if c < w {
                    stale_reads += 1;
                }
            }
        }
    }
    let by_path = calls["by_path"].as_object();
    let under = |prefix: &str| -> u64 {
        by_path
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    let requests: usize = steps.iter().map(|s| s.n).sum();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(
                ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1)) - 1,
            )
            .copied()
            .unwrap_or(0)
    };
    let mut statuses: Vec<(Kind, u16, u64)> =
        statuses.into_iter().map(|((k, s), n)| (k, s, n)).collect();
    statuses.sort_by_key(|(k, s, _)| (SHARES.iter().position(|(x, _)| x == k), *s));
    let mut x_cache: Vec<(String, u64)> = x_cache.into_iter().collect();
    x_cache.sort();
    let mut r = KRun {
        id,
        title,
        requests,
        statuses,
        x_cache,
        upstream_calls: calls["total"].as_u64().unwrap_or(0),
        calls_by_route: [
            ("items", under("/api/items/")),
            ("quotes alone", under("/api/quotes/")),
            ("batches", under("/api/batch")),
            ("reports", under("/api/reports/")),
        ],
        cpu_us_per_req: cpu_us / requests.max(1) as f64,
        seconds,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        stale_reads,
        problems: Vec::new(),
    };
    let answered: u64 = r.statuses.iter().map(|(_, _, n)| n).sum();
    if answered != requests as u64 {
        r.problems.push(format!(
            "{answered} answers recorded for {requests} requests"
        ));
    }
    let socket = r.count(|_, s| s == 0);
    if socket > 0 {
        let first: Vec<String> = steps
            .iter()
            .zip(answers)
            .flat_map(|(step, got)| got.iter().map(move |a| (step, a)))
            .filter(|(_, a)| a.status == 0)
            .take(3)
            .map(|(step, a)| {
                format!(
                    "{} {} sent at {:.3} s, {} after {:.3} s",
                    step.method(),
                    step.target(),
                    a.sent_us as f64 / 1e6,
                    a.error.as_deref().unwrap_or("no answer"),
                    a.done_us.saturating_sub(a.sent_us) as f64 / 1e6
                )
            })
            .collect();
        r.problems.push(format!(
            "{socket} requests got no answer (socket error or timeout; the first: {})",
            first.join("; ")
        ));
    }
    let bad =
        r.count(|k, s| s != 0 && !(200..300).contains(&s) && !(k == Kind::Report && s == 429));
    if bad > 0 {
        r.problems.push(format!(
            "{bad} answers other than 2xx (a 429 is expected only on the rate-limited reports)"
        ));
    }
    if calls["total"].as_u64().is_none() {
        r.problems
            .push("the demo API's /__calls has no total".to_string());
    }
    r
}

/// Replay `steps` on `workers` keep-alive workers; the answers of each
/// step, in the step's order.
fn replay(port: u16, steps: &[Step], workers: usize, start: Instant) -> Vec<Vec<Answer>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Vec<Answer>>> = Mutex::new(vec![Vec::new(); steps.len()]);
    std::thread::scope(|sc| {
        for _ in 0..workers.max(1) {
            let (next, results) = (&next, &results);
            let spawned = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(sc, move || {
                    let mut conns: Vec<Option<Conn>> = Vec::new();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(step) = steps.get(i) else {
                            break;
                        };
                        mine.push((i, send_step(port, step, &mut conns, start)));
                    }
                    let mut all = results.lock().unwrap_or_else(|e| e.into_inner());
                    for (i, a) in mine {
                        all[i] = a;
                    }
                });
            if let Err(e) = spawned {
                println!("==> K: cannot start a client thread: {e}");
            }
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// One step: its `n` requests written to `n` connections, then their
/// answers read. A connection that failed is dropped (and reopened for
/// the next step).
fn send_step(port: u16, step: &Step, conns: &mut Vec<Option<Conn>>, start: Instant) -> Vec<Answer> {
    let req = step.request();
    if conns.len() < step.n {
        conns.resize_with(step.n, || None);
    }
    let us = || start.elapsed().as_micros() as u64;
    let mut sent = Vec::with_capacity(step.n);
    for slot in conns.iter_mut().take(step.n) {
        let at = us();
        let ok = (|| -> std::io::Result<()> {
            if slot.is_none() {
                *slot = Some(Conn::open(port)?);
            }
            slot.as_mut().map_or(Ok(()), |c| c.write(&req))
        })();
        if ok.is_err() {
            *slot = None;
        }
        sent.push((at, ok.err().map(|e| format!("write: {e}"))));
    }
    let mut out = Vec::with_capacity(step.n);
    for (slot, (at, failed)) in conns.iter_mut().take(step.n).zip(sent) {
        let mut a = Answer {
            sent_us: at,
            error: failed,
            ..Answer::default()
        };
        if a.error.is_none() {
            match slot.as_mut().map(Conn::read_response) {
                Some(Ok(resp)) => {
                    a.status = resp.status;
                    a.x_cache = resp.x_cache;
                    a.call = call_number(&resp.body);
                    if resp.close {
                        *slot = None;
                    }
                }
                Some(Err(e)) => {
                    a.error = Some(format!("read: {e}"));
                    *slot = None;
                }
                None => *slot = None,
            }
        }
        a.done_us = us();
        out.push(a);
    }
    out
}

/// The `"call":N` of a demo API answer (a resource or a write's echo).
fn call_number(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find("\"call\":")? + "\"call\":".len();
    let digits: String = text[at..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// How long the client waits for an answer before it counts the request
/// as failed (every K request's SLA is at most 5 s).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A keep-alive HTTP/1.1 client connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

struct Resp {
    status: u16,
    x_cache: String,
    body: Vec<u8>,
    /// The server will close the connection.
    close: bool,
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn {
            reader: BufReader::with_capacity(16 * 1024, s),
        })
    }

    fn write(&mut self, req: &[u8]) -> std::io::Result<()> {
        self.reader.get_mut().write_all(req)
    }

    fn read_response(&mut self) -> std::io::Result<Resp> {
        read_response(&mut self.reader)
    }
}

/// One HTTP/1.1 response: status line, headers, a body by
/// `content-length` or chunked.
fn read_response(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(crate::http1::bad("connection closed"));
    }
    let a = crate::http1::read_after_status(r, &line)?;
    Ok(Resp {
        status: a.status,
        x_cache: a.header("x-cache").unwrap_or_default().to_string(),
        close: a.close,
        body: a.body,
    })
}

/// The bench's threads pinned to the client core while K runs (threads
/// inherit the affinity of the thread that starts them), unpinned after.
struct PinGuard;

impl PinGuard {
    fn pin(core: u32) -> PinGuard {
        set_affinity(&core.to_string());
        PinGuard
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let all = crate::machine::cores().saturating_sub(1);
        set_affinity(&format!("0-{all}"));
    }
}

/// `taskset -p -c <list> <our pid>`: the calling process's main thread
/// (whose new threads inherit it).
fn set_affinity(list: &str) {
    let _ = std::process::Command::new("taskset")
        .args(["-p", "-c", list, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_fixed_by_its_seed_and_has_the_mix() {
        let a = sequence(30_000, 18);
        assert_eq!(a, sequence(30_000, 18));
        assert_ne!(a, sequence(30_000, 19));
        assert_eq!(a.iter().map(|s| s.n).sum::<usize>(), 30_000);
        let share = |k: Kind| {
            a.iter().filter(|s| s.kind == k).map(|s| s.n).sum::<usize>() as f64 / 30_000.0
        };
        for (k, want) in SHARES {
            assert!(
                (share(k) - want).abs() < 0.02,
                "{k:?}: {} vs {want}",
                share(k)
            );
        }
        assert!(a
            .iter()
            .filter(|s| s.kind == Kind::Burst)
            .all(|s| s.n <= BURST));
        let hot = a
            .iter()
            .filter(|s| s.kind == Kind::Item && s.key == 1)
            .count();
        assert!(hot > 1000, "item 1 is the most requested: {hot}");
    }

    #[test]
    fn requests_and_answers_on_the_wire() {
        let put = Step {
            kind: Kind::Write,
            key: 7,
            n: 1,
        };
        let text = String::from_utf8(put.request()).unwrap();
        assert!(text.starts_with("PUT /api/items/7 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("x-tenant-id: bench\r\n") && text.contains("content-length: 25\r\n"));
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 22\r\nx-cache: HIT\r\n\r\n{\"id\":\"7\",\"call\": 42}X";
        let r = read_response(&mut &raw[..]).unwrap();
        assert_eq!((r.status, r.x_cache.as_str(), r.close), (200, "HIT", false));
        assert_eq!(call_number(&r.body), Some(42));
        let chunked = b"HTTP/1.1 429 Too Many\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = read_response(&mut &chunked[..]).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.close),
            (429, &b"abcde"[..], true)
        );
    }

    #[test]
    fn a_read_older_than_a_finished_write_is_stale() {
        let steps = vec![
            Step {
                kind: Kind::Write,
                key: 1,
                n: 1,
            },
            Step {
                kind: Kind::Item,
                key: 1,
                n: 1,
            },
            Step {
                kind: Kind::Item,
                key: 1,
                n: 1,
            },
            Step {
                kind: Kind::Report,
                key: 1,
                n: 1,
            },
        ];
        let a = |status, call, sent_us, done_us| Answer {
            status,
            x_cache: String::new(),
            call: Some(call),
            sent_us,
            done_us,
            error: None,
        };
        let answers = vec![
            vec![a(200, 10, 0, 100)],
            // Sent after the write was answered, with an older state: stale.
            vec![a(200, 5, 150, 160)],
            // Sent before the write was answered: not judged.
            vec![a(200, 4, 50, 60)],
            vec![a(429, 0, 0, 1)],
        ];
        let calls = json!({"total": 3, "by_path": {"/api/items/1": 2, "/api/reports/1": 1}});
        let r = summarise("K-x", "x", &steps, &answers, &calls, 400.0, 1.0);
        assert_eq!(r.stale_reads, 1);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.cpu_us_per_req, 100.0);
        assert_eq!(r.calls_by_route[0], ("items", 2));
        assert_eq!(r.count(|k, s| k == Kind::Report && s == 429), 1);
        let mut bad = answers.clone();
        bad[1][0].status = 503;
        let r = summarise("K-x", "x", &steps, &bad, &calls, 400.0, 1.0);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    }
}
