//! Cache settings: the gateway-wide store (`cache_store`) and each rule's
//! `cache` block, as JSON spells them and as the filter uses them.

use serde::Deserialize;

use super::ConfigError;

/// Statuses RFC 9111 lets a cache store by default ("heuristically
/// cacheable") that also make sense for an API.
const DEFAULT_STATUSES: [u16; 7] = [200, 203, 204, 300, 301, 404, 410];

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
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
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

fn default_statuses() -> Vec<u16> {
    DEFAULT_STATUSES.to_vec()
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
    pub statuses: Vec<u16>,
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
    for (i, s) in raw.statuses.iter().enumerate() {
        if !(200..=599).contains(s) {
            return Err(ConfigError::at(
                format!("{f}.statuses[{i}]"),
                "must be a final status 200..=599",
            ));
        }
    }
    let mut vary = Vec::new();
    for (i, h) in raw.vary.iter().enumerate() {
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
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
    Ok(RouteCache {
        methods,
        statuses: raw.statuses,
        vary,
        ignore_query: raw.ignore_query,
        default_ttl_ms: raw.default_ttl_s.map(|s| s * 1000),
        max_ttl_ms: raw.max_ttl_s * 1000,
        allow_authorization: raw.allow_authorization,
        max_entry_bytes,
        related_prefixes: raw.related_prefixes,
        xfetch_beta: raw.xfetch_beta,
        adaptive_ttl_ms,
    })
}
