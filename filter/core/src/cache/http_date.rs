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
    use crate::decimal::push_2;
    // 29 bytes, allocated once, without `core::fmt` (a stored answer and
    // a hit that lacks a date write one).
    let mut out = String::with_capacity(32);
    out.push_str(weekday);
    out.push_str(", ");
    push_2(&mut out, day);
    out.push(' ');
    out.push_str(month_name);
    out.push(' ');
    push_2(&mut out, year / 100); // the year is clamped to 1970..=9999
    push_2(&mut out, year);
    out.push(' ');
    push_2(&mut out, in_day / 3600);
    out.push(':');
    push_2(&mut out, in_day / 60 % 60);
    out.push(':');
    push_2(&mut out, in_day % 60);
    out.push_str(" GMT");
    out
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

/// Calendar date (year, month, day) of a day count since 1970-01-01
/// (`optimizer_wire::civil`, the count `cost-control`'s budget windows use).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // A day count from a u64 of milliseconds is below 2^38; the bound only
    // keeps the conversion total.
    let (year, month, day) =
        optimizer_wire::civil::civil_from_days(i64::try_from(days.min(1 << 40)).unwrap_or(0));
    (u64::try_from(year).unwrap_or(0), month.into(), day.into())
}

#[cfg(test)]
#[path = "http_date_tests.rs"]
mod tests;
