//! The per-request pipeline (DESIGN.md "What it does to a request") as a
//! state machine over [`Host`]. The wasm HTTP context keeps one
//! `Option<Exchange>` and hands each hook to it; one hook is one transition.
//!
//! Stages so far: identify, cache. Later stages (coalesce, limit, batch,
//! route, account) slot in after the cache lookup.

mod account_stage;
mod batch_call;
mod batch_stage;
mod budget_lease;
mod budget_stage;
mod cache_stage;
mod coalesce_stage;
mod limit_stage;
mod purge_poll;
mod response;
mod timer;

use crate::cache::{self, CacheState};
use crate::coalesce::waiters::{Fate, Waiters};
use crate::config::Config;
use crate::cost::model::Strategy;
use crate::headers::Headers;
use crate::host::{Host, HostError, Level, StreamId};
use crate::identity::{self, Identity};
use crate::metrics::{Metrics, RouteCounters};
use crate::request_id::RequestIds;
use crate::routes;

pub use account_stage::{Accountant, CostStep};
pub use batch_stage::{BatchFate, BatchStep, Batcher};
pub use budget_stage::{Budgeter, Held};
pub use cache_stage::CacheStep;
pub use coalesce_stage::CoalesceStep;
pub use limit_stage::{LimitNote, Limiter};
pub use timer::{ACTIONS_PER_CALL, SLOW_TICK_MS};

/// What the host should do with the stream after a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next filter.
    Continue,
    /// Hold the stream: the filter answered it locally, or will resume it.
    Pause,
}

/// The immutable part of a configured filter, shared by all streams of a
/// worker: the checked config and the metric ids.
#[derive(Debug)]
pub struct Filter {
    pub config: Config,
    pub metrics: Metrics,
}

impl Filter {
    pub fn new(config: Config, host: &mut impl Host) -> Self {
        let metrics = Metrics::define(&config, host);
        Filter { config, metrics }
    }

    /// Create the shared-data tables the configured strategies use. Runs
    /// in every worker's `on_configure`; only the first creates.
    pub fn create_tables(&self, host: &mut impl Host) -> Result<(), HostError> {
        cache::create_tables(&self.config, host)?;
        if self.coalesces() {
            crate::coalesce::table::create(host, self.config.coalesce_store.slots)?;
        }
        if self.limits() {
            crate::limit::table::create(host, self.config.limit_slots)?;
        }
        if let Some(acc) = &self.config.accounting {
            if self.budgets() {
                crate::cost::budget::create(host, acc.budgets.slots)?;
            }
        }
        Ok(())
    }

    /// Whether any rule coalesces.
    pub fn coalesces(&self) -> bool {
        self.config.routes.iter().any(|r| r.coalesce.is_some())
    }

    /// Whether any rule is rate-limited.
    pub fn limits(&self) -> bool {
        self.config.routes.iter().any(|r| r.limit.is_some())
    }

    /// Whether any rule enforces a budget.
    pub fn budgets(&self) -> bool {
        self.config
            .routes
            .iter()
            .any(|r| r.cost.as_ref().is_some_and(|c| c.budget.is_some()))
    }

    /// Whether the worker's timer has work (then it must run).
    pub fn needs_timer(&self) -> bool {
        self.coalesces()
            || self.limits()
            || self.config.accounting.is_some()
            || self.config.routes.iter().any(|r| r.batch.is_some())
    }

    fn counters(&self, route: usize) -> RouteCounters {
        self.metrics.routes.get(route).cloned().unwrap_or_default()
    }
}

/// Mutable per-worker state (one per VM; no locking needed, a worker is one
/// thread).
#[derive(Debug)]
pub struct Worker {
    pub ids: RequestIds,
    pub cache: CacheState,
    pub waiters: Waiters,
    pub limiter: Limiter,
    pub batcher: Batcher,
    pub accountant: Accountant,
    pub budgeter: Budgeter,
}

impl Worker {
    pub fn new(config: &Config, host: &mut impl Host) -> Self {
        let seed = [
            host.random_u64(),
            host.random_u64(),
            host.random_u64(),
            host.random_u64() ^ host.now_ms(),
        ];
        // Tells this worker's spend batches apart from other workers' and
        // from an earlier run's.
        let nonce = host.random_u64() ^ host.now_ms();
        Worker {
            accountant: Accountant::new(config.accounting.as_ref(), nonce),
            budgeter: Budgeter::default(),
            ids: RequestIds::new(seed),
            cache: CacheState::new(config),
            waiters: Waiters::default(),
            // Each rule bounds its own waiting requests; the queue only
            // needs room for all of them.
            batcher: Batcher::default(),
            limiter: Limiter::new(
                config
                    .routes
                    .iter()
                    .filter_map(|r| r.limit.as_ref())
                    .map(|l| l.queue_bound as usize)
                    .sum(),
            ),
        }
    }

