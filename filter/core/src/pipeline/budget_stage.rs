//! The budget stage (DESIGN.md step 5, second half): a request of a rule
//! with `cost.budget` reserves its estimated cost from the allowance this
//! gateway leased for the tenant (shared data, compare-and-swap), and its
//! response settles the actual cost. No request calls `cost-control`: the
//! timer leases more when the pool runs low ([`on_tick`]), and the first
//! request of a tenant waits, paused, for that first lease.

use hashbrown::{HashMap, HashSet};

use crate::config::{OnUnavailable, Priority, RouteBudget};
use crate::cost::budget::{self, Kind, Policy};
use crate::cost::budget_slice::Slices;
use crate::host::{Host, Level, StreamId};

use super::machine::{Cx, Outcome, Reply};
use super::phase::{Served, Wait};
use super::{Exchange, Filter, Worker};

/// A reservation a request holds until its response settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub tenant: String,
    pub estimate: u64,
    pub allowance_id: Option<String>,
    /// Drawn from the outage credit, not from a lease.
    pub credit: bool,
    /// Passed over the budget (`high`).
    pub overdraft: bool,
    /// Past the soft limit.
    pub soft: bool,
}

/// Per-worker budget state.
#[derive(Debug, Default)]
pub struct Budgeter {
    /// Requests parked for their tenant's first lease, oldest first.
    pub(super) waiting: Vec<StreamId>,
    /// Tenants whose pool is low: the timer asks for a lease.
    pub(super) refill: HashSet<String>,
    /// Lease callouts in flight: token → tenant.
    pub(super) leases: HashMap<u32, String>,
    /// This worker's slices of tenants' pools (`cost/budget_slice.rs`).
    pub(super) slices: Slices,
}

