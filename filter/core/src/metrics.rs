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
}

#[derive(Debug, Clone, Default)]
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

#[derive(Debug, Clone, Default)]
pub struct CoalesceCounters {
    pub leaders: Counter,
    pub followers: Counter,
    /// Followers answered with the leader's response (incl. late ones).
    pub coalesced: Counter,
    pub timeouts: Counter,
    /// Followers let go upstream because the leader failed.
    pub released: Counter,
}

#[derive(Debug, Clone, Default)]
pub struct CacheCounters {
    pub hits: Counter,
    pub stale: Counter,
    pub misses: Counter,
    pub bypass: Counter,
    pub stores: Counter,
    pub evictions: Counter,
    pub bytes_stored: Counter,
    pub invalidations: Counter,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Indexed like `Config::routes`.
    pub routes: Vec<RouteCounters>,
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
                RouteCounters {
                    requests: Counter::define(host, &name("requests")),
                    unauthenticated: Counter::define(host, &name("unauthenticated")),
                    cache,
                    coalesce,
                    limit,
                }
            })
            .collect();
        Metrics { routes }
    }
}
