//! `target/bench/report.md`: machine, table, ratios, G, H and W.

use std::fmt::Write as _;

use crate::configs::{Load, RATIOS};
use crate::run::{spread, Sample, Settings};
use crate::scenarios::{GResult, HResult, G_DELAY_MS};
use crate::wake::{summary, WResult, WSettings, TICK_MS};
use crate::workload::{self, KRun, KSettings, Kind};

/// Something measured, or why not.
#[derive(Debug, Clone)]
pub enum Status<T> {
    Done(T),
    /// The filter does not support it yet (the reason names what is missing).
    Unavailable(String),
    /// It should have run and did not: the bench exits non-zero.
    Failed(String),
}

pub struct Machine {
    pub date: String,
    pub cores: usize,
    pub cpu_model: String,
    pub envoy_version: String,
    pub git: String,
    pub pinning: String,
}

pub struct Row {
    pub id: &'static str,
    pub title: String,
    pub load: Load,
    pub samples: Status<Vec<Sample>>,
}

impl Row {
    pub fn median_cpu(&self) -> Option<f64> {
        self.stat(|s| s.cpu_us_per_req).map(|(_, m, _)| m)
    }

    pub fn stat(&self, f: impl Fn(&Sample) -> f64) -> Option<(f64, f64, f64)> {
        match &self.samples {
            Status::Done(v) => spread(&v.iter().map(f).collect::<Vec<_>>()),
            _ => None,
        }
    }
}

pub struct HPair {
    pub rate: u32,
    pub seconds: u32,
    pub baseline: Status<HResult>,
    pub batched: Status<HResult>,
}

/// W on each host.
pub struct WPair {
    pub settings: WSettings,
    pub envoy: Status<WResult>,
    pub kong: Status<WResult>,
}

pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    /// The seed of the rounds' orders (`BENCH_SEED`).
    pub seed: u64,
    /// Each round's order of configurations.
    pub orders: Vec<Vec<&'static str>>,
    pub rows: Vec<Row>,
    /// Each optimizer configuration's host calls per request (counted
    /// natively), priced in the host-call section.
    pub host_calls: Vec<(&'static str, crate::host_calls::Counts)>,
    pub g_baseline: Status<Vec<GResult>>,
    pub g_filter: Status<Vec<GResult>>,
    pub h: HPair,
    /// K on its three gateways.
    pub k: Status<Vec<KRun>>,
    pub k_settings: KSettings,
    pub w: WPair,
    /// S: streamed answers (SA, SJ).
    pub streams: crate::stream::SReport,
    /// How long the parts of the run took.
    pub timing: String,
    pub spend: Status<String>,
    /// J's ledger check: its requests are in cost-control's ledger.
    pub accounting: Status<String>,
}

fn status_text<T>(s: &Status<T>) -> Option<String> {
    match s {
        Status::Done(_) => None,
        Status::Unavailable(why) => Some(format!("not yet available ({why})")),
        Status::Failed(why) => Some(format!("**failed**: {why}")),
    }
}

/// Rounds with less than this much CPU used by the rest of the machine
/// count as undisturbed.
pub const QUIET_CORES: f64 = 0.25;

impl Row {
    /// Median req/s over the undisturbed rounds (all rounds when none is).
    pub fn quiet_median_rps(&self) -> Option<(f64, bool)> {
        let Status::Done(v) = &self.samples else {
            return None;
        };
        let quiet: Vec<f64> = v
            .iter()
            .filter(|s| s.other_cores < QUIET_CORES)
            .map(|s| s.rps)
            .collect();
        if quiet.is_empty() {
            return spread(&v.iter().map(|s| s.rps).collect::<Vec<_>>())
                .map(|(_, m, _)| (m, false));
        }
        spread(&quiet).map(|(_, m, _)| (m, true))
    }
}

