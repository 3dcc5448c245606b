//! cost-control for end-to-end tests: the workspace's `cost-control`
//! binary on a loopback port with a SQLite store in the test's directory,
//! the fixed development tokens, and helpers that read its ledger. It can
//! be killed (`kill -9`) and restarted on the same port and store, to test
//! what survives a crash.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::http;
use crate::http::enc;
use crate::procs::{port_open, wait_for, Proc};
use crate::stack::workspace_bin;

/// The admin token of `--dev-tokens` (budgets, purges).
pub const ADMIN_TOKEN: &str = "admin-dev-token";
/// The gateway token of `--dev-tokens` (spend, allowances, snapshot).
pub const GATEWAY_TOKEN: &str = "gateway-dev-token";

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct CostControl {
    pub port: u16,
    pub dir: PathBuf,
    /// The SQLite file, kept across restarts.
    pub store: PathBuf,
    proc: Option<Proc>,
    /// Processes started so far; each gets its own log file.
    starts: u32,
    /// A server this handle did not start (see [`CostControl::attach`]).
    attached: bool,
    /// Extra `serve` arguments for the next start.
    extra: Vec<String>,
}

impl CostControl {
    /// `cost-control serve` on `127.0.0.1:port` with `sqlite:<dir>/cc.db`,
    /// ready once `/readyz` answers 200 (its store answers).
    pub fn start(port: u16, dir: &Path) -> CostControl {
        let mut cc = CostControl {
            port,
            dir: dir.to_path_buf(),
            store: dir.join("cc.db"),
            proc: None,
            starts: 0,
            attached: false,
            extra: Vec::new(),
        };
        cc.spawn();
        cc
    }

    /// Another server on `port` over the same store file as `other` (a
    /// second replica, or a way to write to the store while `other` is
    /// down), logging to `dir`.
    pub fn start_on_store_of(other: &CostControl, port: u16, dir: &Path) -> CostControl {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut cc = CostControl {
            port,
            dir: dir.to_path_buf(),
            store: other.store.clone(),
            proc: None,
            starts: 0,
            attached: false,
            extra: Vec::new(),
        };
        cc.spawn();
        cc
    }

    /// A handle on a server already running on `port` (e.g. `make run`'s),
    /// for its helpers only: it cannot be stopped or restarted, and
    /// dropping it leaves the server alone. `None` unless `/readyz`
    /// answers 200.
    pub fn attach(port: u16) -> Option<CostControl> {
        let cc = CostControl {
            port,
            dir: PathBuf::new(),
            store: PathBuf::new(),
            proc: None,
            starts: 0,
            attached: true,
            extra: Vec::new(),
        };
        http::try_request("GET", &cc.url("/readyz"), &[], None)
            .ok()
            .filter(|r| r.status == 200)
            .map(|_| cc)
    }

    fn spawn(&mut self) {
        assert!(self.proc.is_none(), "cost-control is already running");
        self.starts += 1;
        let name = if self.starts == 1 {
            "cost-control".to_string()
        } else {
            format!("cost-control-{}", self.starts)
        };
        let args: Vec<String> = [
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--store",
            &format!("sqlite:{}", self.store.display()),
            "--dev-tokens",
            "--log-format",
            "text",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(self.extra.iter().cloned())
        .collect();
        // A missing binary panics in `workspace_bin`, naming the build command.
        let mut proc = Proc::spawn(&name, &workspace_bin("cost-control"), &args, &self.dir);
        let url = self.url("/readyz");
        wait_for(
            &format!("cost-control /readyz on :{}", self.port),
            START_TIMEOUT,
            || {
                if let Some(code) = proc.exited() {
                    panic!("cost-control exited early ({code:?}):\n{}", proc.log_text());
                }
                http::try_request("GET", &url, &[], None)
                    .map(|r| r.status == 200)
                    .unwrap_or(false)
                    .then_some(())
            },
        );
        self.proc = Some(proc);
    }

    /// Kill the process (SIGKILL, no graceful shutdown) and wait until its
    /// port is free. Nothing happens if it is not running.
    pub fn stop(&mut self) {
        assert!(
            !self.attached,
            "cost-control on :{} was not started by this handle",
            self.port
        );
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
            let port = self.port;
            wait_for(
                &format!("port {port} to be free after killing cost-control"),
                STOP_TIMEOUT,
                || (!port_open(port)).then_some(()),
            );
        }
    }

