//! `make bench` (scripts/bench.sh runs this binary in release). See
//! bench/README.md for what each configuration measures.
//!
//! Knobs (environment): BENCH_ROUNDS (5), BENCH_SEED (the order of the
//! configurations in each round; default: from the clock, printed),
//! BENCH_SECONDS (5), BENCH_WARMUP
//! (1), BENCH_CONNECTIONS (32), BENCH_PORT_BASE (19000; the bench holds
//! BASE..=BASE+10; BASE+4 is RF's refused port), BENCH_ONLY (e.g.
//! "A,C,KA,G" or "A,R0,R,RF" or "SA,SJ": a subset of A–J, T, TD, R0, R,
//! RF, KA–KI, SA, SJ, G, H, K, W), BENCH_H_RATE (1000 req/s), BENCH_H_SECONDS (3),
//! BENCH_K_REQUESTS (30000), BENCH_K_SEED (18), BENCH_K_FILTER (a JSON
//! file: the optimizer's config for K), BENCH_W_ROUNDS (30),
//! BENCH_W_N (6), BENCH_W_DELAY_MS (100), BENCH_S_CLIENTS (64),
//! BENCH_S_TTFB_CLIENTS (8),
//! BENCH_S_CHUNKS (20), BENCH_S_DELAY_MS (10), ENVOY_BIN, OPTIMIZER_WASM,
//! KONG_NGINX_BIN (scripts/bench.sh sets it from scripts/kong-host.sh).
//! Arguments: `--estimate` (how long the run would take), `--k-replay
//! <port>` (K's sequence against a gateway already on that port).