/// (req/s ratio over undisturbed rounds, CPU-per-request ratio over all
/// rounds, whether both sides had undisturbed rounds).
pub fn ratio(rows: &[Row], num: &str, den: &str) -> Option<(f64, f64, bool)> {
    let find = |id: &str| rows.iter().find(|r| r.id == id);
    let (n, d) = (find(num)?, find(den)?);
    let ((nr, nq), (dr, dq)) = (n.quiet_median_rps()?, d.quiet_median_rps()?);
    let cpu = d.median_cpu()? / n.median_cpu()?;
    Some((nr / dr, cpu, nq && dq))
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let s = &r.settings;
    let _ = writeln!(o, "# make bench — {}\n", m.date);
    let _ = writeln!(
        o,
        "Machine: {} cores, {}; Envoy {}; git {}.  \n{}; Envoy `--concurrency 1`, Kong's engine (nginx 1.27.4 + ngx_wasm_module + wasmtime 26, the way Kong Gateway runs proxy-wasm filters) `worker_processes 1`, each restarted for every configuration and round; {} rounds, the configurations in a shuffled order in each (seed {}: `BENCH_SEED={}` repeats it); each run {} s after a {} s warm-up; wrk, 1 thread, {} connections; every answer 1 KiB.\n",
        m.cores, m.cpu_model, m.envoy_version, m.git, m.pinning, s.rounds, r.seed, r.seed, s.seconds, s.warmup, s.connections
    );
    table(&mut o, r);
    if let Some(line) = k_headline(&r.k) {
        let _ = writeln!(o, "**K (a realistic workload, below): {line}**\n");
    }
    order_and_noise(&mut o, r);
    ratios(&mut o, &r.rows);
    decomposition(&mut o, &r.rows);
    crate::host_calls::section(&mut o, &r.rows, &r.host_calls);
    if let Some(line) = failover_line(&r.rows, s.connections) {
        let _ = writeln!(o, "{line}\n");
    }
    g_section(&mut o, r);
    h_section(&mut o, &r.h);
    k_section(&mut o, &r.k, &r.k_settings);
    w_section(&mut o, &r.w);
    if !r.streams.rows.is_empty() {
        crate::stream::section(&mut o, &r.streams);
    }
    let _ = writeln!(o, "## cost-control spend ingest\n");
    let _ = writeln!(
        o,
        "{}\n",
        match &r.spend {
            Status::Done(t) => t.clone(),
            other => status_text(other).unwrap_or_default(),
        }
    );
    let _ = writeln!(o, "## J: accounting\n");
    let _ = writeln!(
        o,
        "{}\n",
        match &r.accounting {
            Status::Done(t) => t.clone(),
            other => status_text(other).unwrap_or_default(),
        }
    );
    let _ = writeln!(o, "{}\n", r.timing);
    let _ = writeln!(
        o,
        "Every figure in this report comes from this run. How to read it: bench/README.md. Raw samples: target/bench/report.json. Chart: target/bench/report.png."
    );
    o
}

fn table(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "| | configuration | load | req/s min / **median** / max | p50 µs | p99 µs | gateway CPU µs/req min / **median** / max | gateway core busy | upstream calls/req | errors | other load, cores (max) |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let rps = row.stat(|s| s.rps);
        let (Some((lo, med, hi)), Status::Done(samples)) = (rps, &row.samples) else {
            let why = status_text(&row.samples).unwrap_or_default();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | | | | | | | |",
                row.id,
                row.title,
                row.load.describe(),
                why
            );
            continue;
        };
        let med_of = |f: &dyn Fn(&Sample) -> f64| row.stat(f).map(|(_, m, _)| m).unwrap_or(0.0);
        let errors: u64 = samples.iter().map(|s| s.errors).sum();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} / **{}** / {} | {:.0} | {:.0} | {} | {:.2} | {:.3} | {} | {:.2} |",
            row.id,
            row.title,
            row.load.describe(),
            k(lo),
            k(med),
            k(hi),
            med_of(&|s| s.p50_us as f64),
            med_of(&|s| s.p99_us as f64),
            row.stat(|s| s.cpu_us_per_req)
                .map(|(lo, m, hi)| format!("{lo:.1} / **{m:.1}** / {hi:.1}"))
                .unwrap_or_default(),
            med_of(&Sample::gateway_busy),
            med_of(&|s| s.upstream_per_req),
            errors,
            row.stat(|s| s.other_cores)
                .map(|(_, _, hi)| hi)
                .unwrap_or(0.0)
        );
    }
    let _ = writeln!(
        o,
        "\np50, p99, CPU, core busy and upstream calls are medians over the rounds. Gateway CPU is utime+stime from /proc over the measured run of the Envoy process (all threads), or of nginx's master and worker (K rows), divided by the requests completed. \"Gateway core busy\" is that CPU per request times req/s: near 1 the gateway's core was the bottleneck; well below in a round without other load (nginx's fastest rows), the client core (wrk, the demo API) was, and that row's req/s measures the client, not the gateway; with other load, that work also takes the gateway's core. \"Other load\" is the CPU the rest of the machine used during a run (all busy time in /proc/stat minus the gateway, the demo API, cost-control and wrk), the worst round shown: above a few tenths of a core, other work shared the machine and that round's req/s is disturbed (CPU µs/req much less so). A round fails when any request of its measured run failed (wrk: a socket error, a timeout, an answer other than 2xx/3xx; on Envoy also any 3xx, 4xx or 5xx its `http.bench.downstream_rq_*` counters show over the run), when the demo API counted upstream calls that do not fit the configuration (none for B, D, F, TD and KB, KD; one per request for the others, within two connections' worth of requests cut short at the ends of the run), and, for a Kong row (KA–KI), when nginx's error log shows a wasm trap, a panic or a dead worker.\n"
    );
}

/// Counts by status: `200 ×99, no answer ×1` (status 0: no answer); `0`
/// when there are none.
fn counts_text(counts: &[(u16, u64)]) -> String {
    if counts.is_empty() {
        return "0".to_string();
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| match s {
            0 => format!("no answer ×{n}"),
            s => format!("{s} ×{n}"),
        })
        .collect();
    parts.join(", ")
}

