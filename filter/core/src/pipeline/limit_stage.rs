//! The rate-limit stage (DESIGN.md step 5, first half): one budget of
//! tokens per limit key shared by every worker; a request that finds none
//! is treated by priority — `high` passes with a warning, `medium` waits
//! in this worker's queue for the timer to admit it (or is refused at once
//! when its expected wait would break its SLA), `low` is refused.

use hashbrown::HashMap;

use crate::config::{LimitBy, Priority, Route};
use crate::host::{Host, Level, StreamId};
use crate::limit::algo::Decision;
use crate::limit::queue::{Queue, Queued};
use crate::limit::{headers, table};

use super::{budget_stage, Exchange, Filter, Worker};

/// What a paused medium-priority request needs when its turn comes.
#[derive(Debug, Clone)]
pub struct Waiting {
    route: usize,
    /// For the budget check when its turn comes.
    tenant: String,
    own_headers: Vec<(String, Vec<u8>)>,
}

/// Headers the response of a limited rule carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitNote {
    pub policy: String,
    pub ratelimit: String,
    /// Passed over the limit because of its priority.
    pub warning: bool,
}

/// Per-worker limiter state.
#[derive(Debug, Default)]
pub struct Limiter {
    pub queue: Queue<Waiting>,
    next_seq: u64,
    /// Queued requests the timer admitted (their note) or refused (`None`).
    pub outcomes: HashMap<StreamId, Option<LimitNote>>,
}

impl Limiter {
    pub fn new(bound: usize) -> Self {
        Limiter {
            queue: Queue::new(bound),
            next_seq: 0,
            outcomes: HashMap::new(),
        }
    }
}

pub(super) enum Outcome {
    Pass,
    /// Refused with 429.
    Answered,
    /// Paused in the queue.
    Queued,
}

fn limit_key(by: LimitBy, route: &Route, exchange: &Exchange) -> String {
    let tenant = exchange.identity.tenant_or_anonymous();
    let service = exchange.identity.service.as_deref().unwrap_or("-");
    match by {
        LimitBy::Tenant => format!("t|{tenant}"),
        LimitBy::Service => format!("s|{service}"),
        LimitBy::Route => format!("r|{}", route.name),
        LimitBy::TenantRoute => format!("tr|{tenant}|{}", route.name),
    }
}

fn note(route: &Route, d: &Decision, warning: bool) -> Option<LimitNote> {
    let rule = route.limit.as_ref()?;
    Some(LimitNote {
        policy: headers::policy(&route.name, &rule.algorithm),
        ratelimit: headers::ratelimit(&route.name, d),
        warning,
    })
}

