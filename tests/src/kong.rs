//! The Kong-engine test host for end-to-end tests: nginx + Kong's
//! ngx_wasm_module + wasmtime (built by `scripts/kong-host.sh`) running the
//! built `.wasm` on `kong/nginx.conf.template`, two workers, in front of
//! the demo API, on free loopback ports. Stopped on drop; its error log is
//! checked for wasm traps, panics and workers dying on a signal.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::envoy_config::Ports;
use crate::gateway::WORKERS;
use crate::http::{self, Resp};
use crate::procs::{port_open, repo_root, wait_for, Proc};
use crate::stack::wasm_path;
use crate::wire::{process_holds_socket, RawRequest};

const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// nginx refuses a config parameter of `NGX_CONF_BUFFER` (4096) bytes or
/// more; the filter config is one parameter of `proxy_wasm`.
const MAX_FILTER_CONFIG: usize = 4000;

/// The nginx binary of the Kong-engine host: `KONG_NGINX_BIN` when set
/// (it must exist), else what `scripts/kong-host.sh` prints (building it
/// into its cache the first time, seconds afterwards). Never skips: a host
/// that cannot be had fails the test with the script's message.
pub fn nginx_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("KONG_NGINX_BIN") {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "KONG_NGINX_BIN={} does not exist: unset it or run `make kong-host`",
                    p.display()
                ))
            };
        }
        let script = repo_root().join("scripts/kong-host.sh");
        let started = Instant::now();
        let out = Command::new(&script)
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{stderr}",
                script.display(),
                out.status
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let p = stdout
            .lines()
            .last()
            .map(|l| PathBuf::from(l.trim()))
            .ok_or_else(|| format!("{} printed no path:\n{stderr}", script.display()))?;
        eprintln!(
            "kong host: {} ({:.1} s for scripts/kong-host.sh)",
            p.display(),
            started.elapsed().as_secs_f64()
        );
        if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "{} printed {}, which does not exist:\n{stderr}",
                script.display(),
                p.display()
            ))
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(e) => panic!("the Kong-engine host is missing: {e}"),
    }
}

/// A wasmtime cache config shared by every test run, its cache in
/// `target/e2e/wasmtime-cache`: wasmtime compiles the module in every
/// worker at start (about 4 s each on a quiet 2-core machine, 35 s seen
/// with four workers starting on a busy one); with the cache only the
/// first start after the `.wasm` changed compiles.
pub fn wasmtime_cache_config() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let e2e = repo_root().join("target/e2e");
        let dir = e2e.join("wasmtime-cache");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // nginx's workers drop root for `nobody` and write the cache
        // themselves: the folder is open to all, like /tmp, and so is each
        // folder in it. (Folders wasmtime made as root, e.g. in a run of
        // nginx without workers, were seen to leave every later worker
        // unable to store a new module: each start then compiled it
        // again, 54 s on a busy 2-core machine.)
        open_to_all(&dir);
        let path = e2e.join("wasmtime-cache.toml");
        let text = format!(
            "[cache]\nenabled = true\ndirectory = \"{}\"\n",
            dir.display()
        );
        // Written under a name of this process and renamed: test binaries
        // may start hosts side by side.
        let tmp = e2e.join(format!("wasmtime-cache.toml.{}", std::process::id()));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &path)
            .unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
        path
    })
    .clone()
}