    /// Kill (if running) and start again on the same port and store file.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Restart on the same store with these extra `serve` arguments (they
    /// stay for later restarts).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    pub fn is_running(&mut self) -> bool {
        if self.attached {
            return port_open(self.port);
        }
        match self.proc.as_mut() {
            Some(p) => p.exited().is_none(),
            None => false,
        }
    }

    /// The current process's log (empty when stopped).
    pub fn log_text(&self) -> String {
        self.proc.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A request with `token`; each on a connection of its own, so a
    /// restart never leaves a pooled connection to a dead process.
    pub fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> http::Resp {
        let auth = format!("Bearer {token}");
        let body = body.map(Value::to_string);
        http::request_fresh(
            method,
            &self.url(path),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.as_deref().map(str::as_bytes),
        )
    }

    fn ok_json(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> Value {
        let r = self.call(method, path, token, body);
        assert_eq!(
            r.status,
            200,
            "cost-control {method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    /// `PUT /v1/budgets`: the tenant-wide daily budget. Answers its state.
    pub fn put_budget(&self, tenant: &str, daily_limit_micros: u64) -> Value {
        self.ok_json(
            "PUT",
            "/v1/budgets",
            ADMIN_TOKEN,
            Some(&serde_json::json!({"tenant": tenant, "daily_limit_micros": daily_limit_micros})),
        )
    }

    /// `GET /v1/budgets?tenant=`.
    pub fn budgets(&self, tenant: &str) -> Value {
        self.ok_json(
            "GET",
            &format!("/v1/budgets?tenant={}", enc(tenant)),
            ADMIN_TOKEN,
            None,
        )
    }

    /// `POST /v1/spend` with the gateway token, as a filter would.
    /// Answers `{batch_id, accepted, duplicate}`.
    pub fn post_spend(&self, batch: &Value) -> Value {
        self.ok_json("POST", "/v1/spend", GATEWAY_TOKEN, Some(batch))
    }

    /// `GET /v1/spend?tenant=&group_by=` over the default window (this
    /// month so far): `{rows: [{key, events, cost_micros, baseline_micros,
    /// savings_micros}], total: {..}}`.
    pub fn spend(&self, tenant: &str, group_by: &str) -> Value {
        self.ok_json(
            "GET",
            &format!(
                "/v1/spend?tenant={}&group_by={}",
                enc(tenant),
                enc(group_by)
            ),
            ADMIN_TOKEN,
            None,
        )
    }

    /// Like [`CostControl::spend`], over events since `from_ms` (unix ms).
    pub fn spend_since(&self, tenant: &str, group_by: &str, from_ms: u64) -> Value {
        self.ok_json(
            "GET",
            &format!(
                "/v1/spend?tenant={}&group_by={}&from={from_ms}",
                enc(tenant),
                enc(group_by)
            ),
            ADMIN_TOKEN,
            None,
        )
    }

    fn total(&self, tenant: &str, field: &str) -> u64 {
        let report = self.spend(tenant, "strategy");
        report["total"][field]
            .as_u64()
            .unwrap_or_else(|| panic!("spend report without total.{field}: {report}"))
    }

    /// Spend of `tenant` this month, micro-USD.
    pub fn total_cost(&self, tenant: &str) -> u64 {
        self.total(tenant, "cost_micros")
    }

    /// What the same traffic would have cost without the optimizer, micro-USD.
    pub fn total_baseline(&self, tenant: &str) -> u64 {
        self.total(tenant, "baseline_micros")
    }

    /// `POST /v1/purge` of a tenant's `kind` (`prefix`, `tag` or `key`).
    /// Answers `{tenant, kind, value, generation}`.
    pub fn purge(&self, tenant: &str, kind: &str, value: &str) -> Value {
        let mut body = serde_json::json!({"tenant": tenant});
        body[kind] = Value::String(value.to_string());
        self.ok_json("POST", "/v1/purge", ADMIN_TOKEN, Some(&body))
    }

    /// Requests cost-control answered so far with `method` on `route`
    /// and `status` (from `/metrics`).
    pub fn requests_served(&self, method: &str, route: &str, status: u16) -> u64 {
        let text = http::request_fresh("GET", &self.url("/metrics"), &[], None).text();
        let prefix = format!(
            "cost_control_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `GET /v1/snapshot` requests served so far, by status: `(200s, 304s)`.
    pub fn snapshot_polls(&self) -> (u64, u64) {
        (
            self.requests_served("GET", "/v1/snapshot", 200),
            self.requests_served("GET", "/v1/snapshot", 304),
        )
    }

    /// Spend events of `tenant` this month.
    pub fn total_events(&self, tenant: &str) -> u64 {
        self.total(tenant, "events")
    }
}
