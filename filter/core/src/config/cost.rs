//! Each rule's `cost` block: prices (per call, per batch, per token) and
//! budget enforcement, and the money type config writes them in.

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
    pub(super) fn micros(&self, field: &str) -> Result<u64, ConfigError> {
        let text = match self {
            RawMoney::Text(t) => t.clone(),
            RawMoney::Number(n) => n.to_string(),
        };
        parse_usd(&text).map_err(|m| ConfigError::at(field, m))
    }
}

pub(super) fn usd(text: &str) -> RawMoney {
    RawMoney::Text(text.to_string())
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
