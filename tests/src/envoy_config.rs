//! Envoy configurations for end-to-end tests: one listener with the filter
//! (optionally behind `jwt_authn`), optionally a second listener without
//! it for byte-for-byte comparisons, and the demo clusters. Also renders
//! the shipped `envoy/envoy.yaml` onto the test's ports.

use std::path::Path;

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listen: u16,
    pub admin: u16,
    /// Listener without the filter (same routes), for comparisons.
    pub plain: u16,
    pub demo: u16,
    pub demo_b: u16,
    pub control: u16,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The filter's JSON configuration.
    pub filter: serde_json::Value,
    /// Put Envoy's `jwt_authn` (HS256, the e2e JWKS) before the filter.
    pub jwt: bool,
}

fn hcm(stat_prefix: &str, filters: &str) -> String {
    format!(
        r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {stat_prefix}
          generate_request_id: false
          normalize_path: true
          merge_slashes: true
          route_config:
            name: local
            virtual_hosts:
            - name: api
              domains: ["*"]
              routes:
              # Routing across providers (a rule's `routing`): the filter
              # names the cluster in x-optimizer-upstream, and sets
              # x-envoy-max-retries; a retry goes to the aggregate cluster's
              # next priority, the other provider.
              - match: {{ prefix: "/api/search" }}
                route:
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
                    retry_back_off: {{ base_interval: 0.01s, max_interval: 0.1s }}
              # The filter disabled on a route (Envoy creates no filter
              # for its requests): what README "Loading the filter in your
              # own Envoy" recommends for traffic no rule is for.
              - match: {{ prefix: "/api/unfiltered/" }}
                route: {{ cluster: demo_api, timeout: 30s }}
                typed_per_filter_config:
                  cost_optimizer:
                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                    disabled: true
              - match: {{ prefix: "/" }}
                route: {{ cluster: demo_api, timeout: 30s }}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

fn listener(name: &str, port: u16, hcm: &str) -> String {
    format!(
        r#"  - name: {name}
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
{hcm}"#
    )
}

/// A static cluster of one endpoint on 127.0.0.1.
pub fn cluster(name: &str, port: u16) -> String {
    format!(
        r#"  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}
"#
    )
}

/// An aggregate cluster trying `first`, then `then` (the retry's next
/// priority).
fn aggregate(name: &str, first: &str, then: &str) -> String {
    format!(
        r#"  - name: {name}
    connect_timeout: 1s
    lb_policy: CLUSTER_PROVIDED
    circuit_breakers:
      thresholds:
      - max_retries: 1000
    cluster_type:
      name: envoy.clusters.aggregate
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig
        clusters: [{first}, {then}]
"#
    )
}

/// A test's filter config with each routing provider's `addresses` given
/// as test cluster names (`demo_api`, `demo_api_b`) written as the
/// `127.0.0.1:<port>` they listen on.
/// The tests read the filter's counters from Envoy's `/stats` right
/// after the requests that moved them, so the harness has the filter send
/// each increment at once (`metrics.flush_ms` 0) unless a test sets
/// `metrics` itself. The default, sums held for a second, is what
/// `foundation.rs`'s `counters_are_held_and_reach_envoy_whole_envoy_only`
/// tests, and what every Kong test (which reads no counters) and `make
/// bench` (but for R0, R and RF, which read theirs) run.
pub fn counters_at_once(mut filter: serde_json::Value) -> serde_json::Value {
    if let Some(doc) = filter.as_object_mut() {
        doc.entry("metrics")
            .or_insert_with(|| serde_json::json!({"flush_ms": 0}));
    }
    filter
}

pub fn with_addresses(filter: &serde_json::Value, ports: &Ports) -> serde_json::Value {
    let mut out = filter.clone();
    let Some(routes) = out.get_mut("routes").and_then(|r| r.as_array_mut()) else {
        return out;
    };
    for route in routes {
        let Some(providers) = route
            .get_mut("routing")
            .and_then(|r| r.get_mut("providers"))
            .and_then(|p| p.as_array_mut())
        else {
            continue;
        };
        for p in providers {
            let Some(addresses) = p.get_mut("addresses").and_then(|a| a.as_array_mut()) else {
                continue;
            };
            for a in addresses {
                let port = match a.as_str() {
                    Some("demo_api") => ports.demo,
                    Some("demo_api_b") => ports.demo_b,
                    _ => continue,
                };
                *a = format!("127.0.0.1:{port}").into();
            }
        }
    }
    out
}

fn jwt_filter() -> String {
    let jwks = crate::jwt::jwks().replace('\'', "''");
    format!(
        r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                e2e:
                  issuer: {issuer}
                  local_jwks:
                    inline_string: '{jwks}'
                  payload_in_metadata: jwt_payload
              rules:
              - match: {{ prefix: "/" }}
                requires:
                  requires_any:
                    requirements:
                    - provider_name: e2e
                    - allow_missing: {{}}
"#,
        issuer = crate::jwt::ISSUER
    )
}

/// The filter as an HTTP filter entry, with `config` as its configuration.
pub fn wasm_filter(wasm: &Path, config: &serde_json::Value) -> String {
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
        config = config
    )
}

/// Envoy's buffer filter right after ours: it holds the headers of a
/// request whose body the filter gathers for a batch, so no upstream
/// request starts before the filter decides (see `batch.bodies`).
fn buffer_filter() -> String {
    r#"          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1048576
"#
    .to_string()
}

pub fn render(ports: &Ports, wasm: &Path, options: &Options) -> String {
    let mut filters = String::new();
    if options.jwt {
        filters.push_str(&jwt_filter());
    }
    filters.push_str(&wasm_filter(
        wasm,
        &counters_at_once(with_addresses(&options.filter, ports)),
    ));
    filters.push_str(&buffer_filter());
    format!(
        "admin:\n  address:\n    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}\nstatic_resources:\n  listeners:\n{main}{plain}  clusters:\n{c1}{c2}{c3}{a1}{a2}",
        admin = ports.admin,
        main = listener("ingress", ports.listen, &hcm("ingress", &filters)),
        plain = listener("plain", ports.plain, &hcm("plain", "")),
        c1 = cluster("demo_api", ports.demo),
        c2 = cluster("demo_api_b", ports.demo_b),
        c3 = cluster("cost_control", ports.control),
        a1 = aggregate("via_primary", "demo_api", "demo_api_b"),
        a2 = aggregate("via_secondary", "demo_api_b", "demo_api"),
    )
}

/// The shipped demo config with its fixed ports replaced by the test's.
pub fn render_shipped(ports: &Ports, wasm: &Path) -> String {
    let path = crate::procs::repo_root().join("envoy/envoy.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let replacements = [
        ("port_value: 10000", format!("port_value: {}", ports.listen)),
        ("port_value: 9901", format!("port_value: {}", ports.admin)),
        ("port_value: 8080", format!("port_value: {}", ports.demo)),
        ("port_value: 8082", format!("port_value: {}", ports.demo_b)),
        // The routing providers' addresses in the filter config.
        (
            "\"127.0.0.1:8080\"",
            format!("\"127.0.0.1:{}\"", ports.demo),
        ),
        (
            "\"127.0.0.1:8082\"",
            format!("\"127.0.0.1:{}\"", ports.demo_b),
        ),
        ("port_value: 8081", format!("port_value: {}", ports.control)),
        (
            "filename: target/wasm32-wasip1/release/cost_optimizer.wasm",
            format!("filename: \"{}\"", wasm.display()),
        ),
    ];
    let mut out = text;
    for (from, to) in replacements {
        assert!(
            out.contains(from),
            "envoy/envoy.yaml no longer contains {from:?}"
        );
        out = out.replace(from, &to);
    }
    out
}
