//! The `cost-control` binary: `serve` (the default) runs the HTTP service;
//! the other subcommands are an HTTP client of a running server.

mod cli;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use cost_control::alerts::RetryPolicy;
use cost_control::clock::{Clock, SystemClock};
use cost_control::state::{AppState, Limits};

#[derive(Parser)]
#[command(name = "cost-control", version, about = "Budgets and the spend ledger")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP service (the default).
    Serve(ServeArgs),
    /// Budgets: set or list.
    #[command(subcommand)]
    Budget(cli::BudgetCmd),
    /// Spend: reports.
    #[command(subcommand)]
    Spend(cli::SpendCmd),
    /// Bump the cache generation of a tenant's prefix, tag or key.
    Purge(cli::PurgeArgs),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "COST_CONTROL_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// `sqlite:PATH` (embedded, default) or `postgres://...` (shared ledger).
    #[arg(
        long,
        env = "COST_CONTROL_STORE",
        default_value = "sqlite:./cost-control.db"
    )]
    store: String,
    /// Use the fixed tokens admin-dev-token / gateway-dev-token when none are configured.
    #[arg(long)]
    dev_tokens: bool,
    /// Webhook URL for alerts (repeat, or comma-separated in the env).
    #[arg(long = "webhook", env = "COST_CONTROL_WEBHOOKS", value_delimiter = ',')]
    webhooks: Vec<String>,
    /// Most events one spend batch may carry (a larger batch is refused
    /// with 400; gateways then send its money again in smaller batches).
    #[arg(long, env = "COST_CONTROL_MAX_BATCH_EVENTS", default_value_t = 10_000)]
    max_batch_events: usize,
    /// Default allowance lease lifetime, seconds.
    #[arg(long, env = "COST_CONTROL_LEASE_TTL_SECS", default_value_t = 60)]
    lease_ttl_secs: u32,
    /// Request body bound, bytes.
    #[arg(long, env = "COST_CONTROL_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Log format: json or text (anything else is an error, not JSON).
    #[arg(long, env = "COST_CONTROL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "COST_CONTROL_LOG_LEVEL", default_value = "info")]
    log_level: tracing::Level,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        None => serve(cli.serve),
        Some(Cmd::Serve(args)) => serve(args),
        Some(Cmd::Budget(c)) => cli::budget(c),
        Some(Cmd::Spend(c)) => cli::spend(c),
        Some(Cmd::Purge(a)) => cli::purge(a),
        Some(Cmd::Openapi) => {
            println!("{}", cost_control::openapi::document_string());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cost-control: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn init_logs(args: &ServeArgs) {
    let b = tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr);
    if args.log_format == LogFormat::Text {
        b.init();
    } else {
        b.json().flatten_event(true).init();
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    init_logs(&args);
    let env = |k: &str| std::env::var(k).ok();
    let tokens = cost_control::config::server_tokens(&env, args.dev_tokens)?;
    if args.dev_tokens && env(cost_control::config::ADMIN_ENV).is_none() {
        tracing::warn!(
            "--dev-tokens: using the fixed development tokens; never do this in production"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run(args, tokens))
}

async fn run(args: ServeArgs, tokens: cost_control::auth::Tokens) -> Result<(), String> {
    let store = cost_control::store::open(&args.store)
        .await
        .map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let limits = Limits {
        lease_ttl_ms: i64::from(args.lease_ttl_secs.max(1)) * 1000,
        max_body_bytes: args.max_body_bytes,
        max_batch_events: args.max_batch_events.max(1),
        ..Limits::default()
    };
    let state = AppState::with(
        store.clone(),
        clock.clone(),
        tokens,
        args.webhooks.clone(),
        limits,
        RetryPolicy::default(),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let backend = args.store.split(':').next().unwrap_or_default().to_owned();
    tracing::info!(%addr, store = %backend, webhooks = args.webhooks.len(), "listening on {addr}");
    println!("listening on {addr}");
    // Expired leases return to the pool in queries at once; the sweep also
    // bumps the snapshot version so filters see it.
    let sweeper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = store.expire_leases(clock.now_ms()).await {
                tracing::warn!(error = %e, "lease expiry sweep failed");
            }
        }
    });
    let app = cost_control::app(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    sweeper.abort();
    tracing::info!("stopped: in-flight requests finished");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_format(args: &[&str]) -> Result<LogFormat, clap::Error> {
        let argv = ["cost-control", "serve"];
        let cli = Cli::try_parse_from(argv.iter().chain(args))?;
        match cli.cmd {
            Some(Cmd::Serve(s)) => Ok(s.log_format),
            _ => unreachable!("parsed as serve"),
        }
    }

    #[test]
    fn log_format_is_json_or_text_and_nothing_else() {
        assert_eq!(log_format(&[]).unwrap(), LogFormat::Json);
        assert_eq!(
            log_format(&["--log-format", "json"]).unwrap(),
            LogFormat::Json
        );
        assert_eq!(
            log_format(&["--log-format", "text"]).unwrap(),
            LogFormat::Text
        );
        for typo in ["jsno", "txt", "JSON ", ""] {
            let e = log_format(&["--log-format", typo]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{typo:?}");
        }
    }
}
