//! One configuration, one round: its gateway (Envoy or Kong's engine)
//! started fresh, a probe that the configuration does what it claims, a
//! warm-up, then the measured run with the gateway's CPU time and the
//! upstream calls counted around it. A round fails when a request of the
//! measured run failed or, on Kong, when nginx's error log shows a trap,
//! a panic or a dead worker.

use std::time::{Duration, Instant};

use crate::configs::{
    Calls, Config, Expect, Failovers, Load, BODY_BYTES, FAILOVERS_COUNTER, J_COST_PER_CALL_MICROS,
    J_TENANT, PROVIDER_FAILURES, QUERY, TENANT,
};
use crate::http;
use crate::load::Wrk;
use crate::procs::{busiest_others, cpu_ticks, machine_busy_ticks, port_open, process_ticks};
use crate::stack::{Bench, Host, Workers};

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub rounds: u32,
    pub seconds: u32,
    pub warmup: u32,
    pub connections: u32,
    pub ticks_per_second: u64,
}

/// One measured run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The round it belongs to (1-based).
    pub round: u32,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub cpu_us_per_req: f64,
    pub upstream_per_req: f64,
    pub requests: u64,
    pub errors: u64,
    /// CPU the rest of the machine used during the run (not Envoy, not
    /// the demo API, not wrk), in cores: other work disturbing the run.
    pub other_cores: f64,
    /// The processes (by command name, not the bench's own) that used the
    /// most CPU during the run, in cores: who the other load was, as far
    /// as `/proc` saw it.
    pub other_procs: Vec<(String, f64)>,
    /// For a priced configuration: what this round sent and what reached
    /// cost-control's ledger.
    pub ledger: Option<LedgerRound>,
    /// For a routed configuration: requests the filter saw answered by
    /// another provider than the one it chose, during the measured run.
    pub failovers: Option<u64>,
}

impl Sample {
    /// Share of one core the gateway used during the run (CPU per request
    /// times requests per second).
    pub fn gateway_busy(&self) -> f64 {
        self.cpu_us_per_req * self.rps / 1e6
    }
}

/// One round of a priced configuration, from Envoy's start to its stop:
/// probes, warm-up and measured run.
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerRound {
    /// Requests this Envoy answered 200 (`http.bench.downstream_rq_2xx`).
    pub answered: u64,
    /// Requests it received (`downstream_rq_total`; above `answered` when
    /// wrk cut a request short at the end of a run).
    pub received: u64,
    /// Ledger rows added during the round.
    pub events: u64,
    /// Requests those rows price (their cost ÷ the price per call).
    pub priced: u64,
    /// From wrk's end until the ledger held every answered request (or
    /// until the wait gave up).
    pub drain_ms: u64,
}

/// How long a round waits for its last spend batches (the filter flushes
/// every second, 500 events a batch, one batch in flight).
const LEDGER_WAIT: Duration = Duration::from_secs(20);

