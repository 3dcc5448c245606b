//! The processes under test: the demo API (release build, started once)
//! and one Envoy per configuration and round, on the bench's fixed ports.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http;
use crate::procs::{port_open, taken_ports, wait_ports_closed, Pinning, Proc};
use crate::yaml::{render, Filters, Ports, Route};

const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Paths {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub demo_api: PathBuf,
    pub cost_control: PathBuf,
    /// target/bench: report, chart, logs, rendered configs.
    pub out: PathBuf,
}

pub struct Bench {
    pub paths: Paths,
    pub ports: Ports,
    pub pin: Pinning,
}

pub struct Envoy {
    pub proc: Proc,
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

    /// Start Envoy with one worker on the server core and wait until its
    /// admin says ready and the listener answers. Refuses when a port is
    /// already held, so a stale Envoy can never answer for this one.
    pub fn start_envoy(&self, name: &str, yaml: &str) -> Result<Envoy, String> {
        let taken = taken_ports(&[self.ports.listen, self.ports.admin]);
        if !taken.is_empty() {
            return Err(format!(
                "ports {taken:?} are taken before starting Envoy for {name}"
            ));
        }
        let file = self.paths.out.join(format!("envoy-{name}.yaml"));
        std::fs::write(&file, yaml).map_err(|e| format!("write {}: {e}", file.display()))?;
        let args: Vec<String> = [
            "-c",
            &file.display().to_string(),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut proc = Proc::spawn(
            &format!("envoy-{name}"),
            self.pin.server,
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
        Ok(Envoy { proc })
    }

    /// Stop Envoy and wait until its ports are free again.
    pub fn stop_envoy(&self, mut envoy: Envoy) -> Result<(), String> {
        envoy.proc.kill();
        wait_ports_closed(
            &[self.ports.listen, self.ports.admin],
            Duration::from_secs(10),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
    }

    pub fn demo_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.demo)
    }

    /// The demo API's `/__calls` (upstream calls seen).
    pub fn demo_calls(&self) -> Result<serde_json::Value, String> {
        http::get(&self.demo_url("/__calls"), &[])?.json()
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
