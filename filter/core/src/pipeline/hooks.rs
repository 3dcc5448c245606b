//! The host's hooks, as the wasm contexts (and native tests) call them:
//! a request's first hook identifies it and runs it through the stages;
//! later hooks find it in the worker's table and hand it to its phase;
//! the root's timer and callout answers drive what waits.

use crate::headers::Headers;
use crate::host::{Host, HostError, Level, StreamId, Wake};
use crate::identity;
use crate::routes;

use super::machine::{self, Cx, Step};
use super::phase::{self, Phase, Served, Stage};
use super::{
    batch_call, budget_lease, cache_refresh, cache_stage, coalesce_stage, counter_flush,
    limit_stage, prompt_stage, purge_poll, self_wake, spend_report, timer, CacheStep, CoalesceStep,
    CostStep, Exchange, Filter, SelfWake, Verdict, Worker,
};

/// First hook of a request without a body (tests, GETs).
pub fn on_request_headers(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
) -> Verdict {
    on_request_headers_eos(filter, worker, host, stream, true)
}

/// First hook of a request. A request that no rule matches is not kept:
/// the filter has not touched it and will not touch its response.
pub fn on_request_headers_eos(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    end_of_stream: bool,
) -> Verdict {
    let routes = &filter.config.routes;
    // One host call per request: `:path` alone where most traffic is not
    // the filter's, every header at once where most is (first_read.rs).
    let all = if worker.first_read.all_at_once() {
        host.request_headers()
    } else {
        let Some(path) = host.request_header(":path") else {
            return Verdict::Continue;
        };
        if !routes::any_prefix_matches(routes, &path) {
            worker.first_read.record(false);
            return Verdict::Continue;
        }
        host.request_headers()
    };
    let headers = Headers::new(&all);
    let path = headers.get(":path").unwrap_or_default();
    let method = headers.get(":method").unwrap_or_default();
    let authority = headers.get(":authority").unwrap_or_default();
    let matched = routes::first_match(routes, path, method, authority);
    worker.first_read.record(matched.is_some());
    let Some(index) = matched else {
        return Verdict::Continue;
    };
    let Some(route) = routes.get(index) else {
        return Verdict::Continue;
    };
    let counters = filter.counters(index);
    counters.requests.add(host, 1);

    let identity = identity::identify(
        &filter.config.identity,
        route,
        &headers,
        host,
        &mut worker.ids,
    );
    if route.require_tenant && identity.tenant.is_none() {
        counters.unauthenticated.add(host, 1);
        let id = identity.request_id.as_bytes();
        let sent = host.wake(
            stream,
            Wake::Reply {
                status: 401,
                headers: &[
                    ("content-type", b"application/json"),
                    (filter.config.identity.request_id_header.as_str(), id),
                ],
                body: br#"{"error":"unauthenticated","message":"this route requires a tenant identity"}"#,
            },
        );
        log_failure(host, stream, "send 401", sent);
        return Verdict::Pause;
    }
    let mut exchange = Exchange {
        stream,
        route: index,
        clock_ms: identity.started_ms,
        identity,
        phase: Phase::Deciding,
        request: all,
        has_body: !end_of_stream,
        cache: CacheStep::None,
        coalesce: CoalesceStep::None,
        limit: None,
        cost: CostStep::default(),
        wake: SelfWake::default(),
        routed: None,
        prompt: None,
    };
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    let verdict = if prompt_stage::reads_body(&cx, &exchange) {
        // Nothing is decided before the body is read: cache and coalescing
        // keys need it, the budget sizes its reservation from it.
        set_request_id(&mut cx, &exchange);
        exchange.enter(phase::Event::ReadPrompt, cx.host);
        Verdict::Continue
    } else {
        decide(&mut cx, &mut exchange, true)
    };
    cx.worker.requests.insert(stream, exchange);
    verdict
}

/// The cache, then the request stages: a request's decision, at its
/// headers or (a prompt) once its body is read. `set_id`: the request id
/// the filter made up is set upstream first, unless a hit answers it.
pub(super) fn decide<H: Host>(cx: &mut Cx<'_, H>, ex: &mut Exchange, set_id: bool) -> Verdict {
    if cache_stage::on_request(cx, ex) {
        ex.enter(phase::Event::Answer(Served::Cache), cx.host);
        ex.request = Default::default();
        return Verdict::Pause;
    }
    // Before any pause: a request resumed later goes upstream as it is now.
    if set_id {
        set_request_id(cx, ex);
    }
    match machine::advance(cx, ex, Stage::Limit) {
        Step::Go => Verdict::Continue,
        Step::Hold => Verdict::Pause,
    }
}

