//! What a request cost and what it would have cost without the optimizer.
//!
//! The baseline is always "this request went upstream on its own"; the
//! actual cost depends on how it was served. Money is integer micro-USD.

use serde::Deserialize;

use crate::config::{BatchPrice, RouteCost, TokenPricing};

/// How a request was served, as reported to `cost-control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Went upstream itself (cache miss, leader, pass-through, released).
    Upstream,
    /// Answered from the cache.
    Cache,
    /// Answered with another request's in-flight response.
    Coalesced,
    /// Answered from its part of a batch call.
    Batched,
    /// Went upstream to a provider other than the rule's default (first)
    /// one: priced at that provider, against the default's price.
    Routed,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Upstream,
        Strategy::Cache,
        Strategy::Coalesced,
        Strategy::Batched,
        Strategy::Routed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Upstream => "upstream",
            Strategy::Cache => "cache",
            Strategy::Coalesced => "coalesced",
            Strategy::Batched => "batched",
            Strategy::Routed => "routed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Priced {
    pub actual_micros: u64,
    pub baseline_micros: u64,
}

impl Priced {
    pub fn saving(self) -> u64 {
        self.baseline_micros.saturating_sub(self.actual_micros)
    }
}

/// Price a request served by `strategy`. `call_micros` is what one call
/// of this request costs upstream: the rule's `cost_per_call`, or the
/// token price read from the answer's `usage`.
pub fn price(strategy: Strategy, call_micros: u64, batch_share: Option<u64>) -> Priced {
    let actual_micros = match strategy {
        Strategy::Upstream | Strategy::Routed => call_micros,
        Strategy::Cache | Strategy::Coalesced => 0,
        // Without a batch price the batch call costs what one call costs,
        // shared by its members (the share is computed by the caller).
        Strategy::Batched => batch_share.unwrap_or(call_micros),
    };
    Priced {
        actual_micros,
        baseline_micros: call_micros,
    }
}

/// Member `index`'s share of a batch of `size`: its own `per_member` plus
/// an equal part of `per_batch`, the remainder going one micro each to the
/// first members, so the shares add up to exactly what the batch cost.
pub fn batch_share(price: BatchPrice, size: usize, index: usize) -> u64 {
    let n = size.max(1) as u64;
    let i = index as u64;
    let base = price.per_batch_micros / n;
    let extra = u64::from(i < price.per_batch_micros % n);
    price.per_member_micros + base + extra
}

/// A batch member's share under `cost`: its batch price, or, when the rule
/// has none, the single call price split evenly (same remainder rule).
pub fn member_share(cost: &RouteCost, size: usize, index: usize) -> u64 {
    let price = cost.batch.unwrap_or(BatchPrice {
        per_batch_micros: cost.cost_per_call_micros,
        per_member_micros: 0,
    });
    batch_share(price, size, index)
}

