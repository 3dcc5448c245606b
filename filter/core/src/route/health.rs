//! A provider's health as the workers share it: its breaker and its
//! statistics, and the table of all providers of one rule in the binary
//! form that goes into shared data.
//!
//! Statistics:
//! - success rate: an exponentially weighted moving average over results
//!   (1 = success), starting at 1.0 so a new provider is not distrusted;
//! - latency, from successful results only: an error's latency says
//!   nothing about how fast the provider serves (a fast 503 would make a
//!   failing provider look quick, a timeout only measures the timeout);
//! - p50 is the latency EWMA. It is the mean, not a true median: it
//!   overstates the median of right-skewed latencies, which is fine for
//!   its one use, comparing providers with each other;
//! - p95 is an ESTIMATE: EWMA + 2 × the EWMA of the absolute deviation
//!   from it (the smoothed mean/deviation pair of TCP's round-trip timer,
//!   gains 1/8 and 1/4). For normally distributed latency the mean
//!   absolute deviation is 0.80 σ, so +2 of it is +1.6 σ, about the 95th
//!   percentile; for heavy tails it underestimates. Both are only reported
//!   after [`MIN_SAMPLES`] samples.
//!
//! The table is fixed-size (floats as f32 bits) so the key stays small: a
//! header (magic, version, provider count, checksum) and one record of
//! [`RECORD_LEN`] bytes per provider. Bytes of another version, damaged,
//! or for another provider count decode to a fresh table: health is
//! advisory, so the worst case is re-learning it, never a panic.

use super::breaker::{Breaker, BreakerConfig, Claim, State, Transition, MAX_PROBES};
use crate::shared::fnv1a;

/// Providers a rule may list: the table is decoded for at most this many,
/// so no input can make it allocate more.
pub const MAX_PROVIDERS: usize = 8;

/// Latency samples before p50/p95 are reported.
pub const MIN_SAMPLES: u32 = 5;

const SUCCESS_GAIN: f64 = 0.1;
const MEAN_GAIN: f64 = 0.125;
const DEVIATION_GAIN: f64 = 0.25;

const MAGIC: [u8; 3] = *b"RTH";
const VERSION: u8 = 1;
/// Magic, version, provider count, checksum (u32).
const HEADER_LEN: usize = 3 + 1 + 1 + 4;
/// state u8; consecutive, window requests, window failures, probe
/// successes u32; window start, open until u64; probe places u64 each;
/// success, mean, deviation f32; samples u32.
pub const RECORD_LEN: usize = 1 + 4 * 4 + 2 * 8 + MAX_PROBES * 8 + 3 * 4 + 4;
/// A free probe place on the wire.
const NO_PROBE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Provider {
    pub breaker: Breaker,
    success: f32,
    latency_mean: f32,
    latency_dev: f32,
    samples: u32,
}

impl Default for Provider {
    fn default() -> Self {
        Provider {
            breaker: Breaker::default(),
            success: 1.0,
            latency_mean: 0.0,
            latency_dev: 0.0,
            samples: 0,
        }
    }
}

impl Provider {
    /// Whether a request may go to this provider now, and as what; `None`
    /// when Open before its cool-down ends, or HalfOpen with every probe
    /// place taken.
    pub fn claim(&mut self, now_ms: u64, cfg: &BreakerConfig) -> Option<Claim> {
        self.claim_with_transition(now_ms, cfg).0
    }

    /// [`Provider::claim`], also telling whether it turned the breaker
    /// HalfOpen (for a log line or a metric).
    pub fn claim_with_transition(
        &mut self,
        now_ms: u64,
        cfg: &BreakerConfig,
    ) -> (Option<Claim>, Transition) {
        self.breaker.claim(now_ms, cfg)
    }

    /// The result of a request claimed with `claim`; `latency_ms` is the
    /// time since the claim (see [`Breaker::record`] for why it must be).
    pub fn record(
        &mut self,
        ok: bool,
        latency_ms: u64,
        claim: Claim,
        now_ms: u64,
        cfg: &BreakerConfig,
    ) -> Transition {
        self.observe(ok, latency_ms);
        self.breaker.record(ok, latency_ms, claim, now_ms, cfg)
    }

    fn observe(&mut self, ok: bool, latency_ms: u64) {
        let s = f64::from(self.success);
        let x = if ok { 1.0 } else { 0.0 };
        self.success = (s + SUCCESS_GAIN * (x - s)).clamp(0.0, 1.0) as f32;
        if !ok {
            return;
        }
        let x = latency_ms as f64;
        let (mean, dev) = (f64::from(self.latency_mean), f64::from(self.latency_dev));
        let (mean, dev) = if self.samples == 0 {
            // Half the first sample as its spread: unsure until more come.
            (x, x / 2.0)
        } else {
            (
                mean + MEAN_GAIN * (x - mean),
                dev + DEVIATION_GAIN * ((x - mean).abs() - dev),
            )
        };
        self.latency_mean = mean as f32;
        self.latency_dev = dev as f32;
        self.samples = self.samples.saturating_add(1);
    }

