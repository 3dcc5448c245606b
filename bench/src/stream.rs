//! S: streamed LLM answers (issue 22). The demo API's OpenAI-style
//! `POST /v1/chat/completions` with `"stream": true`, each request a new
//! stream of server-sent events (`max_tokens` content chunks, the usage
//! chunk, `data: [DONE]`), the events spaced `x-demo-chunk-delay-ms`
//! apart. Two configurations, in the rounds' shuffle with the others:
//! SA, Envoy without a filter (A's baseline), and SJ, the filter pricing
//! every stream by its tokens as it passes (`cost.tokens`, the demo's
//! models) and reporting the spend to the bench's cost-control.
//!
//! Each round: a fresh Envoy (one worker, pinned, as A–J), a probe
//! stream, a warm-up, then the measured run: `clients` threads of the
//! bench, each sending one stream after another until the run's time is
//! up (a stream started in time is read to its end). Per stream, the
//! time from sending the request to the first complete event (TTFB);
//! over the run, Envoy's CPU (utime + stime, as for A–J) divided by the
//! events delivered.
//!
//! Verdict (fails the round): every stream 200 and complete (a clean end
//! of the chunked body, `data: [DONE]` last, the expected number of
//! content events and a usage chunk); the demo API's count of calls to
//! the path equal to the streams sent and its count of events made equal
//! to the events received (nothing cached, coalesced or lost); for SJ,
//! cost-control's ledger pricing every stream sent to that Envoy at its
//! tokens' price.

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use e2e::sse::{End, SseStream};
use serde_json::{json, Value};

use crate::configs::TENANT;
use crate::procs::{busiest_others, cpu_ticks, machine_busy_ticks, process_ticks};
use crate::report::Status;
use crate::run::{percentile, spread, Settings};
use crate::stack::{Bench, Host, Workers};
use crate::yaml::{Filters, Route};

/// The demo API's chat path.
pub const PATH: &str = "/v1/chat/completions";

/// The tenant SJ's spend is reported under (not J's: J's ledger check
/// counts every event of its own tenant).
pub const TENANT_ID: &str = "bench-stream";

/// Words in every prompt ("bench stream <unique>"): its prompt tokens.
const PROMPT_TOKENS: u64 = 3;

/// demo-small's prices in SJ's rule, micro-USD per 1,000 tokens.
const PROMPT_PER_1K_MICROS: u64 = 500_000;
const COMPLETION_PER_1K_MICROS: u64 = 1_500_000;

/// How long a round waits for SJ's last spend batches.
const LEDGER_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
pub struct SSettings {
    /// Streams in flight at once (client threads) in the CPU run.
    pub clients: usize,
    /// Streams in flight in the TTFB run: few, so that the client core's
    /// queueing does not hide what the gateway adds.
    pub ttfb_clients: usize,
    /// Content chunks per stream (`max_tokens`).
    pub chunks: u64,
    /// `x-demo-chunk-delay-ms`: the pause before every event but the first.
    pub delay_ms: u64,
}

impl SSettings {
    /// Events of one stream: the content chunks, the usage chunk, `[DONE]`.
    pub fn events_per_stream(&self) -> u64 {
        self.chunks.max(1) + 2
    }

    /// What SJ's rule charges for one stream, micro-USD.
    pub fn price_micros(&self) -> u64 {
        (PROMPT_TOKENS * PROMPT_PER_1K_MICROS + self.chunks * COMPLETION_PER_1K_MICROS)
            .div_ceil(1000)
    }
}

#[derive(Debug, Clone)]
pub struct SConfig {
    pub id: &'static str,
    pub title: &'static str,
    pub filters: Filters,
    /// Priced and reported to cost-control: the ledger is checked.
    pub priced: bool,
}

/// SA and SJ.
pub fn configs() -> Vec<SConfig> {
    vec![
        SConfig {
            id: "SA",
            title: "Envoy proxying the streamed chat answers, no filter",
            filters: Filters::None,
            priced: false,
        },
        SConfig {
            id: "SJ",
            title: "filter pricing every stream by its tokens as it passes, spend reported to cost-control",
            filters: Filters::Wasm(priced_filter()),
            priced: true,
        },
    ]
}

