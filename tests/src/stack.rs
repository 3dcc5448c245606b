//! A running test stack: the demo API (two providers), a gateway (the real
//! Envoy, or Kong's engine) with the built `.wasm` and optionally
//! cost-control, on free loopback ports, torn down on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::control::CostControl;
use crate::envoy_config::{self, Options, Ports};
use crate::gateway::{self, Gateway, GatewayKind};
use crate::http::{self, Resp};
use crate::kong;
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

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    /// Bytes its allocator has handed out (admin `/memory`).
    pub fn allocated_bytes(&self) -> u64 {
        let v = http::get(&format!("http://127.0.0.1:{}/memory", self.admin), &[]).json();
        v["allocated"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no allocated in {v}"))
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
    pub kind: GatewayKind,
    pub ports: Ports,
    pub dir: PathBuf,
    // Drop order: the gateway first, then cost-control and the upstreams.
    pub gateway: Gateway,
    /// cost-control on `ports.control`, when started with it.
    pub control: Option<CostControl>,
    pub demo: DemoApi,
    pub demo_b: DemoApi,
}

/// Another gateway of the same kind beside a stack's: its own listener
/// (and admin and plain ports on Envoy), the same demo API and
/// cost-control (a second gateway).
pub struct SecondGateway {
    /// `listen`, `admin` and `plain` are this gateway's; the rest the stack's.
    pub ports: Ports,
    pub dir: PathBuf,
    pub gateway: Gateway,
}

impl SecondGateway {
    pub fn listen_port(&self) -> u16 {
        self.ports.listen
    }

    /// URL through this gateway's filter.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
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
        Self::start_on(GatewayKind::Envoy, name, options)
    }

    /// Like [`Stack::start`], with cost-control on `ports.control`
    /// (started before the gateway, so the filter finds it from its first
    /// request). Its store is `cc.db` in the stack's directory.
    pub fn start_with_control(name: &str, options: Options) -> Stack {
        Self::start_with_control_on(GatewayKind::Envoy, name, options)
    }

    /// The demo API and a gateway of `kind` with the filter configured by
    /// `options` (the Envoy form: callout targets are cluster names; see
    /// [`kong::filter_config`] for Kong). On Kong, a config with features
    /// that park requests also gets cost-control, which wakes them.
    pub fn start_on(kind: GatewayKind, name: &str, options: Options) -> Stack {
        let control = kind == GatewayKind::Kong && kong::parks_requests(&options.filter);
        Self::start_gateway(kind, name, &options, control)
    }

    /// Like [`Stack::start_on`], with cost-control on `ports.control`.
    pub fn start_with_control_on(kind: GatewayKind, name: &str, options: Options) -> Stack {
        Self::start_gateway(kind, name, &options, true)
    }

    fn start_gateway(
        kind: GatewayKind,
        name: &str,
        options: &Options,
        with_control: bool,
    ) -> Stack {
        let ports = ports();
        let dir = scratch_dir(&format!("{name}-{}", kind.name()));
        let (control, demo, demo_b) = Self::start_services(&ports, &dir, with_control);
        let gateway = Gateway::start(kind, &ports, options, with_control, &dir);
        Stack {
            kind,
            ports,
            dir,
            gateway,
            control,
            demo,
            demo_b,
        }
    }

    /// cost-control (if asked) and the two demo API providers.
    fn start_services(
        ports: &Ports,
        dir: &Path,
        with_control: bool,
    ) -> (Option<CostControl>, DemoApi, DemoApi) {
        let control = with_control.then(|| CostControl::start(ports.control, dir));
        let demo = DemoApi::start("primary", ports.demo, dir);
        let demo_b = DemoApi::start("secondary", ports.demo_b, dir);
        (control, demo, demo_b)
    }

    /// The demo API, cost-control and Envoy running the shipped
    /// `envoy/envoy.yaml` (its ports replaced by the stack's).
    pub fn start_shipped_with_control(name: &str) -> Stack {
        Self::start_yaml_with_control(name, envoy_config::render_shipped)
    }

    /// The demo APIs, cost-control and Envoy running the bootstrap that
    /// `render` writes for the stack's ports and the built `.wasm` (a
    /// config the way another control plane, e.g. Istio, would place the
    /// filter).
    pub fn start_yaml_with_control(
        name: &str,
        render: impl FnOnce(&Ports, &Path) -> String,
    ) -> Stack {
        let ports = ports();
        let yaml = render(&ports, &wasm_path());
        let dir = scratch_dir(name);
        let (control, demo, demo_b) = Self::start_services(&ports, &dir, true);
        let envoy = Envoy::start(&yaml, ports.admin, &[ports.listen], &dir);
        Stack {
            kind: GatewayKind::Envoy,
            ports,
            dir,
            gateway: Gateway::Envoy(envoy),
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

    /// Another gateway of this stack's kind with the filter configured by
    /// `options`, on its own ports, in front of this stack's demo APIs and
    /// cost-control. Dropping the handle stops it.
    pub fn second_gateway(&self, options: Options) -> SecondGateway {
        let ports = Ports {
            listen: free_port(),
            admin: free_port(),
            plain: free_port(),
            ..self.ports
        };
        // A directory of its own: a gateway writes its config and logs
        // there, which would clobber the first one's.
        let dir = self
            .dir
            .join(format!("{}-{}", self.kind.name(), ports.listen));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let gateway = Gateway::start(self.kind, &ports, &options, self.control.is_some(), &dir);
        SecondGateway {
            ports,
            dir,
            gateway,
        }
    }

    /// See [`Gateway::with_envoy_stat`]: the check runs on Envoy only.
    pub fn with_envoy_stat(&self, name: &str, check: impl FnOnce(u64)) {
        self.gateway.with_envoy_stat(name, check)
    }

    /// URL through the filter.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.listen)
    }

    /// URL through the gateway without the filter (same proxying).
    pub fn plain_url(&self, path: &str) -> String {
        gateway::plain_url(self.kind, &self.ports, path)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http::get(&self.url(path), headers)
    }
}
