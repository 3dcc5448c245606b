//! Prompts: the JSON body of a request to an LLM-style API, read once at
//! the end of the request body. Its canonical form (object keys sorted,
//! no whitespace, the rule's ignored top-level fields left out) is what
//! makes two prompts the same for the cache and for coalescing, so the
//! same question asked with its keys in another order shares one answer.
//! The facts read here also size the budget reservation (`max_tokens`,
//! the prompt's length) and say whether the answer may be shared at all:
//! by default only a deterministic prompt's (`temperature` 0, or a
//! `seed`).

mod canonical;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::RoutePrompt;

pub use canonical::write as canonical_json;

/// What a prompt's body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptFacts {
    /// Hex sha256 of the canonical body: the body's part of every key.
    pub digest: String,
    /// Its answer may be stored and shared: deterministic, or the rule
    /// shares every prompt's.
    pub shareable: bool,
    pub model: Option<String>,
    /// The client asked for a streamed answer.
    pub stream: bool,
    /// `max_tokens` (or `max_completion_tokens`): the most the answer can
    /// cost.
    pub max_tokens: Option<u64>,
    /// The prompt's size in tokens, estimated as a quarter of the bytes of
    /// its text (rounded up, at least 1): enough to reserve a budget,
    /// never what is charged (the answer's `usage` is).
    pub prompt_tokens: u64,
}

/// Why a body was not read as a prompt (the request then goes on as if
/// the rule had no `prompt` block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRead {
    TooLarge,
    NotJson,
    NotAnObject,
}

/// Read `body` as a prompt of `rule`.
pub fn read(rule: &RoutePrompt, body: &[u8]) -> Result<PromptFacts, NotRead> {
    if body.len() > rule.max_body_bytes as usize {
        return Err(NotRead::TooLarge);
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| NotRead::NotJson)?;
    let Value::Object(fields) = &doc else {
        return Err(NotRead::NotAnObject);
    };
    let mut canonical = String::with_capacity(body.len());
    canonical::write_object(
        &mut canonical,
        fields
            .iter()
            .filter(|(k, _)| !rule.ignore_fields.iter().any(|i| i == *k)),
    );
    let digest = Sha256::digest(canonical.as_bytes());
    let deterministic = fields
        .get("temperature")
        .and_then(Value::as_f64)
        .is_some_and(|t| t == 0.0)
        || fields.get("seed").is_some_and(|s| !s.is_null());
    let text: usize = ["messages", "prompt", "input"]
        .iter()
        .filter_map(|f| fields.get(*f))
        .map(text_bytes)
        .sum();
    Ok(PromptFacts {
        digest: hex(&digest),
        shareable: deterministic || rule.nondeterministic,
        model: fields
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        stream: fields.get("stream").and_then(Value::as_bool) == Some(true),
        max_tokens: fields
            .get("max_completion_tokens")
            .or_else(|| fields.get("max_tokens"))
            .and_then(Value::as_u64),
        prompt_tokens: (text as u64).div_ceil(4).max(1),
    })
}

/// Bytes of every string inside `v`.
fn text_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o.values().map(text_bytes).sum(),
        _ => 0,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests;
