//! The rate-limit stage (DESIGN.md step 5, first half): one budget of
//! tokens per limit key shared by every worker; a request that finds none
//! is treated by priority — `high` passes with a warning, `medium` waits
//! in this worker's queue for the timer to admit it (or is refused at once
//! when its expected wait would break its SLA), `low` is refused.

use crate::config::{LimitBy, Priority, Route};
use crate::host::{Host, Level, StreamId};
use crate::limit::algo::Decision;
use crate::limit::lease::{self, Leases};
use crate::limit::queue::{Queue, Queued};
use crate::limit::{headers, table};

use super::machine::{release, Cx, Outcome, Release, Reply};
use super::phase::{Served, Wait};
use super::{Exchange, Worker};

/// Headers the response of a limited rule carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitNote {
    pub policy: String,
    pub ratelimit: String,
    /// Passed over the limit because of its priority.
    pub warning: bool,
}

/// Per-worker limiter state: the queue of parked medium-priority
/// requests (each item is its rule's index), in admission order.
#[derive(Debug, Default)]
pub struct Limiter {
    pub queue: Queue<usize>,
    next_seq: u64,
    /// Tokens taken ahead from large shared buckets (`limit/lease.rs`).
    pub leases: Leases,
}

impl Limiter {
    pub fn new(bound: usize) -> Self {
        Limiter {
            queue: Queue::new(bound),
            next_seq: 0,
            leases: Leases::default(),
        }
    }
}

