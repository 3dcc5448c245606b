//! Issue 17, end to end on real Envoy: the filter config of
//! `istio/wasmplugin-gateway.yaml` (its `pluginConfig`, which the
//! EnvoyFilter carries byte for byte: filter/validate/tests/istio_manifests.rs)
//! in a bootstrap laid out the way Istio's gateway has it: authentication
//! (`jwt_authn`) and authorization (`rbac`) first, the filter at the end of
//! the chain before the router (the WasmPlugin's UNSPECIFIED_PHASE), and
//! the clusters named as Istio names them for the Kubernetes Services
//! (`outbound|<port>||<host>`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use e2e::envoy_config::{cluster, wasm_filter, Ports};
use e2e::http::{self, Resp};
use e2e::procs::{repo_root, wait_for};
use e2e::stack::Stack;
use serde_json::Value;

const DEMO: &str = "outbound|8080||demo-api.default.svc.cluster.local";
const CONTROL: &str = "outbound|8081||cost-control.cost-optimizer.svc.cluster.local";

/// `pluginConfig` of the gateway's WasmPlugin, as the JSON Istio hands
/// the filter.
fn plugin_config() -> Value {
    let path = repo_root().join("istio/wasmplugin-gateway.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    serde_json::to_value(&doc["spec"]["pluginConfig"]).unwrap()
}

fn bootstrap(ports: &Ports, wasm: &Path) -> String {
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
static_resources:
  listeners:
  - name: gateway
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          generate_request_id: false
          route_config:
            name: gateway
            virtual_hosts:
            - name: api
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: "{demo_cluster}", timeout: 30s }}
          http_filters:
          # Istio's authentication, then authorization, as on a gateway.
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers: {{}}
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  allow-all:
                    permissions: [{{ any: true }}]
                    principals: [{{ any: true }}]
          # The WasmPlugin, phase UNSPECIFIED_PHASE: last before the router.
{filter}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{c1}{c2}"#,
        admin = ports.admin,
        listen = ports.listen,
        demo_cluster = DEMO,
        filter = wasm_filter(wasm, &plugin_config()),
        c1 = cluster(DEMO, ports.demo),
        c2 = cluster(CONTROL, ports.control),
    )
}

fn get(s: &Stack, path: &str) -> Resp {
    http::request_fresh("GET", &s.url(path), &[("x-tenant-id", "acme")], None)
}

#[test]
fn the_istio_filter_config_caches_limits_batches_and_reports_spend() {
    let s = Stack::start_yaml_with_control("istio-gateway", bootstrap);
    // Cache.
    let first = get(&s, "/api/items/1");
    assert_eq!(first.header("x-cache"), Some("MISS"), "{first:?}");
    let hit = get(&s, "/api/items/1");
    assert_eq!(hit.header("x-cache"), Some("HIT"), "{hit:?}");
    assert_eq!(hit.text(), first.text());
    // Rate limit: 5 requests, then 429 with the RateLimit fields.
    let limited = (1..=8)
        .map(|i| get(&s, &format!("/api/reports/{i}")))
        .find(|r| r.status == 429)
        .expect("a 429 within 8 requests against a bucket of 5");
    assert!(limited.header("ratelimit").is_some(), "{limited:?}");
    assert!(limited.header("ratelimit-policy").is_some(), "{limited:?}");
    // Batching: 8 GETs at once go out as batch calls to the Service's
    // cluster, with the Service's host as :authority.
    let answers: Vec<Resp> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                sc.spawn(move || get(s, &format!("/api/quotes/{i}")))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|r| r.status == 200), "{answers:?}");
    let batched = answers
        .iter()
        .filter(|r| r.header("x-cache") == Some("BATCHED"))
        .count();
    assert!(batched >= 2, "{batched} of 8 batched");
    assert!(s.demo.calls_for("/api/batch") >= 1);
    assert!(s.demo.calls_for("/api/batch") < 8);
    // Spend reaches cost-control through its Istio cluster name.
    let priced = 2 + 5 + 8;
    wait_for("the spend in the ledger", Duration::from_secs(30), || {
        (s.control().total_events("acme") >= priced).then_some(())
    });
    let by = s.control().spend("acme", "strategy");
    assert!(by.to_string().contains("\"cache\""), "{by}");
    assert!(by.to_string().contains("\"batched\""), "{by}");
}