impl Budgeter {
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

pub(super) fn rule(filter: &Filter, route: usize) -> Option<&RouteBudget> {
    let b = filter
        .config
        .routes
        .get(route)?
        .cost
        .as_ref()?
        .budget
        .as_ref()?;
    b.enforce.then_some(b)
}

pub(super) fn policy(filter: &Filter, b: &RouteBudget, tenant: &str, high: bool) -> Policy {
    let budgets = filter.config.accounting.as_ref().map(|a| &a.budgets);
    let hard_stop = budgets.is_some_and(|b| b.hard_stop_tenants.iter().any(|t| t == tenant));
    let ttl_ms = budgets.map_or(60_000, |b| u64::from(b.lease_ttl_secs) * 1000);
    Policy {
        allow_overdraft: high && !hard_stop,
        on_unavailable: b.on_unavailable,
        credit_micros: b.fail_open_credit_micros,
        low_water_micros: budgets.map_or(0, |b| b.low_water_micros()),
        // Stop spending a lease a quarter of its life (at most 5 s) before
        // it ends: spend reported after its end would not settle it.
        renew_before_ms: (ttl_ms / 4).min(5_000),
    }
}

pub(super) fn slots(filter: &Filter) -> u32 {
    filter
        .config
        .accounting
        .as_ref()
        .map_or(1, |a| a.budgets.slots)
}

/// The refusal: 429 when the budget is spent, 503 when it cannot be
/// known.
pub(super) fn refusal(exhausted: bool, own: Vec<(String, Vec<u8>)>) -> Reply {
    if exhausted {
        Reply::json(
            429,
            &[("retry-after", b"60")],
            own,
            br#"{"error":"budget_exceeded","message":"the tenant's budget for this period is spent"}"#,
        )
    } else {
        Reply::json(
            503,
            &[],
            own,
            br#"{"error":"budget_unavailable","message":"the budget service cannot be reached"}"#,
        )
    }
}

fn refused(exhausted: bool, exchange: &Exchange, filter: &Filter) -> Outcome {
    Outcome::Answer(
        refusal(exhausted, exchange.own_headers(filter)),
        Served::Refused,
    )
}

pub(super) fn held(tenant: &str, estimate: u64, r: &budget::Reserve) -> Option<Held> {
    r.reserved().then(|| Held {
        tenant: tenant.to_string(),
        estimate,
        allowance_id: r.allowance_id.clone(),
        credit: r.kind == Kind::Credit,
        overdraft: r.kind == Kind::Overdraft,
        soft: r.soft,
    })
}

/// The budget stage at a request: reserve its estimate, or refuse it, or
/// park it until its tenant's first lease comes (the timer then runs
/// this again: `budget_lease::retry_waiting`).
pub(super) fn on_request<H: Host>(cx: &mut Cx<'_, H>, exchange: &mut Exchange) -> Outcome {
    let Cx {
        filter,
        worker,
        host,
    } = cx;
    let Some(b) = rule(filter, exchange.route) else {
        return Outcome::Pass;
    };
    let stream = exchange.stream;
    let tenant = exchange.identity.tenant_or_anonymous();
    let high = exchange.identity.priority == Priority::High;
    let now = exchange.clock_ms;
    let counters = filter.counters(exchange.route).budget;
    let p = policy(filter, b, tenant, high);
    let estimate = estimate(filter, exchange, b);
    // The worker's slice of the tenant's pool: no shared data.
    if let Some(g) = worker.budgeter.slices.spend(tenant, estimate, now) {
        counters.reserved.add(*host, 1);
        exchange.cost.held = Some(Held {
            tenant: tenant.to_string(),
            estimate,
            allowance_id: Some(g.allowance_id),
            credit: false,
            overdraft: false,
            soft: g.soft,
        });
        return Outcome::Pass;
    }
    let back = worker.budgeter.slices.get(tenant).cloned();
    let slicing = back.is_some() || worker.budgeter.slices.has_room();
    let reserved = if slicing {
        budget::reserve_sliced(
            *host,
            slots(filter),
            tenant,
            estimate,
            now,
            p,
            back.as_ref(),
        )
    } else {
        budget::reserve(*host, slots(filter), tenant, estimate, now, p).map(|r| (r, None))
    };
    let r = match reserved {
        Ok((r, taken)) => {
            // What went back is the pool's again; what was taken is ours.
            worker.budgeter.slices.replace(tenant, taken);
            r
        }
        Err(e) => {
            // The shared table is unreachable: the rule's outage policy.
            host.log(
                Level::Warn,
                &format!("[{stream}] budget not checked: {e:?}"),
            );
            return match b.on_unavailable {
                OnUnavailable::FailOpen => Outcome::Pass,
                OnUnavailable::FailClosed => {
                    counters.unavailable.add(*host, 1);
                    refused(false, exchange, filter)
                }
            };
        }
    };
    if r.needs_refill {
        worker.budgeter.refill.insert(tenant.to_string());
    }
    match r.kind {
        Kind::Granted | Kind::Credit | Kind::Overdraft => {
            match r.kind {
                Kind::Credit => counters.credit.add(*host, 1),
                Kind::Overdraft => counters.overdraft.add(*host, 1),
                _ => counters.reserved.add(*host, 1),
            }
            exchange.cost.held = held(tenant, estimate, &r);
            Outcome::Pass
        }
        Kind::Exhausted => {
            counters.exceeded.add(*host, 1);
            refused(true, exchange, filter)
        }
        Kind::Unavailable | Kind::TableFull => {
            if r.kind == Kind::TableFull && b.on_unavailable == OnUnavailable::FailOpen {
                return Outcome::Pass;
            }
            counters.unavailable.add(*host, 1);
            refused(false, exchange, filter)
        }
        // Past its SLA (the timer runs this again while it waits).
        Kind::Pending if now >= exchange.identity.started_ms + sla_ms(filter, exchange.route) => {
            counters.unavailable.add(*host, 1);
            refused(false, exchange, filter)
        }
        Kind::Pending => {
            if !exchange.cost.waited_for_lease {
                exchange.cost.waited_for_lease = true;
                counters.waited.add(*host, 1);
            }
            if !worker.budgeter.waiting.contains(&stream) {
                worker.budgeter.waiting.push(stream);
            }
            worker.budgeter.refill.insert(tenant.to_string());
            Outcome::Park(Wait::Lease)
        }
    }
}

/// What a request may cost: for a prompt that caps its answer
/// (`max_tokens`), its size and that cap at the model's price (the answer
/// cannot cost more); else the rule's `budget.estimate`.
fn estimate(filter: &Filter, exchange: &Exchange, b: &RouteBudget) -> u64 {
    let tokens = filter
        .config
        .routes
        .get(exchange.route)
        .and_then(|r| r.cost.as_ref())
        .and_then(|c| c.tokens.as_ref());
    let (Some(t), Some(p)) = (tokens, &exchange.prompt) else {
        return b.estimate_micros;
    };
    p.max_tokens
        .and_then(|max| {
            crate::cost::model::tokens_price(t, p.model.as_deref(), p.prompt_tokens, max)
        })
        .unwrap_or(b.estimate_micros)
}

fn sla_ms(filter: &Filter, route: usize) -> u64 {
    filter.config.routes.get(route).map_or(0, |r| r.sla_ms)
}

/// Settle the request's reservation at its actual cost; returns the lease
/// to report the spend against.
pub(super) fn settle(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
    actual: u64,
) -> Option<String> {
    let h = exchange.cost.held.take()?;
    give_back(filter, worker, host, &h, actual);
    h.allowance_id
}

/// Settle `h` at `actual`: the rest of its estimate returns to the pool
/// (or to the outage credit it came from); to this worker's slice of the
/// pool when it holds one of the same lease.
pub(super) fn give_back(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    h: &Held,
    actual: u64,
) {
    if h.estimate == actual {
        return;
    }
    let delta = i64::try_from(h.estimate)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(actual).unwrap_or(i64::MAX));
    if !h.credit
        && worker
            .budgeter
            .slices
            .settle(&h.tenant, h.allowance_id.as_deref(), delta)
    {
        return;
    }
    let now = host.now_ms();
    let source = if h.credit {
        budget::Source::Credit
    } else {
        budget::Source::Lease(h.allowance_id.as_deref())
    };
    let r = budget::settle(
        host,
        slots(filter),
        &h.tenant,
        (h.estimate, actual),
        source,
        now,
    );
    if let Err(e) = r {
        host.log(
            Level::Warn,
            &format!("budget not settled for {}: {e:?}", h.tenant),
        );
    }
}

/// A reservation nobody spent (refused later, client gone) goes back.
pub(super) fn release_unused(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
) {
    settle(filter, worker, host, exchange, 0);
}

/// Warnings on the response: over the budget (passed as `high`) or past
/// the soft limit.
pub(super) fn add_warnings(host: &mut impl Host, exchange: &Exchange) {
    if let Some(h) = &exchange.cost.held {
        if h.overdraft {
            let _ = host.add_response_header("x-optimizer-warning", b"budget-exceeded");
        } else if h.soft {
            let _ = host.add_response_header("x-optimizer-warning", b"budget-soft-limit");
        }
    }
}

/// The stream ended while it waited for a lease.
pub(super) fn forget(worker: &mut Worker, stream: StreamId) {
    worker.budgeter.waiting.retain(|w| *w != stream);
}