/// SJ's filter: one chat rule priced by tokens (the demo's model), no
/// cache, no coalescing, no budget; spend to cost-control as J's.
pub fn priced_filter() -> Value {
    json!({
        "version": 1,
        "identity": {"tenant": [{"header": TENANT.0}]},
        "accounting": {"cost_control": "cost_control", "token": "gateway-dev-token",
                       "gateway_id": "bench-stream", "flush_ms": 1000},
        "routes": [{"name": "chat", "match": {"prefix": PATH}, "sla_ms": 20000,
                    "cost": {"cost_per_call": "0.001", "provider": "demo",
                             "tokens": {"models": {"demo-small": {"prompt_per_1k": "0.5",
                                                                  "completion_per_1k": "1.5"}},
                                        "default_model": "demo-small"}}}]
    })
}

/// One measured round of a stream configuration.
#[derive(Debug, Clone, Default)]
pub struct SSample {
    pub round: u32,
    /// Streams of the CPU run, every one complete.
    pub streams: u64,
    /// Events they delivered.
    pub events: u64,
    pub seconds: f64,
    /// TTFB over the TTFB run's streams.
    pub ttfb_p50_us: f64,
    pub ttfb_p99_us: f64,
    /// Streams of the TTFB run.
    pub ttfb_streams: u64,
    /// TTFB over the CPU run's streams (`clients` in flight).
    pub loaded_p50_us: f64,
    pub loaded_p99_us: f64,
    /// Envoy's CPU over the measured run ÷ events delivered.
    pub cpu_us_per_event: f64,
    /// CPU the rest of the machine used during the run, cores.
    pub other_cores: f64,
    pub other_procs: Vec<(String, f64)>,
    /// SJ: streams sent to this Envoy (probe, warm-up, run), ledger rows
    /// and micro-USD added during the round.
    pub ledger: Option<(u64, u64, i64)>,
}

impl SSample {
    pub fn cpu_us_per_stream(&self, s: &SSettings) -> f64 {
        self.cpu_us_per_event * s.events_per_stream() as f64
    }
}

/// One stream: its TTFB (µs) and the events it delivered, or what was
/// wrong with it.
fn one_stream(port: u16, body: &[u8], s: &SSettings) -> Result<(u64, u64), String> {
    let delay = s.delay_ms.to_string();
    let headers = [
        (TENANT.0, TENANT_ID),
        ("content-type", "application/json"),
        ("x-demo-chunk-delay-ms", delay.as_str()),
    ];
    let sent = Instant::now();
    // The e2e client panics on a transport error (it is the tests'): a
    // panic here is this stream's failure.
    let mut st = catch_unwind(AssertUnwindSafe(|| {
        SseStream::post(port, PATH, &headers, body)
    }))
    .map_err(|_| "the request failed (connect, send or the answer's head)".to_string())?;
    if st.status != 200 {
        return Err(format!("status {}", st.status));
    }
    let first = catch_unwind(AssertUnwindSafe(|| st.next_event()))
        .map_err(|_| "reading the first event failed".to_string())?
        .ok_or("the body ended before a first event")?;
    let ttfb = sent.elapsed().as_micros() as u64;
    if !first.contains("\"tok0 \"") {
        return Err(format!("first event is not content chunk 0: {first:?}"));
    }
    let end = catch_unwind(AssertUnwindSafe(|| st.finish()))
        .map_err(|_| "reading the stream failed".to_string())?;
    if end != End::Clean {
        return Err("the stream was cut off (no clean end of the chunked body)".to_string());
    }
    check_events(&st.received, s).map(|events| (ttfb, events))
}

/// A whole stream's events checked: the content chunks, a usage chunk,
/// `[DONE]` last. Their count.
fn check_events(received: &[u8], s: &SSettings) -> Result<u64, String> {
    let text = String::from_utf8_lossy(received);
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let content = events.iter().filter(|e| e.contains("\"delta\"")).count() as u64;
    let usage = events.iter().filter(|e| e.contains("\"usage\"")).count();
    if content != s.chunks.max(1) || usage != 1 || events.last() != Some(&"data: [DONE]") {
        return Err(format!(
            "incomplete stream: {content} content events (expected {}), {usage} usage chunks, last event {:?}",
            s.chunks.max(1),
            events.last()
        ));
    }
    if !text.ends_with("\n\n") {
        return Err("the body does not end with a whole event".to_string());
    }
    Ok(events.len() as u64)
}

