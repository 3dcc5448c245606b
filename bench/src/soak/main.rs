//! `make soak` (scripts/soak.sh runs this binary in release): the whole
//! stack (Envoy with the filter, two demo APIs, cost-control) under mixed
//! traffic through every strategy at half its measured capacity, with
//! upstream faults and cost-control killed and restarted twice, for
//! SOAK_MINUTES (10). The verdict, at the end, fails the run (exit 1) on
//! any answer that is neither a success, an injected fault's nor one of
//! the documented 429/503s; on Envoy's memory or the filter's heap
//! growing by more than 5 % after the warm-up (the first 20 %); on a
//! ledger that does not hold exactly the responses' priced cost; on a
//! worker, VM or process that restarted or a log line showing a trap or a
//! panic. Report: target/soak/report.md, memory.svg, samples.json.
//! See bench/README.md ("Soak") for the knobs.

// The bench's modules this binary shares (the bench is a binary crate):
// each used in part only.
#[allow(dead_code)]
#[path = "../http.rs"]
mod http;

#[path = "../http1.rs"]
mod http1;
#[allow(dead_code)]
#[path = "../procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../rng.rs"]
mod rng;

mod chaos;
mod client;
mod keys;
mod mix;
mod report;
mod series;
mod stack;
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chaos::{Action, Demo, Journal};
use client::{Phase, Shared, Tally};
use mix::Mix;
use procs::repo_root;
use series::Sample;
use stack::{Paths, Stack};

/// The heap gauge, as Envoy names it.
pub const HEAP_GAUGE: &str = "wasmcustom.cost_optimizer.wasm.heap_live_bytes";
/// Requests of the mix the native shared-data check replays.
const KEY_CHECK_REQUESTS: u64 = 60_000;
/// Flat: at most this growth over the window after warm-up.
pub const FLAT_BOUND: f64 = 0.05;
/// The warm-up: this share of the run.
pub const WARMUP_SHARE: f64 = 0.2;

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("soak: FAILED (see target/soak/report.md)");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("soak: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a valid value")),
        _ => Ok(default),
    }
}

fn path_from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// The knobs (environment, passed through by `make soak`).
#[derive(Debug, Clone)]
pub struct Knobs {
    pub minutes: f64,
    /// Requests per second; 0: half the capacity measured at the start.
    pub rate: f64,
    pub capacity_seconds: u64,
    pub workers: usize,
    pub seed: u64,
    pub port_base: u16,
    pub sample_seconds: f64,
}

fn knobs() -> Result<Knobs, String> {
    let minutes: f64 = env_or("SOAK_MINUTES", 10.0)?;
    if !(0.5..=24.0 * 60.0).contains(&minutes) {
        return Err(format!("SOAK_MINUTES={minutes}: 0.5 to 1440"));
    }
    Ok(Knobs {
        minutes,
        rate: env_or("SOAK_RATE", 0.0)?,
        capacity_seconds: env_or("SOAK_CAPACITY_SECONDS", 10)?,
        workers: env_or("SOAK_WORKERS", 64)?,
        seed: match std::env::var("SOAK_SEED") {
            Ok(v) if !v.trim().is_empty() => env_or("SOAK_SEED", 0)?,
            _ => rng::fresh_seed(),
        },
        port_base: env_or("SOAK_PORT_BASE", 19200)?,
        // About 300 samples per run, every 1 to 10 s.
        sample_seconds: env_or(
            "SOAK_SAMPLE_SECONDS",
            (minutes * 60.0 / 300.0).clamp(1.0, 10.0),
        )?,
    })
}

/// What the run found, for the verdict and the report.
pub struct Outcome {
    pub knobs: Knobs,
    pub capacity_rps: f64,
    pub capacity: Tally,
    pub rate: f64,
    pub soak: Tally,
    pub soak_seconds: f64,
    pub samples: Vec<Sample>,
    pub journal: Vec<chaos::Entry>,
    pub outages: Vec<(f64, Option<f64>)>,
    pub faults_left: (u64, u64),
    /// Answers the verdict refused: how many, and the first ones.
    pub bad: (u64, Vec<client::Bad>),
    /// Per tenant: (priced answers, their cost) against the ledger's
    /// (events, cost), after it settled, and how long that took.
    pub ledger: LedgerRows,
    pub ledger_wait_s: f64,
    pub threads_start: Vec<String>,
    pub threads_end: Vec<String>,
    pub stats_start: Vec<(String, u64)>,
    pub stats_end: Vec<(String, u64)>,
    pub log_problems: Vec<String>,
    pub keys: keys::KeyCheck,
    pub exited: Vec<(String, Option<i32>)>,
    pub control_starts: u32,
    pub envoy_version: String,
    pub git: String,
}

