//! Cache-Control and friends (RFC 9111): what a request asks of the cache,
//! whether a response may be stored, and for how long it stays fresh.

use crate::headers::Headers;

use super::http_date;

/// Directives of one `Cache-Control` header set (all values of the header).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
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
            "public" => d.public = true,
            "must-revalidate" => d.must_revalidate = true,
            "proxy-revalidate" => d.proxy_revalidate = true,
            "must-understand" => d.must_understand = true,
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

/// Statuses a cache may store with a heuristic lifetime (RFC 9110 §15.1:
/// "heuristically cacheable"), the rule's `default_ttl_s` being one.
pub const HEURISTIC_STATUSES: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Statuses whose caching rules this cache knows (for `must-understand`,
/// RFC 9111 §5.2.2.3): the heuristically cacheable ones but 206, whose
/// parts this cache does not combine.
fn understood(status: u16) -> bool {
    status != 206 && HEURISTIC_STATUSES.contains(&status)
}

/// Which statuses a rule stores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Statuses {
    /// RFC 9111 §3: any final status with an explicit lifetime; the
    /// heuristically cacheable ones (or any marked `public`) otherwise.
    #[default]
    Rfc,
    /// Only these inclusive ranges, with any lifetime.
    Listed(Vec<(u16, u16)>),
}

impl Statuses {
    fn allows(&self, status: u16, explicit: bool, public: bool) -> bool {
        match self {
            Statuses::Rfc => explicit || public || HEURISTIC_STATUSES.contains(&status),
            Statuses::Listed(ranges) => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status)),
        }
    }
}

/// The directives a response gives this cache: those of the first
/// targeted field present (RFC 9213, e.g. `cdn-cache-control`), which
/// replace `cache-control` entirely; else `cache-control`'s.
pub fn response_directives(headers: &Headers<'_>, targeted: &[String]) -> Directives {
    for field in targeted {
        let values: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(field))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect();
        // An invalid targeted field is ignored (RFC 9213 §2.1): one that
        // gives no directive this cache knows does not replace
        // Cache-Control.
        let d = parse(&values.join(","));
        if d != Directives::default() {
            return d;
        }
    }
    directives(headers)
}

/// The response's `Age` in seconds (RFC 9111 §5.1): the first member of
/// the first field line (a list-valued `Age` is a sender's error), `None`
/// when that is not a non-negative integer. Huge values saturate at 2^31.
pub fn age_value(headers: &Headers<'_>) -> Option<u64> {
    let first = headers.get_str("age")?.split(',').next()?.trim();
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(first.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31))
}

/// The age a response had when it arrived (RFC 9111 §4.2.3): the larger
/// of what its `Date` shows (`apparent_age`) and its `Age` plus the time
/// the exchange took (`corrected_age_value`), in whole seconds. `Date` is
/// cut to whole seconds and may be a moment behind when the response
/// leaves: the apparent age allows one second for that, so a response
/// that just left the origin is not taken for one a second old (with
/// `max-age=1` it would be stale on arrival).
pub fn initial_age_s(
    age: Option<u64>,
    date_ms: Option<u64>,
    request_ms: u64,
    response_ms: u64,
) -> u64 {
    let apparent = date_ms.map_or(0, |d| {
        (response_ms.saturating_sub(d) / 1000).saturating_sub(1)
    });
    let corrected = age
        .unwrap_or(0)
        .saturating_add(response_ms.saturating_sub(request_ms) / 1000);
    apparent.max(corrected)
}

/// What the response says about itself, for [`storable`].
#[derive(Debug, Clone, Copy)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    pub directives: &'a Directives,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    /// It has an `etag` or a `last-modified`: it can be revalidated.
    pub has_validator: bool,
    /// Its initial age, seconds ([`initial_age_s`]).
    pub age_s: u64,
}

/// What the rule says, for [`storable`].
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub statuses: &'a Statuses,
    /// The rule's lifetime for responses that give none.
    pub default_ttl_ms: Option<u64>,
    pub max_ttl_ms: u64,
    /// Heuristic lifetime: this fraction of the time since `last-modified`.
    pub heuristic_fraction: Option<f64>,
    /// The request carried `authorization`.
    pub authorization: bool,
}

/// How long a stored response stays fresh, how long it may be served
/// stale, and how long it is kept for revalidation after that, in
/// milliseconds from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// 0: stored only to be revalidated (`no-cache`, or already stale).
    pub ttl_ms: u64,
    pub stale_while_revalidate_ms: u64,
    pub stale_if_error_ms: u64,
    /// Kept this long after `ttl_ms` for a conditional request to refresh.
    pub keep_ms: u64,
}

