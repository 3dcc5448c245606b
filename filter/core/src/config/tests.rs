//! Table-driven tests of the config parser: what is accepted, and for what
//! is refused, which field the error names.

use super::*;
use crate::host::HostKind;

fn err(json: &str) -> ConfigError {
    match parse(json.as_bytes()) {
        Ok(_) => panic!("accepted invalid config: {json}"),
        Err(e) => e,
    }
}

#[test]
fn refused_configs_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"version":2}"#, "version", "unsupported version 2"),
        (r#"{}"#, "", "missing field `version`"),
        (
            r#"{"version":1,"bogus":1}"#,
            "bogus",
            "unknown field `bogus`",
        ),
        (r#"{"version":"1"}"#, "version", "invalid type"),
        (
            r#"{"version":1,"host":"nginx"}"#,
            "host",
            "unknown variant `nginx`",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/"},"sla_ms":0}]}"#,
            "routes[0].sla_ms",
            "must be > 0",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/"}},{"name":"b","match":{"prefix":"/"}},{"name":"c","match":{"prefix":"/"},"sla_ms":0}]}"#,
            "routes[2].sla_ms",
            "must be > 0",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/"},"sla_ms":-5}]}"#,
            "routes[0].sla_ms",
            "invalid value",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/"},"sla_ms":600001}]}"#,
            "routes[0].sla_ms",
            "must be <= 600000",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"api"}}]}"#,
            "routes[0].match.prefix",
            "must start with '/'",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a b","match":{"prefix":"/"}}]}"#,
            "routes[0].name",
            "must be 1-64",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/"}},{"name":"a","match":{"prefix":"/x"}}]}"#,
            "routes[1].name",
            "duplicate route name",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/","methods":["G3T"]}}]}"#,
            "routes[0].match.methods[0]",
            "is not an HTTP method",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/","hosts":["a/b"]}}]}"#,
            "routes[0].match.hosts[0]",
            "is not a host name",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/"},"priority":"urgent"}]}"#,
            "routes[0].priority",
            "unknown variant `urgent`",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a","match":{"prefix":"/","regex":".*"}}]}"#,
            "routes[0].match.regex",
            "unknown field `regex`",
        ),
        (
            r#"{"version":1,"identity":{"tenant":[{"cookie":"t"}]}}"#,
            "identity.tenant[0]",
            "unknown variant `cookie`",
        ),
        (
            r#"{"version":1,"identity":{"tenant":[{"header":"x tenant"}]}}"#,
            "identity.tenant[0].header",
            "is not a header name",
        ),
        (
            r#"{"version":1,"identity":{"service":[{"jwt_claim":""}]}}"#,
            "identity.service[0].jwt_claim",
            "must not be empty",
        ),
        (
            r#"{"version":1,"identity":{"priority_header":{"name":"x-priority","trusted":"yes"}}}"#,
            "identity.priority_header.trusted",
            "invalid type",
        ),
        (
            r#"{"version":1,"routes":[{"name":"a"}]}"#,
            "routes[0]",
            "missing field `match`",
        ),
        ("not json", "", "expected ident"),
    ];
    for (json, field, message) in cases {
        let e = err(json);
        assert_eq!(&e.field, field, "field for {json}: {e}");
        assert!(e.message.contains(message), "message for {json}: {e}");
        if !field.is_empty() {
            assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
        }
    }
}

#[test]
fn accepted_configs() {
    let c = parse(b"").unwrap();
    assert!(c.routes.is_empty());
    assert_eq!(c.host, HostKind::Envoy);
    assert_eq!(
        c.identity.tenant,
        vec![Source::Header("x-tenant-id".into())]
    );
    assert_eq!(c.identity.request_id_header, "x-request-id");
    assert!(!c.identity.priority_trusted);

    let c = parse(
        br#"{"version":1,"host":"envoy",
            "identity":{"tenant":[{"jwt_claim":"tenant"},{"header":"X-Tenant"}],
                        "priority_header":{"name":"X-Prio","trusted":true}},
            "routes":[{"name":"items","match":{"prefix":"/api/items/","methods":["get","HEAD"],"hosts":["API.example.com"]},
                       "sla_ms":1500,"priority":"high","require_tenant":true,"debug_headers":true},
                      {"name":"rest","match":{"prefix":"/"}}]}"#,
    )
    .unwrap();
    assert_eq!(c.host, HostKind::Envoy);
    assert_eq!(
        c.identity.tenant,
        vec![
            Source::JwtClaim("tenant".into()),
            Source::Header("x-tenant".into())
        ]
    );
    assert_eq!(c.identity.priority_header, "x-prio");
    assert!(c.identity.priority_trusted);
    let r = &c.routes[0];
    assert_eq!(r.matcher.methods, vec!["GET", "HEAD"]);
    assert_eq!(r.matcher.hosts, vec!["api.example.com"]);
    assert_eq!(r.sla_ms, 1500);
    assert_eq!(r.priority, Priority::High);
    assert!(r.require_tenant && r.debug_headers);
    let d = &c.routes[1];
    assert_eq!(
        (d.sla_ms, d.priority, d.require_tenant),
        (2000, Priority::Medium, false)
    );
}