    /// The latency EWMA (a mean, see the module docs), once known.
    pub fn p50_ms(&self) -> Option<u64> {
        self.known()
            .then(|| f64::from(self.latency_mean).round() as u64)
    }

    /// The p95 estimate (module docs), once known.
    pub fn p95_ms(&self) -> Option<u64> {
        self.known().then(|| {
            (f64::from(self.latency_mean) + 2.0 * f64::from(self.latency_dev)).round() as u64
        })
    }

    fn known(&self) -> bool {
        self.samples >= MIN_SAMPLES
    }

    pub fn success_rate(&self) -> f64 {
        f64::from(self.success)
    }

    /// Latency samples taken (successful results).
    pub fn samples(&self) -> u32 {
        self.samples
    }

    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// Probe places held at `now_ms`.
    pub fn outstanding_probes(&self, now_ms: u64, cfg: &BreakerConfig) -> u32 {
        self.breaker.outstanding_probes(now_ms, cfg)
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let b = &self.breaker;
        out.push(match b.state {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        });
        for v in [
            b.consecutive,
            b.window_requests,
            b.window_failures,
            b.probe_successes,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [b.window_start_ms, b.open_until_ms] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for at in b.probes_at_ms {
            out.extend_from_slice(&at.unwrap_or(NO_PROBE).to_le_bytes());
        }
        for v in [self.success, self.latency_mean, self.latency_dev] {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        out.extend_from_slice(&self.samples.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Provider> {
        let mut r = Reader(bytes);
        let state = match r.u8()? {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            _ => return None,
        };
        let consecutive = r.u32()?;
        let window_requests = r.u32()?;
        let window_failures = r.u32()?;
        let probe_successes = r.u32()?;
        let window_start_ms = r.u64()?;
        let open_until_ms = r.u64()?;
        let mut probes_at_ms = [None; MAX_PROBES];
        for place in &mut probes_at_ms {
            *place = Some(r.u64()?).filter(|&at| at != NO_PROBE);
        }
        let success = r.f32()?;
        let latency_mean = r.f32()?;
        let latency_dev = r.f32()?;
        let samples = r.u32()?;
        // The checksum vouches for the bytes, but a statistic that is not
        // a plain number would poison every later average: reject it.
        let sane = (0.0..=1.0).contains(&success)
            && latency_mean.is_finite()
            && latency_mean >= 0.0
            && latency_dev.is_finite()
            && latency_dev >= 0.0;
        sane.then_some(Provider {
            breaker: Breaker {
                state,
                consecutive,
                window_start_ms,
                window_requests,
                window_failures,
                open_until_ms,
                probe_successes,
                probes_at_ms,
            },
            success,
            latency_mean,
            latency_dev,
            samples,
        })
    }
}

/// The health of every provider of one rule, in config order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub providers: Vec<Provider>,
}

impl Table {
    /// `n` providers nobody knows anything about (at most
    /// [`MAX_PROVIDERS`]).
    pub fn fresh(n: usize) -> Table {
        Table {
            providers: vec![Provider::default(); n.min(MAX_PROVIDERS)],
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // More than the wire allows cannot come from `fresh`/`decode`;
        // cut rather than write a count that would not fit its byte.
        let count = self.providers.len().min(MAX_PROVIDERS);
        let mut body = Vec::with_capacity(count * RECORD_LEN);
        for p in self.providers.iter().take(count) {
            p.encode_into(&mut body);
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(count as u8);
        out.extend_from_slice(&checksum(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The table in `bytes` if it is this version's, intact, and for
    /// `n_providers` providers (at most [`MAX_PROVIDERS`]); otherwise a fresh table of `n_providers`
    /// (a provider list changed by a reconfigure restarts from nothing,
    /// since index i may now be another provider).
    pub fn decode(bytes: &[u8], n_providers: usize) -> Table {
        Self::try_decode(bytes, n_providers).unwrap_or_else(|| Table::fresh(n_providers))
    }

    fn try_decode(bytes: &[u8], n: usize) -> Option<Table> {
        // Read like `fresh` sizes it, so that a (rejected-by-config) count
        // above the maximum still round-trips instead of resetting on
        // every update.
        let n = n.min(MAX_PROVIDERS);
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC || r.u8()? != VERSION || usize::from(r.u8()?) != n {
            return None;
        }
        let sum = r.u32()?;
        let body = r.0;
        if body.len() != n * RECORD_LEN || checksum(body) != sum {
            return None;
        }
        let providers = body
            .chunks_exact(RECORD_LEN)
            .map(Provider::decode)
            .collect::<Option<Vec<_>>>()?;
        Some(Table { providers })
    }
}

fn checksum(body: &[u8]) -> u32 {
    let h = fnv1a(&[b"route-health", body]);
    (h ^ (h >> 32)) as u32
}

/// A cursor over bytes that answers `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn f32(&mut self) -> Option<f32> {
        self.u32().map(f32::from_bits)
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