/// Whether a response may be stored (RFC 9111 §3) and its freshness
/// (§4.2.1). `s-maxage` wins over `max-age` (this is a shared cache), which
/// wins over `Expires − Date` (an invalid `Expires` means already
/// expired); without any of them the heuristic fraction of the time since
/// `last-modified`, then the rule's `default_ttl`, apply to statuses that
/// allow a heuristic. Everything is capped by the rule's `max_ttl`, and
/// the response's age is subtracted.
pub fn storable(r: ResponseFacts<'_>, p: Policy<'_>, now_ms: u64) -> Option<Freshness> {
    let d = r.directives;
    // A 206 is a part this cache does not combine with others; a 304
    // only refreshes an entry (response.rs).
    if !(200..=599).contains(&r.status) || r.status == 206 || r.status == 304 {
        return None;
    }
    if d.must_understand && !understood(r.status) {
        return None;
    }
    // `must-understand` overrides `no-store` for a status understood.
    if (d.no_store && !d.must_understand) || d.private {
        return None;
    }
    if p.authorization && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return None;
    }
    let date_ms = r.date.and_then(|v| http_date::parse_ms(v, now_ms));
    let explicit_ms = if let Some(s) = d.s_maxage.or(d.max_age) {
        Some(s.saturating_mul(1000))
    } else if let Some(e) = r.expires {
        let base = date_ms.unwrap_or(now_ms);
        Some(
            http_date::parse_ms(e, now_ms)
                .map(|t| t.saturating_sub(base))
                .unwrap_or(0),
        )
    } else {
        None
    };
    if !p.statuses.allows(r.status, explicit_ms.is_some(), d.public) {
        return None;
    }
    let heuristic = || -> Option<u64> {
        let fraction = p.heuristic_fraction?;
        let modified = http_date::parse_ms(r.last_modified?, now_ms)?;
        let since = date_ms.unwrap_or(now_ms).checked_sub(modified)?;
        Some((since as f64 * fraction) as u64)
    };
    // Without any lifetime, a response that can be revalidated is still
    // worth keeping: a `304` then saves sending its body again.
    let lifetime = match explicit_ms {
        Some(ms) => ms,
        None => heuristic()
            .or(p.default_ttl_ms)
            .or(r.has_validator.then_some(0))?,
    };
    let mut ttl_ms = lifetime
        .min(p.max_ttl_ms)
        .saturating_sub(r.age_s.saturating_mul(1000));
    let revalidate_always = d.no_cache;
    if revalidate_always {
        ttl_ms = 0;
    }
    if ttl_ms == 0 && !r.has_validator {
        return None;
    }
    // RFC 9111 §4.2.4: no stale answer against must-revalidate, no-cache,
    // or (for a shared cache) proxy-revalidate and s-maxage, which implies
    // it (§5.2.2.10), whatever stale-while-revalidate / stale-if-error say.
    let no_stale = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some();
    let stale = |s: Option<u64>| {
        if no_stale || revalidate_always {
            0
        } else {
            s.unwrap_or(0).saturating_mul(1000).min(p.max_ttl_ms)
        }
    };
    Some(Freshness {
        ttl_ms,
        stale_while_revalidate_ms: stale(d.stale_while_revalidate),
        stale_if_error_ms: stale(d.stale_if_error),
        keep_ms: if r.has_validator { p.max_ttl_ms } else { 0 },
    })
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
                    public: true,
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

    const NOW: u64 = 1_000_000_000_000;
    const HOUR: u64 = 3_600_000;

    fn facts<'a>(status: u16, d: &'a Directives) -> ResponseFacts<'a> {
        ResponseFacts {
            status,
            directives: d,
            expires: None,
            date: None,
            last_modified: None,
            has_validator: false,
            age_s: 0,
        }
    }

    fn policy(statuses: &Statuses) -> Policy<'_> {
        Policy {
            statuses,
            default_ttl_ms: None,
            max_ttl_ms: HOUR,
            heuristic_fraction: None,
            authorization: false,
        }
    }

    /// TTL in ms of a 200 with this `cache-control`, `Age` and default.
    fn ttl(cc: &str, age_s: u64, default_ttl_ms: Option<u64>) -> Option<u64> {
        let d = parse(cc);
        let rfc = Statuses::Rfc;
        let r = ResponseFacts {
            age_s,
            ..facts(200, &d)
        };
        let p = Policy {
            default_ttl_ms,
            ..policy(&rfc)
        };
        storable(r, p, NOW).map(|f| f.ttl_ms)
    }

    /// RFC 9111 §4.2.1: s-maxage over max-age; §5.1 age subtracted;
    /// §3: no-store, private (shared cache) not stored.
    #[test]
    fn freshness_lifetime_rfc9111_4_2_1() {
        assert_eq!(ttl("max-age=60", 0, None), Some(60_000));
        assert_eq!(ttl("max-age=60, s-maxage=5", 0, None), Some(5_000));
        assert_eq!(ttl("max-age=60", 20, None), Some(40_000));
        assert_eq!(ttl("max-age=60", 60, None), None);
        assert_eq!(ttl("max-age=999999", 0, None), Some(HOUR));
        assert_eq!(ttl("", 0, None), None);
        assert_eq!(ttl("", 0, Some(7_000)), Some(7_000));
        assert_eq!(ttl("no-store, max-age=60", 0, Some(1)), None);
        assert_eq!(ttl("private, max-age=60", 0, None), None);
        assert_eq!(
            ttl("no-cache", 0, Some(5)),
            None,
            "no validator to revalidate with"
        );
    }

    /// §5.3: Expires − Date; an invalid Expires means already expired.
    #[test]
    fn expires_rfc9111_5_3() {
        let d = parse("");
        let rfc = Statuses::Rfc;
        let with = |exp: &str, date: Option<&str>| {
            let r = ResponseFacts {
                expires: Some(exp),
                date,
                ..facts(200, &d)
            };
            let p = Policy {
                default_ttl_ms: Some(86_400_000),
                max_ttl_ms: 86_400_000 * 365,
                ..policy(&rfc)
            };
            storable(r, p, NOW).map(|f| f.ttl_ms)
        };
        let date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(with("Sun, 06 Nov 1994 08:50:37 GMT", date), Some(60_000));
        assert_eq!(with("Sunday, 06-Nov-94 08:50:37 GMT", date), Some(60_000));
        assert_eq!(with("Sun Nov  6 08:50:37 1994", date), Some(60_000));
        for bad in [
            "0",
            "Thu 18 Aug 2050 07:00:00 GMT",
            "Thu, 18 Aug 2050 7:00:00 GMT",
        ] {
            assert_eq!(with(bad, date), None, "{bad}");
        }
    }

    /// §5.1: a list-valued Age uses its first member; an invalid one is
    /// ignored; §4.2.3: the initial age includes Date's and the delay.
    #[test]
    fn age_rfc9111_5_1_and_4_2_3() {
        let h = |v: &str| vec![("age".to_string(), v.as_bytes().to_vec())];
        assert_eq!(age_value(&Headers::new(&h("7200, 0"))), Some(7200));
        assert_eq!(age_value(&Headers::new(&h(" 5 "))), Some(5));
        assert_eq!(age_value(&Headers::new(&h("-1"))), None);
        assert_eq!(age_value(&Headers::new(&h("1.5"))), None);
        assert_eq!(
            age_value(&Headers::new(&h("99999999999999999999999"))),
            Some(1 << 31)
        );
        assert_eq!(age_value(&Headers::new(&[])), None);
        assert_eq!(ttl("max-age=3600", 7200, None), None);
        // Date 10 s before the answer arrived: 9 s old even without Age
        // (one second allowed for Date's truncation).
        assert_eq!(initial_age_s(None, Some(NOW - 10_000), NOW - 500, NOW), 9);
        assert_eq!(initial_age_s(None, Some(NOW - 1_999), NOW - 10, NOW), 0);
        // Age 3 plus a 2 s exchange: 5.
        assert_eq!(initial_age_s(Some(3), Some(NOW), NOW - 2_000, NOW), 5);
        // A Date in the future does not make it younger than Age says.
        assert_eq!(initial_age_s(Some(4), Some(NOW + 60_000), NOW, NOW), 4);
    }

    /// §3, §3.3: partial and not-modified responses are not stored as
    /// entries; any final status with explicit freshness is (RFC default),
    /// others only when heuristically cacheable; listed statuses only.
    #[test]
    fn statuses_rfc9111_3() {
        let d = parse("max-age=60");
        let none = parse("");
        let rfc = Statuses::Rfc;
        let p = Policy {
            default_ttl_ms: Some(5_000),
            ..policy(&rfc)
        };
        let ok = |status, d| storable(facts(status, d), p, NOW).is_some();
        assert!(!ok(206, &d));
        assert!(!ok(304, &d));
        assert!(ok(500, &d), "explicit freshness: any final status");
        assert!(!ok(500, &none), "no heuristic for 500");
        assert!(ok(404, &none), "404 is heuristically cacheable");
        assert!(ok(500, &parse("public")), "public allows a heuristic");
        let listed = Statuses::Listed(vec![(200, 200)]);
        let lp = Policy {
            statuses: &listed,
            ..p
        };
        assert!(storable(facts(200, &none), lp, NOW).is_some());
        assert!(storable(facts(404, &d), lp, NOW).is_none());
    }

    /// §5.2.2.3 must-understand: no-store is ignored for an understood
    /// status, and an unknown status is not stored.
    #[test]
    fn must_understand_rfc9111_5_2_2_3() {
        assert_eq!(
            ttl("must-understand, no-store, max-age=60", 0, None),
            Some(60_000)
        );
        let d = parse("must-understand, max-age=60");
        let rfc = Statuses::Rfc;
        assert!(storable(facts(299, &d), policy(&rfc), NOW).is_none());
    }

    /// §3.5: an answer to a request with Authorization is stored only
    /// when public, s-maxage or must-revalidate allow it.
    #[test]
    fn authorization_rfc9111_3_5() {
        let rfc = Statuses::Rfc;
        let p = Policy {
            authorization: true,
            ..policy(&rfc)
        };
        let ok = |cc: &str| storable(facts(200, &parse(cc)), p, NOW).is_some();
        assert!(!ok("max-age=60"));
        assert!(ok("public, max-age=60"));
        assert!(ok("s-maxage=60"));
        assert!(ok("max-age=60, must-revalidate"));
        assert!(!ok("max-age=60, proxy-revalidate"), "not a §3.5 permission");
    }

    /// §4.2.2 heuristic freshness: a fraction of Date − Last-Modified,
    /// only when configured.
    #[test]
    fn heuristic_rfc9111_4_2_2() {
        let d = parse("");
        let rfc = Statuses::Rfc;
        let r = ResponseFacts {
            date: Some("Sun, 06 Nov 1994 10:00:00 GMT"),
            last_modified: Some("Sun, 06 Nov 1994 00:00:00 GMT"),
            has_validator: true,
            ..facts(200, &d)
        };
        let p = Policy {
            heuristic_fraction: Some(0.1),
            max_ttl_ms: 10 * HOUR,
            ..policy(&rfc)
        };
        assert_eq!(storable(r, p, NOW).map(|f| f.ttl_ms), Some(HOUR));
        let off = Policy {
            heuristic_fraction: None,
            ..p
        };
        // Kept for revalidation only.
        assert_eq!(storable(r, off, NOW).map(|f| f.ttl_ms), Some(0));
    }

    /// §5.2.2.4 no-cache and §5.2.2.2 must-revalidate: stored to be
    /// revalidated, never served stale.
    #[test]
    fn no_cache_and_must_revalidate() {
        let rfc = Statuses::Rfc;
        let with = |cc: &str| {
            let d = parse(cc);
            let r = ResponseFacts {
                has_validator: true,
                ..facts(200, &d)
            };
            storable(r, policy(&rfc), NOW)
        };
        let nc = with("no-cache, max-age=60, stale-while-revalidate=9").unwrap();
        assert_eq!((nc.ttl_ms, nc.stale_while_revalidate_ms), (0, 0));
        assert_eq!(nc.keep_ms, HOUR);
        let mr = with("max-age=1, must-revalidate, stale-if-error=9").unwrap();
        assert_eq!((mr.ttl_ms, mr.stale_if_error_ms), (1_000, 0));
        for cc in [
            "max-age=1, proxy-revalidate, stale-if-error=9",
            "s-maxage=1, stale-while-revalidate=9, stale-if-error=9",
        ] {
            let f = with(cc).unwrap();
            assert_eq!(
                (f.stale_while_revalidate_ms, f.stale_if_error_ms),
                (0, 0),
                "§4.2.4, §5.2.2.10: {cc}"
            );
        }
        let swr = with("max-age=1, stale-while-revalidate=5, stale-if-error=9").unwrap();
        assert_eq!(
            (swr.stale_while_revalidate_ms, swr.stale_if_error_ms),
            (5_000, 9_000)
        );
    }

    /// RFC 9213: a targeted field replaces Cache-Control for this cache.
    #[test]
    fn targeted_fields_rfc9213() {
        let h = vec![
            ("cache-control".to_string(), b"no-store".to_vec()),
            ("CDN-Cache-Control".to_string(), b"max-age=30".to_vec()),
        ];
        let targeted = vec!["cdn-cache-control".to_string()];
        let d = response_directives(&Headers::new(&h), &targeted);
        assert_eq!((d.no_store, d.max_age), (false, Some(30)));
        assert!(response_directives(&Headers::new(&h), &[]).no_store);
        // An invalid targeted field is ignored (§2.1).
        let bad = vec![
            ("cache-control".to_string(), b"private".to_vec()),
            ("cdn-cache-control".to_string(), b",".to_vec()),
        ];
        assert!(response_directives(&Headers::new(&bad), &targeted).private);
        let h2 = vec![("cache-control".to_string(), b"max-age=5".to_vec())];
        assert_eq!(
            response_directives(&Headers::new(&h2), &targeted).max_age,
            Some(5)
        );
    }
}
