//! HTTP-date (RFC 9110 §5.6.7): parse all three formats a recipient must
//! accept, and generate the one a sender must use (IMF-fixdate).
//!
//! Parsing is strict: validators (`Last-Modified`, `If-Modified-Since`,
//! `If-Range`) are compared by the cache on the client's behalf, and a
//! loosely read date could turn a mismatch into a false 304 or 206. Where
//! the grammar is not met the value is rejected and the caller falls back
//! to the safe answer (forward, or serve the full response).

const MS_PER_S: u64 = 1000;
const S_PER_DAY: u64 = 86_400;

/// RFC 9110 uses `%s"…"` (case-sensitive) for day and month names.
const DAYS_SHORT: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS_LONG: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The grammar allows four-digit years only, so this is the last
/// representable instant: 9999-12-31T23:59:59Z.
const MAX_YEAR: u64 = 9999;

/// Unix milliseconds of an HTTP-date in any of the three formats:
///
/// - IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`
/// - obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`
/// - asctime `Sun Nov  6 08:49:37 1994`
///
/// `now_ms` is needed only for the RFC 850 two-digit year: RFC 9110 asks
/// that a timestamp which would be more than 50 years in the future be
/// read as the most recent past year with the same last two digits.
///
/// The weekday must be a day name of the right form but is not checked
/// against the date (senders get it wrong, and it carries no information).
/// Dates before 1970 are `None`: they have no Unix-millisecond value, and
/// every caller treats "unparseable" and "before the epoch" alike.
pub fn parse_ms(s: &str, now_ms: u64) -> Option<u64> {
    // Only SP and HTAB: that is the OWS a field value may be wrapped in.
    let s = s.trim_matches([' ', '\t']).as_bytes();
    let date = match s.get(3) {
        Some(b',') => imf_fixdate(s)?,
        Some(b' ') => asctime(s)?,
        // A long day name is followed by its comma later on.
        _ => rfc850(s, now_ms)?,
    };
    date.to_ms()
}

