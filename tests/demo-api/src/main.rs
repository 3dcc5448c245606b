//! `demo-api --provider NAME --port P [--host 127.0.0.1]`

use std::process::ExitCode;

use demo_api::{app, server, AppState};

const USAGE: &str = "usage: demo-api [--provider NAME] [--port P] [--host ADDR]\n\
    defaults: --provider primary --port 8080 --host 127.0.0.1";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    provider: String,
    port: u16,
    host: String,
}

enum Parsed {
    Run(Args),
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut out = Args {
        provider: "primary".to_owned(),
        port: 8080,
        host: "127.0.0.1".to_owned(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--provider" => out.provider = value()?,
            "--host" => out.host = value()?,
            "--port" => {
                let v = value()?;
                out.port = v
                    .parse()
                    .map_err(|_| format!("--port: {v:?} is not a port"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if out.provider.is_empty() {
        return Err("--provider must not be empty".to_owned());
    }
    Ok(Parsed::Run(out))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("demo-api: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo-api: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("demo-api: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let addr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", args.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", args.host))?;
    let listener = server::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    println!("demo-api {} listening on {local}", args.provider);
    let router = app(AppState::new(&args.provider));
    server::serve(listener, router, shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(v: &[&str]) -> Args {
        match parse_args(v.iter().map(|s| s.to_string())) {
            Ok(Parsed::Run(a)) => a,
            _ => panic!("expected run args for {v:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = run_args(&[]);
        assert_eq!(a.provider, "primary");
        assert_eq!(a.port, 8080);
        assert_eq!(a.host, "127.0.0.1");
    }

    #[test]
    fn flags_both_forms() {
        let a = run_args(&["--provider", "backup", "--port=9001", "--host", "0.0.0.0"]);
        assert_eq!(a.provider, "backup");
        assert_eq!(a.port, 9001);
        assert_eq!(a.host, "0.0.0.0");
    }

    #[test]
    fn errors() {
        assert!(parse_args(["--port".to_string()]).is_err());
        assert!(parse_args(["--port".to_string(), "x".to_string()]).is_err());
        assert!(parse_args(["--bogus".to_string()]).is_err());
        assert!(matches!(
            parse_args(["--help".to_string()]),
            Ok(Parsed::Help)
        ));
    }
}
