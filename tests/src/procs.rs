//! Child processes for end-to-end tests: started with their output in a
//! log file, killed when dropped (also when a test panics), their logs
//! printed when the test failed.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A directory for this test run's files, removed by nobody: tests leave
/// their logs behind in `target/e2e/` for a look after a failure.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: Mutex<u32> = Mutex::new(0);
    let n = {
        let mut c = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        *c += 1;
        *c
    };
    let dir = repo_root()
        .join("target/e2e")
        .join(format!("{name}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// The kernel's ephemeral port range, where outgoing connections take
/// their local ports (Linux default 32768-60999).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A free loopback port, never handed out twice by this process.
///
/// Taken from below the ephemeral range when there is room: a port the
/// kernel picks for `bind(:0)` lies inside it, and the tests open
/// thousands of short connections whose local ports come from there too,
/// so such a port was seen taken by one of them before the server it was
/// meant for could bind it (Envoy: "Address already in use").
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let set = given.get_or_insert_with(HashSet::new);
    let low = ephemeral_low();
    // Above the demo stack's default ports (8080-8082, 9901, 10000).
    if low > 13_000 {
        let range = 11_000..low - 1_000;
        let span = u32::from(range.end - range.start);
        // Start somewhere different in each process, so that test binaries
        // running side by side rarely probe the same ports.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id().wrapping_mul(2_654_435_761);
        let mut offset = seed % span;
        for _ in 0..span {
            offset = (offset + 7_919) % span;
            let port = range.start + offset as u16;
            if set.contains(&port) {
                continue;
            }
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                set.insert(port);
                return port;
            }
        }
    }
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        if set.insert(port) {
            return port;
        }
    }
}

/// Poll `check` until it returns `Some`, or fail naming `what`. Polls are
/// events (a port answering, a counter reaching a value), never a fixed
/// sleep standing in for one.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// A port where a service is down in a way a test can watch: it accepts
/// every connection and closes it at once, counting them, so each try of
/// a client (a gateway's callout) is an event. Stopped on drop, which
/// frees the port for the real service again.
pub struct DeadPort {
    pub port: u16,
    tries: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeadPort {
    pub fn bind(port: u16) -> DeadPort {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("bind :{port} for a dead service: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking :{port}: {e}"));
        let tries = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tries, stop) = (tries.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        // Dropped at once: the client sees its connection closed.
                        Ok(_) => {
                            tries.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        DeadPort {
            port,
            tries,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted (and closed) so far.
    pub fn tries(&self) -> u64 {
        self.tries.load(Ordering::SeqCst)
    }
}

impl Drop for DeadPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `program` with its stdout and stderr in `dir/name.log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Proc {
        if !program.exists() {
            panic!("{name}: {} is missing", program.display());
        }
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(program)
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Whether the process has exited, and with what code.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `timeout` for the process to exit; its
    /// exit code (`None`: killed by a signal). Panics if it did not exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -TERM {}: {e}", self.name));
        assert!(sent.success(), "kill -TERM {} failed", self.name);
        wait_for(
            &format!("{} to exit after SIGTERM", self.name),
            timeout,
            || self.exited(),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            eprintln!(
                "----- last lines of {} ({}) -----",
                self.name,
                self.log.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        self.kill();
    }
}