/// Kong: callout targets are host:port, and rules that make a request
/// wait need somewhere to be woken from.
#[test]
fn kong_targets_and_wake() {
    let acc = r#""accounting":{"cost_control":"127.0.0.1:8081","token":"t","gateway_id":"g"}"#;
    let coalesce = r#""routes":[{"name":"a","match":{"prefix":"/"},"coalesce":{}}]"#;
    // The wake target defaults to accounting's cost-control.
    let c = parse(format!(r#"{{"version":1,"host":"kong",{acc},{coalesce}}}"#).as_bytes()).unwrap();
    assert_eq!(c.host, HostKind::Kong);
    assert_eq!(
        c.wake,
        Some(crate::config::Wake {
            target: "127.0.0.1:8081".into(),
            authority: "cost-control".into()
        })
    );
    // Or is given alone.
    let c = parse(
        format!(r#"{{"version":1,"host":"kong","wake":{{"target":"10.0.0.1:9","authority":"cc"}},{coalesce}}}"#)
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(c.wake.map(|w| w.target), Some("10.0.0.1:9".into()));
    // Parking rules without either are refused on Kong, accepted on Envoy.
    for rule in [
        r#""coalesce":{}"#,
        r#""batch":{"upstream":"127.0.0.1:1","path":"/batch","window_ms":5}"#,
        r#""limit":{"token_bucket":{"capacity":1,"refill_per_s":1}}"#,
    ] {
        let routes =
            format!(r#""routes":[{{"name":"a","match":{{"prefix":"/"}},"sla_ms":1000,{rule}}}]"#);
        let kong = format!(r#"{{"version":1,"host":"kong",{routes}}}"#);
        assert_eq!(err(&kong).field, "wake.target", "{rule}");
        let envoy = format!(r#"{{"version":1,{routes}}}"#);
        parse(envoy.as_bytes()).unwrap_or_else(|e| panic!("{rule}: {e}"));
    }
    // A rule that never waits needs none.
    parse(br#"{"version":1,"host":"kong","routes":[{"name":"a","match":{"prefix":"/"},"cache":{}},
        {"name":"b","match":{"prefix":"/b"},"limit":{"token_bucket":{"capacity":1,"refill_per_s":1},"queue_bound":0}}]}"#).unwrap();
    // Targets must be host:port on Kong.
    for (json, field) in [
        (
            r#"{"version":1,"host":"kong","routes":[{"name":"a","match":{"prefix":"/"},"cache":{"refresh":{"target":"demo_api"}}}]}"#,
            "routes[0].cache.refresh.target",
        ),
        (
            r#"{"version":1,"host":"kong","accounting":{"cost_control":"cost_control","token":"t","gateway_id":"g"}}"#,
            "accounting.cost_control",
        ),
        (
            r#"{"version":1,"host":"kong","wake":{"target":"127.0.0.1:0"},"routes":[{"name":"a","match":{"prefix":"/"},"coalesce":{}}]}"#,
            "wake.target",
        ),
        (
            r#"{"version":1,"host":"kong","wake":{"target":"h:1"},"routes":[{"name":"a","match":{"prefix":"/"},"sla_ms":1000,"batch":{"upstream":"demo_api","path":"/b","window_ms":5}}]}"#,
            "routes[0].batch.upstream",
        ),
        (
            r#"{"version":1,"wake":{"target":"h:1","port":2}}"#,
            "wake.port",
        ),
    ] {
        assert_eq!(err(json).field, field, "{json}");
    }
}

/// `statuses`: absent means what RFC 9111 allows; a list may hold
/// statuses, `"any"`, `"4xx"` and `"200-299"`; 206 and 304 are refused.
#[test]
fn cache_statuses_and_the_new_cache_fields() {
    use crate::cache::control::Statuses;
    let cache = |c: &str| {
        let cfg = parse(
            format!(
                r#"{{"version":1,"routes":[{{"name":"r","match":{{"prefix":"/"}},"cache":{c}}}]}}"#
            )
            .as_bytes(),
        );
        cfg.map(|c| c.routes[0].cache.clone().unwrap())
    };
    let c = cache("{}").unwrap();
    assert_eq!(c.statuses, Statuses::Rfc);
    assert_eq!(c.targeted_fields, vec!["cdn-cache-control".to_string()]);
    assert_eq!((c.heuristic_fraction, c.refresh.is_none()), (None, true));
    let c = cache(
        r#"{"statuses":[200,"4xx"," 500 - 503 ","ANY"],"targeted_fields":["X-Cc"],
                      "heuristic_fraction":0.1,"refresh":{"target":"up"}}"#,
    )
    .unwrap();
    assert_eq!(
        c.statuses,
        Statuses::Listed(vec![(200, 200), (400, 499), (500, 503), (200, 599)])
    );
    assert_eq!(c.targeted_fields, vec!["x-cc".to_string()]);
    assert_eq!(c.refresh.unwrap().timeout_ms, 5_000);
    for (json, field) in [
        (r#"{"statuses":[206]}"#, "routes[0].cache.statuses[0]"),
        (r#"{"statuses":[200,304]}"#, "routes[0].cache.statuses[1]"),
        (r#"{"statuses":["6xx"]}"#, "routes[0].cache.statuses[0]"),
        (r#"{"statuses":["299-200"]}"#, "routes[0].cache.statuses[0]"),
        (r#"{"statuses":["soon"]}"#, "routes[0].cache.statuses[0]"),
        (
            r#"{"targeted_fields":["cache-control"]}"#,
            "routes[0].cache.targeted_fields[0]",
        ),
        (
            r#"{"heuristic_fraction":0}"#,
            "routes[0].cache.heuristic_fraction",
        ),
        (
            r#"{"refresh":{"target":" "}}"#,
            "routes[0].cache.refresh.target",
        ),
        (
            r#"{"refresh":{"target":"a","timeout_ms":0}}"#,
            "routes[0].cache.refresh.timeout_ms",
        ),
    ] {
        assert_eq!(cache(json).unwrap_err().field, field, "{json}");
    }
}
