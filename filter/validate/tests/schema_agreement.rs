//! One schema, two checks (STYLE.md 7): Kong validates the filter's config
//! with the `config_schema` of `kong/cost_optimizer.meta.json` (JSON Schema
//! draft 4) when a filter chain or plugin is saved, and the filter checks it
//! again with its own parser when it loads. These tests hold the two to the
//! same answers:
//!
//! - every object the schema closes (`additionalProperties: false`) lists
//!   exactly the fields the parser reads there (taken from the parser's own
//!   "unknown field, expected one of" error);
//! - the shipped configs (envoy/envoy.yaml, kong/kong.yml,
//!   kong/kong-plugin.yml) and a config using every field pass both;
//! - a table of wrong configs is refused by both, the parser naming the
//!   field, and a table of unusual but valid ones is accepted by both;
//! - what only the parser can refuse is listed, with why a draft-4 schema
//!   cannot say it, and checked to stay that way.
//!
//! The validator is the `jsonschema` crate in draft-4 mode; Kong's own is
//! lua-resty-ljsonschema (Kong 3.5 to 3.9), also draft 4. A schema it
//! cannot compile fails here, and so does a missing shipped file: nothing
//! is skipped.
//!
//! Not covered: an empty config (whitespace), which the filter reads as
//! "all defaults" and Kong never validates (no config, nothing to check);
//! integers written as `1.0`, which draft 4 calls numbers while Kong's Lua
//! validator calls them integers and hands the filter `1` anyway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use jsonschema::Validator;
use optimizer_core::config::{self, ConfigError};
use serde_json::{json, Value};

use common::{meta, shipped_configs};

fn config_schema() -> Value {
    meta()["config_schema"].clone()
}

fn validator() -> Validator {
    let schema = config_schema();
    if let Err(e) = jsonschema::draft4::meta::validate(&schema) {
        panic!("config_schema is not a valid draft-4 schema: {e}");
    }
    jsonschema::draft4::new(&schema).unwrap_or_else(|e| panic!("config_schema: {e}"))
}