/// IMF-fixdate of a Unix millisecond timestamp (floored to the second).
///
/// Instants after 9999-12-31T23:59:59Z cannot be written with a
/// four-digit year; they are clamped to that instant rather than emitting
/// a value no recipient would parse.
pub fn format_imf(ms: u64) -> String {
    let max_s = days_before_year(MAX_YEAR + 1) * S_PER_DAY - 1;
    let secs = (ms / MS_PER_S).min(max_s);
    let days = secs / S_PER_DAY;
    let in_day = secs % S_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4, counting from Sunday).
    let weekday = DAYS_SHORT.get(((days + 4) % 7) as usize).unwrap_or(&"Sun");
    let month_name = MONTHS
        .get(month.saturating_sub(1) as usize)
        .unwrap_or(&"Jan");
    format!(
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// A calendar date and time as read, before validation.
struct Civil {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Civil {
    /// Range checks shared by all formats, then the conversion.
    fn to_ms(&self) -> Option<u64> {
        if !(1970..=MAX_YEAR).contains(&self.year)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)?
            || self.hour > 23
            || self.minute > 59
            // 60 is a leap second; Unix time has none, so it lands on the
            // first second of the next minute.
            || self.second > 60
        {
            return None;
        }
        let days = days_before_year(self.year)
            + days_before_month(self.year, self.month)?
            + (self.day - 1);
        let secs = days * S_PER_DAY + self.hour * 3600 + self.minute * 60 + self.second;
        Some(secs * MS_PER_S)
    }
}

/// A left-to-right reader over the value's bytes; every step either
/// consumes exactly what the grammar says or fails.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        self.rest = self.rest.strip_prefix(lit)?;
        Some(())
    }

    /// Exactly `n` ASCII digits (`str::parse` would also take a sign).
    fn digits(&mut self, n: usize) -> Option<u64> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        let mut v = 0u64;
        for &b in head {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u64::from(b - b'0');
        }
        self.rest = tail;
        Some(v)
    }

    /// One of `names`; the position in the list (used for months).
    fn one_of(&mut self, names: &[&str]) -> Option<u64> {
        for (i, name) in names.iter().enumerate() {
            if let Some(tail) = self.rest.strip_prefix(name.as_bytes()) {
                self.rest = tail;
                return Some(i as u64 + 1);
            }
        }
        None
    }

    /// `time-of-day = hour ":" minute ":" second`, each two digits.
    fn time_of_day(&mut self) -> Option<(u64, u64, u64)> {
        let h = self.digits(2)?;
        self.literal(b":")?;
        let m = self.digits(2)?;
        self.literal(b":")?;
        let s = self.digits(2)?;
        Some((h, m, s))
    }

    /// Trailing garbage makes the whole value invalid.
    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &[u8]) -> Option<Civil> {
    let mut c = Cursor { rest: s };
    c.one_of(&DAYS_SHORT)?;
    c.literal(b", ")?;
    let day = c.digits(2)?;
    c.literal(b" ")?;
    let month = c.one_of(&MONTHS)?;
    c.literal(b" ")?;
    let year = c.digits(4)?;
    c.literal(b" ")?;
    let (hour, minute, second) = c.time_of_day()?;
    c.literal(b" GMT")?;
    c.end()?;
    Some(Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn rfc850(s: &[u8], now_ms: u64) -> Option<Civil> {
    let mut c = Cursor { rest: s };
    c.one_of(&DAYS_LONG)?;
    c.literal(b", ")?;
    let day = c.digits(2)?;
    c.literal(b"-")?;
    let month = c.one_of(&MONTHS)?;
    c.literal(b"-")?;
    let yy = c.digits(2)?;
    c.literal(b" ")?;
    let (hour, minute, second) = c.time_of_day()?;
    c.literal(b" GMT")?;
    c.end()?;
    let mut civil = Civil {
        year: 0,
        month,
        day,
        hour,
        minute,
        second,
    };
    civil.year = two_digit_year(yy, &civil, now_ms);
    Some(civil)
}

/// `Sun Nov  6 08:49:37 1994` (`date3 = month SP ( 2DIGIT / ( SP DIGIT ) )`)
fn asctime(s: &[u8]) -> Option<Civil> {
    let mut c = Cursor { rest: s };
    c.one_of(&DAYS_SHORT)?;
    c.literal(b" ")?;
    let month = c.one_of(&MONTHS)?;
    c.literal(b" ")?;
    let day = if c.literal(b" ").is_some() {
        c.digits(1)?
    } else {
        c.digits(2)?
    };
    c.literal(b" ")?;
    let (hour, minute, second) = c.time_of_day()?;
    c.literal(b" ")?;
    let year = c.digits(4)?;
    c.end()?;
    Some(Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

/// RFC 9110 §5.6.7: read `yy` in the century of `now`, unless that is more
/// than 50 years in the future (then the century before); and if the
/// century after is still not more than 50 years ahead, that one — so the
/// result is the latest year ending in `yy` that is at most 50 years
/// ahead, compared to the second, not just by year.
fn two_digit_year(yy: u64, rest: &Civil, now_ms: u64) -> u64 {
    let now_s = now_ms / MS_PER_S;
    let now_days = now_s / S_PER_DAY;
    let now_in_day = now_s % S_PER_DAY;
    let (ny, nm, nd) = civil_from_days(now_days);
    let limit = (
        ny + 50,
        nm,
        nd,
        now_in_day / 3600,
        now_in_day / 60 % 60,
        now_in_day % 60,
    );
    let at = |year: u64| {
        (
            year,
            rest.month,
            rest.day,
            rest.hour,
            rest.minute,
            rest.second,
        )
    };
    let year = ny - ny % 100 + yy;
    if at(year) > limit {
        // `ny >= 1970`, so this cannot underflow.
        year - 100
    } else if at(year + 100) <= limit {
        year + 100
    } else {
        year
    }
}

/// Every fourth year, except centuries, except every fourth century.
/// (Written as a match rather than with `is_multiple_of`, which needs a
/// newer Rust than the workspace's declared 1.80.)
fn is_leap(year: u64) -> bool {
    match (year % 400, year % 100, year % 4) {
        (0, _, _) => true,
        (_, 0, _) => false,
        (_, _, 0) => true,
        _ => false,
    }
}

/// `None` for a month outside 1..=12 (the parsers cannot produce one, but
/// this keeps the arithmetic total).
fn days_in_month(year: u64, month: u64) -> Option<u64> {
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return None,
    })
}

/// Days from 1970-01-01 to January 1st of `year` (`year >= 1970`).
/// Leap years in [1970, year) are those in [0, year) minus those in
/// [0, 1970); each count is "multiples of 4, minus of 100, plus of 400".
fn days_before_year(year: u64) -> u64 {
    let leaps_before = |y: u64| {
        let y = y.saturating_sub(1);
        y / 4 - y / 100 + y / 400
    };
    let y = year.max(1970);
    (y - 1970) * 365 + leaps_before(y) - leaps_before(1970)
}

/// Days from January 1st to the first of `month` in `year`.
fn days_before_month(year: u64, month: u64) -> Option<u64> {
    let mut days = 0;
    for m in 1..month {
        days += days_in_month(year, m)?;
    }
    Some(days)
}

/// Calendar date (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 146 097 days make 400 Gregorian years, so this estimate is off by at
    // most a year either way; the loops settle it. (A 365-day estimate
    // would drift by a year every ~1500, too slow for far-future inputs.)
    let mut year = 1970 + days.saturating_mul(400) / 146_097;
    while days_before_year(year + 1) <= days {
        year += 1;
    }
    while year > 1970 && days_before_year(year) > days {
        year -= 1;
    }
    let mut left = days - days_before_year(year).min(days);
    let mut month = 1;
    while month < 12 {
        let len = days_in_month(year, month).unwrap_or(31);
        if left < len {
            break;
        }
        left -= len;
        month += 1;
    }
    (year, month, left + 1)
}

#[cfg(test)]
mod tests {
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
}
