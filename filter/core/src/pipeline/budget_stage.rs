//! The budget stage (DESIGN.md step 5, second half): a request of a rule
//! with `cost.budget` reserves its estimated cost from the allowance this
//! gateway leased for the tenant (shared data, compare-and-swap), and its
//! response settles the actual cost. No request calls `cost-control`: the
//! timer leases more when the pool runs low ([`on_tick`]), and the first
//! request of a tenant waits, paused, for that first lease.

use hashbrown::{HashMap, HashSet};

use crate::config::{OnUnavailable, Priority, RouteBudget};
use crate::cost::budget::{self, Kind, Policy};
use crate::host::{Host, HostKind, Level, StreamId};

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

/// A request waiting for its tenant's first lease.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub(super) stream: StreamId,
    pub(super) route: usize,
    pub(super) tenant: String,
    pub(super) high: bool,
    pub(super) deadline_ms: u64,
    pub(super) own_headers: Vec<(String, Vec<u8>)>,
}

/// Per-worker budget state.
#[derive(Debug, Default)]
pub struct Budgeter {
    pub(super) waiting: Vec<Waiting>,
    /// Tenants whose pool is low: the timer asks for a lease.
    pub(super) refill: HashSet<String>,
    /// Lease callouts in flight: token → tenant.
    pub(super) leases: HashMap<u32, String>,
    /// Waiting requests the timer let go (their reservation) or refused
    /// (`None`).
    pub outcomes: HashMap<StreamId, Option<Held>>,
}

impl Budgeter {
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }
}

