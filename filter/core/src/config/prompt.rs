//! A rule's `prompt` block: requests to a JSON POST API (an LLM's
//! `/v1/chat/completions`) whose answer depends on the body alone, so the
//! rule's cache and coalescing key them by a canonical form of the body
//! (`crate::prompt`). Absent: bodies are never part of a key.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutePrompt {
    /// A larger body is not read: the request goes on without cache or
    /// coalescing (it is still limited, budgeted and priced).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u32,
    /// Top-level body fields left out of the key (who asked, not what).
    #[serde(default = "default_ignore")]
    pub ignore_fields: Vec<String>,
    /// Also share answers to prompts that are not deterministic (no
    /// `temperature: 0` and no `seed`).
    #[serde(default)]
    pub nondeterministic: bool,
}

fn default_max_body() -> u32 {
    256 * 1024
}

fn default_ignore() -> Vec<String> {
    vec!["user".into(), "metadata".into()]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePrompt {
    pub max_body_bytes: u32,
    pub ignore_fields: Vec<String>,
    pub nondeterministic: bool,
}

/// Fields whose value changes what the answer is: ignoring one would hand
/// a client an answer to another question, or in another form.
const KEPT: [&str; 3] = ["model", "stream", "stream_options"];

pub(super) fn compile_route_prompt(
    field: &str,
    raw: RawRoutePrompt,
) -> Result<RoutePrompt, ConfigError> {
    if !(1..=16 * 1024 * 1024).contains(&raw.max_body_bytes) {
        return Err(ConfigError::at(
            format!("{field}.max_body_bytes"),
            "must be 1..=16777216",
        ));
    }
    for (i, f) in raw.ignore_fields.iter().enumerate() {
        if f.is_empty() {
            return Err(ConfigError::at(
                format!("{field}.ignore_fields[{i}]"),
                "must not be empty",
            ));
        }
        if KEPT.contains(&f.as_str()) {
            return Err(ConfigError::at(
                format!("{field}.ignore_fields[{i}]"),
                format!("{f:?} changes the answer and cannot be ignored"),
            ));
        }
    }
    Ok(RoutePrompt {
        max_body_bytes: raw.max_body_bytes,
        ignore_fields: raw.ignore_fields,
        nondeterministic: raw.nondeterministic,
    })
}
