//! The Istio manifests in `istio/` (issue 17): each Istio resource is
//! valid against Istio's published CRD schema (a copy in
//! `tests/fixtures/istio-crds.yaml`, origin and licence beside it), with
//! unknown fields refused as the API server's strict field validation
//! does; the WasmPlugins and the EnvoyFilter carry the same filter config,
//! byte for byte, and the filter accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use jsonschema::Validator;
use optimizer_core::config;
use serde::Deserialize;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Every YAML document of a file, as JSON values.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            let v = serde_yaml::Value::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The `openAPIV3Schema` of `kind` at `api_version` (`group/version`).
fn crd_schema(api_version: &str, kind: &str) -> Option<Value> {
    let (group, version) = api_version.split_once('/')?;
    documents(&read("filter/validate/tests/fixtures/istio-crds.yaml"))
        .into_iter()
        .filter(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind)
        .flat_map(|crd| {
            crd["spec"]["versions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
}

/// Fields the schema does not declare (the API server refuses them with
/// strict field validation, and prunes them otherwise: either way the
/// operator's setting is lost).
fn unknown_fields(schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                let here = format!("{at}.{k}");
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(s), _) => unknown_fields(s, v, &here, out),
                    (None, Some(s)) => unknown_fields(s, v, &here, out),
                    (None, None) => out.push(format!("{here}: unknown field")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(s, v, &format!("{at}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// What the API server would say of an Istio resource (empty: accepted).
fn problems(doc: &Value) -> Vec<String> {
    let api = doc["apiVersion"].as_str().unwrap_or("");
    let kind = doc["kind"].as_str().unwrap_or("");
    let Some(schema) = crd_schema(api, kind) else {
        return vec![format!("no CRD for {api} {kind}")];
    };
    let validator = Validator::new(&schema).unwrap();
    let mut out: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    unknown_fields(
        &schema["properties"]["spec"],
        &doc["spec"],
        "spec",
        &mut out,
    );
    out
}

const ISTIO_FILES: [&str; 5] = [
    "istio/wasmplugin-gateway.yaml",
    "istio/wasmplugin-sidecar.yaml",
    "istio/envoyfilter.yaml",
    "istio/stats.yaml",
    "istio/serviceentry-provider.yaml",
];

#[test]
fn every_istio_resource_is_valid_against_istios_crds() {
    let mut checked = 0;
    for file in ISTIO_FILES {
        for doc in documents(&read(file)) {
            let p = problems(&doc);
            assert!(
                p.is_empty(),
                "{file}: {} {}: {p:#?}",
                doc["kind"],
                doc["metadata"]["name"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6, "Istio resources checked");
}

#[test]
fn a_wrong_field_is_refused() {
    let doc = documents(&read("istio/wasmplugin-gateway.yaml")).remove(0);
    let mut misspelled = doc.clone();
    let spec = misspelled["spec"].as_object_mut().unwrap();
    let config = spec.remove("pluginConfig").unwrap();
    spec.insert("pluginConfg".into(), config);
    assert!(
        problems(&misspelled)
            .iter()
            .any(|p| p.contains("spec.pluginConfg: unknown field")),
        "{:?}",
        problems(&misspelled)
    );
    let mut bad_enum = doc.clone();
    bad_enum["spec"]["failStrategy"] = "FAIL_SOMETIMES".into();
    assert!(!problems(&bad_enum).is_empty());
    let mut bad_phase = doc;
    bad_phase["spec"]["phase"] = "ROUTER".into();
    assert!(!problems(&bad_phase).is_empty());
    let ef = documents(&read("istio/envoyfilter.yaml")).remove(0);
    let mut wrong = ef.clone();
    wrong["spec"]["configPatches"][0]["applyTo"] = "HTTP_FILTERS".into();
    assert!(!problems(&wrong).is_empty());
}

/// The config each Istio file gives the filter, as text.
fn configs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in [
        "istio/wasmplugin-gateway.yaml",
        "istio/wasmplugin-sidecar.yaml",
    ] {
        let doc = documents(&read(file)).remove(0);
        // Istio hands pluginConfig to the filter as JSON.
        out.push((
            file.into(),
            serde_json::to_string(&doc["spec"]["pluginConfig"]).unwrap(),
        ));
    }
    let ef = documents(&read("istio/envoyfilter.yaml")).remove(0);
    let wasm = &ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"];
    out.push((
        "istio/envoyfilter.yaml".into(),
        wasm["configuration"]["value"].as_str().unwrap().to_string(),
    ));
    let json: Value = serde_json::from_str(&read("istio/filter-config.json")).unwrap();
    out.push((
        "istio/filter-config.json".into(),
        serde_json::to_string(&json).unwrap(),
    ));
    out
}

#[test]
fn the_wasmplugins_and_the_envoyfilter_carry_the_same_config_and_the_filter_takes_it() {
    let all = configs();
    let (_, first) = &all[0];
    for (file, text) in &all {
        assert_eq!(
            text, first,
            "{file} differs from istio/wasmplugin-gateway.yaml"
        );
    }
    let cfg =
        config::parse(first.as_bytes()).unwrap_or_else(|e| panic!("the filter refuses it: {e}"));
    assert_eq!(cfg.routes.len(), 3);
    // The callout targets are the clusters Istio generates for the
    // Services (outbound|<port>||<host>).
    let acc = cfg.accounting.as_ref().unwrap();
    assert_eq!(
        acc.cost_control,
        "outbound|8081||cost-control.cost-optimizer.svc.cluster.local"
    );
    let batch = cfg.routes[1].batch.as_ref().unwrap();
    assert!(batch.upstream.starts_with("outbound|8080||"));
    assert_eq!(batch.authority, "demo-api.default.svc.cluster.local");
}

#[test]
fn the_stats_tags_are_envoy_yamls() {
    let stats = documents(&read("istio/stats.yaml")).remove(0);
    let tags = &stats["spec"]["configPatches"][0]["patch"]["value"]["stats_config"]["stats_tags"];
    let envoy: serde_yaml::Value = serde_yaml::from_str(&read("envoy/envoy.yaml")).unwrap();
    let envoy = serde_json::to_value(&envoy["stats_config"]["stats_tags"]).unwrap();
    assert_eq!(tags, &envoy);
}

#[test]
fn cost_control_reads_its_store_and_tokens_from_the_secret() {
    let docs = documents(&read("istio/cost-control.yaml"));
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Namespace", "Secret", "Deployment", "Service"]);
    let secret = &docs[1]["stringData"];
    let deployment = &docs[2]["spec"];
    let container = &deployment["template"]["spec"]["containers"][0];
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    // The variables cost-control reads (control/README.md).
    let readme = read("control/README.md");
    for name in &env {
        assert!(
            readme.contains(name),
            "{name} is not a cost-control setting"
        );
    }
    assert_eq!(
        container["env"][0]["valueFrom"]["secretKeyRef"]["key"],
        "store"
    );
    assert!(secret["store"].as_str().unwrap().starts_with("postgres://"));
    assert!(deployment["replicas"].as_u64().unwrap() >= 2);
    // The gateway token the filter sends is the one cost-control checks.
    let cfg: Value = serde_json::from_str(&read("istio/filter-config.json")).unwrap();
    assert_eq!(secret["gateway-token"], cfg["accounting"]["token"]);
    assert_eq!(docs[3]["spec"]["ports"][0]["port"], 8081);
}
