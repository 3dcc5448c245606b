//! The load generator: `wrk` (Debian's, installed by scripts/bench.sh), one
//! thread pinned to the client core, with a Lua script that prints the
//! totals and latency percentiles as one machine-readable line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::configs::{Load, QUERY, TENANT};
use crate::procs::pinned_command;

/// Lua for the unique-URL load: a new path per request. Only that load
/// defines `request`: with no `request` function wrk sends one prebuilt
/// request over and over, which costs the client core far less.
const UNIQUE: &str = r#"-- written by the bench (bench/src/load.rs); args: <prefix> <query>
local prefix, query = "x", ""
local n = 0
init = function(args)
  prefix = args[1] or prefix
  query = args[2] or query
end
request = function()
  n = n + 1
  return wrk.format("GET", "/api/items/" .. prefix .. n .. "?" .. query)
end
"#;

/// Lua for every run: the `done` summary line parsed below.
const DONE: &str = r#"-- written by the bench (bench/src/load.rs)
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub bytes: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Socket errors, timeouts and non-2xx/3xx answers.
    pub errors: u64,
    /// CPU wrk itself used (clock ticks).
    pub cpu_ticks: u64,
}

impl WrkResult {
    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.requests as f64 * 1e6 / self.duration_us as f64
    }
}

pub struct Wrk {
    pub core: Option<u32>,
    pub connections: u32,
    pub port: u16,
    same_script: PathBuf,
    unique_script: PathBuf,
}

impl Wrk {
    /// Write the Lua script into `dir` and check that `wrk` runs.
    pub fn new(core: Option<u32>, connections: u32, port: u16, dir: &Path) -> Result<Wrk, String> {
        let same_script = dir.join("wrk-same.lua");
        let unique_script = dir.join("wrk-unique.lua");
        for (path, text) in [
            (&same_script, DONE.to_string()),
            (&unique_script, format!("{UNIQUE}{DONE}")),
        ] {
            std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        }
        let probe = std::process::Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // `wrk --version` prints its usage and exits 1; only "not found" matters.
        if let Err(e) = probe {
            return Err(format!(
                "wrk not found ({e}): run scripts/bench.sh, which installs it"
            ));
        }
        Ok(Wrk {
            core,
            connections,
            port,
            same_script,
            unique_script,
        })
    }

    /// One run of `seconds`; `prefix` makes unique paths differ between
    /// runs (warm-up and measurement must not share keys); every request
    /// carries the tenant's header and `headers`.
    pub fn run(
        &self,
        load: Load,
        seconds: u32,
        prefix: &str,
        headers: &[(&str, &str)],
    ) -> Result<WrkResult, String> {
        let script = match load {
            Load::Same => &self.same_script,
            Load::Unique => &self.unique_script,
        };
        let mut args: Vec<String> = vec![
            "-t1".into(),
            format!("-c{}", self.connections),
            format!("-d{seconds}s"),
            "--timeout".into(),
            "10s".into(),
            "-H".into(),
            format!("{}: {}", TENANT.0, TENANT.1),
        ];
        for (k, v) in headers {
            args.extend(["-H".into(), format!("{k}: {v}")]);
        }
        args.extend(["-s".into(), script.display().to_string()]);
        match load {
            Load::Same => args.push(format!(
                "http://127.0.0.1:{}/api/items/1?{QUERY}",
                self.port
            )),
            Load::Unique => args.extend([
                format!("http://127.0.0.1:{}", self.port),
                "--".into(),
                prefix.into(),
                QUERY.into(),
            ]),
        }
        let mut child = pinned_command(self.core, Path::new("wrk"), &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        // wrk has exited (its output closed) but is not reaped yet: its
        // /proc entry still holds the CPU time it used.
        let cpu_ticks = crate::procs::cpu_ticks(child.id()).unwrap_or(0);
        let status = child.wait().map_err(|e| format!("wrk: {e}"))?;
        if !status.success() {
            return Err(format!("wrk failed ({status}): {stdout}{stderr}"));
        }
        let mut r = stdout
            .lines()
            .find_map(parse_line)
            .ok_or_else(|| format!("no BENCH line in wrk's output:\n{stdout}"))?;
        r.cpu_ticks = cpu_ticks;
        Ok(r)
    }
}

fn parse_line(line: &str) -> Option<WrkResult> {
    let rest = line.strip_prefix("BENCH ")?;
    let mut r = WrkResult::default();
    for pair in rest.split_whitespace() {
        let (k, v) = pair.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "requests" => r.requests = v,
            "duration_us" => r.duration_us = v,
            "bytes" => r.bytes = v,
            "p50_us" => r.p50_us = v,
            "p99_us" => r.p99_us = v,
            "connect" | "read" | "write" | "status" | "timeout" => r.errors += v,
            _ => {}
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_line() {
        let r = parse_line(
            "BENCH requests=1000 duration_us=2000000 bytes=9 p50_us=600 p99_us=1201 connect=0 read=1 write=0 status=2 timeout=0",
        )
        .unwrap();
        assert_eq!(r.requests, 1000);
        assert_eq!(r.p99_us, 1201);
        assert_eq!(r.errors, 3);
        assert!((r.rps() - 500.0).abs() < 1e-9);
        assert!(parse_line("Requests/sec: 5").is_none());
    }
}
