//! The configurations `make bench` measures, as data: the filter chain,
//! the route, the load, what a probe request must show before a number
//! counts, and the filter features the configuration needs. A
//! configuration whose filter JSON the built filter refuses (it rejects
//! unknown fields, so a strategy that has not landed is refused) is
//! reported "not yet available", never measured with something else.
//!
//! To turn a configuration on when its strategy lands: make the JSON in
//! `strategy()` match the README's configuration reference. Nothing else.

use serde_json::{json, Value};

use crate::stack::Host;
use crate::yaml::{json_body, Aggregate, Filters, Ports, Route, Upstream};

/// Size of every answer measured in A–I.
pub const BODY_BYTES: usize = 1024;

/// Tenant header every bench request carries (the cache key includes it).
pub const TENANT: (&str, &str) = ("x-tenant-id", "bench");

/// The query every measured request carries: a 1 KiB body that stays
/// fresh for an hour (so nothing expires within a run).
pub const QUERY: &str = "size=1024&cache-control=max-age%3D3600";

/// A filter strategy that a configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Cache,
    Coalesce,
    Limit,
    Batch,
    Routing,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::Cache => "response cache",
            Feature::Coalesce => "in-flight coalescing",
            Feature::Limit => "rate limiting",
            Feature::Batch => "batching",
            Feature::Routing => "routing across providers",
        }
    }
}

/// The route-rule fragment that turns a strategy on. The cache's schema
/// is the one in `filter/core/src/config/cache.rs` (all defaults); the
/// others are placeholders until their issues land: the filter refuses
/// them today, which is what marks G, H and I "not yet available".
pub fn strategy(feature: Feature) -> (&'static str, Value) {
    match feature {
        Feature::Cache => ("cache", json!({})),
        Feature::Coalesce => ("coalesce", json!({})),
        // A bucket no bench load can empty: the limiter runs and passes.
        Feature::Limit => (
            "limit",
            json!({"by": "tenant", "token_bucket": {"capacity": 10_000_000, "refill_per_s": 10_000_000.0}}),
        ),
        Feature::Batch => (
            "batch",
            json!({"upstream": "demo_api", "path": "/api/batch", "format": "rest", "window_ms": 20, "max_size": 24}),
        ),
        // R's and RF's own JSON give the providers their addresses.
        Feature::Routing => ("routing", routing_block(&[], &[], None)),
    }
}

/// R's and RF's `routing`: the cheapest of `a` ($0.002) and `b` ($0.001),
/// so `b`; a breaker that needs 1000 failures in a row (the most the
/// filter allows) or a window of 100,000 requests all failing to open; and
/// each provider's endpoint addresses (how the filter tells which one
/// answered). `pin`: the header that pins a request to a provider.
pub fn routing_block(a: &[String], b: &[String], pin: Option<&str>) -> Value {
    let mut v = json!({
        "strategy": "cheapest", "max_attempts": 2,
        "breaker": {"failures": 1000, "failure_rate": 1.0, "min_requests": 100_000,
                    "window_s": 3600, "open_s": 1, "probes": 1},
        "providers": [
            {"name": "a", "upstream": "via_a", "addresses": a, "cost": {"cost_per_call": "0.002"}},
            {"name": "b", "upstream": "via_b", "addresses": b, "cost": {"cost_per_call": "0.001"}}]
    });
    if let Some(h) = pin {
        v["pin_header"] = json!(h);
    }
    v
}

/// The header RF's requests carry to pin them to provider `b`. A pinned
/// request skips the breakers and records nothing in `b`'s; unpinned,
/// every failover is a failure of `b`, whose breaker opens after 1000 in
/// a row, and from then on requests go to `a` without failing over.
pub const PIN: (&str, &str) = ("x-bench-pin", "b");

/// Envoy's counter of the requests R's and RF's rule saw answered by
/// another provider than the one it chose.
pub const FAILOVERS_COUNTER: &str = "wasmcustom.cost_optimizer.route.items.routing.failovers";

