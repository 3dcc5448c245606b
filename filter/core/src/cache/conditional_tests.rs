use super::*;
use crate::header_list::HeaderList;
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
    evaluate(
        &Headers::new(&HeaderList::from(&all[..])),
        etag,
        lm,
        None,
        NOW,
    )
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
    let all = [("if-modified-since".to_string(), vec![0xff, 0xfe])];
    assert_eq!(
        evaluate(
            &Headers::new(&HeaderList::from(&all[..])),
            None,
            Some(LM),
            None,
            NOW
        ),
        P
    );
}

#[test]
fn date_stands_in_for_last_modified() {
    let all = hs(&[("if-modified-since", LM)]);
    let all = HeaderList::from(&all[..]);
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
        let all = [("if-none-match".to_string(), inm.clone()),
            ("if-modified-since".to_string(), ims)];
        let all = HeaderList::from(&all[..]);
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
