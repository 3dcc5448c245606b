//! Counters the filter defines once per worker. Hosts have no labels, so
//! dimensions are encoded in the name (`cost_optimizer.route.<name>.<what>`)
//! and Envoy's `stats_tags` turn them back into labels.

use crate::config::Config;
use crate::host::Host;

/// One counter id, or `None` when the host refused to define it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter(Option<u32>);

impl Counter {
    pub fn define(host: &mut impl Host, name: &str) -> Self {
        Counter(host.define_counter(name))
    }

    pub fn add(self, host: &mut impl Host, delta: i64) {
        if let Some(id) = self.0 {
            host.increment(id, delta);
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RouteCounters {
    pub requests: Counter,
    pub unauthenticated: Counter,
    pub cache: CacheCounters,
    pub coalesce: CoalesceCounters,
    pub limit: LimitCounters,
    pub batch: BatchCounters,
    pub cost: CostCounters,
    pub budget: BudgetCounters,
    pub routing: RoutingCounters,
    pub prompt: PromptCounters,
}

/// Prompt rules (`prompt.<what>`) and streamed answers of priced rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromptCounters {
    /// Bodies read as prompts.
    pub read: Counter,
    /// Bodies not read (over the bound, not a JSON object): the request
    /// shares nothing.
    pub unread: Counter,
    /// Prompts read but not shared (not deterministic).
    pub unshared: Counter,
    /// Streamed answers priced from their usage chunk.
    pub streams_usage: Counter,
    /// Streamed answers priced from what arrived (no usage chunk: not
    /// asked for, or the stream was cut).
    pub streams_estimated: Counter,
}

/// Routing (`routing.<what>`, `routing.provider.<name>.<what>`).
#[derive(Debug, Clone, Default)]
pub struct RoutingCounters {
    /// Answers a provider other than the chosen one gave (the host
    /// failed over).
    pub failovers: Counter,
    /// Requests refused because every provider's breaker was open.
    pub unavailable: Counter,
    /// Indexed like the rule's providers.
    pub providers: Vec<ProviderCounters>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProviderCounters {
    /// Requests routed to it.
    pub routed: Counter,
    /// Answers it served.
    pub served: Counter,
    pub failures: Counter,
    pub opened: Counter,
    pub half_opened: Counter,
    pub closed: Counter,
}

/// Money per strategy, in micro-USD (`cost.<strategy>.<what>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StrategyCounters {
    pub requests: Counter,
    pub actual_micros: Counter,
    pub baseline_micros: Counter,
    pub saving_micros: Counter,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CostCounters {
    /// Indexed like `Strategy::ALL`.
    pub by_strategy: [StrategyCounters; 5],
}

impl CostCounters {
    pub fn of(&self, s: crate::cost::model::Strategy) -> StrategyCounters {
        let i = crate::cost::model::Strategy::ALL
            .iter()
            .position(|x| *x == s)
            .unwrap_or(0);
        self.by_strategy[i]
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct BudgetCounters {
    /// Reservations from a lease.
    pub reserved: Counter,
    /// Refused with 429: the budget is spent.
    pub exceeded: Counter,
    /// Passed over the budget (`high`).
    pub overdraft: Counter,
    /// Waited for the tenant's first lease.
    pub waited: Counter,
    /// Refused with 503: the budget could not be known.
    pub unavailable: Counter,
    /// Served on the outage credit.
    pub credit: Counter,
}

/// Gateway-wide counters of the link to `cost-control`
/// (`cost_optimizer.accounting.<what>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountingCounters {
    pub batches: Counter,
    pub failures: Counter,
    /// Events in batches `cost-control` refused as invalid.
    pub rejected: Counter,
    pub lease_calls: Counter,
    pub lease_failures: Counter,
    /// Snapshot polls sent (one worker of the gateway at a time).
    pub purge_polls: Counter,
    /// Polls that got no usable answer.
    pub purge_poll_failures: Counter,
    /// Generation slots bumped for purges.
    pub purge_bumps: Counter,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct BatchCounters {
    pub batches: Counter,
    pub members: Counter,
    /// Batch sizes as a histogram of counters (hosts have no labels).
    pub size_1: Counter,
    pub size_2_4: Counter,
    pub size_5_8: Counter,
    pub size_9_16: Counter,
    pub size_17_24: Counter,
    /// Total milliseconds members waited for their batch to leave.
    pub wait_ms: Counter,
    /// Members sent alone because the batch call failed or timed out.
    pub fallback_failed: Counter,
    /// Members sent alone because their part was missing or unreadable.
    pub fallback_missing: Counter,
    /// Requests sent alone because their body exceeded `max_body_bytes`.
    pub fallback_oversize: Counter,
}

impl BatchCounters {
    pub fn size_bucket(&self, n: usize) -> Counter {
        match n {
            0 | 1 => self.size_1,
            2..=4 => self.size_2_4,
            5..=8 => self.size_5_8,
            9..=16 => self.size_9_16,
            _ => self.size_17_24,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LimitCounters {
    pub admitted: Counter,
    /// Over the limit, passed because `high`.
    pub limited_high: Counter,
    /// Refused: `medium` whose wait would break its SLA (or ran out).
    pub limited_medium: Counter,
    pub limited_low: Counter,
    pub queued: Counter,
    pub queue_rejects: Counter,
    /// Total milliseconds admitted requests spent queued.
    pub queue_time_ms: Counter,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CoalesceCounters {
    pub leaders: Counter,
    pub followers: Counter,
    /// Followers answered with the leader's response (incl. late ones).
    pub coalesced: Counter,
    pub timeouts: Counter,
    /// Followers let go upstream because the leader failed.
    pub released: Counter,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CacheCounters {
    pub hits: Counter,
    pub stale: Counter,
    pub misses: Counter,
    pub bypass: Counter,
    pub stores: Counter,
    pub evictions: Counter,
    pub bytes_stored: Counter,
    pub invalidations: Counter,
    /// Stale entries the upstream confirmed with `304`.
    pub revalidated: Counter,
    /// Background refreshes sent (stale-while-revalidate).
    pub refreshes: Counter,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Indexed like `Config::routes`.
    pub routes: Vec<RouteCounters>,
    pub spend: AccountingCounters,
    /// `cost_optimizer.cache.epoch`: moves with every invalidation, so a
    /// worker reads it instead of the shared epoch (`generations.rs`).
    /// `None` without a caching rule, or when the host keeps no value for
    /// it (see [`Metrics::probe_cache_epoch`]).
    pub cache_epoch: Option<u32>,
}

pub const PREFIX: &str = "cost_optimizer";

impl Metrics {
    pub fn define(config: &Config, host: &mut impl Host) -> Self {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let name = |what: &str| format!("{PREFIX}.route.{}.{what}", r.name);
                let cache = if r.cache.is_some() {
                    let mut c = |what: &str| Counter::define(host, &name(&format!("cache.{what}")));
                    CacheCounters {
                        hits: c("hits"),
                        stale: c("stale"),
                        misses: c("misses"),
                        bypass: c("bypass"),
                        stores: c("stores"),
                        evictions: c("evictions"),
                        bytes_stored: c("bytes_stored"),
                        invalidations: c("invalidations"),
                        revalidated: c("revalidated"),
                        refreshes: c("refreshes"),
                    }
                } else {
                    CacheCounters::default()
                };
                let coalesce = if r.coalesce.is_some() {
                    let mut c =
                        |what: &str| Counter::define(host, &name(&format!("coalesce.{what}")));
                    CoalesceCounters {
                        leaders: c("leaders"),
                        followers: c("followers"),
                        coalesced: c("coalesced"),
                        timeouts: c("timeouts"),
                        released: c("released"),
                    }
                } else {
                    CoalesceCounters::default()
                };
                let limit = if r.limit.is_some() {
                    let mut c = |what: &str| Counter::define(host, &name(&format!("limit.{what}")));
                    LimitCounters {
                        admitted: c("admitted"),
                        limited_high: c("limited_high"),
                        limited_medium: c("limited_medium"),
                        limited_low: c("limited_low"),
                        queued: c("queued"),
                        queue_rejects: c("queue_rejects"),
                        queue_time_ms: c("queue_time_ms"),
                    }
                } else {
                    LimitCounters::default()
                };
                let batch = if r.batch.is_some() {
                    let mut c = |what: &str| Counter::define(host, &name(&format!("batch.{what}")));
                    BatchCounters {
                        batches: c("batches"),
                        members: c("members"),
                        size_1: c("size_1"),
                        size_2_4: c("size_2_4"),
                        size_5_8: c("size_5_8"),
                        size_9_16: c("size_9_16"),
                        size_17_24: c("size_17_24"),
                        wait_ms: c("wait_ms"),
                        fallback_failed: c("fallback_failed"),
                        fallback_missing: c("fallback_missing"),
                        fallback_oversize: c("fallback_oversize"),
                    }
                } else {
                    BatchCounters::default()
                };
                let cost = if r.cost.is_some() {
                    let mut by_strategy = [StrategyCounters::default(); 5];
                    for (i, st) in crate::cost::model::Strategy::ALL.iter().enumerate() {
                        let mut c = |what: &str| {
                            Counter::define(host, &name(&format!("cost.{}.{what}", st.as_str())))
                        };
                        by_strategy[i] = StrategyCounters {
                            requests: c("requests"),
                            actual_micros: c("actual_micros"),
                            baseline_micros: c("baseline_micros"),
                            saving_micros: c("saving_micros"),
                        };
                    }
                    CostCounters { by_strategy }
                } else {
                    CostCounters::default()
                };
                let budget = if r.cost.as_ref().is_some_and(|c| c.budget.is_some()) {
                    let mut c =
                        |what: &str| Counter::define(host, &name(&format!("budget.{what}")));
                    BudgetCounters {
                        reserved: c("reserved"),
                        exceeded: c("exceeded"),
                        overdraft: c("overdraft"),
                        waited: c("waited"),
                        unavailable: c("unavailable"),
                        credit: c("credit"),
                    }
                } else {
                    BudgetCounters::default()
                };
                let routing = match &r.routing {
                    Some(rt) => RoutingCounters {
                        failovers: Counter::define(host, &name("routing.failovers")),
                        unavailable: Counter::define(host, &name("routing.unavailable")),
                        providers: rt
                            .providers
                            .iter()
                            .map(|p| {
                                let mut c = |what: &str| {
                                    Counter::define(
                                        host,
                                        &name(&format!("routing.provider.{}.{what}", p.name)),
                                    )
                                };
                                ProviderCounters {
                                    routed: c("routed"),
                                    served: c("served"),
                                    failures: c("failures"),
                                    opened: c("opened"),
                                    half_opened: c("half_opened"),
                                    closed: c("closed"),
                                }
                            })
                            .collect(),
                    },
                    None => RoutingCounters::default(),
                };
                let prompt =
                    if r.prompt.is_some() || r.cost.as_ref().is_some_and(|c| c.tokens.is_some()) {
                        let mut c =
                            |what: &str| Counter::define(host, &name(&format!("prompt.{what}")));
                        PromptCounters {
                            read: c("read"),
                            unread: c("unread"),
                            unshared: c("unshared"),
                            streams_usage: c("streams_usage"),
                            streams_estimated: c("streams_estimated"),
                        }
                    } else {
                        PromptCounters::default()
                    };
                RouteCounters {
                    requests: Counter::define(host, &name("requests")),
                    unauthenticated: Counter::define(host, &name("unauthenticated")),
                    cache,
                    coalesce,
                    limit,
                    batch,
                    cost,
                    budget,
                    routing,
                    prompt,
                }
            })
            .collect();
        let spend = if config.accounting.is_some() {
            let mut c = |what: &str| Counter::define(host, &format!("{PREFIX}.accounting.{what}"));
            AccountingCounters {
                batches: c("spend_batches"),
                failures: c("spend_failures"),
                rejected: c("spend_rejected_events"),
                lease_calls: c("lease_calls"),
                lease_failures: c("lease_failures"),
                purge_polls: c("purge_polls"),
                purge_poll_failures: c("purge_poll_failures"),
                purge_bumps: c("purge_bumps"),
            }
        } else {
            AccountingCounters::default()
        };
        let cache_epoch = if config.routes.iter().any(|r| r.cache.is_some()) {
            host.define_counter(&format!("{PREFIX}.cache.epoch"))
        } else {
            None
        };
        Metrics {
            routes,
            spend,
            cache_epoch,
        }
    }

    /// Whether the host keeps `cache.epoch`'s value: this worker adds 1
    /// and reads it back. Envoy keeps a counter its `stats_matcher`
    /// rejects as a null stat that reads 0 whatever is added; then
    /// invalidations could not be seen through it, and every hit reads
    /// the shared epoch instead. The added 1 makes each worker re-read
    /// the generation table once, and invalidates nothing.
    pub fn probe_cache_epoch(&mut self, host: &mut impl Host) -> bool {
        let Some(id) = self.cache_epoch else {
            return false;
        };
        host.increment_at_once(id, 1);
        let kept = host.counter_value(id).is_some_and(|v| v > 0);
        if !kept {
            self.cache_epoch = None;
        }
        kept
    }
}