/// Envoy's counters of the answers R's and RF's rule recorded as a
/// provider's failure (a 5xx, or no status): none in either, every answer
/// being the demo API's 200.
pub const PROVIDER_FAILURES: [&str; 2] = [
    "wasmcustom.cost_optimizer.route.items.routing.provider.a.failures",
    "wasmcustom.cost_optimizer.route.items.routing.provider.b.failures",
];

/// The price on the rule of R0, R and RF. Needed by R and RF: the filter
/// reads the upstream's response headers only for a rule that caches,
/// coalesces or is priced, so a routed rule with none of these sees every
/// answer without a status and records it as its provider's failure, and
/// the breakers open within the warm-up. R0 has it too, so R/R0 compares
/// rules that differ only by `routing`.
pub const ROUTED_RULE_COST: &str = "0.002";

/// The rule of R0 (`routing`: `None`), R and RF.
fn items_rule(routing: Option<Value>) -> Value {
    let mut rule = json!({"name": "items", "match": {"prefix": "/api/items/"}, "sla_ms": 5000,
                          "cost": {"cost_per_call": ROUTED_RULE_COST}});
    if let Some(r) = routing {
        rule["routing"] = r;
    }
    // R and RF read the routing counters around each measured run for
    // their verdicts, so the filter sends them at once instead of holding
    // them for a second (`metrics.flush_ms`); R0 the same, so R/R0
    // compares routing alone.
    json!({
        "version": 1,
        "identity": {"tenant": [{"header": TENANT.0}]},
        "metrics": {"flush_ms": 0},
        "routes": [rule]
    })
}

/// R (`refused_first`: false) and RF (true): the rule `items` routing
/// between `a` and `b`, and the route with the aggregate clusters of both
/// providers. One demo API serves both, so its address can name only one
/// provider: `b` in R (b answers every request), `a` in RF (b's first
/// cluster refuses every connection, the retry reaches the demo API
/// through a's). RF pins its requests to `b`: see [`PIN`].
pub fn routed(ports: &Ports, refused_first: bool) -> (Filters, Route) {
    let demo = vec![format!("127.0.0.1:{}", ports.demo)];
    let refused = vec![format!("127.0.0.1:{}", ports.refused)];
    let (a, b, pin, via_b) = if refused_first {
        (
            demo,
            refused,
            Some(PIN.0),
            [Upstream::Refused, Upstream::Demo],
        )
    } else {
        (vec![], demo, None, [Upstream::Demo, Upstream::DemoTwin])
    };
    let filter = items_rule(Some(routing_block(&a, &b, pin)));
    let route = Route::Routed(vec![
        Aggregate {
            name: "via_a",
            clusters: [Upstream::DemoTwin, Upstream::Demo],
        },
        Aggregate {
            name: "via_b",
            clusters: via_b,
        },
    ]);
    (Filters::Wasm(filter), route)
}

/// The filter's JSON: tenant from `x-tenant-id`, one rule named `name`
/// on `prefix` with the given strategies on.
pub fn filter_json(name: &str, prefix: &str, features: &[Feature]) -> Value {
    let mut rule = json!({"name": name, "match": {"prefix": prefix}, "sla_ms": 5000});
    for f in features {
        let (key, value) = strategy(*f);
        rule[key] = value;
    }
    json!({
        "version": 1,
        "identity": {"tenant": [{"header": TENANT.0}]},
        "routes": [rule]
    })
}

/// Which paths the load generator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `/api/items/1?…` every time (hit configurations and their ceiling).
    Same,
    /// `/api/items/<unique>?…`: a new key per request, so nothing is ever
    /// a cache hit or a coalesced follower (miss and pass-through paths).
    Unique,
}

impl Load {
    pub fn describe(self) -> &'static str {
        match self {
            Load::Same => "same URL",
            Load::Unique => "unique URLs",
        }
    }
}

