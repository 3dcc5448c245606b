//! The timer side of purges: one worker of the gateway at a time (through
//! the shared claim in `cache::purges`) asks `cost-control` for
//! `GET /v1/snapshot?since=<version it has>`, and turns the purges of the
//! answer into generation bumps. A `304` costs nothing more. While
//! `cost-control` cannot be reached, nothing is bumped (cached entries
//! keep being served) and the next poll tries again; the snapshot lists
//! every purge with its absolute generation, so whatever was missed
//! applies then.

use crate::cache::purges::{self, InFlight, Mapping, PollEnd};
use crate::host::{Host, Level};

use super::spend_report::control_get;
use super::{Filter, Worker};

/// The timer: poll when it is due and no other worker does.
pub(super) fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    let Some(acc) = purges::polling(&filter.config) else {
        return;
    };
    let now = host.now_ms();
    let poller = &mut worker.cache.purges;
    if let Some(f) = poller.in_flight {
        if now < f.until_ms {
            return;
        }
        // The host answers every call by its timeout; past the claim this
        // one is given up, and another worker may poll.
        poller.in_flight = None;
    }
    let claim_ms = acc.timeout_ms + 1_000;
    let mapping = Mapping::of(&filter.config).fingerprint;
    let since = match purges::claim(host, now, acc.purge_poll_ms, claim_ms, mapping) {
        Ok(Some(since)) => since,
        Ok(None) => return,
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("purges: cannot claim the poll: {e:?}"),
            );
            return;
        }
    };
    let path = match &since {
        Some(v) => format!("/v1/snapshot?since={}", purges::query_value(v)),
        None => "/v1/snapshot".to_string(),
    };
    let call = control_get(acc, &path);
    match host.http_call(&call.callout()) {
        Ok(token) => {
            host.log(Level::Debug, &format!("purges: polling {path}"));
            worker.cache.purges.in_flight = Some(InFlight {
                token,
                until_ms: now + claim_ms,
            });
            filter.metrics.spend.purge_polls.add(host, 1);
        }
        Err(e) => failed(filter, host, &format!("the call could not start: {e:?}")),
    }
}

/// Whether `token` is this worker's snapshot poll; if so, apply it.
pub(super) fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) -> bool {
    match worker.cache.purges.in_flight {
        Some(f) if f.token == token => worker.cache.purges.in_flight = None,
        _ => return false,
    }
    let status = host.callout_status();
    match status {
        304 => succeeded(host, PollEnd::NotModified),
        200 => {
            let body = host.callout_response_body(body_size);
            match purges::parse_snapshot(&body) {
                Ok(snap) => apply(filter, host, &snap),
                Err(e) => failed(filter, host, &format!("unreadable snapshot: {e}")),
            }
        }
        0 => failed(filter, host, "no answer"),
        s => failed(filter, host, &format!("status {s}")),
    }
    true
}

fn apply(filter: &Filter, host: &mut impl Host, snap: &purges::Snapshot) {
    if snap.skipped > 0 {
        host.log(
            Level::Warn,
            &format!(
                "purges: {} snapshot entries skipped (unknown kind or bad generation)",
                snap.skipped
            ),
        );
    }
    let mapping = Mapping::of(&filter.config);
    match purges::apply(host, &snap.purges, &mapping, filter.metrics.cache_epoch) {
        Ok(bumped) => {
            if bumped > 0 {
                filter.metrics.spend.purge_bumps.add(host, bumped as i64);
                host.log(
                    Level::Info,
                    &format!(
                        "purges: snapshot {} applied ({} purges listed, {bumped} generation slots bumped)",
                        snap.version,
                        snap.purges.len()
                    ),
                );
            }
            succeeded(
                host,
                PollEnd::Applied {
                    version: &snap.version,
                    mapping: mapping.fingerprint,
                },
            );
        }
        // The version is not recorded: the next poll fetches it again.
        Err(e) => failed(filter, host, &format!("bumping generations failed: {e:?}")),
    }
}

fn succeeded(host: &mut impl Host, end: PollEnd<'_>) {
    match purges::finish(host, end) {
        Ok(0) => {}
        Ok(n) => host.log(
            Level::Info,
            &format!("purges: cost-control answers again (after {n} failed polls)"),
        ),
        Err(e) => host.log(
            Level::Warn,
            &format!("purges: cannot record the poll: {e:?}"),
        ),
    }
}

/// Log the first failure of a run loudly and the rest quietly: an outage
/// of cost-control fails every poll.
fn failed(filter: &Filter, host: &mut impl Host, why: &str) {
    filter.metrics.spend.purge_poll_failures.add(host, 1);
    let before = purges::finish(host, PollEnd::Failed).unwrap_or(0);
    let level = if before == 0 {
        Level::Warn
    } else {
        Level::Debug
    };
    host.log(
        level,
        &format!("purges: snapshot poll failed ({why}); cached entries stay, purges apply once it answers"),
    );
}

#[cfg(test)]
#[path = "purge_poll_tests.rs"]
mod tests;
