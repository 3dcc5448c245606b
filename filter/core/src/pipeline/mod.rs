//! The per-request pipeline (DESIGN.md "What it does to a request") as a
//! state machine over [`Host`]. Every request a rule matched lives in its
//! worker's table ([`Worker::requests`]) as an [`Exchange`] whose
//! [`Phase`] says where it is; the wasm HTTP context keeps only its stream
//! id and hands each hook here, and the timer finds parked requests in the
//! same table. One hook, or one wake, is one transition.
//!
//! Request stages: identify, cache, then limit, budget, coalesce, batch
//! ([`machine::advance`]); routing is not built. Response stages: cache
//! store, coalescing leader, account (`response.rs`).

mod account_stage;
mod batch_call;
mod batch_stage;
mod budget_lease;
mod budget_stage;
pub mod cache_refresh;
mod cache_stage;
mod coalesce_stage;
mod counter_flush;
pub mod first_read;
mod hooks;
mod limit_stage;
pub mod machine;
pub mod phase;
mod prompt_stage;
mod purge_poll;
mod response;
mod route_stage;
mod self_wake;
mod spend_report;
mod timer;

use hashbrown::HashMap;

use crate::cache::{self, CacheState};
use crate::coalesce::waiters::Waiters;
use crate::config::Config;
use crate::host::{Host, HostError, Level, StreamId};
use crate::identity::Identity;
use crate::metrics::{Metrics, RouteCounters};
use crate::request_id::RequestIds;

pub use account_stage::{Accountant, CostStep};
pub use batch_stage::Batcher;
pub use budget_stage::{Budgeter, Held};
pub use cache_stage::CacheStep;
pub use coalesce_stage::CoalesceStep;
pub use hooks::{
    on_callout_response, on_done, on_request_body, on_request_headers, on_request_headers_eos,
    on_response_body, on_response_headers, on_shutdown, on_stream_callout_response, on_tick,
};
pub use limit_stage::{LimitNote, Limiter};
pub use machine::Cx;
pub use phase::{Phase, Served, Stage, Wait};
pub use self_wake::SelfWake;