mod chart;
mod configs;
mod host_calls;
mod http;
mod http1;
mod kong;
mod load;
mod machine;
mod procs;
mod report;
mod rng;
mod run;
mod scenarios;
mod stack;
mod stream;
mod wake;
mod workload;
mod yaml;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use configs::{Config, Feature};
use load::Wrk;
use machine::env_or;
use procs::{clock_ticks_per_second, repo_root, taken_ports, Pinning};
use report::{HPair, Report, Row, Status, WPair};
use run::{measure, Settings};
use stack::{envoy_version, Bench, Host, Paths};
use wake::WSettings;
use yaml::Ports;

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bench: some configurations failed (see the report)");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("bench: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn path_from_env(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

fn real_main() -> Result<bool, String> {
    let started = Instant::now();
    let root = repo_root();
    let settings = Settings {
        rounds: env_or("BENCH_ROUNDS", 5)?,
        seconds: env_or("BENCH_SECONDS", 5)?,
        warmup: env_or("BENCH_WARMUP", 1)?,
        connections: env_or("BENCH_CONNECTIONS", 32)?,
        ticks_per_second: clock_ticks_per_second(),
    };
    let seed: u64 = match std::env::var("BENCH_SEED") {
        Ok(v) if !v.trim().is_empty() => env_or("BENCH_SEED", 0)?,
        _ => rng::fresh_seed(),
    };
    let base: u16 = env_or("BENCH_PORT_BASE", 19000)?;
    let only: String = env_or("BENCH_ONLY", String::new())?;
    let (h_rate, h_seconds): (u32, u32) =
        (env_or("BENCH_H_RATE", 1000)?, env_or("BENCH_H_SECONDS", 3)?);
    let w = WSettings {
        rounds: env_or("BENCH_W_ROUNDS", 30)?,
        n: env_or("BENCH_W_N", 6)?,
        delay_ms: env_or("BENCH_W_DELAY_MS", 100)?,
    };
    let s_settings = stream::SSettings {
        clients: env_or("BENCH_S_CLIENTS", 64)?,
        ttfb_clients: env_or("BENCH_S_TTFB_CLIENTS", 8)?,
        chunks: env_or("BENCH_S_CHUNKS", 20)?,
        delay_ms: env_or("BENCH_S_DELAY_MS", 10)?,
    };
    if s_settings.clients == 0 || s_settings.ttfb_clients == 0 {
        return Err("BENCH_S_CLIENTS and BENCH_S_TTFB_CLIENTS must be at least 1".to_string());
    }
    if w.n < 2 || w.rounds == 0 {
        return Err("BENCH_W_N must be at least 2 and BENCH_W_ROUNDS at least 1".to_string());
    }
    let k_settings = workload::KSettings {
        requests: env_or("BENCH_K_REQUESTS", 30_000)?,
        seed: env_or("BENCH_K_SEED", 18)?,
        connections: settings.connections as usize,
    };
    let wanted =
        |id: &str| only.is_empty() || only.split(',').any(|o| o.trim().eq_ignore_ascii_case(id));

    let args: Vec<String> = std::env::args().collect();
    if let Some(port) = args
        .iter()
        .position(|a| a == "--k-replay")
        .and_then(|i| args.get(i + 1))
    {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("--k-replay {port}: not a port"))?;
        println!("{}", workload::replay_only(port, &k_settings));
        return Ok(true);
    }
    if args.iter().any(|a| a == "--estimate") {
        println!(
            "{}",
            estimate(&settings, &wanted, &k_settings, &w, h_seconds, base)
        );
        return Ok(true);
    }

    // A stale Envoy once answered a bench here: refuse while any port is held.
    let all: Vec<u16> = (base..=base.saturating_add(10)).collect();
    let taken = taken_ports(&all);
    if !taken.is_empty() {
        return Err(format!(
            "ports {taken:?} (of {base}..={}) are already in use; stop what holds them (`ss -ltnp`) or set BENCH_PORT_BASE",
            base + 10
        ));
    }
    let paths = Paths {
        envoy: path_from_env("ENVOY_BIN", root.join(".venv/bin/envoy")),
        wasm: path_from_env(
            "OPTIMIZER_WASM",
            root.join("target/wasm32-wasip1/release/cost_optimizer.wasm"),
        ),
        demo_api: path_from_env("DEMO_API_BIN", root.join("target/release/demo-api")),
        cost_control: path_from_env("COST_CONTROL_BIN", root.join("target/release/cost-control")),
        nginx: None,
        out: root.join("target/bench"),
    };
    for (what, p, how) in [
        ("Envoy", &paths.envoy, "make install"),
        ("the filter", &paths.wasm, "make build"),
        (
            "the demo API (release)",
            &paths.demo_api,
            "cargo build --release -p demo-api",
        ),
        (
            "cost-control (release)",
            &paths.cost_control,
            "cargo build --release -p cost-control",
        ),
    ] {
        if !p.exists() {
            return Err(format!("{what} not found at {}: run `{how}`", p.display()));
        }
    }
    std::fs::create_dir_all(&paths.out)
        .map_err(|e| format!("create {}: {e}", paths.out.display()))?;

    let kong_wanted = wanted("W") || configs::KONG_TWINS.iter().any(|(k, _)| wanted(k));
    let mut paths = paths;
    if kong_wanted {
        paths.nginx = Some(kong::nginx_bin()?);
    }
    let cores = machine::cores();
    let pin = Pinning::for_machine(cores);
    let pinning = match (pin.server, pin.client) {
        (Some(s), Some(c)) => {
            format!("the gateway (Envoy, or nginx with its one worker) pinned to core {s}, wrk, the demo API and cost-control to core {c} (taskset)")
        }
        _ => "one core: nothing pinned, the gateway and wrk share it".to_string(),
    };
    let bench = Bench {
        paths,
        ports: Ports::from_base(base),
        pin,
    };
    // Where a request parked on Kong wakes itself: the bench's cost-control.
    let wake_target = format!("127.0.0.1:{}", bench.ports.control);
    let wrk = Wrk::new(
        pin.client,
        settings.connections,
        bench.ports.listen,
        &bench.paths.out,
    )?;
    let version = envoy_version(&bench.paths.envoy);
    println!(
        "==> {pinning}; Envoy {version}; output in {}",
        bench.paths.out.display()
    );

    let supported = supported_strategies(&bench);
    let configs: Vec<Config> = configs::throughput_configs(&supported, &wake_target, &bench.ports)
        .into_iter()
        .filter(|c| wanted(c.id))
        .collect();
    let mut rows: Vec<Row> = configs
        .iter()
        .map(|c| Row {
            id: c.id,
            title: c.title.clone(),
            load: c.load,
            samples: availability(&bench, c.id, &c.filters, &c.route, &c.needs),
        })
        .collect();

    let sconfigs: Vec<stream::SConfig> = stream::configs()
        .into_iter()
        .filter(|c| wanted(c.id))
        .collect();
    let mut srows: Vec<stream::SRow> = sconfigs
        .iter()
        .map(|c| stream::SRow {
            id: c.id,
            title: c.title,
            samples: match &c.filters {
                yaml::Filters::None => Status::Done(Vec::new()),
                f => match bench.validate(c.id, &bench.yaml(f, &yaml::Route::Proxy)) {
                    Ok(()) => Status::Done(Vec::new()),
                    Err(reason) => {
                        println!("==> {}: not yet available: the filter refuses its config ({reason})", c.id);
                        Status::Unavailable(format!(
                            "the built filter refuses the config: {}",
                            reason.replace('|', "/")
                        ))
                    }
                },
            },
        })
        .collect();

    let demo = bench.start_demo()?;
    // J and SJ report spend to cost-control and W's requests on Kong wake
    // themselves through it; it runs until all are done.
    let control = if configs.iter().any(|c| c.id == "J")
        || sconfigs.iter().any(|c| c.priced)
        || wanted("W")
    {
        Some(bench.start_control()?)
    } else {
        None
    };
    // Their CPU is the bench's own, not other load on the machine.
    let helper_pids: Vec<u32> = std::iter::once(demo.pid())
        .chain(control.as_ref().map(|c| c.pid()))
        .collect();
    // Time spent per host's configurations, for the report.
    let (mut envoy_time, mut kong_time) = (Duration::ZERO, Duration::ZERO);
    // Each round runs the configurations in its own order, shuffled from
    // the seed: a slow drift of the machine (another job starting, the
    // CPU warming) then spreads over every configuration instead of
    // always landing on the same ones.
    println!("==> order of the configurations shuffled in each round, seed {seed} (BENCH_SEED={seed} repeats it)");
    let mut shuffler = rng::Rng::new(seed);
    let mut orders: Vec<Vec<&'static str>> = Vec::new();
    for round in 1..=settings.rounds {
        // The stream configurations (S) shuffled in with the others: an
        // index past `configs` is one of `sconfigs`.
        let mut order: Vec<usize> = (0..configs.len() + sconfigs.len()).collect();
        shuffler.shuffle(&mut order);
        let id_of = |i: usize| match configs.get(i) {
            Some(c) => c.id,
            None => sconfigs[i - configs.len()].id,
        };
        let ids: Vec<&'static str> = order.iter().map(|&i| id_of(i)).collect();
        println!("==> round {round}/{}: {}", settings.rounds, ids.join(" "));
        orders.push(ids);
        for i in order {
            if let Some(si) = i.checked_sub(configs.len()) {
                let (cfg, row) = (&sconfigs[si], &mut srows[si]);
                let Status::Done(samples) = &mut row.samples else {
                    continue;
                };
                let t = Instant::now();
                let measured =
                    stream::measure(&bench, cfg, round, &settings, &s_settings, &helper_pids);
                envoy_time += t.elapsed();
                match measured {
                    Ok(x) => {
                        println!(
                            "==> round {round}/{}: {} {} streams  TTFB p50 {:.0} µs  p99 {:.0} µs  {:.2} CPU µs/event ({:.1} per stream)  other load {:.2} cores",
                            settings.rounds, cfg.id, x.streams, x.ttfb_p50_us, x.ttfb_p99_us,
                            x.cpu_us_per_event, x.cpu_us_per_stream(&s_settings), x.other_cores
                        );
                        samples.push(x);
                    }
                    Err(e) => {
                        println!("==> round {round}: {} failed: {e}", cfg.id);
                        row.samples = Status::Failed(stack::truncate(&e, 600));
                    }
                }
                continue;
            }
            let (cfg, row) = (&configs[i], &mut rows[i]);
            let Status::Done(samples) = &mut row.samples else {
                continue;
            };
            let t = Instant::now();
            let measured = measure(&bench, &wrk, cfg, round, &settings, &helper_pids);
            *match cfg.host {
                Host::Envoy => &mut envoy_time,
                Host::Kong => &mut kong_time,
            } += t.elapsed();
            match measured {
                Ok(s) => {
                    let failovers = s
                        .failovers
                        .map(|f| format!("  {f} failovers"))
                        .unwrap_or_default();
                    let who = if s.other_cores >= report::QUIET_CORES {
                        format!(" ({})", report::procs_text(&s.other_procs))
                    } else {
                        String::new()
                    };
                    println!(
                        "==> round {round}/{}: {} {:>9.0} req/s  p50 {:>5} µs  p99 {:>6} µs  {:>6.1} CPU µs/req  {:.3} upstream/req  {} errors{failovers}  other load {:.2} cores{who}",
                        settings.rounds, cfg.id, s.rps, s.p50_us, s.p99_us, s.cpu_us_per_req, s.upstream_per_req, s.errors, s.other_cores
                    );
                    samples.push(s);
                }
                Err(e) => {
                    println!("==> round {round}: {} failed: {e}", cfg.id);
                    row.samples = Status::Failed(stack::truncate(&e, 600));
                }
            }
        }
    }

    let t = Instant::now();
    let k = if wanted("K") {
        run_k(&bench, &k_settings, settings.ticks_per_second)
    } else {
        skipped()
    };
    let k_time = t.elapsed();

    let accounting = match &control {
        Some(_) => ledger_check(&bench, &rows),
        None => skipped(),
    };
    let t = Instant::now();
    let w_pair = WPair {
        settings: w,
        envoy: run_w(&bench, wanted("W"), Host::Envoy, &w, &wake_target),
        kong: run_w(&bench, wanted("W"), Host::Kong, &w, &wake_target),
    };
    let w_time = t.elapsed();
    drop(control);
    let t = Instant::now();

    let (g_baseline, g_filter) = if wanted("G") {
        run_g(&bench)
    } else {
        (skipped(), skipped())
    };
    let h = if wanted("H") {
        run_h(&bench, h_rate, h_seconds)
    } else {
        HPair {
            rate: h_rate,
            seconds: h_seconds,
            baseline: skipped(),
            batched: skipped(),
        }
    };
    let secs = |d: Duration| d.as_secs_f64().round();
    let timing = format!(
        "This run of the bench program took {:.0} s: the rounds of the Envoy configurations {:.0} s, of the Kong configurations (KA–KI) {:.0} s; K {:.0} s; W {:.0} s; G and H {:.0} s (scripts/bench.sh's builds and cost-control's ingest benchmark come before it).",
        secs(started.elapsed()),
        secs(envoy_time),
        secs(kong_time),
        secs(k_time),
        secs(w_time),
        secs(t.elapsed()),
    );
    println!("==> {timing}");

    let report = Report {
        machine: machine::describe(version, pinning),
        settings,
        seed,
        orders,
        rows,
        host_calls: host_calls::count_all(&configs),
        g_baseline,
        g_filter,
        h,
        k,
        k_settings,
        w: w_pair,
        streams: stream::SReport {
            settings: s_settings,
            rows: srows,
        },
        timing,
        spend: spend_result(),
        accounting,
    };
    let ok = !any_failed(&report);
    let text = report::render(&report);
    let md = bench.paths.out.join("report.md");
    std::fs::write(&md, &text).map_err(|e| format!("write {}: {e}", md.display()))?;
    write_json(&report, &bench.paths.out.join("report.json"))?;
    let png = bench.paths.out.join("report.png");
    if let Err(e) = chart::draw(&report, &png) {
        println!("==> no chart: {e}");
    }
    println!("\n{text}");
    println!("==> wrote {} and {}", md.display(), png.display());
    Ok(ok)
}