/// Mode 1777 on `dir` and every folder below it.
fn open_to_all(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            open_to_all(&entry.path());
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct KongPorts {
    /// The gateway, with the filter on `location /`.
    pub listen: u16,
    /// The demo API it proxies to.
    pub demo: u16,
    /// The second demo API (a second provider for routing).
    pub demo_b: u16,
}

/// The filter config as the body of a single-quoted nginx string: compact
/// JSON (no newline), `\` and `'` escaped, which nginx's config parser
/// undoes (it unescapes `\\`, `\'`, `\"`, `\t`, `\r`, `\n` in quoted
/// strings and keeps other backslashes).
pub fn quote_filter_config(filter: &serde_json::Value) -> String {
    let json = serde_json::to_string(filter).unwrap_or_else(|e| panic!("filter config: {e}"));
    json.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The Envoy-style filter config of a test, for the Kong host: `"host":
/// "kong"`, every callout target that names one of the test clusters
/// (`cost_control`, `demo_api`, `demo_api_b`, see `envoy_config::render`)
/// as `127.0.0.1:<its port>`, and with `wake` the cost-control that
/// parked requests wake themselves through (on Kong a paused request can
/// only be resumed from its own callout's answer, see DESIGN "Host
/// facts").
pub fn filter_config(filter: &serde_json::Value, ports: &Ports, wake: bool) -> serde_json::Value {
    let target = |cluster: &serde_json::Value, field: &str| -> serde_json::Value {
        let port = match cluster.as_str() {
            Some("cost_control") => ports.control,
            Some("demo_api") => ports.demo,
            Some("demo_api_b") => ports.demo_b,
            other => panic!("{field}: {other:?} is not a cluster of the test stacks"),
        };
        format!("127.0.0.1:{port}").into()
    };
    let mut out = crate::envoy_config::with_addresses(filter, ports);
    out["host"] = "kong".into();
    if let Some(acc) = out.get_mut("accounting").filter(|a| a.is_object()) {
        acc["cost_control"] = target(&acc["cost_control"], "accounting.cost_control");
    }
    if let Some(routes) = out.get_mut("routes").and_then(|r| r.as_array_mut()) {
        for (i, route) in routes.iter_mut().enumerate() {
            if let Some(batch) = route.get_mut("batch").filter(|b| b.is_object()) {
                batch["upstream"] =
                    target(&batch["upstream"], &format!("routes[{i}].batch.upstream"));
            }
            // The test host routes through the nginx variable its
            // `location /` proxies to (kong/nginx.conf.template).
            if let Some(routing) = route.get_mut("routing").filter(|r| r.is_object()) {
                routing["kong_property"] = "ngx.optimizer_target".into();
            }
            if let Some(refresh) = route
                .get_mut("cache")
                .and_then(|c| c.get_mut("refresh"))
                .filter(|r| r.is_object())
            {
                refresh["target"] = target(
                    &refresh["target"],
                    &format!("routes[{i}].cache.refresh.target"),
                );
            }
        }
    }
    if wake {
        out["wake"] = serde_json::json!({
            "target": format!("127.0.0.1:{}", ports.control),
            "authority": "cost-control"
        });
    }
    out
}

/// Whether a filter config has a feature that parks requests (coalescing,
/// a rate limit whose medium-priority requests queue, batching, a budget's
/// first-lease wait): on Kong those wake themselves through cost-control,
/// so a Kong stack with them runs one even when the test does not.
pub fn parks_requests(filter: &serde_json::Value) -> bool {
    let trusted_priority = filter["identity"]["priority_header"]["trusted"] == true;
    filter["routes"].as_array().is_some_and(|routes| {
        routes.iter().any(|r| {
            let medium = matches!(r["priority"].as_str(), None | Some("medium"));
            r.get("coalesce").is_some()
                || r.get("batch").is_some()
                || (r.get("limit").is_some() && (medium || trusted_priority))
                || r["cost"].get("budget").is_some()
        })
    })
}

/// `kong/nginx.conf.template` rendered for a run directory, the built
/// filter and `filter` (which must say `"host": "kong"`; callout targets on
/// Kong are `IP:port`).
pub fn render(
    prefix: &Path,
    wasm: &Path,
    cache_config: &Path,
    ports: &KongPorts,
    filter: &serde_json::Value,
) -> String {
    assert_eq!(
        filter["host"], "kong",
        "a filter config for the Kong host needs \"host\": \"kong\": {filter}"
    );
    let config = quote_filter_config(filter);
    assert!(
        config.len() < MAX_FILTER_CONFIG,
        "the filter config is {} bytes on one line; nginx refuses a parameter of 4096 bytes or more",
        config.len()
    );
    for p in [prefix, wasm, cache_config] {
        let s = p.display().to_string();
        assert!(
            !s.contains(['"', '\\', '$']),
            "path unusable in nginx.conf: {s}"
        );
    }
    let path = repo_root().join("kong/nginx.conf.template");
    let template =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = template;
    // The filter config last: its text is never searched for placeholders.
    for (name, value) in [
        ("PREFIX", prefix.display().to_string()),
        ("WASM", wasm.display().to_string()),
        ("SHM_KV_SIZE", "64m".to_string()),
        ("WASMTIME_CACHE_CONFIG", cache_config.display().to_string()),
        ("LISTEN_PORT", ports.listen.to_string()),
        ("DEMO_PORT", ports.demo.to_string()),
        ("DEMO_B_PORT", ports.demo_b.to_string()),
    ] {
        let placeholder = format!("@{name}@");
        assert!(
            out.contains(&placeholder),
            "{} no longer contains {placeholder}",
            path.display()
        );
        out = out.replace(&placeholder, &value);
    }
    let (before, after) = out
        .split_once("@FILTER_CONFIG@")
        .unwrap_or_else(|| panic!("{} no longer contains @FILTER_CONFIG@", path.display()));
    if let Some(left) = find_placeholder(before).or_else(|| find_placeholder(after)) {
        panic!("unreplaced placeholder {left} in {}", path.display());
    }
    format!("{before}{config}{after}")
}

/// The first `@NAME@` (NAME of A-Z and _) in `s`.
fn find_placeholder(s: &str) -> Option<&str> {
    s.match_indices('@').find_map(|(i, _)| {
        let rest = &s[i + 1..];
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_uppercase() || *c == b'_')
            .count();
        (n > 0 && rest.as_bytes().get(n) == Some(&b'@')).then(|| &s[i..i + n + 2])
    })
}

/// Error-log lines that must never appear: a wasm trap (a host function
/// refused or the module faulted; the host then rebuilds the worker's
/// instance and its state is lost), a Rust panic in the filter, a worker
/// killed by a signal, and nginx's alert/crit/emerg levels.
pub fn log_problems(log: &str) -> Vec<&str> {
    const BAD: [&str; 7] = [
        "trap",
        "panicked",
        "error while executing",
        "exited on signal",
        "[alert]",
        "[crit]",
        "[emerg]",
    ];
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            BAD.iter().any(|b| l.contains(b))
        })
        .collect()
}

