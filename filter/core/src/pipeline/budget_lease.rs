//! The budget stage's timer side: it asks `cost-control` for a lease
//! where a tenant's pool runs low (one worker at a time, through the
//! shared claim), puts the answer in the pool, and lets go (or refuses)
//! the requests that waited for it.

use crate::config::OnUnavailable;
use crate::cost::budget::{self, Kind, Policy};
use crate::headers::Headers;
use crate::host::{Host, Level};

use super::budget_stage::{give_back, held, policy, refuse, rule, slots};
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
    retry_waiting(filter, worker, host, now, budget_left)
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
    let call = super::account_stage::control_call(acc, "/v1/allowances", &body);
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
    let status: u16 = Headers::new(&host.callout_response_headers())
        .get_str(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
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
    retry_waiting(filter, worker, host, now, super::timer::ACTIONS_PER_CALL);
    true
}

pub(super) fn retry_waiting(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    now: u64,
    budget_left: usize,
) -> usize {
    let mut sent = 0;
    let mut keep = Vec::new();
    for w in std::mem::take(&mut worker.budgeter.waiting) {
        if sent >= budget_left {
            keep.push(w);
            continue;
        }
        let Some(b) = rule(filter, w.route) else {
            let _ = host.resume(w.stream);
            continue;
        };
        let p = policy(filter, b, &w.tenant, w.high);
        let r = budget::reserve(host, slots(filter), &w.tenant, b.estimate_micros, now, p);
        let counters = filter.counters(w.route).budget;
        let kind = r.as_ref().map(|r| r.kind).unwrap_or(Kind::Unavailable);
        let kind = if kind == Kind::Pending && now >= w.deadline_ms {
            Kind::Unavailable // no lease within the SLA
        } else {
            kind
        };
        match kind {
            Kind::Pending => {
                worker.budgeter.refill.insert(w.tenant.clone());
                keep.push(w);
            }
            Kind::Granted | Kind::Credit | Kind::Overdraft => {
                let h = r.ok().and_then(|r| held(&w.tenant, b.estimate_micros, &r));
                if host.resume(w.stream).is_ok() {
                    worker.budgeter.outcomes.insert(w.stream, h);
                } else if let Some(h) = h {
                    // The client left: give the reservation back.
                    give_back(filter, host, &h, 0);
                }
                counters.reserved.add(host, 1);
            }
            Kind::Exhausted => {
                counters.exceeded.add(host, 1);
                if refuse(host, w.stream, true, &w.own_headers) {
                    worker.budgeter.outcomes.insert(w.stream, None);
                }
                sent += 1;
            }
            Kind::Unavailable | Kind::TableFull => {
                counters.unavailable.add(host, 1);
                if refuse(host, w.stream, false, &w.own_headers) {
                    worker.budgeter.outcomes.insert(w.stream, None);
                }
                sent += 1;
            }
        }
    }
    worker.budgeter.waiting.extend(keep);
    sent
}