/// `--estimate` (scripts/bench.sh prints it before the run): about how
/// long the bench will take with these knobs, counting every
/// configuration `BENCH_ONLY` leaves in. Per configuration and round: the
/// run, the warm-up, and about 3 s to start the gateway, probe it and
/// stop it (6 s on Kong); K: each replay at about 1,500 requests a
/// second; G, H and W as they are built.
fn estimate(
    s: &Settings,
    wanted: &dyn Fn(&str) -> bool,
    k: &workload::KSettings,
    w: &WSettings,
    h_seconds: u32,
    base: u16,
) -> String {
    let configs: Vec<Config> =
        configs::throughput_configs(&configs::I_FEATURES, "127.0.0.1:1", &Ports::from_base(base))
            .into_iter()
            .filter(|c| wanted(c.id))
            .collect();
    // The stream configurations (SA, SJ) run on Envoy like A–J.
    let streams: Vec<&str> = stream::configs()
        .into_iter()
        .map(|c| c.id)
        .filter(|id| wanted(id))
        .collect();
    let per_round: u32 = configs
        .iter()
        .map(|c| c.host)
        .chain(streams.iter().map(|_| Host::Envoy))
        .map(|host| {
            s.seconds
                + s.warmup
                + match host {
                    Host::Envoy => 3,
                    Host::Kong => 6,
                }
        })
        .sum();
    // Each stream configuration's round has two runs (TTFB, then CPU).
    let stream_runs = s.seconds * streams.len() as u32;
    let mut secs = f64::from(s.rounds * (per_round + stream_runs));
    let mut extra = Vec::new();
    if wanted("K") {
        secs += 3.0 * (k.requests as f64 / 1500.0 + 3.0);
        extra.push("K");
    }
    if wanted("G") {
        secs += 2.0 * (3.0 * (G_BURST_SECONDS) + 3.0);
        extra.push("G");
    }
    if wanted("H") {
        secs += 2.0 * (f64::from(h_seconds) + 3.0);
        extra.push("H");
    }
    if wanted("W") {
        secs += 2.0 * (f64::from(w.rounds) * (w.delay_ms as f64 / 1000.0 + 0.1) + 6.0);
        extra.push("W");
    }
    let two_runs = if streams.is_empty() {
        String::new()
    } else {
        format!(
            " ({}: {} s, two runs)",
            streams.join(", "),
            2 * s.seconds + s.warmup + 3
        )
    };
    let ids: Vec<&str> = configs.iter().map(|c| c.id).chain(streams).collect();
    format!(
        "about {} min: {} configurations ({}) × {} rounds × about {} s each{two_runs}{}",
        (secs / 60.0).ceil().max(1.0),
        ids.len(),
        ids.join(" "),
        s.rounds,
        s.seconds + s.warmup + 3,
        if extra.is_empty() {
            String::new()
        } else {
            format!(", plus {}", extra.join(", "))
        }
    )
}