/// Envoy stats read at the start and the end: the wasm VMs created and
/// active (a VM that failed and was rebuilt adds one), the workers, the
/// filter's cache and accounting counters.
const STATS: &str = "wasm\\.envoy\\.wasm\\.runtime|listener_manager\\.workers_started|server\\.(concurrency|hot_restart_epoch|uptime)|cost_optimizer\\.(accounting|wasm)|route\\.items\\.cache\\.(stores|evictions|hits|misses|invalidations)|route\\.items\\.coalesce\\.(coalesced|leaders)|route\\.quotes\\.batch\\.(batches|members|fallback_failed|fallback_missing)|route\\.search\\.routing\\.(failovers|unavailable|provider)|route\\.reports\\.limit\\.|route\\.orders\\.budget\\.";

fn real_main() -> Result<bool, String> {
    let k = knobs()?;
    let root = repo_root();
    let out = root.join("target/soak");
    std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let paths = Paths {
        envoy: path_from_env("ENVOY_BIN", root.join(".venv/bin/envoy")),
        wasm: path_from_env(
            "OPTIMIZER_WASM",
            root.join("target/wasm32-wasip1/release/cost_optimizer.wasm"),
        ),
        demo_api: path_from_env("DEMO_API_BIN", root.join("target/release/demo-api")),
        cost_control: path_from_env("COST_CONTROL_BIN", root.join("target/release/cost-control")),
        out: out.clone(),
    };
    let envoy_version = envoy_version(&paths.envoy);
    println!(
        "soak: {} min, seed {}, ports {}..={}, Envoy {envoy_version}",
        k.minutes,
        k.seed,
        k.port_base,
        k.port_base + 5
    );
    let filter = mix::filter_config();
    let mix = Mix::new(k.seed);
    // Natively, before the stack starts: the shared-data keys the soak's
    // config and mix can make.
    let keys = keys::check(&filter, &mix, KEY_CHECK_REQUESTS)?;
    println!(
        "soak: shared-data keys, native replay of {} requests: {} created up front, {} after, bound {}",
        keys.replayed, keys.created, keys.after, keys.bound
    );
    let mut stack = Stack::start(paths, k.port_base, &filter)?;
    let journal = Journal::default();
    let shared = Shared::default();
    let stop = AtomicBool::new(false);

    // Capacity: every worker as fast as answered.
    let epoch = Instant::now();
    println!(
        "soak: capacity run ({} s, 32 connections)",
        k.capacity_seconds
    );
    let (capacity, next) = client::run(&Phase {
        port: stack.ports.listen,
        mix: &mix,
        rate: None,
        workers: 32,
        duration: Duration::from_secs(k.capacity_seconds),
        first_index: 0,
        epoch,
        journal: &journal,
        shared: &shared,
        stop: &stop,
    });
    let capacity_rps = capacity.requests() as f64 / k.capacity_seconds.max(1) as f64;
    let rate = if k.rate > 0.0 {
        k.rate
    } else {
        (capacity_rps / 2.0).max(10.0)
    };
    println!("soak: capacity {capacity_rps:.0} req/s; soaking at {rate:.0} req/s");

    let threads_start = stack.envoy_threads();
    let stats_start = stack.stats(STATS)?;
    let total_s = k.minutes * 60.0;
    let table = chaos::timetable(total_s);
    let samples = Mutex::new(Vec::<Sample>::new());
    let soak_epoch = Instant::now();
    let (soak, _) = std::thread::scope(|s| {
        let stack = &stack;
        s.spawn(|| {
            chaos::run(&table, soak_epoch, &journal, &stop, |a| act(stack, a));
        });
        s.spawn(|| {
            sampler(
                stack,
                &shared,
                soak_epoch,
                k.sample_seconds,
                &samples,
                &stop,
            )
        });
        let r = client::run(&Phase {
            port: stack.ports.listen,
            mix: &mix,
            rate: Some(rate),
            workers: k.workers,
            duration: Duration::from_secs_f64(total_s),
            first_index: next,
            epoch: soak_epoch,
            journal: &journal,
            shared: &shared,
            stop: &stop,
        });
        stop.store(true, Ordering::Relaxed);
        r
    });
    let soak_seconds = soak_epoch.elapsed().as_secs_f64();
    // cost-control must be up for the ledger (the timetable starts it
    // again before the run ends; this covers a run stopped early).
    if stack.control.lock().map(|g| g.is_none()).unwrap_or(false) {
        stack.start_control()?;
    }
    let faults_left = (
        stack.faults_left(false).unwrap_or(u64::MAX),
        stack.faults_left(true).unwrap_or(u64::MAX),
    );
    let mut all = capacity.clone();
    all.merge(soak.clone());
    let (ledger, ledger_wait_s) = settle_ledger(&stack, &all);
    let stats_end = stack.stats(STATS)?;
    let threads_end = stack.envoy_threads();
    let exited = stack.exited();
    let log = stack.envoy_log();
    let log_problems: Vec<String> = stack::log_problems(&log)
        .into_iter()
        .map(str::to_string)
        .collect();
    let bad = shared
        .bad
        .lock()
        .map(|g| (g.0, g.1.clone()))
        .unwrap_or_default();
    let outcome = Outcome {
        knobs: k,
        capacity_rps,
        capacity,
        rate,
        soak,
        soak_seconds,
        samples: samples.into_inner().unwrap_or_default(),
        journal: journal.entries(),
        outages: journal.control_outages(),
        faults_left,
        bad,
        ledger,
        ledger_wait_s,
        threads_start,
        threads_end,
        stats_start,
        stats_end,
        log_problems,
        keys,
        exited,
        control_starts: stack.control_starts(),
        envoy_version,
        git: git(),
    };
    let verdicts = report::verdicts(&outcome);
    report::write(&out, &outcome, &verdicts)?;
    for v in &verdicts {
        println!(
            "soak: {} {}: {}",
            if v.pass { "PASS" } else { "FAIL" },
            v.what,
            v.detail
        );
    }
    println!("soak: report in {}", out.join("report.md").display());
    Ok(verdicts.iter().all(|v| v.pass))
}