/// What a probe request (sent twice, the second one checked) must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 200 with the 1 KiB body.
    Ok,
    /// As `Ok`, and the filter answered from its cache (`x-cache: HIT`).
    FilterHit,
    /// As `Ok`, and the filter went upstream (`x-cache: MISS`).
    FilterMiss,
    /// As `Ok`, and Envoy's cache answered (`age` header present).
    EnvoyHit,
    /// As `Ok`, and the filter says this provider answered
    /// (`x-optimizer-provider`).
    Provider(&'static str),
}

/// The upstream calls a configuration's measured run must make (the demo
/// API's count around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// One per request (unique URLs, nothing answered before the
    /// upstream): at least one for each request completed, at most two
    /// connections' worth more (requests cut short at the run's ends).
    OneEach,
    /// None at all: every request answered inside the gateway (a cache
    /// hit, `direct_response`, a local reply).
    None,
}

/// What the filter's failover counter ([`FAILOVERS_COUNTER`]) must show
/// over a measured run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failovers {
    /// No request failed over.
    None,
    /// Every request did.
    Every,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub id: &'static str,
    pub host: Host,
    pub title: String,
    pub filters: Filters,
    pub route: Route,
    pub load: Load,
    pub expect: Expect,
    pub needs: Vec<Feature>,
    /// Its requests are priced and reported to cost-control: each round
    /// waits for the ledger to hold them before Envoy is stopped.
    pub priced: bool,
    /// Headers every request carries besides the tenant's (probe and wrk).
    pub headers: &'static [(&'static str, &'static str)],
    /// The upstream calls the demo API must count over the measured run,
    /// else the round fails.
    pub calls: Calls,
    /// The round fails unless the filter's failover counter shows this.
    pub failovers: Option<Failovers>,
}

impl Config {
    /// An Envoy configuration that needs no filter feature, prices
    /// nothing and adds no header; its upstream calls: one per request on
    /// unique URLs, none on the same URL (every configuration here).
    fn envoy(
        id: &'static str,
        title: &str,
        filters: Filters,
        route: Route,
        load: Load,
        expect: Expect,
    ) -> Config {
        Config {
            id,
            host: Host::Envoy,
            title: title.to_string(),
            filters,
            route,
            load,
            expect,
            needs: vec![],
            priced: false,
            headers: &[],
            calls: match load {
                Load::Unique => Calls::OneEach,
                Load::Same => Calls::None,
            },
            failovers: None,
        }
    }
}

