//! Calendar windows (UTC days and months, shifted by a tenant's fixed UTC
//! offset) and timestamp parsing. Times are milliseconds since the epoch.

pub const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// Shared with the filter's HTTP dates (`optimizer_wire::civil`).
pub use optimizer_wire::civil::{civil_from_days, days_from_civil};

/// Start of the day containing `ts_ms` for a tenant `offset_min` minutes east of UTC.
pub fn day_start(ts_ms: i64, offset_min: i32) -> i64 {
    let off = i64::from(offset_min) * MINUTE_MS;
    (ts_ms + off).div_euclid(DAY_MS) * DAY_MS - off
}

/// `[start, end)` of the calendar month containing `ts_ms`.
pub fn month_bounds(ts_ms: i64, offset_min: i32) -> (i64, i64) {
    let off = i64::from(offset_min) * MINUTE_MS;
    let (y, m, _) = civil_from_days((ts_ms + off).div_euclid(DAY_MS));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        days_from_civil(y, m, 1) * DAY_MS - off,
        days_from_civil(ny, nm, 1) * DAY_MS - off,
    )
}

/// Parses a UTC offset: `"+05:30"`, `"-08:00"`, `"Z"`, `"UTC"`. Minutes east of UTC.
pub fn parse_offset(s: &str) -> Result<i32, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") || s.is_empty() {
        return Ok(0);
    }
    let bad = || format!("not a UTC offset like +05:30: {s:?}");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) || h * 60 + m > 14 * 60 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// Formats minutes east of UTC as `+05:30`.
pub fn format_offset(min: i32) -> String {
    let sign = if min < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", min.abs() / 60, min.abs() % 60)
}

/// Formats a time as RFC 3339 at `offset_min` minutes east of UTC, to the
/// second: `2025-03-10T12:00:00Z`, `2025-03-10T17:30:00+05:30`.
pub fn format_time(ts_ms: i64, offset_min: i32) -> String {
    let local = ts_ms + i64::from(offset_min) * MINUTE_MS;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    let secs = local.rem_euclid(DAY_MS) / 1000;
    let zone = if offset_min == 0 {
        "Z".to_owned()
    } else {
        format_offset(offset_min)
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn num(s: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad number {s:?}"));
    }
    s.parse().map_err(|_| format!("bad number {s:?}"))
}

/// Parses a time: integer milliseconds since the epoch, an RFC 3339 time
/// (`2025-03-01T12:00:00Z`, `...+02:00`, fractional seconds allowed) or a date
/// `2025-03-01` (midnight UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let err = || format!("not a time (unix ms, RFC 3339 or YYYY-MM-DD): {s:?}");
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(mo), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err());
    };
    let (y, mo, d) = (num(y)?, num(mo)?, num(d)?);
    // Years of four digits, as RFC 3339 writes them: a longer one made
    // `days_from_civil` overflow (found by fuzzing, `control_json`).
    if y > 9999 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(err());
    }
    let mut ms = days_from_civil(y, mo as u32, d as u32) * DAY_MS;
    let Some(rest) = rest else { return Ok(ms) };
    let tz_at = rest.find(['Z', 'z', '+', '-']).ok_or_else(err)?;
    let (clock, tz) = rest.split_at(tz_at);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut f = hms.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (f.next(), f.next(), f.next(), f.next()) else {
        return Err(err());
    };
    let (h, mi, sec) = (num(h)?, num(mi)?, num(sec)?);
    if h > 23 || mi > 59 || sec > 60 {
        return Err(err());
    }
    ms += ((h * 60 + mi) * 60 + sec) * 1000;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        ms += num(&digits).map_err(|_| err())?;
    }
    ms -= i64::from(parse_offset(tz)?) * MINUTE_MS;
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`control_json`, a `GET /v1/spend` query): a
    /// year of 19 digits overflowed in `days_from_civil`.
    #[test]
    fn a_year_past_four_digits_is_refused_not_an_overflow() {
        for s in [
            "2339210719340376714-03-01T00:00:00Z",
            "9223372036854775807-01-01",
            "10000-01-01",
        ] {
            assert!(parse_time(s).is_err(), "{s}");
        }
        assert_eq!(
            parse_time("9999-12-31").unwrap(),
            days_from_civil(9999, 12, 31) * DAY_MS
        );
    }

    #[test]
    fn civil_roundtrip() {
        for z in [-1000, 0, 1, 59, 60, 365, 10_957, 19_000, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 1),
            29
        );
    }

    #[test]
    fn windows_with_offsets() {
        let t = parse_time("2025-03-31T23:30:00Z").unwrap();
        assert_eq!(day_start(t, 0), parse_time("2025-03-31").unwrap());
        // At +01:00 it is already 00:30 on April 1st.
        assert_eq!(
            day_start(t, 60),
            parse_time("2025-03-31T23:00:00Z").unwrap()
        );
        let (s, e) = month_bounds(t, 60);
        assert_eq!(s, parse_time("2025-03-31T23:00:00Z").unwrap());
        assert_eq!(e, parse_time("2025-04-30T23:00:00Z").unwrap());
        let (s, e) = month_bounds(t, 0);
        assert_eq!(
            (s, e),
            (
                parse_time("2025-03-01").unwrap(),
                parse_time("2025-04-01").unwrap()
            )
        );
        let (s, e) = month_bounds(parse_time("2025-12-15").unwrap(), -300);
        assert_eq!(s, parse_time("2025-12-01T05:00:00Z").unwrap());
        assert_eq!(e, parse_time("2026-01-01T05:00:00Z").unwrap());
    }

    #[test]
    fn parses_times_and_offsets() {
        assert_eq!(parse_time("1000"), Ok(1000));
        assert_eq!(parse_time("1970-01-02"), Ok(DAY_MS));
        assert_eq!(parse_time("1970-01-01T01:00:00.250+01:00"), Ok(250));
        assert!(parse_time("2025-13-01").is_err());
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_offset("+05:30"), Ok(330));
        assert_eq!(parse_offset("-08:00"), Ok(-480));
        assert!(parse_offset("+15:00").is_err());
        assert_eq!(format_offset(-330), "-05:30");
    }

    #[test]
    fn formats_times_at_offsets_and_reads_them_back() {
        let t = parse_time("2025-03-10T12:00:00Z").unwrap();
        assert_eq!(format_time(t, 0), "2025-03-10T12:00:00Z");
        assert_eq!(format_time(t, 330), "2025-03-10T17:30:00+05:30");
        assert_eq!(format_time(t + 1_999, -480), "2025-03-10T04:00:01-08:00");
        for off in [-840, -330, 0, 60, 840] {
            let s = format_time(t + 61_000, off);
            assert_eq!(parse_time(&s), Ok(t + 61_000), "{s}");
        }
    }
}
