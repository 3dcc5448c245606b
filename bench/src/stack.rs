//! The processes under test: the demo API (release build, started once)
//! and one gateway (Envoy, or Kong's engine: nginx + ngx_wasm_module) per
//! configuration and round, on the bench's fixed ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http;
use crate::kong::{self, Location};
use crate::procs::{cpu_ticks, port_open, taken_ports, wait_ports_closed, Pinning, Proc};
use crate::yaml::{render, Filters, Ports, Route};

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx compiles the module in each worker at its first start with a new
/// `.wasm` (seconds; half a minute was seen on a busy 2-core machine).
const KONG_START_TIMEOUT: Duration = Duration::from_secs(120);
const KONG_STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Paths {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub demo_api: PathBuf,
    pub cost_control: PathBuf,
    /// Kong's engine (nginx); `None` when no Kong configuration runs.
    pub nginx: Option<PathBuf>,
    /// target/bench: report, chart, logs, rendered configs.
    pub out: PathBuf,
}

pub struct Bench {
    pub paths: Paths,
    pub ports: Ports,
    pub pin: Pinning,
}

/// The gateway a configuration runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Envoy,
    /// Kong's engine: nginx + ngx_wasm_module + wasmtime, the way Kong
    /// Gateway runs proxy-wasm filters.
    Kong,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::Envoy => "Envoy",
            Host::Kong => "Kong",
        }
    }
}

/// How many workers a gateway runs, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One worker on the server core (Envoy `--concurrency 1`, nginx
    /// `worker_processes 1`, started under `taskset`, which its workers
    /// inherit): the throughput configurations, G and H.
    OnePinned,
    /// Two workers, not pinned: W, where waking crosses workers as in a
    /// deployment.
    Two,
}

impl Workers {
    fn count(self) -> u32 {
        match self {
            Workers::OnePinned => 1,
            Workers::Two => 2,
        }
    }
}

/// A running gateway, stopped with [`Bench::stop_gateway`].
pub struct Gateway {
    pub host: Host,
    proc: Proc,
    /// nginx's worker processes (Envoy's workers are its threads).
    workers: Vec<u32>,
    /// nginx's error log, checked when it stops.
    error_log: Option<PathBuf>,
}

impl Gateway {
    /// Its processes: Envoy's, or nginx's master and workers.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.proc.pid())
            .chain(self.workers.iter().copied())
            .collect()
    }

    /// utime + stime of the gateway: Envoy's process (all threads), or
    /// nginx's master and workers.
    pub fn cpu_ticks(&self) -> Result<u64, String> {
        std::iter::once(self.proc.pid())
            .chain(self.workers.iter().copied())
            .map(cpu_ticks)
            .sum()
    }
}

/// cost-control's ledger for one tenant (`GET /v1/spend`, by strategy).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Rows: one per request, or one per folded sum of several.
    pub events: u64,
    pub cost_micros: i64,
    pub by_strategy: Vec<(String, u64)>,
}

impl Bench {
    /// Start the demo API, pinned to the client core (Envoy keeps its own).
    pub fn start_demo(&self) -> Result<Proc, String> {
        let args = vec![
            "--provider".to_string(),
            "primary".to_string(),
            "--port".to_string(),
            self.ports.demo.to_string(),
        ];
        let mut proc = Proc::spawn(
            "demo-api",
            self.pin.client,
            &self.paths.demo_api,
            &args,
            &self.paths.out,
        )?;
        let port = self.ports.demo;
        proc.wait_ready("the demo API's port", START_TIMEOUT, || port_open(port))?;
        Ok(proc)
    }

    /// Start cost-control (J reports to it) on a fresh SQLite store,
    /// pinned to the client core like the demo API.
    pub fn start_control(&self) -> Result<Proc, String> {
        let db = self.paths.out.join("bench-cc.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let args = vec![
            "serve".to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{}", self.ports.control),
            "--store".to_string(),
            format!("sqlite:{}", db.display()),
            "--dev-tokens".to_string(),
        ];
        let mut proc = Proc::spawn(
            "cost-control",
            self.pin.client,
            &self.paths.cost_control,
            &args,
            &self.paths.out,
        )?;
        let port = self.ports.control;
        proc.wait_ready("cost-control's port", START_TIMEOUT, || port_open(port))?;
        Ok(proc)
    }

