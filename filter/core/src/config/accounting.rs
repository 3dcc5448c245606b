//! The gateway's link to `cost-control` (`accounting`): where it is, how
//! spend is reported, how budgets are leased, how often purges are polled.

use serde::Deserialize;

use super::cost::{usd, RawMoney};
use super::ConfigError;

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
