//! The gateway a test stack runs the filter in: the real Envoy, or Kong's
//! engine (nginx + ngx_wasm_module + wasmtime, see [`crate::kong`]). Tests
//! of behaviour take a [`GatewayKind`] and run on both (see
//! [`crate::on_both_hosts`]); what only one host can show is asked through
//! an `Option` here, so a test says in its code which check is whose.

use std::path::Path;

use crate::envoy_config::{self, Options, Ports};
use crate::http::{self, Resp};
use crate::kong::{self, Kong, KongPorts};
use crate::stack::{wasm_path, Envoy};
use crate::wire::RawRequest;

/// Which host runs the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    Envoy,
    Kong,
}

impl GatewayKind {
    pub fn name(self) -> &'static str {
        match self {
            GatewayKind::Envoy => "envoy",
            GatewayKind::Kong => "kong",
        }
    }
}

/// A running gateway with the filter, stopped on drop. A Kong gateway's
/// error log is checked for wasm traps, panics and dead workers when it
/// is dropped, which fails the test (see [`Kong`]).
pub enum Gateway {
    Envoy(Envoy),
    Kong(Kong),
}

/// Workers of every gateway the tests start.
pub const WORKERS: usize = 2;

impl Gateway {
    /// Start a gateway of `kind` on `ports` with the filter configured by
    /// `options`, in `dir`. `wake` (Kong only): the filter's parked
    /// requests wake themselves through cost-control on `ports.control`.
    pub fn start(
        kind: GatewayKind,
        ports: &Ports,
        options: &Options,
        wake: bool,
        dir: &Path,
    ) -> Gateway {
        match kind {
            GatewayKind::Envoy => {
                let yaml = envoy_config::render(ports, &wasm_path(), options);
                Gateway::Envoy(Envoy::start(
                    &yaml,
                    ports.admin,
                    &[ports.listen, ports.plain],
                    dir,
                ))
            }
            GatewayKind::Kong => {
                assert!(
                    !options.jwt,
                    "Kong's engine has no jwt_authn: a test that needs a verified JWT runs on Envoy only"
                );
                let filter = kong::filter_config(&options.filter, ports, wake);
                Gateway::Kong(Kong::start(kong_ports(ports), &filter, dir))
            }
        }
    }

    /// Start a gateway of `kind` on a filter config it must refuse, and
    /// answer its log once it did: Envoy exits with an error; on Kong
    /// nginx starts (`nginx -t` does not run the filter's `on_configure`)
    /// and each worker logs the filter's error and exits.
    pub fn start_expecting_refusal(
        kind: GatewayKind,
        ports: &Ports,
        options: &Options,
        dir: &Path,
    ) -> String {
        match kind {
            GatewayKind::Envoy => {
                let yaml = envoy_config::render(ports, &wasm_path(), options);
                let (code, log) = Envoy::start_expecting_refusal(&yaml, dir);
                assert_ne!(code, Some(0), "envoy must refuse the filter:\n{log}");
                log
            }
            GatewayKind::Kong => {
                let filter = kong::filter_config(&options.filter, ports, false);
                Kong::start_expecting_refusal(kong_ports(ports), &filter, dir)
            }
        }
    }

    pub fn kind(&self) -> GatewayKind {
        match self {
            Gateway::Envoy(_) => GatewayKind::Envoy,
            Gateway::Kong(_) => GatewayKind::Kong,
        }
    }

    /// The Envoy, on Envoy.
    pub fn envoy(&self) -> Option<&Envoy> {
        match self {
            Gateway::Envoy(e) => Some(e),
            Gateway::Kong(_) => None,
        }
    }

    /// A counter of the filter (or of Envoy) from Envoy's admin `/stats`.
    /// `None` on Kong: its engine here is bare nginx, which serves the
    /// filter's metrics nowhere (a real Kong exposes them through its
    /// Prometheus plugin), so such a check is Envoy's only.
    pub fn envoy_stat(&self, name: &str) -> Option<u64> {
        self.envoy().map(|e| e.stat(name))
    }

