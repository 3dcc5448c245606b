//! The worker's spend events on their way to `cost-control`.
//!
//! Events are buffered and sent by the timer as one batch at a time
//! (`POST /v1/spend`). A batch keeps its id until `cost-control` accepts
//! it, so a retry after a lost answer is recognised as a duplicate there
//! and nothing is counted twice. The buffer is bounded: past the bound an
//! event is folded into a per-tenant (and per-lease) sum that tells
//! `cost-control` how many requests it stands for (`count`), so money and
//! request counts are never lost, only detail.
//!
//! A batch that `cost-control` refuses as invalid (400) is not dropped:
//! its money is parked per tenant (as folded sums without a lease) and
//! sent again, each tenant's sum in a batch of its own so one bad value
//! cannot hold back the others, with a backoff of its own.

use std::collections::BTreeMap;

use optimizer_wire::{Micros, SpendBatch, SpendEvent as WireEvent, Ts};

/// Field bounds `cost-control` enforces (a longer value would make it
/// refuse the whole batch); values are cut to fit before they are stored.
const MAX_NAME: usize = 200;
const MAX_ROUTE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendEvent {
    pub tenant: String,
    pub service: String,
    pub route: String,
    pub provider: String,
    pub strategy: &'static str,
    pub cost_micros: u64,
    pub baseline_micros: u64,
    pub ts_ms: u64,
    pub allowance_id: Option<String>,
}

/// One event as `cost-control` reads it (`optimizer_wire::SpendEvent`,
/// the type its decoder uses): the count only when it is not 1.
fn wire_event<'a>(
    tenant: &'a str,
    (service, route, provider, strategy): (&'a str, &'a str, &'a str, &'a str),
    (cost, baseline, ts_ms): (u64, u64, u64),
    allowance_id: Option<&'a str>,
    count: u64,
) -> WireEvent<&'a str> {
    WireEvent {
        tenant,
        service,
        route,
        provider,
        strategy,
        cost_micros: Micros(cost),
        baseline_micros: Some(Micros(baseline)),
        ts: Ts::Ms(i64::try_from(ts_ms).unwrap_or(i64::MAX)),
        allowance_id,
        count: (count != 1).then(|| i64::try_from(count).unwrap_or(i64::MAX)),
    }
}

/// A batch on its way (or waiting for its retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingBatch {
    pub batch_id: String,
    pub body: Vec<u8>,
    pub events: usize,
}

/// How `cost-control` answered a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// 2xx: stored (or a duplicate of a stored batch).
    Accepted,
    /// 400: the batch itself is invalid and will never be accepted.
    Rejected,
    /// No answer, timeout, 5xx, 401/403, 429: try again later.
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Folded {
    cost_micros: u64,
    baseline_micros: u64,
    events: u64,
    ts_ms: u64,
}

impl Folded {
    fn add(&mut self, cost: u64, baseline: u64, events: u64, ts_ms: u64) {
        self.cost_micros = self.cost_micros.saturating_add(cost);
        self.baseline_micros = self.baseline_micros.saturating_add(baseline);
        self.events = self.events.saturating_add(events);
        self.ts_ms = self.ts_ms.max(ts_ms);
    }
}

/// What a batch carries, kept until it is accepted so a refused batch's
/// money can be parked.
#[derive(Debug, Default)]
struct Content {
    sums: Vec<((String, Option<String>), Folded)>,
    events: Vec<SpendEvent>,
    /// A parked tenant's sum sent again (alone), with its refusals so far.
    parked: Option<u32>,
}

#[derive(Debug)]
struct Current {
    batch: OutgoingBatch,
    content: Content,
    attempts: u32,
    /// `Some(t)`: sent at `t`, waiting for its answer.
    sent_at_ms: Option<u64>,
    retry_at_ms: u64,
}

#[derive(Debug)]
pub struct SpendBuffer {
    gateway_id: String,
    nonce: u64,
    seq: u64,
    max_buffer: usize,
    events: Vec<SpendEvent>,
    folded: BTreeMap<(String, Option<String>), Folded>,
    parked: BTreeMap<String, parked::Parked>,
    current: Option<Current>,
    last_flush_ms: u64,
    /// Events folded into sums since start (for a counter).
    pub folded_total: u64,
}

