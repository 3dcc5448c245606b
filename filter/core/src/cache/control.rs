//! Cache-Control and friends (RFC 9111): what a request asks of the cache,
//! whether a response may be stored, and for how long it stays fresh.

use crate::headers::Headers;

use super::http_date;

/// Directives of one `Cache-Control` header set (all values of the header).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

/// Parse `Cache-Control` directives. Unknown directives are ignored and a
/// malformed number disables that directive, as RFC 9111 §4.2.1 asks
/// (a malformed `max-age` means "stale": treated as 0).
pub fn parse(value: &str) -> Directives {
    let mut d = Directives::default();
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (part, None),
        };
        let secs = || arg.and_then(delta_seconds);
        match name.to_ascii_lowercase().as_str() {
            "no-store" => d.no_store = true,
            "no-cache" => d.no_cache = true,
            "private" => d.private = true,
            "public" => d.public = true,
            "must-revalidate" => d.must_revalidate = true,
            "proxy-revalidate" => d.proxy_revalidate = true,
            "must-understand" => d.must_understand = true,
            "max-age" => d.max_age = Some(secs().unwrap_or(0)),
            "s-maxage" => d.s_maxage = Some(secs().unwrap_or(0)),
            "stale-while-revalidate" => d.stale_while_revalidate = secs(),
            "stale-if-error" => d.stale_if_error = secs(),
            _ => {}
        }
    }
    d
}

/// A delta-seconds value (RFC 9111 §1.2.2): digits only (no sign, no
/// space); one too large to represent counts as 2^31 seconds, as the RFC
/// asks, rather than as malformed.
fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

/// All `Cache-Control` values of a header list, joined.
pub fn directives(headers: &Headers<'_>) -> Directives {
    let joined: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect();
    parse(&joined.join(","))
}

/// What the client's request directives ask of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestMode {
    /// Look up, and store a miss.
    Normal,
    /// `no-cache` or `max-age=0`: skip the lookup, store the answer.
    Revalidate,
    /// `no-store`: neither look up nor store.
    Bypass,
}

pub fn request_mode(d: &Directives) -> RequestMode {
    if d.no_store {
        RequestMode::Bypass
    } else if d.no_cache || d.max_age == Some(0) {
        RequestMode::Revalidate
    } else {
        RequestMode::Normal
    }
}

/// Statuses a cache may store with a heuristic lifetime (RFC 9110 §15.1:
/// "heuristically cacheable"), the rule's `default_ttl_s` being one.
pub const HEURISTIC_STATUSES: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Statuses whose caching rules this cache knows (for `must-understand`,
/// RFC 9111 §5.2.2.3): the heuristically cacheable ones but 206, whose
/// parts this cache does not combine.
fn understood(status: u16) -> bool {
    status != 206 && HEURISTIC_STATUSES.contains(&status)
}

/// Which statuses a rule stores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Statuses {
    /// RFC 9111 §3: any final status with an explicit lifetime; the
    /// heuristically cacheable ones (or any marked `public`) otherwise.
    #[default]
    Rfc,
    /// Only these inclusive ranges, with any lifetime.
    Listed(Vec<(u16, u16)>),
}

impl Statuses {
    fn allows(&self, status: u16, explicit: bool, public: bool) -> bool {
        match self {
            Statuses::Rfc => explicit || public || HEURISTIC_STATUSES.contains(&status),
            Statuses::Listed(ranges) => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status)),
        }
    }
}

/// The directives a response gives this cache: those of the first
/// targeted field present (RFC 9213, e.g. `cdn-cache-control`), which
/// replace `cache-control` entirely; else `cache-control`'s.
pub fn response_directives(headers: &Headers<'_>, targeted: &[String]) -> Directives {
    for field in targeted {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(field))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect();
        // An invalid targeted field is ignored (RFC 9213 §2.1): one that
        // gives no directive this cache knows does not replace
        // Cache-Control.
        let d = parse(&values.join(","));
        if d != Directives::default() {
            return d;
        }
    }
    directives(headers)
}

/// The response's `Age` in seconds (RFC 9111 §5.1): the first member of
/// the first field line (a list-valued `Age` is a sender's error), `None`
/// when that is not a non-negative integer. Huge values saturate at 2^31.
pub fn age_value(headers: &Headers<'_>) -> Option<u64> {
    delta_seconds(headers.get_str("age")?.split(',').next()?.trim())
}

/// The age a response had when it arrived (RFC 9111 §4.2.3): the larger
/// of what its `Date` shows (`apparent_age`) and its `Age` plus the time
/// the exchange took (`corrected_age_value`), in whole seconds. `Date` is
/// cut to whole seconds and may be a moment behind when the response
/// leaves: the apparent age allows one second for that, so a response
/// that just left the origin is not taken for one a second old (with
/// `max-age=1` it would be stale on arrival).
pub fn initial_age_s(
    age: Option<u64>,
    date_ms: Option<u64>,
    request_ms: u64,
    response_ms: u64,
) -> u64 {
    let apparent = date_ms.map_or(0, |d| {
        (response_ms.saturating_sub(d) / 1000).saturating_sub(1)
    });
    let corrected = age
        .unwrap_or(0)
        .saturating_add(response_ms.saturating_sub(request_ms) / 1000);
    apparent.max(corrected)
}

