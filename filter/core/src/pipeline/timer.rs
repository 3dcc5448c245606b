//! The worker's timer, shared by the stages that park requests: it ticks
//! at 1 ms while answers are queued, every `tick_ms` while requests wait,
//! and once a second otherwise. On Kong, where the period can be set only
//! once, it ticks every `tick_ms` for its whole life.

use crate::coalesce::waiters::Tick;
use crate::host::Host;

use super::{Filter, Worker};

/// Local replies a single host call may send. Envoy defers each one
/// until the call returns and then runs them in a chain, in which every
/// reply's own trip through this filter runs the next one: the depth grows
/// with each reply, and about a hundred overflowed V8's stack on Envoy
/// 1.40 (a trap that takes the worker's filter down). So a call answers at
/// most this many and the timer, ticking at 1 ms meanwhile, does the rest.
pub const ACTIONS_PER_CALL: usize = 24;

/// Tick as fast as the parked requests (coalescing followers, the
/// rate-limit queue, open batches) need, and no faster.
pub(super) fn set_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    if host.tick_period_fixed() {
        // Kong: one period for the root's life, set at configure: the fast
        // one, because a request that parks cannot speed the timer up and
        // batches and leases leave from the timer.
        let w = &mut worker.waiters;
        let ms = if filter.needs_timer() {
            filter.config.coalesce_store.tick_ms
        } else {
            // Only held counters to send, or the cache's epoch to check
            // (at least once a second, as on Envoy).
            let flush = match filter.config.metrics.flush_ms {
                0 => SLOW_TICK_MS,
                ms => ms,
            };
            if filter.checks_epoch() {
                flush.min(SLOW_TICK_MS)
            } else {
                flush
            }
        };
        if w.tick_ms == 0 && host.set_tick_period(ms).is_ok() {
            w.tick = Tick::Fast;
            w.tick_ms = ms;
        }
        return;
    }
    let queued = !worker.limiter.queue.is_empty()
        || worker.batcher.has_open()
        || worker.budgeter.has_waiting();
    // A full spend batch leaves on the next tick, not at the next flush.
    let spend_full = match (&filter.config.accounting, &worker.accountant.spend) {
        (Some(a), Some(b)) => !b.busy() && b.pending() >= a.max_events as usize,
        _ => false,
    };
    let ready = worker.batcher.has_ready(&filter.config.routes)
        || spend_full
        || worker.cache.refreshes.has_queued();
    let w = &mut worker.waiters;
    let want = if !w.outbox.is_empty() || ready {
        Tick::Drain
    } else if !w.waiting.is_empty() || queued {
        Tick::Fast
    } else {
        Tick::Slow
    };
    let ms = match want {
        Tick::Drain => 1,
        Tick::Fast => filter.config.coalesce_store.tick_ms,
        // Spend reports leave at least every `flush_ms`; purge polls are
        // looked at several times per `purge_poll_ms`.
        // Held counters leave every `metrics.flush_ms` too.
        Tick::Slow => filter
            .config
            .idle_tick_ms()
            .map_or(SLOW_TICK_MS, |ms| ms.min(SLOW_TICK_MS))
            .min(match filter.config.metrics.flush_ms {
                0 => SLOW_TICK_MS,
                ms => ms,
            }),
    };
    // By period, not only by kind: the host starts the timer at
    // SLOW_TICK_MS, which a shorter slow period must replace.
    if (want, ms) == (w.tick, w.tick_ms) {
        return;
    }
    if host.set_tick_period(ms).is_ok() {
        w.tick = want;
        w.tick_ms = ms;
    }
}

/// Start the worker's timer (at configure, in the root context).
pub fn start(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    set_tick(filter, worker, host);
}

/// Timer period when nobody waits (housekeeping only).
pub const SLOW_TICK_MS: u64 = 1_000;
