//! The coalescing stage of the pipeline: elect a leader per identical
//! request, pause followers, publish the leader's answer, and answer or
//! release the followers (at once on the leader's worker, from the timer
//! on the others).

use crate::cache::entry::{Body, Entry};
use crate::cache::key;
use crate::cache::reply::storable_header;
use crate::cache::request::CLIENT_CONDITIONALS;
use crate::coalesce::table::{self, Role, State};
use crate::config::RouteCoalesce;
use std::fmt::Write;
use std::rc::Rc;

use crate::coalesce::waiters::{Action, Waiter};
use crate::coalesce::{self as co};
use crate::header_list::HeaderList;
use crate::headers::Headers;
use crate::host::{Host, Level};
use crate::shared::fnv1a;

use super::machine::{own_headers, release, Cx, Outcome, Release, Reply};
use super::phase::{Served, Wait};
use super::timer::{set_tick, ACTIONS_PER_CALL};
use super::{CacheStep, Exchange, Filter, Worker};

/// The body collected from a leader's response, to share.
#[derive(Debug)]
pub struct Leading {
    slot: u32,
    tag: u64,
    seq: u64,
    key: String,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    collecting: bool,
    finished: bool,
}

/// A request's part in coalescing (a follower's wait is its phase,
/// `Parked(Leader)`).
#[derive(Debug, Default)]
pub enum CoalesceStep {
    #[default]
    None,
    Leader(Box<Leading>),
}

pub const CACHE_STATUS: &str = "cost-optimizer; fwd=miss; collapsed";

fn eligible<'a>(
    method: &str,
    headers: &Headers<'a>,
    allow_idempotency: bool,
) -> Option<Option<&'a str>> {
    // A conditional or range request wants an answer of its own (a 304, a
    // 206), not the one a plain request gets, nor to give it.
    if CLIENT_CONDITIONALS.iter().any(|h| headers.get(h).is_some()) {
        return None;
    }
    match method {
        "GET" | "HEAD" => Some(None),
        _ if allow_idempotency => headers.get_str("idempotency-key").map(Some),
        _ => None,
    }
}

/// The coalescing stage: lead a turn (go on), follow one (park), or
/// take a just-finished leader's answer (a late arrival).
pub(super) fn on_request<H: Host>(cx: &mut Cx<'_, H>, exchange: &mut Exchange) -> Outcome {
    let Cx {
        filter,
        worker,
        host,
    } = cx;
    let Some(route) = filter.config.routes.get(exchange.route) else {
        return Outcome::Pass;
    };
    let Some(rule) = &route.coalesce else {
        return Outcome::Pass;
    };
    if matches!(exchange.cache, CacheStep::Write { .. }) {
        return Outcome::Pass;
    }
    let stream = exchange.stream;
    let headers = Headers::new(&exchange.request);
    let method = headers.get_str(":method").unwrap_or("GET");
    // A shareable prompt is the same request as another with the same
    // body digest, whatever its method.
    let prompt = match (&route.prompt, &exchange.prompt) {
        (Some(_), Some(p)) if p.shareable => Some(p.digest.as_str()),
        _ => None,
    };
    let idempotency = match prompt {
        Some(_) => (!CLIENT_CONDITIONALS.iter().any(|h| headers.get(h).is_some())).then_some(None),
        None => eligible(method, &headers, rule.idempotency_key),
    };
    let Some(idempotency) = idempotency else {
        return Outcome::Pass;
    };
    // A cache lookup already turned away a request the cache may not
    // share (`Forward` means it did not); else look here.
    let looked_up = matches!(exchange.cache, CacheStep::Forward(_));
    if !looked_up && filter.config.bypasses_sharing(&exchange.request) {
        return Outcome::Pass;
    }
    let tenant = exchange.identity.tenant_or_anonymous();
    let primary = match &exchange.cache {
        CacheStep::Forward(f) => f.key.clone(),
        _ => {
            let k = key::primary(
                tenant,
                method,
                headers.get(":path").unwrap_or(b"/"),
                &[],
                &[],
                &headers,
            );
            match prompt {
                Some(digest) => k.with_body(digest),
                None => k,
            }
        }
    };
    let head = method == "HEAD";
    // What else two requests must share to share an answer, written into
    // one buffer: the method; credentials (requests with credentials only
    // share with the very same ones); and the invalidation generations it
    // was looked up under (a request made after a write to its scopes
    // must not take the answer of one made before that write: RFC 9111
    // §4.4 holds for followers as it does for hits; both workers read the
    // generations per request, so this holds across workers too).
    let mut shared = String::with_capacity(64);
    shared.push_str(method);
    if let Some(a) = headers.get("authorization") {
        let _ = write!(shared, "{:016x}", fnv1a(&[a]));
    }
    shared.push('\n');
    if let CacheStep::Forward(f) = &exchange.cache {
        for (s, g) in &f.gens {
            crate::decimal::push_u64(&mut shared, (*s).into());
            shared.push(':');
            crate::decimal::push_u64(&mut shared, (*g).into());
            shared.push(',');
        }
    }
    let co_key = co::key(&primary, &shared, idempotency);
    let slots = filter.config.coalesce_store.slots;
    let slot = co::slot_of(&co_key, slots);
    let tag = co_key.tag();
    // The time this pass through the stages started (read once per pass).
    let now = exchange.clock_ms;
    let counters = filter.counters(exchange.route).coalesce;
    let leader_until = now + (route.sla_ms * 2).max(5_000);
    let role = match table::elect(*host, slot, tag, now, leader_until) {
        Ok(r) => r,
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("[{stream}] coalescing skipped: {e:?}"),
            );
            return Outcome::Pass;
        }
    };
    match role {
        Role::Leader { seq } => {
            counters.leaders.add(*host, 1);
            exchange.coalesce = CoalesceStep::Leader(Box::new(Leading {
                slot,
                tag,
                seq,
                key: co_key.material,
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
                collecting: false,
                finished: false,
            }));
            // A leader goes upstream itself: its followers wait for its
            // own response, so it is not batched.
            Outcome::Pass
        }
        Role::Follower { seq } => {
            counters.followers.add(*host, 1);
            worker.waiters.waiting.push(Waiter {
                stream,
                route: exchange.route,
                slot,
                tag,
                seq,
                key: co_key.material,
                deadline_ms: now + rule.max_wait_ms,
                head,
                started_ms: now,
            });
            Outcome::Park(Wait::Leader)
        }
        Role::Late { seq } => match table::result(*host, slot, seq, &co_key.material) {
            Some(entry) => match reply_from(&entry, exchange.own_headers(filter), head) {
                Some(reply) => {
                    counters.coalesced.add(*host, 1);
                    Outcome::Answer(reply, Served::Coalesced)
                }
                None => Outcome::Pass,
            },
            None => Outcome::Pass,
        },
        Role::Alone => Outcome::Pass,
    }
}

