//! The soak's load: `workers` threads, each with its own keep-alive
//! HTTP/1.1 connection to Envoy, claiming the next request index from one
//! counter and sending it at its due time (`start + index / rate`, a
//! burst's requests all at their block's time): an open loop at a fixed
//! rate for as long as a worker is free, so a stalled answer delays only
//! the worker waiting for it. Unpaced (`rate` = None), every worker sends
//! as fast as it is answered: the capacity run.
//!
//! Every answer is classified at once (what the verdict allows, below)
//! and tallied per worker; `x-optimizer-cost` is summed per tenant.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::chaos::Journal;
use crate::mix::{Kind, Mix, Req};

/// How long a worker waits for an answer (a stall is 2 s; a batch member
/// waits at most its SLA and the batch call's timeout, 5 s).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What an answer is, for the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// 2xx.
    Ok,
    /// 429 `rate_limited` (the limiter: low at once, medium after its
    /// queue).
    Limited,
    /// 429 `budget_exceeded`.
    BudgetExceeded,
    /// 503 `budget_unavailable`: cost-control unreachable and the
    /// tenant's pool and fail-open credit spent.
    BudgetUnavailable,
    /// 503 `unavailable`: every provider of the routing rule failing.
    RoutingUnavailable,
    /// A 5xx the demo API made (`{"error":"injected_fault"}`).
    InjectedStatus,
    /// Envoy's 503 for an upstream that closed the connection without an
    /// answer (an injected reset), while a reset was injected on its path.
    InjectedReset,
    /// Anything else: fails the soak.
    Unexpected,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "2xx",
            Class::Limited => "429 rate_limited",
            Class::BudgetExceeded => "429 budget_exceeded",
            Class::BudgetUnavailable => "503 budget_unavailable",
            Class::RoutingUnavailable => "503 unavailable (routing)",
            Class::InjectedStatus => "5xx injected by the demo API",
            Class::InjectedReset => "503 upstream reset (injected)",
            Class::Unexpected => "unexpected",
        }
    }
}

/// Envoy's local reply when the upstream closed without answering.
const RESET_BODY: &str = "upstream connect error or disconnect/reset before headers";

/// Classify one answer; `reset_window`: a reset was injected on this
/// request's path recently enough to explain Envoy's reset reply.
pub fn classify(status: u16, body: &[u8], reset_window: bool) -> Class {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let error = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default();
    match status {
        200..=299 => Class::Ok,
        429 if error == "rate_limited" => Class::Limited,
        429 if error == "budget_exceeded" => Class::BudgetExceeded,
        503 if error == "budget_unavailable" => Class::BudgetUnavailable,
        503 if error == "unavailable" => Class::RoutingUnavailable,
        500..=599 if error == "injected_fault" => Class::InjectedStatus,
        503 if reset_window && text.starts_with(RESET_BODY) => Class::InjectedReset,
        _ => Class::Unexpected,
    }
}

/// One answer the verdict refused (or a request that got none).
#[derive(Debug, Clone)]
pub struct Bad {
    pub at_s: f64,
    pub request: String,
    pub what: String,
}

/// Tallies of one worker, merged at the end.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub by_kind_class: BTreeMap<(Kind, Class), u64>,
    /// Per tenant: answers carrying `x-optimizer-cost`, and its sum.
    pub priced: BTreeMap<&'static str, (u64, i64)>,
    /// Requests that got no answer (connect, write or read failed).
    pub transport_errors: u64,
    /// Requests sent again on a new connection because the kept-alive
    /// one was closed before any byte of an answer.
    pub resent: u64,
    /// Reset replies classified while the soak's `POST /__faults`
    /// installing the reset had not returned yet.
    pub resets_installing: u64,
    pub latencies_us: Vec<u32>,
    /// The latest any request was sent after its due time.
    pub max_lag_ms: u64,
    pub x_cache: BTreeMap<String, u64>,
}