    /// Run `check` on a counter where the host serves it: on Envoy, and
    /// on Kong not at all (see [`Gateway::envoy_stat`]); a test says with
    /// it which of its checks are Envoy's only.
    pub fn with_envoy_stat(&self, name: &str, check: impl FnOnce(u64)) {
        if let Some(n) = self.envoy_stat(name) {
            check(n);
        }
    }

    /// Memory the gateway holds, for bounds on growth. Envoy: the bytes
    /// its allocator has handed out (admin `/memory`). Kong: the workers'
    /// private resident memory (their wasm instances, nginx's pools)
    /// summed, plus the shared resident memory of one worker (the shm_kv
    /// zone every worker maps, counted once).
    pub fn memory_bytes(&self) -> u64 {
        match self {
            Gateway::Envoy(e) => e.allocated_bytes(),
            Gateway::Kong(k) => {
                let status: Vec<(u64, u64)> = k
                    .workers()
                    .iter()
                    .map(|pid| {
                        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
                            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
                        (kib(&text, "RssAnon:"), kib(&text, "RssShmem:"))
                    })
                    .collect();
                let private: u64 = status.iter().map(|(a, _)| a).sum();
                let shared = status.iter().map(|(_, s)| *s).max().unwrap_or(0);
                private + shared
            }
        }
    }

    /// Send one request on a connection of its own and say which worker
    /// (0 or 1) served it. Envoy: the listener's per-worker connection
    /// counters, read around the request (so probes must not overlap on
    /// one gateway); Kong: the worker process that holds the accepted
    /// socket, found through /proc before the request is complete (Kong
    /// closes the connection after a reply the filter makes).
    pub fn probe_worker(
        &self,
        listen: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Resp, usize) {
        match self {
            Gateway::Envoy(e) => {
                let counts = || {
                    [0, 1].map(|w| {
                        e.stat(&format!(
                            "listener.127.0.0.1_{listen}.worker_{w}.downstream_cx_total"
                        ))
                    })
                };
                let before = counts();
                let r = http::request_fresh(
                    method,
                    &format!("http://127.0.0.1:{listen}{path}"),
                    headers,
                    None,
                );
                let after = counts();
                let grew: Vec<usize> = (0..WORKERS).filter(|w| after[*w] > before[*w]).collect();
                assert_eq!(
                    grew.len(),
                    1,
                    "one worker accepted the probe's connection: {before:?} → {after:?}"
                );
                (r, grew[0])
            }
            Gateway::Kong(k) => {
                let mut req = RawRequest::send_held(listen, method, path, headers, None);
                req.wait_read_by_server();
                let worker = k.worker_holding(&req).unwrap_or_else(|| {
                    panic!(
                        "no worker of the Kong host holds the connection from :{}",
                        req.local_port()
                    )
                });
                req.release();
                (req.response(), worker)
            }
        }
    }
}

/// A `Name:   123 kB` line of a /proc status file, in bytes.
fn kib(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {name} in a /proc status file"))
        * 1024
}

/// The ports a Kong host uses of a stack's.
pub fn kong_ports(ports: &Ports) -> KongPorts {
    KongPorts {
        listen: ports.listen,
        demo: ports.demo,
        demo_b: ports.demo_b,
    }
}

/// The URL without the filter on a gateway of `kind` listening on
/// `ports`: Envoy's second listener, or Kong's `location /__plain/`
/// (the same proxying, no `proxy_wasm`).
pub fn plain_url(kind: GatewayKind, ports: &Ports, path: &str) -> String {
    match kind {
        GatewayKind::Envoy => format!("http://127.0.0.1:{}{path}", ports.plain),
        GatewayKind::Kong => format!("http://127.0.0.1:{}/__plain{path}", ports.listen),
    }
}

/// Run test bodies on both hosts: `on_both_hosts!(name);` above
/// `fn name(kind: GatewayKind) {..}` makes a module `name` with two tests,
/// `name::envoy` and `name::kong`, that call it with each host (run one
/// host's with `cargo test -p e2e -- ::kong`). The body stays an ordinary
/// function, so rustfmt and the compiler see it as written.
#[macro_export]
macro_rules! on_both_hosts {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn envoy() {
                super::$name($crate::gateway::GatewayKind::Envoy)
            }

            #[test]
            fn kong() {
                super::$name($crate::gateway::GatewayKind::Kong)
            }
        }
    )+};
}
