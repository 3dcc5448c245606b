//! Cache-Control and friends (RFC 9111): what a request asks of the cache,
//! whether a response may be stored, and for how long it stays fresh.

use crate::headers::Headers;

/// Directives of one `Cache-Control` header set (all values of the header).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

/// Parse `Cache-Control` directives. Unknown directives are ignored and a
/// malformed number disables that directive, as RFC 9111 §4.2.1 asks
/// (a malformed `max-age` means "stale": treated as 0).
pub fn parse(value: &str) -> Directives {
    let mut d = Directives::default();
    for part in value.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, arg) = match part.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (part, None),
        };
        let secs = || arg.and_then(|a| a.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" => d.no_store = true,
            "no-cache" => d.no_cache = true,
            "private" => d.private = true,
            "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
            "max-age" => d.max_age = Some(secs().unwrap_or(0)),
            "s-maxage" => d.s_maxage = Some(secs().unwrap_or(0)),
            "stale-while-revalidate" => d.stale_while_revalidate = secs(),
            "stale-if-error" => d.stale_if_error = secs(),
            _ => {}
        }
    }
    d
}

/// All `Cache-Control` values of a header list, joined.
pub fn directives(headers: &Headers<'_>) -> Directives {
    let joined: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect();
    parse(&joined.join(","))
}

/// What the client's request directives ask of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestMode {
    /// Look up, and store a miss.
    Normal,
    /// `no-cache` or `max-age=0`: skip the lookup, store the answer.
    Revalidate,
    /// `no-store`: neither look up nor store.
    Bypass,
}

pub fn request_mode(d: &Directives) -> RequestMode {
    if d.no_store {
        RequestMode::Bypass
    } else if d.no_cache || d.max_age == Some(0) {
        RequestMode::Revalidate
    } else {
        RequestMode::Normal
    }
}

/// How long a stored response stays fresh and how long it may be served
/// stale, in milliseconds from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub ttl_ms: u64,
    pub stale_while_revalidate_ms: u64,
    pub stale_if_error_ms: u64,
}

