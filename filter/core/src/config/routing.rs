//! Routing settings: a rule's `routing` block (providers of the same API,
//! the strategy that picks one, their circuit breakers, failover), as JSON
//! spells it and as the filter uses it.

use serde::Deserialize;

use super::cost::{compile_route_cost, RawRouteCost, RouteCost};
use super::ConfigError;
use crate::route::breaker::{BreakerConfig, MAX_PROBES};
use crate::route::choose::Strategy;

/// Providers a rule may list (one shared-data record holds them all).
pub const MAX_PROVIDERS: usize = 8;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RawStrategy {
    #[default]
    Cheapest,
    Fastest,
    Weighted,
    Ordered,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    #[serde(default)]
    pub strategy: RawStrategy,
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub breaker: RawBreaker,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub pin_header: Option<String>,
    #[serde(default = "default_header")]
    pub header: String,
    #[serde(default = "default_kong_property")]
    pub kong_property: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub upstream: String,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub cost: Option<RawRouteCost>,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBreaker {
    pub failures: u32,
    pub failure_rate: f64,
    pub min_requests: u32,
    pub window_s: u64,
    pub open_s: u64,
    pub probes: u32,
}

impl Default for RawBreaker {
    fn default() -> Self {
        let d = BreakerConfig::default();
        RawBreaker {
            failures: d.failures,
            failure_rate: d.failure_rate,
            min_requests: d.min_requests,
            window_s: d.window_ms / 1000,
            open_s: d.open_ms / 1000,
            probes: d.probes,
        }
    }
}

fn default_attempts() -> u32 {
    2
}

fn default_header() -> String {
    "x-optimizer-upstream".into()
}

fn default_kong_property() -> String {
    "kong.service.target".into()
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    /// Envoy: the cluster the route's `cluster_header` names. Kong: the
    /// value the `kong_property` is set to (a `host:port`, or an nginx
    /// upstream block).
    pub upstream: String,
    /// `ip:port` of its endpoints, to tell which provider answered when the
    /// host failed over (`upstream.address`).
    pub addresses: Vec<String>,
    /// Its prices (the rule's `cost` prices it when absent).
    pub cost: Option<RouteCost>,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub strategy: Strategy,
    pub providers: Vec<Provider>,
    pub breaker: BreakerConfig,
    /// Tries per request, the first included; the host makes the retries.
    pub max_attempts: u32,
    /// A trusted request header naming the provider to use (set by the
    /// gateway, never by clients): such a request is not rerouted.
    pub pin_header: Option<String>,
    /// Envoy: the request header the route's `cluster_header` reads.
    pub header: String,
    /// Kong: the property set to the provider's `upstream`.
    pub kong_property: String,
}

impl Routing {
    pub fn provider_named(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.name == name)
    }

    /// The provider whose endpoint has this `ip:port`.
    pub fn provider_at(&self, address: &str) -> Option<usize> {
        self.providers
            .iter()
            .position(|p| p.addresses.iter().any(|a| a == address))
    }
}

fn is_token(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || extra.contains(&b))
}

