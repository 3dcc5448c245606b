//! The per-request pipeline (DESIGN.md "What it does to a request") as a
//! state machine over [`Host`]. The wasm HTTP context keeps one
//! `Option<Exchange>` and hands each hook to it; one hook is one transition.
//!
//! Stages so far: identify, cache. Later stages (coalesce, limit, batch,
//! route, account) slot in after the cache lookup.

mod account_stage;
mod batch_stage;
mod budget_stage;
mod cache_stage;
mod coalesce_stage;
mod limit_stage;
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
        || budget_stage::on_callout_response(filter, worker, host, token, body_size);
    if !handled {
        batch_stage::on_callout_response(filter, worker, host, token, body_size);
    }
    timer::set_tick(filter, worker, host);
}

/// The worker's timer.
pub fn on_tick(filter: &Filter, worker: &mut Worker, host: &mut impl Host) {
    account_stage::on_tick(filter, worker, host);
    batch_stage::on_tick(filter, worker, host);
    let sent = budget_stage::on_tick(filter, worker, host, timer::ACTIONS_PER_CALL);
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

    /// A piece of the request body. Only requests gathering their body for
    /// a batch are held; the rest flow.
    pub fn on_request_body(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        if self.batch != BatchStep::AwaitBody {
            return Verdict::Continue;
        }
        if batch_stage::on_request_body(filter, worker, host, self, size, end_of_stream) {
            Verdict::Pause
        } else {
            Verdict::Continue
        }
    }

    /// Response headers: from upstream, or of an answer the filter made.
    pub fn on_response_headers(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        stream: StreamId,
        end_of_stream: bool,
    ) -> Verdict {
        if self.answered_locally {
            if let Some(served) = self.cost.served {
                account_stage::on_response_headers(filter, worker, host, self, served, 200);
            }
            return Verdict::Continue;
        }
        if self.answered_by_coalescer(worker, stream) {
            account_stage::on_response_headers(
                filter,
                worker,
                host,
                self,
                Strategy::Coalesced,
                200,
            );
            return Verdict::Continue;
        }
        if self.answered_by_batch(filter, worker, stream) {
            account_stage::on_response_headers(filter, worker, host, self, Strategy::Batched, 200);
            return Verdict::Continue;
        }
        if budget_stage::take_outcome(worker, self) {
            // The timer refused it while it waited for a lease.
            self.answered_locally = true;
            return Verdict::Continue;
        }
        if self.limit_queued {
            if limit_stage::refused(worker, stream) {
                self.answered_locally = true;
                return Verdict::Continue;
            }
            self.limit = limit_stage::response_headers(self, worker, stream);
            self.limit_queued = false;
        }
        let route = filter.config.routes.get(self.route);
        let stores = route.is_some_and(|r| r.cache.is_some() || r.coalesce.is_some());
        let priced = route.is_some_and(|r| r.cost.is_some());
        let all = if stores || priced {
            host.response_headers()
        } else {
            Vec::new()
        };
        let status: u16 = Headers::new(&all)
            .get_str(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if stores {
            if cache_stage::on_response_headers(
                filter,
                worker,
                host,
                stream,
                self,
                &all,
                status,
                end_of_stream,
            ) {
                // A stale answer replaces an upstream error: the call was
                // made, so it is priced as one.
                self.answered_locally = true;
                self.cost.served = Some(Strategy::Upstream);
                return Verdict::Pause;
            }
            coalesce_stage::on_response_headers(
                filter,
                worker,
                host,
                self,
                status,
                &all,
                end_of_stream,
            );
        }
        let id_header = filter.config.identity.request_id_header.as_str();
        let _ = host.add_response_header(id_header, self.identity.request_id.as_bytes());
        for (name, value) in self.common_headers(filter) {
            let _ = host.add_response_header(name, &value);
        }
        if let Some(note) = &self.limit {
            let _ = host.add_response_header("ratelimit-policy", note.policy.as_bytes());
            let _ = host.add_response_header("ratelimit", note.ratelimit.as_bytes());
            if note.warning {
                let _ = host.add_response_header("x-optimizer-warning", b"rate-limit-exceeded");
            }
        }
        account_stage::on_response_headers(filter, worker, host, self, Strategy::Upstream, status);
        Verdict::Continue
    }

    /// A piece of the response body from upstream.
    pub fn on_response_body(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Verdict {
        if self.answered_locally
            || matches!(self.coalesce, CoalesceStep::Follower)
            || self.batch == BatchStep::Member
        {
            return Verdict::Continue;
        }
        let cache_wants = cache_stage::wants_body(self);
        let leader_wants = coalesce_stage::wants_body(self);
        let account_wants = account_stage::wants_body(filter, self);
        if !cache_wants && !leader_wants && !account_wants {
            return Verdict::Continue;
        }
        let chunk = if size > 0 {
            host.response_body(size)
        } else {
            Vec::new()
        };
        if cache_wants {
            cache_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        if leader_wants {
            coalesce_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        if account_wants {
            account_stage::on_response_body(filter, worker, host, self, &chunk, end_of_stream);
        }
        Verdict::Continue
    }

    /// The stream is over (answered, reset, or the client left).
    pub fn on_done(
        &mut self,
        filter: &Filter,
        worker: &mut Worker,
        host: &mut impl Host,
        stream: StreamId,
    ) {
        coalesce_stage::on_done(filter, worker, host, stream, self);
        limit_stage::forget(worker, stream);
        batch_stage::forget(worker, stream);
        budget_stage::forget(filter, worker, host, stream);
        account_stage::on_done(filter, worker, host, self);
    }

    /// A batch member answered from its batch needs nothing more; one
    /// that was released goes on as an ordinary request.
    fn answered_by_batch(&mut self, filter: &Filter, worker: &Worker, stream: StreamId) -> bool {
        if self.batch != BatchStep::Member {
            return false;
        }
        match worker.batcher.fates.get(&stream) {
            Some(BatchFate::Answered { size, index }) => {
                let cost = filter
                    .config
                    .routes
                    .get(self.route)
                    .and_then(|r| r.cost.as_ref());
                self.cost.batch_share = cost
                    .map(|c| crate::cost::model::member_share(c, *size as usize, *index as usize));
                true
            }
            _ => {
                self.batch = BatchStep::None;
                false
            }
        }
    }

    /// A follower answered by the coalescer needs nothing more; one that
    /// was released goes on as an ordinary request.
    fn answered_by_coalescer(&mut self, worker: &Worker, stream: StreamId) -> bool {
        if !matches!(self.coalesce, CoalesceStep::Follower) {
            return false;
        }
        match worker.waiters.fates.get(&stream) {
            Some(Fate::Answered) => true,
            _ => {
                self.coalesce = CoalesceStep::None;
                false
            }
        }
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
