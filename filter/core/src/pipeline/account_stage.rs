//! The account stage (DESIGN.md step 8): every response of a priced rule
//! gets its actual cost, the baseline (what it would have cost without the
//! optimizer) and the saving, attributed to tenant, service, route,
//! provider and strategy. The figures go to counters, to debug headers,
//! and as spend events to `cost-control` (buffered per worker, sent by the
//! timer: see `spend_report.rs`).

use crate::config::{Accounting, Route, RouteCost};
use crate::cost::model::{self, Priced, Strategy};
use crate::cost::spend::{SpendBuffer, SpendEvent};
use crate::cost::stream_usage::StreamUsage;
use crate::host::Host;

use super::budget_stage::{self, Held};
use super::machine::Cx;
use super::{Exchange, Filter, Worker};

/// Accounting state of one request.
#[derive(Debug, Default)]
pub struct CostStep {
    /// Its share when a batch answered it.
    pub batch_share: Option<u64>,
    /// The budget reservation it holds.
    pub held: Option<Held>,
    /// The response body, kept for per-token pricing.
    body: Option<Vec<u8>>,
    /// A streamed answer's usage, read as it passes.
    stream: Option<Box<StreamUsage>>,
    /// What the answer the filter gave (cache, coalescing) costs at the
    /// model's price: the baseline of a per-token rule's saving.
    pub answer_price: Option<u64>,
    /// Priced and reported (exactly once).
    pub done: bool,
    /// It waited for its tenant's first lease (counted once).
    pub waited_for_lease: bool,
}

/// Per-worker accounting state.
#[derive(Debug)]
pub struct Accountant {
    pub spend: Option<SpendBuffer>,
    /// The callout carrying the spend batch out.
    pub spend_call: Option<u32>,
}

impl Accountant {
    pub fn new(accounting: Option<&Accounting>, nonce: u64) -> Self {
        Accountant {
            spend: accounting
                .map(|a| SpendBuffer::new(&a.gateway_id, nonce, a.max_buffer_events as usize)),
            spend_call: None,
        }
    }
}

/// The prices a request of a priced rule is charged at. Without routing,
/// the rule's `cost` for both. With routing: the prices of the provider
/// that served it (its own `cost`, else the rule's), against those of the
/// rule's default (first) provider, the baseline of every strategy.
struct Prices<'a> {
    route: &'a Route,
    served: &'a RouteCost,
    baseline: &'a RouteCost,
    /// Who is named in the ledger.
    provider: &'a str,
    /// It went upstream to a provider other than the default.
    routed_away: bool,
}

fn prices<'a>(filter: &'a Filter, exchange: &Exchange) -> Option<Prices<'a>> {
    let route = filter.config.routes.get(exchange.route)?;
    let rule = route.cost.as_ref()?;
    let Some(routing) = &route.routing else {
        return Some(Prices {
            route,
            served: rule,
            baseline: rule,
            provider: &rule.provider,
            routed_away: false,
        });
    };
    let baseline = routing
        .providers
        .first()
        .and_then(|p| p.cost.as_ref())
        .unwrap_or(rule);
    let served_at = exchange.routed.map(|r| r.served.unwrap_or(r.chosen));
    let served_provider = served_at.and_then(|i| routing.providers.get(i));
    Some(Prices {
        route,
        served: served_provider
            .and_then(|p| p.cost.as_ref())
            .unwrap_or(baseline),
        baseline,
        provider: served_provider
            .or(routing.providers.first())
            .map_or(&rule.provider, |p| &p.name),
        routed_away: served_at.is_some_and(|i| i != 0),
    })
}

impl Prices<'_> {
    /// Price one call made upstream for `call_micros` (the served
    /// provider's price of it); `baseline_call_micros` is what the default
    /// provider would have charged.
    fn upstream(&self, call_micros: u64, baseline_call_micros: u64) -> (Strategy, Priced) {
        if self.routed_away {
            let mut priced = model::price(Strategy::Routed, call_micros, None);
            priced.baseline_micros = baseline_call_micros;
            (Strategy::Routed, priced)
        } else {
            (
                Strategy::Upstream,
                model::price(Strategy::Upstream, call_micros, None),
            )
        }
    }
}