impl Tally {
    pub fn merge(&mut self, o: Tally) {
        for (k, n) in o.by_kind_class {
            *self.by_kind_class.entry(k).or_default() += n;
        }
        for (t, (n, c)) in o.priced {
            let e = self.priced.entry(t).or_default();
            e.0 += n;
            e.1 += c;
        }
        self.transport_errors += o.transport_errors;
        self.resent += o.resent;
        self.resets_installing += o.resets_installing;
        self.latencies_us.extend(o.latencies_us);
        self.max_lag_ms = self.max_lag_ms.max(o.max_lag_ms);
        for (k, n) in o.x_cache {
            *self.x_cache.entry(k).or_default() += n;
        }
    }

    pub fn requests(&self) -> u64 {
        self.by_kind_class.values().sum::<u64>() + self.transport_errors
    }

    pub fn class(&self, c: Class) -> u64 {
        self.by_kind_class
            .iter()
            .filter(|((_, cl), _)| *cl == c)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn kind(&self, k: Kind) -> u64 {
        self.by_kind_class
            .iter()
            .filter(|((kk, _), _)| *kk == k)
            .map(|(_, n)| n)
            .sum()
    }

    /// The latency at quantile `q` (0..=1), in ms.
    pub fn latency_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Progress all workers share: answers so far (the sampler's rate) and
/// the answers the verdict refused (the first few kept).
#[derive(Default)]
pub struct Shared {
    pub answered: AtomicU64,
    pub bad: Mutex<(u64, Vec<Bad>)>,
}

impl Shared {
    fn bad(&self, b: Bad) {
        if let Ok(mut g) = self.bad.lock() {
            g.0 += 1;
            if g.1.len() < 30 {
                g.1.push(b);
            }
        }
    }
}

/// One phase of load.
pub struct Phase<'a> {
    pub port: u16,
    pub mix: &'a Mix,
    /// Requests per second, or None: as fast as answered.
    pub rate: Option<f64>,
    pub workers: usize,
    pub duration: Duration,
    /// The first request index of the phase (phases never reuse one).
    pub first_index: u64,
    /// The soak's clock (t = 0 at its start), for the journal's windows.
    pub epoch: Instant,
    pub journal: &'a Journal,
    pub shared: &'a Shared,
    /// Set to stop early (Ctrl-C is not handled; a failed stack is).
    pub stop: &'a AtomicBool,
}

/// Run a phase; the merged tallies and the next unused request index.
pub fn run(p: &Phase) -> (Tally, u64) {
    let next = AtomicU64::new(p.first_index);
    let start = Instant::now();
    let end = start + p.duration;
    let mut total = Tally::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..p.workers)
            .map(|_| s.spawn(|| worker(p, &next, start, end)))
            .collect();
        for h in handles {
            if let Ok(t) = h.join() {
                total.merge(t);
            }
        }
    });
    (total, next.load(Ordering::Relaxed))
}

fn worker(p: &Phase, next: &AtomicU64, start: Instant, end: Instant) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Conn> = None;
    loop {
        if p.stop.load(Ordering::Relaxed) || Instant::now() >= end {
            break;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let req = p.mix.request(i);
        if let Some(rate) = p.rate {
            let due = start
                + Duration::from_secs_f64((req.due_index - p.first_index) as f64 / rate.max(1.0));
            if due >= end {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else {
                t.max_lag_ms = t.max_lag_ms.max((now - due).as_millis() as u64);
            }
        }
        one(p, &req, &mut conn, &mut t);
    }
    t
}

fn one(p: &Phase, req: &Req, conn: &mut Option<Conn>, t: &mut Tally) {
    let sent = Instant::now();
    let at_s = (sent - p.epoch).as_secs_f64();
    let bytes = req.bytes();
    // A connection Envoy closed while idle shows up on the write or as an
    // empty read: one retry on a fresh connection, never after an answer
    // started (the request could have been served).
    let mut answer = None;
    let mut last_err = String::new();
    for attempt in 0..2 {
        if conn.is_none() {
            match Conn::open(p.port) {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    last_err = format!("connect: {e}");
                    break;
                }
            }
        }
        let Some(c) = conn.as_mut() else { break };
        match c.exchange(&bytes) {
            Ok(r) => {
                answer = Some(r);
                t.resent += attempt;
                break;
            }
            Err((e, fresh_close)) => {
                *conn = None;
                last_err = e.to_string();
                if !(fresh_close && attempt == 0) {
                    break;
                }
            }
        }
    }
    let Some(r) = answer else {
        t.transport_errors += 1;
        p.shared.bad(Bad {
            at_s,
            request: format!("{} {}", req.method(), req.target),
            what: format!("no answer: {last_err}"),
        });
        return;
    };
    if r.close {
        *conn = None;
    }
    t.latencies_us
        .push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    let class = classify(
        r.status,
        &r.body,
        p.journal.reset_active(req.kind.prefix(), at_s),
    );
    if class == Class::InjectedReset && p.journal.reset_installing(req.kind.prefix()) {
        t.resets_installing += 1;
    }
    *t.by_kind_class.entry((req.kind, class)).or_default() += 1;
    if let Some(cost) = r.cost {
        let e = t.priced.entry(req.tenant).or_default();
        e.0 += 1;
        e.1 += cost;
    }
    if !r.x_cache.is_empty() {
        *t.x_cache.entry(r.x_cache).or_default() += 1;
    }
    p.shared.answered.fetch_add(1, Ordering::Relaxed);
    if class == Class::Unexpected {
        p.shared.bad(Bad {
            at_s,
            request: format!(
                "{} {} (tenant {}{})",
                req.method(),
                req.target,
                req.tenant,
                req.priority
                    .map(|p| format!(", priority {p}"))
                    .unwrap_or_default()
            ),
            what: format!(
                "{} {}",
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
            ),
        });
    }
}