/// Seconds one G burst takes: the upstream's delay and the clients.
const G_BURST_SECONDS: f64 = 1.5;

/// W on one host; its verdict is [`wake::WResult::problems`].
fn run_w(
    bench: &Bench,
    wanted: bool,
    host: Host,
    s: &WSettings,
    wake: &str,
) -> Status<wake::WResult> {
    if !wanted {
        return skipped();
    }
    println!(
        "==> W on {}: {} rounds of {} identical requests, upstream answering after {} ms",
        host.name(),
        s.rounds,
        s.n,
        s.delay_ms
    );
    let r = done_or_failed(wake::run(bench, host, s, wake));
    if let Status::Done(r) = &r {
        let lag = wake::summary(&r.lag_ms).unwrap_or_default();
        println!(
            "==> W on {}: follower − leader median {:.1} ms, p90 {:.1}, max {:.1}; {:.0} wake calls per waiting request per second{}",
            host.name(),
            lag.0,
            lag.1,
            lag.2,
            r.wakes_per_waiting_second(),
            match r.problems() {
                p if p.is_empty() => String::new(),
                p => format!("; FAILED: {}", p.join("; ")),
            }
        );
    }
    r
}

/// Whether the built filter accepts this configuration: `Done(vec![])`
/// when it needs nothing or Envoy validates it, `Unavailable` naming the
/// missing strategies and the refusal otherwise.
fn availability(
    bench: &Bench,
    id: &str,
    filters: &yaml::Filters,
    route: &yaml::Route,
    needs: &[Feature],
) -> Status<Vec<run::Sample>> {
    if needs.is_empty() {
        return Status::Done(Vec::new());
    }
    match bench.validate(id, &bench.yaml(filters, route)) {
        Ok(()) => Status::Done(Vec::new()),
        Err(reason) => {
            let names: Vec<&str> = needs.iter().map(|f| f.name()).collect();
            println!("==> {id}: not yet available: the filter refuses its config ({reason})");
            Status::Unavailable(format!(
                "needs the filter's {}; the built filter refuses the config: {}",
                names.join(" + "),
                reason.replace('|', "/")
            ))
        }
    }
}