pub fn measure(
    bench: &Bench,
    wrk: &Wrk,
    cfg: &Config,
    round: u32,
    s: &Settings,
    helper_pids: &[u32],
) -> Result<Sample, String> {
    if cfg.route.uses_refused() && port_open(bench.ports.refused) {
        return Err(format!(
            "port {} must refuse connections for {}, and something listens on it",
            bench.ports.refused, cfg.id
        ));
    }
    let gateway = bench.start_gateway(
        cfg.id,
        cfg.host,
        &cfg.filters,
        &cfg.route,
        Workers::OnePinned,
    )?;
    let result = (|| {
        let ledger0 = if cfg.priced {
            Some(bench.ledger(J_TENANT)?)
        } else {
            None
        };
        probe(bench, cfg, round)?;
        if s.warmup > 0 {
            wrk.run(cfg.load, s.warmup, &format!("w{round}-"), cfg.headers)?;
        }
        // The routing counters: failovers, then each provider's failures.
        let routing_counters = || -> Result<Option<[u64; 3]>, String> {
            if cfg.failovers.is_none() {
                return Ok(None);
            }
            let [a, b] = PROVIDER_FAILURES;
            Ok(Some([
                bench.envoy_counter(FAILOVERS_COUNTER)?,
                bench.envoy_counter(a)?,
                bench.envoy_counter(b)?,
            ]))
        };
        let routing0 = routing_counters()?;
        let non_2xx = || -> Result<Option<u64>, String> {
            if cfg.host != Host::Envoy {
                return Ok(None);
            }
            let mut n = 0;
            for class in ["3xx", "4xx", "5xx"] {
                n += bench.envoy_counter(&format!("http.bench.downstream_rq_{class}"))?;
            }
            Ok(Some(n))
        };
        let non_2xx0 = non_2xx()?;
        let calls0 = bench.demo_total_calls()?;
        let procs0 = process_ticks();
        let (busy0, helpers0) = (machine_busy_ticks()?, helper_ticks(helper_pids)?);
        let ticks0 = gateway.cpu_ticks()?;
        let r = wrk.run(cfg.load, s.seconds, &format!("m{round}-"), cfg.headers)?;
        let ticks1 = gateway.cpu_ticks()?;
        let (busy1, helpers1) = (machine_busy_ticks()?, helper_ticks(helper_pids)?);
        let procs1 = process_ticks();
        let ours: Vec<u32> = gateway
            .pids()
            .into_iter()
            .chain(helper_pids.iter().copied())
            .chain([std::process::id()])
            .collect();
        let other_procs = busiest_others(
            &procs0,
            &procs1,
            &ours,
            s.ticks_per_second,
            r.duration_us.max(1) as f64 / 1e6,
            3,
        );
        let ours = ticks1.saturating_sub(ticks0) + helpers1.saturating_sub(helpers0) + r.cpu_ticks;
        let other_ticks = busy1.saturating_sub(busy0).saturating_sub(ours);
        let other_cores =
            other_ticks as f64 / s.ticks_per_second as f64 / (r.duration_us.max(1) as f64 / 1e6);
        let calls1 = bench.demo_total_calls()?;
        let non_2xx = non_2xx()?.zip(non_2xx0).map(|(a, b)| a.saturating_sub(b));
        let routing = routing_counters()?
            .zip(routing0)
            .map(|(c1, c0)| [0, 1, 2].map(|i| c1[i].saturating_sub(c0[i])));
        let failovers = routing.map(|[f, _, _]| f);
        let ledger = match &ledger0 {
            Some(l0) => Some(wait_for_ledger(bench, l0)?),
            None => None,
        };
        if r.requests == 0 {
            return Err("wrk completed no request".to_string());
        }
        if r.errors > 0 {
            return Err(format!(
                "{} of {} requests failed (socket errors, timeouts or answers other than 2xx/3xx)",
                r.errors, r.requests
            ));
        }
        if let Some(n) = non_2xx.filter(|n| *n > 0) {
            return Err(format!(
                "Envoy answered {n} requests of the measured run with a status other than 2xx (http.bench.downstream_rq_3xx/4xx/5xx)"
            ));
        }
        let calls = calls1.saturating_sub(calls0);
        match cfg.calls {
            Calls::OneEach => check_one_each(
                calls,
                r.requests,
                s.connections,
                "upstream calls (the demo API's count)",
            )?,
            Calls::None if calls > 0 => {
                return Err(format!(
                    "{calls} upstream calls (the demo API's count) for {} requests: expected none, every request answered inside the gateway",
                    r.requests
                ))
            }
            Calls::None => {}
        }
        if let Some([_, a, b]) = routing.filter(|[_, a, b]| a + b > 0) {
            return Err(format!(
                "the filter recorded {a} failures of provider a and {b} of provider b ({}) for {} requests all answered 200: expected none",
                PROVIDER_FAILURES.join(", "),
                r.requests
            ));
        }
        match (cfg.failovers, failovers) {
            (Some(Failovers::None), Some(f)) if f > 0 => {
                return Err(format!(
                    "{f} of {} requests failed over ({FAILOVERS_COUNTER}); expected none",
                    r.requests
                ))
            }
            (Some(Failovers::Every), Some(f)) => check_one_each(
                f,
                r.requests,
                s.connections,
                &format!("failovers ({FAILOVERS_COUNTER})"),
            )?,
            _ => {}
        }
        let n = r.requests as f64;
        let cpu_us = (ticks1.saturating_sub(ticks0)) as f64 * 1e6 / s.ticks_per_second as f64;
        Ok(Sample {
            round,
            rps: r.rps(),
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            cpu_us_per_req: cpu_us / n,
            upstream_per_req: calls as f64 / n,
            requests: r.requests,
            errors: r.errors,
            other_cores,
            other_procs,
            ledger,
            failovers,
        })
    })();
    bench.stop_gateway(gateway)?;
    result
}

