use super::*;
use crate::header_list::HeaderList;

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
        // RFC 9111 §1.2.2: a value too large to represent is 2^31, not
        // malformed; a sign is malformed.
        (
            "max-age=99999999999999999999999",
            Directives {
                max_age: Some(1 << 31),
                ..Default::default()
            },
        ),
        (
            "max-age=+60",
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
    assert_eq!(
        age_value(&Headers::new(&HeaderList::from(&h("7200, 0")[..]))),
        Some(7200)
    );
    assert_eq!(
        age_value(&Headers::new(&HeaderList::from(&h(" 5 ")[..]))),
        Some(5)
    );
    assert_eq!(
        age_value(&Headers::new(&HeaderList::from(&h("-1")[..]))),
        None
    );
    assert_eq!(
        age_value(&Headers::new(&HeaderList::from(&h("1.5")[..]))),
        None
    );
    assert_eq!(
        age_value(&Headers::new(&HeaderList::from(
            &h("99999999999999999999999")[..]
        ))),
        Some(1 << 31)
    );
    assert_eq!(age_value(&Headers::new(&HeaderList::default())), None);
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
    let h = [
        ("cache-control".to_string(), b"no-store".to_vec()),
        ("CDN-Cache-Control".to_string(), b"max-age=30".to_vec()),
    ];
    let targeted = vec!["cdn-cache-control".to_string()];
    let d = response_directives(&Headers::new(&HeaderList::from(&h[..])), &targeted);
    assert_eq!((d.no_store, d.max_age), (false, Some(30)));
    assert!(response_directives(&Headers::new(&HeaderList::from(&h[..])), &[]).no_store);
    // An invalid targeted field is ignored (§2.1).
    let bad = [
        ("cache-control".to_string(), b"private".to_vec()),
        ("cdn-cache-control".to_string(), b",".to_vec()),
    ];
    assert!(response_directives(&Headers::new(&HeaderList::from(&bad[..])), &targeted).private);
    let h2 = [("cache-control".to_string(), b"max-age=5".to_vec())];
    assert_eq!(
        response_directives(&Headers::new(&HeaderList::from(&h2[..])), &targeted).max_age,
        Some(5)
    );
}