fn act(stack: &Stack, a: &Action) -> Result<(), String> {
    match a {
        Action::Fault {
            demo,
            prefix,
            kind,
            count,
        } => stack.fault(
            *demo == Demo::Secondary,
            &chaos::fault_rule(prefix, *kind, *count),
        ),
        Action::KillControl => stack.kill_control(),
        Action::StartControl => stack.start_control(),
    }
}

/// Every `every` seconds until `stop`: Envoy's memory, the heap gauge,
/// threads, answers so far.
fn sampler(
    stack: &Stack,
    shared: &Shared,
    epoch: Instant,
    every: f64,
    out: &Mutex<Vec<Sample>>,
    stop: &AtomicBool,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = epoch + Duration::from_secs_f64(n as f64 * every);
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(100)));
        }
        n += 1;
        let t_s = epoch.elapsed().as_secs_f64();
        let (Ok((allocated, heap_size)), Ok((threads, rss))) =
            (stack.envoy_memory(), stack.envoy_proc())
        else {
            continue;
        };
        let filter_heap = stack.stat(HEAP_GAUGE).ok();
        let s = Sample {
            t_s,
            allocated,
            heap_size,
            rss,
            filter_heap,
            threads,
            answered: shared.answered.load(Ordering::Relaxed),
        };
        if n % 30 == 1 {
            println!(
                "soak: {:>6.0} s  {:>8} answers  Envoy allocated {:.1} MiB, RSS {:.1} MiB, filter heap {}",
                t_s,
                s.answered,
                allocated as f64 / 1048576.0,
                rss as f64 / 1048576.0,
                filter_heap.map_or("n/a".into(), |h| format!("{:.0} KiB", h as f64 / 1024.0))
            );
        }
        if let Ok(mut v) = out.lock() {
            v.push(s);
        }
    }
}

/// Wait until cost-control's ledger holds what the answers priced, for
/// every tenant, or has not moved for 20 s (at most 3 minutes: a worker
/// backs off up to 10 s between tries after the outages). Per tenant:
/// (priced answers and cost, ledger events and cost); the wait.
type LedgerRows = Vec<(String, (u64, i64), (u64, i64))>;

fn settle_ledger(stack: &Stack, all: &Tally) -> (LedgerRows, f64) {
    let start = Instant::now();
    let mut last: Option<(LedgerRows, Instant)> = None;
    loop {
        let rows: LedgerRows = mix::TENANTS
            .iter()
            .map(|t| {
                let served = all.priced.get(t).copied().unwrap_or_default();
                let ledger = stack.ledger(t).unwrap_or((0, 0));
                (t.to_string(), served, ledger)
            })
            .collect();
        let done = rows.iter().all(|(_, s, l)| s == l);
        let still = match &last {
            Some((prev, since)) if *prev == rows => since.elapsed() > Duration::from_secs(20),
            _ => false,
        };
        if done || still || start.elapsed() > Duration::from_secs(180) {
            return (rows, start.elapsed().as_secs_f64());
        }
        if last.as_ref().map(|(p, _)| p != &rows).unwrap_or(true) {
            last = Some((rows, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn git() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let hash = run(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

fn envoy_version(envoy: &std::path::Path) -> String {
    std::process::Command::new(envoy)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split("version: ")
                .nth(1)
                .map(|v| v.trim().split('/').nth(1).unwrap_or(v.trim()).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