/// A chat body no gateway could answer from another: no temperature 0,
/// no seed, a prompt of its own.
fn body(tag: &str, s: &SSettings) -> Vec<u8> {
    json!({"model": "demo-small",
           "messages": [{"role": "user", "content": format!("bench stream {tag}")}],
           "stream": true, "max_tokens": s.chunks,
           "stream_options": {"include_usage": true}})
    .to_string()
    .into_bytes()
}

/// What a load of streams gave: each stream's TTFB and events, and every
/// failure.
#[derive(Debug, Default)]
struct Load {
    ttfb_us: Vec<f64>,
    events: u64,
    failures: Vec<String>,
}

impl Load {
    fn streams(&self) -> u64 {
        self.ttfb_us.len() as u64 + self.failures.len() as u64
    }
}

/// `clients` threads sending streams one after another for `seconds`.
fn load(port: u16, s: &SSettings, clients: usize, seconds: u32, tag: &str) -> Result<Load, String> {
    let until = Instant::now() + Duration::from_secs(u64::from(seconds));
    let parts: Vec<Load> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(sc, move || {
                        let mut out = Load::default();
                        let mut n = 0u64;
                        while Instant::now() < until {
                            n += 1;
                            match one_stream(port, &body(&format!("{tag}-t{t}-n{n}"), s), s) {
                                Ok((ttfb, events)) => {
                                    out.ttfb_us.push(ttfb as f64);
                                    out.events += events;
                                }
                                Err(e) => out.failures.push(e),
                            }
                        }
                        out
                    })
                    .map_err(|e| format!("cannot start a client thread: {e}"))
            })
            .collect::<Result<_, _>>()?;
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a client thread panicked".to_string()))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut all = Load::default();
    for p in parts {
        all.ttfb_us.extend(p.ttfb_us);
        all.events += p.events;
        all.failures.extend(p.failures);
    }
    Ok(all)
}

/// The demo API's calls to [`PATH`] and events made so far.
fn demo_counts(bench: &Bench) -> Result<(u64, u64), String> {
    let c = bench.demo_calls()?;
    let events = c["stream_events"]
        .as_u64()
        .ok_or("the demo API's /__calls has no stream_events")?;
    Ok((c["by_path"][PATH].as_u64().unwrap_or(0), events))
}