/// The answer a follower gets: the leader's response, marked.
fn reply_from(entry: &Entry, own: Vec<(String, Vec<u8>)>, head: bool) -> Option<Reply> {
    let Body::Response {
        status,
        headers,
        body,
    } = &entry.body
    else {
        return None;
    };
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(headers.len() + own.len() + 2);
    out.extend(headers.iter().cloned());
    out.push(("x-cache".into(), b"COALESCED".to_vec()));
    out.push(("cache-status".into(), CACHE_STATUS.as_bytes().to_vec()));
    out.extend(own);
    Some(Reply {
        status: *status,
        headers: out,
        body: if head { Vec::new() } else { body.clone() },
    })
}

/// Answer or release queued followers, at most `ACTIONS_PER_CALL` now.
fn drain(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    drain_within(filter, worker, host, ACTIONS_PER_CALL);
}

fn drain_within(filter: &Filter, worker: &mut Worker, host: &mut impl Host, budget: usize) {
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    for _ in 0..budget {
        let Some((w, action)) = cx.worker.waiters.outbox.pop_front() else {
            break;
        };
        let counters = filter.counters(w.route).coalesce;
        let reply = match &action {
            Action::Answer(entry) => {
                own_headers(&cx, w.stream).and_then(|own| reply_from(entry, own, w.head))
            }
            Action::Release { .. } => None,
        };
        if let Some(reply) = reply {
            if release(&mut cx, w.stream, Release::Answer(reply, Served::Coalesced)) {
                counters.coalesced.add(cx.host, 1);
            }
            continue;
        }
        match action {
            Action::Release { timeout: true } => counters.timeouts.add(cx.host, 1),
            Action::Release { timeout: false } => counters.released.add(cx.host, 1),
            // Gone, or the leader's answer was not a response.
            Action::Answer(_) => continue,
        }
        release(&mut cx, w.stream, Release::Resume);
    }
    set_tick(filter, cx.worker, cx.host);
}

impl Leading {
    fn fail(&mut self, filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.collecting = false;
        let _ = table::finish(host, self.slot, self.tag, self.seq, State::Failed, 0);
        worker
            .waiters
            .settle(self.slot, self.seq, &Action::Release { timeout: false });
        drain(filter, worker, host);
    }

    fn publish(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        grace_ms: u64,
    ) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.collecting = false;
        let now = host.now_ms();
        let entry = Entry {
            key: std::mem::take(&mut self.key),
            stored_ms: now,
            initial_age_s: 0,
            fresh_until_ms: 0,
            swr_until_ms: 0,
            sie_until_ms: 0,
            keep_until_ms: 0,
            fetch_ms: 0,
            gens: Vec::new(),
            body: Body::Response {
                status: self.status,
                headers: std::mem::take(&mut self.headers),
                body: std::mem::take(&mut self.body),
            },
        };
        // Result first, then the marker: whoever sees "done" finds it.
        let published = table::publish(host, self.slot, self.seq, &entry).and_then(|()| {
            table::finish(
                host,
                self.slot,
                self.tag,
                self.seq,
                State::Done,
                now + grace_ms,
            )
        });
        if published.is_err() {
            let _ = table::finish(host, self.slot, self.tag, self.seq, State::Failed, 0);
        }
        worker
            .waiters
            .settle(self.slot, self.seq, &Action::Answer(Rc::new(entry)));
        drain(filter, worker, host);
    }
}