/// A–I and R0–RF, then KA–KI, in the order they run within a round.
/// `supported`:
/// the strategies of [`I_FEATURES`] the built filter accepts; I turns on
/// those (the title says which), and is unavailable while the cache is
/// not among them. `wake`: the `host:port` of the cost-control that a
/// request parked on Kong wakes itself through. `ports`: the demo API's
/// and the refused port's, which R's and RF's providers list.
pub fn throughput_configs(supported: &[Feature], wake: &str, ports: &Ports) -> Vec<Config> {
    let i_on: Vec<Feature> = I_FEATURES
        .iter()
        .copied()
        .filter(|f| supported.contains(f))
        .collect();
    let i_off: Vec<&str> = I_FEATURES
        .iter()
        .filter(|f| !supported.contains(f))
        .map(|f| f.name())
        .collect();
    let i_title =
        if i_off.is_empty() {
            "filter, every strategy on, none applying (miss, leader, limiter pass)".to_string()
        } else {
            let on: Vec<&str> = i_on.iter().map(|f| f.name()).collect();
            format!(
            "filter, every strategy it has on, none applying — on: {}; not yet in the filter: {}",
            if on.is_empty() { "none".to_string() } else { on.join(", ") },
            i_off.join(", ")
        )
        };
    let i_needs = if i_on.contains(&Feature::Cache) {
        i_on.clone()
    } else {
        I_FEATURES.to_vec()
    };
    let proxy = Route::Proxy;
    let items = |features: &[Feature]| Filters::Wasm(filter_json("items", "/api/items/", features));
    let (r_filters, r_route) = routed(ports, false);
    let (rf_filters, rf_route) = routed(ports, true);
    let envoy = vec![
        Config::envoy(
            "A",
            "Envoy proxying to the demo API, no filter",
            Filters::None,
            proxy.clone(),
            Load::Unique,
            Expect::Ok,
        ),
        Config::envoy(
            "B",
            "Envoy direct_response (ceiling for an answer made in Envoy)",
            Filters::None,
            Route::Direct(json_body(BODY_BYTES)),
            Load::Same,
            Expect::Ok,
        ),
        Config::envoy(
            "C",
            "filter loaded, request matching no rule",
            Filters::Wasm(filter_json("other", "/other/", &[])),
            proxy.clone(),
            Load::Unique,
            Expect::Ok,
        ),
        Config::envoy(
            "CR",
            "filter loaded, disabled on the request's route (Envoy's per-route FilterConfig)",
            Filters::Wasm(filter_json("other", "/other/", &[])),
            Route::ProxyFilterOff,
            Load::Unique,
            Expect::Ok,
        ),
        Config::envoy(
            "T",
            "the floor filter (the SDK, every hook Continue): what any wasm filter costs per stream",
            Filters::Floor("pass"),
            proxy.clone(),
            Load::Unique,
            Expect::Ok,
        ),
        Config::envoy(
            "TP",
            "the floor filter reading `:path` once, every hook Continue: the least a filter with path rules does to a request none of them matches",
            Filters::Floor("pass:header:1"),
            proxy.clone(),
            Load::Unique,
            Expect::Ok,
        ),
        Config::envoy(
            "TD",
            "the floor filter answering every request with a 1 KiB local reply",
            Filters::Floor("reply"),
            proxy.clone(),
            Load::Same,
            Expect::Ok,
        ),
        Config::envoy(
            "PG",
            "the floor filter's reply after 20 shared-data reads (37 bytes each): the price of a host call that returns bytes",
            Filters::Floor("reply:shared_get"),
            proxy.clone(),
            Load::Same,
            Expect::Ok,
        ),
        Config::envoy(
            "PS",
            "the floor filter's reply after 20 shared-data writes (37 bytes each): the price of a host call that passes bytes in",
            Filters::Floor("reply:shared_set"),
            proxy.clone(),
            Load::Same,
            Expect::Ok,
        ),
        Config::envoy(
            "PA",
            "the floor filter's reply after adding a request header 20 times: the price of a host call that passes bytes in",
            Filters::Floor("reply:add_header"),
            proxy.clone(),
            Load::Same,
            Expect::Ok,
        ),
        Config {
            needs: vec![Feature::Cache],
            ..Config::envoy(
                "D",
                "filter, every request a cache hit",
                items(&[Feature::Cache]),
                proxy.clone(),
                Load::Same,
                Expect::FilterHit,
            )
        },
        Config::envoy(
            "F",
            "Envoy's cache filter (simple_http_cache), every request a hit",
            Filters::SimpleHttpCache,
            proxy.clone(),
            Load::Same,
            Expect::EnvoyHit,
        ),
        Config {
            priced: true,
            ..Config::envoy(
                "J",
                "filter, every request priced, budgeted and reported to cost-control",
                Filters::Wasm(accounting_filter()),
                proxy.clone(),
                Load::Unique,
                Expect::Ok,
            )
        },
        Config {
            needs: i_needs.clone(),
            ..Config::envoy(
                "I",
                &i_title,
                items(&i_needs),
                proxy.clone(),
                Load::Unique,
                Expect::FilterMiss,
            )
        },
        Config {
            ..Config::envoy(
                "R0",
                "filter, the request matching a priced rule with no strategy (R's baseline)",
                Filters::Wasm(items_rule(None)),
                proxy,
                Load::Unique,
                Expect::Ok,
            )
        },
        Config {
            needs: vec![Feature::Routing],
            failovers: Some(Failovers::None),
            ..Config::envoy(
                "R",
                "filter routing to the cheaper of two providers (cluster_header, aggregate clusters, retry policy)",
                r_filters,
                r_route,
                Load::Unique,
                Expect::Provider("b"),
            )
        },
        Config {
            needs: vec![Feature::Routing],
            headers: &[PIN],
            failovers: Some(Failovers::Every),
            ..Config::envoy(
                "RF",
                "as R, every request failing over: b's first cluster refuses the connection, the retry reaches a",
                rf_filters,
                rf_route,
                Load::Unique,
                Expect::Provider("a"),
            )
        },
    ];
    let kong = kong_configs(&envoy, wake);
    envoy.into_iter().chain(kong).collect()
}