/// `rustc 0.31, cc1 0.05`, or what /proc could not tell.
pub fn procs_text(procs: &[(String, f64)]) -> String {
    if procs.is_empty() {
        return "no process seen in /proc over 0.02 of a core: short-lived ones, or the kernel"
            .to_string();
    }
    let parts: Vec<String> = procs.iter().map(|(c, n)| format!("{c} {n:.2}")).collect();
    format!("busiest other processes in cores: {}", parts.join(", "))
}

/// Each round's order, and the rounds the rest of the machine disturbed.
fn order_and_noise(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "Order of the configurations (seed {}; `BENCH_SEED={}` repeats it):\n",
        r.seed, r.seed
    );
    for (i, ids) in r.orders.iter().enumerate() {
        let _ = writeln!(o, "- round {}: {}", i + 1, ids.join(" "));
    }
    let _ = writeln!(o);
    let mut noisy: Vec<(u32, &str, &Sample)> = Vec::new();
    for row in &r.rows {
        if let Status::Done(v) = &row.samples {
            noisy.extend(
                v.iter()
                    .filter(|s| s.other_cores >= QUIET_CORES)
                    .map(|s| (s.round, row.id, s)),
            );
        }
    }
    noisy.sort_by_key(|(round, _, _)| *round);
    if noisy.is_empty() {
        let _ = writeln!(
            o,
            "Noisy rounds: none (in no run did the rest of the machine use {QUIET_CORES} of a core or more).\n"
        );
        return;
    }
    let _ = writeln!(
        o,
        "Noisy rounds (the rest of the machine used {QUIET_CORES} of a core or more during the run; their req/s is left out of the req/s ratios, their CPU per request kept):\n"
    );
    for (round, id, s) in noisy {
        let _ = writeln!(
            o,
            "- round {round}, {id}: other load {:.2} cores ({})",
            s.other_cores,
            procs_text(&s.other_procs)
        );
    }
    let _ = writeln!(o);
}

/// Median gateway CPU µs per request of `id`, if it ran.
fn cpu_of(rows: &[Row], id: &str) -> Option<f64> {
    rows.iter().find(|r| r.id == id)?.median_cpu()
}

/// One line of the decomposition: a figure computed from medians, or the
/// configurations it lacks.
fn part(rows: &[Row], needs: &[&str], f: impl Fn(&dyn Fn(&str) -> f64) -> f64) -> String {
    let missing: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|id| cpu_of(rows, id).is_none())
        .collect();
    if !missing.is_empty() {
        return format!("— (needs {})", missing.join(", "));
    }
    let get = |id: &str| cpu_of(rows, id).unwrap_or(0.0);
    format!("{:.1}", f(&get))
}

/// Where Envoy's CPU per request goes, and what the floor filter (T, TD)
/// says is out of reach: every figure a median of this run.
pub fn decomposition(o: &mut String, rows: &[Row]) {
    let _ = writeln!(
        o,
        "## Decomposition — Envoy CPU µs per request, medians of this run\n"
    );
    let _ = writeln!(o, "| part | from | µs/req |");
    let _ = writeln!(o, "|---|---|---|");
    type Line<'a> = (
        &'a str,
        &'a str,
        &'a [&'a str],
        fn(&dyn Fn(&str) -> f64) -> f64,
    );
    let lines: [Line; 10] = [
        (
            "an answer made inside Envoy (`direct_response`)",
            "B",
            &["B"],
            |c| c("B"),
        ),
        (
            "the wasm tax: the optimizer loaded, no rule matching, over plain Envoy",
            "C − A",
            &["C", "A"],
            |c| c("C") - c("A"),
        ),
        (
            "the optimizer's hit logic: its cache hit over `direct_response` and the tax",
            "D − B − (C − A)",
            &["D", "B", "C", "A"],
            |c| c("D") - c("B") - (c("C") - c("A")),
        ),
        (
            "Envoy's own cache hit over `direct_response`",
            "F − B",
            &["F", "B"],
            |c| c("F") - c("B"),
        ),
        (
            "the floor: what any wasm filter costs per stream (the SDK, every hook Continue)",
            "T − A",
            &["T", "A"],
            |c| c("T") - c("A"),
        ),
        (
            "what the optimizer adds over the floor on traffic it does not touch",
            "C − T",
            &["C", "T"],
            |c| c("C") - c("T"),
        ),
        (
            "reading `:path` once: the floor filter that does (TP) over the one that does not",
            "TP − T",
            &["TP", "T"],
            |c| c("TP") - c("T"),
        ),
        (
            "what the optimizer adds over a filter that reads `:path`, on traffic no rule matches",
            "C − TP",
            &["C", "TP"],
            |c| c("C") - c("TP"),
        ),
        (
            "a wasm local reply (the floor filter's 1 KiB answer) over `direct_response`",
            "TD − B",
            &["TD", "B"],
            |c| c("TD") - c("B"),
        ),
        (
            "the optimizer's hit logic over the floor's local reply",
            "D − TD",
            &["D", "TD"],
            |c| c("D") - c("TD"),
        ),
    ];
    for (what, from, needs, f) in lines {
        let _ = writeln!(o, "| {what} | {from} | {} |", part(rows, needs, f));
    }
    let _ = writeln!(o);
    for line in floor_verdicts(rows) {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(
        o,
        "\nThe goals are judged here by CPU per request (the inverse ratio: the denominator's µs over the numerator's), the figure other load disturbs least; the ratio table above judges them by req/s. The floor filter is the proxy-wasm SDK doing nothing (T), reading `:path` once and doing nothing else (TP) or making one local reply (TD): the optimizer is expected to cost at least that (C and I at least T, and C at least TP since it reads `:path` to know that no rule matches; D at least TD), so a goal the floor itself misses is out of reach on this Envoy whatever the optimizer does, and C/TP (in the ratio table) says how close C comes to the least a filter with path rules can cost. Where this run measured the optimizer below its floor, the floor says nothing about that goal, and the line says so.\n"
    );
}