/// Whether the response body must be read to price this request.
pub(super) fn wants_body(filter: &Filter, exchange: &Exchange) -> bool {
    !exchange.cost.done
        && (exchange.cost.body.is_some() || exchange.cost.stream.is_some())
        && prices(filter, exchange).is_some_and(|p| p.served.tokens.is_some())
}

/// The prompt tokens a request's own body was estimated at (prompt
/// rules), for pricing a stream that never said.
fn prompt_tokens(exchange: &Exchange) -> u64 {
    exchange.prompt.as_ref().map_or(0, |p| p.prompt_tokens)
}

/// The filter answers `exchange` with `body` (from the cache, or another
/// request's answer): a per-token rule's saving is that answer's price.
pub(super) fn note_answer(filter: &Filter, exchange: &mut Exchange, body: &[u8]) {
    let tokens = prices(filter, exchange).and_then(|p| p.baseline.tokens.as_ref());
    if let Some(t) = tokens {
        exchange.cost.answer_price = model::answer_price(t, body, prompt_tokens(exchange));
    }
}

/// Response headers of a request the filter answered or that went
/// upstream. `strategy` is how it was served; `status` its status;
/// `event_stream` whether the answer is a stream of server-sent events.
/// Adds the cost headers and reports the spend, unless per-token pricing
/// must first see the body.
pub(super) fn on_response_headers<H: Host>(
    cx: &mut Cx<'_, H>,
    exchange: &mut Exchange,
    strategy: Strategy,
    status: u16,
    event_stream: bool,
) {
    let Cx {
        filter,
        worker,
        host,
    } = cx;
    let (filter, worker, host) = (*filter, &mut **worker, &mut **host);
    budget_stage::add_warnings(host, exchange);
    let Some(p) = prices(filter, exchange) else {
        return;
    };
    if exchange.cost.done {
        return;
    }
    let upstream = strategy == Strategy::Upstream;
    if let Some(t) = p.served.tokens.as_ref().filter(|_| upstream) {
        if (200..300).contains(&status) {
            // The price is in the body's `usage`: settle at its end. A
            // stream is read as it passes, never held.
            if event_stream {
                exchange.cost.stream = Some(Box::new(StreamUsage::new(t.max_body_bytes as usize)));
            } else {
                exchange.cost.body = Some(Vec::new());
            }
            return;
        }
    }
    let (strategy, priced) = if upstream {
        p.upstream(
            p.served.cost_per_call_micros,
            p.baseline.cost_per_call_micros,
        )
    } else {
        let call = exchange
            .cost
            .answer_price
            .unwrap_or(p.baseline.cost_per_call_micros);
        (
            strategy,
            model::price(strategy, call, exchange.cost.batch_share),
        )
    };
    add_cost_headers(filter, host, exchange, priced);
    finish(filter, worker, host, exchange, strategy, priced);
}

/// A piece of the upstream body of a per-token priced request.
pub(super) fn on_response_body<H: Host>(
    cx: &mut Cx<'_, H>,
    exchange: &mut Exchange,
    chunk: &[u8],
    end_of_stream: bool,
) {
    let (filter, worker, host) = (cx.filter, &mut *cx.worker, &mut *cx.host);
    let Some(p) = prices(filter, exchange) else {
        return;
    };
    let Some(tokens) = &p.served.tokens else {
        return;
    };
    if let Some(stream) = &mut exchange.cost.stream {
        stream.feed(chunk);
        if end_of_stream {
            settle_stream(filter, worker, host, exchange);
        }
        return;
    }
    if let Some(body) = &mut exchange.cost.body {
        // Past the bound the body is not kept: it prices as one call.
        if body.len() + chunk.len() <= tokens.max_body_bytes as usize {
            body.extend_from_slice(chunk);
        } else {
            body.clear();
            body.push(0);
        }
    }
    if !end_of_stream {
        return;
    }
    let body = exchange.cost.body.take().unwrap_or_default();
    let call = model::token_price(tokens, &body).unwrap_or(p.served.cost_per_call_micros);
    let baseline_call = p
        .baseline
        .tokens
        .as_ref()
        .and_then(|t| model::token_price(t, &body))
        .unwrap_or(p.baseline.cost_per_call_micros);
    let (strategy, priced) = p.upstream(call, baseline_call);
    finish(filter, worker, host, exchange, strategy, priced);
}

