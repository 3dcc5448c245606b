//! `cost-optimizer-validate` as a user runs it, and the shipped Kong files
//! it checks: a good file, a bad one (the field named, exit 1), standard
//! input, the configs inside envoy/envoy.yaml, kong/kong.yml and
//! kong/kong-plugin.yml, bad usage; and that the Kong files carry the
//! Envoy demo's config, adapted only where Kong needs it, with a
//! shared-memory zone in kong/kong.conf big enough for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cost_optimizer_validate::kong_shm;
use serde_json::{json, Value};

use common::{read, repo_root, shipped_configs, without_wake};

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cost-optimizer-validate"))
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cost-optimizer-validate");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str, content: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("validate-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_good_file_is_ok_with_a_summary() {
    let f = scratch(
        "good.json",
        r#"{"version": 1, "routes": [{"name": "items", "match": {"prefix": "/api/items"}, "cache": {}}]}"#,
    );
    let out = run(&[path(&f)], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "ok: {}: host envoy, 1 route: items (cache); no accounting\n",
            f.display()
        )
    );
}

#[test]
fn a_bad_file_names_the_field_and_fails() {
    let f = scratch(
        "bad.json",
        r#"{"version": 1, "routes": [{"name": "a", "match": {"prefix": "/"}, "sla_ms": 0}]}"#,
    );
    let out = run(&[path(&f)], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("error: {}: routes[0].sla_ms: must be > 0\n", f.display())
    );
    assert!(out.stdout.is_empty());

    let f = scratch("typo.json", r#"{"version": 1, "rotues": []}"#);
    let out = run(&[path(&f)], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(": rotues: unknown field `rotues`"), "{err}");

    let out = run(&[path(&scratch("not.json", "{version: 1"))], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn standard_input() {
    let out = run(&["-"], Some(br#"{"version": 1, "host": "kong"}"#));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: -: host kong, 0 routes"));
    let out = run(&["-"], Some(br#"{"version": 2}"#));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error: -: version: unsupported version 2"));
}

#[test]
fn the_shipped_envoy_yaml_passes() {
    let out = run(&["--envoy-yaml", "envoy/envoy.yaml"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains(
            "host envoy, 6 routes: items (cache, coalesce, cost), quotes (batch, cost), \
             graphql (batch, cost), search (routing, cost), chat (cache, coalesce, prompt, cost), \
             reports (limit, cost, budget); accounting -> cost_control"
        ),
        "{stdout}"
    );
}

#[test]
fn the_shipped_kong_files_pass() {
    for file in ["kong/kong.yml", "kong/kong-plugin.yml"] {
        let out = run(&["--kong-yml", file], None);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with(&format!("ok: {file}: services[0].")),
            "{stdout}"
        );
        assert!(
            stdout.contains("host kong, 6 routes: items (cache, coalesce, cost)"),
            "{stdout}"
        );
        assert!(
            stdout.contains("; Kong needs nginx_wasm_shm_kv_cost_optimizer >= 123m"),
            "{stdout}"
        );
    }
}

#[test]
fn print_config_prints_each_config_on_one_line() {
    let out = run(
        &["--envoy-yaml", "envoy/envoy.yaml", "--print-config"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("ok: envoy/envoy.yaml: "));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    let printed: Value = serde_json::from_str(stdout.trim_end()).unwrap();
    let (_, shipped) = &shipped_configs()[0];
    assert_eq!(&printed, shipped);
}

#[test]
fn nothing_to_check_and_bad_usage() {
    let f = scratch("other.yml", "_format_version: \"3.0\"\nservices: []\n");
    let out = run(&["--kong-yml", path(&f)], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no filter named cost_optimizer in it"));
    // Another name: the filter's .wasm renamed.
    let out = run(
        &["--kong-yml", "kong/kong.yml", "--name", "optimizer"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));

    for args in [
        &[][..],
        &["--kong-yml"],
        &["a.json", "b.json"],
        &["--frobnicate", "a"],
    ] {
        let out = run(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("usage:"), "{args:?}");
    }
    let out = run(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage:"));
}

/// The Kong demo is the Envoy demo with Kong's adaptations, and nothing
/// else: `host`, `wake`, callout targets as IP:port, and the body bounds
/// that size the shared-memory zone.
#[test]
fn the_kong_demo_is_the_envoy_demo_adapted() {
    let configs = shipped_configs();
    let get = |prefix: &str| {
        configs
            .iter()
            .find(|(o, _)| o.starts_with(prefix))
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("no config in {prefix}"))
    };
    let envoy = get("envoy/envoy.yaml");
    let kong = get("kong/kong.yml");
    assert_eq!(
        kong,
        get("kong/kong-plugin.yml"),
        "kong.yml and kong-plugin.yml differ"
    );
    assert_eq!(kong["host"], "kong");
    assert_eq!(
        kong["wake"],
        json!({"target": "127.0.0.1:8081", "authority": "cost-control"})
    );
    let normalise = |c: &Value| {
        let mut c = without_wake(c);
        c.as_object_mut().unwrap().remove("host");
        c["cache_store"]
            .as_object_mut()
            .unwrap()
            .remove("max_entry_bytes");
        for r in c["routes"].as_array_mut().unwrap() {
            if let Some(co) = r.get_mut("coalesce").and_then(Value::as_object_mut) {
                co.remove("max_body_bytes");
            }
            // Kong routes through a property (the engine's nginx variable).
            if let Some(rt) = r.get_mut("routing").and_then(Value::as_object_mut) {
                rt.remove("kong_property");
            }
        }
        let text = serde_json::to_string(&c)
            .unwrap()
            .replace("\"127.0.0.1:8080\"", "\"demo_api\"")
            .replace("\"127.0.0.1:8081\"", "\"cost_control\"")
            .replace("\"127.0.0.1:8082\"", "\"demo_api_b\"");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    assert_eq!(normalise(&kong), normalise(&envoy));
}

#[test]
fn kong_conf_sizes_the_zone_for_the_demo() {
    let conf = read("kong/kong.conf");
    let line = conf
        .lines()
        .find(|l| l.starts_with("nginx_wasm_shm_kv_cost_optimizer"))
        .expect("kong.conf sets nginx_wasm_shm_kv_cost_optimizer");
    let value = line.split_once('=').unwrap().1.trim();
    assert!(value.ends_with(" eviction=none"), "{line}");
    let mib: u64 = value
        .split_whitespace()
        .next()
        .and_then(|s| s.strip_suffix('m'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}: give the size in m"));
    let (_, kong) = shipped_configs()
        .into_iter()
        .find(|(o, _)| o.starts_with("kong/kong.yml"))
        .unwrap();
    // The zone does not depend on `wake`: measured without it, so this
    // also runs on a parser that predates it.
    let config =
        optimizer_core::config::parse(&serde_json::to_vec(&without_wake(&kong)).unwrap()).unwrap();
    let need = kong_shm::estimate(&config).unwrap();
    assert!(
        need.total_mib() <= mib,
        "kong.conf gives {mib}m, the demo config needs {}m",
        need.total_mib()
    );
    assert!(
        mib < need.total_mib() * 2,
        "kong.conf's {mib}m is far above the need"
    );
}
