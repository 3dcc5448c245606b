use super::*;
use proptest::prelude::*;

/// 2024-06-01T00:00:00Z, a "now" for the cases where it does not matter.
const NOW: u64 = 1_717_200_000_000;
/// 1994-11-06T08:49:37Z, the RFC's example.
const RFC_EXAMPLE: u64 = 784_111_777_000;

fn p(s: &str) -> Option<u64> {
    parse_ms(s, NOW)
}

#[test]
fn the_three_formats_name_the_same_instant() {
    assert_eq!(p("Sun, 06 Nov 1994 08:49:37 GMT"), Some(RFC_EXAMPLE));
    assert_eq!(p("Sunday, 06-Nov-94 08:49:37 GMT"), Some(RFC_EXAMPLE));
    assert_eq!(p("Sun Nov  6 08:49:37 1994"), Some(RFC_EXAMPLE));
}

#[test]
fn epoch_and_last_representable_second() {
    assert_eq!(p("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    assert_eq!(
        p("Fri, 31 Dec 9999 23:59:59 GMT"),
        Some(253_402_300_799_000)
    );
}

#[test]
fn imf_fixdate_shapes() {
    // Every month name, and the weekday is not checked against the date.
    for (i, m) in MONTHS.iter().enumerate() {
        let s = format!("Mon, 01 {m} 2001 00:00:00 GMT");
        let month = p(&s).map(|ms| civil_from_days(ms / 86_400_000).1);
        assert_eq!(month, Some(i as u64 + 1), "{s}");
    }
    for d in DAYS_SHORT {
        assert!(p(&format!("{d}, 06 Nov 1994 08:49:37 GMT")).is_some());
    }
    // Surrounding OWS is trimmed.
    assert_eq!(p(" \tSun, 06 Nov 1994 08:49:37 GMT \t"), Some(RFC_EXAMPLE));
    // Leap second.
    assert_eq!(
        p("Sat, 31 Dec 2016 23:59:60 GMT"),
        p("Sun, 01 Jan 2017 00:00:00 GMT")
    );
}

#[test]
fn asctime_day_forms() {
    assert_eq!(p("Sun Nov 06 08:49:37 1994"), Some(RFC_EXAMPLE));
    assert_eq!(
        p("Wed Nov 16 08:49:37 1994"),
        Some(RFC_EXAMPLE + 10 * 86_400_000)
    );
    for bad in [
        "Sun Nov 6 08:49:37 1994",   // one digit needs the padding space
        "Sun Nov   6 08:49:37 1994", // two padding spaces
        "Sun Nov  16 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sunday Nov  6 08:49:37 1994",
    ] {
        assert_eq!(p(bad), None, "{bad}");
    }
}

#[test]
fn rfc850_shapes() {
    for d in DAYS_LONG {
        assert!(p(&format!("{d}, 06-Nov-94 08:49:37 GMT")).is_some(), "{d}");
    }
    for bad in [
        "Sun, 06-Nov-94 08:49:37 GMT", // short day name
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sunday 06-Nov-94 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 UTC",
        "Funday, 06-Nov-94 08:49:37 GMT",
    ] {
        assert_eq!(p(bad), None, "{bad}");
    }
}

#[test]
fn rejections() {
    for bad in [
        "",
        "0",
        "Thu 18 Aug 2050 07:00:00 GMT", // no comma
        "Thu,18 Aug 2050 07:00:00 GMT",
        "Thu, 18 Aug 2050 7:00:00 GMT", // one-digit hour
        "Thu, 18 Aug 2050 07:0:00 GMT",
        "Thu, 18 Aug 2050 07:00:0 GMT",
        "Thu, 8 Aug 2050 07:00:00 GMT", // one-digit day
        "Thu, 18 Foo 2050 07:00:00 GMT",
        "Thu, 18 aug 2050 07:00:00 GMT", // names are case-sensitive
        "thu, 18 Aug 2050 07:00:00 GMT",
        "Thu, 18 Aug 2050 07:00:00 gmt",
        "Thu, 18 Aug 2050 07:00:00 UTC",
        "Thu, 18 Aug 2050 07:00:00",
        "Thu, 00 Aug 2050 07:00:00 GMT",
        "Thu, 32 Aug 2050 07:00:00 GMT",
        "Thu, 31 Sep 2050 07:00:00 GMT",
        "Thu, 31 Apr 2050 07:00:00 GMT",
        "Thu, 18 Aug 2050 24:00:00 GMT",
        "Thu, 18 Aug 2050 07:60:00 GMT",
        "Thu, 18 Aug 2050 07:00:61 GMT",
        "Thu, 18 Aug 1969 07:00:00 GMT",
        "Wed, 31 Dec 1969 23:59:59 GMT",
        "Thu, 18 Aug 2050 07:00:00 GMTx",
        "Thu, 18 Aug 2050 07:00:00 GMT, x",
        "Thu, 18 Aug 2050 07:00:00 GMT;",
        "Thu, 18 Aug 2050  07:00:00 GMT", // double space
        "Thu,  18 Aug 2050 07:00:00 GMT",
        "Thu, 18 Aug 20500 07:00:00 GMT",
        "Thu, 18 Aug 205 07:00:00 GMT",
        "Thu, +8 Aug 2050 07:00:00 GMT", // no signs
        "Thu, 18 Aug +050 07:00:00 GMT",
        "Thu, 18 Aug 2050 07:00:00 GMT\n",
        "Thu, 18 Aug 2050 07:00:00 GMT\u{a0}",
        "Thu, 18 Aug 2050 07:00:00 GM",
        "Thu, 18 Aug 2050 07-00-00 GMT",
        "Thu,",
        "Thu",
        "Th",
        "Ẅed, 18 Aug 2050 07:00:00 GMT",
    ] {
        assert_eq!(p(bad), None, "{bad:?}");
    }
    // The example from the brief, with its comma, is fine.
    assert!(p("Thu, 18 Aug 2050 07:00:00 GMT").is_some());
}

#[test]
fn leap_days() {
    assert!(p("Thu, 29 Feb 2024 00:00:00 GMT").is_some());
    assert_eq!(p("Wed, 29 Feb 2023 00:00:00 GMT"), None);
    assert!(p("Tue, 29 Feb 2000 00:00:00 GMT").is_some()); // 400 rule
    assert_eq!(p("Mon, 29 Feb 2100 00:00:00 GMT"), None); // 100 rule
    assert_eq!(p("Thu, 30 Feb 2024 00:00:00 GMT"), None);
    assert_eq!(
        p("Fri, 01 Mar 2024 00:00:00 GMT"),
        p("Thu, 29 Feb 2024 00:00:00 GMT").map(|t| t + 86_400_000)
    );
    assert!(p("Thu Feb 29 00:00:00 2024").is_some());
    assert_eq!(p("Wed Feb 29 00:00:00 2023"), None);
}

#[test]
fn two_digit_year_within_50_years_ahead() {
    let at = |now: &str, s: &str| {
        let now = p(now).unwrap_or(0);
        parse_ms(s, now).map(format_imf)
    };
    let now = "Sat, 01 Jun 2024 00:00:00 GMT";
    // 2074-06-01 is exactly 50 years ahead: not "more than", so 2074.
    assert_eq!(
        at(now, "Friday, 01-Jun-74 00:00:00 GMT").as_deref(),
        Some("Fri, 01 Jun 2074 00:00:00 GMT")
    );
    // One second later is more than 50 years ahead: the past, 1974.
    assert_eq!(
        at(now, "Saturday, 01-Jun-74 00:00:01 GMT").as_deref(),
        Some("Sat, 01 Jun 1974 00:00:01 GMT")
    );
    assert_eq!(
        at(now, "Sunday, 06-Nov-94 08:49:37 GMT").as_deref(),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    assert_eq!(
        at(now, "Monday, 01-Jan-24 00:00:00 GMT").as_deref(),
        Some("Mon, 01 Jan 2024 00:00:00 GMT")
    );
    // Late in a century the window reaches into the next one.
    assert_eq!(
        at(
            "Thu, 01 Jan 2099 00:00:00 GMT",
            "Monday, 01-Jan-01 00:00:00 GMT"
        )
        .as_deref(),
        Some("Sat, 01 Jan 2101 00:00:00 GMT")
    );
    assert_eq!(
        at(
            "Thu, 01 Jan 2099 00:00:00 GMT",
            "Monday, 01-Jan-50 00:00:00 GMT"
        )
        .as_deref(),
        Some("Sat, 01 Jan 2050 00:00:00 GMT")
    );
    // At the epoch, "69" is 2069 only if not more than 50 years ahead:
    // it is 99, so 1969, which is before the epoch.
    assert_eq!(parse_ms("Monday, 01-Jan-69 00:00:00 GMT", 0), None);
    assert!(parse_ms("Monday, 01-Jan-20 00:00:00 GMT", 0).is_some());
    // A leap day resolves the year first, then checks the day.
    assert!(parse_ms("Tuesday, 29-Feb-00 00:00:00 GMT", NOW).is_some());
    assert_eq!(parse_ms("Tuesday, 29-Feb-01 00:00:00 GMT", NOW), None);
}

#[test]
fn format_known_instants() {
    assert_eq!(format_imf(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        format_imf(RFC_EXAMPLE + 999),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(
        format_imf(1_709_164_800_000),
        "Thu, 29 Feb 2024 00:00:00 GMT"
    );
    assert_eq!(format_imf(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        format_imf(4_107_542_400_000),
        "Mon, 01 Mar 2100 00:00:00 GMT"
    );
    assert_eq!(format_imf(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
}

#[test]
fn round_trip_over_day_boundaries() {
    // Every day from 1970 to 2200 at its first and last second.
    let mut day = 0u64;
    while day < 84_000 {
        for secs in [day * 86_400, day * 86_400 + 86_399] {
            let ms = secs * 1000;
            let s = format_imf(ms);
            assert_eq!(p(&s), Some(ms), "{s}");
        }
        day += 1;
    }
}

proptest! {
    #[test]
    fn round_trip(ms in 0u64..=253_402_300_799_999) {
        let s = format_imf(ms);
        prop_assert_eq!(s.len(), 29);
        prop_assert_eq!(parse_ms(&s, ms), Some(ms / 1000 * 1000));
    }

    #[test]
    fn any_text_is_safe(s in "\\PC*", now in any::<u64>()) {
        let _ = parse_ms(&s, now);
    }

    #[test]
    fn date_like_text_is_safe(
        s in "[A-Za-z]{3,9},? [0-9 ]{1,3}[- ][A-Za-z]{3}[- ][0-9]{2,5} [0-9:]{5,9} ?(GMT|[0-9]{4})?",
        now in any::<u64>(),
    ) {
        if let Some(ms) = parse_ms(&s, now) {
            // Whatever parses is a real instant that formats again.
            prop_assert_eq!(parse_ms(&format_imf(ms), now), Some(ms));
        }
    }
}
