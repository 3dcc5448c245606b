//! Cost settings: the gateway's link to `cost-control` (`accounting`) and
//! each rule's `cost` block (prices, budget enforcement).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;
use crate::money::parse_usd;

/// Money as config writes it: decimal dollars as a string (`"0.002"`) or a
/// JSON number (`0.002`, read by its decimal text, never as a float).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum RawMoney {
    Text(String),
    Number(serde_json::Number),
}

impl RawMoney {
    fn micros(&self, field: &str) -> Result<u64, ConfigError> {
        let text = match self {
            RawMoney::Text(t) => t.clone(),
            RawMoney::Number(n) => n.to_string(),
        };
        parse_usd(&text).map_err(|m| ConfigError::at(field, m))
    }
}

fn usd(text: &str) -> RawMoney {
    RawMoney::Text(text.to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccounting {
    pub cost_control: String,
    #[serde(default = "default_authority")]
    pub authority: String,
    pub token: String,
    pub gateway_id: String,
    #[serde(default = "default_flush_ms")]
    pub flush_ms: u64,
    #[serde(default = "default_max_events")]
    pub max_events: u32,
    #[serde(default = "default_max_buffer")]
    pub max_buffer_events: u32,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_backoff_min")]
    pub backoff_min_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    #[serde(default = "default_purge_poll")]
    pub purge_poll_ms: u64,
    #[serde(default)]
    pub budgets: RawBudgets,
}

fn default_authority() -> String {
    "cost-control".into()
}
fn default_flush_ms() -> u64 {
    1_000
}
fn default_max_events() -> u32 {
    500
}
fn default_max_buffer() -> u32 {
    10_000
}
fn default_timeout() -> u64 {
    2_000
}
fn default_backoff_min() -> u64 {
    200
}
fn default_backoff_max() -> u64 {
    10_000
}
fn default_purge_poll() -> u64 {
    1_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBudgets {
    pub slots: u32,
    pub lease: RawMoney,
    pub low_water_percent: u32,
    pub lease_ttl_secs: u32,
    pub retry_ms: u64,
    pub hard_stop_tenants: Vec<String>,
}

impl Default for RawBudgets {
    fn default() -> Self {
        RawBudgets {
            slots: 256,
            lease: usd("0.02"),
            low_water_percent: 50,
            lease_ttl_secs: 60,
            retry_ms: 1_000,
            hard_stop_tenants: Vec::new(),
        }
    }
}

/// The gateway's link to `cost-control`.
#[derive(Debug, Clone, PartialEq)]
pub struct Accounting {
    /// Envoy: cluster name; Kong: `host:port`.
    pub cost_control: String,
    pub authority: String,
    pub token: String,
    pub gateway_id: String,
    pub flush_ms: u64,
    pub max_events: u32,
    pub max_buffer_events: u32,
    pub timeout_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// How often the gateway asks `cost-control` for purges (one worker
    /// at a time); 0: never.
    pub purge_poll_ms: u64,
    pub budgets: Budgets,
}

/// How many times per `purge_poll_ms` the timer looks whether a poll is
/// due: the workers' timers are not in step, and a poll must not wait
/// for the next whole interval because a tick came a moment early.
pub const TICKS_PER_POLL: u64 = 4;

impl super::Config {
    /// The link to `cost-control` when this gateway polls it for purges:
    /// a non-zero `purge_poll_ms`, and something to purge.
    pub fn purge_poll(&self) -> Option<&Accounting> {
        self.accounting
            .as_ref()
            .filter(|a| a.purge_poll_ms > 0)
            .filter(|_| self.routes.iter().any(|r| r.cache.is_some()))
    }

    /// The longest the worker's timer may sleep while nothing waits:
    /// spend reports leave every `flush_ms`, and a purge poll is looked at
    /// [`TICKS_PER_POLL`] times per interval. `None` without `accounting`.
    pub fn idle_tick_ms(&self) -> Option<u64> {
        let a = self.accounting.as_ref()?;
        Some(match self.purge_poll() {
            Some(p) => a.flush_ms.min(p.purge_poll_ms / TICKS_PER_POLL),
            None => a.flush_ms,
        })
    }
}

/// How this gateway leases budget from `cost-control`.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    pub slots: u32,
    /// How much one lease asks for.
    pub lease_micros: u64,
    /// Ask for more when the pool falls below this share of a lease.
    pub low_water_percent: u32,
    pub lease_ttl_secs: u32,
    /// After an empty grant or a failed call, ask again this much later.
    pub retry_ms: u64,
    /// Tenants for whom even `high` requests stop at the budget.
    pub hard_stop_tenants: Vec<String>,
}

impl Budgets {
    pub fn low_water_micros(&self) -> u64 {
        self.lease_micros * u64::from(self.low_water_percent) / 100
    }
}

pub fn compile_accounting(raw: RawAccounting) -> Result<Accounting, ConfigError> {
    let f = "accounting";
    if raw.cost_control.is_empty() || raw.cost_control.contains(char::is_whitespace) {
        return Err(ConfigError::at(
            format!("{f}.cost_control"),
            "must name a cluster (Envoy) or host:port (Kong)",
        ));
    }
    if raw.authority.is_empty() || raw.authority.contains(char::is_whitespace) {
        return Err(ConfigError::at(
            format!("{f}.authority"),
            "must be a host name",
        ));
    }
    if raw.token.is_empty() || raw.token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(ConfigError::at(
            format!("{f}.token"),
            "must be a non-empty bearer token of visible ASCII",
        ));
    }
    let id_ok = (1..=64).contains(&raw.gateway_id.len())
        && raw
            .gateway_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !id_ok {
        return Err(ConfigError::at(
            format!("{f}.gateway_id"),
            "must be 1..64 characters of [A-Za-z0-9._-]",
        ));
    }
    if !(1..=3_600_000).contains(&raw.flush_ms) {
        return Err(ConfigError::at(
            format!("{f}.flush_ms"),
            "must be 1..=3600000",
        ));
    }
    if !(1..=10_000).contains(&raw.max_events) {
        return Err(ConfigError::at(
            format!("{f}.max_events"),
            "must be 1..=10000",
        ));
    }
    if raw.max_buffer_events < raw.max_events || raw.max_buffer_events > 1_000_000 {
        return Err(ConfigError::at(
            format!("{f}.max_buffer_events"),
            "must be max_events..=1000000",
        ));
    }
    if !(1..=60_000).contains(&raw.timeout_ms) {
        return Err(ConfigError::at(
            format!("{f}.timeout_ms"),
            "must be 1..=60000",
        ));
    }
    if raw.backoff_min_ms == 0 {
        return Err(ConfigError::at(
            format!("{f}.backoff_min_ms"),
            "must be > 0",
        ));
    }
    if raw.backoff_max_ms < raw.backoff_min_ms {
        return Err(ConfigError::at(
            format!("{f}.backoff_max_ms"),
            "must be >= backoff_min_ms",
        ));
    }
    if raw.purge_poll_ms != 0 && !(100..=3_600_000).contains(&raw.purge_poll_ms) {
        return Err(ConfigError::at(
            format!("{f}.purge_poll_ms"),
            "must be 0 (off) or 100..=3600000",
        ));
    }
    let b = raw.budgets;
    let bf = format!("{f}.budgets");
    if !(1..=100_000).contains(&b.slots) {
        return Err(ConfigError::at(format!("{bf}.slots"), "must be 1..=100000"));
    }
    let lease_micros = b.lease.micros(&format!("{bf}.lease"))?;
    if lease_micros == 0 {
        return Err(ConfigError::at(format!("{bf}.lease"), "must be > 0"));
    }
    if !(1..=99).contains(&b.low_water_percent) {
        return Err(ConfigError::at(
            format!("{bf}.low_water_percent"),
            "must be 1..=99",
        ));
    }
    if !(1..=3600).contains(&b.lease_ttl_secs) {
        return Err(ConfigError::at(
            format!("{bf}.lease_ttl_secs"),
            "must be 1..=3600",
        ));
    }
    if !(1..=3_600_000).contains(&b.retry_ms) {
        return Err(ConfigError::at(
            format!("{bf}.retry_ms"),
            "must be 1..=3600000",
        ));
    }
    Ok(Accounting {
        cost_control: raw.cost_control,
        authority: raw.authority,
        token: raw.token,
        gateway_id: raw.gateway_id,
        flush_ms: raw.flush_ms,
        max_events: raw.max_events,
        max_buffer_events: raw.max_buffer_events,
        timeout_ms: raw.timeout_ms,
        backoff_min_ms: raw.backoff_min_ms,
        backoff_max_ms: raw.backoff_max_ms,
        purge_poll_ms: raw.purge_poll_ms,
        budgets: Budgets {
            slots: b.slots,
            lease_micros,
            low_water_percent: b.low_water_percent,
            lease_ttl_secs: b.lease_ttl_secs,
            retry_ms: b.retry_ms,
            hard_stop_tenants: b.hard_stop_tenants,
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCost {
    #[serde(default)]
    pub provider: Option<String>,
    pub cost_per_call: RawMoney,
    #[serde(default)]
    pub batch: Option<RawBatchPrice>,
    #[serde(default)]
    pub tokens: Option<RawTokens>,
    #[serde(default)]
    pub budget: Option<RawRouteBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatchPrice {
    pub per_batch: RawMoney,
    pub per_member: RawMoney,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    #[serde(default = "default_token_body")]
    pub max_body_bytes: u32,
    pub models: BTreeMap<String, RawModelPrice>,
    #[serde(default)]
    pub default_model: Option<String>,
}

fn default_token_body() -> u32 {
    64 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelPrice {
    pub prompt_per_1k: RawMoney,
    pub completion_per_1k: RawMoney,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteBudget {
    #[serde(default = "yes")]
    pub enforce: bool,
    #[serde(default)]
    pub estimate: Option<RawMoney>,
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    #[serde(default = "default_credit")]
    pub fail_open_credit: RawMoney,
}

fn yes() -> bool {
    true
}

fn default_credit() -> RawMoney {
    usd("0.05")
}

/// What a budgeted rule does while `cost-control` cannot be reached and
/// the gateway holds no allowance for the tenant.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Serve on a bounded per-tenant credit, reported once it is back.
    #[default]
    FailOpen,
    /// Refuse with 503.
    FailClosed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteCost {
    pub provider: String,
    pub cost_per_call_micros: u64,
    pub batch: Option<BatchPrice>,
    pub tokens: Option<TokenPricing>,
    pub budget: Option<RouteBudget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPrice {
    pub per_batch_micros: u64,
    pub per_member_micros: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenPricing {
    pub max_body_bytes: u32,
    /// Model → (prompt, completion) micro-USD per 1,000 tokens.
    pub models: BTreeMap<String, (u64, u64)>,
    pub default_model: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteBudget {
    pub enforce: bool,
    /// Reserved from the allowance when the request starts; the response
    /// settles the actual cost.
    pub estimate_micros: u64,
    pub on_unavailable: OnUnavailable,
    pub fail_open_credit_micros: u64,
}

pub fn compile_route_cost(
    f: &str,
    raw: RawRouteCost,
    route_name: &str,
    accounting: bool,
) -> Result<RouteCost, ConfigError> {
    let provider = raw.provider.unwrap_or_else(|| route_name.to_string());
    if provider.is_empty() || provider.len() > 128 {
        return Err(ConfigError::at(
            format!("{f}.provider"),
            "must be 1..=128 bytes",
        ));
    }
    let cost_per_call_micros = raw.cost_per_call.micros(&format!("{f}.cost_per_call"))?;
    let batch = match raw.batch {
        Some(b) => Some(BatchPrice {
            per_batch_micros: b.per_batch.micros(&format!("{f}.batch.per_batch"))?,
            per_member_micros: b.per_member.micros(&format!("{f}.batch.per_member"))?,
        }),
        None => None,
    };
    let tokens = match raw.tokens {
        Some(t) => {
            let tf = format!("{f}.tokens");
            if t.models.is_empty() {
                return Err(ConfigError::at(
                    format!("{tf}.models"),
                    "must name at least one model",
                ));
            }
            if !(1..=16 * 1024 * 1024).contains(&t.max_body_bytes) {
                return Err(ConfigError::at(
                    format!("{tf}.max_body_bytes"),
                    "must be 1..=16777216",
                ));
            }
            let mut models = BTreeMap::new();
            for (name, p) in t.models {
                let mf = format!("{tf}.models.{name}");
                let prompt = p.prompt_per_1k.micros(&format!("{mf}.prompt_per_1k"))?;
                let completion = p
                    .completion_per_1k
                    .micros(&format!("{mf}.completion_per_1k"))?;
                models.insert(name, (prompt, completion));
            }
            if let Some(d) = &t.default_model {
                if !models.contains_key(d) {
                    return Err(ConfigError::at(
                        format!("{tf}.default_model"),
                        format!("{d:?} is not one of the models"),
                    ));
                }
            }
            Some(TokenPricing {
                max_body_bytes: t.max_body_bytes,
                models,
                default_model: t.default_model,
            })
        }
        None => None,
    };
    let budget = match raw.budget {
        Some(b) => {
            let bf = format!("{f}.budget");
            if !accounting {
                return Err(ConfigError::at(
                    bf,
                    "needs the top-level `accounting` block (the link to cost-control)",
                ));
            }
            let estimate_micros = match (&b.estimate, &tokens) {
                (Some(e), _) => e.micros(&format!("{bf}.estimate"))?,
                (None, Some(_)) => {
                    return Err(ConfigError::at(
                        format!("{bf}.estimate"),
                        "is required when the rule prices by tokens",
                    ))
                }
                (None, None) => cost_per_call_micros,
            };
            Some(RouteBudget {
                enforce: b.enforce,
                estimate_micros,
                on_unavailable: b.on_unavailable,
                fail_open_credit_micros: b
                    .fail_open_credit
                    .micros(&format!("{bf}.fail_open_credit"))?,
            })
        }
        None => None,
    };
    Ok(RouteCost {
        provider,
        cost_per_call_micros,
        batch,
        tokens,
        budget,
    })
}
