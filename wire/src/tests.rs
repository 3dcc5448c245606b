//! Every wire type goes out the way the filter writes it (borrowed
//! strings, integers) and comes back the way `cost-control` reads it
//! (owned strings, every field). The destructuring has no `..`, so a field
//! added to a type does not compile here until this test covers it.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde::Serialize;

use super::*;

fn own(s: &str) -> String {
    s.to_string()
}

fn back<T: Serialize, U: serde::de::DeserializeOwned>(v: &T) -> (U, String) {
    let text = serde_json::to_string(v).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

#[test]
fn spend_batch_round_trips_from_borrowed_to_owned() {
    let event = |count, allowance, baseline| SpendEvent {
        tenant: "acme",
        service: "llm",
        route: "/v1/chat",
        provider: "openai",
        strategy: "cache",
        cost_micros: Micros(2_000),
        baseline_micros: baseline,
        ts: Ts::Ms(1_700_000_000_000),
        allowance_id: allowance,
        count,
    };
    let sent = SpendBatch {
        batch_id: "gw-1",
        gateway_id: "gw",
        events: vec![
            event(None, None, Some(Micros(5_000))),
            event(Some(7), Some("lease-1"), None),
        ],
    };
    let (got, text): (SpendBatch<String>, _) = back(&sent);
    assert!(!text.contains("null"), "absent fields are left out: {text}");
    let SpendBatch {
        batch_id,
        gateway_id,
        events,
    } = got;
    assert_eq!((batch_id.as_str(), gateway_id.as_str()), ("gw-1", "gw"));
    assert_eq!(events.len(), 2);
    for (got, sent) in events.into_iter().zip(&sent.events) {
        let SpendEvent {
            tenant,
            service,
            route,
            provider,
            strategy,
            cost_micros,
            baseline_micros,
            ts,
            allowance_id,
            count,
        } = got;
        assert_eq!(tenant, sent.tenant);
        assert_eq!(service, sent.service);
        assert_eq!(route, sent.route);
        assert_eq!(provider, sent.provider);
        assert_eq!(strategy, sent.strategy);
        assert_eq!(cost_micros, sent.cost_micros);
        assert_eq!(baseline_micros, sent.baseline_micros);
        assert_eq!(ts, Ts::Ms(1_700_000_000_000));
        assert_eq!(allowance_id.as_deref(), sent.allowance_id);
        assert_eq!(count, sent.count);
    }
}

#[test]
fn spend_event_reads_what_cost_control_accepts_beyond_the_filter() {
    let e: SpendEvent<String> = serde_json::from_str(
        r#"{"tenant":"t","cost_micros":"0.25","baseline_micros":null,"ts":"2024-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(e.cost_micros, Micros(250_000));
    assert_eq!(e.baseline_micros, None);
    assert_eq!(e.ts, Ts::Text(own("2024-01-01T00:00:00Z")));
    assert_eq!((e.service.as_str(), e.count), ("", None));
    for bad in [
        r#"-1"#,
        r#""-0.5""#,
        r#""1e3""#,
        r#"true"#,
        r#"9223372036854775808"#,
    ] {
        let body = alloc::format!(r#"{{"tenant":"t","cost_micros":{bad},"ts":1}}"#);
        assert!(
            serde_json::from_str::<SpendEvent<String>>(&body).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn allowance_request_and_grant_round_trip() {
    let sent = AllowanceRequest {
        gateway_id: "gw",
        tenant: "acme",
        service: "",
        want_micros: Micros(20_000),
        ttl_secs: Some(60),
    };
    let (got, text): (AllowanceRequest<String>, _) = back(&sent);
    assert!(!text.contains("service"), "{text}");
    let AllowanceRequest {
        gateway_id,
        tenant,
        service,
        want_micros,
        ttl_secs,
    } = got;
    assert_eq!((gateway_id.as_str(), tenant.as_str()), ("gw", "acme"));
    assert_eq!(
        (service.as_str(), want_micros, ttl_secs),
        ("", Micros(20_000), Some(60))
    );

    let sent = AllowanceGrant {
        allowance_id: Some(own("a-1")),
        tenant: own("acme"),
        service: own("llm"),
        gateway_id: own("gw"),
        granted_micros: 20_000,
        expires_at_ms: 1_700_000_060_000,
        remaining_micros: None,
        soft: true,
        hard: false,
    };
    let (got, _): (AllowanceGrant, _) = back(&sent);
    let AllowanceGrant {
        allowance_id,
        tenant,
        service,
        gateway_id,
        granted_micros,
        expires_at_ms,
        remaining_micros,
        soft,
        hard,
    } = got.clone();
    assert_eq!(allowance_id, sent.allowance_id);
    assert_eq!(
        (tenant, service, gateway_id),
        (own("acme"), own("llm"), own("gw"))
    );
    assert_eq!((granted_micros, expires_at_ms), (20_000, 1_700_000_060_000));
    assert_eq!((remaining_micros, soft, hard), (None, true, false));
    assert_eq!(got, sent);
    // Nothing granted: only the amount is required. The filter skips the names.
    let none: AllowanceGrant = serde_json::from_str(r#"{"granted_micros":0}"#).unwrap();
    assert_eq!(none.allowance_id, None);
    let text = serde_json::to_string(&sent).unwrap();
    let filter: AllowanceGrant<serde::de::IgnoredAny> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (filter.allowance_id, filter.granted_micros),
        (sent.allowance_id.clone(), 20_000)
    );
}

#[test]
fn snapshot_round_trips_and_reads_purges_one_by_one() {
    let tenant = TenantState {
        tenant: own("acme"),
        service: String::new(),
        daily_limit_micros: Some(1_000_000),
        monthly_limit_micros: None,
        soft_limit_percent: 80,
        utc_offset_minutes: -300,
        daily_spent_micros: 10,
        monthly_spent_micros: 20,
        outstanding_micros: 30,
        remaining_micros: 40,
        soft: false,
        hard: false,
        day_ends_at_ms: 50,
        month_ends_at_ms: 60,
    };
    let purge = |kind| PurgeEntry {
        tenant: own("acme"),
        kind,
        value: own("/docs"),
        generation: 3,
    };
    let sent: Snapshot = Snapshot {
        version: own("7.28000000"),
        generated_at_ms: 1_700_000_000_000,
        tenants: vec![tenant],
        purges: vec![
            purge(PurgeKind::Prefix),
            purge(PurgeKind::Tag),
            purge(PurgeKind::Key),
        ],
    };
    let (got, text): (Snapshot, _) = back(&sent);
    let Snapshot {
        version,
        generated_at_ms,
        tenants,
        purges,
    } = got;
    assert_eq!(
        (version, generated_at_ms),
        (sent.version.clone(), sent.generated_at_ms)
    );
    let TenantState {
        tenant,
        service,
        daily_limit_micros,
        monthly_limit_micros,
        soft_limit_percent,
        utc_offset_minutes,
        daily_spent_micros,
        monthly_spent_micros,
        outstanding_micros,
        remaining_micros,
        soft,
        hard,
        day_ends_at_ms,
        month_ends_at_ms,
    } = tenants[0].clone();
    assert_eq!(
        TenantState {
            tenant,
            service,
            daily_limit_micros,
            monthly_limit_micros,
            soft_limit_percent,
            utc_offset_minutes,
            daily_spent_micros,
            monthly_spent_micros,
            outstanding_micros,
            remaining_micros,
            soft,
            hard,
            day_ends_at_ms,
            month_ends_at_ms,
        },
        sent.tenants[0]
    );
    for (got, sent) in purges.iter().zip(&sent.purges) {
        let PurgeEntry {
            tenant,
            kind,
            value,
            generation,
        } = got;
        assert_eq!(
            (tenant, *kind, value, *generation),
            (&sent.tenant, sent.kind, &sent.value, 3)
        );
        assert_eq!(PurgeKind::parse(kind.as_str()), Some(*kind));
    }
    // The filter's reading: tenants ignored, each purge read on its own.
    let lenient: Snapshot<serde::de::IgnoredAny, serde_json::Value> =
        serde_json::from_str(&text.replace("\"tag\"", "\"soundex\"")).unwrap();
    let read: Vec<Option<PurgeEntry>> = lenient
        .purges
        .into_iter()
        .map(|v| serde_json::from_value::<PurgeEntry<String>>(v).ok())
        .map(|p| {
            let p = p?;
            Some(PurgeEntry {
                kind: PurgeKind::parse(&p.kind)?,
                tenant: p.tenant,
                value: p.value,
                generation: p.generation,
            })
        })
        .collect();
    assert_eq!(read.iter().filter(|p| p.is_none()).count(), 1);
    assert_eq!(read[2].as_ref().map(|p| p.kind), Some(PurgeKind::Key));
}

#[test]
fn money_text_and_integers_round_trip() {
    for micros in [0, 1, 999_999, 1_000_000, 12_500_000, u64::MAX] {
        assert_eq!(money::parse_usd(&money::format_usd(micros)), Ok(micros));
    }
    assert_eq!(money::parse_usd(".5"), Ok(500_000));
    assert_eq!(
        money::parse_usd("0.0000001"),
        Err(money::UsdError::TooManyDecimals)
    );
    assert_eq!(money::parse_usd("-1"), Err(money::UsdError::NotDecimal));
    assert_eq!(
        money::parse_usd("18446744073709.551616"),
        Err(money::UsdError::TooLarge)
    );
    assert_eq!(money::parse_signed_usd(" -1.25 "), Ok(-1_250_000));
    let m: Micros = serde_json::from_str(r#""12.50""#).unwrap();
    assert_eq!(
        (m, serde_json::to_string(&m).unwrap()),
        (Micros(12_500_000), own("12500000"))
    );
}

#[test]
fn civil_dates_round_trip() {
    for z in -800_000..800_000 {
        let (y, m, d) = civil::civil_from_days(z);
        assert_eq!(civil::days_from_civil(y, m, d), z);
    }
    assert_eq!(civil::civil_from_days(0), (1970, 1, 1));
    assert_eq!(
        civil::days_from_civil(2024, 3, 1) - civil::days_from_civil(2024, 2, 1),
        29
    );
}

#[test]
fn an_absent_amount_is_a_missing_field() {
    let e = serde_json::from_str::<SpendEvent<String>>(r#"{"tenant":"t","ts":1}"#).unwrap_err();
    assert!(
        e.to_string().starts_with("missing field `cost_micros`"),
        "{e}"
    );
    let e = serde_json::from_str::<AllowanceRequest<String>>(r#"{"gateway_id":"g","tenant":"t"}"#)
        .unwrap_err();
    assert!(
        e.to_string().starts_with("missing field `want_micros`"),
        "{e}"
    );
}
