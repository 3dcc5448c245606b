//! W: what waking a waiting request costs, on Envoy and on Kong. Rounds
//! of N identical GETs released together, each on its own connection, to
//! a coalescing route (no cache) whose upstream answers after a delay:
//! one leader goes upstream, the N − 1 followers wait for its answer.
//! Envoy wakes them from the root context as soon as the leader's answer
//! is stored; on Kong each follower is answered when its own wake call to
//! cost-control (`GET /v1/wake?after_ms=<coalesce_store.tick_ms>`) comes
//! back. The figure is each follower's answer time minus its leader's.
//!
//! Both gateways run two workers, unpinned, so leader and followers land
//! on either worker as clients of a deployment would.

use std::time::{Duration, Instant};

use crate::configs::{for_kong, wake_filter, TENANT};
use crate::http;
use crate::run::{percentile, spread};
use crate::scenarios::{histogram, released_together};
use crate::stack::{Bench, Host, Workers};
use crate::yaml::{Filters, Route};

/// The filter's default `coalesce_store.tick_ms`: a request waiting on
/// Kong makes one wake call per tick.
pub const TICK_MS: u64 = 10;

#[derive(Debug, Clone, Copy)]
pub struct WSettings {
    pub rounds: u32,
    /// Requests per round: one leader, n − 1 followers.
    pub n: usize,
    /// How long the demo API takes to answer (`delay_ms`).
    pub delay_ms: u64,
}

#[derive(Debug, Clone)]
pub struct WResult {
    pub host: Host,
    /// How many answers had each status (0: no answer).
    pub statuses: Vec<(u16, u64)>,
    /// Upstream calls of each round (the demo API's count for its path).
    pub calls: Vec<u64>,
    /// Leaders (answers without `x-cache: COALESCED`) of each round.
    pub leaders: Vec<usize>,
    /// Each round's leader latency, ms.
    pub leader_ms: Vec<f64>,
    /// Each follower's answer time minus its leader's, ms.
    pub lag_ms: Vec<f64>,
    /// The followers' waits added up (each one's latency), seconds.
    pub waiting_s: f64,
    /// Wake calls cost-control answered during the run, by status.
    pub wake_calls: Vec<(u16, u64)>,
}

impl WResult {
    /// Wake calls per waiting request per second of waiting.
    pub fn wakes_per_waiting_second(&self) -> f64 {
        total(&self.wake_calls, |s| s == 204) as f64 / self.waiting_s.max(1e-9)
    }

    /// What makes the run fail: an answer other than 200, a round with
    /// other than one upstream call or one leader, a wake call that failed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let not_ok = total(&self.statuses, |s| s != 200);
        if not_ok > 0 {
            out.push(format!("{not_ok} answers other than 200"));
        }
        let leaders: Vec<u64> = self.leaders.iter().map(|&n| n as u64).collect();
        for (what, per_round) in [("upstream calls", &self.calls), ("leaders", &leaders)] {
            let off: Vec<String> = per_round
                .iter()
                .enumerate()
                .filter(|(_, n)| **n != 1)
                .map(|(i, n)| format!("round {}: {n}", i + 1))
                .collect();
            if !off.is_empty() {
                out.push(format!("{what} other than 1: {}", off.join(", ")));
            }
        }
        let failed = total(&self.wake_calls, |s| s != 204);
        if failed > 0 {
            out.push(format!("{failed} wake calls not answered 204"));
        }
        out
    }
}

/// The counts of the statuses `keep` accepts, added up.
fn total(counts: &[(u16, u64)], keep: impl Fn(u16) -> bool) -> u64 {
    counts
        .iter()
        .filter(|(s, _)| keep(*s))
        .map(|(_, n)| n)
        .sum()
}

/// One request of a round: status, whether it was a follower, and when it
/// was sent and answered.
struct Answer {
    status: u16,
    coalesced: bool,
    sent: Instant,
    done: Instant,
}

