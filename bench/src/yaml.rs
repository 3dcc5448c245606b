//! Envoy configurations for the bench: one listener, the same HTTP
//! connection manager settings for every configuration (those the README
//! asks for with the filter), one upstream cluster (more for routing);
//! what differs is the filter chain and whether the route proxies, answers
//! directly or goes where the filter's routing sends it.

use std::path::Path;

/// Ports the bench uses, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listen: u16,
    pub admin: u16,
    pub demo: u16,
    pub control: u16,
    /// Where nothing listens (the bench checks it is free at its start and
    /// before each round that needs it): RF's provider whose every
    /// connection is refused.
    pub refused: u16,
}

impl Ports {
    /// Fixed ports from `base` on: listener, admin, demo API, cost-control,
    /// the refused port.
    pub fn from_base(base: u16) -> Ports {
        Ports {
            listen: base,
            admin: base + 1,
            demo: base + 2,
            control: base + 3,
            refused: base + 4,
        }
    }
}

/// The HTTP filters before the router.
#[derive(Debug, Clone)]
pub enum Filters {
    None,
    /// The cost optimizer with this JSON configuration.
    Wasm(serde_json::Value),
    /// Envoy's cache filter with the in-memory `simple_http_cache`.
    SimpleHttpCache,
    /// The bench's floor filter (`bench/floor-filter`) with this mode:
    /// `pass` or `reply`.
    Floor(&'static str),
}

/// What the one route does.
#[derive(Debug, Clone)]
pub enum Route {
    /// Proxy to the demo API.
    Proxy,
    /// Proxy to the demo API with the filter disabled on the route
    /// (Envoy's per-route `FilterConfig`): Envoy does not create the
    /// filter for these requests at all.
    ProxyFilterOff,
    /// `direct_response` 200 with this body.
    Direct(String),
    /// To the cluster the filter's routing names in `x-optimizer-upstream`
    /// (these aggregate clusters), with one retry on a 5xx, a reset or a
    /// connection failure to the aggregate cluster's next priority (the
    /// shape of `envoy/envoy.yaml`'s `/api/search/` route).
    Routed(Vec<Aggregate>),
}

impl Route {
    /// Whether a cluster of this route is the refused port.
    pub fn uses_refused(&self) -> bool {
        match self {
            Route::Routed(aggregates) => aggregates
                .iter()
                .any(|a| a.clusters.contains(&Upstream::Refused)),
            _ => false,
        }
    }
}

/// A static cluster an aggregate cluster can list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// `demo_api`: the demo API.
    Demo,
    /// `demo_api_2`: the demo API again, as its own cluster (an aggregate
    /// cluster lists distinct clusters).
    DemoTwin,
    /// `refused`: 127.0.0.1 on [`Ports::refused`], where every connection
    /// is refused.
    Refused,
}

impl Upstream {
    pub fn cluster(self) -> &'static str {
        match self {
            Upstream::Demo => "demo_api",
            Upstream::DemoTwin => "demo_api_2",
            Upstream::Refused => "refused",
        }
    }
}

/// An aggregate cluster: its first cluster (priority 0), then the one a
/// retry goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub name: &'static str,
    pub clusters: [Upstream; 2],
}

/// The route of CR: the demo API, with the filter named `cost_optimizer`
/// disabled for it (indented for the route's place in the template).
const FILTER_OFF: &str = "route: { cluster: demo_api, timeout: 60s }
                typed_per_filter_config:
                  cost_optimizer:
                    \"@type\": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true";

pub fn render(ports: &Ports, wasm: &Path, filters: &Filters, route: &Route) -> String {
    let filters = match filters {
        Filters::None => String::new(),
        Filters::Wasm(config) => e2e::envoy_config::wasm_filter(wasm, config),
        Filters::SimpleHttpCache => CACHE_FILTER.to_string(),
        Filters::Floor(mode) => {
            e2e::envoy_config::wasm_filter(&floor_wasm(wasm), &serde_json::json!(mode))
        }
    };
    let routed = match route {
        Route::Routed(aggregates) => {
            let mut c = cluster("demo_api_2", ports.demo);
            c.push_str(&cluster("refused", ports.refused));
            for a in aggregates {
                c.push_str(&aggregate(a));
            }
            c
        }
        _ => String::new(),
    };
    let route = match route {
        Route::Proxy => "route: { cluster: demo_api, timeout: 60s }".to_string(),
        Route::ProxyFilterOff => FILTER_OFF.to_string(),
        Route::Direct(body) => format!(
            "direct_response: {{ status: 200, body: {{ inline_string: '{}' }} }}",
            body.replace('\'', "''")
        ),
        Route::Routed(_) => ROUTED.to_string(),
    };
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
static_resources:
  listeners:
  - name: bench
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          generate_request_id: false
          normalize_path: true
          merge_slashes: true
          route_config:
            name: local
            virtual_hosts:
            - name: api
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                {route}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{demo}{control}{routed}"#,
        admin = ports.admin,
        listen = ports.listen,
        demo = cluster("demo_api", ports.demo),
        control = cluster("cost_control", ports.control),
    )
}

