//! The verdict (each assertion with its figures) and the report:
//! `target/soak/report.md`, `memory.svg`, `samples.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::chaos::{Action, Demo, FaultKind};
use crate::client::Class;
use crate::mix::{Kind, CACHE_ENTRIES};
use crate::series::{trend, Trend};
use crate::svg::{Chart, Panel, Series};
use crate::{Outcome, FLAT_BOUND, HEAP_GAUGE, WARMUP_SHARE};

pub struct Verdict {
    pub what: &'static str,
    pub pass: bool,
    pub detail: String,
}

fn mib(b: f64) -> String {
    format!("{:.2} MiB", b / 1048576.0)
}

fn kib(b: f64) -> String {
    format!("{:.1} KiB", b / 1024.0)
}

fn pct(x: f64) -> String {
    format!("{:+.2} %", x * 100.0)
}

/// Seconds from the soak's start at which the flatness window begins.
pub fn warmup_s(o: &Outcome) -> f64 {
    o.soak_seconds * WARMUP_SHARE
}

pub fn allocated_trend(o: &Outcome) -> Option<Trend> {
    let p: Vec<(f64, f64)> = o
        .samples
        .iter()
        .map(|s| (s.t_s, s.allocated as f64))
        .collect();
    trend(&p, warmup_s(o))
}

pub fn rss_trend(o: &Outcome) -> Option<Trend> {
    let p: Vec<(f64, f64)> = o.samples.iter().map(|s| (s.t_s, s.rss as f64)).collect();
    trend(&p, warmup_s(o))
}

pub fn heap_trend(o: &Outcome) -> Option<Trend> {
    let p: Vec<(f64, f64)> = o
        .samples
        .iter()
        .filter_map(|s| s.filter_heap.map(|h| (s.t_s, h as f64)))
        .collect();
    trend(&p, warmup_s(o))
}

/// Faults installed, by kind name and where, with their counts.
fn installed(o: &Outcome) -> BTreeMap<(String, String), (u64, u64)> {
    let mut m: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for e in &o.journal {
        if let Action::Fault {
            demo,
            prefix,
            kind,
            count,
        } = &e.action
        {
            let kind = match kind {
                FaultKind::Status(_) => "5xx burst".to_string(),
                k => k.name(),
            };
            let at = format!(
                "{} {prefix}",
                if *demo == Demo::Secondary {
                    "secondary"
                } else {
                    "primary"
                }
            );
            let v = m.entry((kind, at)).or_default();
            v.0 += 1;
            v.1 += count;
        }
    }
    m
}

fn fault_total(o: &Outcome, want: impl Fn(&FaultKind) -> bool) -> u64 {
    o.journal
        .iter()
        .filter_map(|e| match &e.action {
            Action::Fault { kind, count, .. } if want(kind) => Some(*count),
            _ => None,
        })
        .sum()
}

fn stat(v: &[(String, u64)], suffix: &str) -> Option<u64> {
    v.iter().find(|(k, _)| k.ends_with(suffix)).map(|(_, n)| *n)
}

