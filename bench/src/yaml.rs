//! Envoy configurations for the bench: one listener, the same HTTP
//! connection manager settings for every configuration (those the README
//! asks for with the filter), one upstream cluster; what differs is the
//! filter chain and whether the route proxies or answers directly.

use std::path::Path;

/// Ports the bench uses, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listen: u16,
    pub admin: u16,
    pub demo: u16,
    pub control: u16,
}

impl Ports {
    /// Fixed ports from `base` on: listener, admin, demo API, cost-control.
    pub fn from_base(base: u16) -> Ports {
        Ports {
            listen: base,
            admin: base + 1,
            demo: base + 2,
            control: base + 3,
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
}

/// What the one route does.
#[derive(Debug, Clone)]
pub enum Route {
    /// Proxy to the demo API.
    Proxy,
    /// `direct_response` 200 with this body.
    Direct(String),
}

pub fn render(ports: &Ports, wasm: &Path, filters: &Filters, route: &Route) -> String {
    let filters = match filters {
        Filters::None => String::new(),
        Filters::Wasm(config) => wasm_filter(wasm, config),
        Filters::SimpleHttpCache => CACHE_FILTER.to_string(),
    };
    let route = match route {
        Route::Proxy => "route: { cluster: demo_api, timeout: 60s }".to_string(),
        Route::Direct(body) => format!(
            "direct_response: {{ status: 200, body: {{ inline_string: '{}' }} }}",
            body.replace('\'', "''")
        ),
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
{demo}{control}"#,
        admin = ports.admin,
        listen = ports.listen,
        demo = cluster("demo_api", ports.demo),
        control = cluster("cost_control", ports.control),
    )
}

/// A cluster with circuit breakers far above any load here, so that
/// G's 1000 concurrent requests are never refused by Envoy's defaults
/// (1024 pending / requests).
fn cluster(name: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds:
      - {{ max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 }}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#
    )
}

const CACHE_FILTER: &str = r#"          - name: envoy.filters.http.cache
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig
"#;

fn wasm_filter(wasm: &Path, config: &serde_json::Value) -> String {
    format!(
        r#"          - name: cost_optimizer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: cost_optimizer
                root_id: cost_optimizer
                vm_config:
                  vm_id: cost_optimizer
                  runtime: envoy.wasm.runtime.v8
                  code:
                    local: {{ filename: "{wasm}" }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: |
                    {config}
"#,
        wasm = wasm.display(),
    )
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
        let f = render(&p, w, &Filters::SimpleHttpCache, &Route::Proxy);
        assert!(f.contains("simple_http_cache"));
    }
}
