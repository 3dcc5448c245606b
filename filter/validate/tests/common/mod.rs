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

/// `config` without its `wake` block.
pub fn without_wake(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("wake");
    }
    c
}