pub fn verdicts(o: &Outcome) -> Vec<Verdict> {
    let mut v = Vec::new();
    let mut all = o.capacity.clone();
    all.merge(o.soak.clone());
    let unexpected = all.class(Class::Unexpected);
    v.push(Verdict {
        what: "answers",
        pass: o.bad.0 == 0 && unexpected == 0 && all.transport_errors == 0,
        detail: format!(
            "{} requests (capacity run included): {} answered otherwise than 2xx, an injected fault or a documented 429/503, {} without an answer",
            all.requests(),
            unexpected,
            all.transport_errors
        ),
    });
    let statuses = fault_total(o, |k| matches!(k, FaultKind::Status(_)));
    let resets = fault_total(o, |k| *k == FaultKind::Reset);
    let (seen_s, seen_r) = (
        all.class(Class::InjectedStatus),
        all.class(Class::InjectedReset),
    );
    v.push(Verdict {
        what: "fault answers within the faults injected",
        pass: seen_s <= statuses && seen_r <= resets,
        detail: format!(
            "{seen_s} injected 5xx answers seen for {statuses} injected; {seen_r} reset replies seen for {resets} resets injected ({} of them while the soak's POST /__faults installing the reset had not returned)",
            all.resets_installing
        ),
    });
    let failed_actions: Vec<String> = o
        .journal
        .iter()
        .filter(|e| !e.error.is_empty())
        .map(|e| format!("{:?} at {:.0} s: {}", e.action, e.at_s, e.error))
        .collect();
    v.push(Verdict {
        what: "chaos carried out",
        pass: failed_actions.is_empty() && o.control_starts == 3 && o.outages.len() == 2,
        detail: if failed_actions.is_empty() {
            format!(
                "{} faults installed; cost-control killed {} times and started {} times in all",
                o.journal
                    .iter()
                    .filter(|e| matches!(e.action, Action::Fault { .. }))
                    .count(),
                o.outages.len(),
                o.control_starts
            )
        } else {
            failed_actions.join("; ")
        },
    });
    let flat = |t: Option<Trend>, fmt: fn(f64) -> String| {
        match t {
        Some(t) => (
            t.flat(FLAT_BOUND),
            format!(
                "after warm-up {} → {} ({} end vs start, {} fitted, slope {}/min; min {}, max {}; {} samples)",
                fmt(t.start),
                fmt(t.end),
                pct(t.growth),
                pct(t.fitted_growth),
                fmt(t.slope_per_min),
                fmt(t.min),
                fmt(t.max),
                t.samples
            ),
        ),
        None => (false, "too few samples".to_string()),
    }
    };
    let (pass, detail) = flat(allocated_trend(o), mib);
    v.push(Verdict {
        what: "Envoy memory (/memory allocated) flat",
        pass,
        detail,
    });
    let (pass, detail) = flat(heap_trend(o), kib);
    v.push(Verdict {
        what: "filter heap (gauge) flat",
        pass,
        detail: if heap_trend(o).is_none() {
            format!("no {HEAP_GAUGE} in Envoy's /stats")
        } else {
            detail
        },
    });
    let ledger_ok = !o.ledger.is_empty() && o.ledger.iter().all(|(_, s, l)| s == l);
    v.push(Verdict {
        what: "ledger = what was served",
        pass: ledger_ok,
        detail: o
            .ledger
            .iter()
            .map(|(t, s, l)| {
                format!(
                    "{t}: {} priced answers, ${:.6} served; ledger {} events, ${:.6}",
                    s.0,
                    s.1 as f64 / 1e6,
                    l.0,
                    l.1 as f64 / 1e6
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    });
    let created = |s: &[(String, u64)]| stat(s, "wasm.envoy.wasm.runtime.v8.created");
    let vm_same = created(&o.stats_start) == created(&o.stats_end);
    let threads_same = o.threads_start == o.threads_end;
    v.push(Verdict {
        what: "no worker restart",
        pass: vm_same && threads_same && o.exited.is_empty() && o.log_problems.is_empty(),
        detail: format!(
            "Envoy threads {} at the start, {} at the end ({}); wasm VMs created {:?} → {:?}; processes exited: {:?}; log lines showing a trap, panic or failed VM: {}",
            o.threads_start.len(),
            o.threads_end.len(),
            if threads_same { "the same" } else { "changed" },
            created(&o.stats_start),
            created(&o.stats_end),
            o.exited,
            o.log_problems.len()
        ),
    });
    let stores = stat(&o.stats_end, "route.items.cache.stores").unwrap_or(0);
    let evictions = stat(&o.stats_end, "route.items.cache.evictions").unwrap_or(0);
    let k = &o.keys;
    v.push(Verdict {
        what: "shared-data keys bounded by config",
        pass: k.pass() && (stores <= u64::from(CACHE_ENTRIES) || evictions > 0),
        detail: format!(
            "native replay of the mix ({} requests, in-memory host): {} keys made at configure, {} after, bound {}; on Envoy (no view of its keys): {stores} cache stores into {CACHE_ENTRIES} entries, {evictions} evictions",
            k.replayed, k.created, k.after, k.bound
        ),
    });
    v
}

pub fn write(dir: &Path, o: &Outcome, verdicts: &[Verdict]) -> Result<(), String> {
    let svg = chart(o);
    let svg_path = dir.join("memory.svg");
    std::fs::write(&svg_path, svg).map_err(|e| format!("write {}: {e}", svg_path.display()))?;
    let json = serde_json::json!({
        "seed": o.knobs.seed,
        "rate": o.rate,
        "capacity_rps": o.capacity_rps,
        "samples": o.samples.iter().map(|s| serde_json::json!({
            "t_s": s.t_s, "allocated": s.allocated, "heap_size": s.heap_size,
            "rss": s.rss, "filter_heap": s.filter_heap, "threads": s.threads,
            "answered": s.answered})).collect::<Vec<_>>(),
    });
    let json_path = dir.join("samples.json");
    std::fs::write(&json_path, json.to_string())
        .map_err(|e| format!("write {}: {e}", json_path.display()))?;
    let md = markdown(o, verdicts);
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, md).map_err(|e| format!("write {}: {e}", md_path.display()))
}

fn chart(o: &Outcome) -> String {
    let pts = |f: &dyn Fn(&crate::series::Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        o.samples
            .iter()
            .filter_map(|s| f(s).map(|v| (s.t_s, v)))
            .collect()
    };
    let mut rate = Vec::new();
    for w in o.samples.windows(2) {
        let dt = w[1].t_s - w[0].t_s;
        if dt > 0.0 {
            rate.push((
                w[1].t_s,
                w[1].answered.saturating_sub(w[0].answered) as f64 / dt,
            ));
        }
    }
    let outages = o
        .outages
        .iter()
        .map(|(a, b)| (*a, b.unwrap_or(o.soak_seconds)))
        .collect();
    crate::svg::render(&Chart {
        title: format!(
            "make soak: {:.0} min at {:.0} req/s, seed {} (grey: warm-up; red: cost-control down)",
            o.soak_seconds / 60.0,
            o.rate,
            o.knobs.seed
        ),
        panels: vec![
            Panel {
                title: "Envoy memory",
                unit: "MiB",
                series: vec![
                    Series {
                        label: "/memory allocated",
                        color: "#1f77b4",
                        points: pts(&|s| Some(s.allocated as f64 / 1048576.0)),
                    },
                    Series {
                        label: "/memory heap_size",
                        color: "#9467bd",
                        points: pts(&|s| Some(s.heap_size as f64 / 1048576.0)),
                    },
                    Series {
                        label: "RSS",
                        color: "#7f7f7f",
                        points: pts(&|s| Some(s.rss as f64 / 1048576.0)),
                    },
                ],
            },
            Panel {
                title: "the filter's heap (live bytes, all VMs)",
                unit: "KiB",
                series: vec![Series {
                    label: "heap_live_bytes gauge",
                    color: "#d62728",
                    points: pts(&|s| s.filter_heap.map(|h| h as f64 / 1024.0)),
                }],
            },
            Panel {
                title: "answers per second",
                unit: "req/s",
                series: vec![Series {
                    label: "answered",
                    color: "#2ca02c",
                    points: rate,
                }],
            },
        ],
        total_s: o.soak_seconds,
        warmup_s: warmup_s(o),
        outages,
    })
}

fn markdown(o: &Outcome, verdicts: &[Verdict]) -> String {
    let mut m = String::new();
    let pass = verdicts.iter().all(|v| v.pass);
    let _ = writeln!(m, "# make soak — {}\n", if pass { "PASS" } else { "FAIL" });
    let _ = writeln!(
        m,
        "Envoy {} (2 workers), filter from git {}, {} cores; seed {} (`SOAK_SEED`). \
Capacity run: {} requests in {} s on 32 connections = **{:.0} req/s**; soak at **{:.0} req/s** \
for {:.1} min ({} workers), warm-up the first {:.0} %. ![memory](memory.svg)\n",
        o.envoy_version,
        o.git,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        o.knobs.seed,
        o.capacity.requests(),
        o.knobs.capacity_seconds,
        o.capacity_rps,
        o.rate,
        o.soak_seconds / 60.0,
        o.knobs.workers,
        WARMUP_SHARE * 100.0
    );
    let _ = writeln!(m, "## Verdict\n\n| | assertion | figures |\n|---|---|---|");
    for v in verdicts {
        let _ = writeln!(
            m,
            "| {} | {} | {} |",
            if v.pass { "PASS" } else { "**FAIL**" },
            v.what,
            v.detail.replace('|', "\\|")
        );
    }
    let mut soak = o.soak.clone();
    let achieved = soak.requests() as f64 / o.soak_seconds.max(1e-9);
    let _ = writeln!(
        m,
        "\n## Traffic (soak phase)\n\n{} requests, {:.0} req/s achieved; latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.0} ms; latest send after its due time {} ms; {} requests sent again after an idle connection closed.\n",
        soak.requests(),
        achieved,
        soak.latency_ms(0.5),
        soak.latency_ms(0.99),
        soak.latency_ms(0.999),
        soak.latency_ms(1.0),
        soak.max_lag_ms,
        soak.resent
    );
    let classes = [
        Class::Ok,
        Class::Limited,
        Class::BudgetExceeded,
        Class::BudgetUnavailable,
        Class::RoutingUnavailable,
        Class::InjectedStatus,
        Class::InjectedReset,
        Class::Unexpected,
    ];
    let _ = write!(m, "| kind | requests |");
    for c in classes {
        let _ = write!(m, " {} |", c.name());
    }
    let _ = write!(m, "\n|---|---|");
    for _ in classes {
        let _ = write!(m, "---|");
    }
    let _ = writeln!(m);
    for k in Kind::ALL {
        let _ = write!(m, "| {} | {} |", k.name(), soak.kind(k));
        for c in classes {
            let n = soak.by_kind_class.get(&(k, c)).copied().unwrap_or(0);
            let _ = write!(m, " {n} |");
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(
        m,
        "\n`x-cache`: {}.\n",
        soak.x_cache
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        m,
        "## Faults injected\n\n| fault | where | times | requests it applied to (counted rules) |\n|---|---|---|---|"
    );
    for ((kind, at), (times, count)) in installed(o) {
        let _ = writeln!(m, "| {kind} | {at} | {times} | {count} |");
    }
    let _ = writeln!(
        m,
        "\nLeft unused at the end (rules whose count was not reached): {} on the primary, {} on the secondary. \
Answers seen: {} injected 5xx, {} reset replies; the rest were absorbed (stale-if-error, routing's retry to the other provider, batch fallbacks, coalescing).\n",
        o.faults_left.0,
        o.faults_left.1,
        o.soak.class(Class::InjectedStatus),
        o.soak.class(Class::InjectedReset)
    );
    let _ = writeln!(
        m,
        "cost-control down (killed with SIGKILL, started again on the same SQLite store):"
    );
    for (a, b) in &o.outages {
        let _ = writeln!(
            m,
            "- {a:.0} s → {}",
            b.map_or("not started again".to_string(), |b| format!(
                "{b:.0} s ({:.0} s down)",
                b - a
            ))
        );
    }
    let _ = writeln!(
        m,
        "\n## Memory\n\nAfter warm-up (from {:.0} s), start and end are the medians of the window's first and last twentieth; \"fitted\" is the least-squares line's rise over the window. Bound: {} %.\n",
        warmup_s(o),
        FLAT_BOUND * 100.0
    );
    let _ = writeln!(m, "| series | start | end | end vs start | fitted | slope | min | max |\n|---|---|---|---|---|---|---|---|");
    type Row<'a> = (&'a str, Option<Trend>, fn(f64) -> String);
    let rows: [Row; 3] = [
        ("Envoy `/memory` allocated", allocated_trend(o), mib),
        ("Envoy RSS (not asserted)", rss_trend(o), mib),
        ("filter heap gauge", heap_trend(o), kib),
    ];
    for (name, t, f) in rows {
        match t {
            Some(t) => {
                let _ = writeln!(
                    m,
                    "| {name} | {} | {} | {} | {} | {}/min | {} | {} |",
                    f(t.start),
                    f(t.end),
                    pct(t.growth),
                    pct(t.fitted_growth),
                    f(t.slope_per_min),
                    f(t.min),
                    f(t.max)
                );
            }
            None => {
                let _ = writeln!(m, "| {name} | n/a | | | | | | |");
            }
        }
    }
    if let (Some(first), Some(last)) = (o.samples.first(), o.samples.last()) {
        let _ = writeln!(
            m,
            "\nFirst sample ({:.0} s): allocated {}, RSS {}, filter heap {}; last ({:.0} s): allocated {}, RSS {}, filter heap {}.",
            first.t_s,
            mib(first.allocated as f64),
            mib(first.rss as f64),
            first.filter_heap.map_or("n/a".into(), |h| kib(h as f64)),
            last.t_s,
            mib(last.allocated as f64),
            mib(last.rss as f64),
            last.filter_heap.map_or("n/a".into(), |h| kib(h as f64)),
        );
    }
    // The heap just before each outage and at the end: whether an outage
    // left the heap higher (the first) and whether the next added more.
    let at = |t: f64| o.samples.iter().rev().find(|s| s.t_s <= t);
    let mut marks: Vec<String> = o
        .outages
        .iter()
        .enumerate()
        .filter_map(|(i, (a, _))| {
            let s = at(a - 0.5)?;
            Some(format!(
                "before outage {} ({:.0} s): filter heap {}, allocated {}",
                i + 1,
                s.t_s,
                s.filter_heap.map_or("n/a".into(), |h| kib(h as f64)),
                mib(s.allocated as f64)
            ))
        })
        .collect();
    if let Some(s) = o.samples.last() {
        marks.push(format!(
            "end ({:.0} s): filter heap {}, allocated {}",
            s.t_s,
            s.filter_heap.map_or("n/a".into(), |h| kib(h as f64)),
            mib(s.allocated as f64)
        ));
    }
    let _ = writeln!(m, "\nAround cost-control's outages: {}.", marks.join("; "));
    let _ = writeln!(
        m,
        "\n## Ledger\n\nWaited {:.1} s after the load for cost-control's ledger to settle (workers back off up to 10 s after the outages).\n\n| tenant | priced answers | cost served | ledger events | ledger cost |\n|---|---|---|---|---|",
        o.ledger_wait_s
    );
    for (t, s, l) in &o.ledger {
        let _ = writeln!(
            m,
            "| {t} | {} | ${:.6} | {} | ${:.6} |",
            s.0,
            s.1 as f64 / 1e6,
            l.0,
            l.1 as f64 / 1e6
        );
    }
    let _ = writeln!(
        m,
        "\n## Shared data\n\nEnvoy shows no count of proxy-wasm shared-data keys. Every key the filter writes is a slot of a fixed table (`shared.rs`): `Filter::create_tables` makes the cache index, generations, coalescing markers, limiter and budget slots and one health key per routing rule at configure time; a request can add only cache data (slots × ways) and coalescing results (one per slot). The soak replays its own mix natively against the in-memory host, whose store counts keys: {} requests (quotes and orders left out: they wait on the timer and on cost-control), {} keys made at configure, {} after, bound {}. On the real Envoy, what shows of it: the cache's stores and evictions below (a full table evicts), and Envoy's memory above (shared data lives in Envoy's heap).\n",
        o.keys.replayed,
        o.keys.created,
        o.keys.after,
        o.keys.bound
    );
    let _ = writeln!(
        m,
        "## Envoy counters (start of the soak → end)\n\n| stat | start | end |\n|---|---|---|"
    );
    for (k, end) in &o.stats_end {
        let start = o
            .stats_start
            .iter()
            .find(|(s, _)| s == k)
            .map_or("—".to_string(), |(_, v)| v.to_string());
        let _ = writeln!(m, "| `{k}` | {start} | {end} |");
    }
    let _ = writeln!(
        m,
        "\nEnvoy threads at the start: {}.",
        o.threads_start.join(", ")
    );
    if !o.bad.1.is_empty() {
        let _ = writeln!(
            m,
            "\n## Refused answers (first {} of {})\n",
            o.bad.1.len(),
            o.bad.0
        );
        for b in &o.bad.1 {
            let _ = writeln!(
                m,
                "- {:.1} s: {} → {}",
                b.at_s,
                b.request,
                b.what.replace('\n', " ")
            );
        }
    }
    if !o.log_problems.is_empty() {
        let _ = writeln!(m, "\n## Envoy log problems (first 20)\n");
        for l in o.log_problems.iter().take(20) {
            let _ = writeln!(m, "    {l}");
        }
    }
    m
}
