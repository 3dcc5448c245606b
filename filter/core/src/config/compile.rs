//! From the JSON shape to the checked, ready-to-use config.

use super::accounting::{compile_accounting, Accounting};
use super::batch::{compile_route_batch, RouteBatch};
use super::cache::{compile_route_cache, compile_store, RouteCache, Store};
use super::coalesce::{
    compile_coalesce_store, compile_route_coalesce, CoalesceStore, RouteCoalesce,
};
use super::cost::{compile_route_cost, RouteCost};
use super::limit::{compile_limit_store, compile_route_limit, RouteLimit};
use super::raw::{Priority, RawConfig, RawHost, RawIdentity, RawRoute, RawSource};
use super::routing::{compile_routing, Routing};
use super::wake::{check_host, compile_wake, Wake};
use super::{ConfigError, SUPPORTED_VERSION};
use crate::host::HostKind;

/// The longest SLA a rule may ask for; beyond it a waiting request would
/// outlive most client and gateway timeouts.
const MAX_SLA_MS: u64 = 600_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub host: HostKind,
    pub identity: Identity,
    pub cache_store: Store,
    pub coalesce_store: CoalesceStore,
    /// Slots of the shared rate-limit table.
    pub limit_slots: u32,
    /// How counters reach the host (`metrics`).
    pub metrics: super::MetricsConfig,
    /// The link to `cost-control`; absent = costs are priced (metrics,
    /// headers) but not reported, and no rule may enforce a budget.
    pub accounting: Option<Accounting>,
    /// Where a waiting request is woken from on Kong (`wake`, else
    /// `accounting`'s cost-control); never used on Envoy.
    pub wake: Option<Wake>,
    /// A request carrying one of these headers neither reads nor feeds a
    /// shared answer (see `shared_answers.rs`).
    pub bypass_headers: Vec<String>,
    pub routes: Vec<Route>,
}

impl Config {
    /// Whether a request with these headers must stay away from shared
    /// answers (see `shared_answers.rs`).
    pub fn bypasses_sharing(&self, headers: &crate::header_list::HeaderList) -> bool {
        !self.bypass_headers.is_empty()
            && headers.iter().any(|(name, _)| {
                self.bypass_headers
                    .iter()
                    .any(|b| b.eq_ignore_ascii_case(name))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A request header, lowercase.
    Header(String),
    /// A claim of the verified JWT payload in dynamic metadata.
    JwtClaim(String),
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub tenant: Vec<Source>,
    pub service: Vec<Source>,
    pub jwt_namespace: String,
    pub jwt_payload_key: String,
    pub priority_header: String,
    pub priority_trusted: bool,
    pub request_id_header: String,
}

#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub prefix: String,
    /// Uppercase; empty = any method.
    pub methods: Vec<String>,
    /// Lowercase, without port; empty = any host.
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub sla_ms: u64,
    pub priority: Priority,
    pub require_tenant: bool,
    pub debug_headers: bool,
    pub cache: Option<RouteCache>,
    pub coalesce: Option<RouteCoalesce>,
    pub limit: Option<RouteLimit>,
    pub batch: Option<RouteBatch>,
    pub cost: Option<RouteCost>,
    pub routing: Option<Routing>,
    pub prompt: Option<super::RoutePrompt>,
}

pub(super) fn compile(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.version != SUPPORTED_VERSION {
        return Err(ConfigError::at(
            "version",
            format!(
                "unsupported version {}, this filter reads version {SUPPORTED_VERSION}",
                raw.version
            ),
        ));
    }
    let identity = compile_identity(raw.identity)?;
    let cache_store = compile_store(raw.cache_store)?;
    let coalesce_store = compile_coalesce_store(raw.coalesce_store)?;
    let limit_slots = compile_limit_store(raw.limit_store)?;
    let metrics = super::metrics::compile_metrics(raw.metrics)?;
    let accounting = raw.accounting.map(compile_accounting).transpose()?;
    let wake = raw.wake.map(compile_wake).transpose()?;
    let bypass_headers = super::shared_answers::compile_shared_answers(raw.shared_answers)?;
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.into_iter().enumerate() {
        let route = compile_route(
            &format!("routes[{i}]"),
            r,
            &cache_store,
            accounting.is_some(),
        )?;
        if routes.iter().any(|o| o.name == route.name) {
            return Err(ConfigError::at(
                format!("routes[{i}].name"),
                format!("duplicate route name {:?}", route.name),
            ));
        }
        routes.push(route);
    }
    let mut config = Config {
        host: match raw.host {
            RawHost::Envoy => HostKind::Envoy,
            RawHost::Kong => HostKind::Kong,
        },
        identity,
        cache_store,
        coalesce_store,
        limit_slots,
        metrics,
        accounting,
        wake: None,
        bypass_headers,
        routes,
    };
    config.wake = check_host(&config, wake)?;
    Ok(config)
}

fn compile_identity(raw: RawIdentity) -> Result<Identity, ConfigError> {
    let tenant = compile_sources("identity.tenant", raw.tenant)?;
    let service = compile_sources("identity.service", raw.service)?;
    non_empty("identity.jwt.namespace", &raw.jwt.namespace)?;
    non_empty("identity.jwt.payload_key", &raw.jwt.payload_key)?;
    let priority_header = header_name("identity.priority_header.name", &raw.priority_header.name)?;
    let request_id_header = header_name("identity.request_id_header", &raw.request_id_header)?;
    Ok(Identity {
        tenant,
        service,
        jwt_namespace: raw.jwt.namespace,
        jwt_payload_key: raw.jwt.payload_key,
        priority_header,
        priority_trusted: raw.priority_header.trusted,
        request_id_header,
    })
}

fn compile_sources(field: &str, raw: Vec<RawSource>) -> Result<Vec<Source>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| match s {
            RawSource::Header(h) => {
                header_name(&format!("{field}[{i}].header"), &h).map(Source::Header)
            }
            RawSource::JwtClaim(c) => {
                non_empty(&format!("{field}[{i}].jwt_claim"), &c)?;
                Ok(Source::JwtClaim(c))
            }
        })
        .collect()
}