fn limit_key(by: LimitBy, route: &Route, exchange: &Exchange) -> String {
    let tenant = exchange.identity.tenant_or_anonymous();
    let service = exchange.identity.service.as_deref().unwrap_or("-");
    let parts: [&str; 4] = match by {
        LimitBy::Tenant => ["t|", tenant, "", ""],
        LimitBy::Service => ["s|", service, "", ""],
        LimitBy::Route => ["r|", &route.name, "", ""],
        LimitBy::TenantRoute => ["tr|", tenant, "|", &route.name],
    };
    // Joined in one allocation (`format!` goes through `core::fmt`, per
    // request).
    parts.concat()
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
fn refusal(route: &Route, d: &Decision, own: Vec<(String, Vec<u8>)>) -> Reply {
    let retry = headers::retry_after_s(d).to_string();
    let mut extra: Vec<(&str, &[u8])> = vec![("retry-after", retry.as_bytes())];
    let n = note(route, d, false);
    if let Some(n) = &n {
        extra.push(("ratelimit-policy", n.policy.as_bytes()));
        extra.push(("ratelimit", n.ratelimit.as_bytes()));
    }
    Reply::json(429, &extra, own, headers::body(d).as_bytes())
}

fn refused(route: &Route, d: &Decision, own: Vec<(String, Vec<u8>)>) -> Outcome {
    Outcome::Answer(refusal(route, d, own), Served::Refused)
}

pub(super) fn on_request<H: Host>(cx: &mut Cx<'_, H>, exchange: &mut Exchange) -> Outcome {
    let Cx {
        filter,
        worker,
        host,
    } = cx;
    let Some(route) = filter.config.routes.get(exchange.route) else {
        return Outcome::Pass;
    };
    let Some(rule) = &route.limit else {
        return Outcome::Pass;
    };
    let stream = exchange.stream;
    let counters = filter.counters(exchange.route).limit;
    let key = limit_key(rule.by, route, exchange);
    let now = exchange.clock_ms;
    let slots = filter.config.limit_slots;
    if let Some(d) = worker.limiter.leases.admit(&key, now) {
        counters.admitted.add(*host, 1);
        exchange.limit = note(route, &d, false);
        return Outcome::Pass;
    }
    let want = lease::chunk(&rule.algorithm);
    let d = match table::acquire_many(*host, slots, &key, &rule.algorithm, now, want) {
        Ok((d, taken)) => {
            if d.admitted {
                worker.limiter.leases.keep(&key, taken, d, now);
            }
            d
        }
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
        counters.admitted.add(*host, 1);
        exchange.limit = note(route, &d, false);
        return Outcome::Pass;
    }
    match exchange.identity.priority {
        Priority::High => {
            counters.limited_high.add(*host, 1);
            exchange.limit = note(route, &d, true);
            Outcome::Pass
        }
        Priority::Low => {
            counters.limited_low.add(*host, 1);
            refused(route, &d, exchange.own_headers(filter))
        }
        Priority::Medium => {
            let ahead = worker
                .limiter
                .queue
                .iter()
                .filter(|q| q.limit_key == key)
                .count() as u32;
            let wait = table::peek(*host, slots, &key, &rule.algorithm, now, ahead);
            let deadline = exchange.identity.started_ms + route.sla_ms;
            if now + wait > deadline {
                counters.limited_medium.add(*host, 1);
                return refused(route, &d, exchange.own_headers(filter));
            }
            worker.limiter.next_seq += 1;
            let queued = Queued {
                stream,
                priority: 1,
                seq: worker.limiter.next_seq,
                deadline_ms: deadline,
                limit_key: key,
                item: exchange.route,
            };
            let mine = worker
                .limiter
                .queue
                .iter()
                .filter(|q| q.item == exchange.route)
                .count();
            if mine >= rule.queue_bound as usize || worker.limiter.queue.push(queued).is_err() {
                counters.queue_rejects.add(*host, 1);
                return refused(route, &d, exchange.own_headers(filter));
            }
            counters.queued.add(*host, 1);
            Outcome::Park(Wait::Limit)
        }
    }
}

/// The timer: refuse queued requests whose SLA ran out, admit the rest in
/// order as tokens come back (an admitted request goes on to its budget,
/// coalescing and batching). Returns how many local replies it sent (the
/// caller bounds replies per host call).
pub fn on_tick<H: Host>(cx: &mut Cx<'_, H>, budget: usize) -> usize {
    let filter = cx.filter;
    let now = cx.host.now_ms();
    let mut sent = 0;
    for q in cx.worker.limiter.queue.expired(now) {
        let Some(route) = filter.config.routes.get(q.item) else {
            continue;
        };
        let Some(rule) = &route.limit else { continue };
        let d = Decision {
            admitted: false,
            remaining: 0,
            reset_ms: 0,
            retry_after_ms: table::peek(
                cx.host,
                filter.config.limit_slots,
                &q.limit_key,
                &rule.algorithm,
                now,
                0,
            ),
        };
        filter.counters(q.item).limit.limited_medium.add(cx.host, 1);
        let Some(own) = super::machine::own_headers(cx, q.stream) else {
            continue;
        };
        let reply = refusal(route, &d, own);
        release(cx, q.stream, Release::Answer(reply, Served::Refused));
        sent += 1;
    }
    while sent < budget {
        let Some(front) = cx.worker.limiter.queue.peek_front() else {
            break;
        };
        let Some(route) = filter.config.routes.get(front.item) else {
            break;
        };
        let Some(rule) = &route.limit else { break };
        let key = front.limit_key.clone();
        let slots = filter.config.limit_slots;
        let d = match table::acquire(cx.host, slots, &key, &rule.algorithm, now) {
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
        let Some(q) = cx.worker.limiter.queue.pop_front() else {
            break;
        };
        let counters = filter.counters(q.item).limit;
        counters.admitted.add(cx.host, 1);
        counters.queue_time_ms.add(
            cx.host,
            now.saturating_sub(q.deadline_ms.saturating_sub(route.sla_ms)) as i64,
        );
        if let Some(ex) = cx.worker.requests.get_mut(&q.stream) {
            ex.limit = note(route, &d, false);
        }
        release(cx, q.stream, Release::Resume);
        // Every wake counts: resumes, like replies, run in the host's
        // chain after this call.
        sent += 1;
    }
    sent
}

/// The stream ended while queued.
pub(super) fn forget(worker: &mut Worker, stream: StreamId) {
    worker.limiter.queue.remove(stream);
}