/// For each goal: whether the floor (T, TD) leaves it reachable, in words,
/// from this run's medians.
pub fn floor_verdicts(rows: &[Row]) -> Vec<String> {
    let cpu = |id: &str| cpu_of(rows, id);
    let mut out = Vec::new();
    // (goal's numerator, denominator, goal, the floor standing in for the numerator)
    for (num, den, goal, floor) in [
        ("C", "A", 0.95, "T"),
        ("I", "A", 0.88, "T"),
        ("D", "F", 1.0, "TD"),
    ] {
        let (Some(d), Some(fl)) = (cpu(den), cpu(floor)) else {
            out.push(format!(
                "{num}/{den} ≥ {goal:.2}: no verdict on the floor ({floor} or {den} did not run)."
            ));
            continue;
        };
        let floor_ratio = d / fl;
        let now = cpu(num)
            .map(|n| format!("; now {num}/{den} = {:.2}", d / n))
            .unwrap_or_default();
        if let Some(n) = cpu(num).filter(|n| *n < fl) {
            out.push(format!(
                "{num}/{den} ≥ {goal:.2}: no verdict from the floor: {num} cost less than the floor filter in this run ({num} − {floor} = {:.1} µs), so {floor} is no lower bound for it here ({floor}/{den} = {floor_ratio:.2}{now}).",
                n - fl
            ));
            continue;
        }
        if floor_ratio < goal {
            out.push(format!(
                "**{num}/{den} ≥ {goal:.2} is unreachable on this Envoy**: the floor filter alone reaches {floor}/{den} = {floor_ratio:.2} ({den} {d:.1} µs ÷ {floor} {fl:.1} µs){now}."
            ));
        } else {
            // The most the optimizer may add over the floor and still meet the goal.
            let room = d / goal - fl;
            let used = cpu(num)
                .map(|n| format!(", it adds {:.1} µs", n - fl))
                .unwrap_or_default();
            out.push(format!(
                "{num}/{den} ≥ {goal:.2} is reachable: {floor}/{den} = {floor_ratio:.2}; {num} may add at most {room:.1} µs over {floor}{used}{now}."
            ));
        }
    }
    out
}

/// `24213.7` → `24.2k`.
fn k(v: f64) -> String {
    format!("{:.1}k", v / 1000.0)
}

fn ratios(o: &mut String, rows: &[Row]) {
    let _ = writeln!(o, "## Ratios\n");
    let _ = writeln!(
        o,
        "| ratio | req/s (median ÷ median, undisturbed rounds) | CPU per request (inverse, all rounds) | goal | |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for (num, den, goal) in RATIOS {
        let goal_text = if goal > 0.0 {
            format!("≥ {goal:.2}")
        } else {
            "—".to_string()
        };
        match ratio(rows, num, den) {
            Some((rps, cpu, quiet)) => {
                let verdict = if goal <= 0.0 {
                    ""
                } else if rps >= goal {
                    "met"
                } else {
                    "**missed**"
                };
                let mut note = if quiet {
                    String::new()
                } else {
                    " (no undisturbed round: all rounds)".to_string()
                };
                let idle = [num, den].into_iter().find_map(|id| {
                    quiet_busy(rows, id)
                        .filter(|b| *b < SATURATED)
                        .map(|b| (id, b))
                });
                if let Some((id, b)) = idle {
                    note.push_str(&format!(
                        " (client-bound: {id}'s gateway was busy {b:.2} of its core; read the CPU ratio)"
                    ));
                }
                let _ = writeln!(
                    o,
                    "| {num}/{den} | {rps:.3}{note} | {cpu:.3} | {goal_text} | {verdict} |"
                );
            }
            None => {
                let _ = writeln!(o, "| {num}/{den} | not yet available | | {goal_text} | |");
            }
        }
    }
    let _ = writeln!(
        o,
        "\n\"CPU per request (inverse)\" is the denominator's gateway CPU µs/req over the numerator's: above 1 means the numerator costs its gateway less per request. R/R0 is what routing across providers adds on Envoy to a matching rule: the filter's choice and its breaker bookkeeping (shared data), the header, clear_route_cache and the route matched again, the aggregate cluster and the retry policy. KD is set against KB (nginx answering itself, the same load), as D against B; Kong against Envoy (KA/A … KI/I) compares the same configuration, load and answer on the two hosts, each with one worker on the same core. The req/s ratio uses only the rounds in which the rest of the machine used less than {QUIET_CORES} of a core (all rounds when a configuration has none); CPU per request is little affected by other load and uses every round.\n"
    );
}

