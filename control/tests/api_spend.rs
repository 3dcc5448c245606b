//! Spend ingest, idempotent replay, validation, reports and window rollover.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{event, Backend, Harness, Now, ADMIN, DAY, GATEWAY, HOUR, T0};
use serde_json::json;

async fn report(h: &Harness, q: &str) -> serde_json::Value {
    let (s, v) = h
        .call("GET", &format!("/v1/spend?{q}"), Some(ADMIN), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn replayed_batch_counts_once(b: Backend) {
    let h = Harness::new(b).await;
    let evs = vec![event("acme", "a", 100, T0), event("acme", "b", 50, T0)];
    let v = h.spend("batch-1", evs.clone()).await;
    assert_eq!(
        (v["accepted"].as_i64(), v["duplicate"].as_bool()),
        (Some(2), Some(false))
    );
    let v = h.spend("batch-1", evs).await;
    assert_eq!(v["duplicate"], true);
    let r = report(&h, "tenant=acme").await;
    assert_eq!(
        (
            r["total"]["events"].as_i64(),
            r["total"]["cost_micros"].as_i64()
        ),
        (Some(2), Some(150))
    );
}

async fn invalid_event_refuses_whole_batch(b: Backend) {
    let h = Harness::new(b).await;
    let good = event("acme", "a", 10, T0);
    let mut bad_cost = event("acme", "a", 10, T0);
    bad_cost["cost_micros"] = json!(-3);
    let mut no_ts = event("acme", "a", 10, T0);
    no_ts.as_object_mut().unwrap().remove("ts");
    let mut bad_ts = event("acme", "a", 10, T0);
    bad_ts["ts"] = json!("last tuesday");
    let mut future = event("acme", "a", 10, T0);
    future["ts"] = json!(T0 + 2 * DAY);
    let mut no_tenant = event("", "a", 10, T0);
    no_tenant["tenant"] = json!("");
    let cases = [
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": [good.clone(), bad_cost]}),
            "events[1].cost_micros",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": [no_ts, good.clone()]}),
            "events[0].ts",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": [good.clone(), good.clone(), bad_ts]}),
            "events[2].ts",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": [future]}),
            "events[0].ts",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": [no_tenant]}),
            "events[0].tenant",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": []}),
            "events",
        ),
        (
            json!({"gateway_id": "g", "events": [good.clone()]}),
            "batch_id",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "", "events": [good.clone()]}),
            "gateway_id",
        ),
        (
            json!({"batch_id": "x", "gateway_id": "g", "events": [{"tenant": "a", "cost_micros": "1.5.0", "ts": T0}]}),
            "events[0].cost_micros",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = h
            .call("POST", "/v1/spend", Some(GATEWAY), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let (s, _, _) = h
        .raw("POST", "/v1/spend", Some(GATEWAY), Some("{not json".into()))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Body size is bounded (the harness sets 64 KiB).
    let many: Vec<_> = (0..2000).map(|_| good.clone()).collect();
    let body = json!({"batch_id": "big", "gateway_id": "g", "events": many});
    let (s, v) = h.call("POST", "/v1/spend", Some(GATEWAY), Some(body)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let r = report(&h, "tenant=acme").await;
    assert_eq!(r["total"]["events"], 0, "no refused event was counted");
    // The refused batch id stays usable.
    h.spend("x", vec![good]).await;
    assert_eq!(report(&h, "tenant=acme").await["total"]["events"], 1);
}

async fn report_groups_and_filters(b: Backend) {
    let h = Harness::new(b).await;
    let mut e1 = event("acme", "search", 100, T0 - HOUR);
    e1["provider"] = json!("openai");
    e1["baseline_micros"] = json!("0.000300");
    let mut e2 = event("acme", "chat", 40, T0);
    e2["provider"] = json!("anthropic");
    e2["ts"] = json!("2025-03-10T12:00:00Z");
    let mut e3 = event("acme", "chat", 60, T0 - 20 * DAY);
    e3["provider"] = json!("openai");
    h.spend("r1", vec![e1, e2, e3, event("other", "x", 999, T0)])
        .await;
    let r = report(
        &h,
        "tenant=acme&group_by=provider&from=2025-03-01&to=2025-03-11",
    )
    .await;
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{r}");
    let row = |k: &str| rows.iter().find(|x| x["key"] == k).unwrap().clone();
    assert_eq!(row("openai")["cost_micros"], 100);
    assert_eq!(row("openai")["baseline_micros"], 300);
    assert_eq!(row("openai")["savings_micros"], 200);
    assert_eq!(row("anthropic")["savings_micros"], 40);
    assert_eq!(r["total"]["cost_micros"], 140);
    // Default range: this month so far (e3 is in February).
    let r = report(&h, "tenant=acme&group_by=service").await;
    assert_eq!(r["total"]["cost_micros"], 140, "{r}");
    let r = report(
        &h,
        &format!("tenant=acme&from={}&to={}", T0 - 30 * DAY, T0 + 1),
    )
    .await;
    assert_eq!(
        (
            r["total"]["events"].as_i64(),
            r["total"]["cost_micros"].as_i64()
        ),
        (Some(3), Some(200))
    );
    for (q, field) in [
        ("group_by=nope&tenant=acme", "group_by"),
        ("tenant=&from=2025-01-01", "tenant"),
        ("group_by=week", "group_by"),
        ("tenant=acme&from=soon", "from"),
    ] {
        let (s, v) = h
            .call("GET", &format!("/v1/spend?{q}"), Some(GATEWAY), None)
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{q}: {v}"
        );
    }
}

/// Hour and day buckets (at the tenant's offset), and every tenant at once
/// grouped by tenant: the dashboard's charts.
async fn report_by_hour_day_and_tenant(b: Backend) {
    let h = Harness::new(b).await;
    let at = |ms: i64, cost: i64| event("acme", "s", cost, ms);
    let (m30, m45) = (30 * 60_000, 45 * 60_000);
    h.spend(
        "t1",
        vec![
            at(T0 - HOUR, 10),
            at(T0, 20),
            at(T0 + m45, 40),
            at(T0 - 20 * DAY, 80),
            event("other", "x", 5, T0 + m30),
        ],
    )
    .await;
    let range = format!("from={}&to={}", T0 - 2 * HOUR, T0 + 2 * HOUR);
    let r = report(&h, &format!("tenant=acme&group_by=hour&{range}")).await;
    let keys = |r: &serde_json::Value| -> Vec<(String, i64, i64, i64)> {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["key"].as_str().unwrap().to_owned(),
                    x["start_ms"].as_i64().unwrap(),
                    x["events"].as_i64().unwrap(),
                    x["cost_micros"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(&r),
        [
            ("2025-03-10T11:00:00Z".into(), T0 - HOUR, 1, 10),
            ("2025-03-10T12:00:00Z".into(), T0, 2, 60)
        ],
        "{r}"
    );
    assert_eq!(r["group_by"], "hour");
    assert_eq!(r["total"]["cost_micros"], 70);
    assert_eq!(
        r["rows"][1]["savings_micros"], 60,
        "baseline is twice the cost"
    );
    // At +05:30 hours start at :30 UTC, and keys say so.
    h.set_budget(json!({"tenant": "acme", "daily": "1", "utc_offset": "+05:30"}))
        .await;
    let r = report(&h, &format!("tenant=acme&group_by=hour&{range}")).await;
    assert_eq!(r["utc_offset_minutes"], 330);
    assert_eq!(
        keys(&r),
        [
            ("2025-03-10T16:00:00+05:30".into(), T0 - HOUR - m30, 1, 10),
            ("2025-03-10T17:00:00+05:30".into(), T0 - m30, 1, 20),
            ("2025-03-10T18:00:00+05:30".into(), T0 + m30, 1, 40)
        ],
        "{r}"
    );
    // Days at +05:30 start at 18:30Z; February's event is its own day.
    let r = report(
        &h,
        &format!("tenant=acme&group_by=day&from=2025-02-01&to={}", T0 + DAY),
    )
    .await;
    assert_eq!(
        keys(&r),
        [
            (
                "2025-02-18T00:00:00+05:30".into(),
                common::parse("2025-02-17T18:30:00Z"),
                1,
                80
            ),
            (
                "2025-03-10T00:00:00+05:30".into(),
                common::parse("2025-03-09T18:30:00Z"),
                3,
                70
            )
        ],
        "{r}"
    );
    // Every tenant: no tenant parameter, UTC buckets, from the start of the
    // UTC month by default (to now: T0).
    h.clock.set(T0 + HOUR);
    let r = report(&h, "group_by=tenant").await;
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(r["tenant"], serde_json::Value::Null);
    assert_eq!(
        rows.iter()
            .map(|x| (
                x["key"].as_str().unwrap(),
                x["cost_micros"].as_i64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("acme", 70), ("other", 5)],
        "{r}"
    );
    assert_eq!(r["total"]["cost_micros"], 75);
    let r = report(&h, "group_by=day").await;
    assert_eq!(
        keys(&r),
        [(
            "2025-03-10T00:00:00Z".into(),
            common::parse("2025-03-10"),
            4,
            75
        )],
        "{r}"
    );
    let r = report(&h, &format!("group_by=hour&{range}")).await;
    assert_eq!(r["rows"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(
        r["rows"][1]["events"], 3,
        "acme's two and other's one at 12:xx"
    );
}

async fn windows_roll_over_with_the_clock(b: Backend) {
    let h = Harness::new(b).await;
    // +05:30: the tenant's day ends at 18:30Z; T0 is 12:00Z on March 10.
    h.set_budget(json!({"tenant": "acme", "daily": "0.000100", "monthly": "0.000250", "utc_offset": "+05:30"})).await;
    h.spend("d1", vec![event("acme", "s", 100, T0)]).await;
    let st = h.state_of("acme", "").await;
    assert_eq!(
        (st["hard"].as_bool(), st["remaining_micros"].as_i64()),
        (Some(true), Some(0))
    );
    // 18:29Z is still the same tenant day.
    h.clock.set(T0 + 6 * HOUR + 29 * 60_000);
    assert_eq!(h.state_of("acme", "").await["remaining_micros"], 0);
    // 18:30Z starts a new day: the daily window is fresh, the month is not.
    h.clock.set(T0 + 6 * HOUR + 30 * 60_000);
    let st = h.state_of("acme", "").await;
    assert_eq!(
        (
            st["daily_spent_micros"].as_i64(),
            st["monthly_spent_micros"].as_i64()
        ),
        (Some(0), Some(100))
    );
    assert_eq!(
        (st["remaining_micros"].as_i64(), st["hard"].as_bool()),
        (Some(100), Some(false))
    );
    assert_eq!(st["day_ends_at_ms"], T0 + 6 * HOUR + 30 * 60_000 + DAY);
    h.spend("d2", vec![event("acme", "s", 100, h.clock.now())])
        .await;
    // Monthly: 200 of 250 spent, daily exhausted again.
    let st = h.state_of("acme", "").await;
    assert_eq!(
        (
            st["monthly_spent_micros"].as_i64(),
            st["remaining_micros"].as_i64()
        ),
        (Some(200), Some(0))
    );
    // Next month (April 1st 00:00 at +05:30 = March 31 18:30Z): all fresh.
    h.clock.set(common::parse("2025-03-31T18:30:00Z"));
    let st = h.state_of("acme", "").await;
    assert_eq!(
        (
            st["monthly_spent_micros"].as_i64(),
            st["remaining_micros"].as_i64()
        ),
        (Some(0), Some(100))
    );
    // Daily hard alerts fired once per window: days 1 and 2.
    let (_, v) = h
        .call("GET", "/v1/alerts?tenant=acme", Some(ADMIN), None)
        .await;
    let hard_daily = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["level"] == "hard" && a["window"] == "daily")
        .count();
    assert_eq!(hard_daily, 2, "{v}");
}

/// A folded sum stands for `count` requests: reports count them all.
async fn a_folded_sum_counts_as_its_requests(b: Backend) {
    let h = Harness::new(b).await;
    let mut folded = event("acme", "", 6_000, T0);
    folded["strategy"] = json!("folded");
    folded["count"] = json!(3);
    h.spend("fold-1", vec![folded, event("acme", "a", 100, T0)])
        .await;
    let r = report(&h, "tenant=acme&group_by=strategy").await;
    assert_eq!(r["total"]["events"].as_i64(), Some(4), "{r}");
    assert_eq!(r["total"]["cost_micros"].as_i64(), Some(6_100));
    let mut zero = event("acme", "a", 1, T0);
    zero["count"] = json!(0);
    let (s, v) = h
        .call(
            "POST",
            "/v1/spend",
            Some(GATEWAY),
            Some(json!({"batch_id": "z", "gateway_id": "g", "events": [zero]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("events[0].count"), "{v}");
}

crate::both_stores!(
    a_folded_sum_counts_as_its_requests,
    replayed_batch_counts_once,
    invalid_event_refuses_whole_batch,
    report_groups_and_filters,
    report_by_hour_day_and_tenant,
    windows_roll_over_with_the_clock,
);
