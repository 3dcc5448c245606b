//! The filter configs inside a gateway's own config file, as the filter
//! would receive them.
//!
//! - Kong (`kong.yml`, declarative format 3.0): every `filter_chains[].
//!   filters[]` entry and every `plugins[]` entry (Kong 3.9+ filter
//!   plugins) whose `name` is the filter's, at any depth (top level, under
//!   services, under routes). Their `config` is a JSON string (Kong 3.4,
//!   or any Kong without the filter's meta file) or a YAML object (3.5+
//!   with `cost_optimizer.meta.json`), which Kong hands to the filter as
//!   JSON; absent, the filter gets an empty config.
//! - Envoy (`envoy.yaml`): every HTTP filter of type
//!   `envoy.extensions.filters.http.wasm.v3.Wasm` whose `config.root_id`
//!   (or, without one, `config.name`) is the filter's; its
//!   `configuration` is a `google.protobuf.StringValue`.

use serde_yaml::Value;

/// One filter config found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is, e.g. `services[0].routes[0].filter_chains[0].filters[0]`.
    pub origin: String,
    /// The bytes the filter's `on_configure` gets.
    pub json: Vec<u8>,
    /// False when the gateway's config switches it off (Kong
    /// `enabled: false` on the filter, its chain or its plugin).
    pub enabled: bool,
}

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";

type Walk = fn(&Value, &str, &str, &mut Vec<Found>) -> Result<(), String>;

fn collect(text: &str, name: &str, walk: Walk) -> Result<Vec<Found>, String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let mut found = Vec::new();
    walk(&doc, "", name, &mut found)?;
    Ok(found)
}

/// The configs of filter `name` in a Kong declarative config.
pub fn from_kong_yml(text: &str, name: &str) -> Result<Vec<Found>, String> {
    collect(text, name, kong_walk)
}

fn kong_walk(v: &Value, path: &str, name: &str, out: &mut Vec<Found>) -> Result<(), String> {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let Some(key) = k.as_str() else { continue };
                let here = join(path, key);
                match (key, child) {
                    ("filter_chains", Value::Sequence(chains)) => {
                        for (i, chain) in chains.iter().enumerate() {
                            let chain_path = format!("{here}[{i}]");
                            let on = enabled(chain);
                            let filters = chain.get("filters").and_then(Value::as_sequence);
                            for (j, f) in filters.into_iter().flatten().enumerate() {
                                if is_named(f, name) {
                                    out.push(kong_found(
                                        f,
                                        format!("{chain_path}.filters[{j}]"),
                                        on,
                                    )?);
                                }
                            }
                        }
                    }
                    ("plugins", Value::Sequence(plugins)) => {
                        for (i, p) in plugins.iter().enumerate() {
                            if is_named(p, name) {
                                out.push(kong_found(p, format!("{here}[{i}]"), true)?);
                            }
                        }
                    }
                    _ => {}
                }
                kong_walk(child, &here, name, out)?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                kong_walk(item, &format!("{path}[{i}]"), name, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn kong_found(entry: &Value, origin: String, chain_enabled: bool) -> Result<Found, String> {
    let json = match entry.get("config") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other)
            .map_err(|e| format!("{origin}.config: cannot be written as JSON: {e}"))?,
    };
    Ok(Found {
        origin,
        json,
        enabled: chain_enabled && enabled(entry),
    })
}

fn enabled(v: &Value) -> bool {
    v.get("enabled").and_then(Value::as_bool).unwrap_or(true)
}

fn is_named(v: &Value, name: &str) -> bool {
    v.get("name").and_then(Value::as_str) == Some(name)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The configs of the Wasm HTTP filter whose root id is `root_id` in an
/// Envoy bootstrap config.
pub fn from_envoy_yaml(text: &str, root_id: &str) -> Result<Vec<Found>, String> {
    collect(text, root_id, envoy_walk)
}

fn envoy_walk(v: &Value, path: &str, root_id: &str, out: &mut Vec<Found>) -> Result<(), String> {
    match v {
        Value::Mapping(m) => {
            if m.get("@type").and_then(Value::as_str) == Some(WASM_TYPE) {
                let config = m.get("config");
                let id = config
                    .and_then(|c| c.get("root_id").or_else(|| c.get("name")))
                    .and_then(Value::as_str);
                if id == Some(root_id) {
                    out.push(envoy_found(config, path)?);
                }
            }
            for (k, child) in m {
                if let Some(key) = k.as_str() {
                    envoy_walk(child, &join(path, key), root_id, out)?;
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                envoy_walk(item, &format!("{path}[{i}]"), root_id, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn envoy_found(config: Option<&Value>, path: &str) -> Result<Found, String> {
    let origin = format!("{path}.config.configuration");
    let json = match config.and_then(|c| c.get("configuration")) {
        None | Some(Value::Null) => Vec::new(),
        Some(c) => {
            let kind = c.get("@type").and_then(Value::as_str);
            if kind != Some(STRING_VALUE) {
                return Err(format!(
                    "{origin}: only {STRING_VALUE} is read here, not {}",
                    kind.unwrap_or("(no @type)")
                ));
            }
            c.get("value")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        }
    };
    Ok(Found {
        origin,
        json,
        enabled: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_configs_at_every_level_as_object_or_string() {
        let yml = r#"
_format_version: "3.0"
filter_chains:
- name: global
  enabled: false
  filters:
  - name: cost_optimizer
    config: '{"version": 1}'
services:
- name: demo
  url: http://127.0.0.1:8080
  filter_chains:
  - filters:
    - name: other_filter
    - name: cost_optimizer
      config: {version: 1, host: kong, routes: []}
  routes:
  - name: r
    paths: [/]
    plugins:
    - name: cost_optimizer
      enabled: false
    - name: rate-limiting
      config: {minute: 5}
"#;
        let found = from_kong_yml(yml, "cost_optimizer").unwrap();
        let origins: Vec<&str> = found.iter().map(|f| f.origin.as_str()).collect();
        assert_eq!(
            origins,
            [
                "filter_chains[0].filters[0]",
                "services[0].filter_chains[0].filters[1]",
                "services[0].routes[0].plugins[0]",
            ]
        );
        assert_eq!(found[0].json, br#"{"version": 1}"#);
        assert!(!found[0].enabled);
        let v: serde_json::Value = serde_json::from_slice(&found[1].json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"version": 1, "host": "kong", "routes": []})
        );
        assert!(found[1].enabled);
        assert_eq!(found[2].json, b"");
        assert!(!found[2].enabled);
    }

    #[test]
    fn envoy_wasm_filters_by_root_id() {
        let yaml = r#"
static_resources:
  listeners:
  - filter_chains:
    - filters:
      - typed_config:
          http_filters:
          - name: cost_optimizer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                root_id: cost_optimizer
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{"version": 1}'
          - name: another
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config: {root_id: other}
"#;
        let found = from_envoy_yaml(yaml, "cost_optimizer").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].json, br#"{"version": 1}"#);
        assert!(found[0]
            .origin
            .ends_with("http_filters[0].typed_config.config.configuration"));
        let bytes = yaml.replace("google.protobuf.StringValue", "google.protobuf.BytesValue");
        let err = from_envoy_yaml(&bytes, "cost_optimizer").unwrap_err();
        assert!(
            err.contains("only type.googleapis.com/google.protobuf.StringValue"),
            "{err}"
        );
    }

    #[test]
    fn not_yaml_is_an_error() {
        assert!(from_kong_yml("a: [", "x")
            .unwrap_err()
            .starts_with("not YAML"));
    }
}
