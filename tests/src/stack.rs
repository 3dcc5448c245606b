//! A running test stack: the demo API (two providers), a real Envoy with
//! the built `.wasm` and optionally cost-control, on free loopback ports,
//! torn down on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::CostControl;
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

    /// Calls counted for every path under `prefix` (a batch call counts
    /// once, under the batch endpoint's path).
    pub fn calls_under(&self, prefix: &str) -> u64 {
        self.calls()["by_path"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .filter(|(p, _)| p.starts_with(prefix))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0)
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
    // Drop order: Envoy first, then cost-control and the upstreams.
    pub envoy: Envoy,
    /// cost-control on `ports.control`, when started with it.
    pub control: Option<CostControl>,
    pub demo: DemoApi,
    pub demo_b: DemoApi,
}

/// Another Envoy beside a stack's: its own listener, admin and plain
/// ports, the same demo API and cost-control (a second gateway).
pub struct SecondEnvoy {
    /// `listen`, `admin` and `plain` are this Envoy's; the rest the stack's.
    pub ports: Ports,
    pub dir: PathBuf,
    pub envoy: Envoy,
}

impl SecondEnvoy {
    pub fn listen_port(&self) -> u16 {
        self.ports.listen
    }

    /// URL through this Envoy's filter.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
    }

    /// URL through this Envoy's listener without the filter (only with
    /// [`Stack::second_envoy`]; the shipped config has none).
    pub fn plain_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.plain)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http::get(&self.url(path), headers)
    }
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
        Self::start_with_yaml(name, ports, &yaml, true, false)
    }

    /// Like [`Stack::start`], with cost-control on `ports.control`
    /// (started before Envoy, so the filter finds it from its first
    /// request). Its store is `cc.db` in the stack's directory.
    pub fn start_with_control(name: &str, options: Options) -> Stack {
        let ports = ports();
        let yaml = envoy_config::render(&ports, &wasm_path(), &options);
        Self::start_with_yaml(name, ports, &yaml, true, true)
    }

    /// The demo API and Envoy running the shipped `envoy/envoy.yaml`.
    pub fn start_shipped(name: &str) -> Stack {
        let ports = ports();
        let yaml = envoy_config::render_shipped(&ports, &wasm_path());
        Self::start_with_yaml(name, ports, &yaml, false, false)
    }

    /// Like [`Stack::start_shipped`], with cost-control on `ports.control`.
    pub fn start_shipped_with_control(name: &str) -> Stack {
        let ports = ports();
        let yaml = envoy_config::render_shipped(&ports, &wasm_path());
        Self::start_with_yaml(name, ports, &yaml, false, true)
    }

    fn start_with_yaml(
        name: &str,
        ports: Ports,
        yaml: &str,
        plain: bool,
        with_control: bool,
    ) -> Stack {
        let dir = scratch_dir(name);
        let control = with_control.then(|| CostControl::start(ports.control, &dir));
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
            control,
            demo,
            demo_b,
        }
    }

    /// cost-control, or a failure saying the stack was started without it.
    pub fn control(&self) -> &CostControl {
        self.control
            .as_ref()
            .unwrap_or_else(|| panic!("this stack has no cost-control: use start_with_control"))
    }

    /// Mutable cost-control (to stop or restart it).
    pub fn control_mut(&mut self) -> &mut CostControl {
        self.control
            .as_mut()
            .unwrap_or_else(|| panic!("this stack has no cost-control: use start_with_control"))
    }

    /// Another Envoy with the filter configured by `options`, on its own
    /// listener, admin and plain ports, in front of this stack's demo APIs
    /// and cost-control. Dropping the handle stops it.
    pub fn second_envoy(&self, options: Options) -> SecondEnvoy {
        let ports = self.second_ports();
        let yaml = envoy_config::render(&ports, &wasm_path(), &options);
        self.second_envoy_with_yaml(ports, &yaml, true)
    }

    /// Another Envoy running the shipped `envoy/envoy.yaml` (see
    /// [`Stack::second_envoy`]).
    pub fn second_envoy_shipped(&self) -> SecondEnvoy {
        let ports = self.second_ports();
        let yaml = envoy_config::render_shipped(&ports, &wasm_path());
        self.second_envoy_with_yaml(ports, &yaml, false)
    }

    fn second_ports(&self) -> Ports {
        Ports {
            listen: free_port(),
            admin: free_port(),
            plain: free_port(),
            ..self.ports
        }
    }

    fn second_envoy_with_yaml(&self, ports: Ports, yaml: &str, plain: bool) -> SecondEnvoy {
        // A directory of its own: Envoy::start writes envoy.yaml and
        // envoy.log there, which would clobber the first Envoy's.
        let dir = self.dir.join(format!("envoy-{}", ports.listen));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let listen: Vec<u16> = if plain {
            vec![ports.listen, ports.plain]
        } else {
            vec![ports.listen]
        };
        let envoy = Envoy::start(yaml, ports.admin, &listen, &dir);
        SecondEnvoy { ports, dir, envoy }
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
