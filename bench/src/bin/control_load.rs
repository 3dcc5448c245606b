//! `make control-load`: the real `cost-control` binary (release) on
//! loopback under many concurrent keep-alive connections, each looping over
//! spend reports (`POST /v1/spend`, small batches, unique batch ids) and
//! lease requests (`POST /v1/allowances`) for a handful of tenants with
//! budgets. Prints requests, errors, latency per call kind and throughput,
//! then checks the ledger against what the server acknowledged. Exits
//! non-zero on any error (a non-2xx answer, a socket error, an unexpected
//! body) or a ledger mismatch.
//!
//! ```text
//! control_load [--seconds 60] [--connections 1000] [--tenants 8]
//!              [--store sqlite | --store postgres://...] [--binary PATH]
//!              [--client-threads 1] [--allowance-every 4]
//! ```
//! Environment: `CONTROL_LOAD_SECONDS`, `CONTROL_LOAD_CONNECTIONS` (flags win).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const GATEWAY: &str = "gateway-dev-token";
const ADMIN: &str = "admin-dev-token";

struct Args {
    seconds: u64,
    connections: usize,
    tenants: usize,
    store: String,
    binary: PathBuf,
    client_threads: usize,
    allowance_every: u64,
}

fn env_num(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| format!("{name}={v}: not a number")),
        _ => Ok(default),
    }
}

fn parse_args() -> Result<Args, String> {
    let root = repo_root();
    let mut a = Args {
        seconds: env_num("CONTROL_LOAD_SECONDS", 60)?,
        connections: env_num("CONTROL_LOAD_CONNECTIONS", 1000)? as usize,
        tenants: 8,
        store: "sqlite".into(),
        binary: root.join("target/release/cost-control"),
        client_threads: 1,
        allowance_every: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("{v}: not a number"));
        match flag.as_str() {
            "--seconds" => a.seconds = num(val()?)?,
            "--connections" => a.connections = num(val()?)? as usize,
            "--tenants" => a.tenants = num(val()?)? as usize,
            "--store" => a.store = val()?,
            "--binary" => a.binary = PathBuf::from(val()?),
            "--client-threads" => a.client_threads = num(val()?)? as usize,
            "--allowance-every" => a.allowance_every = num(val()?)?,
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("control_load.rs")
                        .lines()
                        .take(16)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.seconds == 0
        || a.connections == 0
        || a.tenants == 0
        || a.client_threads == 0
        || a.allowance_every == 0
    {
        return Err(
            "seconds, connections, tenants, client-threads and allowance-every must be positive"
                .into(),
        );
    }
    Ok(a)
}

/// The repository root: this crate lives in `bench/`.
fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), PathBuf::from)
}

