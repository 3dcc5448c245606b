//! One configuration, one round: Envoy started fresh, a probe that the
//! configuration does what it claims, a warm-up, then the measured run
//! with Envoy's CPU time and the upstream calls counted around it.

use crate::configs::{Config, Expect, Load, BODY_BYTES, QUERY, TENANT};
use crate::http;
use crate::load::Wrk;
use crate::procs::{cpu_ticks, machine_busy_ticks};
use crate::stack::Bench;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub rounds: u32,
    pub seconds: u32,
    pub warmup: u32,
    pub connections: u32,
    pub ticks_per_second: u64,
}

/// One measured run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
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
}

pub fn measure(
    bench: &Bench,
    wrk: &Wrk,
    cfg: &Config,
    round: u32,
    s: &Settings,
    demo_pid: u32,
) -> Result<Sample, String> {
    let yaml = bench.yaml(&cfg.filters, &cfg.route);
    let envoy = bench.start_envoy(cfg.id, &yaml)?;
    let result = (|| {
        probe(bench, cfg, round)?;
        if s.warmup > 0 {
            wrk.run(cfg.load, s.warmup, &format!("w{round}-"))?;
        }
        let pid = envoy.proc.pid();
        let calls0 = bench.demo_total_calls()?;
        let (busy0, demo0) = (machine_busy_ticks()?, cpu_ticks(demo_pid)?);
        let ticks0 = cpu_ticks(pid)?;
        let r = wrk.run(cfg.load, s.seconds, &format!("m{round}-"))?;
        let ticks1 = cpu_ticks(pid)?;
        let (busy1, demo1) = (machine_busy_ticks()?, cpu_ticks(demo_pid)?);
        let ours = ticks1.saturating_sub(ticks0) + (demo1.saturating_sub(demo0)) + r.cpu_ticks;
        let other_ticks = busy1.saturating_sub(busy0).saturating_sub(ours);
        let other_cores =
            other_ticks as f64 / s.ticks_per_second as f64 / (r.duration_us.max(1) as f64 / 1e6);
        let calls1 = bench.demo_total_calls()?;
        if r.requests == 0 {
            return Err("wrk completed no request".to_string());
        }
        let n = r.requests as f64;
        let cpu_us = (ticks1.saturating_sub(ticks0)) as f64 * 1e6 / s.ticks_per_second as f64;
        Ok(Sample {
            rps: r.rps(),
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            cpu_us_per_req: cpu_us / n,
            upstream_per_req: calls1.saturating_sub(calls0) as f64 / n,
            requests: r.requests,
            errors: r.errors,
            other_cores,
        })
    })();
    bench.stop_envoy(envoy)?;
    result
}

/// Check that the configuration does what it claims before any number
/// counts: the 1 KiB answer, and a hit or miss where the config says so.
fn probe(bench: &Bench, cfg: &Config, round: u32) -> Result<(), String> {
    let path = match cfg.load {
        Load::Same => format!("/api/items/1?{QUERY}"),
        Load::Unique => format!("/api/items/probe-{round}?{QUERY}"),
    };
    let url = bench.url(&path);
    let first = http::get(&url, &[TENANT])?;
    let resp = match cfg.expect {
        // A miss is only a miss the first time.
        Expect::FilterMiss => first,
        _ => http::get(&url, &[TENANT])?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
        assert_eq!(spread(&[]), None);
    }
}