    /// Uniform in (0, 1].
    pub fn rand01(&mut self) -> f64 {
        ((self.ids.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// A matched request on its way through the pipeline.
#[derive(Debug)]
pub struct Exchange {
    pub stream: StreamId,
    pub route: usize,
    pub identity: Identity,
    pub cache: CacheStep,
    pub coalesce: CoalesceStep,
    /// Rate-limit headers for the response (limited rules only).
    pub limit: Option<LimitNote>,
    /// Paused in the rate-limit queue; the timer decides what follows.
    pub limit_queued: bool,
    pub batch: BatchStep,
    pub cost: CostStep,
    /// The filter answered this request itself; its response hooks only
    /// pass.
    pub answered_locally: bool,
}

/// First hook of a request without a body (tests, GETs).
pub fn on_request_headers(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
) -> (Verdict, Option<Exchange>) {
    on_request_headers_eos(filter, worker, host, stream, true)
}

/// First hook of a request. `None` means no rule matched: the filter has
/// not touched the request and will not touch its response.
pub fn on_request_headers_eos(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    stream: StreamId,
    end_of_stream: bool,
) -> (Verdict, Option<Exchange>) {
    let routes = &filter.config.routes;
    // One cheap host call decides most unmatched traffic.
    let Some(path) = host.request_header(":path") else {
        return (Verdict::Continue, None);
    };
    if !routes::any_prefix_matches(routes, &path) {
        return (Verdict::Continue, None);
    }
    let all = host.request_headers();
    let headers = Headers::new(&all);
    let method = headers.get(":method").unwrap_or_default();
    let authority = headers.get(":authority").unwrap_or_default();
    let Some(index) = routes::first_match(routes, &path, method, authority) else {
        return (Verdict::Continue, None);
    };
    let route = &routes[index];
    let counters = filter.counters(index);
    counters.requests.add(host, 1);

    let identity = identity::identify(
        &filter.config.identity,
        route,
        &headers,
        host,
        &mut worker.ids,
    );
    let mut exchange = Exchange {
        stream,
        route: index,
        identity,
        cache: CacheStep::None,
        coalesce: CoalesceStep::None,
        limit: None,
        limit_queued: false,
        batch: BatchStep::None,
        cost: CostStep::default(),
        answered_locally: false,
    };

    if route.require_tenant && exchange.identity.tenant.is_none() {
        counters.unauthenticated.add(host, 1);
        let id = exchange.identity.request_id.as_bytes();
        let sent = host.send_reply(
            stream,
            401,
            &[
                ("content-type", b"application/json"),
                (filter.config.identity.request_id_header.as_str(), id),
            ],
            br#"{"error":"unauthenticated","message":"this route requires a tenant identity"}"#,
        );
        log_failure(host, stream, "send 401", sent);
        return (Verdict::Pause, None);
    }

    if cache_stage::on_request(filter, worker, host, stream, &mut exchange, &all) {
        exchange.answered_locally = true;
        exchange.cost.served = Some(Strategy::Cache);
        return (Verdict::Pause, Some(exchange));
    }

    // Before any pause: a request resumed later goes upstream as it is now.
    if exchange.identity.request_id_generated {
        let header = filter.config.identity.request_id_header.as_str();
        let set = host.set_request_header(header, Some(exchange.identity.request_id.as_bytes()));
        log_failure(host, stream, "set the request id", set);
    }

    // Limits before coalescing: a request that would wait for an
    // identical one in flight takes a token too (never more upstream calls
    // than the limit allows, even when a leader fails and its followers go
    // upstream themselves).
    match limit_stage::on_request(filter, worker, host, stream, &mut exchange) {
        limit_stage::Outcome::Pass => {}
        limit_stage::Outcome::Answered => {
            exchange.answered_locally = true;
            return (Verdict::Pause, Some(exchange));
        }
        limit_stage::Outcome::Queued => {
            exchange.limit_queued = true;
            timer::set_tick(filter, worker, host);
            return (Verdict::Pause, Some(exchange));
        }
    }

    // Budgets after the limiter (a refused request reserves nothing) and
    // before coalescing: a follower reserves too, and settles at 0 when
    // the leader's answer serves it.
    match budget_stage::on_request(filter, worker, host, stream, &mut exchange) {
        budget_stage::Outcome::Pass => {}
        budget_stage::Outcome::Answered => {
            exchange.answered_locally = true;
            return (Verdict::Pause, Some(exchange));
        }
        budget_stage::Outcome::Waiting => {
            timer::set_tick(filter, worker, host);
            return (Verdict::Pause, Some(exchange));
        }
    }

    if coalesce_stage::on_request(filter, worker, host, stream, &mut exchange, &all) {
        if !matches!(exchange.coalesce, CoalesceStep::Follower) {
            // A late arrival answered with a finished leader's response.
            exchange.answered_locally = true;
            exchange.cost.served = Some(Strategy::Coalesced);
        }
        return (Verdict::Pause, Some(exchange));
    }

    // A coalescing leader goes upstream itself: its followers wait for
    // its own response.
    if matches!(exchange.coalesce, CoalesceStep::None) {
        let now = exchange.identity.started_ms;
        match batch_stage::on_request(filter, worker, &mut exchange, &all, end_of_stream, now) {
            batch_stage::AtHeaders::Joined => {
                timer::set_tick(filter, worker, host);
                return (Verdict::Pause, Some(exchange));
            }
            batch_stage::AtHeaders::AwaitBody | batch_stage::AtHeaders::No => {}
        }
    }
    (Verdict::Continue, Some(exchange))
}

/// The answer to an HTTP call the filter made (a batch).
pub fn on_callout_response(
    filter: &Filter,
    worker: &mut Worker,
    host: &mut impl Host,
    token: u32,
    body_size: usize,
) {
    let handled = account_stage::on_callout_response(filter, worker, host, token)
        || budget_lease::on_callout_response(filter, worker, host, token, body_size)
        || purge_poll::on_callout_response(filter, worker, host, token, body_size);
    if !handled {
        batch_call::on_callout_response(filter, worker, host, token, body_size);
    }
    timer::set_tick(filter, worker, host);
}

/// The worker's timer.
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    account_stage::on_tick(filter, worker, host);
    batch_call::on_tick(filter, worker, host);
    purge_poll::on_tick(filter, worker, host);
    let sent = budget_lease::on_tick(filter, worker, host, timer::ACTIONS_PER_CALL);
    let sent = sent
        + limit_stage::on_tick(
            filter,
            worker,
            host,
            timer::ACTIONS_PER_CALL.saturating_sub(sent),
        );
    coalesce_stage::on_tick(filter, worker, host, sent);
}

fn log_failure(host: &impl Host, stream: StreamId, what: &str, r: Result<(), HostError>) {
    if let Err(e) = r {
        host.log(Level::Warn, &format!("[{stream}] could not {what}: {e:?}"));
    }
}

impl Exchange {
    /// Headers the filter adds to every response of a matched request,
    /// upstream or local: the request id, and the decision when the rule
    /// asks for debug headers.
    pub fn common_headers(&self, filter: &Filter) -> Vec<(&'static str, Vec<u8>)> {
        let mut out: Vec<(&'static str, Vec<u8>)> = Vec::with_capacity(5);
        let Some(route) = filter.config.routes.get(self.route) else {
            return out;
        };
        if route.debug_headers {
            let id = &self.identity;
            out.push(("x-optimizer-route", route.name.as_bytes().to_vec()));
            out.push((
                "x-optimizer-tenant",
                id.tenant_or_anonymous().as_bytes().to_vec(),
            ));
            if let Some(service) = &id.service {
                out.push(("x-optimizer-service", service.as_bytes().to_vec()));
            }
            out.push((
                "x-optimizer-priority",
                id.priority.as_str().as_bytes().to_vec(),
            ));
        }
        out
    }

    /// Headers every answer the filter makes for this request carries
    /// (its request id and the debug headers), owned, for answers sent
    /// later from another context.
    pub fn own_headers(&self, filter: &Filter) -> Vec<(String, Vec<u8>)> {
        let mut own = vec![(
            filter.config.identity.request_id_header.clone(),
            self.identity.request_id.as_bytes().to_vec(),
        )];
        own.extend(
            self.common_headers(filter)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
        own
    }
}

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod coalesce_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod tests;
