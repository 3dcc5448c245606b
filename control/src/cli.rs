//! CLI subcommands: an HTTP client of a running server (`--server`, env
//! `COST_CONTROL_URL`, default http://127.0.0.1:8081). Tokens come from the
//! same environment as the server's (`COST_CONTROL_ADMIN_TOKEN[_FILE]`,
//! `COST_CONTROL_GATEWAY_TOKEN[_FILE]`), or `--dev-tokens`.

use clap::{Args, Subcommand};
use cost_control::auth::{DEV_ADMIN_TOKEN, DEV_GATEWAY_TOKEN};
use cost_control::config::{token_from, ADMIN_ENV, GATEWAY_ENV};

#[derive(Args, Clone)]
pub struct Conn {
    /// Base URL of the cost-control server.
    #[arg(
        long,
        env = "COST_CONTROL_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    server: String,
    /// Use the fixed development tokens.
    #[arg(long)]
    dev_tokens: bool,
}

#[derive(Subcommand)]
pub enum BudgetCmd {
    /// Create or replace a budget. Amounts in US dollars ("50", "12.50").
    Set {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        service: String,
        #[arg(long)]
        daily: Option<String>,
        #[arg(long)]
        monthly: Option<String>,
        #[arg(long)]
        soft_percent: Option<u8>,
        /// Fixed UTC offset of the tenant's calendar, e.g. +05:30.
        #[arg(long, allow_hyphen_values = true)]
        utc_offset: Option<String>,
    },
    /// List budgets and their state.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SpendCmd {
    /// Cost, baseline and savings (default: this month so far).
    Report {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// service, route, provider, strategy, hour or day.
        #[arg(long)]
        group_by: Option<String>,
    },
    /// Send the spend batches a stopped gateway wrote to its log (lines
    /// `cost-optimizer spend-spill v1 ...`; Envoy's log, or a log
    /// collector's export of it). A batch cost-control already has is
    /// a duplicate there: replaying twice counts nothing twice.
    Replay {
        #[command(flatten)]
        conn: Conn,
        /// Log files to read ("-" for standard input).
        #[arg(required = true)]
        logs: Vec<std::path::PathBuf>,
    },
}

#[derive(Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long)]
    tenant: String,
    #[arg(long, group = "what")]
    prefix: Option<String>,
    #[arg(long, group = "what")]
    tag: Option<String>,
    #[arg(long, group = "what")]
    key: Option<String>,
}

fn token(conn: &Conn, admin: bool) -> Result<String, String> {
    if conn.dev_tokens {
        return Ok(if admin {
            DEV_ADMIN_TOKEN
        } else {
            DEV_GATEWAY_TOKEN
        }
        .to_owned());
    }
    let env = |k: &str| std::env::var(k).ok();
    let found = if admin {
        token_from(&env, ADMIN_ENV)?
    } else {
        token_from(&env, ADMIN_ENV)?.or(token_from(&env, GATEWAY_ENV)?)
    };
    found.ok_or_else(|| format!("set {ADMIN_ENV} (or {ADMIN_ENV}_FILE), or pass --dev-tokens"))
}

fn call(
    conn: &Conn,
    method: &str,
    path: &str,
    admin: bool,
    body: Option<serde_json::Value>,
) -> Result<(), String> {
    let url = format!("{}{}", conn.server.trim_end_matches('/'), path);
    let auth = format!("Bearer {}", token(conn, admin)?);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = match (method, body) {
        ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(b),
        ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    }
    .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let text = resp
        .into_body()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        println!("{pretty}");
        Ok(())
    } else {
        Err(format!("{status}: {pretty}"))
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn budget(c: BudgetCmd) -> Result<(), String> {
    match c {
        BudgetCmd::Set {
            conn,
            tenant,
            service,
            daily,
            monthly,
            soft_percent,
            utc_offset,
        } => {
            let mut b = serde_json::json!({"tenant": tenant, "service": service});
            if let Some(d) = daily {
                b["daily_limit_micros"] = d.into();
            }
            if let Some(m) = monthly {
                b["monthly_limit_micros"] = m.into();
            }
            if let Some(p) = soft_percent {
                b["soft_limit_percent"] = p.into();
            }
            if let Some(o) = utc_offset {
                b["utc_offset"] = o.into();
            }
            call(&conn, "PUT", "/v1/budgets", true, Some(b))
        }
        BudgetCmd::List { conn, tenant } => {
            let q = tenant
                .map(|t| format!("?tenant={}", enc(&t)))
                .unwrap_or_default();
            call(&conn, "GET", &format!("/v1/budgets{q}"), false, None)
        }
    }
}

pub fn spend(c: SpendCmd) -> Result<(), String> {
    let (conn, tenant, from, to, group_by) = match c {
        SpendCmd::Report {
            conn,
            tenant,
            from,
            to,
            group_by,
        } => (conn, tenant, from, to, group_by),
        SpendCmd::Replay { conn, logs } => return replay(&conn, &logs),
    };
    let mut q = format!("?tenant={}", enc(&tenant));
    for (k, v) in [("from", from), ("to", to), ("group_by", group_by)] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", enc(&v)));
        }
    }
    call(&conn, "GET", &format!("/v1/spend{q}"), false, None)
}

pub fn purge(a: PurgeArgs) -> Result<(), String> {
    let mut b = serde_json::json!({"tenant": a.tenant});
    for (k, v) in [("prefix", a.prefix), ("tag", a.tag), ("key", a.key)] {
        if let Some(v) = v {
            b[k] = v.into();
        }
    }
    call(&a.conn, "POST", "/v1/purge", true, Some(b))
}

fn read_log(path: &std::path::Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
    } else {
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut bytes))
    };
    read.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `spend replay`: every whole spilled batch to `POST /v1/spend`, one
/// line of outcome each; fails when a batch was unusable or not accepted.
fn replay(conn: &Conn, logs: &[std::path::PathBuf]) -> Result<(), String> {
    let mut text = String::new();
    for path in logs {
        text.push_str(&read_log(path)?);
        text.push('\n');
    }
    let found = cost_control::spill::find(&text);
    let url = format!("{}/v1/spend", conn.server.trim_end_matches('/'));
    let auth = format!("Bearer {}", token(conn, false)?);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut failed = found.unusable.len();
    for (id, why) in &found.unusable {
        println!("{id}: not sent, {why}");
    }
    if found.bad_lines > 0 {
        println!("{} spill lines could not be read", found.bad_lines);
    }
    for batch in &found.batches {
        let resp = agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(&batch.body[..]);
        let outcome = match resp {
            Ok(r) => {
                let status = r.status();
                let text = r.into_body().read_to_string().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if status.is_success() && v["duplicate"] == true {
                    "duplicate (already in the ledger)".to_string()
                } else if status.is_success() {
                    format!("accepted ({} events)", v["accepted"])
                } else {
                    failed += 1;
                    format!("refused: {status} {text}")
                }
            }
            Err(e) => {
                failed += 1;
                format!("not sent: {e}")
            }
        };
        println!("{}: {outcome}", batch.batch_id);
    }
    println!(
        "{} batches found, {} not replayed",
        found.batches.len() + found.unusable.len(),
        failed
    );
    if failed > 0 {
        return Err(format!("{failed} batches not replayed"));
    }
    Ok(())
}
