//! The batching stage (DESIGN.md step 6): requests of a batchable rule
//! are paused and gathered per worker for the rule's window (adaptive to
//! the traffic), then sent upstream as one call; each member is answered
//! from its part of the answer, or released to go upstream on its own when
//! the batch call fails or its part is missing.
//!
//! Every batch call is made by the worker's timer in the root context,
//! even when a batch fills up inside a request's hook (the timer then runs
//! at 1 ms): a call made from a request's own context is cancelled when
//! that request ends, and the other members would never be answered.

use hashbrown::HashMap;

use crate::batch::codec::{self, Format, Member};
use crate::batch::window::{self, Policy, Rate};
use crate::config::{BatchFormat, Route, RouteBatch};
use crate::header_list::HeaderList;
use crate::headers::Headers;
use crate::host::{Host, StreamId};

use super::machine::{Cx, Outcome};
use super::phase::Wait;
use super::{CoalesceStep, Exchange, Filter, Worker};

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) stream: StreamId,
    pub(super) id: String,
    pub(super) member: Member,
    pub(super) joined_ms: u64,
}

#[derive(Debug)]
pub(super) struct OpenBatch {
    pub(super) members: Vec<Pending>,
    pub(super) flush_at_ms: u64,
}

#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) route: usize,
    pub(super) members: Vec<Pending>,
    /// When the members stop waiting for this call's answer and go
    /// alone, whether or not the host ever answers it.
    pub(super) deadline_ms: u64,
}

/// Per-worker batching state.
#[derive(Debug, Default)]
pub struct Batcher {
    pub(super) open: HashMap<usize, OpenBatch>,
    /// Full batches waiting for the timer's next (1 ms) tick.
    pub(super) ready: Vec<(usize, Vec<Pending>)>,
    pub(super) in_flight: HashMap<u32, InFlight>,
    rates: HashMap<usize, Rate>,
    next_seq: u64,
}

impl Batcher {
    pub fn has_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Whether a batch is full and waits for the timer to send it.
    pub fn has_ready(&self, _routes: &[Route]) -> bool {
        !self.ready.is_empty()
    }
}

pub(super) fn format(f: BatchFormat) -> Format {
    match f {
        BatchFormat::Rest => Format::Rest,
        BatchFormat::Graphql => Format::Graphql,
    }
}

/// Route `route`'s batching rule; `None` also for an index that is not a
/// route (every index comes from matching this filter's routes, so that
/// would be a bug, and the request then simply is not batched).
pub(super) fn rule(filter: &Filter, route: usize) -> Option<&RouteBatch> {
    filter.config.routes.get(route)?.batch.as_ref()
}

fn policy(rule: &RouteBatch) -> Policy {
    Policy {
        window_min_ms: rule.window_min_ms,
        window_max_ms: rule.window_max_ms,
        min_rate_rps: rule.min_rate_rps,
    }
}

/// The batching stage: join an open batch (park), wait for the body
/// first, or go on alone.
pub(super) fn on_request<H: Host>(cx: &mut Cx<'_, H>, exchange: &mut Exchange) -> Outcome {
    let Cx { filter, worker, .. } = cx;
    let Some(route) = filter.config.routes.get(exchange.route) else {
        return Outcome::Pass;
    };
    let Some(rule) = &route.batch else {
        return Outcome::Pass;
    };
    // A coalescing leader goes upstream itself: its followers wait for
    // its own response.
    if matches!(exchange.coalesce, CoalesceStep::Leader(_)) {
        return Outcome::Pass;
    }
    let now = exchange.clock_ms;
    let rate = worker.batcher.rates.entry(exchange.route).or_default();
    rate.observe(now);
    if window::window_ms(&policy(rule), rate.rps(now), rule.max_size).is_none() {
        return Outcome::Pass; // too little traffic to be worth a wait
    }
    if exchange.has_body {
        // Envoy turns a wasm pause at request headers into "stop all
        // iteration": a request paused here would never show its body.
        // Without a buffer filter behind us, letting the headers go on
        // would start the upstream request, so only rules that say one is
        // there (`bodies`) gather bodies; the rest go upstream alone.
        return if rule.bodies {
            Outcome::AwaitBody
        } else {
            Outcome::Pass
        };
    }
    let member = member_of(&exchange.request, exchange, None);
    if join(filter, worker, exchange, member, now) {
        Outcome::Park(Wait::Batch)
    } else {
        Outcome::Pass
    }
}

