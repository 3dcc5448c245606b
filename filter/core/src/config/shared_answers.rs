//! `shared_answers`: request headers that keep a request away from every
//! answer shared between requests (the cache, coalescing).
//!
//! Some applications build links or pick a route from headers like
//! `X-Forwarded-Host` or `X-Original-URL`, and say nothing of it in
//! `Vary`. The cache key and the coalescing key leave such headers out, so
//! one request carrying an attacker's value would plant an answer that
//! every other client of the same URL then gets (web cache poisoning). A
//! request carrying any listed header neither reads nor feeds a shared
//! answer: it goes upstream on its own. A deployment whose trusted front
//! proxy sets one of them on every request removes it from the list.

use serde::Deserialize;

use super::compile::header_name;
use super::ConfigError;

/// Headers applications are known to trust for links and routing (not
/// `X-Forwarded-Proto` or `X-Forwarded-For`: Envoy sets those on every
/// request).
pub const DEFAULT_BYPASS_HEADERS: [&str; 13] = [
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSharedAnswers {
    #[serde(default = "default_bypass")]
    pub bypass_headers: Vec<String>,
}

fn default_bypass() -> Vec<String> {
    DEFAULT_BYPASS_HEADERS
        .iter()
        .map(|h| h.to_string())
        .collect()
}

impl Default for RawSharedAnswers {
    fn default() -> Self {
        RawSharedAnswers {
            bypass_headers: default_bypass(),
        }
    }
}

/// Lowercase header names; a request carrying any of them shares nothing.
pub(super) fn compile_shared_answers(raw: RawSharedAnswers) -> Result<Vec<String>, ConfigError> {
    raw.bypass_headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_name(&format!("shared_answers.bypass_headers[{i}]"), h))
        .collect()
}