    /// What cost-control's ledger holds for `tenant` this month.
    pub fn ledger(&self, tenant: &str) -> Result<Ledger, String> {
        let url = format!(
            "http://127.0.0.1:{}/v1/spend?tenant={tenant}&group_by=strategy",
            self.ports.control
        );
        let r = http::get(&url, &[("authorization", "Bearer admin-dev-token")])?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("ledger answer {}: {e}", r.status))?;
        let total = &v["total"];
        let (Some(events), Some(cost_micros)) =
            (total["events"].as_u64(), total["cost_micros"].as_i64())
        else {
            return Err(format!(
                "ledger answer without total.events and cost_micros: {v}"
            ));
        };
        let by_strategy = v["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let key = r["key"].as_str().unwrap_or("?");
                        (key.to_string(), r["events"].as_u64().unwrap_or(0))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Ledger {
            events,
            cost_micros,
            by_strategy,
        })
    }

    /// Wake calls cost-control has answered so far, by status (its
    /// `/metrics` counts requests by route).
    pub fn wake_calls(&self) -> Result<Vec<(u16, u64)>, String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.ports.control);
        let r = http::get(&url, &[])?;
        if r.status != 200 {
            return Err(format!("cost-control's /metrics answered {}", r.status));
        }
        Ok(wake_calls_in(&String::from_utf8_lossy(&r.body)))
    }

    /// An Envoy counter from its admin (`http.bench.downstream_rq_2xx`).
    pub fn envoy_counter(&self, name: &str) -> Result<u64, String> {
        // The filter is a regex matched anywhere: the exact name is picked
        // from the lines below.
        let url = format!("http://127.0.0.1:{}/stats?filter={name}", self.ports.admin);
        let r = http::get(&url, &[])?;
        let text = String::from_utf8_lossy(&r.body);
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(": ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .ok_or_else(|| {
                format!(
                    "Envoy admin has no counter {name} (answer {}: {text})",
                    r.status
                )
            })
    }

    pub fn yaml(&self, filters: &Filters, route: &Route) -> String {
        render(&self.ports, &self.paths.wasm, filters, route)
    }

    /// `envoy --mode validate`: `Err(first error lines)` when Envoy (or the
    /// filter's configuration check) refuses the configuration.
    pub fn validate(&self, name: &str, yaml: &str) -> Result<(), String> {
        let file = self.paths.out.join(format!("validate-{name}.yaml"));
        std::fs::write(&file, yaml).map_err(|e| format!("write {}: {e}", file.display()))?;
        let out = Command::new(&self.paths.envoy)
            .arg("--mode")
            .arg("validate")
            .arg("-c")
            .arg(&file)
            .arg("-l")
            .arg("error")
            .current_dir(&self.paths.out)
            .output()
            .map_err(|e| format!("cannot run envoy: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(refusal_reason(&text))
    }

    /// Start `filters` and `route` on `host` and wait until it answers.
    /// Refuses when a port is already held, so a stale gateway can never
    /// answer for this one.
    pub fn start_gateway(
        &self,
        name: &str,
        host: Host,
        filters: &Filters,
        route: &Route,
        workers: Workers,
    ) -> Result<Gateway, String> {
        let taken = taken_ports(&[self.ports.listen, self.ports.admin]);
        if !taken.is_empty() {
            return Err(format!(
                "ports {taken:?} are taken before starting the gateway for {name}"
            ));
        }
        match host {
            Host::Envoy => self.start_envoy(name, &self.yaml(filters, route), workers),
            Host::Kong => {
                let location = match (filters, route) {
                    (Filters::None, Route::Proxy) => Location::Plain,
                    (Filters::Wasm(config), Route::Proxy) => Location::Filter(config.clone()),
                    (Filters::None, Route::Direct(body)) => Location::Direct(body.clone()),
                    _ => return Err(format!("{name}: no Kong equivalent of this configuration")),
                };
                self.start_kong(name, &location, workers)
            }
        }
    }

    /// Envoy with `--concurrency` workers, waited on until its admin says
    /// ready and the listener answers.
    fn start_envoy(&self, name: &str, yaml: &str, workers: Workers) -> Result<Gateway, String> {
        let file = self.paths.out.join(format!("envoy-{name}.yaml"));
        std::fs::write(&file, yaml).map_err(|e| format!("write {}: {e}", file.display()))?;
        let args: Vec<String> = [
            "-c",
            &file.display().to_string(),
            "--concurrency",
            &workers.count().to_string(),
            "--disable-hot-restart",
            "-l",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut proc = Proc::spawn(
            &format!("envoy-{name}"),
            self.core(workers),
            &self.paths.envoy,
            &args,
            &self.paths.out,
        )?;
        let (admin, listen) = (self.ports.admin, self.ports.listen);
        proc.wait_ready("Envoy ready", START_TIMEOUT, || {
            let ready = http::get(&format!("http://127.0.0.1:{admin}/ready"), &[])
                .map(|r| r.status == 200)
                .unwrap_or(false);
            ready && port_open(listen)
        })?;
        Ok(Gateway {
            host: Host::Envoy,
            proc,
            workers: Vec::new(),
            error_log: None,
        })
    }

    fn core(&self, workers: Workers) -> Option<u32> {
        match workers {
            Workers::OnePinned => self.pin.server,
            Workers::Two => None,
        }
    }

    /// nginx on our rendering of `kong/nginx.conf.template` in
    /// `target/bench/kong-<name>/`, waited on until each worker configured
    /// the filter (when there is one) and the port answers. A worker that
    /// cannot configure the filter exits while the master keeps the port,
    /// so the error log is read rather than waited on.
    fn start_kong(
        &self,
        name: &str,
        location: &Location,
        workers: Workers,
    ) -> Result<Gateway, String> {
        let nginx = self
            .paths
            .nginx
            .as_ref()
            .ok_or("Kong's engine was not looked up for this run")?;
        let dir = self.paths.out.join(format!("kong-{name}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let error_log = dir.join("error.log");
        // Each start is checked on its own log.
        let _ = std::fs::remove_file(&error_log);
        let template_path = crate::procs::repo_root().join("kong/nginx.conf.template");
        let template = std::fs::read_to_string(&template_path)
            .map_err(|e| format!("read {}: {e}", template_path.display()))?;
        let cache_config = kong::wasmtime_cache(&self.paths.out)?;
        let conf = kong::render(
            &template,
            &kong::Setup {
                prefix: &dir,
                wasm: &self.paths.wasm,
                cache_config: &cache_config,
                listen: self.ports.listen,
                demo: self.ports.demo,
                workers: workers.count(),
                location,
            },
        )
        .map_err(|e| format!("{}: {e}", template_path.display()))?;
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| format!("write {}: {e}", conf_path.display()))?;
        let args: Vec<String> = vec![
            "-p".into(),
            format!("{}/", dir.display()),
            "-c".into(),
            conf_path.display().to_string(),
            "-e".into(),
            error_log.display().to_string(),
        ];
        let mut proc = Proc::spawn(
            &format!("kong-{name}"),
            self.core(workers),
            nginx,
            &args,
            &self.paths.out,
        )?;
        let want = workers.count() as usize;
        let configured = if matches!(location, Location::Filter(_)) {
            want
        } else {
            0
        };
        let ready_url = self.url("/__host_ready");
        let master = proc.pid();
        let mut refused = false;
        let waited = proc.wait_ready(
            "Kong's engine: every worker configured, the port answers",
            KONG_START_TIMEOUT,
            || {
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                refused = log.contains("invalid configuration") || log.contains("exited with code");
                refused
                    || (log.matches("configured with").count() >= configured
                        && kong::children(master).len() == want
                        && http::get(&ready_url, &[]).is_ok_and(|r| r.status == 200))
            },
        );
        let gateway = Gateway {
            host: Host::Kong,
            workers: kong::children(master),
            proc,
            error_log: Some(error_log.clone()),
        };
        let why = match waited {
            Ok(()) if !refused => return Ok(gateway),
            Ok(()) => "nginx refused its config (its workers exit)".to_string(),
            Err(e) => e,
        };
        let log = std::fs::read_to_string(&error_log).unwrap_or_default();
        let _ = self.stop_gateway(gateway);
        Err(format!(
            "{why}; the end of {}:\n{}",
            error_log.display(),
            tail(&log, 20)
        ))
    }

    /// Stop the gateway and wait until its ports are free again; for Kong,
    /// fail when its error log shows a trap, a panic or a dead worker.
    pub fn stop_gateway(&self, mut gw: Gateway) -> Result<(), String> {
        match gw.host {
            Host::Envoy => gw.proc.kill(),
            Host::Kong => {
                // SIGTERM: the master stops its workers (fast shutdown).
                // Workers of a master that had to be killed are orphans:
                // ended by their pid.
                let workers = kong::children(gw.proc.pid());
                if !gw.proc.terminate(KONG_STOP_TIMEOUT) {
                    gw.proc.kill();
                }
                for w in workers.iter().chain(&gw.workers) {
                    if Path::new(&format!("/proc/{w}")).exists() {
                        let _ = Command::new("kill")
                            .arg("-KILL")
                            .arg(w.to_string())
                            .status();
                    }
                }
            }
        }
        wait_ports_closed(
            &[self.ports.listen, self.ports.admin],
            Duration::from_secs(10),
        )?;
        let Some(path) = &gw.error_log else {
            return Ok(());
        };
        let log = std::fs::read_to_string(path).unwrap_or_default();
        // A trap, a panic, a worker killed by a signal, alert/crit/emerg
        // (not a worker exiting with code 0, as each does when nginx stops).
        let bad = e2e::kong::log_problems(&log);
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "nginx's error log ({}) shows traps, panics or dead workers:\n{}",
                path.display(),
                truncate(&bad.join("\n"), 1200)
            ))
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
    }

    pub fn demo_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.demo)
    }

    /// The demo API's `/__calls` (upstream calls seen).
    pub fn demo_calls(&self) -> Result<serde_json::Value, String> {
        http::json(&http::get(&self.demo_url("/__calls"), &[])?)
    }

    pub fn demo_total_calls(&self) -> Result<u64, String> {
        self.demo_calls()?["total"]
            .as_u64()
            .ok_or_else(|| "demo API /__calls has no total".to_string())
    }

    pub fn demo_reset(&self) -> Result<(), String> {
        let r = http::request("POST", &self.demo_url("/__reset"), &[], Some(b""))?;
        if r.status != 200 {
            return Err(format!("demo API /__reset answered {}", r.status));
        }
        Ok(())
    }
}