/// nginx with the Kong engine, running the filter.
pub struct Kong {
    pub ports: KongPorts,
    pub dir: PathBuf,
    pub error_log: PathBuf,
    proc: Proc,
    /// Started to be refused: its log is not checked on drop.
    refused: bool,
}

impl Kong {
    /// Render the config into `dir`, start nginx (two workers) and wait
    /// until both workers configured the filter and the port answers.
    pub fn start(ports: KongPorts, filter: &serde_json::Value, dir: &Path) -> Kong {
        let mut kong = Self::spawn(ports, filter, dir);
        kong.wait_ready();
        kong
    }

    /// Start nginx on a filter config it must refuse: `nginx -t` does not
    /// run the filter's `on_configure`, so nginx starts, and each worker
    /// logs the filter's error and exits while the master keeps the port.
    /// Answers the error log once it shows the refusal.
    pub fn start_expecting_refusal(
        ports: KongPorts,
        filter: &serde_json::Value,
        dir: &Path,
    ) -> String {
        let mut kong = Self::spawn(ports, filter, dir);
        let log = wait_for(
            "the Kong host's workers to refuse the filter config",
            START_TIMEOUT,
            || {
                let log = kong.error_log_text();
                if log.contains("invalid configuration") {
                    return Some(log);
                }
                if let Some(code) = kong.proc.exited() {
                    panic!(
                        "nginx exited ({code:?}) without the filter refusing its config:\n{log}"
                    );
                }
                None
            },
        );
        // The refusal is the point: stop without checking the log.
        kong.refused = true;
        log
    }

    fn spawn(ports: KongPorts, filter: &serde_json::Value, dir: &Path) -> Kong {
        let nginx = nginx_bin();
        let conf = dir.join("nginx.conf");
        let cache_config = wasmtime_cache_config();
        std::fs::write(
            &conf,
            render(dir, &wasm_path(), &cache_config, &ports, filter),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let error_log = dir.join("error.log");
        let args: Vec<String> = vec![
            "-p".into(),
            format!("{}/", dir.display()),
            "-c".into(),
            conf.display().to_string(),
            "-e".into(),
            error_log.display().to_string(),
        ];
        let proc = Proc::spawn("nginx", &nginx, &args, dir);
        Kong {
            ports,
            dir: dir.to_path_buf(),
            error_log,
            proc,
            refused: false,
        }
    }

    fn wait_ready(&mut self) {
        let ready_url = format!("http://127.0.0.1:{}/__host_ready", self.ports.listen);
        wait_for(
            "the Kong host: both workers configured the filter, the port answers",
            START_TIMEOUT,
            || {
                if let Some(code) = self.proc.exited() {
                    panic!(
                        "nginx exited early ({code:?}):\n{}\n{}",
                        self.proc.log_text(),
                        self.error_log_text()
                    );
                }
                let log = self.error_log_text();
                // A worker that cannot configure the filter exits and is
                // not respawned, while the master keeps the port: clients
                // would hang, so look for it rather than wait.
                if log.contains("invalid configuration") || log.contains("exited with code") {
                    let why: Vec<&str> = log
                        .lines()
                        .filter(|l| l.contains("invalid configuration") || l.contains("[emerg]"))
                        .collect();
                    panic!(
                        "the Kong host refused its config:\n{}\n(whole log: {})",
                        why.join("\n"),
                        self.error_log.display()
                    );
                }
                let configured = log.matches("configured with").count();
                let answers = configured >= WORKERS
                    && port_open(self.ports.listen)
                    && http::try_request("GET", &ready_url, &[], None)
                        .map(|r| r.status == 200)
                        .unwrap_or(false);
                answers.then_some(())
            },
        );
    }

    /// URL through the filter.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http::get(&self.url(path), headers)
    }

