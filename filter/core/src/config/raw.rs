//! The config as JSON spells it. Every struct refuses unknown fields, so a
//! typo is an error that names the field instead of a silent default.
//! Semantic checks (ranges, cross-field rules) live in `super::compile`.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: u32,
    #[serde(default)]
    pub host: RawHost,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub cache_store: super::cache::RawStore,
    #[serde(default)]
    pub coalesce_store: super::coalesce::RawCoalesceStore,
    #[serde(default)]
    pub limit_store: super::limit::RawLimitStore,
    #[serde(default)]
    pub metrics: super::metrics::RawMetrics,
    #[serde(default)]
    pub accounting: Option<super::accounting::RawAccounting>,
    #[serde(default)]
    pub wake: Option<super::wake::RawWake>,
    #[serde(default)]
    pub shared_answers: super::shared_answers::RawSharedAnswers,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawHost {
    #[default]
    Envoy,
    Kong,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentity {
    pub tenant: Vec<RawSource>,
    pub service: Vec<RawSource>,
    pub jwt: RawJwt,
    pub priority_header: RawPriorityHeader,
    pub request_id_header: String,
}

impl Default for RawIdentity {
    fn default() -> Self {
        RawIdentity {
            tenant: vec![RawSource::Header("x-tenant-id".into())],
            service: vec![RawSource::Header("x-service-id".into())],
            jwt: RawJwt::default(),
            priority_header: RawPriorityHeader::default(),
            request_id_header: "x-request-id".into(),
        }
    }
}

/// Where an identity may be read from. Only sources a verifier controls
/// belong here: a header the gateway itself sets (and strips from clients),
/// or a claim that Envoy's `jwt_authn` verified.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSource {
    Header(String),
    JwtClaim(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJwt {
    /// Dynamic-metadata namespace that `jwt_authn` writes to.
    pub namespace: String,
    /// `payload_in_metadata` of the `jwt_authn` provider.
    pub payload_key: String,
}

impl Default for RawJwt {
    fn default() -> Self {
        RawJwt {
            namespace: "envoy.filters.http.jwt_authn".into(),
            payload_key: "jwt_payload".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPriorityHeader {
    pub name: String,
    /// Only when the gateway controls this header may it raise or lower a
    /// request's priority; otherwise a client could make itself `high`.
    pub trusted: bool,
}

impl Default for RawPriorityHeader {
    fn default() -> Self {
        RawPriorityHeader {
            name: "x-priority".into(),
            trusted: false,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Some(Priority::Low),
            "medium" => Some(Priority::Medium),
            "high" => Some(Priority::High),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    #[serde(default = "default_sla_ms")]
    pub sla_ms: u64,
    #[serde(default = "default_priority")]
    pub priority: Priority,
    #[serde(default)]
    pub require_tenant: bool,
    /// Adds `x-optimizer-*` headers that explain the decision.
    #[serde(default)]
    pub debug_headers: bool,
    /// Response cache for this rule; absent = no caching.
    #[serde(default)]
    pub cache: Option<super::cache::RawRouteCache>,
    /// In-flight coalescing for this rule; absent = off.
    #[serde(default)]
    pub coalesce: Option<super::coalesce::RawRouteCoalesce>,
    /// Rate limit for this rule; absent = none.
    #[serde(default)]
    pub limit: Option<super::limit::RawRouteLimit>,
    /// Request batching for this rule; absent = none.
    #[serde(default)]
    pub batch: Option<super::batch::RawRouteBatch>,
    /// Prices and budget enforcement for this rule; absent = not priced.
    #[serde(default)]
    pub cost: Option<super::cost::RawRouteCost>,
    /// Providers of the same API and how to pick one; absent = the
    /// route's own upstream.
    #[serde(default)]
    pub routing: Option<super::routing::RawRouting>,
    /// JSON POST prompts keyed by their body (cache, coalescing); absent
    /// = bodies are not part of any key.
    #[serde(default)]
    pub prompt: Option<super::prompt::RawRoutePrompt>,
}

fn default_sla_ms() -> u64 {
    2000
}

fn default_priority() -> Priority {
    Priority::Medium
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub prefix: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
}