/// The Kong twins of A, B, C, D and I: the same filter JSON with
/// `"host": "kong"` and a wake target, the same route and load, on Kong's
/// engine. (F is Envoy's own cache, J needs Envoy's counters, R0–RF are
/// measured on Envoy only.)
fn kong_configs(envoy: &[Config], wake: &str) -> Vec<Config> {
    KONG_TWINS
        .iter()
        .filter_map(|(id, of)| {
            let c = envoy.iter().find(|c| c.id == *of)?;
            let filters = match &c.filters {
                Filters::Wasm(v) => Filters::Wasm(for_kong(v, wake)),
                other => other.clone(),
            };
            let title = match c.id {
                "A" => "Kong's engine (nginx) proxying to the demo API, no filter".to_string(),
                "B" => "Kong's engine answering itself (`return 200`; ceiling for an answer made in nginx)".to_string(),
                _ => format!("Kong: {}", c.title),
            };
            Some(Config {
                id,
                host: Host::Kong,
                title,
                filters,
                ..c.clone()
            })
        })
        .collect()
}

/// Each Kong configuration and the Envoy one it mirrors.
pub const KONG_TWINS: [(&str, &str); 5] = [
    ("KA", "A"),
    ("KB", "B"),
    ("KC", "C"),
    ("KD", "D"),
    ("KI", "I"),
];

/// A filter JSON for Kong's engine: `"host": "kong"` and `wake`, the
/// `host:port` of the cost-control a parked request calls to be woken
/// (required on Kong when a rule can park a request; unused otherwise).
pub fn for_kong(filter: &Value, wake: &str) -> Value {
    let mut v = filter.clone();
    v["host"] = json!("kong");
    v["wake"] = json!({"target": wake});
    v
}

/// Tenant J's spend is reported under (the ledger check reads it back).
pub const J_TENANT: &str = TENANT.1;

/// J's price per call, as in its filter JSON and in micro-dollars: the
/// ledger's cost divided by it is the number of requests priced, exact
/// even when the filter folded events into sums.
pub const J_COST_PER_CALL: &str = "0.002";
pub const J_COST_PER_CALL_MICROS: i64 = 2_000;

/// J: one rule on `/api/items/` with a price and a budget, and the link to
/// cost-control (which runs during the bench, with no budget set for the
/// tenant, so every lease is granted; a large lease keeps leasing rare).
pub fn accounting_filter() -> Value {
    json!({
        "version": 1,
        "identity": {"tenant": [{"header": TENANT.0}]},
        "accounting": {"cost_control": "cost_control", "token": "gateway-dev-token",
                       "gateway_id": "bench", "flush_ms": 1000,
                       "budgets": {"lease": "100"}},
        "routes": [{"name": "items", "match": {"prefix": "/api/items/"}, "sla_ms": 5000,
                    "cost": {"cost_per_call": J_COST_PER_CALL, "budget": {}}}]
    })
}

/// Strategies that apply to a single GET and are on in I. Batching is
/// left out: it would hold every request for its window by design.
pub const I_FEATURES: [Feature; 3] = [Feature::Cache, Feature::Coalesce, Feature::Limit];

