//! Money of spend batches `cost-control` refused as invalid: parked per
//! tenant (as folded sums, without the lease) and sent again, each
//! tenant's sum in a batch of its own so one bad value cannot hold back
//! the others, backing off while it keeps being refused. Nothing is
//! dropped.

use super::{backoff_delay, Content, Folded, SpendBuffer};

/// Money of a refused batch, waiting to be sent again on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Parked {
    pub(super) sum: Folded,
    /// Times a batch holding it was refused.
    pub(super) refusals: u32,
    pub(super) retry_at_ms: u64,
}

/// Backoff of parked money after a refusal: it waits for an operator (or
/// a fixed cost-control) more than for a network blip.
const PARKED_MIN_MS: u64 = 5_000;
const PARKED_MAX_MS: u64 = 600_000;

impl SpendBuffer {
    /// Money parked after a refusal: (micros, requests), for tests and
    /// logs.
    pub fn parked(&self) -> (u64, u64) {
        self.parked.values().fold((0, 0), |(c, n), p| {
            (c.saturating_add(p.sum.cost_micros), n + p.sum.events)
        })
    }

    /// A parked tenant's sum whose backoff is over, as a batch's content.
    pub(super) fn due_parked(&mut self, now_ms: u64) -> Option<Content> {
        let tenant = self
            .parked
            .iter()
            .find(|(_, p)| p.retry_at_ms <= now_ms)
            .map(|(t, _)| t.clone())?;
        let p = self.parked.remove(&tenant)?;
        Some(Content {
            sums: vec![((tenant, None), p.sum)],
            events: Vec::new(),
            parked: Some(p.refusals),
        })
    }

    /// Park a refused batch's money per tenant, without its lease (an
    /// unknown lease may be why it was refused; the spend still counts
    /// against the tenant's budgets). Returns the requests it stands for.
    pub(super) fn park(&mut self, content: Content, now_ms: u64, jitter: u64) -> u64 {
        let refusals = content.parked.map_or(1, |n| n.saturating_add(1));
        let mut requests = 0;
        let mut add = |tenant: String, cost: u64, baseline: u64, events: u64, ts: u64| {
            let p = self.parked.entry(tenant).or_default();
            // A timestamp cost-control found too far ahead must not be
            // the reason it refuses the sum again.
            p.sum.add(cost, baseline, events, ts.min(now_ms));
            // Money that joins a parked sum never waits less than it.
            p.refusals = p.refusals.max(refusals);
            let delay = backoff_delay(p.refusals - 1, PARKED_MIN_MS, PARKED_MAX_MS);
            let half = delay / 2;
            p.retry_at_ms = p
                .retry_at_ms
                .max(now_ms + half + jitter % (delay - half + 1));
            requests += events;
        };
        for ((tenant, _), f) in content.sums {
            add(
                tenant,
                f.cost_micros,
                f.baseline_micros,
                f.events.max(1),
                f.ts_ms,
            );
        }
        for e in content.events {
            add(e.tenant, e.cost_micros, e.baseline_micros, 1, e.ts_ms);
        }
        requests
    }
}
