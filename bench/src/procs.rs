//! Processes the bench starts (the gateways, the demo API), pinned to a core with
//! `taskset` when the machine has more than one, killed when dropped; and
//! the checks around them: ports free before, ready after, CPU time from
//! `/proc`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root: the e2e harness's (it lives in `tests/`, this
/// crate in `bench/`, both one level down).
pub use e2e::procs::repo_root;

/// Where processes run: `Some(core)` pins them with `taskset -c core`.
#[derive(Debug, Clone, Copy)]
pub struct Pinning {
    pub server: Option<u32>,
    pub client: Option<u32>,
}

impl Pinning {
    /// Envoy on core 0, load generator and demo API on core 1, when there
    /// are at least two cores; no pinning on one.
    pub fn for_machine(cores: usize) -> Pinning {
        if cores >= 2 {
            Pinning {
                server: Some(0),
                client: Some(1),
            }
        } else {
            Pinning {
                server: None,
                client: None,
            }
        }
    }
}

/// A command line, prefixed by `taskset -c N` when pinned.
pub fn pinned_command(core: Option<u32>, program: &Path, args: &[String]) -> Command {
    match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program).args(args);
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `program` with stdout and stderr in `dir/name.log`. `taskset`
    /// execs the program, so the child's pid is the program's.
    pub fn spawn(
        name: &str,
        core: Option<u32>,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Proc, String> {
        if !program.exists() {
            return Err(format!("{name}: {} is missing", program.display()));
        }
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
        let child = pinned_command(core, program, args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(code)` once the process has exited.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// The last 16 KiB of the log.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait until `ready` holds, failing early with the log if the process
    /// exits.
    pub fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(code) = self.exited() {
                return Err(format!(
                    "{} exited ({code:?}) before {what}:\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait up to `timeout` for the process to exit; whether
    /// it did.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.exited().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether something answers on 127.0.0.1:`port` (the e2e harness's
/// check).
pub use e2e::procs::port_open;

/// Ports of `ports` that something holds: it answers, or we cannot bind.
pub fn taken_ports(ports: &[u16]) -> Vec<u16> {
    ports
        .iter()
        .copied()
        .filter(|&p| port_open(p) || TcpListener::bind(("127.0.0.1", p)).is_err())
        .collect()
}

/// Wait until none of `ports` answers any more (a killed Envoy's sockets
/// close as the process goes).
pub fn wait_ports_closed(ports: &[u16], timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ports.iter().all(|&p| !port_open(p)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("ports {ports:?} still answer after {timeout:?}"))
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    parse_stat_ticks(&text).ok_or_else(|| format!("cannot parse {path}: {text}"))
}

/// Busy clock ticks of the whole machine, all cores (`/proc/stat`: every
/// column of the `cpu` line but idle and iowait).
pub fn machine_busy_ticks() -> Result<u64, String> {
    let text =
        std::fs::read_to_string("/proc/stat").map_err(|e| format!("read /proc/stat: {e}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    Ok(busy)
}

/// utime + stime and the command name of every process now (those whose
/// `/proc` entry could be read), by pid.
pub fn process_ticks() -> std::collections::HashMap<u32, (String, u64)> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let comm = text
            .find('(')
            .zip(text.rfind(')'))
            .map(|(a, b)| text[a + 1..b].to_string())
            .unwrap_or_default();
        if let Some(t) = parse_stat_ticks(&text) {
            out.insert(pid, (comm, t));
        }
    }
    out
}

/// The processes that used the most CPU between two [`process_ticks`]
/// snapshots, summed by command name, in cores over `seconds`, those
/// above 0.02 of a core, at most `n`, the busiest first; `exclude`: the
/// bench's own processes. A process that started and ended in between is
/// not seen; one that started in between counts all its time.
pub fn busiest_others(
    before: &std::collections::HashMap<u32, (String, u64)>,
    after: &std::collections::HashMap<u32, (String, u64)>,
    exclude: &[u32],
    ticks_per_second: u64,
    seconds: f64,
    n: usize,
) -> Vec<(String, f64)> {
    let mut by_name: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (pid, (comm, t1)) in after {
        if exclude.contains(pid) {
            continue;
        }
        let t0 = before
            .get(pid)
            .filter(|(c, _)| c == comm)
            .map_or(0, |(_, t)| *t);
        let d = t1.saturating_sub(t0);
        if d > 0 {
            *by_name.entry(comm.clone()).or_default() += d;
        }
    }
    let mut v: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(c, t)| {
            (
                c,
                t as f64 / ticks_per_second.max(1) as f64 / seconds.max(1e-9),
            )
        })
        .filter(|(_, cores)| *cores >= 0.02)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(n);
    v
}

/// Fields 14 and 15 of `/proc/<pid>/stat`, counted after the `)` that
/// closes the command name (which may itself hold spaces).
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks() {
        let line = "123 (envoy (x)) S 1 123 123 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 5 0";
        assert_eq!(parse_stat_ticks(line), Some(287));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn busiest_others_sums_by_name_and_skips_ours() {
        let snap = |v: &[(u32, &str, u64)]| {
            v.iter()
                .map(|(p, c, t)| (*p, (c.to_string(), *t)))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let before = snap(&[(1, "rustc", 100), (2, "rustc", 50), (3, "envoy", 0)]);
        let after = snap(&[
            (1, "rustc", 150),
            (2, "rustc", 100),
            (3, "envoy", 500),
            (4, "cc1", 1),
        ]);
        let v = busiest_others(&before, &after, &[3], 100, 1.0, 3);
        assert_eq!(v, vec![("rustc".to_string(), 1.0)]);
        assert!(!process_ticks().is_empty());
    }

    #[test]
    fn own_process_has_ticks() {
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert!(machine_busy_ticks().is_ok());
    }
}