/// G: the filter coalescing `/api/items/`, without a cache, so that every
/// answer but the leaders' says `x-cache: COALESCED` and none can be a
/// cache hit.
pub fn coalescing_filter() -> Filters {
    Filters::Wasm(filter_json("items", "/api/items/", &[Feature::Coalesce]))
}

/// H: the filter batching `/api/quotes/` into the demo API's REST batch.
pub fn batching_filter() -> Filters {
    Filters::Wasm(filter_json("quotes", "/api/quotes/", &[Feature::Batch]))
}

/// Baseline for G and H: the filter loaded, no rule matching.
pub fn baseline_filter() -> Filters {
    Filters::Wasm(filter_json("other", "/other/", &[]))
}

/// The ratios the issues ask for: (numerator, denominator, goal). On Kong
/// the same comparisons within the host (a hit against the ceiling of the
/// same load: KD/KB), then each Kong configuration against its Envoy twin.
pub const RATIOS: [(&str, &str, f64); 21] = [
    ("D", "F", 1.0),
    ("D", "B", 0.0),
    ("C", "A", 0.95),
    ("CR", "A", 0.95),
    ("T", "A", 0.0),
    ("C", "T", 0.95),
    ("C", "TP", 0.95),
    ("TD", "B", 0.0),
    ("D", "TD", 0.0),
    ("I", "A", 0.88),
    ("J", "C", 0.0),
    ("J", "A", 0.0),
    ("R", "R0", 0.0),
    ("KD", "KB", 0.0),
    ("KC", "KA", 0.0),
    ("KI", "KA", 0.0),
    ("KA", "A", 0.0),
    ("KB", "B", 0.0),
    ("KC", "C", 0.0),
    ("KD", "D", 0.0),
    ("KI", "I", 0.0),
];

