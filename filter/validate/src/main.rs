//! `cost-optimizer-validate`: check a filter config with the filter's own
//! parser before deploying it. Exit status 0 when every config found is
//! valid, 1 when one is not (or none was found), 2 on bad usage.

use std::io::Read;
use std::process::ExitCode;

use cost_optimizer_validate::{extract, kong_shm, summary, Found};
use optimizer_core::config;
use optimizer_core::host::HostKind;

const USAGE: &str = "\
usage: cost-optimizer-validate [options] FILE.json | -
       cost-optimizer-validate [options] --kong-yml kong.yml
       cost-optimizer-validate [options] --envoy-yaml envoy.yaml

Checks the filter's config with the filter's own parser (the check the
gateway runs when it loads the filter) and prints `ok` with what the config
does, or the error naming the field. A JSON file (`-`: standard input) is
one config; a Kong declarative config (format 3.0) may hold several (every
filter chain entry and filter plugin named cost_optimizer), an Envoy config
every Wasm HTTP filter whose root_id is cost_optimizer.

options:
  --name NAME      the filter's name (Kong: the .wasm file's name; Envoy:
                   root_id), default cost_optimizer
  --print-config   print each valid config as one line of JSON on standard
                   output (the reports go to standard error)
  -h, --help       this text

exit status: 0 all valid, 1 an invalid config or none found, 2 bad usage";

enum Input {
    Json(String),
    KongYml(String),
    EnvoyYaml(String),
}

struct Args {
    input: Input,
    name: String,
    print_config: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut input = None;
    let mut name = "cost_optimizer".to_string();
    let mut print_config = false;
    let set = |slot: &mut Option<Input>, v: Input| {
        if slot.is_some() {
            return Err("give one file".to_string());
        }
        *slot = Some(v);
        Ok(())
    };
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--kong-yml" => set(&mut input, Input::KongYml(value("--kong-yml")?))?,
            "--envoy-yaml" => set(&mut input, Input::EnvoyYaml(value("--envoy-yaml")?))?,
            "--name" => name = value("--name")?,
            "--print-config" => print_config = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => set(&mut input, Input::Json(a))?,
        }
    }
    let input = input.ok_or("give a file")?;
    Ok(Some(Args {
        input,
        name,
        print_config,
    }))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("{path}: {e}"))
    }
}

fn text(path: &str) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| format!("{path}: not UTF-8"))
}

/// The configs to check, each with where it came from.
fn configs(args: &Args) -> Result<(String, Vec<Found>), String> {
    match &args.input {
        Input::Json(path) => Ok((
            path.clone(),
            vec![Found {
                origin: String::new(),
                json: read(path)?,
                enabled: true,
            }],
        )),
        Input::KongYml(path) => {
            let found = extract::from_kong_yml(&text(path)?, &args.name)
                .map_err(|e| format!("{path}: {e}"))?;
            Ok((path.clone(), found))
        }
        Input::EnvoyYaml(path) => {
            let found = extract::from_envoy_yaml(&text(path)?, &args.name)
                .map_err(|e| format!("{path}: {e}"))?;
            Ok((path.clone(), found))
        }
    }
}

/// Checks one config; the report line, and the compact JSON when valid.
fn check(file: &str, f: &Found) -> Result<(String, Vec<u8>), String> {
    let place = if f.origin.is_empty() {
        file.to_string()
    } else {
        format!("{file}: {}", f.origin)
    };
    let off = if f.enabled { "" } else { " (disabled there)" };
    let parsed = config::parse(&f.json).map_err(|e| format!("error: {place}{off}: {e}"))?;
    let mut line = format!("ok: {place}{off}: {}", summary::describe(&parsed));
    if parsed.host == HostKind::Kong {
        let need = kong_shm::estimate(&parsed).map_err(|e| format!("error: {place}: {e}"))?;
        // The zone is named by the prefix of the filter's keys.
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        line.push_str(&format!(
            "; Kong needs nginx_wasm_shm_kv_{} >= {}m (tables {:.1}m, cache <= {:.1}m, \
             coalescing results <= {:.1}m)",
            optimizer_core::shared::PREFIX,
            need.total_mib().max(1),
            mib(need.fixed_bytes),
            mib(need.cache_bytes),
            mib(need.coalesce_bytes),
        ));
    }
    // The filter gets the bytes as they are; print them on one line
    // (nginx takes the config as one parameter).
    let compact = if f.json.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        let v: serde_json::Value =
            serde_json::from_slice(&f.json).map_err(|e| format!("error: {place}: {e}"))?;
        serde_json::to_vec(&v).map_err(|e| format!("error: {place}: {e}"))?
    };
    Ok((line, compact))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cost-optimizer-validate: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (file, found) = match configs(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if found.is_empty() {
        eprintln!("error: {file}: no filter named {} in it", args.name);
        return ExitCode::from(1);
    }
    let mut failed = false;
    for f in &found {
        match check(&file, f) {
            Ok((line, compact)) => {
                if args.print_config {
                    eprintln!("{line}");
                    println!("{}", String::from_utf8_lossy(&compact));
                } else {
                    println!("{line}");
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