/// What a failed-over request adds: RF's p50 against R's, each the median
/// of its rounds' p50, with the failovers RF's filter counted. `None` when
/// neither ran.
pub fn failover_line(rows: &[Row], connections: u32) -> Option<String> {
    let find = |id: &str| rows.iter().find(|r| r.id == id);
    let (r, rf) = (find("R"), find("RF"));
    if r.is_none() && rf.is_none() {
        return None;
    }
    let p50 = |row: Option<&Row>| row?.stat(|s| s.p50_us as f64).map(|(_, m, _)| m);
    let (Some(y), Some(x)) = (p50(r), p50(rf)) else {
        let why = |id: &str, row: Option<&Row>| match row {
            None => Some(format!("{id} not in BENCH_ONLY")),
            Some(row) => status_text(&row.samples).map(|t| format!("{id} {t}")),
        };
        let whys: Vec<String> = [why("R", r), why("RF", rf)].into_iter().flatten().collect();
        return Some(format!("RF: no failover figure ({}).", whys.join("; ")));
    };
    let (failed_over, requests) = match rf.map(|row| &row.samples) {
        Some(Status::Done(v)) => (
            v.iter().filter_map(|s| s.failovers).sum::<u64>(),
            v.iter().map(|s| s.requests).sum::<u64>(),
        ),
        _ => (0, 0),
    };
    Some(format!(
        "RF: p50 {x:.0} µs vs R p50 {y:.0} µs: a failed-over request adds {:.0} µs at p50 ({failed_over} failovers counted by RF's filter for its {requests} measured requests; each p50 the median over the rounds, at {} connections, so each includes the queueing of its own load; RF's retry waits Envoy's jittered back-off, 0–10 ms at `base_interval: 0.01s`).",
        x - y,
        connections
    ))
}

/// Below this share of its core, in an undisturbed round, a gateway was
/// not what limited req/s.
const SATURATED: f64 = 0.85;

/// Median share of its core the gateway of `id` was busy in the rounds
/// the rest of the machine left alone (in a disturbed round other work
/// on the gateway's core also keeps it below 1); `None` without such a
/// round.
fn quiet_busy(rows: &[Row], id: &str) -> Option<f64> {
    let Status::Done(samples) = &rows.iter().find(|r| r.id == id)?.samples else {
        return None;
    };
    let quiet: Vec<f64> = samples
        .iter()
        .filter(|s| s.other_cores < QUIET_CORES)
        .map(Sample::gateway_busy)
        .collect();
    spread(&quiet).map(|(_, m, _)| m)
}

fn g_section(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "## G: coalescing — N identical concurrent requests, upstream answering after {G_DELAY_MS} ms\n"
    );
    let _ = writeln!(
        o,
        "| N | upstream calls, filter without a matching rule | upstream calls, filter coalescing (no cache) | goal |"
    );
    let _ = writeln!(o, "|---|---|---|---|");
    let find = |s: &Status<Vec<GResult>>, n: usize| -> String {
        match s {
            Status::Done(v) => v
                .iter()
                .find(|g| g.n == n)
                .map(|g| {
                    format!(
                        "{}{} (answers: {}; {} coalesced; last after {} ms)",
                        g.upstream_calls,
                        if g.problems.is_empty() {
                            ""
                        } else {
                            " **failed**"
                        },
                        counts_text(&g.statuses),
                        g.coalesced,
                        g.elapsed_ms
                    )
                })
                .unwrap_or_default(),
            Status::Unavailable(_) => "not yet available".to_string(),
            Status::Failed(_) => "**failed**".to_string(),
        }
    };
    for n in crate::scenarios::G_SIZES {
        let _ = writeln!(
            o,
            "| {n} | {} | {} | 1 |",
            find(&r.g_baseline, n),
            find(&r.g_filter, n)
        );
    }
    let _ = writeln!(
        o,
        "\nVerdict (fails the run): every answer 200; the burst's path counted in the demo API's `/__calls` `by_path` (a missing key fails, it is not read as 0); no answer `x-cache: HIT` (the coalescing rule has no cache, so a coalesced answer is always marked COALESCED); with coalescing, one upstream call per answer that was not coalesced; without a matching rule, N calls and none coalesced. One call per burst is the goal, reported, not enforced.\n"
    );
    for (name, s) in [
        ("Without a matching rule", &r.g_baseline),
        ("Coalescing", &r.g_filter),
    ] {
        if let Some(why) = status_text(s) {
            let _ = writeln!(o, "{name}: {why}\n");
        }
        if let Status::Done(v) = s {
            for p in v.iter().flat_map(|g| &g.problems) {
                let _ = writeln!(o, "{name}: **failed**: {p}\n");
            }
        }
    }
}