/// The strategies of I that the built filter accepts, each checked alone
/// with `envoy --mode validate`.
fn supported_strategies(bench: &Bench) -> Vec<Feature> {
    configs::I_FEATURES
        .iter()
        .copied()
        .filter(|f| {
            let filters = yaml::Filters::Wasm(configs::filter_json("items", "/api/items/", &[*f]));
            let ok = bench
                .validate(
                    &format!("strategy-{}", configs::strategy(*f).0),
                    &bench.yaml(&filters, &yaml::Route::Proxy),
                )
                .is_ok();
            println!(
                "==> filter strategy {}: {}",
                f.name(),
                if ok {
                    "accepted"
                } else {
                    "not accepted (not landed yet?)"
                }
            );
            ok
        })
        .collect()
}

/// G against the baseline, then against the filter when it coalesces.
fn run_g(
    bench: &Bench,
) -> (
    Status<Vec<scenarios::GResult>>,
    Status<Vec<scenarios::GResult>>,
) {
    println!("==> G: coalescing bursts");
    let baseline = configs::baseline_filter();
    let base = done_or_failed(scenarios::coalescing(bench, "G-baseline", &baseline, false));
    let filters = configs::coalescing_filter();
    let needs = [Feature::Coalesce];
    let with = match availability(bench, "G", &filters, &yaml::Route::Proxy, &needs) {
        Status::Done(_) => done_or_failed(scenarios::coalescing(bench, "G", &filters, true)),
        Status::Unavailable(w) => Status::Unavailable(w),
        Status::Failed(w) => Status::Failed(w),
    };
    (base, with)
}