/// The request id the filter made up goes upstream with the request.
fn set_request_id<H: Host>(cx: &mut Cx<'_, H>, exchange: &Exchange) {
    if exchange.identity.request_id_generated {
        let header = cx.filter.config.identity.request_id_header.as_str();
        let id = exchange.identity.request_id.as_bytes();
        let set = cx.host.set_request_header(header, Some(id));
        log_failure(cx.host, exchange.stream, "set the request id", set);
    }
}

/// Run `f` on the request `stream` (taken out of the table meanwhile, so
/// the stages can reach other requests); `None` when it is not the
/// filter's.
fn with_request<H: Host, R>(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut H,
    stream: StreamId,
    f: impl FnOnce(&mut Cx<'_, H>, &mut Exchange) -> R,
) -> Option<R> {
    let mut exchange = worker.requests.remove(&stream)?;
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    let r = f(&mut cx, &mut exchange);
    cx.worker.requests.insert(stream, exchange);
    Some(r)
}

/// A piece of the request body.
pub fn on_request_body(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    size: usize,
    end_of_stream: bool,
) -> Verdict {
    with_request(filter, worker, host, stream, |cx, ex| {
        ex.on_request_body(cx, size, end_of_stream)
    })
    .unwrap_or(Verdict::Continue)
}

/// Response headers: from upstream, or of an answer the filter made.
pub fn on_response_headers(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    end_of_stream: bool,
) -> Verdict {
    with_request(filter, worker, host, stream, |cx, ex| {
        ex.on_response_headers(cx, end_of_stream)
    })
    .unwrap_or(Verdict::Continue)
}

/// A piece of the response body from upstream.
pub fn on_response_body(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    size: usize,
    end_of_stream: bool,
) -> Verdict {
    with_request(filter, worker, host, stream, |cx, ex| {
        ex.on_response_body(cx, size, end_of_stream)
    })
    .unwrap_or(Verdict::Continue)
}

/// The stream is over (answered, reset, or the client left): the request
/// leaves the table.
pub fn on_done(filter: &Filter, worker: &mut Worker, host: &mut impl Host, stream: StreamId) {
    let Some(mut exchange) = worker.requests.remove(&stream) else {
        return;
    };
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    exchange.on_done(&mut cx);
}

/// The answer to an HTTP call the filter made (a batch).
pub fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) {
    let handled = spend_report::on_callout_response(filter, worker, host, token, body_size)
        || budget_lease::on_callout_response(filter, worker, host, token, body_size)
        || purge_poll::on_callout_response(filter, worker, host, token, body_size)
        || cache_refresh::on_callout_response(filter, worker, host, token, body_size);
    if !handled {
        batch_call::on_callout_response(filter, worker, host, token, body_size);
    }
    timer::set_tick(filter, worker, host);
}

/// The answer to an HTTP call a request made from its own context: its
/// wake call (Kong). Any other answer goes where the root's would.
pub fn on_stream_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    token: u32,
    body_size: usize,
) {
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    if self_wake::is_wake_call(&cx, stream, token) {
        self_wake::on_answer(&mut cx, stream);
    } else {
        on_callout_response(filter, cx.worker, cx.host, token, body_size);
    }
}

/// The worker's timer.
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    spend_report::on_tick(filter, worker, host);
    batch_call::on_tick(filter, worker, host);
    purge_poll::on_tick(filter, worker, host);
    cache_refresh::on_tick(filter, worker, host);
    if filter.checks_epoch() {
        // Lookups read the epoch counter; this sees, within a second, a
        // bump that did not move it (`generations.rs`).
        let slots = filter.config.cache_store.generation_slots;
        let now = host.now_ms();
        let gens = &mut worker.cache.gens;
        gens.check_epoch(host, slots, now, timer::SLOW_TICK_MS);
    }
    let sent = budget_lease::on_tick(filter, worker, host, timer::ACTIONS_PER_CALL);
    let mut cx = Cx {
        filter,
        worker,
        host,
    };
    let sent = sent + limit_stage::on_tick(&mut cx, timer::ACTIONS_PER_CALL.saturating_sub(sent));
    coalesce_stage::on_tick(filter, worker, host, sent);
    worker.compact();
    counter_flush::on_tick(filter, worker, host);
    // Where only the root may set the timer (Kong), this is where the
    // period the hooks asked for takes effect.
    timer::set_tick(filter, worker, host);
}

/// The host ends the filter: Envoy calls the root context's `on_done` on
/// every worker when it stops (SIGTERM) or replaces the filter. The spend
/// the worker still holds goes to the log, where `cost-control spend
/// replay` finds it (see `cost::spend::spill` for why not a last call).
pub fn on_shutdown(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    spend_report::on_shutdown(filter, worker, host);
    counter_flush::on_shutdown(host);
}

fn log_failure(host: &impl Host, stream: StreamId, what: &str, r: Result<(), HostError>) {
    if let Err(e) = r {
        host.log(Level::Warn, &format!("[{stream}] could not {what}: {e:?}"));
    }
}