/// A streamed answer ended, whole or cut off: priced from its usage
/// chunk, else from what arrived (`StreamUsage`).
fn settle_stream(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
) {
    let Some(mut stream) = exchange.cost.stream.take() else {
        return;
    };
    let Some(p) = prices(filter, exchange) else {
        return;
    };
    stream.finish();
    let counters = filter.counters(exchange.route).prompt;
    if stream.has_usage() {
        counters.streams_usage.add(host, 1);
    } else {
        counters.streams_estimated.add(host, 1);
    }
    let model = exchange.prompt.as_ref().and_then(|f| f.model.as_deref());
    let prompt = prompt_tokens(exchange);
    let price_at = |c: &RouteCost| {
        c.tokens
            .as_ref()
            .and_then(|t| stream.price(t, model, prompt))
            .unwrap_or(c.cost_per_call_micros)
    };
    let (strategy, priced) = p.upstream(price_at(p.served), price_at(p.baseline));
    finish(filter, worker, host, exchange, strategy, priced);
}

/// The stream ended: a per-token request whose body never completed is
/// priced as one call (the call happened); a reservation never used is
/// given back.
pub(super) fn on_done<H: Host>(cx: &mut Cx<'_, H>, exchange: &mut Exchange) {
    let (filter, worker, host) = (cx.filter, &mut *cx.worker, &mut *cx.host);
    if !exchange.cost.done && exchange.cost.stream.is_some() {
        // Cut off: the tokens that arrived were produced, and are paid.
        settle_stream(filter, worker, host, exchange);
    }
    if !exchange.cost.done && exchange.cost.body.is_some() {
        if let Some(p) = prices(filter, exchange) {
            let (strategy, priced) = p.upstream(
                p.served.cost_per_call_micros,
                p.baseline.cost_per_call_micros,
            );
            finish(filter, worker, host, exchange, strategy, priced);
        }
    }
    budget_stage::release_unused(filter, worker, host, exchange);
}

fn add_cost_headers(filter: &Filter, host: &mut impl Host, exchange: &Exchange, priced: Priced) {
    let debug = filter
        .config
        .routes
        .get(exchange.route)
        .is_some_and(|r| r.debug_headers);
    if debug {
        let _ = host.add_response_header(
            "x-optimizer-cost",
            priced.actual_micros.to_string().as_bytes(),
        );
        let _ =
            host.add_response_header("x-optimizer-saving", priced.saving().to_string().as_bytes());
    }
}

/// Count, settle the reservation, and buffer the spend event.
fn finish(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    exchange: &mut Exchange,
    strategy: Strategy,
    priced: Priced,
) {
    exchange.cost.done = true;
    let Some(p) = prices(filter, exchange) else {
        return;
    };
    let c = filter.counters(exchange.route).cost.of(strategy);
    c.requests.add(host, 1);
    c.actual_micros.add(host, priced.actual_micros as i64);
    c.baseline_micros.add(host, priced.baseline_micros as i64);
    c.saving_micros.add(host, priced.saving() as i64);
    let allowance_id = budget_stage::settle(filter, worker, host, exchange, priced.actual_micros);
    let Some(buffer) = worker.accountant.spend.as_mut() else {
        return;
    };
    let id = &exchange.identity;
    buffer.push(SpendEvent {
        tenant: id.tenant_or_anonymous().to_string(),
        service: id.service.clone().unwrap_or_default(),
        route: p.route.name.clone(),
        provider: p.provider.to_string(),
        strategy: strategy.as_str(),
        cost_micros: priced.actual_micros,
        baseline_micros: priced.baseline_micros,
        ts_ms: host.now_ms(),
        allowance_id,
    });
    super::timer::set_tick(filter, worker, host);
}