    /// The whole error log (the filter's own log lines are there too).
    pub fn error_log_text(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// The worker processes, in pid order.
    pub fn workers(&self) -> Vec<u32> {
        let mut pids = children(self.proc.pid());
        pids.sort_unstable();
        pids
    }

    /// Which worker (its index in [`Kong::workers`]) holds the gateway's
    /// end of `req`'s connection (after it accepted it).
    pub fn worker_holding(&self, req: &RawRequest) -> Option<usize> {
        let inode = req.server_socket()?.inode;
        self.workers()
            .iter()
            .position(|pid| process_holds_socket(*pid, inode))
    }

    /// Stop nginx: SIGTERM to the master (fast shutdown, it stops its
    /// workers), SIGKILL to it and its workers when that takes too long.
    fn stop(&mut self) {
        if self.proc.exited().is_some() {
            return;
        }
        let master = self.proc.pid();
        let workers = children(master);
        signal("TERM", master);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.proc.exited().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.proc.exited().is_none() {
            eprintln!("nginx (pid {master}) did not stop in {STOP_TIMEOUT:?}: killing it");
            signal("KILL", master);
            self.proc.kill();
        }
        // Workers of a master that died are orphans: end ours by pid.
        for w in workers {
            if Path::new(&format!("/proc/{w}")).exists() {
                signal("KILL", w);
            }
        }
    }
}

/// Pids of a process's children (nginx's workers).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// Every Kong gateway is checked when it is dropped (the end of a test,
/// or a second gateway going away): a wasm trap, a panic, a worker killed
/// by a signal or nginx gone fails the test. When the test failed already,
/// the problems and the log's tail are printed instead.
impl Drop for Kong {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let mut problems: Vec<String> = if self.refused {
            Vec::new()
        } else {
            log_problems(&self.error_log_text())
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        if let Some(code) = self.proc.exited().filter(|_| !self.refused) {
            problems.push(format!("nginx exited while the test ran ({code:?})"));
        }
        self.stop();
        let report = format!(
            "the Kong host's error log ({}) shows traps, panics or dead workers:\n{}",
            self.error_log.display(),
            problems.join("\n")
        );
        if failing {
            if !problems.is_empty() {
                eprintln!("{report}");
            }
            let text = self.error_log_text();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            eprintln!(
                "----- last lines of nginx's error log ({}) -----",
                self.error_log.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        } else if !problems.is_empty() {
            panic!("{report}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_config_is_escaped_for_a_single_quoted_nginx_string() {
        let v = json!({"a": "it's", "b": "back\\slash", "c": "quote\""});
        assert_eq!(
            quote_filter_config(&v),
            r#"{"a":"it\'s","b":"back\\\\slash","c":"quote\\""}"#
        );
    }

    #[test]
    fn render_fills_every_placeholder_and_refuses_an_envoy_config() {
        let ports = KongPorts {
            listen: 1234,
            demo: 5678,
            demo_b: 5679,
        };
        let filter = json!({"version": 1, "host": "kong", "routes": []});
        let conf = render(
            Path::new("/tmp/run"),
            Path::new("/x/f.wasm"),
            Path::new("/x/cache.toml"),
            &ports,
            &filter,
        );
        assert!(conf.contains("listen 127.0.0.1:1234;"));
        assert!(conf.contains("server 127.0.0.1:5678;"));
        assert!(conf.contains(r#"module cost_optimizer "/x/f.wasm";"#));
        assert!(conf.contains(r#"cache_config "/x/cache.toml";"#));
        assert!(conf
            .contains(r#"proxy_wasm cost_optimizer '{"host":"kong","routes":[],"version":1}';"#));
        assert_eq!(find_placeholder(&conf), None);
        assert_eq!(find_placeholder("a @b@ @C_D@ @E"), Some("@C_D@"));
        let envoy = std::panic::catch_unwind(|| {
            render(
                Path::new("/tmp/run"),
                Path::new("/x/f.wasm"),
                Path::new("/x/cache.toml"),
                &ports,
                &json!({"version": 1}),
            )
        });
        assert!(envoy.is_err());
    }

    #[test]
    fn filter_config_targets_loopback_ports_and_wakes_through_cost_control() {
        let ports = Ports {
            listen: 1,
            admin: 2,
            plain: 3,
            demo: 4,
            demo_b: 5,
            control: 6,
        };
        let envoy = json!({
            "version": 1,
            "accounting": {"cost_control": "cost_control", "token": "t", "gateway_id": "g"},
            "routes": [
                {"name": "a", "match": {"prefix": "/a"}, "batch": {"upstream": "demo_api_b", "path": "/b"}},
                {"name": "b", "match": {"prefix": "/b"}}
            ]
        });
        let kong = filter_config(&envoy, &ports, true);
        assert_eq!(kong["host"], "kong");
        assert_eq!(kong["accounting"]["cost_control"], "127.0.0.1:6");
        assert_eq!(kong["routes"][0]["batch"]["upstream"], "127.0.0.1:5");
        assert_eq!(
            kong["wake"],
            json!({"target": "127.0.0.1:6", "authority": "cost-control"})
        );
        assert_eq!(kong["routes"][1], envoy["routes"][1]);
        assert!(filter_config(&envoy, &ports, false).get("wake").is_none());
        let unknown = json!({"routes": [{"batch": {"upstream": "elsewhere"}}]});
        assert!(std::panic::catch_unwind(|| filter_config(&unknown, &ports, false)).is_err());
    }

    #[test]
    fn parked_features_are_coalescing_medium_limits_batches_and_budgets() {
        let with = |route: serde_json::Value| json!({"routes": [route]});
        assert!(!parks_requests(&with(json!({"cache": {}}))));
        assert!(parks_requests(&with(json!({"coalesce": {}}))));
        assert!(parks_requests(&with(json!({"batch": {}}))));
        assert!(parks_requests(&with(json!({"limit": {}}))));
        assert!(!parks_requests(&with(
            json!({"limit": {}, "priority": "low"})
        )));
        let trusted = json!({
            "identity": {"priority_header": {"name": "x-priority", "trusted": true}},
            "routes": [{"limit": {}, "priority": "low"}]
        });
        assert!(parks_requests(&trusted));
        assert!(parks_requests(&with(json!({"cost": {"budget": {}}}))));
        assert!(!parks_requests(&with(
            json!({"cost": {"cost_per_call": 1}})
        )));
    }

    #[test]
    fn log_problems_finds_traps_panics_and_dead_workers_only() {
        // Real lines (a request's set_tick_period trapped on this host),
        // then a panic and a crash as nginx and the SDK print them.
        let log = "\
2026/11/30 02:19:16 [info] 24226#24226: [proxy-wasm][\"cost_optimizer\" #0] [1897656965] cost-optimizer configured with 2 routes
2026/11/30 02:19:26 [error] 24687#24687: *6 [wasm] error while executing at wasm backtrace:
    0: 0x1f4e2 - cost_optimizer.wasm!optimizer_core::pipeline::timer::set_tick::ha8a5b55d6d95a91b
Caused by:
    can only set tick_period in root context <module: \"cost_optimizer\", vm: \"main\", runtime: \"wasmtime\">
2026/11/30 02:19:26 [info] 24687#24687: *6 [proxy-wasm] filter chain failed resuming: previous error (instance trapped), client: 127.0.0.1
2026/11/30 02:19:27 [crit] 24687#24687: *7 [proxy-wasm][\"cost_optimizer\" #0] panicked at src/lib.rs:1:1
2026/11/30 02:19:28 [alert] 24224#24224: worker process 24226 exited on signal 11
2026/11/30 02:19:29 [notice] 24224#24224: worker process 24227 exited with code 0";
        let bad = log_problems(log);
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(log_problems(log.lines().next().unwrap_or_default()).is_empty());
    }
}
