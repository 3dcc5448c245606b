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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RangeAnswer::{Full, Partial, Unsatisfiable};

    const NOW: u64 = 1_717_200_000_000;
    const LM: &str = "Sat, 01 Jun 2024 00:00:00 GMT";
    const DATE: &str = "Sat, 01 Jun 2024 00:00:01 GMT";
    const ETAG: &str = "\"v1\"";
    const HUGE: &str = "99999999999999999999999999";

    fn hs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn eval(pairs: &[(&str, &str)], len: u64) -> RangeAnswer {
        let all = hs(pairs);
        evaluate(
            &Headers::new(&all),
            len,
            Some(ETAG),
            Some(LM),
            Some(DATE),
            NOW,
        )
    }

    fn range(v: &str, len: u64) -> RangeAnswer {
        eval(&[("Range", v)], len)
    }

    fn part(start: u64, end: u64) -> RangeAnswer {
        Partial { start, end }
    }

    #[test]
    fn no_range_is_full() {
        assert_eq!(eval(&[], 10), Full);
        // If-Range alone is ignored.
        assert_eq!(eval(&[("if-range", ETAG)], 10), Full);
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(range("bytes=0-4", 10), part(0, 4));
        assert_eq!(range("bytes=3-3", 10), part(3, 3));
        assert_eq!(range("bytes=5-", 10), part(5, 9));
        assert_eq!(range("bytes=-3", 10), part(7, 9));
        assert_eq!(range("bytes=0-", 10), part(0, 9));
        assert_eq!(range("bytes=9-9", 10), part(9, 9));
    }

    #[test]
    fn clamping() {
        assert_eq!(range("bytes=5-100", 10), part(5, 9));
        assert_eq!(range("bytes=-100", 10), part(0, 9));
        assert_eq!(range("bytes=-10", 10), part(0, 9));
        assert_eq!(range("bytes=0-9", 10), part(0, 9));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(range("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(range("bytes=-000", 10), Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), Unsatisfiable);
        assert_eq!(range("bytes=0-0", 0), Unsatisfiable);
    }

    #[test]
    fn syntax() {
        // Unit and list syntax.
        assert_eq!(range("BYTES=0-4", 10), part(0, 4));
        assert_eq!(range("Bytes=0-4", 10), part(0, 4));
        assert_eq!(range(" bytes=0-4\t", 10), part(0, 4));
        assert_eq!(range("bytes= 0-4 ", 10), part(0, 4));
        assert_eq!(range("bytes=0-4,", 10), part(0, 4));
        assert_eq!(range("bytes=, ,0-4", 10), part(0, 4));
        assert_eq!(range("bytes=007-08", 10), part(7, 8));
        // Ignored: answered in full.
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1",
            "bytes=5-4",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=-+2",
            "bytes=--2",
            "bytes=1 -2",
            "bytes=1- 2",
            "bytes=0x1-2",
            "bytes=１-2",
            "bytes =0-4",
            "items=0-4",
            "bytes=0-4;x",
            "=0-4",
        ] {
            assert_eq!(range(bad, 10), Full, "{bad:?}");
        }
    }

    #[test]
    fn several_ranges_are_served_in_full() {
        assert_eq!(range("bytes=0-1,3-4", 10), Full);
        assert_eq!(range("bytes=0-1, -2", 10), Full);
        // Even when one of them alone would be unsatisfiable.
        assert_eq!(range("bytes=20-30, 40-50", 10), Full);
        let h = [("range", "bytes=0-1"), ("Range", "bytes=3-4")];
        assert_eq!(eval(&h, 10), Full);
    }

    #[test]
    fn numbers_beyond_u64() {
        assert_eq!(range(&format!("bytes=2-{HUGE}"), 10), part(2, 9));
        assert_eq!(range(&format!("bytes={HUGE}-"), 10), Unsatisfiable);
        assert_eq!(range(&format!("bytes={HUGE}-{HUGE}9"), 10), Unsatisfiable);
        assert_eq!(range(&format!("bytes={HUGE}-{HUGE}"), 10), Unsatisfiable);
        // Still invalid when first > last, however long they are.
        assert_eq!(range(&format!("bytes={HUGE}9-{HUGE}"), 10), Full);
        assert_eq!(range(&format!("bytes={HUGE}-5"), 10), Full);
        assert_eq!(range(&format!("bytes=-{HUGE}"), 10), part(0, 9));
        // At the edge of u64.
        let max = u64::MAX;
        assert_eq!(range(&format!("bytes=0-{max}"), max), part(0, max - 1));
        assert_eq!(range(&format!("bytes={max}-"), max), Unsatisfiable);
        assert_eq!(range(&format!("bytes=-{max}"), max), part(0, max - 1));
        assert_eq!(range("bytes=-1", max), part(max - 1, max - 1));
        // Leading zeros do not count as magnitude.
        assert_eq!(
            range(&format!("bytes=0000000000000000000000005-{HUGE}"), 10),
            part(5, 9)
        );
        assert_eq!(range("bytes=0000000000000000000000009-0008", 10), Full);
    }

    #[test]
    fn if_range_entity_tag() {
        let r = |ir: &str| eval(&[("range", "bytes=0-4"), ("if-range", ir)], 10);
        assert_eq!(r(ETAG), part(0, 4));
        assert_eq!(r(" \"v1\" "), part(0, 4));
        assert_eq!(r("\"v2\""), Full);
        // Weak tags never match under strong comparison.
        assert_eq!(r("W/\"v1\""), Full);
        assert_eq!(r("\"v1\", \"v2\""), Full);
        assert_eq!(r("\"v1"), Full);
        // A weak stored ETag never matches either.
        let all = hs(&[("range", "bytes=0-4"), ("if-range", ETAG)]);
        let h = Headers::new(&all);
        assert_eq!(
            evaluate(&h, 10, Some("W/\"v1\""), Some(LM), Some(DATE), NOW),
            Full
        );
        assert_eq!(evaluate(&h, 10, None, Some(LM), Some(DATE), NOW), Full);
    }

    #[test]
    fn if_range_date() {
        let r = |ir: &str| eval(&[("range", "bytes=0-4"), ("if-range", ir)], 10);
        assert_eq!(r(LM), part(0, 4));
        // Equal as dates, not as text.
        assert_eq!(r("Sat Jun  1 00:00:00 2024"), part(0, 4));
        assert_eq!(r("Saturday, 01-Jun-24 00:00:00 GMT"), part(0, 4));
        assert_eq!(r("Sat, 01 Jun 2024 00:00:01 GMT"), Full);
        assert_eq!(r("Fri, 31 May 2024 23:59:59 GMT"), Full);
        assert_eq!(r("Sat 01 Jun 2024 00:00:00 GMT"), Full);
        assert_eq!(r("tomorrow"), Full);
        assert_eq!(r(""), Full);

        let all = hs(&[("range", "bytes=0-4"), ("if-range", LM)]);
        let h = Headers::new(&all);
        let with = |lm: Option<&str>, date: Option<&str>| evaluate(&h, 10, None, lm, date, NOW);
        // No stored Last-Modified: nothing to match.
        assert_eq!(with(None, Some(DATE)), Full);
        // Last-Modified is weak unless Date is at least a second later.
        assert_eq!(with(Some(LM), Some(LM)), Full);
        assert_eq!(with(Some(LM), None), Full);
        assert_eq!(with(Some(LM), Some("junk")), Full);
        assert_eq!(
            with(Some(LM), Some("Sun, 02 Jun 2024 00:00:00 GMT")),
            part(0, 4)
        );
    }

    #[test]
    fn failed_if_range_ignores_even_a_bad_range() {
        let h = [("range", "bytes=50-60"), ("if-range", "\"old\"")];
        assert_eq!(eval(&h, 10), Full);
        let h = [("range", "bytes=50-60"), ("if-range", ETAG)];
        assert_eq!(eval(&h, 10), Unsatisfiable);
    }

    #[test]
    fn several_if_range_lines_do_not_hold() {
        let h = [
            ("range", "bytes=0-4"),
            ("if-range", ETAG),
            ("if-range", ETAG),
        ];
        assert_eq!(eval(&h, 10), Full);
    }

    #[test]
    fn non_utf8_values_are_ignored() {
        let all = vec![("range".to_string(), b"bytes=0-4\xff".to_vec())];
        let h = Headers::new(&all);
        assert_eq!(evaluate(&h, 10, None, None, None, NOW), Full);
        let all = vec![
            ("range".to_string(), b"bytes=0-4".to_vec()),
            ("if-range".to_string(), b"\"v1\xff\"".to_vec()),
        ];
        let h = Headers::new(&all);
        assert_eq!(evaluate(&h, 10, Some(ETAG), None, None, NOW), Full);
    }

    #[test]
    fn header_texts() {
        assert_eq!(content_range(0, 4, 10), "bytes 0-4/10");
        assert_eq!(content_range(9, 9, 10), "bytes 9-9/10");
        assert_eq!(unsatisfied_range(10), "bytes */10");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }

    proptest! {
        #[test]
        fn partial_is_always_inside_the_body(v in "\\PC{0,30}", len in any::<u64>()) {
            let all = vec![("range".to_string(), v.into_bytes())];
            if let Partial { start, end } =
                evaluate(&Headers::new(&all), len, None, None, None, NOW)
            {
                prop_assert!(start <= end && end < len);
            }
        }

        #[test]
        fn well_formed_ranges(a in any::<u64>(), b in any::<u64>(), len in 0u64..1000) {
            let got = range(&format!("bytes={a}-{b}"), len);
            let want = if a > b {
                Full
            } else if a >= len {
                Unsatisfiable
            } else {
                part(a, b.min(len - 1))
            };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn suffix_ranges(n in any::<u64>(), len in any::<u64>()) {
            let got = range(&format!("bytes=-{n}"), len);
            let want = if n == 0 || len == 0 {
                Unsatisfiable
            } else {
                part(len.saturating_sub(n), len - 1)
            };
            prop_assert_eq!(got, want);
        }
    }
}
