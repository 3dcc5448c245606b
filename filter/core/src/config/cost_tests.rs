//! The `accounting` block and each rule's `cost` block: accepted shapes,
//! and the field each refusal names.

use super::*;

const ACC: &str =
    r#""accounting":{"cost_control":"cost_control","token":"gw-token","gateway_id":"gw-1"}"#;

fn route(cost: &str) -> String {
    format!(
        r#"{{"version":1,{ACC},"routes":[{{"name":"paid","match":{{"prefix":"/"}},"cost":{cost}}}]}}"#
    )
}

#[test]
fn prices_read_as_exact_micros() {
    let c = parse(
        route(
            r#"{"cost_per_call":0.002,"batch":{"per_batch":"0.001","per_member":"0.0002"},
                "tokens":{"models":{"m":{"prompt_per_1k":"0.5","completion_per_1k":1.5}},"default_model":"m"},
                "budget":{"estimate":"0.01","on_unavailable":"fail_closed"}}"#,
        )
        .as_bytes(),
    )
    .unwrap();
    let cost = c.routes[0].cost.as_ref().unwrap();
    assert_eq!(cost.provider, "paid", "defaults to the rule's name");
    assert_eq!(cost.cost_per_call_micros, 2_000);
    assert_eq!(cost.batch.unwrap().per_member_micros, 200);
    assert_eq!(
        cost.tokens.as_ref().unwrap().models["m"],
        (500_000, 1_500_000)
    );
    let b = cost.budget.as_ref().unwrap();
    assert_eq!(b.estimate_micros, 10_000);
    assert_eq!(b.on_unavailable, OnUnavailable::FailClosed);
    assert_eq!(b.fail_open_credit_micros, 50_000);
    let acc = c.accounting.clone().unwrap();
    assert_eq!(acc.budgets.lease_micros, 20_000);
    assert_eq!(acc.budgets.low_water_micros(), 10_000);
    assert_eq!(acc.flush_ms, 1_000);
    assert_eq!(acc.purge_poll_ms, 1_000, "purges are polled by default");
    assert_eq!(
        c.idle_tick_ms(),
        Some(1_000),
        "no cache rule: nothing to poll"
    );
    assert!(c.purge_poll().is_none());
}

#[test]
fn purges_are_polled_with_a_cache_rule_and_the_timer_ticks_four_times_per_interval() {
    let cfg = |acc: &str, cache: bool| {
        let cache = if cache { r#","cache":{}"# } else { "" };
        parse(
            format!(
                r#"{{"version":1,"accounting":{{"cost_control":"cc","token":"t","gateway_id":"g",{acc}}},
                    "routes":[{{"name":"r","match":{{"prefix":"/"}}{cache}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    };
    let c = cfg(r#""flush_ms":500,"purge_poll_ms":200"#, true);
    assert_eq!(c.purge_poll().map(|a| a.purge_poll_ms), Some(200));
    assert_eq!(c.idle_tick_ms(), Some(50));
    let c = cfg(r#""flush_ms":500"#, true);
    assert_eq!(c.idle_tick_ms(), Some(250), "default: every second");
    let c = cfg(r#""flush_ms":500,"purge_poll_ms":0"#, true);
    assert!(c.purge_poll().is_none(), "0: off");
    assert_eq!(c.idle_tick_ms(), Some(500));
    let c = cfg(r#""flush_ms":100,"purge_poll_ms":3600000"#, true);
    assert_eq!(c.idle_tick_ms(), Some(100));
    assert_eq!(parse(br#"{"version":1}"#).unwrap().idle_tick_ms(), None);
}

#[test]
fn refusals_name_the_field() {
    let cases: Vec<(String, &str)> = vec![
        (route(r#"{"cost_per_call":"-1"}"#), "routes[0].cost.cost_per_call"),
        (route(r#"{"cost_per_call":"0.0000001"}"#), "routes[0].cost.cost_per_call"),
        (route(r#"{"cost_per_call":"abc"}"#), "routes[0].cost.cost_per_call"),
        (
            route(r#"{"cost_per_call":"1","tokens":{"models":{}}}"#),
            "routes[0].cost.tokens.models",
        ),
        (
            route(r#"{"cost_per_call":"1","tokens":{"models":{"m":{"prompt_per_1k":"1","completion_per_1k":"1"}},"default_model":"x"}}"#),
            "routes[0].cost.tokens.default_model",
        ),
        (
            route(r#"{"cost_per_call":"1","tokens":{"models":{"m":{"prompt_per_1k":"1","completion_per_1k":"1"}}},"budget":{}}"#),
            "routes[0].cost.budget.estimate",
        ),
        (
            r#"{"version":1,"routes":[{"name":"p","match":{"prefix":"/"},"cost":{"cost_per_call":"1","budget":{}}}]}"#.to_string(),
            "routes[0].cost.budget",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"bad id"}}"#.to_string(),
            "accounting.gateway_id",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","max_events":100,"max_buffer_events":10}}"#.to_string(),
            "accounting.max_buffer_events",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","budgets":{"lease":"0"}}}"#.to_string(),
            "accounting.budgets.lease",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","budgets":{"low_water_percent":100}}}"#.to_string(),
            "accounting.budgets.low_water_percent",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","gateway_id":"g"}}"#.to_string(),
            "accounting",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","purge_poll_ms":99}}"#.to_string(),
            "accounting.purge_poll_ms",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","purge_poll_ms":3600001}}"#.to_string(),
            "accounting.purge_poll_ms",
        ),
        (
            r#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","purge_poll_ms":-1}}"#.to_string(),
            "accounting.purge_poll_ms",
        ),
    ];
    for (json, field) in cases {
        match parse(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => assert_eq!(e.field, field, "{json}: {e}"),
        }
    }
}
