//! Held counter sums leave for the host from the worker's timer
//! (`metrics.flush_ms`, see `config::metrics` for why they are held).

use crate::host::Host;

use super::{Filter, Worker};

/// Send the held sums when `flush_ms` has passed since the last send.
/// A tick that comes up to half a period early counts as on time, so a
/// flush every second on the one-second idle timer does not slip to two.
pub(super) fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    let every = filter.config.metrics.flush_ms;
    let now = host.now_ms();
    let early = worker.waiters.tick_ms / 2;
    if now.saturating_add(early) >= worker.counters_sent_ms.saturating_add(every) {
        // With `flush_ms` 0 nothing is held, unless a configuration
        // before this one held it: that leaves now.
        host.flush_counters();
        worker.counters_sent_ms = now;
    }
}

/// The filter stops (Envoy): what is held leaves now, or never.
pub(super) fn on_shutdown(host: &mut impl Host) {
    host.flush_counters();
}