/// Freshness of a response, or `None` when it must not be stored.
/// `s-maxage` wins over `max-age` (we are a shared cache), which wins over
/// `Expires − Date`; the rule's `default_ttl` applies only when the
/// upstream says nothing; everything is capped by the rule's `max_ttl`.
/// `age_s` (the upstream's `Age`) is subtracted.
pub fn freshness(
    d: &Directives,
    expires: Option<&str>,
    date: Option<&str>,
    age_s: u64,
    now_ms: u64,
    default_ttl_ms: Option<u64>,
    max_ttl_ms: u64,
) -> Option<Freshness> {
    if d.no_store || d.private || d.no_cache {
        return None;
    }
    let explicit_ms = if let Some(s) = d.s_maxage.or(d.max_age) {
        Some(s.saturating_mul(1000))
    } else if let Some(e) = expires {
        // An invalid Expires (e.g. "0") means already expired.
        let base = date.and_then(http_date_ms).unwrap_or(now_ms);
        Some(http_date_ms(e).map(|t| t.saturating_sub(base)).unwrap_or(0))
    } else {
        None
    };
    let lifetime = match explicit_ms {
        Some(ms) => ms,
        None => default_ttl_ms?,
    };
    let ttl_ms = lifetime
        .min(max_ttl_ms)
        .saturating_sub(age_s.saturating_mul(1000));
    if ttl_ms == 0 {
        return None;
    }
    let stale = |s: Option<u64>| {
        if d.must_revalidate {
            0
        } else {
            s.unwrap_or(0).saturating_mul(1000).min(max_ttl_ms)
        }
    };
    Some(Freshness {
        ttl_ms,
        stale_while_revalidate_ms: stale(d.stale_while_revalidate),
        stale_if_error_ms: stale(d.stale_if_error),
    })
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix milliseconds.
/// Other legacy formats are treated as invalid, which RFC 9111 allows.
pub fn http_date_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let rest = s.get(5..)?; // skip "Sun, "
    let mut it = rest.split(' ');
    let day: u64 = it.next()?.parse().ok()?;
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if it.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    if days < 0 {
        return None;
    }
    Some(((days as u64) * 86_400 + h * 3600 + m * 60 + sec) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_table() {
        let cases: &[(&str, Directives)] = &[
            ("", Directives::default()),
            (
                "max-age=60",
                Directives {
                    max_age: Some(60),
                    ..Default::default()
                },
            ),
            (
                "MAX-AGE = 60",
                Directives {
                    max_age: Some(60),
                    ..Default::default()
                },
            ),
            (
                "max-age=\"30\"",
                Directives {
                    max_age: Some(30),
                    ..Default::default()
                },
            ),
            (
                "max-age=abc",
                Directives {
                    max_age: Some(0),
                    ..Default::default()
                },
            ),
            (
                "public, s-maxage=10, max-age=5",
                Directives {
                    s_maxage: Some(10),
                    max_age: Some(5),
                    ..Default::default()
                },
            ),
            (
                "no-store",
                Directives {
                    no_store: true,
                    ..Default::default()
                },
            ),
            (
                "private, max-age=9",
                Directives {
                    private: true,
                    max_age: Some(9),
                    ..Default::default()
                },
            ),
            (
                "no-cache",
                Directives {
                    no_cache: true,
                    ..Default::default()
                },
            ),
            (
                "max-age=1, stale-while-revalidate=30, stale-if-error=60",
                Directives {
                    max_age: Some(1),
                    stale_while_revalidate: Some(30),
                    stale_if_error: Some(60),
                    ..Default::default()
                },
            ),
            (
                "must-revalidate,,foo=bar",
                Directives {
                    must_revalidate: true,
                    ..Default::default()
                },
            ),
            ("stale-if-error=x", Directives::default()),
        ];
        for (input, want) in cases {
            assert_eq!(&parse(input), want, "{input:?}");
        }
    }

    #[test]
    fn request_modes() {
        assert_eq!(request_mode(&parse("")), RequestMode::Normal);
        assert_eq!(request_mode(&parse("max-age=10")), RequestMode::Normal);
        assert_eq!(request_mode(&parse("no-cache")), RequestMode::Revalidate);
        assert_eq!(request_mode(&parse("max-age=0")), RequestMode::Revalidate);
        assert_eq!(
            request_mode(&parse("no-store, no-cache")),
            RequestMode::Bypass
        );
    }

    #[test]
    fn freshness_table() {
        let now = 1_000_000_000_000;
        let f = |cc: &str, exp: Option<&str>, age: u64, def: Option<u64>| {
            freshness(&parse(cc), exp, None, age, now, def, 3_600_000).map(|f| f.ttl_ms)
        };
        assert_eq!(f("max-age=60", None, 0, None), Some(60_000));
        assert_eq!(f("max-age=60, s-maxage=5", None, 0, None), Some(5_000));
        assert_eq!(f("max-age=60", None, 20, None), Some(40_000));
        assert_eq!(f("max-age=60", None, 60, None), None);
        assert_eq!(f("max-age=999999", None, 0, None), Some(3_600_000));
        assert_eq!(f("", None, 0, None), None);
        assert_eq!(f("", None, 0, Some(7_000)), Some(7_000));
        assert_eq!(f("no-store, max-age=60", None, 0, Some(1)), None);
        assert_eq!(f("private, max-age=60", None, 0, None), None);
        assert_eq!(f("no-cache", None, 0, Some(5)), None);
        assert_eq!(f("", Some("0"), 0, Some(7_000)), None);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let exp = "Sun, 06 Nov 1994 08:50:37 GMT";
        let ttl = freshness(&parse(""), Some(exp), Some(date), 0, now, None, 3_600_000).unwrap();
        assert_eq!(ttl.ttl_ms, 60_000);
        let swr = freshness(
            &parse("max-age=1, stale-while-revalidate=5, stale-if-error=9"),
            None,
            None,
            0,
            now,
            None,
            3_600_000,
        )
        .unwrap();
        assert_eq!(
            (swr.stale_while_revalidate_ms, swr.stale_if_error_ms),
            (5_000, 9_000)
        );
        let mr = freshness(
            &parse("max-age=1, must-revalidate, stale-if-error=9"),
            None,
            None,
            0,
            now,
            None,
            3_600_000,
        )
        .unwrap();
        assert_eq!(mr.stale_if_error_ms, 0);
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date_ms("0"), None);
        assert_eq!(http_date_ms("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(http_date_ms("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }
}
