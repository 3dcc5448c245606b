//! Client conditional requests answered from a stored response
//! (RFC 9110 §13.1, §13.2.2; RFC 9111 §4.3.2): when the client already
//! holds what the cache would send, a 304 saves the body.
//!
//! Only `If-None-Match` and `If-Modified-Since` are evaluated, for GET and
//! HEAD; the caller checks the method (for other methods RFC 9110 says to
//! ignore `If-Modified-Since`, and `If-None-Match` would mean 412, which a
//! cache should leave to the origin). Every doubt resolves to `Proceed`:
//! sending the full stored response is always correct, a wrong 304 is not.

use super::http_date;
use crate::headers::Headers;

/// What to answer from the stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Send the stored response as usual.
    Proceed,
    /// Send 304 with `NOT_MODIFIED_HEADERS` from the stored response.
    NotModified,
}

/// The stored headers a 304 carries. RFC 9110 §15.4.5 requires those of
/// them a 200 would have had; `last-modified` is allowed as metadata that
/// guides cache updates, and helps clients that revalidate by date.
pub const NOT_MODIFIED_HEADERS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "last-modified",
    "vary",
];

/// RFC 9110 §13.2.2, steps 3–4, for a cache holding one stored response
/// with the given validators (`etag`, `last_modified`, `date` are its
/// header values; `now_ms` only resolves two-digit years in dates).
pub fn evaluate(
    request: &Headers<'_>,
    etag: Option<&str>,
    last_modified: Option<&str>,
    date: Option<&str>,
    now_ms: u64,
) -> Precondition {
    let mut none_match = request
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("if-none-match"))
        .peekable();
    if none_match.peek().is_some() {
        // If-None-Match decides alone (§13.1.3: If-Modified-Since is then
        // ignored), even when nothing in it can be compared.
        let stored = etag.and_then(|e| single_tag(e.as_bytes()));
        let hit = none_match.any(|(_, value)| {
            members(value).any(|m| match m {
                // The client takes any current representation; we have one.
                Member::Any => true,
                Member::Tag(t) => stored.is_some_and(|s| s.opaque == t.opaque),
            })
        });
        return if hit {
            Precondition::NotModified
        } else {
            Precondition::Proceed
        };
    }
    if modified_since(request, last_modified.or(date), now_ms) == Some(false) {
        Precondition::NotModified
    } else {
        Precondition::Proceed
    }
}

/// `Some(false)` when the stored validator is no later than the client's
/// `If-Modified-Since`; `None` when the header must be ignored or nothing
/// can be compared. RFC 9111 §4.3.2 has the cache use `Last-Modified`, or
/// without it `Date`; the caller passes whichever exists.
fn modified_since(request: &Headers<'_>, stored: Option<&str>, now_ms: u64) -> Option<bool> {
    let mut lines = request
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("if-modified-since"));
    let value = lines.next()?.1;
    // §13.1.3: ignore a value with more than one member; two lines are two.
    if lines.next().is_some() {
        return None;
    }
    let since = http_date::parse_ms(std::str::from_utf8(value).ok()?, now_ms)?;
    let stored = http_date::parse_ms(stored?, now_ms)?;
    Some(stored > since)
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal,
/// whether or not either is marked weak. Malformed tags match nothing.
pub fn weak_match(a: &str, b: &str) -> bool {
    match (single_tag(a.as_bytes()), single_tag(b.as_bytes())) {
        (Some(a), Some(b)) => a.opaque == b.opaque,
        _ => false,
    }
}

/// Strong comparison (RFC 9110 §8.8.3.2): neither is weak and the opaque
/// tags are equal. Malformed tags match nothing.
pub fn strong_match(a: &str, b: &str) -> bool {
    match (single_tag(a.as_bytes()), single_tag(b.as_bytes())) {
        (Some(a), Some(b)) => !a.weak && !b.weak && a.opaque == b.opaque,
        _ => false,
    }
}

/// One entity-tag: `[ "W/" ] DQUOTE *etagc DQUOTE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub weak: bool,
    /// Between the quotes.
    pub opaque: &'a [u8],
}

/// A field value that is exactly one entity-tag (surrounding OWS allowed),
/// as `ETag` and the entity-tag form of `If-Range` are.
pub(crate) fn single_tag(value: &[u8]) -> Option<EntityTag<'_>> {
    let value = trim_ows(value);
    let (tag, rest) = entity_tag(value)?;
    rest.is_empty().then_some(tag)
}

/// Member of an `If-None-Match` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member<'a> {
    Any,
    Tag(EntityTag<'a>),
}

/// Well-formed members of a list value, malformed ones skipped.
///
/// The list cannot simply be split at commas: `etagc` includes the comma,
/// so `"a,b"` is one tag. Empty elements (`, ,`) are allowed by RFC 9110
/// §5.6.1. A `*` is accepted as a member even inside a list (the grammar
/// allows it only alone): whoever sent it wants "any representation".
fn members(value: &[u8]) -> impl Iterator<Item = Member<'_>> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        rest = skip_separators(rest);
        if rest.is_empty() {
            return None;
        }
        let parsed = if let Some(after) = rest.strip_prefix(b"*") {
            Some((Member::Any, after))
        } else {
            entity_tag(rest).map(|(t, after)| (Member::Tag(t), after))
        };
        match parsed {
            // A member ends at OWS then a comma or the end of the value.
            Some((member, after)) if ends_member(after) => {
                rest = after;
                return Some(member);
            }
            _ => rest = skip_malformed(rest),
        }
    })
}

/// `entity-tag` at the start of `s`, and what follows it.
fn entity_tag(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = s.strip_prefix(b"\"")?;
    let close = s.iter().position(|&b| b == b'"')?;
    let (opaque, rest) = s.split_at_checked(close)?;
    if !opaque.iter().all(|&b| is_etagc(b)) {
        return None;
    }
    let rest = rest.strip_prefix(b"\"")?;
    Some((EntityTag { weak, opaque }, rest))
}

/// `etagc = %x21 / %x23-7E / obs-text`: visible characters except DQUOTE.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or_default()
}

fn skip_separators(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_ows(b) || b == b',').count();
    s.get(n..).unwrap_or_default()
}

fn ends_member(s: &[u8]) -> bool {
    matches!(skip_ows(s).first(), None | Some(b','))
}

fn skip_ows(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_ows(b)).count();
    s.get(n..).unwrap_or_default()
}

/// Past a malformed member: to the next comma outside quotes, so that a
/// quoted comma in the broken member does not start a bogus new one.
fn skip_malformed(s: &[u8]) -> &[u8] {
    let mut quoted = false;
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => return s.get(i..).unwrap_or_default(),
            _ => {}
        }
    }
    &[]
}

#[cfg(test)]
#[path = "conditional_tests.rs"]
mod tests;
