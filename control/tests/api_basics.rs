//! Ops routes, auth, budgets and validation, against both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{event, Backend, Harness, ADMIN, GATEWAY, T0};
use serde_json::json;

async fn ops_routes(b: Backend) {
    let h = Harness::new(b).await;
    let (s, v) = h.call("GET", "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = h.call("GET", "/readyz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));
    h.spend("m1", vec![event("acme", "s", 5, T0)]).await;
    let (s, _, body) = h.raw("GET", "/metrics", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("cost_control_spend_events_total 1"), "{text}");
    assert!(text.contains("cost_control_http_requests_total{method=\"POST\",route=\"/v1/spend\",status=\"200\"} 1"), "{text}");
    // The wake call of a waiting Kong request: answers after the delay,
    // refuses a missing or too long one.
    let t = std::time::Instant::now();
    let (s, _, body) = h.raw("GET", "/v1/wake?after_ms=30", None, None).await;
    assert_eq!((s, body.len()), (StatusCode::NO_CONTENT, 0));
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(30),
        "{:?}",
        t.elapsed()
    );
    for bad in ["/v1/wake", "/v1/wake?after_ms=1001", "/v1/wake?after_ms=x"] {
        let (s, _, _) = h.raw("GET", bad, None, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn openapi_matches_checked_in_file(b: Backend) {
    let h = Harness::new(b).await;
    let (s, served) = h.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(served, file, "control/openapi.json is stale: regenerate with `cost-control openapi > control/openapi.json`");
    for (method, route) in cost_control::api::ROUTES {
        assert!(
            served["paths"][route][method].is_object(),
            "{method} {route} is not documented"
        );
    }
}

async fn auth_failures(b: Backend) {
    let h = Harness::new(b).await;
    let budget = json!({"tenant": "acme", "daily_limit_micros": 10});
    let batch = json!({"batch_id": "a1", "gateway_id": "g", "events": [event("acme", "", 1, T0)]});
    let grant = json!({"gateway_id": "g", "tenant": "acme", "want_micros": 1});
    let purge = json!({"tenant": "acme", "prefix": "/x"});
    let cases: Vec<(&str, &str, Option<serde_json::Value>, &str)> = vec![
        // (method, path, body, the one role allowed or "any")
        ("PUT", "/v1/budgets", Some(budget), "admin"),
        ("POST", "/v1/purge", Some(purge), "admin"),
        ("POST", "/v1/spend", Some(batch), "gateway"),
        ("POST", "/v1/allowances", Some(grant), "gateway"),
        ("DELETE", "/v1/allowances/nope", None, "gateway"),
        ("GET", "/v1/snapshot", None, "gateway"),
        ("GET", "/v1/budgets", None, "any"),
        ("GET", "/v1/alerts", None, "any"),
        ("GET", "/v1/spend?tenant=acme", None, "any"),
    ];
    for (m, p, body, allowed) in cases {
        for token in [None, Some("wrong-token")] {
            let (s, v) = h.call(m, p, token, body.clone()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p} with {token:?}");
            assert!(v["error"].is_string());
        }
        let (s, _, _) = h.raw(m, p, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let wrong = match allowed {
            "admin" => Some(GATEWAY),
            "gateway" => Some(ADMIN),
            _ => None,
        };
        if let Some(t) = wrong {
            let (s, v) = h.call(m, p, Some(t), body.clone()).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p}: {v}");
        }
        let right = if allowed == "admin" { ADMIN } else { GATEWAY };
        let (s, v) = h.call(m, p, Some(right), body).await;
        assert!(
            s.is_success() || s == StatusCode::NOT_FOUND,
            "{m} {p}: {s} {v}"
        );
    }
    // A non-Bearer scheme is refused too.
    let (s, _, _) = h.raw("GET", "/v1/budgets", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn budgets_take_decimal_strings_and_offsets(b: Backend) {
    let h = Harness::new(b).await;
    let v = h
        .set_budget(json!({"tenant": "acme", "daily": "12.50", "monthly": 1000000000, "utc_offset": "+05:30"}))
        .await;
    assert_eq!(v["daily_limit_micros"], 12_500_000);
    assert_eq!(v["monthly_limit_micros"], 1_000_000_000);
    assert_eq!(v["soft_limit_percent"], 90);
    assert_eq!(v["utc_offset_minutes"], 330);
    assert_eq!(v["remaining_micros"], 12_500_000);
    // A service budget without an offset keeps the tenant's.
    let v = h
        .set_budget(json!({"tenant": "acme", "service": "search", "daily_limit_micros": "1", "soft_limit_percent": 50}))
        .await;
    assert_eq!(
        (
            v["utc_offset_minutes"].as_i64(),
            v["soft_limit_percent"].as_i64()
        ),
        (Some(330), Some(50))
    );
    let (s, v) = h
        .call("GET", "/v1/budgets?tenant=acme", Some(GATEWAY), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["budgets"].as_array().unwrap().len(), 2);
    let (_, all) = h.call("GET", "/v1/budgets", Some(ADMIN), None).await;
    assert_eq!(all["budgets"].as_array().unwrap().len(), 2);
}

async fn budget_validation_names_the_field(b: Backend) {
    let h = Harness::new(b).await;
    let cases = [
        (json!({"daily_limit_micros": 1}), "tenant"),
        (json!({"tenant": "", "daily_limit_micros": 1}), "tenant"),
        (json!({"tenant": "a"}), "daily_limit_micros"),
        (
            json!({"tenant": "a", "daily_limit_micros": "12.3456789"}),
            "daily_limit_micros",
        ),
        (
            json!({"tenant": "a", "monthly_limit_micros": -5}),
            "monthly_limit_micros",
        ),
        (
            json!({"tenant": "a", "daily_limit_micros": 1, "soft_limit_percent": 0}),
            "soft_limit_percent",
        ),
        (
            json!({"tenant": "a", "daily_limit_micros": 1, "soft_limit_percent": 300}),
            "soft_limit_percent",
        ),
        (
            json!({"tenant": "a", "daily_limit_micros": 1, "utc_offset": "+25:00"}),
            "utc_offset",
        ),
        (json!({"tenant": 7, "daily_limit_micros": 1}), "tenant"),
    ];
    for (body, field) in cases {
        let (s, v) = h
            .call("PUT", "/v1/budgets", Some(ADMIN), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["field"], field, "{body} -> {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (s, v) = h.call("PUT", "/v1/budgets", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, v) = h.call("GET", "/v1/budgets", Some(ADMIN), None).await;
    assert_eq!(v["budgets"], json!([]), "nothing invalid was stored");
}

/// Every write route parses its body through the one extractor: a wrong
/// type, a missing field and text that is not JSON are each the documented
/// 400 `{"error", "field"}`.
async fn write_routes_answer_body_errors_alike(b: Backend) {
    let h = Harness::new(b).await;
    let routes = [
        ("PUT", "/v1/budgets", ADMIN, "tenant"),
        ("POST", "/v1/spend", GATEWAY, "batch_id"),
        ("POST", "/v1/allowances", GATEWAY, "gateway_id"),
        ("POST", "/v1/purge", ADMIN, "tenant"),
    ];
    for (method, path, token, first) in routes {
        let cases = [
            (format!("{{\"{first}\": 7}}"), first.to_owned()),
            ("{}".to_owned(), first.to_owned()),
            ("not json".to_owned(), String::new()),
            (String::new(), String::new()),
        ];
        for (body, field) in cases {
            let (s, _, bytes) = h.raw(method, path, Some(token), Some(body.clone())).await;
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "{method} {path} {body:?} -> {v}"
            );
            assert_eq!(
                v["field"],
                field.as_str(),
                "{method} {path} {body:?} -> {v}"
            );
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
    }
}

/// Valid bodies of every write route cut off at every byte: each prefix is
/// the documented 400 `{"error", "field"}` (the field is where the body
/// ended: `""` between fields, `events[0].tenant` inside one), and nothing
/// is stored.
async fn truncated_bodies_are_refused(b: Backend) {
    let h = Harness::new(b).await;
    let bodies = [
        (
            "PUT",
            "/v1/budgets",
            ADMIN,
            json!({"tenant": "acme", "service": "s", "daily_limit_micros": "12.50", "utc_offset": "+05:30"}),
        ),
        (
            "POST",
            "/v1/spend",
            GATEWAY,
            json!({"batch_id": "b1", "gateway_id": "g", "events": [event("acme", "s", 5, T0), event("acme", "t", 7, T0)]}),
        ),
        (
            "POST",
            "/v1/allowances",
            GATEWAY,
            json!({"gateway_id": "g", "tenant": "acme", "service": "s", "want_micros": 100, "ttl_secs": 30}),
        ),
        (
            "POST",
            "/v1/purge",
            ADMIN,
            json!({"tenant": "acme", "prefix": "/api/items"}),
        ),
    ];
    let mut fields = std::collections::BTreeSet::new();
    for (method, path, token, body) in &bodies {
        let text = body.to_string();
        for cut in 0..text.len() {
            let part = &text[..cut];
            let (s, _, bytes) = h.raw(method, path, Some(token), Some(part.into())).await;
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "{method} {path} {part:?} -> {v}"
            );
            let field = v["field"]
                .as_str()
                .unwrap_or_else(|| panic!("{part:?} -> {v}"));
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
            fields.insert(field.to_owned());
        }
    }
    // Cuts inside a value name it, with its path.
    for f in [
        "",
        "tenant",
        "events[1].tenant",
        "events[0].cost_micros",
        "want_micros",
    ] {
        assert!(fields.contains(f), "{f:?} not among {fields:?}");
    }
    let (_, v) = h.call("GET", "/v1/budgets", Some(ADMIN), None).await;
    assert_eq!(v["budgets"], json!([]));
    let (_, v) = h
        .call("GET", &format!("/v1/spend?from={T0}"), Some(ADMIN), None)
        .await;
    assert_eq!(v["total"]["events"], 0, "{v}");
    let (_, v) = h.call("GET", "/v1/snapshot", Some(GATEWAY), None).await;
    assert_eq!(v["purges"], json!([]), "{v}");
    assert_eq!(v["tenants"], json!([]), "{v}");
}

/// Over a real socket: a `Content-Length` longer than the body sent, then
/// the client closes its side, is a 400 (the body could not be read, field
/// `""`); a `Content-Length` shorter than the body is a 400 for the cut
/// body; nothing is stored either way.
async fn content_length_mismatch_stores_nothing(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::new(b).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let batch = json!({"batch_id": "cl", "gateway_id": "g", "events": [event("acme", "s", 5, T0)]})
        .to_string();
    let budget = json!({"tenant": "acme", "daily_limit_micros": 10}).to_string();
    let send = |method: &'static str,
                path: &'static str,
                token: &'static str,
                body: String,
                declared: usize| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(body.as_bytes()).await.unwrap();
        if declared > body.len() {
            // Nothing more is coming: say so.
            c.shutdown().await.unwrap();
        }
        let mut out = Vec::new();
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut out)).await;
        assert!(
            read.is_ok(),
            "the server neither answered nor closed in 10 s"
        );
        String::from_utf8_lossy(&out).into_owned()
    };
    for (method, path, token, body) in [
        ("POST", "/v1/spend", GATEWAY, batch.clone()),
        ("PUT", "/v1/budgets", ADMIN, budget.clone()),
    ] {
        for extra in [1, 100] {
            let answer = send(method, path, token, body.clone(), body.len() + extra).await;
            assert!(
                answer.starts_with("HTTP/1.1 400") && answer.contains(r#""field":"""#),
                "{method} {path} declared +{extra}: {answer:?}"
            );
        }
        // Declared shorter: the server reads a cut body.
        let answer = send(method, path, token, body.clone(), body.len() - 3).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{method} {path} declared -3: {answer:?}"
        );
        assert!(answer.contains("\"field\""), "{answer:?}");
    }
    let (_, v) = h.call("GET", "/v1/budgets", Some(ADMIN), None).await;
    assert_eq!(v["budgets"], json!([]));
    let (_, v) = h
        .call("GET", &format!("/v1/spend?from={T0}"), Some(ADMIN), None)
        .await;
    assert_eq!(v["total"]["events"], 0, "{v}");
    // The same request whole is taken, so the ones above failed for their length.
    let answer = send("POST", "/v1/spend", GATEWAY, batch.clone(), batch.len()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

crate::both_stores!(
    truncated_bodies_are_refused,
    content_length_mismatch_stores_nothing,
    write_routes_answer_body_errors_alike,
    ops_routes,
    openapi_matches_checked_in_file,
    auth_failures,
    budgets_take_decimal_strings_and_offsets,
    budget_validation_names_the_field,
);