/// K's headline, computed from the run: what the optimizer saves against
/// no filter, at what Envoy CPU per request.
pub fn k_headline(k: &Status<Vec<KRun>>) -> Option<String> {
    let Status::Done(v) = k else {
        return None;
    };
    let find = |id: &str| v.iter().find(|r| r.id == id);
    let (none, cache, opt) = (
        find("K-none")?,
        find("K-envoy-cache")?,
        find("K-optimizer")?,
    );
    let saved =
        |r: &KRun| 100.0 * (1.0 - r.upstream_calls as f64 / none.upstream_calls.max(1) as f64);
    let refused = opt.count(|k, s| k == Kind::Report && s == 429);
    Some(format!(
        "the optimizer saves {:.0} % of upstream calls ({} → {}; ${:.2} → ${:.2} at ${} a call) at {:.1} µs of Envoy CPU per request ({:+.1} µs against no filter's {:.1}); {} of the calls saved are reports its rate limit refused with 429. Envoy's cache filter alone saves {:.0} % ({} calls) at {:.1} µs per request{}.",
        saved(opt),
        none.upstream_calls,
        opt.upstream_calls,
        none.cost_micros() as f64 / 1e6,
        opt.cost_micros() as f64 / 1e6,
        workload::PRICE_PER_CALL,
        opt.cpu_us_per_req,
        opt.cpu_us_per_req - none.cpu_us_per_req,
        none.cpu_us_per_req,
        refused,
        saved(cache),
        cache.upstream_calls,
        cache.cpu_us_per_req,
        if cache.stale_reads > 0 {
            format!(
                ", but answers {} reads with an item's state from before a finished write (it does not invalidate on writes; the optimizer: {})",
                cache.stale_reads, opt.stale_reads
            )
        } else {
            String::new()
        }
    ))
}

fn k_section(o: &mut String, k: &Status<Vec<KRun>>, s: &KSettings) {
    let _ = writeln!(o, "## K: a realistic workload\n");
    let shares: Vec<String> = workload::SHARES
        .iter()
        .map(|(kind, share)| format!("{:.0} % {}", share * 100.0, kind.name()))
        .collect();
    let _ = writeln!(
        o,
        "One fixed sequence of {} requests (seed {}: `BENCH_K_SEED`), replayed against three Envoys, each fresh (empty caches), one worker on the server core; {} client workers on keep-alive connections, each sending the next step when its last is answered, a burst's {} identical requests written to {} connections together. Requests: {}. Items drawn Zipf (s = {}) over {} (writes too; a burst's item uniformly), quotes uniformly over {} (`no-store`), reports over 100; the demo API answers item and quote GETs after {} ms. The optimizer: cache + coalescing on `/api/items/` (so a PUT invalidates its item), batching of `/api/quotes/` GETs (REST, 20 ms window, up to 24), a token bucket on `/api/reports/` (20, refilled 50/s, `priority: low`: 429 at once when empty), ${} per call on every rule. Cost below: the demo API's upstream calls (`/__calls`; a batch is one call) × ${}. Envoy CPU: utime + stime of the Envoy process over the replay ÷ requests.\n",
        s.requests,
        s.seed,
        s.connections,
        workload::BURST,
        workload::BURST,
        shares.join(", "),
        workload::ZIPF_S,
        workload::ITEMS,
        workload::ITEMS,
        workload::DELAY_MS,
        workload::PRICE_PER_CALL,
        workload::PRICE_PER_CALL,
    );
    let v = match k {
        Status::Done(v) => v,
        other => {
            let _ = writeln!(o, "{}\n", status_text(other).unwrap_or_default());
            return;
        }
    };
    let none = v
        .iter()
        .find(|r| r.id == "K-none")
        .map(|r| r.upstream_calls);
    let _ = writeln!(
        o,
        "| gateway | upstream calls (items / quotes alone / batch calls / reports) | vs no filter | cost | Envoy CPU µs/req | p50 / p99 µs | took s | answers | stale reads | x-cache | |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in v {
        let routes: Vec<String> = r
            .calls_by_route
            .iter()
            .map(|(_, n)| n.to_string())
            .collect();
        let vs = none
            .map(|n| {
                format!(
                    "{:+.1} %",
                    100.0 * (r.upstream_calls as f64 / n.max(1) as f64 - 1.0)
                )
            })
            .unwrap_or_default();
        let ok = r.count(|_, s| (200..300).contains(&s));
        let limited = r.count(|k, s| k == Kind::Report && s == 429);
        let other = r.count(|_, s| !(200..300).contains(&s)) - limited;
        let xc: Vec<String> = r.x_cache.iter().map(|(x, n)| format!("{x} {n}")).collect();
        let verdict = if r.problems.is_empty() {
            "ok".to_string()
        } else {
            format!("**failed**: {}", r.problems.join("; "))
        };
        let _ = writeln!(
            o,
            "| {} | {} ({}) | {vs} | ${:.2} | {:.1} | {} / {} | {:.1} | 2xx {ok}, 429 on reports {limited}, other {other} | {} | {} | {verdict} |",
            r.title,
            r.upstream_calls,
            routes.join(" / "),
            r.cost_micros() as f64 / 1e6,
            r.cpu_us_per_req,
            r.p50_us,
            r.p99_us,
            r.seconds,
            r.stale_reads,
            xc.join(", "),
        );
    }
    if let Some(line) = k_headline(k) {
        let _ = writeln!(o, "\n**{line}**");
    }
    let _ = writeln!(
        o,
        "\nA stale read: an item GET answered with the item's state (the demo API's `call` number in the body) from before a PUT of that item that had been answered before the GET was sent. Verdict (fails the run): every request answered, no socket error, every answer 2xx but the reports' 429s (counted apart, expected from the optimizer's limit), the optimizer making no more upstream calls than no filter, and no stale read from the optimizer.\n"
    );
}

