//! What a stored response keeps of its headers, and the headers a cached
//! answer is sent with (`age`, RFC 9211 `cache-status`, `x-cache`).

use super::conditional::{self, Precondition};
use super::entry::{Body, Entry};
use super::range::{self, RangeAnswer};
use super::{Fwd, Label, CACHE_NAME};
use crate::headers::Headers;

/// The form in which a stored response answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// As stored.
    Whole,
    /// `304`: the client's conditional request matched (RFC 9110 §13.2.2).
    NotModified,
    /// `206` with these bytes (inclusive) of the stored `len`.
    Part { start: u64, end: u64, len: u64 },
    /// `416`: the range asked for is not in the stored response.
    Unsatisfiable { len: u64 },
}

/// How a stored `200` answers this request: preconditions first (a
/// matching `if-none-match` or `if-modified-since` gives `304`), then a
/// `range` (GET only). Other stored statuses answer as they are.
pub fn form(entry: &Entry, request: &Headers<'_>, now_ms: u64) -> Form {
    // The common case, a plain request, costs one pass over its headers.
    let asks = request.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("if-none-match")
            || k.eq_ignore_ascii_case("if-modified-since")
            || k.eq_ignore_ascii_case("range")
    });
    if !asks {
        return Form::Whole;
    }
    let Body::Response { status, body, .. } = &entry.body else {
        return Form::Whole;
    };
    if *status != 200 {
        return Form::Whole;
    }
    let etag = entry.header("etag");
    let last_modified = entry.header("last-modified");
    let date = entry.header("date");
    if conditional::evaluate(request, etag, last_modified, date, now_ms)
        == Precondition::NotModified
    {
        return Form::NotModified;
    }
    if request.get(":method") != Some(b"GET") {
        return Form::Whole;
    }
    let len = body.len() as u64;
    match range::evaluate(request, len, etag, last_modified, date, now_ms) {
        RangeAnswer::Full => Form::Whole,
        RangeAnswer::Partial { start, end } => Form::Part { start, end, len },
        RangeAnswer::Unsatisfiable => Form::Unsatisfiable { len },
    }
}

/// Headers that describe one hop or one exchange, not the resource: never
/// stored, so never replayed (RFC 9111 §3.1, RFC 9110 §7.6.1), plus the
/// ones this filter and Envoy add per response.
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "age",
    "set-cookie",
    "x-request-id",
    "x-cache",
    "cache-status",
    "server",
];

pub fn storable_header(name: &str) -> bool {
    // Compared without a lowercase copy: this runs for every header of
    // every stored answer.
    let starts = |prefix: &str| {
        name.len() >= prefix.len()
            && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    !name.starts_with(':')
        && !NOT_STORED.iter().any(|h| h.eq_ignore_ascii_case(name))
        && !starts("x-envoy-")
        && !starts("x-optimizer-")
}

/// Seconds since the response left the origin: its `Age` when stored plus
/// the time it has spent here.
pub fn age_s(entry: &Entry, now_ms: u64) -> u64 {
    entry.initial_age_s + now_ms.saturating_sub(entry.stored_ms) / 1000
}

/// Remaining freshness in whole seconds; negative once stale.
pub fn ttl_s(entry: &Entry, now_ms: u64) -> i64 {
    let ms = entry.fresh_until_ms as i128 - now_ms as i128;
    (ms.div_euclid(1000)) as i64
}

pub fn hit_status(entry: &Entry, now_ms: u64) -> String {
    // One allocation, sized up front (a hit makes this on every answer).
    let mut s = String::with_capacity(CACHE_NAME.len() + 32);
    s.push_str(CACHE_NAME);
    s.push_str("; hit; ttl=");
    crate::decimal::push_i64(&mut s, ttl_s(entry, now_ms));
    s
}

/// `cache-status` of a stale entry served because the upstream failed.
pub fn stale_if_error_status(entry: &Entry, now_ms: u64, fwd: Fwd, upstream_status: u16) -> String {
    format!(
        "{CACHE_NAME}; fwd={}; fwd-status={upstream_status}; ttl={}",
        fwd.as_str(),
        ttl_s(entry, now_ms)
    )
}

pub fn forward_status(fwd: Fwd, stored: bool) -> String {
    let mut s = String::with_capacity(CACHE_NAME.len() + 24);
    s.push_str(CACHE_NAME);
    s.push_str("; fwd=");
    s.push_str(fwd.as_str());
    if stored {
        s.push_str("; stored");
    }
    s
}

/// `cache-status` of an answer from an entry the upstream's `304` just
/// confirmed.
pub fn revalidated_status(fwd: Fwd, stored: bool) -> String {
    let stored = if stored { "; stored" } else { "" };
    format!("{CACHE_NAME}; fwd={}; fwd-status=304{stored}", fwd.as_str())
}

pub fn label_for_fwd(fwd: Fwd) -> Label {
    match fwd {
        Fwd::Bypass | Fwd::Method => Label::Bypass,
        _ => Label::Miss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Body;

    #[test]
    fn hop_by_hop_and_per_response_headers_are_not_stored() {
        for h in [
            "Connection",
            "transfer-encoding",
            "set-cookie",
            "x-envoy-upstream-service-time",
            "age",
            ":status",
        ] {
            assert!(!storable_header(h), "{h}");
        }
        for h in [
            "content-type",
            "cache-control",
            "etag",
            "vary",
            "cache-tag",
            "x-custom",
        ] {
            assert!(storable_header(h), "{h}");
        }
    }

    #[test]
    fn age_and_ttl() {
        let e = Entry {
            key: String::new(),
            stored_ms: 10_000,
            initial_age_s: 5,
            fresh_until_ms: 70_000,
            swr_until_ms: 0,
            sie_until_ms: 0,
            keep_until_ms: 0,
            fetch_ms: 0,
            gens: vec![],
            body: Body::Vary { names: vec![] },
        };
        assert_eq!(age_s(&e, 10_000), 5);
        assert_eq!(age_s(&e, 13_999), 8);
        assert_eq!(ttl_s(&e, 10_000), 60);
        assert_eq!(ttl_s(&e, 71_000), -1);
        assert_eq!(hit_status(&e, 10_000), "cost-optimizer; hit; ttl=60");
        assert_eq!(
            forward_status(Fwd::Miss, true),
            "cost-optimizer; fwd=miss; stored"
        );
        assert_eq!(
            forward_status(Fwd::Bypass, false),
            "cost-optimizer; fwd=bypass"
        );
        assert_eq!(
            stale_if_error_status(&e, 71_500, Fwd::Stale, 503),
            "cost-optimizer; fwd=stale; fwd-status=503; ttl=-2"
        );
    }
}
