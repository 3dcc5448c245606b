//! A running test stack: the demo API (two providers) and a real Envoy
//! with the built `.wasm`, on free loopback ports, torn down on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::envoy_config::{self, Options, Ports};
use crate::http::{self, Resp};
use crate::procs::{free_port, port_open, repo_root, scratch_dir, wait_for, Proc};

const START_TIMEOUT: Duration = Duration::from_secs(90);

fn from_env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

/// The Envoy binary, or a failure that says how to get it.
pub fn envoy_bin() -> PathBuf {
    let p = from_env_or("ENVOY_BIN", repo_root().join(".venv/bin/envoy"));
    if !p.exists() {
        panic!(
            "Envoy not found at {}: run `make install` (scripts/install.sh) or set ENVOY_BIN",
            p.display()
        );
    }
    p
}

/// The built filter, or a failure that says how to build it.
pub fn wasm_path() -> PathBuf {
    let p = from_env_or(
        "OPTIMIZER_WASM",
        repo_root().join("target/wasm32-wasip1/release/cost_optimizer.wasm"),
    );
    if !p.exists() {
        panic!("filter not built at {}: run `make build`", p.display());
    }
    p
}

/// A workspace binary built by `make build` (debug profile).
pub fn workspace_bin(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    let p = from_env_or(&var, repo_root().join("target/debug").join(name));
    if !p.exists() {
        panic!(
            "{name} not built at {}: run `make build` (cargo build -p {name}) or set {var}",
            p.display()
        );
    }
    p
}

pub struct DemoApi {
    pub port: u16,
    pub proc: Proc,
}

impl DemoApi {
    pub fn start(provider: &str, port: u16, dir: &Path) -> DemoApi {
        let args = vec![
            "--provider".to_string(),
            provider.to_string(),
            "--port".to_string(),
            port.to_string(),
        ];
        let mut proc = Proc::spawn(
            &format!("demo-api-{provider}"),
            &workspace_bin("demo-api"),
            &args,
            dir,
        );
        wait_for(
            &format!("demo-api {provider} on :{port}"),
            START_TIMEOUT,
            || {
                if let Some(code) = proc.exited() {
                    panic!("demo-api exited early ({code:?}):\n{}", proc.log_text());
                }
                port_open(port).then_some(())
            },
        );
        DemoApi { port, proc }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET /__calls`: what reached this upstream.
    pub fn calls(&self) -> serde_json::Value {
        http::get(&self.url("/__calls"), &[]).json()
    }

    /// Calls counted for one path.
    pub fn calls_for(&self, path: &str) -> u64 {
        self.calls()["by_path"][path].as_u64().unwrap_or(0)
    }

    pub fn total_calls(&self) -> u64 {
        self.calls()["total"].as_u64().unwrap_or(0)
    }

    pub fn fault(&self, rule: serde_json::Value) {
        let r = http::request(
            "POST",
            &self.url("/__faults"),
            &[],
            Some(rule.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "installing fault: {}", r.text());
    }
}

pub struct Envoy {
    pub proc: Proc,
    pub admin: u16,
}

impl Envoy {
    /// Start Envoy on `yaml` with two workers and wait until it is ready.
    pub fn start(yaml: &str, admin: u16, listen: &[u16], dir: &Path) -> Envoy {
        let mut proc = Self::spawn(yaml, dir);
        wait_for("envoy /ready", START_TIMEOUT, || {
            if let Some(code) = proc.exited() {
                panic!("envoy exited early ({code:?}):\n{}", proc.log_text());
            }
            let ready =
                http::try_request("GET", &format!("http://127.0.0.1:{admin}/ready"), &[], None)
                    .map(|r| r.status == 200)
                    .unwrap_or(false);
            (ready && listen.iter().all(|p| port_open(*p))).then_some(())
        });
        Envoy { proc, admin }
    }

    fn spawn(yaml: &str, dir: &Path) -> Proc {
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        // E2E_ENVOY_LOG=debug (or a component list for --component-log-level)
        // helps when a test fails.
        let level = std::env::var("E2E_ENVOY_LOG").unwrap_or_else(|_| "info".to_string());
        let args: Vec<String> = [
            "-c",
            &config.display().to_string(),
            "--concurrency",
            "2",
            "--disable-hot-restart",
            "-l",
            &level,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        Proc::spawn("envoy", &envoy_bin(), &args, dir)
    }

    /// Start Envoy on a config it must refuse; returns its exit code and log.
    pub fn start_expecting_refusal(yaml: &str, dir: &Path) -> (Option<i32>, String) {
        let mut proc = Self::spawn(yaml, dir);
        let code = wait_for("envoy to refuse its config and exit", START_TIMEOUT, || {
            proc.exited()
        });
        (code, proc.log_text())
    }

    /// A counter or gauge from the admin `/stats` endpoint (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        let text = http::get(
            &format!("http://127.0.0.1:{}/stats?filter={name}", self.admin),
            &[],
        )
        .text();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

pub struct Stack {
    pub ports: Ports,
    pub dir: PathBuf,
    // Drop order: Envoy first, then the upstreams.
    pub envoy: Envoy,
    pub demo: DemoApi,
    pub demo_b: DemoApi,
}

pub fn ports() -> Ports {
    Ports {
        listen: free_port(),
        admin: free_port(),
        plain: free_port(),
        demo: free_port(),
        demo_b: free_port(),
        control: free_port(),
    }
}

impl Stack {
    /// The demo API and Envoy with the filter configured by `options`.
    pub fn start(name: &str, options: Options) -> Stack {
        let ports = ports();
        let yaml = envoy_config::render(&ports, &wasm_path(), &options);
        Self::start_with_yaml(name, ports, &yaml, true)
    }

    /// The demo API and Envoy running the shipped `envoy/envoy.yaml`.
    pub fn start_shipped(name: &str) -> Stack {
        let ports = ports();
        let yaml = envoy_config::render_shipped(&ports, &wasm_path());
        Self::start_with_yaml(name, ports, &yaml, false)
    }

    fn start_with_yaml(name: &str, ports: Ports, yaml: &str, plain: bool) -> Stack {
        let dir = scratch_dir(name);
        let demo = DemoApi::start("primary", ports.demo, &dir);
        let demo_b = DemoApi::start("secondary", ports.demo_b, &dir);
        let listen: Vec<u16> = if plain {
            vec![ports.listen, ports.plain]
        } else {
            vec![ports.listen]
        };
        let envoy = Envoy::start(yaml, ports.admin, &listen, &dir);
        Stack {
            ports,
            dir,
            envoy,
            demo,
            demo_b,
        }
    }

    /// URL through the filter.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
    }

    /// URL through the listener without the filter.
    pub fn plain_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.plain)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http::get(&self.url(path), headers)
    }
}