/// `count` events over a measured run of `requests`, checked to be one
/// per request: at least one for each request wrk completed (each was sent
/// after the count's first reading and answered before its second), and
/// at most two connections' worth more (requests that the end of the
/// warm-up or of the run cut short after they reached the gateway).
fn check_one_each(count: u64, requests: u64, connections: u32, what: &str) -> Result<(), String> {
    let most = requests + 2 * u64::from(connections);
    if (requests..=most).contains(&count) {
        Ok(())
    } else {
        Err(format!(
            "{count} {what} for {requests} requests: expected one per request ({requests}..={most})"
        ))
    }
}

/// CPU ticks the bench's own servers used so far (the demo API, and
/// cost-control while it runs): not "other load".
fn helper_ticks(pids: &[u32]) -> Result<u64, String> {
    pids.iter().map(|&p| cpu_ticks(p)).sum()
}

/// Before Envoy stops (and loses what its filter has not sent yet): poll
/// cost-control's ledger until it prices every request this Envoy answered
/// since `before` was read, or [`LEDGER_WAIT`] passed.
fn wait_for_ledger(bench: &Bench, before: &crate::stack::Ledger) -> Result<LedgerRound, String> {
    let start = Instant::now();
    let answered = bench.envoy_counter("http.bench.downstream_rq_2xx")?;
    let received = bench.envoy_counter("http.bench.downstream_rq_total")?;
    loop {
        let now = bench.ledger(J_TENANT)?;
        let priced = (now.cost_micros - before.cost_micros).max(0) / J_COST_PER_CALL_MICROS;
        let round = LedgerRound {
            answered,
            received,
            events: now.events.saturating_sub(before.events),
            priced: priced as u64,
            drain_ms: start.elapsed().as_millis() as u64,
        };
        if round.priced >= answered || start.elapsed() >= LEDGER_WAIT {
            return Ok(round);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Check that the configuration does what it claims before any number
/// counts: the 1 KiB answer, and a hit or miss where the config says so.
fn probe(bench: &Bench, cfg: &Config, round: u32) -> Result<(), String> {
    let path = match cfg.load {
        Load::Same => format!("/api/items/1?{QUERY}"),
        Load::Unique => format!("/api/items/probe-{round}?{QUERY}"),
    };
    let url = bench.url(&path);
    let headers: Vec<(&str, &str)> = std::iter::once(TENANT)
        .chain(cfg.headers.iter().copied())
        .collect();
    let first = http::get(&url, &headers)?;
    let resp = match cfg.expect {
        // A miss is only a miss the first time.
        Expect::FilterMiss => first,
        _ => http::get(&url, &headers)?,
    };
    let fail = |what: &str| {
        Err(format!(
            "{}: probe GET {path}: {what} (status {}, {} bytes, headers {:?})",
            cfg.id,
            resp.status,
            resp.body.len(),
            resp.headers
        ))
    };
    if resp.status != 200 || resp.body.len() != BODY_BYTES {
        return fail("expected 200 with a 1 KiB body");
    }
    let x_cache = resp.header("x-cache").unwrap_or("").to_ascii_uppercase();
    match cfg.expect {
        Expect::Ok => Ok(()),
        Expect::FilterHit if x_cache.starts_with("HIT") => Ok(()),
        Expect::FilterHit => fail("expected x-cache: HIT"),
        Expect::FilterMiss if x_cache.starts_with("MISS") => Ok(()),
        Expect::FilterMiss => fail("expected x-cache: MISS"),
        Expect::EnvoyHit if resp.header("age").is_some() => Ok(()),
        Expect::EnvoyHit => fail("expected an age header from Envoy's cache"),
        Expect::Provider(p) if resp.header("x-optimizer-provider") == Some(p) => Ok(()),
        Expect::Provider(p) => fail(&format!("expected x-optimizer-provider: {p}")),
    }
}

/// Min, median and max (median of an even count: mean of the middle two).
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some((v[0], median, v[v.len() - 1]))
}

/// The `p`-th percentile of `values` by nearest rank (100: the max).
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len().max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn one_each_allows_only_cut_requests_over() {
        assert!(check_one_each(100, 100, 32, "calls").is_ok());
        assert!(check_one_each(164, 100, 32, "calls").is_ok());
        assert!(check_one_each(165, 100, 32, "calls").is_err());
        assert!(check_one_each(99, 100, 32, "calls").is_err());
        assert!(check_one_each(200, 100, 32, "calls").is_err());
    }

    #[test]
    fn spread_of_odd_and_even() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(spread(&[]), None);
    }
}
