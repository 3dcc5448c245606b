//! The budget stage's timer side: it gives the worker's slices whose time
//! is up back to their pools, asks `cost-control` for a lease where a
//! tenant's pool runs low (one worker at a time, through the shared
//! claim), puts the answer in the pool, and lets go (or refuses) the
//! requests that waited for it.

use crate::config::OnUnavailable;
use crate::cost::budget::{self, Policy};
use crate::host::{Host, Level};

use super::machine::{release, Cx, Release};
use super::phase::{Phase, Wait};
use super::{Filter, Worker};

/// The timer: ask for leases where pools run low, then retry waiting
/// requests. Returns how many local replies it sent.
pub fn on_tick(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    budget_left: usize,
) -> usize {
    let Some(acc) = &filter.config.accounting else {
        return 0;
    };
    let now = host.now_ms();
    let slots = acc.budgets.slots;
    // Slices whose time is up go back to their pools, for every worker.
    for (tenant, slice) in worker.budgeter.slices.take_due(now) {
        if let Err(e) = budget::return_slice(host, slots, &tenant, &slice, now) {
            host.log(
                Level::Warn,
                &format!("budget slice of {tenant} not returned: {e:?}"),
            );
        }
    }
    let claim_ms = acc.timeout_ms + 1_000;
    let wanted: Vec<String> = worker.budgeter.refill.drain().collect();
    for tenant in wanted {
        // The policy here only decides "is the pool low"; any rule's will do.
        let p = Policy {
            allow_overdraft: false,
            on_unavailable: OnUnavailable::FailOpen,
            credit_micros: 0,
            low_water_micros: acc.budgets.low_water_micros(),
            renew_before_ms: (u64::from(acc.budgets.lease_ttl_secs) * 1000 / 4).min(5_000),
        };
        match budget::claim_refill(host, slots, &tenant, now, claim_ms, p) {
            Ok(true) => lease(filter, worker, host, &tenant),
            Ok(false) => {}
            Err(e) => host.log(Level::Warn, &format!("lease claim for {tenant}: {e:?}")),
        }
    }
    retry_waiting(filter, worker, host, budget_left)
}

fn lease(filter: &Filter, worker: &mut Worker, host: &mut impl Host, tenant: &str) {
    let Some(acc) = &filter.config.accounting else {
        return;
    };
    let body = budget::lease_request(
        &acc.gateway_id,
        tenant,
        acc.budgets.lease_micros,
        acc.budgets.lease_ttl_secs,
    );
    let call = super::spend_report::control_call(acc, "/v1/allowances", &body);
    match host.http_call(&call.callout()) {
        Ok(token) => {
            worker.budgeter.leases.insert(token, tenant.to_string());
            filter.metrics.spend.lease_calls.add(host, 1);
        }
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("lease call for {tenant} could not start: {e:?}"),
            );
            let now = host.now_ms();
            let _ =
                budget::apply_failure(host, acc.budgets.slots, tenant, now, acc.budgets.retry_ms);
        }
    }
}

/// Whether `token` is a lease callout; if so, put its answer in the pool.
pub(super) fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) -> bool {
    let Some(tenant) = worker.budgeter.leases.remove(&token) else {
        return false;
    };
    let Some(acc) = &filter.config.accounting else {
        return true;
    };
    let (slots, retry) = (acc.budgets.slots, acc.budgets.retry_ms);
    let now = host.now_ms();
    let status = host.callout_status();
    let grant = (status == 200)
        .then(|| budget::parse_grant(&host.callout_response_body(body_size)))
        .flatten();
    let r = match &grant {
        Some(g) => budget::apply_grant(host, slots, &tenant, g, now, retry),
        None => {
            host.log(
                Level::Warn,
                &format!("lease for {tenant} failed (status {status}); outage policy applies"),
            );
            filter.metrics.spend.lease_failures.add(host, 1);
            budget::apply_failure(host, slots, &tenant, now, retry)
        }
    };
    if let Err(e) = r {
        host.log(
            Level::Warn,
            &format!("lease for {tenant} not stored: {e:?}"),
        );
    }
    // Waiting requests of this tenant need not wait for the next tick.
    retry_waiting(filter, worker, host, super::timer::ACTIONS_PER_CALL);
    true
}

/// Ask the budget again for each request waiting for a lease (oldest
/// first): the state machine runs its budget stage, which reserves and
/// sends it on, refuses it (spent, or no lease within its SLA), or parks
/// it again. Returns how many of them left the wait.
pub(super) fn retry_waiting(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    budget_left: usize,
) -> usize {
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    let mut woken = 0;
    for stream in cx.worker.budgeter.waiting.clone() {
        if woken >= budget_left {
            break;
        }
        release(&mut cx, stream, Release::Resume);
        let still = cx
            .worker
            .requests
            .get(&stream)
            .is_some_and(|ex| ex.phase == Phase::Parked(Wait::Lease));
        if !still {
            cx.worker.budgeter.waiting.retain(|w| *w != stream);
            woken += 1;
        }
    }
    woken
}