/// The leader's response headers.
pub(super) fn on_response_headers<H: Host>(
    cx: &mut Cx<'_, H>,
    exchange: &mut Exchange,
    all: &HeaderList,
    status: u16,
    end_of_stream: bool,
) {
    let (filter, worker, host) = (cx.filter, &mut *cx.worker, &mut *cx.host);
    let Some((lead, rule)) = leading(filter, exchange) else {
        return;
    };
    let headers = Headers::new(all);
    let too_long = headers
        .get_str("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|l| l > u64::from(rule.max_body_bytes));
    // A 304 or 206 answers the leader's own conditional or range request
    // (or the cache's validators), never a follower's plain one.
    let partial = status == 304 || status == 206;
    if (status >= 500 && !rule.share_5xx) || too_long || status == 0 || partial {
        lead.fail(filter, worker, host);
        return;
    }
    // Nobody waits: end the turn now and skip copying the body. Not for
    // a stream: its headers come long before its end (an LLM answer
    // streams for seconds), and identical requests arriving meanwhile
    // must follow it, not lead a call of their own.
    if !headers.is_event_stream() {
        match table::finish_if_alone(host, lead.slot, lead.tag, lead.seq) {
            Ok(true) => {
                lead.finished = true;
                return;
            }
            Ok(false) => {}
            Err(_) => {
                lead.fail(filter, worker, host);
                return;
            }
        }
    }
    lead.status = status;
    lead.headers = headers
        .iter()
        .filter(|(k, _)| storable_header(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec()))
        .collect();
    lead.collecting = true;
    if end_of_stream {
        lead.publish(filter, worker, host, rule.grace_ms);
    }
}

/// This exchange's leadership and its rule, when it leads a turn.
fn leading<'a>(
    filter: &'a Filter,
    exchange: &'a mut Exchange,
) -> Option<(&'a mut Leading, &'a RouteCoalesce)> {
    let rule = filter
        .config
        .routes
        .get(exchange.route)?
        .coalesce
        .as_ref()?;
    match &mut exchange.coalesce {
        CoalesceStep::Leader(lead) => Some((lead, rule)),
        _ => None,
    }
}

/// Whether the leader still needs the body.
pub(super) fn wants_body(exchange: &Exchange) -> bool {
    matches!(&exchange.coalesce, CoalesceStep::Leader(l) if l.collecting)
}

pub(super) fn on_response_body(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
    chunk: &[u8],
    end_of_stream: bool,
) {
    let Some((lead, rule)) = leading(filter, exchange) else {
        return;
    };
    if !lead.collecting {
        return;
    }
    if lead.body.len() + chunk.len() > rule.max_body_bytes as usize {
        lead.fail(filter, worker, host);
        return;
    }
    lead.body.extend_from_slice(chunk);
    if end_of_stream {
        lead.publish(filter, worker, host, rule.grace_ms);
    }
}

/// The stream ended. A leader that never published releases its
/// followers (reset, timeout, client gone).
pub(super) fn on_done(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
) {
    if let CoalesceStep::Leader(lead) = &mut exchange.coalesce {
        lead.fail(filter, worker, host);
    }
}

/// The timer: answer or release followers whose leader ran elsewhere, and
/// those that waited too long; then drain what is queued.
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host, already_sent: usize) {
    let now = host.now_ms();
    let mut turns: Vec<(u32, u64, String)> = worker
        .waiters
        .waiting
        .iter()
        .map(|w| (w.slot, w.seq, w.key.clone()))
        .collect();
    turns.sort();
    turns.dedup();
    for (slot, seq, key) in turns {
        let m = table::read(host, slot);
        let action = match m.state {
            State::Done if m.seq == seq => match table::result(host, slot, seq, &key) {
                Some(entry) => Action::Answer(Rc::new(entry)),
                None => Action::Release { timeout: false },
            },
            State::InFlight if m.seq == seq => {
                let (late, waiting): (Vec<Waiter>, Vec<Waiter>) =
                    std::mem::take(&mut worker.waiters.waiting)
                        .into_iter()
                        .partition(|w| w.slot == slot && w.seq == seq && now >= w.deadline_ms);
                worker.waiters.waiting = waiting;
                for w in late {
                    worker
                        .waiters
                        .outbox
                        .push_back((w, Action::Release { timeout: true }));
                }
                continue;
            }
            // Failed, or the slot moved on to another leader.
            _ => Action::Release { timeout: false },
        };
        worker.waiters.settle(slot, seq, &action);
    }
    drain_within(
        filter,
        worker,
        host,
        ACTIONS_PER_CALL.saturating_sub(already_sent),
    );
}