/// W on one host, against the cost-control the bench runs (`wake`: its
/// `host:port`, Kong's wake target). `Err` when the gateway cannot run or
/// a count cannot be read; the verdict is [`WResult::problems`].
pub fn run(bench: &Bench, host: Host, s: &WSettings, wake: &str) -> Result<WResult, String> {
    let filter = match host {
        Host::Envoy => wake_filter(),
        Host::Kong => for_kong(&wake_filter(), wake),
    };
    let name = format!("W-{}", host.name());
    let gateway = bench.start_gateway(
        &name,
        host,
        &Filters::Wasm(filter),
        &Route::Proxy,
        Workers::Two,
    )?;
    let result = (|| {
        // The demo API's per-path counts start empty: after the throughput
        // rounds they hold every unique URL, and reading them would take
        // longer than a round.
        bench.demo_reset()?;
        let wakes0 = bench.wake_calls()?;
        let mut out = WResult {
            host,
            statuses: Vec::new(),
            calls: Vec::new(),
            leaders: Vec::new(),
            leader_ms: Vec::new(),
            lag_ms: Vec::new(),
            waiting_s: 0.0,
            wake_calls: Vec::new(),
        };
        let mut statuses = Vec::new();
        for round in 1..=s.rounds {
            let path = format!("/api/live/{}-{round}", host.name().to_ascii_lowercase());
            let url = bench.url(&format!("{path}?delay_ms={}", s.delay_ms));
            let answers = released_together(s.n, || {
                let sent = Instant::now();
                let r = http::get(&url, &[TENANT]);
                Answer {
                    status: r.as_ref().map_or(0, |r| r.status),
                    coalesced: r
                        .as_ref()
                        .is_ok_and(|r| r.header("x-cache") == Some("COALESCED")),
                    sent,
                    done: Instant::now(),
                }
            })?;
            statuses.extend(answers.iter().map(|a| a.status));
            out.calls
                .push(bench.demo_calls()?["by_path"][&path].as_u64().unwrap_or(0));
            let leaders: Vec<&Answer> = answers.iter().filter(|a| !a.coalesced).collect();
            out.leaders.push(leaders.len());
            if let [leader] = leaders.as_slice() {
                out.leader_ms.push(ms(leader.done - leader.sent));
                for f in answers.iter().filter(|a| a.coalesced) {
                    out.lag_ms.push(signed_ms(leader.done, f.done));
                    out.waiting_s += (f.done - f.sent).as_secs_f64();
                }
            }
            // The next round starts on a quiet gateway.
            std::thread::sleep(Duration::from_millis(20));
        }
        out.statuses = histogram(&statuses);
        let wakes1 = bench.wake_calls()?;
        out.wake_calls = wakes1
            .iter()
            .map(|(status, n)| {
                let before = wakes0
                    .iter()
                    .find(|(s0, _)| s0 == status)
                    .map_or(0, |(_, n0)| *n0);
                (*status, n.saturating_sub(before))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Ok(out)
    })();
    bench.stop_gateway(gateway)?;
    result
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `b − a` in ms, negative when `b` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    match b.checked_duration_since(a) {
        Some(d) => ms(d),
        None => -ms(a - b),
    }
}

/// Median, p90 and max of `v`.
pub fn summary(v: &[f64]) -> Option<(f64, f64, f64)> {
    let (_, median, max) = spread(v)?;
    Some((median, percentile(v, 90.0)?, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> WResult {
        WResult {
            host: Host::Kong,
            statuses: vec![(200, 12)],
            calls: vec![1, 1],
            leaders: vec![1, 1],
            leader_ms: vec![101.0, 102.0],
            lag_ms: vec![1.0; 10],
            waiting_s: 1.0,
            wake_calls: vec![(204, 90)],
        }
    }

    #[test]
    fn verdict_and_rate() {
        let r = result();
        assert!(r.problems().is_empty());
        assert!((r.wakes_per_waiting_second() - 90.0).abs() < 1e-9);
        let bad = WResult {
            statuses: vec![(200, 11), (0, 1)],
            calls: vec![1, 2],
            leaders: vec![1, 2],
            wake_calls: vec![(204, 90), (502, 3)],
            ..r
        };
        let p = bad.problems();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[1].contains("round 2: 2"));
    }

    #[test]
    fn signed_differences() {
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        assert!((signed_ms(a, b) - 5.0).abs() < 1e-9);
        assert!((signed_ms(b, a) + 5.0).abs() < 1e-9);
    }
}