/// Shorten `s` to at most `max` bytes on a character boundary, in place
/// (a copy per field of every event was four allocations per request).
fn cut_to(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

impl SpendBuffer {
    /// `nonce` tells this worker's batches apart from other workers' and
    /// from an earlier run's (random per VM).
    pub fn new(gateway_id: &str, nonce: u64, max_buffer: usize) -> Self {
        SpendBuffer {
            gateway_id: gateway_id.to_string(),
            nonce,
            seq: 0,
            max_buffer: max_buffer.max(1),
            events: Vec::new(),
            folded: BTreeMap::new(),
            parked: BTreeMap::new(),
            current: None,
            last_flush_ms: 0,
            folded_total: 0,
        }
    }

    pub fn push(&mut self, mut e: SpendEvent) {
        cut_to(&mut e.tenant, MAX_NAME);
        cut_to(&mut e.service, MAX_NAME);
        cut_to(&mut e.route, MAX_ROUTE);
        cut_to(&mut e.provider, MAX_NAME);
        if e.allowance_id
            .as_ref()
            .is_some_and(|id| id.len() > MAX_NAME)
        {
            e.allowance_id = None;
        }
        if self.events.len() < self.max_buffer {
            self.events.push(e);
            return;
        }
        let f = self.folded.entry((e.tenant, e.allowance_id)).or_default();
        f.add(e.cost_micros, e.baseline_micros, 1, e.ts_ms);
        self.folded_total += 1;
    }

    /// Give back the room an outage's backlog grew the buffer to, once
    /// it has drained (see `pipeline::oversized`).
    pub fn compact(&mut self) {
        if crate::pipeline::oversized(self.events.len(), self.events.capacity()) {
            self.events.shrink_to(2 * self.events.len());
        }
    }

    /// Events (and folded sums) not yet in a batch.
    pub fn pending(&self) -> usize {
        self.events.len() + self.folded.len()
    }

    /// Whether a batch is out or waits for its retry.
    pub fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// The batch to send now, if any: a failed batch again (same id, same
    /// body) once its backoff is over, else a new batch when the flush
    /// interval passed or `max_events` are waiting. Never two at once.
    pub fn next_batch(
        &mut self,
        now_ms: u64,
        flush_ms: u64,
        max_events: usize,
    ) -> Option<OutgoingBatch> {
        if let Some(c) = &mut self.current {
            if c.sent_at_ms.is_some() || now_ms < c.retry_at_ms {
                return None;
            }
            c.sent_at_ms = Some(now_ms);
            return Some(c.batch.clone());
        }
        let content = if let Some(parked) = self.due_parked(now_ms) {
            parked
        } else {
            let pending = self.pending();
            if pending == 0 {
                return None;
            }
            if pending < max_events && now_ms < self.last_flush_ms.saturating_add(flush_ms) {
                return None;
            }
            self.last_flush_ms = now_ms;
            self.take(max_events.max(1))
        };
        let batch = self.build(&content);
        self.current = Some(Current {
            batch: batch.clone(),
            content,
            attempts: 0,
            sent_at_ms: Some(now_ms),
            retry_at_ms: 0,
        });
        Some(batch)
    }

    fn take(&mut self, max_events: usize) -> Content {
        // Folded sums first: they are the oldest money.
        let mut sums = Vec::new();
        while sums.len() < max_events {
            let Some((key, f)) = self.folded.pop_first() else {
                break;
            };
            sums.push((key, f));
        }
        let take = (max_events - sums.len()).min(self.events.len());
        Content {
            sums,
            events: self.events.drain(..take).collect(),
            parked: None,
        }
    }

    fn build(&mut self, content: &Content) -> OutgoingBatch {
        let (sums, events) = (&content.sums, &content.events);
        self.seq += 1;
        let batch_id = format!("{}-{:016x}-{}", self.gateway_id, self.nonce, self.seq);
        let mut wire: Vec<WireEvent<&str>> = sums
            .iter()
            .map(|((tenant, allowance), f)| {
                wire_event(
                    tenant,
                    ("", "", "", "folded"),
                    (f.cost_micros, f.baseline_micros, f.ts_ms),
                    allowance.as_deref(),
                    f.events.max(1),
                )
            })
            .collect();
        wire.extend(events.iter().map(|e| {
            wire_event(
                &e.tenant,
                (&e.service, &e.route, &e.provider, e.strategy),
                (e.cost_micros, e.baseline_micros, e.ts_ms),
                e.allowance_id.as_deref(),
                1,
            )
        }));
        let count = wire.len();
        let body = SpendBatch {
            batch_id: batch_id.as_str(),
            gateway_id: self.gateway_id.as_str(),
            events: wire,
        }
        .to_json();
        OutgoingBatch {
            batch_id,
            body,
            events: count,
        }
    }

    /// The answer to the batch out. `jitter` is a random number; a failed
    /// batch waits `min(max, min·2^attempts)` scaled into [50 %, 100 %]
    /// ("equal jitter"), so many gateways do not retry in step. Returns the
    /// number of requests a refused batch parked.
    pub fn on_result(
        &mut self,
        now_ms: u64,
        outcome: FlushOutcome,
        jitter: u64,
        backoff_min_ms: u64,
        backoff_max_ms: u64,
    ) -> usize {
        let Some(c) = &mut self.current else {
            return 0;
        };
        match outcome {
            FlushOutcome::Accepted => {
                self.current = None;
                0
            }
            FlushOutcome::Rejected => {
                let Some(c) = self.current.take() else {
                    return 0;
                };
                self.park(c.content, now_ms, jitter) as usize
            }
            FlushOutcome::Failed => {
                let delay = backoff_delay(c.attempts, backoff_min_ms, backoff_max_ms);
                let half = delay / 2;
                c.attempts = c.attempts.saturating_add(1);
                c.sent_at_ms = None;
                c.retry_at_ms = now_ms + half + jitter % (delay - half + 1);
                0
            }
        }
    }

    /// A batch out for longer than `timeout_ms` (the host never answered)
    /// counts as failed.
    pub fn expire(
        &mut self,
        now_ms: u64,
        timeout_ms: u64,
        jitter: u64,
        min: u64,
        max: u64,
    ) -> bool {
        let stuck = self
            .current
            .as_ref()
            .and_then(|c| c.sent_at_ms)
            .is_some_and(|t| now_ms > t.saturating_add(timeout_ms));
        if stuck {
            self.on_result(now_ms, FlushOutcome::Failed, jitter, min, max);
        }
        stuck
    }
}

/// `min·2^attempts`, capped at `max`.
pub fn backoff_delay(attempts: u32, min: u64, max: u64) -> u64 {
    let factor = 1u64.checked_shl(attempts.min(32)).unwrap_or(u64::MAX);
    min.saturating_mul(factor).min(max).max(1)
}

#[path = "spend_parked.rs"]
mod parked;

#[path = "spend_spill.rs"]
pub mod spill;

#[cfg(test)]
#[path = "spend_tests.rs"]
mod tests;
