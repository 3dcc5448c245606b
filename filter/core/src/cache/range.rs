//! Answering a `Range` request from a stored complete response
//! (RFC 9110 §14, §13.1.5).
//!
//! Range handling is defined for GET only (§14.2: a HEAD or any other
//! method ignores `Range`); the caller checks the method. Any doubt about
//! the request resolves to `Full`: a server may always ignore `Range` and
//! send 200 with the whole body, so that is never wrong.

use super::{conditional, http_date};
use crate::headers::Headers;

/// What to send for the stored body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole body.
    Full,
    /// 206 with bytes `start..=end` (`end` inclusive, `end < len`).
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decide how to answer the request's `Range` from a stored response of
/// `len` bytes whose `ETag`, `Last-Modified` and `Date` header values are
/// given (`now_ms` only resolves two-digit years in dates).
///
/// Only a single byte range is served. Several ranges would need a
/// `multipart/byteranges` body, which we do not build; sending the whole
/// body instead is allowed (§14.2) and rarely asked for by clients.
pub fn evaluate(
    request: &Headers<'_>,
    len: u64,
    etag: Option<&str>,
    last_modified: Option<&str>,
    date: Option<&str>,
    now_ms: u64,
) -> RangeAnswer {
    let Some(range) = only_value(request, "range") else {
        return RangeAnswer::Full;
    };
    // §13.1.5: when If-Range does not hold, the Range is ignored (and is
    // not even checked for satisfiability: the answer is a plain 200).
    if present(request, "if-range") && !if_range_holds(request, etag, last_modified, date, now_ms) {
        return RangeAnswer::Full;
    }
    match parse(range) {
        Some(spec) => spec.resolve(len),
        None => RangeAnswer::Full,
    }
}

/// `Content-Range` of a 206.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// `Content-Range` of a 416: the current length, so the client can retry.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// The one value of a field that must occur once; several lines, like a
/// value that is not UTF-8, count as unusable.
fn only_value<'a>(request: &Headers<'a>, name: &str) -> Option<&'a str> {
    let mut lines = request.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
    let (_, value) = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    std::str::from_utf8(value).ok()
}

fn present(request: &Headers<'_>, name: &str) -> bool {
    request.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// §13.1.5: an entity-tag holds if it matches the stored `ETag` by strong
/// comparison (so a weak tag never does); an HTTP-date holds if it equals
/// the stored `Last-Modified` and that date is a strong validator.
///
/// `Last-Modified` is strong for a cache (§8.8.2.2) only when the stored
/// `Date` is at least a second later: otherwise the resource could have
/// changed again within the same second, and the client's partial copy
/// would be completed with bytes of a different representation.
fn if_range_holds(
    request: &Headers<'_>,
    etag: Option<&str>,
    last_modified: Option<&str>,
    date: Option<&str>,
    now_ms: u64,
) -> bool {
    let Some(value) = only_value(request, "if-range") else {
        return false;
    };
    let value = value.trim_matches([' ', '\t']);
    // An entity-tag starts with a quote or `W/`; an HTTP-date never does.
    if value.starts_with('"') || value.starts_with("W/") {
        return etag.is_some_and(|stored| conditional::strong_match(value, stored));
    }
    let parse = |s: Option<&str>| s.and_then(|s| http_date::parse_ms(s, now_ms));
    match (
        http_date::parse_ms(value, now_ms),
        parse(last_modified),
        parse(date),
    ) {
        (Some(since), Some(modified), Some(date)) => {
            since == modified && date >= modified.saturating_add(1000)
        }
        _ => false,
    }
}

/// One `range-spec`, its numbers still as digit strings so that values
/// beyond u64 compare exactly and decide without overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec<'a> {
    /// `first-"-"[last]`
    Int {
        first: &'a str,
        last: Option<&'a str>,
    },
    /// `"-"suffix-length`
    Suffix(&'a str),
}

/// `ranges-specifier = range-unit "=" range-set` with a single range-spec;
/// `None` for anything we ignore (other units, several ranges, bad syntax,
/// `first > last`).
fn parse(value: &str) -> Option<Spec<'_>> {
    let (unit, set) = value.trim_matches([' ', '\t']).split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    // `1#range-spec`: a list, so OWS around commas and empty elements.
    let mut specs = set
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty());
    let spec = specs.next()?;
    if specs.next().is_some() {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return digits(last).then_some(Spec::Suffix(last));
    }
    if !digits(first) {
        return None;
    }
    if last.is_empty() {
        return Some(Spec::Int { first, last: None });
    }
    // §14.1.1: a last-pos below first-pos makes the range-spec invalid.
    if !digits(last) || less(last, first) {
        return None;
    }
    Some(Spec::Int {
        first,
        last: Some(last),
    })
}

/// `1*DIGIT` (ASCII only; no sign, which `u64::from_str` would accept).
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Numeric `a < b` for digit strings of any length.
fn less(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    (a.len(), a) < (b.len(), b)
}

impl Spec<'_> {
    /// §14.1.1–§14.1.2: clamp to the body, or say it cannot be served.
    fn resolve(self, len: u64) -> RangeAnswer {
        let last_byte = match len.checked_sub(1) {
            Some(l) => l,
            // Nothing can be selected from an empty body.
            None => return RangeAnswer::Unsatisfiable,
        };
        match self {
            Spec::Int { first, last } => {
                // Too large for u64 is beyond any body.
                let Ok(start) = first.parse::<u64>() else {
                    return RangeAnswer::Unsatisfiable;
                };
                if start > last_byte {
                    return RangeAnswer::Unsatisfiable;
                }
                // An absent or too-large last-pos means "to the end".
                let end = last
                    .and_then(|l| l.parse::<u64>().ok())
                    .map_or(last_byte, |l| l.min(last_byte));
                RangeAnswer::Partial { start, end }
            }
            Spec::Suffix(n) => {
                // A suffix longer than u64 covers the whole body.
                let n = n.parse::<u64>().unwrap_or(u64::MAX);
                if n == 0 {
                    return RangeAnswer::Unsatisfiable;
                }
                RangeAnswer::Partial {
                    start: len.saturating_sub(n),
                    end: last_byte,
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "range_tests.rs"]
mod tests;
