//! The processes of the soak and what it reads from them: two demo APIs
//! (the routing rule's providers), cost-control on one SQLite store that
//! outlives its restarts, and Envoy with two workers on the e2e harness's
//! config (`e2e::envoy_config::render`: the filter, Envoy's buffer filter,
//! the routed `/api/search` route with its retry, the aggregate clusters).
//! Nothing is pinned: the soak runs the whole stack as a deployment would,
//! on the machine's cores.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::http;
use crate::procs::{port_open, taken_ports, wait_ports_closed, Proc};

const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Paths {
    pub envoy: PathBuf,
    pub wasm: PathBuf,
    pub demo_api: PathBuf,
    pub cost_control: PathBuf,
    /// target/soak.
    pub out: PathBuf,
}

pub struct Stack {
    pub paths: Paths,
    pub ports: e2e::envoy_config::Ports,
    pub demo: Proc,
    pub demo_b: Proc,
    /// `None` while killed.
    pub control: Mutex<Option<Proc>>,
    /// cost-control starts so far (each has its own log).
    control_starts: Mutex<u32>,
    pub envoy: Proc,
}

impl Stack {
    /// Start everything and wait until each answers; refuses when a port
    /// of the soak is taken.
    pub fn start(paths: Paths, base: u16, filter: &Value) -> Result<Stack, String> {
        let ports = e2e::envoy_config::Ports {
            listen: base,
            admin: base + 1,
            plain: base + 2,
            demo: base + 3,
            demo_b: base + 4,
            control: base + 5,
        };
        let all = [
            ports.listen,
            ports.admin,
            ports.plain,
            ports.demo,
            ports.demo_b,
            ports.control,
        ];
        let taken = taken_ports(&all);
        if !taken.is_empty() {
            return Err(format!(
                "ports {taken:?} are taken (SOAK_PORT_BASE={base} holds {base}..={})",
                base + 5
            ));
        }
        let db = paths.out.join("soak-cc.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let demo = start_demo(&paths, "demo-api", "primary", ports.demo)?;
        let demo_b = start_demo(&paths, "demo-api-b", "secondary", ports.demo_b)?;
        let yaml = e2e::envoy_config::render(
            &ports,
            &paths.wasm,
            &e2e::envoy_config::Options {
                filter: filter.clone(),
                jwt: false,
            },
        );
        let file = paths.out.join("envoy-soak.yaml");
        std::fs::write(&file, &yaml).map_err(|e| format!("write {}: {e}", file.display()))?;
        let args: Vec<String> = [
            "-c",
            &file.display().to_string(),
            "--concurrency",
            "2",
            "--disable-hot-restart",
            "-l",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut stack = Stack {
            envoy: Proc::spawn("envoy", None, &paths.envoy, &args, &paths.out)?,
            paths,
            ports,
            demo,
            demo_b,
            control: Mutex::new(None),
            control_starts: Mutex::new(0),
        };
        stack.start_control()?;
        let (admin, listen) = (ports.admin, ports.listen);
        stack.envoy.wait_ready("Envoy ready", START_TIMEOUT, || {
            let ready = http::get(&format!("http://127.0.0.1:{admin}/ready"), &[])
                .map(|r| r.status == 200)
                .unwrap_or(false);
            ready && port_open(listen)
        })?;
        Ok(stack)
    }

    /// Start cost-control on the soak's store (kept across restarts).
    pub fn start_control(&self) -> Result<(), String> {
        let n = {
            let mut g = self.control_starts.lock().map_err(|_| "lock")?;
            *g += 1;
            *g
        };
        let db = self.paths.out.join("soak-cc.db");
        let args = vec![
            "serve".to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{}", self.ports.control),
            "--store".to_string(),
            format!("sqlite:{}", db.display()),
            "--dev-tokens".to_string(),
        ];
        let mut proc = Proc::spawn(
            &format!("cost-control-{n}"),
            None,
            &self.paths.cost_control,
            &args,
            &self.paths.out,
        )?;
        let port = self.ports.control;
        proc.wait_ready("cost-control's port", START_TIMEOUT, || port_open(port))?;
        *self.control.lock().map_err(|_| "lock")? = Some(proc);
        Ok(())
    }

    /// SIGKILL cost-control (a crash: nothing flushed, no goodbye) and
    /// wait until its port is closed.
    pub fn kill_control(&self) -> Result<(), String> {
        let proc = self.control.lock().map_err(|_| "lock")?.take();
        let Some(mut proc) = proc else {
            return Err("cost-control is not running".into());
        };
        proc.kill();
        wait_ports_closed(&[self.ports.control], Duration::from_secs(10))
    }

    pub fn control_starts(&self) -> u32 {
        self.control_starts.lock().map(|g| *g).unwrap_or(0)
    }

    /// Install a fault on a demo API.
    pub fn fault(&self, secondary: bool, rule: &Value) -> Result<(), String> {
        let port = if secondary {
            self.ports.demo_b
        } else {
            self.ports.demo
        };
        let r = http::request(
            "POST",
            &format!("http://127.0.0.1:{port}/__faults"),
            &[("content-type", "application/json")],
            Some(rule.to_string().as_bytes()),
        )?;
        if r.status != 200 {
            return Err(format!(
                "POST /__faults answered {}: {}",
                r.status,
                r.text()
            ));
        }
        Ok(())
    }

    /// Matching requests the demo API's installed rules have left, summed
    /// over its rules (each rule is counted).
    pub fn faults_left(&self, secondary: bool) -> Result<u64, String> {
        let port = if secondary {
            self.ports.demo_b
        } else {
            self.ports.demo
        };
        let v = http::json(&http::get(
            &format!("http://127.0.0.1:{port}/__faults"),
            &[],
        )?)?;
        Ok(v["rules"]
            .as_array()
            .map(|rules| rules.iter().filter_map(|r| r["remaining"].as_u64()).sum())
            .unwrap_or(0))
    }

    fn admin(&self, path: &str) -> Result<String, String> {
        let r = http::get(&format!("http://127.0.0.1:{}{path}", self.ports.admin), &[])?;
        if r.status != 200 {
            return Err(format!("Envoy admin {path} answered {}", r.status));
        }
        Ok(r.text())
    }

    /// Envoy's `/memory`: bytes allocated (tcmalloc) and its heap size.
    pub fn envoy_memory(&self) -> Result<(u64, u64), String> {
        let v: Value = serde_json::from_str(&self.admin("/memory")?)
            .map_err(|e| format!("/memory is not JSON: {e}"))?;
        let field = |k: &str| -> Result<u64, String> {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v[k].as_u64())
                .ok_or_else(|| format!("/memory has no {k}: {v}"))
        };
        Ok((field("allocated")?, field("heap_size")?))
    }

    /// Every stat whose name contains `filter` (a regex for Envoy), by
    /// name; histograms left out.
    pub fn stats(&self, filter: &str) -> Result<Vec<(String, u64)>, String> {
        let text = self.admin(&format!("/stats?filter={filter}"))?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect())
    }

