//! `metrics.label_patterns` of `kong/cost_optimizer.meta.json` against the
//! counter names the filter defines.
//!
//! How Kong reads them (kong/plugins/prometheus/wasmx.lua, Kong 3.9.0 to
//! 3.9.3, whose `/metrics` exports wasm metrics): ngx_wasm_module stores a
//! filter's metric as `pw:<filter>:<name>`; for each pattern in order Kong
//! runs `ngx.re.match(key, pattern, "oj", ctx)` with ONE `ctx` for all of
//! them, so each pattern starts where the last match ended; capture 1 is
//! the label's span (it must end where the match ends), capture 2 its
//! value; the metric's name is the key up to the earliest label span, `:`
//! turned into `_`. So a label can only be cut from the end of the name,
//! unlike Envoy's `stats_tags`, which cut a tag out of the middle.
//!
//! The filter's names carry the route in the middle
//! (`cost_optimizer.route.<route>.cost.<strategy>.<what>`), so on Kong
//! every counter becomes one metric, `pw_cost_optimizer_cost_optimizer`,
//! with labels `route`, `stage` (cache, coalesce, limit, batch, budget,
//! cost, accounting), `strategy` (on cost counters) and `counter`; the
//! `route` and `strategy` values are those Envoy's `stats_tags` give. A
//! dotted name would not be a valid Prometheus name anyway.
//!
//! Kong's regexes run in PCRE; this test runs the same patterns with the
//! `regex` crate, which refuses the PCRE-only features (look-around,
//! `\G`), so the patterns stay in the part both read alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use optimizer_core::config;
use optimizer_core::mem_host::MemHost;
use optimizer_core::metrics::Metrics;
use regex::Regex;
use serde_json::{json, Value};

use common::{meta, read, shipped_configs, without_wake};

const KONG_NAME: &str = "pw_cost_optimizer_cost_optimizer";

fn patterns() -> &'static [(String, Regex)] {
    static P: OnceLock<Vec<(String, Regex)>> = OnceLock::new();
    P.get_or_init(compile_patterns)
}

fn compile_patterns() -> Vec<(String, Regex)> {
    let meta = meta();
    let list = meta["metrics"]["label_patterns"]
        .as_array()
        .expect("metrics.label_patterns is a list");
    list.iter()
        .map(|p| {
            let label = p["label"].as_str().expect("label").to_string();
            let pattern = p["pattern"].as_str().expect("pattern");
            let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{label}: {pattern}: {e}"));
            (label, re)
        })
        .collect()
}

/// Kong's `parse_pw_key`: the Prometheus name and the labels of a metric
/// key, step for step (positions 1-based as in Lua).
fn kong_parse(key: &str, patterns: &[(String, Regex)]) -> (String, Vec<(String, String)>) {
    let mut labels = Vec::new();
    let mut first_label = key.len();
    // ctx.pos: where the next pattern starts (nil before the first match).
    let mut ctx_pos: Option<usize> = None;
    for (label, re) in patterns {
        let start = ctx_pos.map_or(0, |p| p - 1);
        let Some(caps) = re.captures_at(key, start) else {
            continue; // a failed match leaves ctx as it was
        };
        let whole = caps.get(0).unwrap();
        let span = caps.get(1).expect("capture 1: the label's span").as_str();
        let value = caps.get(2).expect("capture 2: the label's value").as_str();
        ctx_pos = Some(whole.end() + 1);
        let l_pos = whole.end() + 1 - span.len();
        labels.push((label.clone(), value.to_string()));
        first_label = first_label.min(l_pos);
    }
    let name = if first_label != key.len() {
        &key[..first_label - 1]
    } else {
        key
    };
    (name.replace(':', "_"), labels)
}

/// Envoy's tags for a stat name, from envoy/envoy.yaml's `stats_tags`
/// (capture 2 is the value, capture 1 what leaves the name).
fn envoy_tags(stat: &str) -> BTreeMap<String, String> {
    static TAGS: OnceLock<Vec<(String, Regex)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let yaml: serde_yaml::Value = serde_yaml::from_str(&read("envoy/envoy.yaml")).unwrap();
        let tags = yaml["stats_config"]["stats_tags"]
            .as_sequence()
            .expect("envoy.yaml has stats_tags");
        tags.iter()
            .map(|t| {
                let name = t["tag_name"].as_str().unwrap().to_string();
                (name, Regex::new(t["regex"].as_str().unwrap()).unwrap())
            })
            .collect()
    });
    let mut out = BTreeMap::new();
    for (name, re) in tags {
        if let Some(c) = re.captures(stat) {
            out.insert(name.clone(), c.get(2).unwrap().as_str().to_string());
        }
    }
    out
}