pub use timer::{start as start_timer, ACTIONS_PER_CALL, SLOW_TICK_MS};

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
        let mut metrics = Metrics::define(&config, host);
        if metrics.cache_epoch.is_some() && !metrics.probe_cache_epoch(host) {
            host.log(
                Level::Warn,
                "cache: the host keeps no value for the counter cost_optimizer.cache.epoch \
                 (does a stats_matcher reject it?); every cache lookup reads the shared \
                 invalidation epoch instead, one shared-data read more per request",
            );
        }
        host.hold_counters(config.metrics.held());
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
        for (i, r) in self.config.routes.iter().enumerate() {
            if let Some(routing) = &r.routing {
                crate::route::table::create(host, i, routing.providers.len())?;
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

    /// Whether the worker's timer sends held counter sums: it runs, at
    /// least every `metrics.flush_ms`, for them alone if nothing else.
    pub fn flushes_counters(&self) -> bool {
        self.config.metrics.held() && !self.config.routes.is_empty()
    }

    /// Whether cache lookups read the epoch counter instead of the shared
    /// epoch; then the timer reads the shared epoch once a second
    /// (`generations.rs` says why).
    pub fn checks_epoch(&self) -> bool {
        self.metrics.cache_epoch.is_some()
    }

    /// Whether the worker runs a timer at all.
    pub fn has_timer(&self) -> bool {
        self.needs_timer() || self.flushes_counters() || self.checks_epoch()
    }

    /// Whether the worker's timer has work besides the counters and the
    /// epoch check (then it must run, and on Kong fast).
    pub fn needs_timer(&self) -> bool {
        self.coalesces()
            || self.limits()
            || self.config.accounting.is_some()
            || self.config.routes.iter().any(|r| r.batch.is_some())
            // Background refreshes leave from the root's timer.
            || self
                .config
                .routes
                .iter()
                .any(|r| r.cache.as_ref().is_some_and(|c| c.refresh.is_some()))
    }

    /// A rule's counters (borrowed: a rule with routing holds a vector of
    /// them, and a copy per call would allocate on every request).
    fn counters(&self, route: usize) -> &RouteCounters {
        static NONE: std::sync::OnceLock<RouteCounters> = std::sync::OnceLock::new();
        self.metrics
            .routes
            .get(route)
            .unwrap_or_else(|| NONE.get_or_init(RouteCounters::default))
    }
}

/// Mutable per-worker state (one per VM; no locking needed, a worker is one
/// thread).
#[derive(Debug)]
pub struct Worker {
    /// Every request a rule matched that has not ended, by stream.
    pub requests: HashMap<StreamId, Exchange>,
    /// How the next request's headers are read (one host call or two).
    pub first_read: first_read::FirstRead,
    pub ids: RequestIds,
    pub cache: CacheState,
    pub waiters: Waiters,
    pub limiter: Limiter,
    pub batcher: Batcher,
    pub accountant: Accountant,
    pub budgeter: Budgeter,
    /// When the held counter sums last left (`counter_flush`).
    pub counters_sent_ms: u64,
}

/// Entries a table may keep room for beyond what it holds: a table that
/// grew in a backlog (an outage of cost-control, a burst of parked
/// requests) gives the rest back once it drains, so a worker's heap
/// returns to its working size (`make soak` found the spend buffer keeping
/// an outage's high-water mark).
const SPARE_FLOOR: usize = 64;

/// Whether a table with room for `capacity` holding `len` should shrink.
pub(crate) fn oversized(len: usize, capacity: usize) -> bool {
    capacity > 4 * len.max(SPARE_FLOOR)
}

impl Worker {
    /// Shrink the tables a backlog grew (see [`SPARE_FLOOR`]); run by the
    /// timer.
    pub fn compact(&mut self) {
        if oversized(self.requests.len(), self.requests.capacity()) {
            self.requests.shrink_to(2 * self.requests.len());
        }
        let waiting = &mut self.budgeter.waiting;
        if oversized(waiting.len(), waiting.capacity()) {
            waiting.shrink_to(2 * waiting.len());
        }
        if let Some(spend) = self.accountant.spend.as_mut() {
            spend.compact();
        }
    }

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
        let now = host.now_ms();
        Worker {
            counters_sent_ms: now,
            requests: HashMap::new(),
            first_read: first_read::FirstRead::default(),
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

/// A matched request on its way through the pipeline: where it is
/// (`phase`) and what each stage decided for it.
#[derive(Debug)]
pub struct Exchange {
    pub stream: StreamId,
    pub route: usize,
    pub identity: Identity,
    pub phase: Phase,
    /// Its request headers, kept while it is in the request stages (a
    /// parked request continues with them; a batch member is built from
    /// them when its body is complete).
    pub request: crate::header_list::HeaderList,
    /// A body follows its headers.
    pub has_body: bool,
    /// When the current pass through the stages started: its headers, or
    /// the wake that let it go on.
    pub clock_ms: u64,
    pub cache: CacheStep,
    pub coalesce: CoalesceStep,
    /// Rate-limit headers for the response (limited rules only).
    pub limit: Option<LimitNote>,
    pub cost: CostStep,
    /// Its wake while parked, where it wakes itself (Kong).
    pub wake: SelfWake,
    /// The provider the routing stage sent it to.
    pub routed: Option<route_stage::Routed>,
    /// What its body says, when its rule reads prompts and it was one.
    pub prompt: Option<crate::prompt::PromptFacts>,
}

impl Exchange {
    /// Headers the filter adds to every response of a matched request,
    /// upstream or local, beyond the request id: the decision, when the
    /// rule asks for debug headers. Each is handed to `f`, borrowed.
    pub fn each_common_header<'a>(
        &'a self,
        filter: &'a Filter,
        f: &mut impl FnMut(&'a str, &'a [u8]),
    ) {
        let Some(route) = filter.config.routes.get(self.route) else {
            return;
        };
        if route.debug_headers {
            let id = &self.identity;
            f("x-optimizer-route", route.name.as_bytes());
            f("x-optimizer-tenant", id.tenant_or_anonymous().as_bytes());
            if let Some(service) = &id.service {
                f("x-optimizer-service", service.as_bytes());
            }
            f("x-optimizer-priority", id.priority.as_str().as_bytes());
        }
    }

    /// Headers every answer the filter makes for this request carries
    /// (its request id, the debug headers, and the rate limiter's fields
    /// once it passed the limiter), each handed to `f`, borrowed: an
    /// upstream answer gets them without a copy.
    pub fn each_own_header<'a>(&'a self, filter: &'a Filter, mut f: impl FnMut(&'a str, &'a [u8])) {
        f(
            filter.config.identity.request_id_header.as_str(),
            self.identity.request_id.as_bytes(),
        );
        self.each_common_header(filter, &mut f);
        if let Some(note) = &self.limit {
            f("ratelimit-policy", note.policy.as_bytes());
            f("ratelimit", note.ratelimit.as_bytes());
            if note.warning {
                f("x-optimizer-warning", b"rate-limit-exceeded");
            }
        }
    }

    /// [`Self::each_own_header`], owned, for answers sent later from
    /// another context.
    pub fn own_headers(&self, filter: &Filter) -> Vec<(String, Vec<u8>)> {
        let mut own = Vec::with_capacity(8);
        self.each_own_header(filter, |k, v| own.push((k.to_string(), v.to_vec())));
        own
    }
}

#[cfg(test)]
mod account_tests;
#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod budget_slice_tests;
#[cfg(test)]
mod coalesce_tests;
#[cfg(test)]
mod counter_flush_tests;
#[cfg(test)]
mod epoch_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod phase_tests;
#[cfg(test)]
mod prompt_tests;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod self_wake_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod cache_refresh_tests;

#[cfg(test)]
mod route_tests;

/// A worker of a gateway whose shared data is `store`, configured by
/// `cfg` (tables created), its clock at `now_ms`: the setup of the
/// pipeline's native tests.
#[cfg(test)]
pub(crate) fn test_worker(
    store: &std::rc::Rc<std::cell::RefCell<crate::mem_host::SharedStore>>,
    cfg: &str,
    now_ms: u64,
) -> (crate::mem_host::MemHost, Filter, Worker) {
    let mut host = crate::mem_host::MemHost::with_store(store.clone());
    host.now_ms = now_ms;
    let filter = Filter::new(crate::config::parse(cfg.as_bytes()).unwrap(), &mut host);
    filter.create_tables(&mut host).unwrap();
    let worker = Worker::new(&filter.config, &mut host);
    (host, filter, worker)
}

#[cfg(test)]
mod host_calls_tests;