/// K on its three gateways, when the built filter accepts the
/// optimizer's configuration.
fn run_k(
    bench: &Bench,
    s: &workload::KSettings,
    ticks_per_second: u64,
) -> Status<Vec<workload::KRun>> {
    let config = match workload::optimizer_config() {
        Ok(c) => c,
        Err(e) => return Status::Failed(e),
    };
    let filters = yaml::Filters::Wasm(config.clone());
    let needs = [
        Feature::Cache,
        Feature::Coalesce,
        Feature::Batch,
        Feature::Limit,
    ];
    match availability(bench, "K", &filters, &yaml::Route::Proxy, &needs) {
        Status::Done(_) => done_or_failed(workload::run(bench, s, config, ticks_per_second)),
        Status::Unavailable(w) => Status::Unavailable(w),
        Status::Failed(w) => Status::Failed(w),
    }
}

/// H against the baseline, then against the filter when it batches.
fn run_h(bench: &Bench, rate: u32, seconds: u32) -> HPair {
    println!("==> H: batching at {rate} req/s for {seconds} s");
    let baseline = configs::baseline_filter();
    let base = done_or_failed(scenarios::batching(
        bench,
        "H-baseline",
        &baseline,
        rate,
        seconds,
        false,
    ));
    let filters = configs::batching_filter();
    let batched = match availability(bench, "H", &filters, &yaml::Route::Proxy, &[Feature::Batch]) {
        Status::Done(_) => done_or_failed(scenarios::batching(
            bench, "H", &filters, rate, seconds, true,
        )),
        Status::Unavailable(w) => Status::Unavailable(w),
        Status::Failed(w) => Status::Failed(w),
    };
    HPair {
        rate,
        seconds,
        baseline: base,
        batched,
    }
}

fn skipped<T>() -> Status<T> {
    Status::Unavailable("skipped: not in BENCH_ONLY".to_string())
}

fn done_or_failed<T>(r: Result<T, String>) -> Status<T> {
    match r {
        Ok(v) => Status::Done(v),
        Err(e) => {
            println!("==> failed: {e}");
            Status::Failed(stack::truncate(&e, 600))
        }
    }
}

fn any_failed(r: &Report) -> bool {
    r.rows
        .iter()
        .any(|row| matches!(row.samples, Status::Failed(_)))
        || [&r.g_baseline, &r.g_filter].iter().any(|g| match g {
            Status::Done(v) => v.iter().any(|x| !x.problems.is_empty()),
            Status::Unavailable(_) => false,
            Status::Failed(_) => true,
        })
        || match &r.k {
            Status::Done(v) => v.iter().any(|x| !x.problems.is_empty()),
            Status::Unavailable(_) => false,
            Status::Failed(_) => true,
        }
        || [&r.h.baseline, &r.h.batched].iter().any(|h| match h {
            Status::Done(x) => !x.problems.is_empty(),
            Status::Unavailable(_) => false,
            Status::Failed(_) => true,
        })
        || matches!(r.accounting, Status::Failed(_))
        || r.streams.failed()
        || [&r.w.envoy, &r.w.kong].iter().any(|w| match w {
            Status::Done(x) => !x.problems().is_empty(),
            Status::Unavailable(_) => false,
            Status::Failed(_) => true,
        })
}