/// The routed route: the cluster from the filter's header, one retry
/// after a jittered 0–10 ms back-off, to the next priority.
const ROUTED: &str = r#"route:
                  cluster_header: x-optimizer-upstream
                  timeout: 30s
                  retry_policy:
                    retry_on: "5xx,reset,connect-failure"
                    num_retries: 1
                    retry_priority:
                      name: envoy.retry_priorities.previous_priorities
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig
                        update_frequency: 1
                    retry_back_off: { base_interval: 0.01s, max_interval: 0.1s }"#;

/// Circuit breakers far above any load here, so that G's 1000 concurrent
/// requests are never refused by Envoy's defaults (1024 pending /
/// requests), nor RF's retries (32 at once; the default is 3 retries
/// outstanding per cluster, beyond which a retry is not made and the
/// failure is the answer).
const CIRCUIT_BREAKERS: &str = "    circuit_breakers:
      thresholds:
      - { max_connections: 100000, max_pending_requests: 100000, max_requests: 100000, max_retries: 100000 }
";

/// A static cluster of one endpoint on 127.0.0.1: the e2e harness's
/// (`e2e::envoy_config::cluster`) with the bench's circuit breakers
/// added (that one has none, and its tests rely on Envoy's defaults).
fn cluster(name: &str, port: u16) -> String {
    let plain = e2e::envoy_config::cluster(name, port);
    let at = "    load_assignment:\n";
    debug_assert!(plain.contains(at));
    plain.replacen(at, &format!("{CIRCUIT_BREAKERS}{at}"), 1)
}

/// An aggregate cluster (Envoy checks a retry against the circuit
/// breakers of the route's cluster, this one).
fn aggregate(a: &Aggregate) -> String {
    format!(
        r#"  - name: {name}
    connect_timeout: 1s
    lb_policy: CLUSTER_PROVIDED
{CIRCUIT_BREAKERS}    cluster_type:
      name: envoy.clusters.aggregate
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig
        clusters: [{first}, {then}]
"#,
        name = a.name,
        first = a.clusters[0].cluster(),
        then = a.clusters[1].cluster(),
    )
}

const CACHE_FILTER: &str = r#"          - name: envoy.filters.http.cache
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig
"#;

/// The floor filter's module: built by `scripts/bench.sh` next to the
/// optimizer's.
pub fn floor_wasm(wasm: &Path) -> std::path::PathBuf {
    wasm.with_file_name("floor_filter.wasm")
}

/// A JSON body of exactly `size` bytes shaped like the demo API's answer.
pub fn json_body(size: usize) -> String {
    let head = r#"{"resource":"items","id":"1","provider":"direct","call":0,"pad":""#;
    let tail = "\"}";
    let fill = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(fill))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_size() {
        assert_eq!(json_body(1024).len(), 1024);
        assert!(serde_json::from_str::<serde_json::Value>(&json_body(1024)).is_ok());
    }

    #[test]
    fn clusters_are_the_harness_ones_with_circuit_breakers() {
        let want = format!(
            "  - name: demo_api\n    type: STATIC\n    connect_timeout: 1s\n{CIRCUIT_BREAKERS}    load_assignment:\n      cluster_name: demo_api\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: 19002 }} }} }}\n"
        );
        assert_eq!(cluster("demo_api", 19002), want);
    }

    #[test]
    fn renders_each_shape() {
        let p = Ports::from_base(19000);
        let w = Path::new("/x.wasm");
        let a = render(&p, w, &Filters::None, &Route::Proxy);
        assert!(a.contains("port_value: 19000") && a.contains("cluster: demo_api"));
        let b = render(&p, w, &Filters::None, &Route::Direct(json_body(64)));
        assert!(b.contains("direct_response"));
        let c = render(
            &p,
            w,
            &Filters::Wasm(serde_json::json!({"version": 1})),
            &Route::Proxy,
        );
        assert!(c.contains("{\"version\":1}"));
        let off = render(
            &p,
            w,
            &Filters::Wasm(serde_json::json!({"version": 1})),
            &Route::ProxyFilterOff,
        );
        assert!(off.contains(
            "                typed_per_filter_config:\n                  cost_optimizer:\n"
        ));
        assert!(off.contains("- name: cost_optimizer") && off.contains("disabled: true"));
        let f = render(&p, w, &Filters::SimpleHttpCache, &Route::Proxy);
        assert!(f.contains("simple_http_cache"));
        let route = Route::Routed(vec![Aggregate {
            name: "via_b",
            clusters: [Upstream::Refused, Upstream::Demo],
        }]);
        assert!(route.uses_refused() && !Route::Proxy.uses_refused());
        let r = render(&p, w, &Filters::None, &route);
        assert!(r.contains("cluster_header: x-optimizer-upstream"));
        assert!(r.contains("clusters: [refused, demo_api]"));
        assert!(r.contains("port_value: 19004") && r.contains("- name: demo_api_2"));
        assert_eq!(r.matches("max_retries: 100000").count(), 5);
    }
}