pub(super) enum Outcome {
    Pass,
    /// Refused (429 or 503).
    Answered,
    /// Paused until the lease comes.
    Waiting,
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

/// Refuse: 429 when the budget is spent, 503 when it cannot be known.
pub(super) fn refuse(
    host: &mut impl Host,
    stream: StreamId,
    exhausted: bool,
    own: &[(String, Vec<u8>)],
) -> bool {
    let (status, body): (u16, &[u8]) = if exhausted {
        (
            429,
            br#"{"error":"budget_exceeded","message":"the tenant's budget for this period is spent"}"#,
        )
    } else {
        (
            503,
            br#"{"error":"budget_unavailable","message":"the budget service cannot be reached"}"#,
        )
    };
    let mut out: Vec<(&str, &[u8])> = vec![("content-type", b"application/json")];
    if exhausted {
        out.push(("retry-after", b"60"));
    }
    out.extend(own.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    host.send_reply(stream, status, &out, body).is_ok()
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

/// A request asking to spend: who, on which rule, until when.
pub(super) struct Ask<'a> {
    pub stream: StreamId,
    pub route: usize,
    pub tenant: &'a str,
    pub high: bool,
    pub deadline_ms: u64,
    pub own_headers: &'a dyn Fn() -> Vec<(String, Vec<u8>)>,
}

/// What a request may do about its budget.
pub(super) enum Admit {
    /// Go on, holding this reservation (`None`: the rule has no budget, or
    /// the table could not be read and the rule fails open).
    Go(Option<Held>),
    /// Refused (429 or 503), the answer is sent.
    Answered,
    /// Paused until its tenant's lease comes (the timer lets it go).
    Waiting,
}

/// Reserve for `ask`, or refuse it, or park it until a lease comes.
pub(super) fn admit(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    ask: Ask<'_>,
    now: u64,
) -> Admit {
    let Some(b) = rule(filter, ask.route) else {
        return Admit::Go(None);
    };
    let counters = filter.counters(ask.route).budget;
    let p = policy(filter, b, ask.tenant, ask.high);
    let r = match budget::reserve(host, slots(filter), ask.tenant, b.estimate_micros, now, p) {
        Ok(r) => r,
        Err(e) => {
            // The shared table is unreachable: the rule's outage policy.
            host.log(
                Level::Warn,
                &format!("[{}] budget not checked: {e:?}", ask.stream),
            );
            return match b.on_unavailable {
                OnUnavailable::FailOpen => Admit::Go(None),
                OnUnavailable::FailClosed => {
                    counters.unavailable.add(host, 1);
                    refuse(host, ask.stream, false, &(ask.own_headers)());
                    Admit::Answered
                }
            };
        }
    };
    if r.needs_refill {
        worker.budgeter.refill.insert(ask.tenant.to_string());
    }
    match r.kind {
        Kind::Granted | Kind::Credit | Kind::Overdraft => {
            match r.kind {
                Kind::Credit => counters.credit.add(host, 1),
                Kind::Overdraft => counters.overdraft.add(host, 1),
                _ => counters.reserved.add(host, 1),
            }
            Admit::Go(held(ask.tenant, b.estimate_micros, &r))
        }
        Kind::Exhausted => {
            counters.exceeded.add(host, 1);
            refuse(host, ask.stream, true, &(ask.own_headers)());
            Admit::Answered
        }
        Kind::Unavailable | Kind::TableFull => {
            if r.kind == Kind::TableFull && b.on_unavailable == OnUnavailable::FailOpen {
                return Admit::Go(None);
            }
            counters.unavailable.add(host, 1);
            refuse(host, ask.stream, false, &(ask.own_headers)());
            Admit::Answered
        }
        // Kong cannot let a paused request go from the timer: there a
        // request that finds no lease yet is served by the outage policy
        // while the timer fetches one.
        Kind::Pending if filter.config.host == HostKind::Kong => match b.on_unavailable {
            OnUnavailable::FailOpen => {
                counters.credit.add(host, 1);
                Admit::Go(None)
            }
            OnUnavailable::FailClosed => {
                counters.unavailable.add(host, 1);
                refuse(host, ask.stream, false, &(ask.own_headers)());
                Admit::Answered
            }
        },
        Kind::Pending => {
            counters.waited.add(host, 1);
            worker.budgeter.waiting.push(Waiting {
                stream: ask.stream,
                route: ask.route,
                tenant: ask.tenant.to_string(),
                high: ask.high,
                deadline_ms: ask.deadline_ms,
                own_headers: (ask.own_headers)(),
            });
            Admit::Waiting
        }
    }
}

pub(super) fn on_request(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    exchange: &mut Exchange,
) -> Outcome {
    if rule(filter, exchange.route).is_none() {
        return Outcome::Pass;
    }
    let tenant = exchange.identity.tenant_or_anonymous().to_string();
    let now = exchange.identity.started_ms;
    let own = || exchange.own_headers(filter);
    let ask = Ask {
        stream,
        route: exchange.route,
        tenant: &tenant,
        high: exchange.identity.priority == Priority::High,
        deadline_ms: now + filter.config.routes[exchange.route].sla_ms,
        own_headers: &own,
    };
    match admit(filter, worker, host, ask, now) {
        Admit::Go(h) => {
            exchange.cost.held = h;
            Outcome::Pass
        }
        Admit::Answered => Outcome::Answered,
        Admit::Waiting => Outcome::Waiting,
    }
}

/// Settle the request's reservation at its actual cost; returns the lease
/// to report the spend against.
pub(super) fn settle(
    filter: &Filter,
    host: &mut impl Host,
    exchange: &mut Exchange,
    actual: u64,
) -> Option<String> {
    let h = exchange.cost.held.take()?;
    give_back(filter, host, &h, actual);
    h.allowance_id
}

/// Settle `h` at `actual`: the rest of its estimate returns to the pool
/// (or to the outage credit it came from).
pub(super) fn give_back(filter: &Filter, host: &mut impl Host, h: &Held, actual: u64) {
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
pub(super) fn release_unused(filter: &Filter, host: &mut impl Host, exchange: &mut Exchange) {
    settle(filter, host, exchange, 0);
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

/// A waiting request the timer let go picks up its reservation; `true`
/// when the timer refused it instead.
pub(super) fn take_outcome(worker: &mut Worker, exchange: &mut Exchange) -> bool {
    match worker.budgeter.outcomes.remove(&exchange.stream) {
        Some(Some(h)) => {
            exchange.cost.held = Some(h);
            false
        }
        Some(None) => true,
        None => false,
    }
}

/// The stream ended: stop waiting for it, and give back a reservation
/// the timer made for it that its response never picked up.
pub(super) fn forget(filter: &Filter, worker: &mut Worker, host: &mut impl Host, stream: StreamId) {
    worker.budgeter.waiting.retain(|w| w.stream != stream);
    if let Some(Some(h)) = worker.budgeter.outcomes.remove(&stream) {
        give_back(filter, host, &h, 0);
    }
}
