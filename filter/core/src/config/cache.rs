//! Cache settings: the gateway-wide store (`cache_store`) and each rule's
//! `cache` block, as JSON spells them and as the filter uses them.

use serde::Deserialize;

use super::ConfigError;
use crate::cache::control::Statuses;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub max_entries: u32,
    pub ways: u32,
    pub max_entry_bytes: u32,
    pub l1_max_entries: u32,
    pub l1_max_bytes: u64,
    pub generation_slots: u32,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            max_entries: 4096,
            ways: 4,
            max_entry_bytes: 256 * 1024,
            l1_max_entries: 512,
            l1_max_bytes: 8 * 1024 * 1024,
            generation_slots: 4096,
        }
    }
}

/// The shared-data cache's fixed shape: `slots × ways` entries, created up
/// front so memory is bounded by config (DESIGN.md host facts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub slots: u32,
    pub ways: u32,
    pub max_entry_bytes: u32,
    pub l1_max_entries: u32,
    pub l1_max_bytes: u64,
    pub generation_slots: u32,
}

impl Store {
    pub fn max_entries(&self) -> u64 {
        u64::from(self.slots) * u64::from(self.ways)
    }
}

pub fn compile_store(raw: RawStore) -> Result<Store, ConfigError> {
    let f = "cache_store";
    if !(1..=1_000_000).contains(&raw.max_entries) {
        return Err(ConfigError::at(
            format!("{f}.max_entries"),
            "must be 1..=1000000",
        ));
    }
    if !(1..=16).contains(&raw.ways) {
        return Err(ConfigError::at(format!("{f}.ways"), "must be 1..=16"));
    }
    if !(1024..=16 * 1024 * 1024).contains(&raw.max_entry_bytes) {
        return Err(ConfigError::at(
            format!("{f}.max_entry_bytes"),
            "must be 1024..=16777216",
        ));
    }
    if raw.l1_max_entries > 1_000_000 {
        return Err(ConfigError::at(
            format!("{f}.l1_max_entries"),
            "must be <= 1000000",
        ));
    }
    if !(1..=65_536).contains(&raw.generation_slots) {
        return Err(ConfigError::at(
            format!("{f}.generation_slots"),
            "must be 1..=65536",
        ));
    }
    Ok(Store {
        // Round down so the bound is never exceeded.
        slots: (raw.max_entries / raw.ways).max(1),
        ways: raw.ways,
        max_entry_bytes: raw.max_entry_bytes,
        l1_max_entries: raw.l1_max_entries,
        l1_max_bytes: raw.l1_max_bytes,
        generation_slots: raw.generation_slots,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteCache {
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Absent: what RFC 9111 allows (`Statuses::Rfc`).
    #[serde(default)]
    pub statuses: Option<Vec<RawStatus>>,
    #[serde(default)]
    pub vary: Vec<String>,
    #[serde(default)]
    pub ignore_query: Vec<String>,
    #[serde(default)]
    pub default_ttl_s: Option<u64>,
    #[serde(default = "default_max_ttl")]
    pub max_ttl_s: u64,
    #[serde(default)]
    pub allow_authorization: bool,
    #[serde(default)]
    pub max_entry_bytes: Option<u32>,
    #[serde(default)]
    pub related_prefixes: Vec<String>,
    #[serde(default = "default_beta")]
    pub xfetch_beta: f64,
    #[serde(default)]
    pub adaptive_ttl: Option<RawAdaptive>,
    #[serde(default = "default_targeted")]
    pub targeted_fields: Vec<String>,
    #[serde(default)]
    pub heuristic_fraction: Option<f64>,
    #[serde(default)]
    pub refresh: Option<RawRefresh>,
}

/// One item of `statuses`: a status, or `"any"`, `"2xx"`, `"200-299"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawStatus {
    Code(u16),
    Text(String),
}

/// Where a background refresh (stale-while-revalidate) is sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRefresh {
    pub target: String,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_refresh_timeout")]
    pub timeout_ms: u64,
}

fn default_refresh_timeout() -> u64 {
    5_000
}

fn default_targeted() -> Vec<String> {
    vec!["cdn-cache-control".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptive {
    pub min_ttl_s: u64,
    pub max_ttl_s: u64,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into()]
}

fn default_max_ttl() -> u64 {
    86_400
}

fn default_beta() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteCache {
    pub methods: Vec<String>,
    pub statuses: Statuses,
    /// Request headers that are part of the key, lowercase.
    pub vary: Vec<String>,
    /// Query parameters left out of the key (decoded names).
    pub ignore_query: Vec<String>,
    pub default_ttl_ms: Option<u64>,
    pub max_ttl_ms: u64,
    pub allow_authorization: bool,
    pub max_entry_bytes: u32,
    pub related_prefixes: Vec<String>,
    pub xfetch_beta: f64,
    /// `(min, max)` TTL in ms, moved by observed volatility.
    pub adaptive_ttl_ms: Option<(u64, u64)>,
    /// Response fields that replace `cache-control` for this cache
    /// (RFC 9213), lowercase, first present wins.
    pub targeted_fields: Vec<String>,
    /// Heuristic freshness (RFC 9111 §4.2.2): this fraction of the time
    /// since `last-modified`; `None`: off.
    pub heuristic_fraction: Option<f64>,
    /// Background refresh of stale-while-revalidate entries.
    pub refresh: Option<Refresh>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Envoy: a cluster. Kong: `host:port`.
    pub target: String,
    /// `:authority` of the refresh; `None`: the request's.
    pub authority: Option<String>,
    pub timeout_ms: u64,
}

/// Parse `statuses`; `None` in, RFC default out.
fn compile_statuses(f: &str, raw: Option<Vec<RawStatus>>) -> Result<Statuses, ConfigError> {
    let Some(items) = raw else {
        return Ok(Statuses::Rfc);
    };
    let mut ranges = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = || format!("{f}.statuses[{i}]");
        let (lo, hi) = match item {
            RawStatus::Code(c) => (*c, *c),
            RawStatus::Text(t) => parse_status_text(t).ok_or_else(|| {
                ConfigError::at(
                    at(),
                    format!("{t:?} is not a status, \"any\", \"2xx\" or \"200-299\""),
                )
            })?,
        };
        if !(200..=599).contains(&lo) || !(200..=599).contains(&hi) || lo > hi {
            return Err(ConfigError::at(at(), "must be a final status 200..=599"));
        }
        if lo == hi && (lo == 206 || lo == 304) {
            return Err(ConfigError::at(
                at(),
                format!("{lo} is never stored (a partial or not-modified answer is not a whole response)"),
            ));
        }
        ranges.push((lo, hi));
    }
    Ok(Statuses::Listed(ranges))
}

fn parse_status_text(t: &str) -> Option<(u16, u16)> {
    let t = t.trim();
    if t.eq_ignore_ascii_case("any") {
        return Some((200, 599));
    }
    if let Some(c) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
        let d: u16 = c.parse().ok().filter(|d| (2..=5).contains(d))?;
        return Some((d * 100, d * 100 + 99));
    }
    let (a, b) = t.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The longest a rule may keep an entry; bounds the milliseconds the TTLs
/// become (no overflow, whatever the config says).
pub const MAX_TTL_S: u64 = 315_360_000;

pub fn compile_route_cache(
    f: &str,
    raw: RawRouteCache,
    store: &Store,
) -> Result<RouteCache, ConfigError> {
    let mut methods = Vec::new();
    for (i, m) in raw.methods.iter().enumerate() {
        let up = m.to_ascii_uppercase();
        if !matches!(up.as_str(), "GET" | "HEAD") {
            return Err(ConfigError::at(
                format!("{f}.methods[{i}]"),
                format!("{m:?} is not cacheable (GET or HEAD)"),
            ));
        }
        methods.push(up);
    }
    let statuses = compile_statuses(f, raw.statuses)?;
    let mut vary = Vec::new();
    for (i, h) in raw.vary.iter().enumerate() {
        if !is_header_name(h) {
            return Err(ConfigError::at(
                format!("{f}.vary[{i}]"),
                format!("{h:?} is not a header name"),
            ));
        }
        vary.push(h.to_ascii_lowercase());
    }
    if !(1..=MAX_TTL_S).contains(&raw.max_ttl_s) {
        return Err(ConfigError::at(
            format!("{f}.max_ttl_s"),
            format!("must be 1..={MAX_TTL_S} (ten years)"),
        ));
    }
    if let Some(d) = raw.default_ttl_s {
        if d == 0 || d > raw.max_ttl_s {
            return Err(ConfigError::at(
                format!("{f}.default_ttl_s"),
                "must be 1..=max_ttl_s",
            ));
        }
    }
    let max_entry_bytes = raw.max_entry_bytes.unwrap_or(store.max_entry_bytes);
    if max_entry_bytes == 0 || max_entry_bytes > store.max_entry_bytes {
        return Err(ConfigError::at(
            format!("{f}.max_entry_bytes"),
            format!(
                "must be 1..={} (cache_store.max_entry_bytes)",
                store.max_entry_bytes
            ),
        ));
    }
    for (i, p) in raw.related_prefixes.iter().enumerate() {
        if !p.starts_with('/') {
            return Err(ConfigError::at(
                format!("{f}.related_prefixes[{i}]"),
                "must start with '/'",
            ));
        }
    }
    if !(raw.xfetch_beta.is_finite() && (0.0..=10.0).contains(&raw.xfetch_beta)) {
        return Err(ConfigError::at(
            format!("{f}.xfetch_beta"),
            "must be 0..=10 (0 turns early refresh off)",
        ));
    }
    let adaptive_ttl_ms = match raw.adaptive_ttl {
        None => None,
        Some(a) => {
            if a.min_ttl_s == 0 || a.min_ttl_s > a.max_ttl_s || a.max_ttl_s > raw.max_ttl_s {
                return Err(ConfigError::at(
                    format!("{f}.adaptive_ttl"),
                    "needs 0 < min_ttl_s <= max_ttl_s <= max_ttl_s of the rule",
                ));
            }
            Some((a.min_ttl_s * 1000, a.max_ttl_s * 1000))
        }
    };
    let mut targeted_fields = Vec::new();
    for (i, h) in raw.targeted_fields.iter().enumerate() {
        if !is_header_name(h) || h.eq_ignore_ascii_case("cache-control") {
            return Err(ConfigError::at(
                format!("{f}.targeted_fields[{i}]"),
                format!("{h:?} is not a header name other than cache-control"),
            ));
        }
        targeted_fields.push(h.to_ascii_lowercase());
    }
    if let Some(h) = raw.heuristic_fraction {
        if !(h.is_finite() && h > 0.0 && h <= 1.0) {
            return Err(ConfigError::at(
                format!("{f}.heuristic_fraction"),
                "must be above 0 and at most 1 (RFC 9111 suggests 0.1)",
            ));
        }
    }
    let refresh = match raw.refresh {
        None => None,
        Some(r) => {
            if r.target.trim().is_empty() {
                return Err(ConfigError::at(
                    format!("{f}.refresh.target"),
                    "must name the upstream (Envoy: a cluster; Kong: host:port)",
                ));
            }
            if !(1..=60_000).contains(&r.timeout_ms) {
                return Err(ConfigError::at(
                    format!("{f}.refresh.timeout_ms"),
                    "must be 1..=60000",
                ));
            }
            Some(Refresh {
                target: r.target,
                authority: r.authority,
                timeout_ms: r.timeout_ms,
            })
        }
    };
    Ok(RouteCache {
        methods,
        statuses,
        vary,
        ignore_query: raw.ignore_query,
        default_ttl_ms: raw.default_ttl_s.map(|s| s * 1000),
        max_ttl_ms: raw.max_ttl_s * 1000,
        allow_authorization: raw.allow_authorization,
        max_entry_bytes,
        related_prefixes: raw.related_prefixes,
        xfetch_beta: raw.xfetch_beta,
        adaptive_ttl_ms,
        targeted_fields,
        heuristic_fraction: raw.heuristic_fraction,
        refresh,
    })
}

fn is_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
