//! Shared by the tests of this crate: where the shipped files are, and
//! the filter configs inside them.

#![allow(dead_code)]

use std::path::PathBuf;

use cost_optimizer_validate::{from_envoy_yaml, from_kong_yml, Found};
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn read(rel: &str) -> String {
    let p = repo_root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `kong/cost_optimizer.meta.json`.
pub fn meta() -> Value {
    serde_json::from_str(&read("kong/cost_optimizer.meta.json"))
        .unwrap_or_else(|e| panic!("kong/cost_optimizer.meta.json is not JSON: {e}"))
}

/// Every filter config a shipped file holds, as JSON values, by origin.
pub fn shipped_configs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut add = |file: &str, found: Result<Vec<Found>, String>| {
        let found = found.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!found.is_empty(), "{file} holds no cost_optimizer config");
        for f in found {
            let v: Value = serde_json::from_slice(&f.json)
                .unwrap_or_else(|e| panic!("{file}: {}: not JSON: {e}", f.origin));
            out.push((format!("{file}: {}", f.origin), v));
        }
    };
    add(
        "envoy/envoy.yaml",
        from_envoy_yaml(&read("envoy/envoy.yaml"), "cost_optimizer"),
    );
    for file in ["kong/kong.yml", "kong/kong-plugin.yml"] {
        add(file, from_kong_yml(&read(file), "cost_optimizer"));
    }
    out
}

/// Whether this build's parser reads `wake` and the Kong rules that came
/// with it (issue 14: callout targets as host:port, a wake target for
/// rules that park, no JWT claim sources). They were written on another
/// branch at the same time as the Kong files; until the two meet, the
/// tests say exactly how this parser differs instead of skipping.
pub fn parser_knows_wake() -> bool {
    match optimizer_core::config::parse(br#"{"version": 1, "wake": {"target": "127.0.0.1:1"}}"#) {
        Ok(_) => true,
        Err(e) if e.to_string().contains("unknown field `wake`") => false,
        Err(e) => panic!("the parser refuses a minimal wake block for another reason: {e}"),
    }
}

/// `config` without its `wake` block.
pub fn without_wake(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("wake");
    }
    c
}