/// W: identical requests on a coalescing route with no cache, so every
/// round's followers wait for their leader's answer.
pub fn wake_filter() -> Value {
    json!({
        "version": 1,
        "identity": {"tenant": [{"header": TENANT.0}]},
        "routes": [{"name": "live", "match": {"prefix": "/api/live/"}, "sla_ms": 5000,
                    "coalesce": {"grace_ms": 5000}}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_json_puts_strategies_on_the_rule() {
        let v = filter_json("items", "/api/items/", &[Feature::Cache, Feature::Limit]);
        let rule = &v["routes"][0];
        assert_eq!(rule["cache"], json!({}));
        assert!(rule["limit"]["token_bucket"].is_object());
        assert_eq!(rule["match"]["prefix"], "/api/items/");
    }

    #[test]
    fn j_price_in_micros_matches_its_json() {
        let v = accounting_filter();
        let text = v["routes"][0]["cost"]["cost_per_call"].as_str().unwrap();
        let micros = (text.parse::<f64>().unwrap() * 1e6).round() as i64;
        assert_eq!(micros, J_COST_PER_CALL_MICROS);
        let cs = throughput_configs(&[], "127.0.0.1:1", &Ports::from_base(19000));
        let priced: Vec<_> = cs.iter().filter(|c| c.priced).map(|c| c.id).collect();
        assert_eq!(priced, vec!["J"]);
    }

    #[test]
    fn every_configuration_checks_its_upstream_calls() {
        let cs = throughput_configs(&I_FEATURES, "127.0.0.1:1", &Ports::from_base(19000));
        let calls = |id: &str| cs.iter().find(|c| c.id == id).unwrap().calls;
        for id in [
            "A", "C", "CR", "I", "J", "T", "R0", "R", "RF", "KA", "KC", "KI",
        ] {
            assert_eq!(calls(id), Calls::OneEach, "{id}");
        }
        for id in ["B", "D", "F", "TD", "PG", "PS", "PA", "KB", "KD"] {
            assert_eq!(calls(id), Calls::None, "{id}");
        }
    }

    #[test]
    fn ids_are_unique() {
        let cs = throughput_configs(&[Feature::Cache], "127.0.0.1:1", &Ports::from_base(19000));
        let i = cs.iter().find(|c| c.id == "I").unwrap();
        assert_eq!(i.needs, vec![Feature::Cache]);
        assert!(i.title.contains("not yet in the filter"));
        let all = throughput_configs(&I_FEATURES, "127.0.0.1:1", &Ports::from_base(19000));
        let i = all.iter().find(|c| c.id == "I").unwrap();
        assert_eq!(i.needs, I_FEATURES.to_vec());
        let mut ids: Vec<_> = cs.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), cs.len());
    }

    #[test]
    fn routed_configs_tell_the_answering_provider_by_address() {
        let cs = throughput_configs(&I_FEATURES, "127.0.0.1:1", &Ports::from_base(19000));
        let get = |id: &str| cs.iter().find(|c| c.id == id).unwrap().clone();
        let rule = |c: &Config| match &c.filters {
            Filters::Wasm(v) => v["routes"][0].clone(),
            other => panic!("{other:?}"),
        };
        let (r0, r, rf) = (get("R0"), get("R"), get("RF"));
        // The same rule, with and without routing.
        let mut bare = rule(&r);
        let routing = bare.as_object_mut().unwrap().remove("routing").unwrap();
        assert_eq!(bare, rule(&r0));
        assert_eq!(bare["cost"]["cost_per_call"], ROUTED_RULE_COST);
        let addresses = |v: &Value, i: usize| v["providers"][i]["addresses"].clone();
        // R: the demo API is b's; RF: a's, b's the refused port.
        assert_eq!(addresses(&routing, 0), json!([]));
        assert_eq!(addresses(&routing, 1), json!(["127.0.0.1:19002"]));
        let rf_routing = &rule(&rf)["routing"];
        assert_eq!(addresses(rf_routing, 0), json!(["127.0.0.1:19002"]));
        assert_eq!(addresses(rf_routing, 1), json!(["127.0.0.1:19004"]));
        assert_eq!(
            (rf_routing["pin_header"].as_str(), rf.headers),
            (Some(PIN.0), &[PIN][..])
        );
        assert!(routing.get("pin_header").is_none() && r.headers.is_empty());
        assert!(rf.route.uses_refused() && !r.route.uses_refused());
        assert_eq!(
            (r.expect, rf.expect),
            (Expect::Provider("b"), Expect::Provider("a"))
        );
        assert_eq!(
            (r0.failovers, r.failovers, rf.failovers),
            (None, Some(Failovers::None), Some(Failovers::Every))
        );
        assert!([&r0, &r, &rf].iter().all(|c| c.calls == Calls::OneEach));
        assert!(RATIOS.iter().any(|(n, d, _)| (*n, *d) == ("R", "R0")));
    }

    #[test]
    fn kong_twins_share_route_and_load_and_say_kong() {
        let cs = throughput_configs(&I_FEATURES, "127.0.0.1:19003", &Ports::from_base(19000));
        for (k, e) in KONG_TWINS {
            let (k, e) = (
                cs.iter().find(|c| c.id == k).unwrap(),
                cs.iter().find(|c| c.id == e).unwrap(),
            );
            assert_eq!((k.host, e.host), (Host::Kong, Host::Envoy));
            assert_eq!((k.load, k.expect, &k.needs), (e.load, e.expect, &e.needs));
            match (&k.filters, &e.filters) {
                (Filters::Wasm(kv), Filters::Wasm(ev)) => {
                    assert_eq!(kv["host"], "kong");
                    assert_eq!(kv["wake"]["target"], "127.0.0.1:19003");
                    assert_eq!(kv["routes"], ev["routes"]);
                }
                (Filters::None, Filters::None) => {}
                other => panic!("{other:?}"),
            }
        }
        for (n, d, _) in RATIOS {
            assert!(cs.iter().any(|c| c.id == n) && cs.iter().any(|c| c.id == d));
        }
    }
}