/// `cost_control_http_requests_total` of `GET /v1/wake`, by status.
fn wake_calls_in(metrics: &str) -> Vec<(u16, u64)> {
    const SERIES: &str =
        r#"cost_control_http_requests_total{method="GET",route="/v1/wake",status=""#;
    metrics
        .lines()
        .filter_map(|l| {
            let (status, n) = l.strip_prefix(SERIES)?.split_once("\"} ")?;
            Some((status.parse().ok()?, n.trim().parse().ok()?))
        })
        .collect()
}

/// Why Envoy refused: the filter's own message when there is one
/// (`invalid configuration: routes[0].coalesce: unknown field ...`), else
/// the first error lines, without Envoy's log prefixes.
fn refusal_reason(text: &str) -> String {
    if let Some(at) = text.find("invalid configuration: ") {
        let msg = &text[at..];
        let line = msg.lines().next().unwrap_or(msg);
        return truncate(line.trim(), 300);
    }
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("invalid") || l.contains("error") || l.contains("unknown")
        })
        .take(2)
        .map(|l| l.rsplit("] ").next().unwrap_or(l).trim())
        .collect();
    let reason = if lines.is_empty() {
        text.lines().last().unwrap_or("refused").trim().to_string()
    } else {
        lines.join(" / ")
    };
    truncate(&reason, 300)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Envoy's version string (`1.40.0/Clean/RELEASE/BoringSSL`).