/// Both ends of every connection live on this machine: the client's
/// sockets in this process, the server's in its child, which inherits the
/// limit. Raises the soft limit to what is needed (up to the hard limit),
/// or says what to set.
fn raise_fd_limit(connections: usize) -> Result<u64, String> {
    let need = connections as u64 + 256;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if lim.rlim_cur >= need {
        return Ok(lim.rlim_cur);
    }
    if lim.rlim_max < need {
        return Err(format!(
            "{connections} connections need {need} file descriptors per process; the hard limit is {} (raise it: `ulimit -Hn {need}` as root, or LimitNOFILE)",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = need;
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "setrlimit to {need}: {} (run `ulimit -n {need}` first)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(need)
}

/// The server process; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: Option<TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// SIGTERM, then up to 10 s for a clean exit; the exit status.
    fn stop(&mut self) -> String {
        // SAFETY: signals our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.to_string();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        "killed after 10 s without exiting on SIGTERM".into()
    }
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let p =
            std::env::temp_dir().join(format!("control-load-{}-{}", std::process::id(), now_ms()));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_server(a: &Args) -> Result<Server, String> {
    if !a.binary.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p cost-control`",
            a.binary.display()
        ));
    }
    let (spec, dir) = if a.store == "sqlite" {
        let d = TempDir::new()?;
        (format!("sqlite:{}", d.0.join("cc.db").display()), Some(d))
    } else if a.store.starts_with("postgres") {
        (a.store.clone(), None)
    } else {
        return Err(format!("--store {}: sqlite or a postgres:// URL", a.store));
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let log = std::env::temp_dir().join(format!("control-load-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(&a.binary)
        .args([
            "serve",
            "--dev-tokens",
            "--log-format",
            "text",
            "--log-level",
            "warn",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--store")
        .arg(&spec)
        .env_remove("COST_CONTROL_ADMIN_TOKEN")
        .env_remove("COST_CONTROL_GATEWAY_TOKEN")
        .env_remove("COST_CONTROL_WEBHOOKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(|e| format!("{}: {e}", a.binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: dir,
    };
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(_) => {
            println!(
                "cost-control {} pid {} on {} store {} (log {})",
                a.binary.display(),
                server.child.id(),
                server.addr,
                if a.store == "sqlite" {
                    spec.as_str()
                } else {
                    "postgres"
                },
                log.display()
            );
            Ok(server)
        }
        Err(_) => Err(format!(
            "cost-control did not print `listening on` within 20 s; see {}",
            log.display()
        )),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// One request on a connection: status and body, or the socket error.
async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    token: &str,
    body: Option<String>,
) -> Result<(u16, Bytes), String> {
    send.ready().await.map_err(|e| format!("connection: {e}"))?;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "cost-control")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("request: {e}"))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, bytes))
}

/// What one connection did.
#[derive(Default)]
struct Tally {
    spend_us: Vec<u32>,
    grant_us: Vec<u32>,
    errors: Vec<String>,
    reconnects: u64,
    /// Per tenant index: events and cost acknowledged, micros granted.
    events: Vec<i64>,
    cost: Vec<i64>,
    granted: Vec<i64>,
    /// A grant above its want, or one that left a negative remainder.
    grant_violations: u64,
    /// Grants of nothing: the tenant's budget was used up.
    zero_grants: u64,
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

struct Plan {
    addr: SocketAddr,
    tenants: Arc<Vec<String>>,
    run: String,
    allowance_every: u64,
    want_micros: i64,
}

async fn connection(
    id: usize,
    plan: Arc<Plan>,
    start: Arc<tokio::sync::Barrier>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
) -> Tally {
    let nt = plan.tenants.len();
    let mut t = Tally {
        events: vec![0; nt],
        cost: vec![0; nt],
        granted: vec![0; nt],
        ..Tally::default()
    };
    // Connect before the clock starts; a few retries for the accept backlog.
    let mut send = None;
    for attempt in 0..5 {
        match connect(plan.addr).await {
            Ok(s) => {
                send = Some(s);
                break;
            }
            Err(e) if attempt == 4 => t.errors.push(format!("conn {id}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await,
        }
    }
    if send.is_some() {
        live.fetch_add(1, Ordering::SeqCst);
    }
    start.wait().await;
    let Some(mut send) = send else { return t };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let gateway = format!("load-gw-{id}");
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let ti = (id + seq as usize) % nt;
        let tenant = &plan.tenants[ti];
        let is_grant = seq.is_multiple_of(plan.allowance_every);
        let (path, body, events, cost) = if is_grant {
            let b = json!({"gateway_id": gateway, "tenant": tenant, "want_micros": plan.want_micros, "ttl_secs": 3600});
            ("/v1/allowances", b.to_string(), 0, 0)
        } else {
            let n = 1 + (xorshift(&mut rng) % 5) as usize;
            let ts = now_ms();
            let mut cost = 0;
            let evs: Vec<Value> = (0..n)
                .map(|_| {
                    let c = 1 + (xorshift(&mut rng) % 100) as i64;
                    cost += c;
                    json!({"tenant": tenant, "service": "chat", "route": "/v1/chat/completions",
                           "provider": "openai", "strategy": "upstream", "cost_micros": c,
                           "baseline_micros": 2 * c, "ts": ts})
                })
                .collect();
            let b = json!({"batch_id": format!("{}-{id}-{seq}", plan.run), "gateway_id": gateway, "events": evs});
            ("/v1/spend", b.to_string(), n as i64, cost)
        };
        let t0 = Instant::now();
        let r = call(&mut send, Method::POST, path, GATEWAY, Some(body)).await;
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        let kind = if is_grant { "allowance" } else { "spend" };
        match r {
            Ok((200, bytes)) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if is_grant {
                    t.grant_us.push(us);
                    match (v["granted_micros"].as_i64(), v["tenant"].as_str()) {
                        (Some(g), Some(tn)) if tn == tenant => {
                            t.granted[ti] += g;
                            t.zero_grants += u64::from(g == 0);
                            if g > plan.want_micros
                                || g < 0
                                || v["remaining_micros"].as_i64().is_some_and(|r| r < 0)
                            {
                                t.grant_violations += 1;
                            }
                        }
                        _ => t.errors.push(format!("{kind}: unexpected answer {v}")),
                    }
                } else {
                    t.spend_us.push(us);
                    if v["accepted"].as_i64() == Some(events) && v["duplicate"] == false {
                        t.events[ti] += events;
                        t.cost[ti] += cost;
                    } else {
                        t.errors.push(format!("{kind}: unexpected answer {v}"));
                    }
                }
            }
            Ok((status, bytes)) => {
                t.errors.push(format!(
                    "{kind}: {status} {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            Err(e) => {
                t.errors.push(format!("{kind}: {e}"));
                // The connection is gone: a new one, counted.
                match connect(plan.addr).await {
                    Ok(s) => {
                        send = s;
                        t.reconnects += 1;
                    }
                    Err(e) => {
                        t.errors.push(format!("reconnect: {e}"));
                        live.fetch_sub(1, Ordering::SeqCst);
                        return t;
                    }
                }
            }
        }
    }
    t
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[i.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU seconds (user + system) a process has used, from `/proc`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{model}, {mem_gb:.0} GB")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One request on a fresh connection (setup and the ledger check).
async fn once(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut s = connect(addr).await?;
    let (status, bytes) = call(&mut s, method, path, token, body.map(|b| b.to_string())).await?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status != 200 {
        return Err(format!("{path}: {status} {v}"));
    }
    Ok(v)
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("control_load: {e}");
            std::process::exit(2);
        }
    }
}

fn run() -> Result<bool, String> {
    let a = parse_args()?;
    let nofile = raise_fd_limit(a.connections)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "control_load: {} connections for {} s, {} tenants, 1 allowance call in {}, store {}; {} cores ({}), load {}, RLIMIT_NOFILE {}",
        a.connections, a.seconds, a.tenants, a.allowance_every, a.store, cores, machine(), loadavg(), nofile
    );
    let mut server = start_server(&a)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.client_threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let ok = rt.block_on(drive(&a, &server))?;
    let exit = server.stop();
    println!("server stopped: {exit}");
    Ok(ok)
}

async fn drive(a: &Args, server: &Server) -> Result<bool, String> {
    let addr = server.addr;
    let pid = server.child.id();
    let run = format!("r{}", now_ms());
    let tenants: Vec<String> = (0..a.tenants).map(|i| format!("load-{run}-t{i}")).collect();
    // Budgets a run can reach: grants stop at the limit, which the check
    // below then sees hold.
    let limit: i64 = 2_000_000;
    let want_micros: i64 = 1_000;
    for t in &tenants {
        once(
            addr,
            Method::PUT,
            "/v1/budgets",
            ADMIN,
            Some(json!({"tenant": t, "daily_limit_micros": limit})),
        )
        .await?;
    }
    let from = now_ms() - 1;
    let plan = Arc::new(Plan {
        addr,
        tenants: Arc::new(tenants.clone()),
        run,
        allowance_every: a.allowance_every,
        want_micros,
    });
    let start = Arc::new(tokio::sync::Barrier::new(a.connections + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(a.connections);
    for id in 0..a.connections {
        tasks.push(tokio::spawn(connection(
            id,
            plan.clone(),
            start.clone(),
            stop.clone(),
            live.clone(),
        )));
    }
    let connecting = Instant::now();
    start.wait().await;
    let opened = live.load(Ordering::SeqCst);
    println!(
        "{opened} of {} connections open in {:.2} s; server fds {}; running {} s",
        a.connections,
        connecting.elapsed().as_secs_f64(),
        open_fds(pid),
        a.seconds
    );
    let t0 = Instant::now();
    let (server_cpu0, own_cpu0) = (cpu_secs(pid), cpu_secs(std::process::id()));
    let mut mid_fds = 0;
    let mut min_live = opened;
    let deadline = t0 + Duration::from_secs(a.seconds);
    let mut next_print = t0 + Duration::from_secs(10);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        min_live = min_live.min(live.load(Ordering::SeqCst));
        if mid_fds == 0 && t0.elapsed() >= Duration::from_secs(a.seconds / 2) {
            mid_fds = open_fds(pid);
        }
        if Instant::now() >= next_print {
            println!(
                "  {:>4.0} s  load {}",
                t0.elapsed().as_secs_f64(),
                loadavg()
            );
            next_print += Duration::from_secs(10);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut all = Tally {
        events: vec![0; a.tenants],
        cost: vec![0; a.tenants],
        granted: vec![0; a.tenants],
        ..Tally::default()
    };
    for task in tasks {
        let t = task
            .await
            .map_err(|e| format!("a connection task failed: {e}"))?;
        all.spend_us.extend(t.spend_us);
        all.grant_us.extend(t.grant_us);
        all.errors.extend(t.errors);
        all.reconnects += t.reconnects;
        all.grant_violations += t.grant_violations;
        all.zero_grants += t.zero_grants;
        for i in 0..a.tenants {
            all.events[i] += t.events[i];
            all.cost[i] += t.cost[i];
            all.granted[i] += t.granted[i];
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = cpu_secs(pid) - server_cpu0;
    let own_cpu = cpu_secs(std::process::id()) - own_cpu0;
    if mid_fds == 0 {
        mid_fds = open_fds(pid);
    }
    let total = all.spend_us.len() + all.grant_us.len();
    println!();
    println!(
        "requests      {total} answered 200 in {secs:.1} s: {:.0} req/s",
        total as f64 / secs
    );
    println!(
        "errors        {} (non-2xx, socket, unexpected body); reconnects {}; connections open at start {opened}, fewest during the run {min_live}",
        all.errors.len(),
        all.reconnects
    );
    println!(
        "server        {mid_fds} open fds mid-run, RSS {:.0} MB at the end, {server_cpu:.1} CPU-s ({:.0}% of a core); this client {own_cpu:.1} CPU-s; load {}",
        rss_mb(pid),
        100.0 * server_cpu / secs,
        loadavg()
    );
    println!(
        "latency (ms)  {:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "kind", "count", "p50", "p90", "p99", "max", "req/s"
    );
    for (name, v) in [
        ("spend", &mut all.spend_us),
        ("allowance", &mut all.grant_us),
    ] {
        v.sort_unstable();
        println!(
            "              {:<10} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.0}",
            name,
            v.len(),
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 99.0),
            pct(v, 100.0),
            v.len() as f64 / secs
        );
    }
    let mut samples: BTreeMap<String, usize> = BTreeMap::new();
    for e in &all.errors {
        let key: String = e.chars().take(160).collect();
        *samples.entry(key).or_default() += 1;
    }
    for (e, n) in samples.iter().take(10) {
        println!("  error x{n}: {e}");
    }

    // The ledger: what the server reports equals what it acknowledged.
    let mut ledger_ok = true;
    let report = once(
        addr,
        Method::GET,
        &format!(
            "/v1/spend?from={from}&to={}&group_by=tenant",
            now_ms() + 3_600_000
        ),
        ADMIN,
        None,
    )
    .await?;
    let rows: BTreeMap<String, (i64, i64)> = report["rows"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    Some((
                        r["key"].as_str()?.to_owned(),
                        (r["events"].as_i64()?, r["cost_micros"].as_i64()?),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let budgets = once(addr, Method::GET, "/v1/budgets", ADMIN, None).await?;
    let (mut acked_events, mut acked_cost, mut granted) = (0i64, 0i64, 0i64);
    for (i, t) in tenants.iter().enumerate() {
        acked_events += all.events[i];
        acked_cost += all.cost[i];
        granted += all.granted[i];
        let got = rows.get(t).copied().unwrap_or((0, 0));
        if got != (all.events[i], all.cost[i]) {
            ledger_ok = false;
            println!(
                "LEDGER {t}: server reports {got:?} (events, cost), acknowledged ({}, {})",
                all.events[i], all.cost[i]
            );
        }
        let st = budgets["budgets"]
            .as_array()
            .and_then(|bs| bs.iter().find(|b| b["tenant"] == t.as_str()).cloned())
            .unwrap_or(Value::Null);
        // Leases live an hour and no spend names one: what is outstanding
        // is every micro granted, and it never passed the limit.
        let outstanding = st["outstanding_micros"].as_i64();
        if outstanding != Some(all.granted[i]) || all.granted[i] > limit {
            ledger_ok = false;
            println!(
                "LEDGER {t}: granted {} (limit {limit}), server outstanding {outstanding:?}",
                all.granted[i]
            );
        }
    }
    if all.grant_violations > 0 {
        ledger_ok = false;
        println!(
            "LEDGER: {} grants above their want or with a negative remainder",
            all.grant_violations
        );
    }
    println!(
        "ledger        {}: {acked_events} events / {acked_cost} micros acknowledged, the same reported; {granted} micros granted over {} tenants (limit {limit} each, none above it, outstanding matches); {} grants of 0 once a budget was used up",
        if ledger_ok { "ok" } else { "MISMATCH" },
        a.tenants,
        all.zero_grants
    );
    let ok = ledger_ok && all.errors.is_empty() && opened as usize == a.connections;
    println!("verdict       {}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}