fn schema_errors(v: &Validator, config: &Value) -> Vec<String> {
    v.iter_errors(config)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

fn parse(config: &Value) -> Result<(), ConfigError> {
    config::parse(&serde_json::to_vec(config).unwrap()).map(|_| ())
}

/// A config that uses every field the parser reads (on Envoy, so cluster
/// names are fine; `wake` is added by `full_with_wake`).
fn full() -> Value {
    json!({
        "version": 1,
        "host": "envoy",
        "identity": {
            "tenant": [{"header": "x-tenant-id"}, {"jwt_claim": "tenant"}],
            "service": [{"header": "x-service-id"}],
            "jwt": {"namespace": "envoy.filters.http.jwt_authn", "payload_key": "jwt_payload"},
            "priority_header": {"name": "x-priority", "trusted": true},
            "request_id_header": "x-request-id"
        },
        "cache_store": {"max_entries": 1024, "ways": 4, "max_entry_bytes": 65536,
                        "l1_max_entries": 128, "l1_max_bytes": 1048576, "generation_slots": 512},
        "coalesce_store": {"slots": 256, "tick_ms": 5},
        "limit_store": {"slots": 1024},
        "metrics": {"flush_ms": 500},
        "shared_answers": {"bypass_headers": ["x-forwarded-host", "X-Original-URL"]},
        "accounting": {
            "cost_control": "cost_control", "authority": "cost-control",
            "token": "gateway-dev-token", "gateway_id": "gw-1",
            "flush_ms": 500, "max_events": 100, "max_buffer_events": 1000,
            "timeout_ms": 1000, "backoff_min_ms": 100, "backoff_max_ms": 5000,
            "purge_poll_ms": 0,
            "budgets": {"slots": 64, "lease": "0.05", "low_water_percent": 25,
                        "lease_ttl_secs": 30, "retry_ms": 500, "hard_stop_tenants": ["acme"]}
        },
        "routes": [
            {
                "name": "items", "match": {"prefix": "/api/items", "methods": ["GET", "head"],
                                           "hosts": ["api.example.com"]},
                "sla_ms": 1000, "priority": "high", "require_tenant": true, "debug_headers": true,
                "cache": {"methods": ["GET", "HEAD"], "statuses": [200, 404], "vary": ["accept-language"],
                          "ignore_query": ["utm_source"], "default_ttl_s": 60, "max_ttl_s": 3600,
                          "allow_authorization": true, "max_entry_bytes": 4096,
                          "related_prefixes": ["/api/items"], "xfetch_beta": 0.5,
                          "adaptive_ttl": {"min_ttl_s": 10, "max_ttl_s": 600},
                          "targeted_fields": ["optimizer-cache-control", "cdn-cache-control"],
                          "heuristic_fraction": 0.1,
                          "refresh": {"target": "127.0.0.1:8080", "authority": "api.example.com", "timeout_ms": 2000}},
                "coalesce": {"max_wait_ms": 500, "share_5xx": true, "max_body_bytes": 4096,
                             "grace_ms": 100, "idempotency_key": true},
                "routing": {"strategy": "cheapest", "max_attempts": 2, "pin_header": "x-pin",
                            "header": "x-optimizer-upstream", "kong_property": "ngx.optimizer_target",
                            "breaker": {"failures": 3, "failure_rate": 0.5, "min_requests": 5,
                                        "window_s": 10, "open_s": 2, "probes": 1},
                            "providers": [
                                {"name": "primary", "upstream": "via_primary", "addresses": ["127.0.0.1:8080"],
                                 "cost": {"cost_per_call": "0.002"}, "weight": 2},
                                {"name": "secondary", "upstream": "via_secondary",
                                 "cost": {"provider": "ignored", "cost_per_call": "0.001"}}]},
                "limit": {"by": "tenant", "token_bucket": {"capacity": 10, "refill_per_s": 2.5},
                          "queue_bound": 8},
                "cost": {"provider": "demo", "cost_per_call": "0.002",
                         "budget": {"enforce": true, "estimate": 0.002, "on_unavailable": "fail_closed",
                                    "fail_open_credit": "0.01"}}
            },
            {
                "name": "quotes", "match": {"prefix": "/api/quotes/"},
                "limit": {"by": "tenant_route", "sliding_window": {"limit": 100, "window_s": 60},
                          "queue_bound": 0},
                "batch": {"upstream": "demo_api", "authority": "demo-api.local", "path": "/api/batch", "format": "rest",
                          "window_ms": 50, "window_min_ms": 10, "max_size": 16,
                          "max_body_bytes": 65536, "min_rate_rps": 1.5, "timeout_ms": 2000,
                          "bodies": true},
                "cost": {"cost_per_call": 0.001,
                         "batch": {"per_batch": "0.001", "per_member": "0.0001"}}
            },
            {
                "name": "chat", "match": {"prefix": "/v1/chat/completions"},
                "prompt": {"max_body_bytes": 65536, "ignore_fields": ["user", "metadata"],
                           "nondeterministic": false},
                "cache": {"default_ttl_s": 300},
                "cost": {"cost_per_call": "0.002",
                         "tokens": {"max_body_bytes": 65536,
                                    "models": {"gpt-4o-mini": {"prompt_per_1k": "0.00015",
                                                               "completion_per_1k": "0.0006"}},
                                    "default_model": "gpt-4o-mini"},
                         "budget": {"estimate": "0.01"}}
            }
        ]
    })
}

fn full_with_wake() -> Value {
    let mut c = full();
    c["wake"] = json!({"target": "127.0.0.1:8081", "authority": "cost-control"});
    c
}

/// `base` with the value at JSON pointer `at` set (`Some`) or removed.
fn with(base: Value, at: &str, value: Option<Value>) -> Value {
    let mut c = base;
    let (parent, key) = at.rsplit_once('/').unwrap();
    let slot = c
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the base config"));
    match (slot, value) {
        (Value::Object(o), Some(v)) => {
            o.insert(key.to_string(), v);
        }
        (Value::Object(o), None) => {
            o.remove(key);
        }
        (Value::Array(a), Some(v)) => a[key.parse::<usize>().unwrap()] = v,
        (other, _) => panic!("{parent} is {other}, not a container"),
    }
    c
}

fn set(at: &str, value: Value) -> Value {
    with(full(), at, Some(value))
}

/// A one-rule config on Kong for the Kong rules.
fn kong(route: Value, extra: Value) -> Value {
    let mut c = json!({"version": 1, "host": "kong", "routes": [route]});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn accounting_at(target: &str) -> Value {
    json!({"cost_control": target, "token": "t", "gateway_id": "g"})
}

struct Case {
    what: &'static str,
    config: Value,
    /// The field the parser names; `None`: valid.
    refused_at: Option<&'static str>,
}

fn refused(what: &'static str, config: Value, field: &'static str) -> Case {
    Case {
        what,
        config,
        refused_at: Some(field),
    }
}

fn accepted(what: &'static str, config: Value) -> Case {
    Case {
        what,
        config,
        refused_at: None,
    }
}

/// Changes to `full()` refused alike by the schema and by the parser:
/// (what, JSON pointer, the new value or `None` to remove it, the field
/// the parser names).
#[rustfmt::skip]
fn wrong_rows() -> Vec<(&'static str, &'static str, Option<Value>, &'static str)> {
    let n = Value::Null;
    vec![
        ("max_ttl_s past ten years (its milliseconds would overflow)", "/routes/0/cache/max_ttl_s", Some(json!(u64::MAX / 100)), "routes[0].cache.max_ttl_s"),
        ("unknown top-level field", "/cache", Some(json!({})), "cache"),
        ("unknown field in a rule (typo)", "/routes/0/colaesce", Some(json!({})), "routes[0].colaesce"),
        ("unknown field in a store", "/cache_store/max_entrys", Some(json!(5)), "cache_store.max_entrys"),
        ("unknown field in accounting.budgets", "/accounting/budgets/leases", Some(json!("1")), "accounting.budgets.leases"),
        ("missing version", "/version", None, ""),
        ("version this build does not read", "/version", Some(json!(2)), "version"),
        ("wrong type: sla_ms as a string", "/routes/0/sla_ms", Some(json!("1000")), "routes[0].sla_ms"),
        ("wrong type: require_tenant as a string", "/routes/0/require_tenant", Some(json!("yes")), "routes[0].require_tenant"),
        ("wrong type: routes null", "/routes", Some(n), "routes"),
        ("negative integer", "/limit_store/slots", Some(json!(-1)), "limit_store.slots"),
        ("metrics.flush_ms over a minute", "/metrics/flush_ms", Some(json!(60_001)), "metrics.flush_ms"),
        ("unknown field in metrics", "/metrics/flush", Some(json!(5)), "metrics.flush"),
        ("bad enum: priority", "/routes/0/priority", Some(json!("urgent")), "routes[0].priority"),
        ("bad enum: host", "/host", Some(json!("nginx")), "host"),
        ("bad enum: limit.by", "/routes/0/limit/by", Some(json!("ip")), "routes[0].limit.by"),
        ("bad enum: budget.on_unavailable", "/routes/0/cost/budget/on_unavailable", Some(json!("maybe")), "routes[0].cost.budget.on_unavailable"),
        ("missing required: rule name", "/routes/0/name", None, "routes[0]"),
        ("missing required: match.prefix", "/routes/0/match/prefix", None, "routes[0].match"),
        ("missing required: accounting.token", "/accounting/token", None, "accounting"),
        ("missing required: batch.window_ms", "/routes/1/batch/window_ms", None, "routes[1].batch"),
        ("missing required: cost_per_call", "/routes/1/cost/cost_per_call", None, "routes[1].cost"),
        ("zero where > 0: sla_ms", "/routes/0/sla_ms", Some(json!(0)), "routes[0].sla_ms"),
        ("zero where > 0: batch.window_ms", "/routes/1/batch/window_ms", Some(json!(0)), "routes[1].batch.window_ms"),
        ("zero where > 0: token_bucket.refill_per_s", "/routes/0/limit/token_bucket/refill_per_s", Some(json!(0)), "routes[0].limit.token_bucket.refill_per_s"),
        ("zero where > 0: budgets.lease", "/accounting/budgets/lease", Some(json!("0.000000")), "accounting.budgets.lease"),
        ("over the maximum: sla_ms", "/routes/0/sla_ms", Some(json!(600_001)), "routes[0].sla_ms"),
        ("over the maximum: batch.max_size", "/routes/1/batch/max_size", Some(json!(25)), "routes[1].batch.max_size"),
        ("over the maximum: cache_store.ways", "/cache_store/ways", Some(json!(17)), "cache_store.ways"),
        ("under the minimum: cache_store.max_entry_bytes", "/cache_store/max_entry_bytes", Some(json!(1023)), "cache_store.max_entry_bytes"),
        ("purge_poll_ms neither 0 nor 100..", "/accounting/purge_poll_ms", Some(json!(50)), "accounting.purge_poll_ms"),
        ("rule name unfit for metric names", "/routes/0/name", Some(json!("my items")), "routes[0].name"),
        ("prefix without a leading slash", "/routes/0/match/prefix", Some(json!("api/items")), "routes[0].match.prefix"),
        ("not an HTTP method", "/routes/0/match/methods", Some(json!(["GET", "GE T"])), "routes[0].match.methods[1]"),
        ("uncacheable method", "/routes/0/cache/methods", Some(json!(["POST"])), "routes[0].cache.methods[0]"),
        ("status that is not final", "/routes/0/cache/statuses", Some(json!([100])), "routes[0].cache.statuses[0]"),
        ("routing without providers", "/routes/0/routing/providers", Some(json!([])), "routes[0].routing.providers"),
        ("unknown routing strategy", "/routes/0/routing/strategy", Some(json!("random")), "routes[0].routing.strategy"),
        ("provider name with a dot", "/routes/0/routing/providers/0/name", Some(json!("a.b")), "routes[0].routing.providers[0].name"),
        ("provider address without a port", "/routes/0/routing/providers/0/addresses", Some(json!(["127.0.0.1"])), "routes[0].routing.providers[0].addresses[0]"),
        ("a budget on a provider", "/routes/0/routing/providers/0/cost/budget", Some(json!({})), "routes[0].routing.providers[0].cost.budget"),
        ("too many probes", "/routes/0/routing/breaker/probes", Some(json!(9)), "routes[0].routing.breaker.probes"),
        ("max_attempts zero", "/routes/0/routing/max_attempts", Some(json!(0)), "routes[0].routing.max_attempts"),
        ("a prompt ignoring its model", "/routes/2/prompt/ignore_fields", Some(json!(["model"])), "routes[2].prompt.ignore_fields[0]"),
        ("a prompt body bound of zero", "/routes/2/prompt/max_body_bytes", Some(json!(0)), "routes[2].prompt.max_body_bytes"),
        ("a partial status listed as cacheable", "/routes/0/cache/statuses", Some(json!([200, 206])), "routes[0].cache.statuses[1]"),
        ("a status range that is not one", "/routes/0/cache/statuses", Some(json!(["2xx", "2xy"])), "routes[0].cache.statuses[1]"),
        ("heuristic_fraction zero", "/routes/0/cache/heuristic_fraction", Some(json!(0)), "routes[0].cache.heuristic_fraction"),
        ("heuristic_fraction over one", "/routes/0/cache/heuristic_fraction", Some(json!(1.5)), "routes[0].cache.heuristic_fraction"),
        ("bad header name as a targeted field", "/routes/0/cache/targeted_fields", Some(json!(["cdn cache control"])), "routes[0].cache.targeted_fields[0]"),
        ("refresh without a target", "/routes/0/cache/refresh/target", None, "routes[0].cache.refresh"),
        ("refresh timeout zero", "/routes/0/cache/refresh/timeout_ms", Some(json!(0)), "routes[0].cache.refresh.timeout_ms"),
        ("bad header name in identity", "/identity/tenant/0", Some(json!({"header": "x tenant"})), "identity.tenant[0].header"),
        ("source with two kinds", "/identity/tenant/0", Some(json!({"header": "a", "jwt_claim": "b"})), "identity.tenant[0]"),
        ("limit with both algorithms", "/routes/0/limit/sliding_window", Some(json!({"limit": 1, "window_s": 1})), "routes[0].limit"),
        ("limit with no algorithm", "/routes/0/limit/token_bucket", None, "routes[0].limit"),
        ("negative money", "/routes/0/cost/cost_per_call", Some(json!("-0.5")), "routes[0].cost.cost_per_call"),
        ("money with 7 decimals", "/routes/0/cost/cost_per_call", Some(json!("0.0000001")), "routes[0].cost.cost_per_call"),
        ("money as a bool", "/routes/0/cost/cost_per_call", Some(json!(true)), "routes[0].cost.cost_per_call"),
        ("no token models", "/routes/2/cost/tokens/models", Some(json!({})), "routes[2].cost.tokens.models"),
        ("gateway id with a space", "/accounting/gateway_id", Some(json!("gw 1")), "accounting.gateway_id"),
        ("token with a space", "/accounting/token", Some(json!("a b")), "accounting.token"),
        ("cost-control target with a space", "/accounting/cost_control", Some(json!("cost control")), "accounting.cost_control"),
        ("budget without accounting", "/accounting", None, "routes[0].cost.budget"),
        ("budget by tokens without an estimate", "/routes/2/cost/budget/estimate", None, "routes[2].cost.budget.estimate"),
    ]
}

/// Refused or accepted alike by the schema and by the parser.
fn wrong_and_unusual() -> Vec<Case> {
    let mut cases: Vec<Case> = wrong_rows()
        .into_iter()
        .map(|(what, at, value, field)| refused(what, with(full(), at, value), field))
        .collect();
    cases.extend([
        accepted("every field", full()),
        accepted("defaults only", json!({"version": 1})),
        accepted("nulls for optional blocks", {
            let c = set("/routes/0/cache/default_ttl_s", Value::Null);
            let c = with(c, "/routes/1/cost/batch", Some(Value::Null));
            with(c, "/routes/0/limit/sliding_window", Some(Value::Null))
        }),
        accepted(
            "accounting null without budgets",
            json!({"version": 1, "accounting": null, "routes": [{"name": "a", "match": {"prefix": "/"},
                   "cost": {"cost_per_call": "1", "budget": null}}]}),
        ),
        accepted("money as a number, and as .5", {
            let c = set("/routes/0/cost/cost_per_call", json!(0.25));
            with(c, "/accounting/budgets/lease", Some(json!(" .5 ")))
        }),
        accepted(
            "lowercase methods",
            set("/routes/0/cache/methods", json!(["get", "Head"])),
        ),
        accepted("purge polling off", set("/accounting/purge_poll_ms", json!(0))),
        accepted("the largest SLA", set("/routes/0/sla_ms", json!(600_000))),
        accepted("the longest max_ttl_s", set("/routes/0/cache/max_ttl_s", json!(315_360_000))),
    ]);
    cases
}

/// `wake` blocks in `full()`: (what, the block, the field the parser
/// names or `None` when valid).
#[rustfmt::skip]
fn wake_rows() -> Vec<(&'static str, Value, Option<&'static str>)> {
    vec![
        ("wake target without a port", json!({"target": "cost-control"}), Some("wake.target")),
        ("wake target on port 0", json!({"target": "127.0.0.1:0"}), Some("wake.target")),
        ("wake target on port 65536", json!({"target": "127.0.0.1:65536"}), Some("wake.target")),
        ("wake without a target", json!({"authority": "cost-control"}), Some("wake")),
        ("unknown field in wake", json!({"target": "127.0.0.1:8081", "after_ms": 5}), Some("wake.after_ms")),
        ("empty wake authority", json!({"target": "127.0.0.1:8081", "authority": ""}), Some("wake.authority")),
        ("wake with the default authority", json!({"target": "localhost:8081"}), None),
    ]
}

/// The Kong rules that came with `wake`.
fn kong_rules() -> Vec<Case> {
    let cached = json!({"name": "items", "match": {"prefix": "/"}, "cache": {}, "coalesce": {}});
    let batched = json!({"name": "q", "match": {"prefix": "/q"},
                         "batch": {"upstream": "127.0.0.1:8080", "path": "/b", "window_ms": 50}});
    let mut cases: Vec<Case> = wake_rows()
        .into_iter()
        .map(|(what, wake, field)| Case {
            what,
            config: set("/wake", wake),
            refused_at: field,
        })
        .collect();
    cases.extend([
        refused(
            "Kong: cost-control as a cluster name",
            kong(
                cached.clone(),
                json!({"accounting": accounting_at("cost_control")}),
            ),
            "accounting.cost_control",
        ),
        refused(
            "Kong: batch upstream as a cluster name",
            kong(
                with(batched.clone(), "/batch/upstream", Some(json!("demo_api"))),
                json!({"wake": {"target": "127.0.0.1:8081"}}),
            ),
            "routes[0].batch.upstream",
        ),
        refused(
            "Kong: a rule that parks, no wake, no accounting",
            kong(cached.clone(), json!({})),
            "wake.target",
        ),
        refused(
            "Kong: a limit queue parks too",
            kong(
                json!({"name": "r", "match": {"prefix": "/"}, "limit": {"token_bucket": {"capacity": 1, "refill_per_s": 1}}}),
                json!({}),
            ),
            "wake.target",
        ),
        refused(
            "Kong: a JWT claim source",
            kong(
                json!({"name": "a", "match": {"prefix": "/"}}),
                json!({"identity": {"tenant": [{"jwt_claim": "sub"}]}}),
            ),
            "identity.tenant[0].jwt_claim",
        ),
        accepted("every field and wake", full_with_wake()),
        accepted(
            "Kong: wake alone wakes a coalescing rule",
            kong(
                cached.clone(),
                json!({"wake": {"target": "127.0.0.1:8081"}}),
            ),
        ),
        accepted(
            "Kong: accounting stands for wake",
            kong(
                batched,
                json!({"accounting": accounting_at("127.0.0.1:8081")}),
            ),
        ),
        accepted(
            "Kong: a limit without a queue never parks",
            kong(
                json!({"name": "r", "match": {"prefix": "/"}, "limit": {"token_bucket": {"capacity": 1, "refill_per_s": 1}, "queue_bound": 0}}),
                json!({}),
            ),
        ),
        accepted(
            "Kong: rules that never park need no wake",
            kong(
                json!({"name": "a", "match": {"prefix": "/"}, "cache": {}, "cost": {"cost_per_call": "0.1"}}),
                json!({}),
            ),
        ),
    ]);
    cases
}

/// Changes to `full()` refused by the parser only: (what, JSON pointer,
/// new value, the field the parser names, why the schema cannot say it).
#[rustfmt::skip]
fn parser_only_rows() -> Vec<(&'static str, &'static str, Value, &'static str, &'static str)> {
    vec![
        ("duplicate rule names", "/routes/1/name", json!("items"), "routes[1].name",
         "uniqueness of one field across array items: draft 4's uniqueItems compares whole items"),
        ("a reversed status range", "/routes/0/cache/statuses", json!(["299-200"]), "routes[0].cache.statuses[0]",
         "compares two numbers inside one string"),
        ("cache-control as a targeted field", "/routes/0/cache/targeted_fields", json!(["Cache-Control"]), "routes[0].cache.targeted_fields[0]",
         "a case-insensitive exclusion: draft 4 patterns have no flags"),
        ("default_ttl_s over max_ttl_s", "/routes/0/cache/default_ttl_s", json!(7200), "routes[0].cache.default_ttl_s",
         "compares two fields' values; draft 4 has no $data references"),
        ("adaptive_ttl min over max", "/routes/0/cache/adaptive_ttl", json!({"min_ttl_s": 700, "max_ttl_s": 600}), "routes[0].cache.adaptive_ttl",
         "compares two fields' values"),
        ("adaptive_ttl past the rule's max_ttl_s", "/routes/0/cache/adaptive_ttl", json!({"min_ttl_s": 10, "max_ttl_s": 7200}), "routes[0].cache.adaptive_ttl",
         "compares a field with another object's field"),
        ("a rule's max_entry_bytes over the store's", "/routes/0/cache/max_entry_bytes", json!(65537), "routes[0].cache.max_entry_bytes",
         "bounded by another object's value (cache_store.max_entry_bytes)"),
        ("coalesce.max_wait_ms over the rule's sla_ms", "/routes/0/coalesce/max_wait_ms", json!(1001), "routes[0].coalesce.max_wait_ms",
         "bounded by a sibling field's value"),
        ("batch window over half the SLA", "/routes/1/batch/window_ms", json!(1001), "routes[1].batch.window_ms",
         "arithmetic on another field (sla_ms / 2, sla_ms defaulting to 2000)"),
        ("batch window_min_ms over window_ms", "/routes/1/batch/window_min_ms", json!(51), "routes[1].batch.window_min_ms",
         "compares two fields' values"),
        ("max_buffer_events under max_events", "/accounting/max_buffer_events", json!(99), "accounting.max_buffer_events",
         "compares two fields' values"),
        ("backoff_max_ms under backoff_min_ms", "/accounting/backoff_max_ms", json!(99), "accounting.backoff_max_ms",
         "compares two fields' values"),
        ("default_model not among the models", "/routes/2/cost/tokens/default_model", json!("gpt-5"), "routes[2].cost.tokens.default_model",
         "a value that must be a key of a sibling map"),
        ("money past u64 micro-USD", "/routes/0/cost/cost_per_call", json!("99999999999999999999"), "routes[0].cost.cost_per_call",
         "an upper bound on a decimal string (18446744073709.551615): a regex could spell it, not readably"),
        ("money as a number with 7 decimals", "/routes/0/cost/cost_per_call", json!(0.000_000_1), "routes[0].cost.cost_per_call",
         "decimal places of a JSON number: multipleOf 0.000001 is unreliable in binary floating point"),
    ]
}

#[test]
fn the_schema_compiles_as_draft_4() {
    let schema = config_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    validator();
}

#[test]
fn closed_objects_list_exactly_the_fields_the_parser_reads() {
    let schema = config_schema();
    let base = full_with_wake();
    let mut objects = BTreeMap::new();
    closed_objects(
        &schema,
        &schema,
        "#".into(),
        Some(&base),
        String::new(),
        &mut objects,
    );
    assert!(
        objects.len() >= 20,
        "found only {} closed objects",
        objects.len()
    );
    for (schema_at, (pointer, fields)) in objects {
        let pointer = pointer.unwrap_or_else(|| {
            panic!("full() has no object for the schema's {schema_at}: add one")
        });
        let mut c = base.clone();
        c.pointer_mut(&pointer)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{pointer} is not an object in full()"))
            .insert("zz_not_a_field".into(), json!(1));
        let err = parse(&c).expect_err(&pointer).to_string();
        let known = expected_fields(&err)
            .unwrap_or_else(|| panic!("{pointer}: not an unknown-field error: {err}"));
        assert_eq!(
            known, fields,
            "fields at {pointer:?}: parser (left) vs schema (right)"
        );
    }
}

/// The fields listed in serde's "unknown field `x`, expected one of `a`,
/// `b`" (or "expected `a` or `b`", or "expected `a`").
fn expected_fields(message: &str) -> Option<BTreeSet<String>> {
    let rest = message
        .split_once("unknown field `zz_not_a_field`, expected")?
        .1;
    let rest = rest.split(" at line ").next()?;
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Every object schema with `additionalProperties: false` (by where it
/// is in the schema) with the JSON pointer of the first object of `config`
/// it applies to, and the fields it lists.
fn closed_objects(
    root: &Value,
    node: &Value,
    schema_at: String,
    config: Option<&Value>,
    pointer: String,
    out: &mut BTreeMap<String, (Option<String>, BTreeSet<String>)>,
) {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let target = root
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
        return closed_objects(root, target, r.to_string(), config, pointer, out);
    }
    let here = config.filter(|c| c.is_object());
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        if node.get("additionalProperties") == Some(&json!(false)) {
            let entry = out
                .entry(schema_at.clone())
                .or_insert_with(|| (None, props.keys().cloned().collect()));
            if entry.0.is_none() && here.is_some() {
                entry.0 = Some(pointer.clone());
            }
        }
        for (k, child) in props {
            let sub = here.and_then(|c| c.get(k));
            closed_objects(
                root,
                child,
                format!("{schema_at}/properties/{k}"),
                sub,
                format!("{pointer}/{k}"),
                out,
            );
        }
    }
    if let Some(extra) = node.get("additionalProperties").filter(|a| a.is_object()) {
        let keys: Vec<(String, Option<&Value>)> = match here.and_then(Value::as_object) {
            Some(o) => o.iter().map(|(k, v)| (k.clone(), Some(v))).collect(),
            None => vec![("x".to_string(), None)],
        };
        for (k, sub) in keys {
            closed_objects(
                root,
                extra,
                format!("{schema_at}/additionalProperties"),
                sub,
                format!("{pointer}/{k}"),
                out,
            );
        }
    }
    if let Some(items) = node.get("items") {
        let elements: Vec<Option<&Value>> = match config.and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a.iter().map(Some).collect(),
            _ => vec![None],
        };
        for (i, sub) in elements.into_iter().enumerate() {
            closed_objects(
                root,
                items,
                format!("{schema_at}/items"),
                sub,
                format!("{pointer}/{i}"),
                out,
            );
        }
    }
}

#[test]
fn shipped_configs_pass_both() {
    let v = validator();
    let configs = shipped_configs();
    assert!(configs.len() >= 3, "{configs:?}");
    for (origin, config) in configs {
        let errors = schema_errors(&v, &config);
        assert!(
            errors.is_empty(),
            "{origin}: the schema refuses it: {errors:?}"
        );
        if let Err(e) = parse(&config) {
            panic!("{origin}: the parser refuses it: {e}");
        }
    }
}

fn assert_agree(v: &Validator, case: &Case) {
    let errors = schema_errors(v, &case.config);
    let parsed = parse(&case.config);
    match case.refused_at {
        None => {
            assert!(
                errors.is_empty(),
                "{}: the schema refuses it: {errors:?}",
                case.what
            );
            if let Err(e) = parsed {
                panic!("{}: the parser refuses it: {e}", case.what);
            }
        }
        Some(field) => {
            assert!(!errors.is_empty(), "{}: the schema accepts it", case.what);
            let e = parsed.expect_err(case.what);
            assert_eq!(
                e.field, field,
                "{}: the parser names another field: {e}",
                case.what
            );
        }
    }
}

#[test]
fn wrong_configs_are_refused_by_both_and_unusual_ones_accepted() {
    let v = validator();
    let cases = wrong_and_unusual();
    let refusals = cases.iter().filter(|c| c.refused_at.is_some()).count();
    assert!(refusals >= 15, "{refusals} wrong configs");
    for case in &cases {
        assert_agree(&v, case);
    }
}

#[test]
fn kong_rules_and_wake_agree() {
    let v = validator();
    for case in kong_rules() {
        assert_agree(&v, &case);
    }
}

#[test]
fn what_only_the_parser_refuses_stays_listed() {
    let v = validator();
    for (what, at, value, field, why) in parser_only_rows() {
        let case = refused(what, set(at, value), field);
        let errors = schema_errors(&v, &case.config);
        assert!(
            errors.is_empty(),
            "{}: the schema now refuses it ({errors:?}): move it to the shared table (listed as parser only because: {why})",
            case.what
        );
        let e = parse(&case.config).expect_err(case.what);
        assert_eq!(
            Some(e.field.as_str()),
            case.refused_at,
            "{}: {e}",
            case.what
        );
    }
}