/// Every counter the filter defines for the shipped demo config plus a
/// rule with every strategy and an unusual name.
fn counter_names() -> Vec<String> {
    let (_, demo) = shipped_configs()
        .into_iter()
        .find(|(o, _)| o.starts_with("envoy/envoy.yaml"))
        .unwrap();
    let mut demo = without_wake(&demo);
    demo["routes"].as_array_mut().unwrap().push(json!({
        "name": "A-1_b", "match": {"prefix": "/x"},
        "cache": {}, "coalesce": {},
        "limit": {"token_bucket": {"capacity": 1, "refill_per_s": 1}},
        "batch": {"upstream": "u", "path": "/b", "window_ms": 10},
        "cost": {"cost_per_call": "0.1", "budget": {}}
    }));
    let config = config::parse(&serde_json::to_vec(&demo).unwrap()).unwrap();
    let mut host = MemHost::new();
    Metrics::define(&config, &mut host);
    host.counters.keys().cloned().collect()
}

fn labels_of(name: &str) -> BTreeMap<String, String> {
    let (kong_name, labels) = kong_parse(&format!("pw:cost_optimizer:{name}"), patterns());
    assert_eq!(kong_name, KONG_NAME, "{name}");
    let map: BTreeMap<String, String> = labels.iter().cloned().collect();
    assert_eq!(map.len(), labels.len(), "{name}: a label twice: {labels:?}");
    map
}

#[test]
fn kong_parse_follows_kongs_spec_example() {
    // Kong's own test (spec/03-plugins/26-prometheus/09-wasmx_spec.lua):
    // labels at the end of the name, in order.
    let p = vec![
        (
            "service".to_string(),
            Regex::new("(_s_id=([0-9a-z-]+))").unwrap(),
        ),
        (
            "route".to_string(),
            Regex::new("(_r_id=([0-9a-z-]+))").unwrap(),
        ),
    ];
    let (name, labels) = kong_parse("pw:tests:a_labeled_counter_s_id=mock2_r_id=mock2-route", &p);
    assert_eq!(name, "pw_tests_a_labeled_counter");
    assert_eq!(
        labels,
        [
            ("service".into(), "mock2".into()),
            ("route".into(), "mock2-route".into())
        ]
    );
    // The second pattern starts where the first match ended.
    let (_, labels) = kong_parse("pw:tests:c_r_id=x_s_id=y", &p);
    assert_eq!(labels, [("service".to_string(), "y".to_string())]);
}

#[test]
fn every_counter_is_one_kong_metric_with_labels_that_give_its_name_back() {
    let names = counter_names();
    assert!(names.len() > 100, "{} counters", names.len());
    let mut seen = BTreeSet::new();
    for name in &names {
        let l = labels_of(name);
        // Lossless: the labels spell the filter's name again ...
        let mut back = String::from("cost_optimizer");
        if let Some(r) = l.get("route") {
            back.push_str(&format!(".route.{r}"));
        }
        for k in ["stage", "strategy", "provider", "counter"] {
            if let Some(v) = l.get(k) {
                if k == "provider" {
                    back.push_str(".provider");
                }
                back.push_str(&format!(".{v}"));
            }
        }
        assert_eq!(&back, name, "labels {l:?}");
        // ... so no two counters share a series.
        assert!(seen.insert(l.clone()), "{name}: labels {l:?} taken");
        assert!(l.contains_key("counter"), "{name}: no counter label");
    }
}

#[test]
fn route_and_strategy_are_envoys_tags() {
    for name in counter_names() {
        let kong: BTreeMap<String, String> = labels_of(&name)
            .into_iter()
            .filter(|(k, _)| k == "route" || k == "strategy" || k == "provider")
            .collect();
        assert_eq!(kong, envoy_tags(&format!("wasmcustom.{name}")), "{name}");
    }
}

#[test]
fn labels_of_each_kind_of_counter() {
    let cases: [(&str, Value); 8] = [
        (
            "cost_optimizer.route.search.routing.provider.secondary.served",
            json!({"route": "search", "stage": "routing", "provider": "secondary", "counter": "served"}),
        ),
        (
            "cost_optimizer.route.search.routing.failovers",
            json!({"route": "search", "stage": "routing", "counter": "failovers"}),
        ),
        (
            "cost_optimizer.route.items.cost.cache.saving_micros",
            json!({"route": "items", "stage": "cost", "strategy": "cache", "counter": "saving_micros"}),
        ),
        (
            "cost_optimizer.route.items.coalesce.coalesced",
            json!({"route": "items", "stage": "coalesce", "counter": "coalesced"}),
        ),
        (
            "cost_optimizer.route.quotes.batch.batches",
            json!({"route": "quotes", "stage": "batch", "counter": "batches"}),
        ),
        (
            "cost_optimizer.route.items.requests",
            json!({"route": "items", "counter": "requests"}),
        ),
        (
            "cost_optimizer.route.cost.cost.batched.requests",
            json!({"route": "cost", "stage": "cost", "strategy": "batched", "counter": "requests"}),
        ),
        (
            "cost_optimizer.accounting.spend_batches",
            json!({"stage": "accounting", "counter": "spend_batches"}),
        ),
    ];
    for (name, want) in cases {
        let want: BTreeMap<String, String> = serde_json::from_value(want).unwrap();
        assert_eq!(labels_of(name), want, "{name}");
    }
}