/// The raw samples, for anyone who wants more than the table.
fn write_json(r: &Report, path: &std::path::Path) -> Result<(), String> {
    let rows: Vec<serde_json::Value> = r
        .rows
        .iter()
        .map(|row| {
            let samples = match &row.samples {
                Status::Done(v) => serde_json::json!(v
                    .iter()
                    .map(|s| serde_json::json!({
                        "round": s.round, "rps": s.rps, "p50_us": s.p50_us, "p99_us": s.p99_us,
                        "cpu_us_per_req": s.cpu_us_per_req, "upstream_per_req": s.upstream_per_req,
                        "requests": s.requests, "errors": s.errors, "other_cores": s.other_cores,
                        "failovers": s.failovers, "other_procs": s.other_procs,
                        "ledger": s.ledger.map(|l| serde_json::json!({
                            "answered": l.answered, "received": l.received, "events": l.events,
                            "priced": l.priced, "drain_ms": l.drain_ms
                        }))
                    }))
                    .collect::<Vec<_>>()),
                Status::Unavailable(w) => serde_json::json!({"unavailable": w}),
                Status::Failed(w) => serde_json::json!({"failed": w}),
            };
            serde_json::json!({"id": row.id, "title": row.title, "samples": samples})
        })
        .collect();
    let w: Vec<serde_json::Value> = [&r.w.envoy, &r.w.kong]
        .iter()
        .filter_map(|w| match w {
            Status::Done(x) => Some(serde_json::json!({
                "host": x.host.name(), "statuses": x.statuses, "upstream_calls": x.calls,
                "leaders": x.leaders, "leader_ms": x.leader_ms, "follower_minus_leader_ms": x.lag_ms,
                "waiting_s": x.waiting_s, "wake_calls": x.wake_calls, "problems": x.problems()
            })),
            _ => None,
        })
        .collect();
    let k: Vec<serde_json::Value> = match &r.k {
        Status::Done(v) => v
            .iter()
            .map(|x| {
                serde_json::json!({
                    "id": x.id, "requests": x.requests, "upstream_calls": x.upstream_calls,
                    "calls_by_route": x.calls_by_route, "cost_micros": x.cost_micros(),
                    "cpu_us_per_req": x.cpu_us_per_req, "seconds": x.seconds,
                    "p50_us": x.p50_us, "p99_us": x.p99_us, "stale_reads": x.stale_reads,
                    "statuses": x.statuses.iter().map(|(k, s, n)| serde_json::json!([k.name(), s, n])).collect::<Vec<_>>(),
                    "x_cache": x.x_cache, "problems": x.problems
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let streams: Vec<serde_json::Value> = r
        .streams
        .rows
        .iter()
        .map(|row| {
            let samples = match &row.samples {
                Status::Done(v) => serde_json::json!(v
                    .iter()
                    .map(|s| serde_json::json!({
                        "round": s.round, "streams": s.streams, "events": s.events,
                        "seconds": s.seconds, "ttfb_p50_us": s.ttfb_p50_us,
                        "ttfb_p99_us": s.ttfb_p99_us, "ttfb_streams": s.ttfb_streams,
                        "loaded_p50_us": s.loaded_p50_us, "loaded_p99_us": s.loaded_p99_us, "cpu_us_per_event": s.cpu_us_per_event,
                        "other_cores": s.other_cores, "other_procs": s.other_procs,
                        "ledger": s.ledger.map(|(sent, events, cost)| serde_json::json!({
                            "streams_sent": sent, "events": events, "cost_micros": cost
                        }))
                    }))
                    .collect::<Vec<_>>()),
                Status::Unavailable(w) => serde_json::json!({"unavailable": w}),
                Status::Failed(w) => serde_json::json!({"failed": w}),
            };
            serde_json::json!({"id": row.id, "title": row.title, "samples": samples})
        })
        .collect();
    let st = &r.streams.settings;
    let doc = serde_json::json!({
        "streams": {"clients": st.clients, "ttfb_clients": st.ttfb_clients, "chunks": st.chunks, "delay_ms": st.delay_ms,
                    "configs": streams},
        "date": r.machine.date, "cores": r.machine.cores, "cpu": r.machine.cpu_model,
        "envoy": r.machine.envoy_version, "git": r.machine.git, "seed": r.seed,
        "orders": r.orders, "configs": rows, "w": w, "k": k,
        "k_requests": r.k_settings.requests, "k_seed": r.k_settings.seed
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// J's requests really were priced and reported. Each J round waited,
/// before stopping Envoy, until cost-control's ledger priced every request
/// that Envoy answered (probes, warm-up and measured run; see
/// `run::wait_for_ledger`). Fails when the ledger holds no event, prices
/// fewer requests than were answered or more than were received, or holds
/// events from outside J's rounds.
fn ledger_check(bench: &Bench, rows: &[Row]) -> Status<String> {
    let Some(Status::Done(samples)) = rows.iter().find(|r| r.id == "J").map(|r| &r.samples) else {
        return skipped();
    };
    let rounds: Vec<run::LedgerRound> = samples.iter().filter_map(|s| s.ledger).collect();
    if rounds.is_empty() {
        return skipped();
    }
    let measured: u64 = samples.iter().map(|s| s.requests).sum();
    let sum = |f: fn(&run::LedgerRound) -> u64| rounds.iter().map(f).sum::<u64>();
    let (answered, received) = (sum(|r| r.answered), sum(|r| r.received));
    let (events, priced) = (sum(|r| r.events), sum(|r| r.priced));
    let drain_max = rounds.iter().map(|r| r.drain_ms).max().unwrap_or(0);
    let ledger = match bench.ledger(configs::J_TENANT) {
        Ok(l) => l,
        Err(e) => return Status::Failed(format!("cost-control's ledger: {e}")),
    };
    let strategies: Vec<String> = ledger
        .by_strategy
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let folded = if events < priced {
        format!(
            " ({} fewer rows than requests: the filter's buffer overflowed and folded events into sums)",
            priced - events
        )
    } else {
        String::new()
    };
    let text = format!(
        "J: over its {} Envoy answered {answered} requests 200 ({received} received; {measured} of them completed by wrk in the measured runs, the rest warm-ups and probes). cost-control's ledger received {events} spend events for them{folded}, pricing {priced} requests at ${} each; after each round the last of them was in the ledger at most {:.1} s after wrk stopped (polled before stopping Envoy). Ledger for tenant `{}` at the end: {} events, ${:.3}, by strategy: {}.",
        if rounds.len() == 1 { "round".to_string() } else { format!("{} rounds", rounds.len()) },
        configs::J_COST_PER_CALL,
        drain_max as f64 / 1000.0,
        configs::J_TENANT,
        ledger.events,
        ledger.cost_micros as f64 / 1e6,
        if strategies.is_empty() { "none".to_string() } else { strategies.join(", ") },
    );
    println!("==> {text}");
    // Equal is expected; a request wrk cut short after its answer was
    // priced can count as received without counting as answered.
    if events > 0 && (answered..=received).contains(&priced) && ledger.events == events {
        Status::Done(text)
    } else {
        Status::Failed(format!(
            "{text} Expected the ledger to price every request answered and no more than were received."
        ))
    }
}

/// cost-control's ingest benchmark, run by scripts/bench.sh before this
/// program (its one-line result arrives in BENCH_SPEND_RESULT).
fn spend_result() -> Status<String> {
    match std::env::var("BENCH_SPEND_RESULT") {
        Ok(line) if line.contains("events_per_sec=") => Status::Done(format!(
            "Spend events into the embedded SQLite store through cost-control's HTTP app (in process), batches of 500, 8 clients, with snapshot reads while ingesting (goal ≥ 100k events/s):\n\n`{}`",
            line.trim()
        )),
        Ok(line) => Status::Unavailable(format!("cost-control's ingest-bench did not report: {line}")),
        Err(_) => Status::Unavailable("run through `make bench` (scripts/bench.sh runs cost-control's ingest-bench)".to_string()),
    }
}