fn h_section(o: &mut String, h: &HPair) {
    let _ = writeln!(
        o,
        "## H: batching — {} req/s for {} s, each request its own `/api/quotes/<id>`\n",
        h.rate, h.seconds
    );
    let _ = writeln!(
        o,
        "| | requests (200) | upstream calls | calls/request | answered from a batch (`members_by_path`) | upstream alone (`by_path`) | p50 µs | |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for (name, s) in [
        ("filter without a matching rule", &h.baseline),
        ("filter batching", &h.batched),
    ] {
        match s {
            Status::Done(x) => {
                let verdict = if x.problems.is_empty() {
                    "ok".to_string()
                } else {
                    format!("**failed**: {}", x.problems.join("; "))
                };
                let _ = writeln!(
                    o,
                    "| {name} | {} ({}) | {} | {:.3} | {} | {} | {} | {verdict} |",
                    x.requests,
                    x.ok,
                    x.upstream_calls,
                    x.calls_per_request(),
                    x.batched,
                    x.alone,
                    x.p50_us
                );
            }
            other => {
                let _ = writeln!(
                    o,
                    "| {name} | {} | | | | | | |",
                    status_text(other).unwrap_or_default()
                );
            }
        }
    }
    if let (Status::Done(b), Status::Done(x)) = (&h.baseline, &h.batched) {
        let fewer = b.calls_per_request() / x.calls_per_request().max(1e-9);
        let added = x.p50_us as i64 - b.p50_us as i64;
        let verdict = if fewer >= 10.0 { "met" } else { "**missed**" };
        let _ = writeln!(
            o,
            "\n{fewer:.1}× fewer upstream calls per request (goal ≥ 10×: {verdict}); added p50 {added} µs."
        );
    }
    let _ = writeln!(
        o,
        "\nVerdict (fails the run): every request answered 200; batching, every request's path counted once as a batch member by the demo API (`members_by_path`) and none upstream on its own; without a matching rule, every path upstream once on its own.\n"
    );
}