/// The 429 answer, with the draft's fields, `retry-after` and a JSON body.
fn refuse(
    host: &mut impl Host,
    stream: StreamId,
    route: &Route,
    d: &Decision,
    own: &[(String, Vec<u8>)],
) -> bool {
    let Some(n) = note(route, d, false) else {
        return false;
    };
    let retry = headers::retry_after_s(d).to_string();
    let mut out: Vec<(&str, &[u8])> = vec![
        ("content-type", b"application/json"),
        ("retry-after", retry.as_bytes()),
        ("ratelimit-policy", n.policy.as_bytes()),
        ("ratelimit", n.ratelimit.as_bytes()),
    ];
    out.extend(own.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    host.send_reply(stream, 429, &out, headers::body(d).as_bytes())
        .is_ok()
}

pub(super) fn on_request(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    exchange: &mut Exchange,
) -> Outcome {
    let route = &filter.config.routes[exchange.route];
    let Some(rule) = &route.limit else {
        return Outcome::Pass;
    };
    let counters = filter.counters(exchange.route).limit;
    let key = limit_key(rule.by, route, exchange);
    let now = exchange.identity.started_ms;
    let slots = filter.config.limit_slots;
    let d = match table::acquire(host, slots, &key, &rule.algorithm, now) {
        Ok(d) => d,
        Err(e) => {
            // Fail open: a limiter that cannot reach its table must not
            // take the API down.
            host.log(
                Level::Warn,
                &format!("[{stream}] rate limit not checked: {e:?}"),
            );
            return Outcome::Pass;
        }
    };
    if d.admitted {
        counters.admitted.add(host, 1);
        exchange.limit = note(route, &d, false);
        return Outcome::Pass;
    }
    match exchange.identity.priority {
        Priority::High => {
            counters.limited_high.add(host, 1);
            exchange.limit = note(route, &d, true);
            Outcome::Pass
        }
        Priority::Low => {
            counters.limited_low.add(host, 1);
            refuse(host, stream, route, &d, &exchange.own_headers(filter));
            Outcome::Answered
        }
        Priority::Medium => {
            let ahead = worker
                .limiter
                .queue
                .iter()
                .filter(|q| q.limit_key == key)
                .count() as u32;
            let wait = table::peek(host, slots, &key, &rule.algorithm, now, ahead);
            let deadline = exchange.identity.started_ms + route.sla_ms;
            if now + wait > deadline {
                counters.limited_medium.add(host, 1);
                refuse(host, stream, route, &d, &exchange.own_headers(filter));
                return Outcome::Answered;
            }
            worker.limiter.next_seq += 1;
            let queued = Queued {
                stream,
                priority: 1,
                seq: worker.limiter.next_seq,
                deadline_ms: deadline,
                limit_key: key,
                item: Waiting {
                    route: exchange.route,
                    tenant: exchange.identity.tenant_or_anonymous().to_string(),
                    own_headers: exchange.own_headers(filter),
                },
            };
            let mine = worker
                .limiter
                .queue
                .iter()
                .filter(|q| q.item.route == exchange.route)
                .count();
            if mine >= rule.queue_bound as usize || worker.limiter.queue.push(queued).is_err() {
                counters.queue_rejects.add(host, 1);
                refuse(host, stream, route, &d, &exchange.own_headers(filter));
                return Outcome::Answered;
            }
            counters.queued.add(host, 1);
            Outcome::Queued
        }
    }
}

/// The timer: refuse queued requests whose SLA ran out, admit the rest in
/// order as tokens come back. Returns how many local replies it sent (the
/// caller bounds replies per host call).
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host, budget: usize) -> usize {
    let now = host.now_ms();
    let mut sent = 0;
    for q in worker.limiter.queue.expired(now) {
        let route = &filter.config.routes[q.item.route];
        if let Some(rule) = &route.limit {
            let d = Decision {
                admitted: false,
                remaining: 0,
                reset_ms: 0,
                retry_after_ms: table::peek(
                    host,
                    filter.config.limit_slots,
                    &q.limit_key,
                    &rule.algorithm,
                    now,
                    0,
                ),
            };
            filter
                .counters(q.item.route)
                .limit
                .limited_medium
                .add(host, 1);
            if refuse(host, q.stream, route, &d, &q.item.own_headers) {
                worker.limiter.outcomes.insert(q.stream, None);
            }
            sent += 1;
        }
    }
    while sent < budget {
        let Some(front) = worker.limiter.queue.peek_front() else {
            break;
        };
        let route = &filter.config.routes[front.item.route];
        let Some(rule) = &route.limit else { break };
        let key = front.limit_key.clone();
        let d = match table::acquire(host, filter.config.limit_slots, &key, &rule.algorithm, now) {
            Ok(d) => d,
            Err(_) => Decision {
                admitted: true,
                remaining: 0,
                reset_ms: 0,
                retry_after_ms: 0,
            },
        };
        if !d.admitted {
            break;
        }
        let Some(q) = worker.limiter.queue.pop_front() else {
            break;
        };
        let counters = filter.counters(q.item.route).limit;
        counters.admitted.add(host, 1);
        counters.queue_time_ms.add(
            host,
            now.saturating_sub(q.deadline_ms.saturating_sub(route.sla_ms)) as i64,
        );
        // Its budget, which it has not met yet (the limiter comes first):
        // a queued request spends like any other.
        let own = || q.item.own_headers.clone();
        let ask = budget_stage::Ask {
            stream: q.stream,
            route: q.item.route,
            tenant: &q.item.tenant,
            high: false, // only medium requests queue
            deadline_ms: q.deadline_ms,
            own_headers: &own,
        };
        match budget_stage::admit(filter, worker, host, ask, now) {
            budget_stage::Admit::Go(held) => {
                if host.resume(q.stream).is_ok() {
                    worker
                        .limiter
                        .outcomes
                        .insert(q.stream, note(route, &d, false));
                    if let Some(h) = held {
                        worker.budgeter.outcomes.insert(q.stream, Some(h));
                    }
                } else if let Some(h) = held {
                    budget_stage::give_back(filter, host, &h, 0);
                }
            }
            budget_stage::Admit::Answered => {
                worker.limiter.outcomes.insert(q.stream, None);
            }
            // The budget's timer lets it go; its rate-limit headers wait.
            budget_stage::Admit::Waiting => {
                worker
                    .limiter
                    .outcomes
                    .insert(q.stream, note(route, &d, false));
            }
        }
        sent += 1;
    }
    sent
}

/// Headers for the response of a limited rule: `ratelimit` (and the
/// policy) on every answer, the warning when it passed over the limit.
pub(super) fn response_headers(
    exchange: &mut Exchange,
    worker: &mut Worker,
    stream: StreamId,
) -> Option<LimitNote> {
    if let Some(outcome) = worker.limiter.outcomes.remove(&stream) {
        return outcome;
    }
    exchange.limit.clone()
}

/// Whether the timer refused this queued request (its 429 is on the way).
pub(super) fn refused(worker: &Worker, stream: StreamId) -> bool {
    matches!(worker.limiter.outcomes.get(&stream), Some(None))
}

pub(super) fn forget(worker: &mut Worker, stream: StreamId) {
    worker.limiter.queue.remove(stream);
    worker.limiter.outcomes.remove(&stream);
}
