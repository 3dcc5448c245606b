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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_717_200_000_000;
    const LM: &str = "Sat, 01 Jun 2024 00:00:00 GMT";
    const EARLIER: &str = "Fri, 31 May 2024 23:59:59 GMT";
    const LATER: &str = "Sat, 01 Jun 2024 00:00:01 GMT";

    fn hs(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn eval(pairs: &[(&str, &str)], etag: Option<&str>, lm: Option<&str>) -> Precondition {
        let all = hs(pairs);
        evaluate(&Headers::new(&all), etag, lm, None, NOW)
    }

    use Precondition::{NotModified as NM, Proceed as P};

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(eval(&[], Some("\"a\""), Some(LM)), P);
        assert_eq!(eval(&[("accept", "*/*")], Some("\"a\""), Some(LM)), P);
    }

    #[test]
    fn if_none_match_lists() {
        let cases: &[(&str, Option<&str>, Precondition)] = &[
            ("\"a\"", Some("\"a\""), NM),
            ("\"b\"", Some("\"a\""), P),
            ("\"b\", \"a\"", Some("\"a\""), NM),
            ("\"b\",\"a\"", Some("\"a\""), NM),
            ("  \"b\" ,\t\"a\"  ", Some("\"a\""), NM),
            (", ,\"a\",", Some("\"a\""), NM),
            // Weak comparison, in either direction.
            ("W/\"a\"", Some("\"a\""), NM),
            ("\"a\"", Some("W/\"a\""), NM),
            ("W/\"a\"", Some("W/\"a\""), NM),
            // The comma is a legal opaque-tag character.
            ("\"a,b\"", Some("\"a,b\""), NM),
            ("\"a,b\"", Some("\"a\""), P),
            ("\"x\", \"a,b\"", Some("\"b\""), P),
            // Case matters in tags, and so does the W/ prefix's case.
            ("\"A\"", Some("\"a\""), P),
            ("w/\"a\"", Some("\"a\""), P),
            // Malformed members are skipped, the rest still count.
            ("a, \"a\"", Some("\"a\""), NM),
            ("\"unterminated, \"a\"", Some("\"a\""), P),
            ("\"b\"x, \"a\"", Some("\"a\""), NM),
            ("W/ \"a\", \"a\"", Some("\"a\""), NM),
            ("foo\"a,b\", \"a\"", Some("\"a\""), NM),
            ("a", Some("a"), P),
            ("\"", Some("\"a\""), P),
            ("", Some("\"a\""), P),
            // The empty tag is a tag.
            ("\"\"", Some("\"\""), NM),
            // `*` matches any stored response, with or without an ETag.
            ("*", Some("\"a\""), NM),
            ("*", None, NM),
            (" * ", None, NM),
            ("\"b\", *", None, NM),
            ("**", None, P),
            ("*\"a\"", Some("\"a\""), P),
            // Nothing stored to compare with.
            ("\"a\"", None, P),
            ("\"a\"", Some("a"), P),
            ("\"a\"", Some("\"a\" junk"), P),
        ];
        for (inm, etag, want) in cases {
            assert_eq!(
                eval(&[("If-None-Match", inm)], *etag, None),
                *want,
                "{inm:?} vs {etag:?}"
            );
        }
    }

    #[test]
    fn if_none_match_across_lines_and_cases() {
        let h = [("if-none-match", "\"x\""), ("IF-NONE-MATCH", "\"a\"")];
        assert_eq!(eval(&h, Some("\"a\""), None), NM);
        let h = [("if-none-match", "\"x\""), ("if-none-match", "\"y\"")];
        assert_eq!(eval(&h, Some("\"a\""), None), P);
        let h = [("if-none-match", "garbage"), ("if-none-match", "*")];
        assert_eq!(eval(&h, None, None), NM);
    }

    #[test]
    fn if_none_match_takes_precedence() {
        // Not matching: the satisfied If-Modified-Since must not rescue it.
        let h = [("if-none-match", "\"b\""), ("if-modified-since", LM)];
        assert_eq!(eval(&h, Some("\"a\""), Some(LM)), P);
        // Even unparseable, present If-None-Match excludes If-Modified-Since.
        let h = [("if-none-match", "nonsense"), ("if-modified-since", LM)];
        assert_eq!(eval(&h, Some("\"a\""), Some(LM)), P);
        let h = [("if-modified-since", LM), ("if-none-match", "\"a\"")];
        assert_eq!(eval(&h, Some("\"a\""), Some(LATER)), NM);
    }

    #[test]
    fn if_modified_since() {
        let ims = |v: &str, lm: Option<&str>| eval(&[("If-Modified-Since", v)], None, lm);
        assert_eq!(ims(LM, Some(LM)), NM);
        assert_eq!(ims(LATER, Some(LM)), NM);
        assert_eq!(ims(EARLIER, Some(LM)), P);
        // The other formats are dates too.
        assert_eq!(ims("Saturday, 01-Jun-24 00:00:00 GMT", Some(LM)), NM);
        assert_eq!(ims("Sat Jun  1 00:00:00 2024", Some(LM)), NM);
        assert_eq!(ims(LM, Some("Sat Jun  1 00:00:00 2024")), NM);
        // Invalid dates: the header is ignored.
        assert_eq!(ims("yesterday", Some(LM)), P);
        assert_eq!(ims("Sat 01 Jun 2024 00:00:00 GMT", Some(LM)), P);
        assert_eq!(ims("", Some(LM)), P);
        assert_eq!(ims(LM, Some("garbage")), P);
        // Nothing stored to compare with.
        assert_eq!(ims(LM, None), P);
        // Two lines are more than one member: ignored.
        let h = [("if-modified-since", LM), ("if-modified-since", LM)];
        assert_eq!(eval(&h, None, Some(LM)), P);
        // Not UTF-8.
        let all = vec![("if-modified-since".to_string(), vec![0xff, 0xfe])];
        assert_eq!(evaluate(&Headers::new(&all), None, Some(LM), None, NOW), P);
    }

    #[test]
    fn date_stands_in_for_last_modified() {
        let all = hs(&[("if-modified-since", LM)]);
        let h = Headers::new(&all);
        assert_eq!(evaluate(&h, None, None, Some(LM), NOW), NM);
        assert_eq!(evaluate(&h, None, None, Some(LATER), NOW), P);
        // Last-Modified wins when both exist.
        assert_eq!(evaluate(&h, None, Some(EARLIER), Some(LATER), NOW), NM);
        assert_eq!(evaluate(&h, None, Some(LATER), Some(EARLIER), NOW), P);
        // An unparseable Last-Modified does not fall back to Date: the
        // response has a validator, just one we cannot read.
        assert_eq!(evaluate(&h, None, Some("x"), Some(EARLIER), NOW), P);
    }

    #[test]
    fn comparisons() {
        assert!(weak_match("\"a\"", "\"a\""));
        assert!(weak_match("W/\"a\"", "\"a\""));
        assert!(weak_match("\"a\"", "W/\"a\""));
        assert!(weak_match("W/\"a\"", "W/\"a\""));
        assert!(weak_match(" \"a\"\t", "\"a\""));
        assert!(!weak_match("\"a\"", "\"b\""));
        assert!(!weak_match("a", "a"));
        assert!(!weak_match("\"a\", \"b\"", "\"a\""));
        assert!(!weak_match("*", "\"a\""));

        assert!(strong_match("\"a\"", "\"a\""));
        assert!(strong_match("\"a,b\"", " \"a,b\" "));
        assert!(!strong_match("W/\"a\"", "\"a\""));
        assert!(!strong_match("\"a\"", "W/\"a\""));
        assert!(!strong_match("W/\"a\"", "W/\"a\""));
        assert!(!strong_match("\"a\"", "\"b\""));
        assert!(!strong_match("", ""));
        assert!(!strong_match("\"a b\"", "\"a b\"")); // SP is not etagc
    }

    #[test]
    fn not_modified_headers_are_lowercase_and_sorted() {
        for h in NOT_MODIFIED_HEADERS {
            assert_eq!(h.to_ascii_lowercase(), *h);
        }
        assert!(NOT_MODIFIED_HEADERS.windows(2).all(|w| w[0] < w[1]));
        assert!(!NOT_MODIFIED_HEADERS.contains(&"content-length"));
    }

    proptest! {
        #[test]
        fn any_bytes_are_safe(
            inm in proptest::collection::vec(any::<u8>(), 0..40),
            ims in proptest::collection::vec(any::<u8>(), 0..40),
            etag in "\\PC{0,12}",
        ) {
            let all = vec![
                ("if-none-match".to_string(), inm.clone()),
                ("if-modified-since".to_string(), ims),
            ];
            let h = Headers::new(&all);
            let _ = evaluate(&h, Some(&etag), Some(LM), Some(LM), NOW);
            let _ = members(&inm).count();
        }

        #[test]
        fn a_listed_tag_is_found(
            tags in proptest::collection::vec("[!#-~]{0,6}", 1..5),
            pick in any::<prop::sample::Index>(),
        ) {
            let list = tags.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
            let stored = format!("W/\"{}\"", pick.get(&tags));
            prop_assert_eq!(eval(&[("if-none-match", &list)], Some(&stored), None), NM);
        }
    }
}