/// One round of `cfg`.
pub fn measure(
    bench: &Bench,
    cfg: &SConfig,
    round: u32,
    settings: &Settings,
    s: &SSettings,
    helper_pids: &[u32],
) -> Result<SSample, String> {
    let gateway = bench.start_gateway(
        cfg.id,
        Host::Envoy,
        &cfg.filters,
        &Route::Proxy,
        Workers::OnePinned,
    )?;
    let port = bench.ports.listen;
    let result = (|| {
        // The per-path counts start empty (after A–J they hold every
        // unique URL); each round reads its own counts before and after.
        bench.demo_reset()?;
        let ledger0 = if cfg.priced {
            Some(bench.ledger(TENANT_ID)?)
        } else {
            None
        };
        one_stream(port, &body(&format!("{}-r{round}-probe", cfg.id), s), s)
            .map_err(|e| format!("{}: probe stream: {e}", cfg.id))?;
        let mut sent = 1;
        if settings.warmup > 0 {
            let w = load(
                port,
                s,
                s.clients,
                settings.warmup,
                &format!("{}-r{round}-w", cfg.id),
            )?;
            sent += w.streams();
            fail_on(&w, "warm-up")?;
        }
        let (calls0, made0) = demo_counts(bench)?;
        let procs0 = process_ticks();
        let (busy0, helpers0, own0) = (
            machine_busy_ticks()?,
            helper_ticks(helper_pids)?,
            cpu_ticks(std::process::id())?,
        );
        let start = Instant::now();
        // The TTFB run, few streams in flight; then the CPU run.
        let ttfb = load(
            port,
            s,
            s.ttfb_clients,
            settings.seconds,
            &format!("{}-r{round}-t", cfg.id),
        )?;
        sent += ttfb.streams();
        fail_on(&ttfb, "TTFB run")?;
        let ticks0 = gateway.cpu_ticks()?;
        let run = load(
            port,
            s,
            s.clients,
            settings.seconds,
            &format!("{}-r{round}-m", cfg.id),
        )?;
        let ticks1 = gateway.cpu_ticks()?;
        let secs = start.elapsed().as_secs_f64();
        let (busy1, helpers1, own1) = (
            machine_busy_ticks()?,
            helper_ticks(helper_pids)?,
            cpu_ticks(std::process::id())?,
        );
        let procs1 = process_ticks();
        sent += run.streams();
        fail_on(&run, "CPU run")?;
        let (calls1, made1) = demo_counts(bench)?;
        let streams = ttfb.streams() + run.streams();
        let (calls, made) = (calls1.saturating_sub(calls0), made1.saturating_sub(made0));
        if run.streams() == 0 || ttfb.streams() == 0 {
            return Err("no stream completed in the TTFB run or in the CPU run".to_string());
        }
        if calls != streams {
            return Err(format!(
                "the demo API counted {calls} calls to {PATH} for {streams} streams sent: expected one each (nothing cached or coalesced)"
            ));
        }
        if made != ttfb.events + run.events {
            return Err(format!(
                "the demo API made {made} events, the clients received {}",
                ttfb.events + run.events
            ));
        }
        let ours: Vec<u32> = gateway
            .pids()
            .into_iter()
            .chain(helper_pids.iter().copied())
            .chain([std::process::id()])
            .collect();
        let other_procs =
            busiest_others(&procs0, &procs1, &ours, settings.ticks_per_second, secs, 3);
        let ours_ticks = ticks1.saturating_sub(ticks0)
            + helpers1.saturating_sub(helpers0)
            + own1.saturating_sub(own0);
        let other_cores = busy1.saturating_sub(busy0).saturating_sub(ours_ticks) as f64
            / settings.ticks_per_second as f64
            / secs.max(1e-9);
        let ledger = match ledger0 {
            Some(l0) => Some(wait_for_ledger(bench, &l0, sent, s)?),
            None => None,
        };
        let cpu_us = ticks1.saturating_sub(ticks0) as f64 * 1e6 / settings.ticks_per_second as f64;
        Ok(SSample {
            round,
            streams: run.streams(),
            events: run.events,
            seconds: secs,
            ttfb_p50_us: percentile(&ttfb.ttfb_us, 50.0).unwrap_or(0.0),
            ttfb_p99_us: percentile(&ttfb.ttfb_us, 99.0).unwrap_or(0.0),
            ttfb_streams: ttfb.streams(),
            loaded_p50_us: percentile(&run.ttfb_us, 50.0).unwrap_or(0.0),
            loaded_p99_us: percentile(&run.ttfb_us, 99.0).unwrap_or(0.0),
            cpu_us_per_event: cpu_us / run.events.max(1) as f64,
            other_cores,
            other_procs,
            ledger,
        })
    })();
    bench.stop_gateway(gateway)?;
    result
}

fn helper_ticks(pids: &[u32]) -> Result<u64, String> {
    pids.iter().map(|&p| cpu_ticks(p)).sum()
}

/// Any failed stream fails the round.
fn fail_on(l: &Load, what: &str) -> Result<(), String> {
    if l.failures.is_empty() {
        return Ok(());
    }
    let mut kinds: Vec<&String> = l.failures.iter().collect();
    kinds.sort();
    kinds.dedup();
    let shown: Vec<&str> = kinds.iter().take(3).map(|s| s.as_str()).collect();
    Err(format!(
        "{} of {} streams of the {what} failed: {}",
        l.failures.len(),
        l.streams(),
        shown.join("; ")
    ))
}