    pub fn stat(&self, name: &str) -> Result<u64, String> {
        self.stats(&format!("^{}$", name.replace('.', "\\.")))?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("Envoy has no stat {name}"))
    }

    /// The ledger's total for `tenant` this month: (events, cost µ$).
    pub fn ledger(&self, tenant: &str) -> Result<(u64, i64), String> {
        let url = format!(
            "http://127.0.0.1:{}/v1/spend?tenant={tenant}&group_by=strategy",
            self.ports.control
        );
        let r = http::get(&url, &[("authorization", "Bearer admin-dev-token")])?;
        let v: Value = http::json(&r).map_err(|e| format!("ledger answer {}: {e}", r.status))?;
        match (
            v["total"]["events"].as_u64(),
            v["total"]["cost_micros"].as_i64(),
        ) {
            (Some(e), Some(c)) => Ok((e, c)),
            _ => Err(format!("ledger answer {}: {v}", r.status)),
        }
    }

    /// Envoy's process: its threads now, and its resident memory (bytes).
    pub fn envoy_proc(&self) -> Result<(usize, u64), String> {
        let pid = self.envoy.pid();
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|e| format!("/proc/{pid}/task: {e}"))?
            .count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or("no VmRSS")?;
        Ok((tasks, rss_kb * 1024))
    }

    /// Envoy's threads by name (`/proc/<pid>/task/*/comm`), sorted.
    pub fn envoy_threads(&self) -> Vec<String> {
        let pid = self.envoy.pid();
        let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                    .map(|s| s.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Envoy's log so far.
    pub fn envoy_log(&self) -> String {
        std::fs::read_to_string(&self.envoy.log).unwrap_or_default()
    }

    /// Whether each process is still running: (name, exit code) of those
    /// that are not (cost-control while killed is not counted).
    pub fn exited(&mut self) -> Vec<(String, Option<i32>)> {
        let mut out = Vec::new();
        for p in [&mut self.envoy, &mut self.demo, &mut self.demo_b] {
            if let Some(code) = p.exited() {
                out.push((p.name.clone(), code));
            }
        }
        if let Ok(mut g) = self.control.lock() {
            if let Some(p) = g.as_mut() {
                if let Some(code) = p.exited() {
                    out.push((p.name.clone(), code));
                }
            }
        }
        out
    }
}

fn start_demo(paths: &Paths, name: &str, provider: &str, port: u16) -> Result<Proc, String> {
    let args = vec![
        "--provider".to_string(),
        provider.to_string(),
        "--port".to_string(),
        port.to_string(),
    ];
    let mut proc = Proc::spawn(name, None, &paths.demo_api, &args, &paths.out)?;
    proc.wait_ready("the demo API's port", START_TIMEOUT, || port_open(port))?;
    Ok(proc)
}

/// Envoy log lines that mean the filter or a worker failed: the e2e
/// suite's list for Kong's log (a trap, a panic, a dead worker), and
/// Envoy's own words for a wasm VM that failed (a call into the module
/// that threw, V8's `RuntimeError`, a plugin that failed and was
/// reloaded) and its `critical` level.
pub fn log_problems(log: &str) -> Vec<&str> {
    const ENVOY: [&str; 6] = [
        "[critical]",
        "runtimeerror",
        "function: proxy_",
        "wasm vm failed",
        "plugin failed",
        "reload",
    ];
    let mut out = e2e::kong::log_problems(log);
    for l in log.lines() {
        let low = l.to_ascii_lowercase();
        if ENVOY.iter().any(|b| low.contains(b)) && !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_in_an_envoy_log() {
        let log = "[2026-01-01][1][warning][wasm] wasm log cost_optimizer: spend batch failed, retrying\n\
[2026-01-01][1][critical][wasm] wasm log: Function: proxy_on_tick failed: Uncaught RuntimeError: unreachable\n\
[2026-01-01][1][error][wasm] panicked at src/x.rs:1:1\n";
        let bad = log_problems(log);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(log_problems("[warning][main] all fine\n").is_empty());
    }
}