#[derive(Deserialize)]
struct UsageDoc {
    #[serde(default)]
    model: Option<String>,
    usage: Usage,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The token price of an OpenAI-style answer
/// (`{"model":..,"usage":{"prompt_tokens":N,"completion_tokens":M}}`),
/// rounded up to a whole micro. `None` when the body is over the bound,
/// does not parse, has no `usage`, or names a model without a price and
/// there is no default: the caller then charges `cost_per_call`.
pub fn token_price(pricing: &TokenPricing, body: &[u8]) -> Option<u64> {
    if body.len() > pricing.max_body_bytes as usize {
        return None;
    }
    let doc: UsageDoc = serde_json::from_slice(body).ok()?;
    tokens_price(
        pricing,
        doc.model.as_deref(),
        doc.usage.prompt_tokens,
        doc.usage.completion_tokens,
    )
}

/// The price of `prompt` and `completion` tokens of `model` (the rule's
/// default model when it is `None` or has no price), rounded up to a
/// whole micro; `None` when neither has a price, or past `u64`.
pub fn tokens_price(
    pricing: &TokenPricing,
    model: Option<&str>,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Option<u64> {
    let (prompt, completion) = model.and_then(|m| pricing.models.get(m)).or_else(|| {
        pricing
            .default_model
            .as_deref()
            .and_then(|m| pricing.models.get(m))
    })?;
    // Each product fits a u128 (u64 x u64), their sum may not: prices up
    // to u64::MAX micros are a valid config and token counts come from
    // the upstream (found by fuzzing, `usage_body`). A sum past u128 is
    // past u64 too, so it reads like any other too-large price.
    let total = (u128::from(prompt_tokens) * u128::from(*prompt))
        .checked_add(u128::from(completion_tokens) * u128::from(*completion))?;
    u64::try_from(total.div_ceil(1000)).ok()
}

/// The model's price of an answer the filter holds whole (a cached or
/// coalesced one): a JSON answer's `usage`, or a streamed answer's usage
/// chunk, else one content event per token.
pub fn answer_price(pricing: &TokenPricing, body: &[u8], prompt_tokens: u64) -> Option<u64> {
    token_price(pricing, body).or_else(|| {
        let mut s = super::stream_usage::StreamUsage::new(pricing.max_body_bytes as usize);
        s.feed(body);
        s.finish();
        s.price(pricing, None, prompt_tokens)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn strategies_price_against_the_same_baseline() {
        let cases = [
            (Strategy::Upstream, None, 2_000),
            (Strategy::Cache, None, 0),
            (Strategy::Coalesced, None, 0),
            (Strategy::Batched, Some(300), 300),
            (Strategy::Batched, None, 2_000),
        ];
        for (s, share, actual) in cases {
            let p = price(s, 2_000, share);
            assert_eq!(p.actual_micros, actual, "{s:?}");
            assert_eq!(p.baseline_micros, 2_000);
            assert_eq!(p.saving(), 2_000 - actual);
        }
    }

    #[test]
    fn batch_shares_add_up_to_the_batch_price() {
        let price = BatchPrice {
            per_batch_micros: 1_000,
            per_member_micros: 200,
        };
        for n in 1..=24 {
            let total: u64 = (0..n).map(|i| batch_share(price, n, i)).sum();
            assert_eq!(total, 1_000 + 200 * n as u64, "n={n}");
        }
        assert_eq!(batch_share(price, 3, 0), 200 + 334);
        assert_eq!(batch_share(price, 3, 2), 200 + 333);
    }

    fn pricing() -> TokenPricing {
        let mut models = BTreeMap::new();
        models.insert("big".to_string(), (5_000, 15_000)); // $0.005 / $0.015 per 1K
        models.insert("small".to_string(), (150, 600));
        TokenPricing {
            max_body_bytes: 1024,
            models,
            default_model: Some("small".into()),
        }
    }

    #[test]
    fn token_prices_from_usage() {
        let p = pricing();
        let cases: [(&str, Option<u64>); 7] = [
            (
                r#"{"model":"big","usage":{"prompt_tokens":1000,"completion_tokens":1000}}"#,
                Some(20_000),
            ),
            (
                r#"{"model":"big","usage":{"prompt_tokens":1,"completion_tokens":0}}"#,
                Some(5),
            ),
            // Rounded up: 7 tokens × 150 / 1000 = 1.05 → 2.
            (
                r#"{"model":"small","usage":{"prompt_tokens":7,"completion_tokens":0}}"#,
                Some(2),
            ),
            (
                r#"{"model":"unknown","usage":{"prompt_tokens":1000,"completion_tokens":0}}"#,
                Some(150),
            ),
            (
                r#"{"usage":{"prompt_tokens":2000,"completion_tokens":1000}}"#,
                Some(900),
            ),
            (r#"{"model":"big"}"#, None),
            ("not json", None),
        ];
        for (body, want) in cases {
            assert_eq!(token_price(&p, body.as_bytes()), want, "{body}");
        }
        let mut no_default = p.clone();
        no_default.default_model = None;
        assert_eq!(
            token_price(&no_default, br#"{"model":"x","usage":{"prompt_tokens":1}}"#),
            None
        );
        let big = format!(
            r#"{{"model":"big","pad":"{}","usage":{{"prompt_tokens":1}}}}"#,
            "x".repeat(2000)
        );
        assert_eq!(token_price(&p, big.as_bytes()), None, "over the body bound");
        let huge = r#"{"model":"big","usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}"#;
        assert_eq!(
            token_price(&p, huge.as_bytes()),
            None,
            "too large: no panic"
        );
    }

    /// Found by fuzzing (`usage_body`): with both prices at the largest
    /// the config accepts, the two products overflowed u128 when added.
    #[test]
    fn token_price_with_the_largest_prices_and_counts_is_none_not_a_panic() {
        let mut p = pricing();
        p.models.insert("max".to_string(), (u64::MAX, u64::MAX));
        let body = r#"{"model":"max","usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}"#;
        assert_eq!(token_price(&p, body.as_bytes()), None);
        let one = r#"{"model":"max","usage":{"prompt_tokens":1,"completion_tokens":0}}"#;
        assert_eq!(
            token_price(&p, one.as_bytes()),
            Some(u64::MAX.div_ceil(1000))
        );
    }
}