/// Before Envoy stops: poll the ledger until it prices the `sent`
/// streams of this round at their price; fails unless it does, exactly.
fn wait_for_ledger(
    bench: &Bench,
    before: &crate::stack::Ledger,
    sent: u64,
    s: &SSettings,
) -> Result<(u64, u64, i64), String> {
    let start = Instant::now();
    let want = (sent * s.price_micros()) as i64;
    loop {
        let now = bench.ledger(TENANT_ID)?;
        let cost = now.cost_micros - before.cost_micros;
        let events = now.events.saturating_sub(before.events);
        if cost >= want || start.elapsed() >= LEDGER_WAIT {
            if cost != want || events == 0 || events > sent {
                return Err(format!(
                    "cost-control's ledger for {TENANT_ID}: {events} events, {cost} micro-USD for {sent} streams; expected {want} ({} each: {PROMPT_TOKENS} prompt and {} completion tokens of demo-small)",
                    s.price_micros(),
                    s.chunks
                ));
            }
            return Ok((sent, events, cost));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A stream configuration's rounds.
pub struct SRow {
    pub id: &'static str,
    pub title: &'static str,
    pub samples: Status<Vec<SSample>>,
}

impl SRow {
    pub fn stat(&self, f: impl Fn(&SSample) -> f64) -> Option<(f64, f64, f64)> {
        match &self.samples {
            Status::Done(v) => spread(&v.iter().map(f).collect::<Vec<_>>()),
            _ => None,
        }
    }
}

/// S in the report.
pub struct SReport {
    pub settings: SSettings,
    pub rows: Vec<SRow>,
}

impl SReport {
    pub fn failed(&self) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.samples, Status::Failed(_)))
    }

    /// SJ against SA, medians of this run: added TTFB at p50 and p99 (µs)
    /// with their ratios, and the CPU-per-event ratio.
    pub fn comparison(&self) -> Option<[(f64, f64); 3]> {
        let find = |id: &str| self.rows.iter().find(|r| r.id == id);
        let (a, j) = (find("SA")?, find("SJ")?);
        let med = |r: &SRow, f: fn(&SSample) -> f64| r.stat(f).map(|(_, m, _)| m);
        let pair = |f: fn(&SSample) -> f64| -> Option<(f64, f64)> {
            let (x, y) = (med(a, f)?, med(j, f)?);
            Some((y - x, y / x.max(1e-9)))
        };
        Some([
            pair(|s| s.ttfb_p50_us)?,
            pair(|s| s.ttfb_p99_us)?,
            pair(|s| s.cpu_us_per_event)?,
        ])
    }
}

/// `lo / **median** / hi` of `f` over a row's rounds.
fn three(r: &SRow, f: impl Fn(&SSample) -> f64, digits: usize) -> String {
    r.stat(f)
        .map(|(lo, m, hi)| format!("{lo:.digits$} / **{m:.digits$}** / {hi:.digits$}"))
        .unwrap_or_default()
}