pub fn compile_routing(f: &str, raw: RawRouting, accounting: bool) -> Result<Routing, ConfigError> {
    if raw.providers.is_empty() || raw.providers.len() > MAX_PROVIDERS {
        return Err(ConfigError::at(
            format!("{f}.providers"),
            format!("must list 1..={MAX_PROVIDERS} providers"),
        ));
    }
    let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
    for (i, p) in raw.providers.into_iter().enumerate() {
        let pf = format!("{f}.providers[{i}]");
        // No dots: the name is one segment of metric names.
        if !is_token(&p.name, b"") || p.name.len() > 64 {
            return Err(ConfigError::at(
                format!("{pf}.name"),
                "must be 1..=64 of [A-Za-z0-9_-]",
            ));
        }
        if providers.iter().any(|q| q.name == p.name) {
            return Err(ConfigError::at(
                format!("{pf}.name"),
                format!("{:?} is listed twice", p.name),
            ));
        }
        if p.upstream.trim().is_empty() || p.upstream.contains(char::is_whitespace) {
            return Err(ConfigError::at(
                format!("{pf}.upstream"),
                "must name the upstream (Envoy: a cluster; Kong: what the property takes)",
            ));
        }
        for (j, a) in p.addresses.iter().enumerate() {
            let ok = a
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::at(
                    format!("{pf}.addresses[{j}]"),
                    format!("{a:?} is not ip:port"),
                ));
            }
        }
        let cost = match p.cost {
            None => None,
            Some(c) => {
                if c.budget.is_some() {
                    return Err(ConfigError::at(
                        format!("{pf}.cost.budget"),
                        "budgets belong to the rule's cost block, not a provider's",
                    ));
                }
                Some(compile_route_cost(
                    &format!("{pf}.cost"),
                    c,
                    &p.name,
                    accounting,
                )?)
            }
        };
        if p.weight > 1_000_000 {
            return Err(ConfigError::at(
                format!("{pf}.weight"),
                "must be 0..=1000000",
            ));
        }
        providers.push(Provider {
            name: p.name,
            upstream: p.upstream,
            addresses: p.addresses,
            cost,
            weight: p.weight,
        });
    }
    let strategy = match raw.strategy {
        RawStrategy::Cheapest => Strategy::Cheapest,
        RawStrategy::Fastest => Strategy::Fastest,
        RawStrategy::Weighted => Strategy::Weighted,
        RawStrategy::Ordered => Strategy::Ordered,
    };
    if strategy == Strategy::Weighted && providers.iter().all(|p| p.weight == 0) {
        return Err(ConfigError::at(
            format!("{f}.providers"),
            "weighted routing needs a provider with a weight above 0",
        ));
    }
    if strategy == Strategy::Cheapest && providers.iter().any(|p| p.cost.is_none()) {
        return Err(ConfigError::at(
            format!("{f}.strategy"),
            "cheapest needs a cost on every provider",
        ));
    }
    let b = raw.breaker;
    let bf = format!("{f}.breaker");
    let check = |ok: bool, field: &str, what: &str| -> Result<(), ConfigError> {
        if ok {
            Ok(())
        } else {
            Err(ConfigError::at(format!("{bf}.{field}"), what))
        }
    };
    check(
        (1..=1000).contains(&b.failures),
        "failures",
        "must be 1..=1000",
    )?;
    check(
        b.failure_rate.is_finite() && b.failure_rate > 0.0 && b.failure_rate <= 1.0,
        "failure_rate",
        "must be above 0 and at most 1",
    )?;
    check(
        (1..=100_000).contains(&b.min_requests),
        "min_requests",
        "must be 1..=100000",
    )?;
    check(
        (1..=3600).contains(&b.window_s),
        "window_s",
        "must be 1..=3600",
    )?;
    check((1..=3600).contains(&b.open_s), "open_s", "must be 1..=3600")?;
    check(
        (1..=MAX_PROBES as u32).contains(&b.probes),
        "probes",
        "must be 1..=8",
    )?;
    if !(1..=5).contains(&raw.max_attempts) {
        return Err(ConfigError::at(
            format!("{f}.max_attempts"),
            "must be 1..=5",
        ));
    }
    let header_ok = |h: &str| is_token(h, b"");
    if let Some(h) = &raw.pin_header {
        if !header_ok(h) {
            return Err(ConfigError::at(
                format!("{f}.pin_header"),
                format!("{h:?} is not a header name"),
            ));
        }
    }
    if !header_ok(&raw.header) {
        return Err(ConfigError::at(
            format!("{f}.header"),
            format!("{:?} is not a header name", raw.header),
        ));
    }
    if !is_token(&raw.kong_property, b".") {
        return Err(ConfigError::at(
            format!("{f}.kong_property"),
            "must be a property path such as kong.service.target or ngx.<variable>",
        ));
    }
    Ok(Routing {
        strategy,
        providers,
        breaker: BreakerConfig {
            failures: b.failures,
            failure_rate: b.failure_rate,
            min_requests: b.min_requests,
            window_ms: b.window_s * 1000,
            open_ms: b.open_s * 1000,
            probes: b.probes,
            ..BreakerConfig::default()
        },
        max_attempts: raw.max_attempts,
        pin_header: raw.pin_header.map(|h| h.to_ascii_lowercase()),
        header: raw.header.to_ascii_lowercase(),
        kong_property: raw.kong_property,
    })
}
