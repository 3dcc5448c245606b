//! The health table of one rule in shared data (`cost_optimizer/r/h/{rule}`),
//! one key for all its providers so that choosing and claiming a provider
//! is a single compare-and-swap: two workers cannot both take the last
//! half-open probe place.
//!
//! Errors are returned, not hidden: when the bounded CAS retry gives up
//! (`CasMismatch`) or the host refuses, the caller routes to the first
//! provider of its order without a claim, because routing must not stop
//! when the health table cannot be reached.

use super::breaker::{BreakerConfig, Claim, Transition};
use super::health::Table;
use crate::host::{Host, HostError};
use crate::shared::{cas_update, route_health as key};

/// Create the rule's table, fresh, unless it exists (a reconfigure keeps
/// what is known; a changed provider count is reset on first use, see
/// [`Table::decode`]).
pub fn create(host: &mut impl Host, rule: usize, n: usize) -> Result<(), HostError> {
    host.shared_create(&key(rule), &Table::fresh(n).encode())?;
    Ok(())
}

/// Walk `order` and claim the first provider that can be claimed, in one
/// CAS update. `Ok(None)`: every provider is open (or out of probe
/// places). Indices out of range are skipped.
pub fn pick(
    host: &mut impl Host,
    rule: usize,
    n: usize,
    order: &[usize],
    now_ms: u64,
    cfg: &BreakerConfig,
) -> Result<Option<(usize, Claim)>, HostError> {
    Ok(pick_with_transition(host, rule, n, order, now_ms, cfg)?.map(|(i, c, _)| (i, c)))
}

/// [`pick`], with what the claim did to the picked provider's breaker
/// (an open one turning half-open, for the log and the counters).
pub fn pick_with_transition(
    host: &mut impl Host,
    rule: usize,
    n: usize,
    order: &[usize],
    now_ms: u64,
    cfg: &BreakerConfig,
) -> Result<Option<(usize, Claim, Transition)>, HostError> {
    let mut picked = None;
    update(host, rule, n, |table| {
        // Each CAS attempt decides afresh on the record it read.
        picked = None;
        for &i in order {
            let Some(p) = table.providers.get_mut(i) else {
                continue;
            };
            if let (Some(claim), t) = p.claim_with_transition(now_ms, cfg) {
                picked = Some((i, claim, t));
                break;
            }
        }
    })?;
    Ok(picked)
}

/// The result of a request routed to `provider` with `claim`;
/// `latency_ms` is the time since [`pick`] claimed it.
#[allow(clippy::too_many_arguments)] // the record's fields, no more
pub fn record(
    host: &mut impl Host,
    rule: usize,
    n: usize,
    provider: usize,
    ok: bool,
    latency_ms: u64,
    claim: Claim,
    now_ms: u64,
    cfg: &BreakerConfig,
) -> Result<Transition, HostError> {
    update(host, rule, n, |table| {
        table
            .providers
            .get_mut(provider)
            .map_or(Transition::None, |p| {
                p.record(ok, latency_ms, claim, now_ms, cfg)
            })
    })
}

/// The rule's table as it stands; missing or unreadable reads as fresh.
pub fn read(host: &impl Host, rule: usize, n: usize) -> Table {
    match host.shared_get(&key(rule)) {
        Ok(Some((bytes, _))) => Table::decode(&bytes, n),
        _ => Table::fresh(n),
    }
}

/// Decode, change, and write back only if the bytes differ (a claim on a
/// closed breaker changes nothing, so the common request costs one read).
/// The answer is the one `change` gave on the attempt that stuck: every
/// CAS attempt decides afresh on the record it read, and no decision of a
/// lost attempt survives it.
fn update<T>(
    host: &mut impl Host,
    rule: usize,
    n: usize,
    mut change: impl FnMut(&mut Table) -> T,
) -> Result<T, HostError> {
    let key = key(rule);
    let mut answer = None;
    let mut step = |bytes: &[u8]| {
        let mut table = Table::decode(bytes, n);
        answer = Some(change(&mut table));
        let next = table.encode();
        (next != bytes).then_some(next)
    };
    match cas_update(host, &key, &mut step) {
        // Not created at configure (or the creation failed): create it
        // now and try once more.
        Err(HostError::NotFound) => {
            host.shared_create(&key, &Table::fresh(n).encode())?;
            cas_update(host, &key, &mut step)?;
        }
        other => other?,
    }
    // `cas_update` succeeds only after running `step`.
    answer.ok_or(HostError::NotFound)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