/// What the response says about itself, for [`storable`].
#[derive(Debug, Clone, Copy)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub directives: &'a Directives,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    /// It has an `etag` or a `last-modified`: it can be revalidated.
    pub has_validator: bool,
    /// Its initial age, seconds ([`initial_age_s`]).
    pub age_s: u64,
}

/// What the rule says, for [`storable`].
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub statuses: &'a Statuses,
    /// The rule's lifetime for responses that give none.
    pub default_ttl_ms: Option<u64>,
    pub max_ttl_ms: u64,
    /// Heuristic lifetime: this fraction of the time since `last-modified`.
    pub heuristic_fraction: Option<f64>,
    /// The request carried `authorization`.
    pub authorization: bool,
}

/// How long a stored response stays fresh, how long it may be served
/// stale, and how long it is kept for revalidation after that, in
/// milliseconds from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// 0: stored only to be revalidated (`no-cache`, or already stale).
    pub ttl_ms: u64,
    pub stale_while_revalidate_ms: u64,
    pub stale_if_error_ms: u64,
    /// Kept this long after `ttl_ms` for a conditional request to refresh.
    pub keep_ms: u64,
}

/// Whether a response may be stored (RFC 9111 §3) and its freshness
/// (§4.2.1). `s-maxage` wins over `max-age` (this is a shared cache), which
/// wins over `Expires − Date` (an invalid `Expires` means already
/// expired); without any of them the heuristic fraction of the time since
/// `last-modified`, then the rule's `default_ttl`, apply to statuses that
/// allow a heuristic. Everything is capped by the rule's `max_ttl`, and
/// the response's age is subtracted.
pub fn storable(r: ResponseFacts<'_>, p: Policy<'_>, now_ms: u64) -> Option<Freshness> {
    let d = r.directives;
    // A 206 is a part this cache does not combine with others; a 304
    // only refreshes an entry (response.rs).
    if !(200..=599).contains(&r.status) || r.status == 206 || r.status == 304 {
        return None;
    }
    if d.must_understand && !understood(r.status) {
        return None;
    }
    // `must-understand` overrides `no-store` for a status understood.
    if (d.no_store && !d.must_understand) || d.private {
        return None;
    }
    if p.authorization && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return None;
    }
    let date_ms = r.date.and_then(|v| http_date::parse_ms(v, now_ms));
    let explicit_ms = if let Some(s) = d.s_maxage.or(d.max_age) {
        Some(s.saturating_mul(1000))
    } else if let Some(e) = r.expires {
        let base = date_ms.unwrap_or(now_ms);
        Some(
            http_date::parse_ms(e, now_ms)
                .map(|t| t.saturating_sub(base))
                .unwrap_or(0),
        )
    } else {
        None
    };
    if !p.statuses.allows(r.status, explicit_ms.is_some(), d.public) {
        return None;
    }
    let heuristic = || -> Option<u64> {
        let fraction = p.heuristic_fraction?;
        let modified = http_date::parse_ms(r.last_modified?, now_ms)?;
        let since = date_ms.unwrap_or(now_ms).checked_sub(modified)?;
        Some((since as f64 * fraction) as u64)
    };
    // Without any lifetime, a response that can be revalidated is still
    // worth keeping: a `304` then saves sending its body again.
    let lifetime = match explicit_ms {
        Some(ms) => ms,
        None => heuristic()
            .or(p.default_ttl_ms)
            .or(r.has_validator.then_some(0))?,
    };
    let mut ttl_ms = lifetime
        .min(p.max_ttl_ms)
        .saturating_sub(r.age_s.saturating_mul(1000));
    let revalidate_always = d.no_cache;
    if revalidate_always {
        ttl_ms = 0;
    }
    if ttl_ms == 0 && !r.has_validator {
        return None;
    }
    // RFC 9111 §4.2.4: no stale answer against must-revalidate, no-cache,
    // or (for a shared cache) proxy-revalidate and s-maxage, which implies
    // it (§5.2.2.10), whatever stale-while-revalidate / stale-if-error say.
    let no_stale = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some();
    let stale = |s: Option<u64>| {
        if no_stale || revalidate_always {
            0
        } else {
            s.unwrap_or(0).saturating_mul(1000).min(p.max_ttl_ms)
        }
    };
    Some(Freshness {
        ttl_ms,
        stale_while_revalidate_ms: stale(d.stale_while_revalidate),
        stale_if_error_ms: stale(d.stale_if_error),
        keep_ms: if r.has_validator { p.max_ttl_ms } else { 0 },
    })
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