pub fn section(o: &mut String, r: &SReport) {
    let s = &r.settings;
    let _ = writeln!(o, "## S: streamed answers — TTFB and Envoy CPU per event\n");
    let _ = writeln!(
        o,
        "`POST {PATH}` with `\"stream\": true` to the demo API through Envoy (one worker, pinned, restarted per configuration and round, in the rounds' shuffle with A–J), each request a new stream (its own prompt, no temperature 0, no seed) of {} content chunks, the usage chunk and `data: [DONE]` ({} events), `x-demo-chunk-delay-ms: {}` (each event its own write, as tokens come from a model), a new connection per stream, the clients the bench's threads on the client core. Each round: a TTFB run ({} streams in flight for the run's seconds; TTFB from sending the request to the first complete event, p50 and p99 over its streams), then a CPU run ({} streams in flight; Envoy's utime + stime over it ÷ the events it delivered; its own TTFB, under that load, in the last columns but one). SJ's rule: `cost.tokens` with demo-small ($0.5 / $1.5 per 1k tokens), spend reported to cost-control under tenant `{TENANT_ID}`.\n",
        s.chunks,
        s.events_per_stream(),
        s.delay_ms,
        s.ttfb_clients,
        s.clients
    );
    let _ = writeln!(
        o,
        "| | configuration | streams per round, TTFB / CPU run (median) | TTFB p50 µs min / **median** / max | TTFB p99 µs min / **median** / max | Envoy CPU µs per event min / **median** / max | µs per stream (median) | TTFB p50 / p99 µs in the CPU run (median) | other load, cores (max) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        if let Status::Done(_) = &row.samples {
            let _ = writeln!(
                o,
                "| {} | {} | {:.0} / {:.0} | {} | {} | {} | {:.1} | {:.0} / {:.0} | {:.2} |",
                row.id,
                row.title,
                row.stat(|x| x.ttfb_streams as f64)
                    .map_or(0.0, |(_, m, _)| m),
                row.stat(|x| x.streams as f64).map_or(0.0, |(_, m, _)| m),
                three(row, |x| x.ttfb_p50_us, 0),
                three(row, |x| x.ttfb_p99_us, 0),
                three(row, |x| x.cpu_us_per_event, 2),
                row.stat(|x| x.cpu_us_per_stream(s))
                    .map_or(0.0, |(_, m, _)| m),
                row.stat(|x| x.loaded_p50_us).map_or(0.0, |(_, m, _)| m),
                row.stat(|x| x.loaded_p99_us).map_or(0.0, |(_, m, _)| m),
                row.stat(|x| x.other_cores).map_or(0.0, |(_, _, hi)| hi),
            );
        } else {
            let why = match &row.samples {
                Status::Unavailable(w) => format!("not yet available ({w})"),
                Status::Failed(w) => format!("**failed**: {w}"),
                Status::Done(_) => String::new(),
            };
            let _ = writeln!(o, "| {} | {} | {why} | | | | | | |", row.id, row.title);
        }
    }
    if let Some([p50, p99, cpu]) = r.comparison() {
        let _ = writeln!(
            o,
            "\n**Added latency to the first event: p50 {:+.0} µs (SJ/SA {:.2}), p99 {:+.0} µs ({:.2}); Envoy CPU per streamed event {:+.2} µs (SJ/SA {:.2}).** Medians of this run.",
            p50.0, p50.1, p99.0, p99.1, cpu.0, cpu.1
        );
    }
    if let Some(Status::Done(v)) = r.rows.iter().find(|x| x.id == "SJ").map(|x| &x.samples) {
        let (sent, events, cost) = v
            .iter()
            .filter_map(|x| x.ledger)
            .fold((0, 0, 0), |a, l| (a.0 + l.0, a.1 + l.1, a.2 + l.2));
        let _ = writeln!(
            o,
            "\nSJ's ledger: over its rounds {sent} streams were sent to its Envoys (probes, warm-ups and measured runs) and cost-control received {events} spend events pricing them at ${:.4} (${:.4} each).",
            cost as f64 / 1e6,
            s.price_micros() as f64 / 1e6
        );
    }
    let _ = writeln!(
        o,
        "\nVerdict (fails the run): every stream 200 and complete (a clean end of the chunked body, `data: [DONE]` last, {} content events and a usage chunk); the demo API's calls to `{PATH}` equal to the streams sent and its events made equal to the events received; for SJ, cost-control's ledger pricing every stream sent to that Envoy at its tokens' price, exactly.\n",
        s.chunks.max(1)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SSettings = SSettings {
        clients: 1,
        ttfb_clients: 1,
        chunks: 3,
        delay_ms: 0,
    };

    fn stream(content: usize, usage: bool, done: bool) -> Vec<u8> {
        let mut t = String::new();
        for i in 0..content {
            t.push_str(&format!(
                "data: {{\"choices\":[{{\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n"
            ));
        }
        if usage {
            t.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n");
        }
        if done {
            t.push_str("data: [DONE]\n\n");
        }
        t.into_bytes()
    }

    #[test]
    fn a_stream_is_whole_or_fails() {
        assert_eq!(check_events(&stream(3, true, true), &S), Ok(5));
        assert!(check_events(&stream(2, true, true), &S).is_err());
        assert!(check_events(&stream(3, false, true), &S).is_err());
        assert!(check_events(&stream(3, true, false), &S).is_err());
        let mut cut = stream(3, true, true);
        cut.extend_from_slice(b"data: x");
        assert!(check_events(&cut, &S).is_err());
    }

    #[test]
    fn price_of_a_stream() {
        // 3 prompt tokens at $0.5/1k, 20 completion at $1.5/1k.
        let s = SSettings { chunks: 20, ..S };
        assert_eq!(s.price_micros(), 1_500 + 30_000);
        assert_eq!(s.events_per_stream(), 22);
        let rule = &priced_filter()["routes"][0];
        assert_eq!(rule["match"]["prefix"], PATH);
        assert!(rule["cost"]["tokens"]["models"]["demo-small"].is_object());
        let prompt = body("x", &s);
        let v: Value = serde_json::from_slice(&prompt).unwrap();
        assert!(v.get("temperature").is_none() && v.get("seed").is_none());
        let words = v["messages"][0]["content"].as_str().unwrap();
        assert_eq!(words.split_whitespace().count() as u64, PROMPT_TOKENS);
    }
}
