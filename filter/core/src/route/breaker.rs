//! The circuit breaker of one provider: when to stop sending it requests,
//! when to try it again, and how many trial requests ("probes") may be out
//! at once.
//!
//! ```text
//!            failures in a row, or the window's failure rate
//!   Closed ──────────────────────────────────────────────▶ Open
//!     ▲                                                   │  ▲
//!     │ `probes` probe successes   a request asks at or   │  │ a probe
//!     │                            after open_until       ▼  │ fails
//!     └────────────────────────────────────────────── HalfOpen
//! ```
//!
//! The breaker lives in shared data and is rewritten by compare-and-swap,
//! so every method here is a pure function of the record, the clock and the
//! config: a retried CAS simply runs it again on the fresh record.
//!
//! Decisions (each also argued where it is implemented):
//! - A result of a request that was not a probe never moves an Open or
//!   HalfOpen breaker, success or failure. Such a request was routed while
//!   the breaker was still Closed, i.e. during the incident that opened it,
//!   so its outcome is old news about the incident, not news about
//!   recovery; LLM calls outlive `open_ms` easily, so counting a slow
//!   failure as a probe failure would reopen a recovered provider, and a
//!   trickle of such stragglers could hold it open. It still feeds the
//!   latency and success statistics ([`super::health::Provider`]).
//! - A probe result counts in whatever HalfOpen episode it arrives
//!   (stragglers of an earlier, reopened episode were also sent after a
//!   cool-down, so they are evidence about recovery too); arriving while
//!   Open it moves nothing (the episode already reopened on a failure);
//!   arriving while Closed it counts like any request's result.
//! - A probe place is held from the claim until a probe result frees it or
//!   `probe_timeout_ms` passes, across Open/HalfOpen/Closed changes: so "at
//!   most `probes` probes outstanding" holds even when an episode reopens
//!   with probes still in flight.

/// Probe places kept per provider: the record has a fixed size, so
/// `BreakerConfig::probes` is clamped to this (config should reject more).
pub const MAX_PROBES: usize = 8;

/// When a provider's breaker opens and how it recovers. Zeros that would
/// make no sense are read sensibly (see the accessors) rather than trusted,
/// because this runs on whatever config was loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Consecutive failures that open it (0 disables this rule).
    pub failures: u32,
    /// 0..=1, failures / requests over the window that open it (a window
    /// with no failure never opens it, whatever this is; NaN disables it).
    pub failure_rate: f64,
    /// Requests the window must hold before the rate counts (0 reads as 1).
    pub min_requests: u32,
    /// Length of the (tumbling) window of the rate rule.
    pub window_ms: u64,
    /// How long it stays Open before a request may probe it.
    pub open_ms: u64,
    /// Half-open probes allowed at once, and probe successes that close it
    /// (clamped to 1..=[`MAX_PROBES`]: 0 would never close it).
    pub probes: u32,
    /// A claimed probe whose result never came frees its place after this
    /// (0 reads as 1 ms).
    pub probe_timeout_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            failure_rate: 0.5,
            min_requests: 10,
            window_ms: 10_000,
            open_ms: 5_000,
            probes: 2,
            probe_timeout_ms: 10_000,
        }
    }
}

impl BreakerConfig {
    pub(super) fn probes(&self) -> u32 {
        self.probes.clamp(1, MAX_PROBES as u32)
    }

    fn probe_timeout_ms(&self) -> u64 {
        self.probe_timeout_ms.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

/// What a claim or a result did to the breaker, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// Closed → Open.
    Opened,
    /// Open → HalfOpen (the request that caused it is the first probe,
    /// unless stragglers of an earlier episode still hold every place).
    HalfOpened,
    /// HalfOpen → Closed.
    Closed,
    /// HalfOpen → Open on a probe failure.
    Reopened,
}

/// How a request was let through to a provider; handed back with its
/// result, because a probe's result frees a probe place and moves a
/// half-open breaker while an ordinary one does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Normal,
    Probe,
}

/// The breaker's part of a provider's shared record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaker {
    pub(super) state: State,
    /// Failures in a row (Closed).
    pub(super) consecutive: u32,
    /// The rate window (Closed): when it started and what it holds.
    pub(super) window_start_ms: u64,
    pub(super) window_requests: u32,
    pub(super) window_failures: u32,
    /// Open: the earliest time a request may probe.
    pub(super) open_until_ms: u64,
    /// HalfOpen: probe successes so far in this episode.
    pub(super) probe_successes: u32,
    /// When each held probe place was claimed; `None` = free.
    pub(super) probes_at_ms: [Option<u64>; MAX_PROBES],
}

impl Breaker {
    pub fn state(&self) -> State {
        self.state
    }

    /// Probe places held at `now_ms` (claimed, result not in, not timed
    /// out).
    pub fn outstanding_probes(&self, now_ms: u64, cfg: &BreakerConfig) -> u32 {
        self.probes_at_ms
            .iter()
            .filter(|at| probe_live(**at, now_ms, cfg))
            .count() as u32
    }

    /// Let a request through if the state allows it; an Open breaker whose
    /// cool-down is over turns HalfOpen here, because only a request
    /// reveals whether the provider recovered.
    pub fn claim(&mut self, now_ms: u64, cfg: &BreakerConfig) -> (Option<Claim>, Transition) {
        match self.state {
            State::Closed => (Some(Claim::Normal), Transition::None),
            State::Open if !self.cool_down_over(now_ms, cfg) => (None, Transition::None),
            State::Open => {
                self.state = State::HalfOpen;
                self.probe_successes = 0;
                (self.take_probe(now_ms, cfg), Transition::HalfOpened)
            }
            State::HalfOpen => (self.take_probe(now_ms, cfg), Transition::None),
        }
    }