/// A piece of the body of a request gathering it to join a batch:
/// `AwaitBody` = keep buffering; `Park` = it joined a batch; `Pass` = it
/// goes upstream alone (body too large, not batchable in the rule's
/// format, or no batch to join).
pub(super) fn on_request_body<H: Host>(
    cx: &mut Cx<'_, H>,
    exchange: &mut Exchange,
    size: usize,
    end_of_stream: bool,
) -> Outcome {
    let Cx {
        filter,
        worker,
        host,
    } = cx;
    let Some(rule) = self::rule(filter, exchange.route) else {
        return Outcome::Pass;
    };
    if size > rule.max_body_bytes as usize {
        // Everything buffered so far goes on with the rest of the body.
        filter
            .counters(exchange.route)
            .batch
            .fallback_oversize
            .add(*host, 1);
        return Outcome::Pass;
    }
    if !end_of_stream {
        return Outcome::AwaitBody; // the host keeps buffering
    }
    let body = host.request_body(size);
    let now = host.now_ms();
    let member = member_of(&exchange.request, exchange, Some(body));
    if join(filter, worker, exchange, member, now) {
        Outcome::Park(Wait::Batch)
    } else {
        Outcome::Pass
    }
}

fn member_of(all: &HeaderList, exchange: &Exchange, body: Option<Vec<u8>>) -> Member {
    let h = Headers::new(all);
    Member {
        id: String::new(),
        method: h.get_str(":method").unwrap_or("GET").to_string(),
        path: h.get_str(":path").unwrap_or("/").to_string(),
        headers: all
            .iter()
            .filter_map(|(k, v)| {
                std::str::from_utf8(v)
                    .ok()
                    .map(|v| (k.to_string(), v.to_string()))
            })
            .chain(std::iter::once((
                "x-request-id".to_string(),
                exchange.identity.request_id.clone(),
            )))
            .collect(),
        body,
    }
}

fn join(
    filter: &Filter,
    worker: &mut Worker,
    exchange: &Exchange,
    mut member: Member,
    now: u64,
) -> bool {
    let route = exchange.route;
    let Some(rule) = self::rule(filter, route) else {
        return false;
    };
    let rps = worker
        .batcher
        .rates
        .get(&route)
        .map(|r| r.rps(now))
        .unwrap_or(0.0);
    let Some(window) = window::window_ms(&policy(rule), rps, rule.max_size) else {
        return false;
    };
    if !codec::batchable_as(format(rule.format), &member) {
        return false;
    }
    worker.batcher.next_seq += 1;
    let id = codec::member_id(worker.batcher.next_seq);
    member.id = id.clone();
    let batch = worker
        .batcher
        .open
        .entry(route)
        .or_insert_with(|| OpenBatch {
            members: Vec::new(),
            flush_at_ms: now + window,
        });
    batch.members.push(Pending {
        stream: exchange.stream,
        id,
        member,
        joined_ms: now,
    });
    // Full: it leaves with the next tick, and the next request opens a
    // new batch (a batch never exceeds max_size).
    if batch.members.len() >= rule.max_size as usize {
        if let Some(full) = worker.batcher.open.remove(&route) {
            worker.batcher.ready.push((route, full.members));
        }
    }
    true
}

/// A member's stream ended: a member still waiting in an open batch is
/// dropped from it (a member whose client left is skipped).
pub(super) fn forget(worker: &mut Worker, stream: StreamId) {
    for b in worker.batcher.open.values_mut() {
        b.members.retain(|m| m.stream != stream);
    }
    worker.batcher.open.retain(|_, b| !b.members.is_empty());
    for (_, members) in worker.batcher.ready.iter_mut() {
        members.retain(|m| m.stream != stream);
    }
    worker.batcher.ready.retain(|(_, m)| !m.is_empty());
}