/// A keep-alive HTTP/1.1 client connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

struct Resp {
    status: u16,
    body: Vec<u8>,
    cost: Option<i64>,
    x_cache: String,
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

    /// Write the request and read its answer. On error, whether the
    /// connection was closed before any byte of an answer came (then the
    /// request may be sent again on a new one).
    fn exchange(&mut self, req: &[u8]) -> Result<Resp, (std::io::Error, bool)> {
        if let Err(e) = self.reader.get_mut().write_all(req) {
            return Err((e, true));
        }
        read_response(&mut self.reader)
    }
}

fn bad(what: &str) -> std::io::Error {
    crate::http1::bad(what)
}

/// One HTTP/1.1 response: status line, headers, a body by
/// `content-length` or chunked.
fn read_response(r: &mut impl BufRead) -> Result<Resp, (std::io::Error, bool)> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Err((bad("connection closed before an answer"), true)),
        Ok(_) => {}
        Err(e) => return Err((e, false)),
    }
    let a = crate::http1::read_after_status(r, &line).map_err(|e| (e, false))?;
    Ok(Resp {
        status: a.status,
        cost: a
            .header("x-optimizer-cost")
            .and_then(|v| v.parse::<i64>().ok()),
        x_cache: a.header("x-cache").unwrap_or_default().to_string(),
        close: a.close,
        body: a.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(200, b"{}", false), Class::Ok);
        assert_eq!(
            classify(429, br#"{"error":"rate_limited","retry_after_s":1}"#, false),
            Class::Limited
        );
        assert_eq!(
            classify(
                503,
                br#"{"error":"budget_unavailable","message":"x"}"#,
                false
            ),
            Class::BudgetUnavailable
        );
        assert_eq!(
            classify(502, br#"{"error":"injected_fault","status":502}"#, false),
            Class::InjectedStatus
        );
        let reset = b"upstream connect error or disconnect/reset before headers. reset reason: connection termination";
        assert_eq!(classify(503, reset, true), Class::InjectedReset);
        assert_eq!(classify(503, reset, false), Class::Unexpected);
        assert_eq!(classify(429, b"slow down", false), Class::Unexpected);
        assert_eq!(classify(404, b"{}", false), Class::Unexpected);
    }

    #[test]
    fn reads_answers() {
        let wire = "HTTP/1.1 200 OK\r\nx-optimizer-cost: 2000\r\nx-cache: HIT\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let mut r = BufReader::new(wire.as_bytes());
        let a = read_response(&mut r).ok().unwrap();
        assert_eq!(
            (a.status, a.cost, a.x_cache.as_str()),
            (200, Some(2000), "HIT")
        );
        let b = read_response(&mut r).ok().unwrap();
        assert_eq!(
            (b.status, b.body.as_slice(), b.cost),
            (503, &b"abc"[..], None)
        );
        assert!(matches!(read_response(&mut r), Err((_, true))));
    }
}