fn compile_route(
    field: &str,
    raw: RawRoute,
    store: &Store,
    accounting: bool,
) -> Result<Route, ConfigError> {
    if raw.name.is_empty()
        || raw.name.len() > 64
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        // The name becomes part of metric names, so keep it to safe bytes.
        return Err(ConfigError::at(
            format!("{field}.name"),
            "must be 1-64 characters of [A-Za-z0-9_-]",
        ));
    }
    if !raw.matcher.prefix.starts_with('/') {
        return Err(ConfigError::at(
            format!("{field}.match.prefix"),
            "must start with '/'",
        ));
    }
    let mut methods = Vec::with_capacity(raw.matcher.methods.len());
    for (i, m) in raw.matcher.methods.iter().enumerate() {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ConfigError::at(
                format!("{field}.match.methods[{i}]"),
                format!("{m:?} is not an HTTP method"),
            ));
        }
        methods.push(m.to_ascii_uppercase());
    }
    let mut hosts = Vec::with_capacity(raw.matcher.hosts.len());
    for (i, h) in raw.matcher.hosts.iter().enumerate() {
        if h.is_empty() || h.contains(['/', ' ']) {
            return Err(ConfigError::at(
                format!("{field}.match.hosts[{i}]"),
                format!("{h:?} is not a host name"),
            ));
        }
        hosts.push(h.to_ascii_lowercase());
    }
    if raw.sla_ms == 0 {
        return Err(ConfigError::at(format!("{field}.sla_ms"), "must be > 0"));
    }
    if raw.sla_ms > MAX_SLA_MS {
        return Err(ConfigError::at(
            format!("{field}.sla_ms"),
            format!("must be <= {MAX_SLA_MS}"),
        ));
    }
    let cache = match raw.cache {
        Some(c) => Some(compile_route_cache(&format!("{field}.cache"), c, store)?),
        None => None,
    };
    let coalesce = match raw.coalesce {
        Some(c) => Some(compile_route_coalesce(
            &format!("{field}.coalesce"),
            c,
            raw.sla_ms,
        )?),
        None => None,
    };
    let limit = match raw.limit {
        Some(l) => Some(compile_route_limit(&format!("{field}.limit"), l)?),
        None => None,
    };
    let batch = match raw.batch {
        Some(b) => Some(compile_route_batch(
            &format!("{field}.batch"),
            b,
            raw.sla_ms,
        )?),
        None => None,
    };
    let cost = match raw.cost {
        Some(c) => Some(compile_route_cost(
            &format!("{field}.cost"),
            c,
            &raw.name,
            accounting,
        )?),
        None => None,
    };
    let routing = match raw.routing {
        None => None,
        Some(r) => {
            let rf = format!("{field}.routing");
            if batch.is_some() {
                return Err(ConfigError::at(
                    rf,
                    "not with batch: a batch call goes to batch.upstream",
                ));
            }
            let mut routing = compile_routing(&rf, r, accounting)?;
            // A probe whose answer never came frees its place once the
            // request could no longer be waiting for it.
            routing.breaker.probe_timeout_ms = (raw.sla_ms * 2).max(5_000);
            Some(routing)
        }
    };
    let prompt = match raw.prompt {
        None => None,
        Some(p) => {
            let pf = format!("{field}.prompt");
            if batch.is_some() {
                return Err(ConfigError::at(
                    pf,
                    "not with batch: a prompt is answered on its own",
                ));
            }
            if cache.as_ref().is_some_and(|c| c.default_ttl_ms.is_none()) {
                return Err(ConfigError::at(
                    format!("{field}.cache.default_ttl_s"),
                    "is required with `prompt`: a stored prompt answer lives this long",
                ));
            }
            Some(super::prompt::compile_route_prompt(&pf, p)?)
        }
    };
    Ok(Route {
        name: raw.name,
        matcher: RouteMatch {
            prefix: raw.matcher.prefix,
            methods,
            hosts,
        },
        sla_ms: raw.sla_ms,
        priority: raw.priority,
        require_tenant: raw.require_tenant,
        debug_headers: raw.debug_headers,
        cache,
        coalesce,
        limit,
        batch,
        cost,
        routing,
        prompt,
    })
}

fn non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        Err(ConfigError::at(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// A header name as HTTP/2 and Envoy want it: lowercase token characters.
pub(super) fn header_name(field: &str, value: &str) -> Result<String, ConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err(ConfigError::at(
            field,
            format!("{value:?} is not a header name"),
        ));
    }
    Ok(value.to_ascii_lowercase())
}
