use super::*;
use crate::header_list::HeaderList;
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
        &Headers::new(&HeaderList::from(&all[..])),
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
    let all = HeaderList::from(&all[..]);
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
    let all = HeaderList::from(&all[..]);
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
    let all = [("range".to_string(), b"bytes=0-4\xff".to_vec())];
    let all = HeaderList::from(&all[..]);
    let h = Headers::new(&all);
    assert_eq!(evaluate(&h, 10, None, None, None, NOW), Full);
    let all = [
        ("range".to_string(), b"bytes=0-4".to_vec()),
        ("if-range".to_string(), b"\"v1\xff\"".to_vec()),
    ];
    let all = HeaderList::from(&all[..]);
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
        let all = [("range".to_string(), v.into_bytes())];
        if let Partial { start, end } =
            evaluate(&Headers::new(&HeaderList::from(&all[..])), len, None, None, None, NOW)
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