pub fn envoy_version(envoy: &Path) -> String {
    Command::new(envoy)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split("version: ")
                .nth(1)
                .map(|v| short_version(v.trim()))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// `9e55809…/1.40.0/Clean/RELEASE/BoringSSL` → `1.40.0 (9e558093)`.
fn short_version(v: &str) -> String {
    let mut parts = v.split('/');
    match (parts.next(), parts.next()) {
        (Some(hash), Some(version)) => format!("{version} ({})", &hash[..hash.len().min(8)]),
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_calls_by_status() {
        let m = "# TYPE cost_control_http_requests_total counter
cost_control_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"} 3
cost_control_http_requests_total{method=\"GET\",route=\"/v1/wake\",status=\"204\"} 1234
cost_control_http_requests_total{method=\"GET\",route=\"/v1/wake\",status=\"400\"} 2";
        assert_eq!(wake_calls_in(m), vec![(204, 1234), (400, 2)]);
    }

    #[test]
    fn refusal_keeps_the_reason() {
        let text = "[info] loading\n[critical] error initializing config: cost-optimizer invalid configuration: routes[0]: unknown field `coalesce`\n";
        assert!(refusal_reason(text).contains("unknown field `coalesce`"));
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(
            short_version("9e5580933739775e8bce/1.40.0/Clean/RELEASE/BoringSSL"),
            "1.40.0 (9e558093)"
        );
    }
}
