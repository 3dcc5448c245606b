//! One line on what a checked config does, so a user sees that the filter
//! read what they meant (a rule under the wrong key would have been an
//! error, but a rule with fewer strategies than intended is not).

use optimizer_core::config::Config;
use optimizer_core::host::HostKind;

/// `host kong, 2 routes: items (cache, coalesce, cost), reports (limit,
/// cost, budget); accounting -> 127.0.0.1:8081`
pub fn describe(config: &Config) -> String {
    let host = match config.host {
        HostKind::Envoy => "envoy",
        HostKind::Kong => "kong",
    };
    let routes: Vec<String> = config
        .routes
        .iter()
        .map(|r| {
            let mut parts = Vec::new();
            for (on, what) in [
                (r.cache.is_some(), "cache"),
                (r.coalesce.is_some(), "coalesce"),
                (r.limit.is_some(), "limit"),
                (r.batch.is_some(), "batch"),
                (r.routing.is_some(), "routing"),
                (r.prompt.is_some(), "prompt"),
                (r.cost.is_some(), "cost"),
                (
                    r.cost.as_ref().is_some_and(|c| c.budget.is_some()),
                    "budget",
                ),
            ] {
                if on {
                    parts.push(what);
                }
            }
            if parts.is_empty() {
                r.name.clone()
            } else {
                format!("{} ({})", r.name, parts.join(", "))
            }
        })
        .collect();
    let n = config.routes.len();
    let mut out = format!(
        "host {host}, {n} route{}{}{}",
        if n == 1 { "" } else { "s" },
        if n == 0 { "" } else { ": " },
        routes.join(", ")
    );
    match &config.accounting {
        Some(a) => out.push_str(&format!("; accounting -> {}", a.cost_control)),
        None => out.push_str("; no accounting"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer_core::config::parse;

    #[test]
    fn names_routes_their_strategies_and_the_link_to_cost_control() {
        let c = parse(
            br#"{"version": 1, "host": "kong",
                 "accounting": {"cost_control": "127.0.0.1:8081", "token": "t", "gateway_id": "g"},
                 "routes": [
                   {"name": "items", "match": {"prefix": "/a"}, "cache": {}, "coalesce": {}},
                   {"name": "reports", "match": {"prefix": "/r"},
                    "limit": {"token_bucket": {"capacity": 1, "refill_per_s": 1}},
                    "cost": {"cost_per_call": "0.1", "budget": {}}},
                   {"name": "plain", "match": {"prefix": "/"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            describe(&c),
            "host kong, 3 routes: items (cache, coalesce), reports (limit, cost, budget), plain; \
             accounting -> 127.0.0.1:8081"
        );
        assert_eq!(
            describe(&parse(b"").unwrap()),
            "host envoy, 0 routes; no accounting"
        );
    }
}