fn w_section(o: &mut String, w: &WPair) {
    let s = &w.settings;
    let _ = writeln!(
        o,
        "## W: waking a waiting request — {} rounds of {} identical concurrent requests (1 leader, {} followers), upstream answering after {} ms\n",
        s.rounds,
        s.n,
        s.n - 1,
        s.delay_ms
    );
    let _ = writeln!(
        o,
        "Each request on its own connection; a coalescing rule without cache; the gateway with two workers, unpinned; cost-control running. A follower's lag is its answer time minus its leader's, at the client. On Kong a follower is answered when its own wake call to cost-control (`GET /v1/wake?after_ms={TICK_MS}`, `coalesce_store.tick_ms` at its default) returns; on Envoy a follower on its leader's worker is answered from the leader's response hook, one on the other worker at that worker's next tick (every {TICK_MS} ms while someone waits), so Envoy's lag depends on how the round's connections fell on the two workers.\n"
    );
    let _ = writeln!(
        o,
        "| host | answers | upstream calls per round | leader ms (median) | follower − leader ms: median / p90 / max | wake calls cost-control answered | wake calls per waiting request per second | |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for st in [&w.envoy, &w.kong] {
        let Status::Done(r) = st else {
            let _ = writeln!(
                o,
                "| | {} | | | | | | |",
                status_text(st).unwrap_or_default()
            );
            continue;
        };
        let (lo, hi) = (
            r.calls.iter().min().copied().unwrap_or(0),
            r.calls.iter().max().copied().unwrap_or(0),
        );
        let calls = if lo == hi {
            format!("{lo}")
        } else {
            format!("{lo}–{hi}")
        };
        let lag = summary(&r.lag_ms)
            .map(|(m, p, x)| format!("{m:.1} / {p:.1} / {x:.1}"))
            .unwrap_or_else(|| "—".to_string());
        let leader = summary(&r.leader_ms).map_or(0.0, |(m, _, _)| m);
        let problems = r.problems();
        let verdict = if problems.is_empty() {
            "ok".to_string()
        } else {
            format!("**failed**: {}", problems.join("; "))
        };
        let _ = writeln!(
            o,
            "| {} | {} | {calls} | {leader:.1} | {lag} | {} | {:.1} | {verdict} |",
            r.host.name(),
            counts_text(&r.statuses),
            counts_text(&r.wake_calls),
            r.wakes_per_waiting_second(),
        );
    }
    if let (Status::Done(e), Status::Done(k)) = (&w.envoy, &w.kong) {
        if let (Some((em, ep, _)), Some((km, kp, _))) = (summary(&e.lag_ms), summary(&k.lag_ms)) {
            let _ = writeln!(
                o,
                "\nAdded latency of a wake on Kong: {:.1} ms at the median, {:.1} ms at p90 (Kong's follower lag minus Envoy's); at most {} wake calls per waiting request per second at `tick_ms` {TICK_MS}.",
                km - em,
                kp - ep,
                1000 / TICK_MS
            );
        }
    }
    let _ = writeln!(
        o,
        "\nVerdict (fails the run): every answer 200, exactly one upstream call and one leader per round, no wake call answered other than 204.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &'static str, p50s: &[u64], failovers: Option<u64>) -> Row {
        Row {
            id,
            title: String::new(),
            load: Load::Unique,
            samples: Status::Done(
                p50s.iter()
                    .map(|&p50_us| Sample {
                        p50_us,
                        requests: 1000,
                        failovers,
                        ..Sample::default()
                    })
                    .collect(),
            ),
        }
    }

    fn cpu_row(id: &'static str, cpu: f64) -> Row {
        Row {
            id,
            title: String::new(),
            load: Load::Unique,
            samples: Status::Done(vec![Sample {
                cpu_us_per_req: cpu,
                ..Sample::default()
            }]),
        }
    }

    #[test]
    fn decomposition_and_what_the_floor_rules_out() {
        let rows: Vec<Row> = [
            ("A", 56.0),
            ("B", 21.0),
            ("C", 74.0),
            ("D", 44.0),
            ("F", 26.0),
            ("T", 70.0),
            ("TD", 25.0),
        ]
        .into_iter()
        .map(|(id, c)| cpu_row(id, c))
        .collect();
        let mut o = String::new();
        decomposition(&mut o, &rows);
        // tax 18, logic 44 − 21 − 18 = 5, floor 14, C − T 4, TD − B 4, D − TD 19, F − B 5.
        for want in [
            "| C − A | 18.0 |",
            "| D − B − (C − A) | 5.0 |",
            "| T − A | 14.0 |",
            "| C − T | 4.0 |",
            "| TD − B | 4.0 |",
            "| D − TD | 19.0 |",
            "| F − B | 5.0 |",
        ] {
            assert!(o.contains(want), "{want} in {o}");
        }
        let v = floor_verdicts(&rows);
        assert!(v[0].starts_with("**C/A ≥ 0.95 is unreachable"), "{}", v[0]);
        assert!(v[1].starts_with("**I/A ≥ 0.88 is unreachable"), "{}", v[1]);
        assert!(v[2].starts_with("D/F ≥ 1.00 is reachable: TD/F = 1.04; D may add at most 1.0 µs over TD, it adds 19.0 µs"), "{}", v[2]);
        let below: Vec<Row> = rows
            .iter()
            .map(|r| {
                cpu_row(
                    r.id,
                    if r.id == "C" {
                        60.0
                    } else {
                        r.median_cpu().unwrap()
                    },
                )
            })
            .collect();
        assert!(floor_verdicts(&below)[0].contains("no verdict from the floor: C cost less"));
        let few: Vec<Row> = rows.into_iter().filter(|r| r.id != "T").collect();
        let mut o = String::new();
        decomposition(&mut o, &few);
        assert!(o.contains("| T − A | — (needs T) |"), "{o}");
    }

    #[test]
    fn failover_line_sets_rf_against_r() {
        let rows = vec![
            row("R", &[3000, 3200, 3100], Some(0)),
            row("RF", &[8000, 8500, 9000], Some(1000)),
        ];
        let line = failover_line(&rows, 32).unwrap();
        assert!(
            line.starts_with(
                "RF: p50 8500 µs vs R p50 3100 µs: a failed-over request adds 5400 µs at p50"
            ),
            "{line}"
        );
        assert!(line.contains("3000 failovers counted by RF's filter for its 3000 measured"));
        assert!(failover_line(&rows[..0], 32).is_none());
        let failed = vec![
            row("R", &[3000], Some(0)),
            Row {
                samples: Status::Failed("boom".into()),
                ..row("RF", &[], None)
            },
        ];
        let line = failover_line(&failed, 32).unwrap();
        assert_eq!(line, "RF: no failover figure (RF **failed**: boom).");
    }
}