    /// The result of a request let through with `claim`, `latency_ms`
    /// after it was claimed. The latency matters for probes: a claim has no
    /// identity, so a probe result older than the probe timeout is known to
    /// belong to a place that already expired and frees none.
    pub fn record(
        &mut self,
        ok: bool,
        latency_ms: u64,
        claim: Claim,
        now_ms: u64,
        cfg: &BreakerConfig,
    ) -> Transition {
        if claim == Claim::Probe {
            self.free_probe(latency_ms, now_ms, cfg);
        }
        match (self.state, claim) {
            (State::Closed, _) => self.count_closed(ok, now_ms, cfg),
            (State::HalfOpen, Claim::Probe) if ok => {
                self.probe_successes = self.probe_successes.saturating_add(1);
                if self.probe_successes >= cfg.probes() {
                    self.close(now_ms);
                    Transition::Closed
                } else {
                    Transition::None
                }
            }
            (State::HalfOpen, Claim::Probe) => {
                self.open(now_ms, cfg);
                Transition::Reopened
            }
            // Non-probe results while Open/HalfOpen, and probe results
            // while Open: see the module docs.
            _ => Transition::None,
        }
    }

    /// Over at open_until; also when open_until lies further ahead than a
    /// whole cool-down (the clock went back, or open_ms was lowered by a
    /// reconfigure), so a clock jump cannot keep a provider out for hours.
    fn cool_down_over(&self, now_ms: u64, cfg: &BreakerConfig) -> bool {
        now_ms >= self.open_until_ms || self.open_until_ms > now_ms.saturating_add(cfg.open_ms)
    }

    fn take_probe(&mut self, now_ms: u64, cfg: &BreakerConfig) -> Option<Claim> {
        if self.outstanding_probes(now_ms, cfg) >= cfg.probes() {
            return None;
        }
        let place = self
            .probes_at_ms
            .iter_mut()
            .find(|at| !probe_live(**at, now_ms, cfg))?;
        *place = Some(now_ms);
        Some(Claim::Probe)
    }

    /// Free the place of a probe whose result came in. Which place is not
    /// known, so the oldest live one goes: the places left then expire no
    /// earlier than the right ones would, which keeps the bound on
    /// outstanding probes.
    fn free_probe(&mut self, latency_ms: u64, now_ms: u64, cfg: &BreakerConfig) {
        if latency_ms >= cfg.probe_timeout_ms() {
            return;
        }
        let oldest = self
            .probes_at_ms
            .iter_mut()
            .filter(|at| probe_live(**at, now_ms, cfg))
            .min_by_key(|at| at.unwrap_or(u64::MAX));
        if let Some(place) = oldest {
            *place = None;
        }
    }

    fn count_closed(&mut self, ok: bool, now_ms: u64, cfg: &BreakerConfig) -> Transition {
        // Tumbling window: old evidence is dropped wholesale once it is
        // window_ms old (a clock that went back keeps the window).
        if now_ms.saturating_sub(self.window_start_ms) >= cfg.window_ms {
            self.window_start_ms = now_ms;
            self.window_requests = 0;
            self.window_failures = 0;
        }
        self.window_requests = self.window_requests.saturating_add(1);
        if ok {
            self.consecutive = 0;
        } else {
            self.consecutive = self.consecutive.saturating_add(1);
            self.window_failures = self.window_failures.saturating_add(1);
        }
        let in_a_row = cfg.failures > 0 && self.consecutive >= cfg.failures;
        // Checked on every result, a success included: the rule is about
        // what the window holds, and the request that brings it to
        // min_requests may be a success.
        let rate = self.window_failures > 0
            && self.window_requests >= cfg.min_requests.max(1)
            && f64::from(self.window_failures) / f64::from(self.window_requests)
                >= cfg.failure_rate;
        if in_a_row || rate {
            self.open(now_ms, cfg);
            Transition::Opened
        } else {
            Transition::None
        }
    }

    /// Probe places are kept: their probes are still out (module docs).
    fn open(&mut self, now_ms: u64, cfg: &BreakerConfig) {
        self.state = State::Open;
        self.open_until_ms = now_ms.saturating_add(cfg.open_ms);
        self.reset_counters(now_ms);
    }

    fn close(&mut self, now_ms: u64) {
        self.state = State::Closed;
        self.reset_counters(now_ms);
    }

    fn reset_counters(&mut self, now_ms: u64) {
        self.consecutive = 0;
        self.window_start_ms = now_ms;
        self.window_requests = 0;
        self.window_failures = 0;
        self.probe_successes = 0;
    }
}

/// A place claimed at `at` is held until the probe timeout. A claim time
/// further ahead than a whole timeout (the clock went back) no longer
/// holds it, or a clock jump could block probing, and so the provider,
/// for as long as the jump.
fn probe_live(at: Option<u64>, now_ms: u64, cfg: &BreakerConfig) -> bool {
    let timeout = cfg.probe_timeout_ms();
    matches!(at, Some(t) if t.saturating_add(timeout) > now_ms && t <= now_ms.saturating_add(timeout))
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
