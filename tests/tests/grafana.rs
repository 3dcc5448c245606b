//! Issue 20: the Grafana dashboard (`envoy/grafana/cost-optimizer.json`)
//! queries only metrics that exist. Every metric name in its PromQL, and
//! every label it groups or matches by, is looked up in a live scrape of
//! the e2e stack (the shipped `envoy/envoy.yaml` with the built filter,
//! after real traffic): Envoy's `/stats/prometheus` and cost-control's
//! `/metrics`. A renamed counter or stats tag fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e::http;
use e2e::procs::{repo_root, wait_for};
use e2e::stack::Stack;
use serde_json::Value;

const DASHBOARD: &str = "envoy/grafana/cost-optimizer.json";

/// PromQL functions and aggregations the dashboard may use: an identifier
/// followed by `(` must be one of these (anything else fails the test).
const FUNCTIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "rate",
    "irate",
    "increase",
    "delta",
    "clamp_min",
    "clamp_max",
    "abs",
    "round",
];
/// Words that are neither metrics nor functions.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];

#[derive(Debug, Default)]
struct Query {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names and label names of one PromQL expression: strings and
/// `[...]` ranges skipped, label names taken from `{...}` matchers and
/// `by (...)` / `without (...)` / `on (...)` clauses.
fn parse(expr: &str) -> Query {
    let c: Vec<char> = expr.chars().collect();
    let mut q = Query::default();
    let mut i = 0;
    let word_at = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < c.len() && ident_char(c[j]) {
            j += 1;
        }
        (c[i..j].iter().collect(), j)
    };
    let skip_ws = |mut j: usize| {
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let skip_string = |j: usize| {
        let quote = c[j];
        let mut k = j + 1;
        while k < c.len() && c[k] != quote {
            k += if c[k] == '\\' { 2 } else { 1 };
        }
        k + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(i);
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if ch == '{' {
            // Matchers: label op "value", ...
            i += 1;
            while i < c.len() && c[i] != '}' {
                if ident_start(c[i]) {
                    let (w, j) = word_at(i);
                    q.labels.insert(w);
                    i = j;
                } else if c[i] == '"' {
                    i = skip_string(i);
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if ch.is_ascii_digit() || (ch == '.' && i + 1 < c.len() && c[i + 1].is_ascii_digit())
        {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch == '$' {
            // A Grafana variable ($__range, ${datasource}).
            i += 1;
            while i < c.len() && (ident_char(c[i]) || c[i] == '{' || c[i] == '}') {
                i += 1;
            }
        } else if ident_start(ch) {
            let (w, j) = word_at(i);
            let next = skip_ws(j);
            let paren = next < c.len() && c[next] == '(';
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&w.as_str())
                && paren
            {
                let mut k = next + 1;
                while k < c.len() && c[k] != ')' {
                    if ident_start(c[k]) {
                        let (l, e) = word_at(k);
                        q.labels.insert(l);
                        k = e;
                    } else {
                        k += 1;
                    }
                }
                i = k + 1;
                continue;
            }
            if paren {
                assert!(
                    FUNCTIONS.contains(&w.as_str()),
                    "unknown function {w} in {expr} (add it to FUNCTIONS if it is one)"
                );
            } else if !KEYWORDS.contains(&w.as_str()) && !FUNCTIONS.contains(&w.as_str()) {
                q.metrics.insert(w);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    q
}

/// Every `expr` of every panel (rows' nested panels included), with its
/// panel's title.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or_default().to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a target of {title} has no expr"));
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{title}: a query bound to one data source"
                );
                out.push((title.clone(), expr.to_owned()));
            }
            walk(&p["panels"], out);
        }
    }
    walk(&dashboard["panels"], &mut out);
    out
}

/// Metric name -> the label names its samples carry, from a Prometheus
/// text scrape (samples only: a `# TYPE` line alone is not a metric).
fn scrape(text: &str, into: &mut BTreeMap<String, BTreeSet<String>>) {
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = into.entry(line[..end].to_owned()).or_default();
        if line[end..].starts_with('{') {
            let body = &line[end + 1..line.rfind('}').unwrap()];
            let mut rest = body;
            while let Some(eq) = rest.find('=') {
                labels.insert(rest[..eq].trim_start_matches(',').trim().to_owned());
                // Skip the quoted value.
                let after = &rest[eq + 2..];
                let close = after
                    .char_indices()
                    .scan(false, |esc, (i, ch)| {
                        let hit = ch == '"' && !*esc;
                        *esc = ch == '\\' && !*esc;
                        Some((i, hit))
                    })
                    .find(|(_, hit)| *hit)
                    .map_or(after.len(), |(i, _)| i);
                rest = &after[(close + 1).min(after.len())..];
            }
        }
    }
}

#[test]
fn promql_parsing_finds_metrics_and_labels() {
    let q = parse(
        r#"sum by (route, strategy) (rate(a_b[$__rate_interval])) * 3600 / 1e6 + on(x) clamp_min(c{status=~"5..", job="y"}, 1e-9)"#,
    );
    assert_eq!(q.metrics.into_iter().collect::<Vec<_>>(), ["a_b", "c"]);
    assert_eq!(
        q.labels.into_iter().collect::<Vec<_>>(),
        ["job", "route", "status", "strategy", "x"]
    );
}

#[test]
fn every_metric_the_grafana_dashboard_queries_exists_in_a_live_scrape() {
    let path = repo_root().join(DASHBOARD);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let queries = queries(&dashboard);
    assert!(queries.len() >= 20, "{} queries", queries.len());

    // The stack, and a request of each kind so every counter has moved
    // and cost-control has served the filter.
    let s = Stack::start_shipped_with_control("grafana");
    let tenant = [("x-tenant-id", "acme")];
    for p in [
        "/api/items/1",
        "/api/items/1",
        "/api/quotes/1",
        "/api/search/q",
        "/api/reports/1",
    ] {
        assert_eq!(s.get(p, &tenant).status, 200, "{p}");
    }
    wait_for("spend in the ledger", Duration::from_secs(30), || {
        (s.control().total_events("acme") >= 5).then_some(())
    });
    let mut live = BTreeMap::new();
    scrape(
        &http::get(
            &format!("http://127.0.0.1:{}/stats/prometheus", s.ports.admin),
            &[],
        )
        .text(),
        &mut live,
    );
    scrape(
        &http::get(&s.control().url("/metrics"), &[]).text(),
        &mut live,
    );

    let mut used = BTreeSet::new();
    let mut missing = Vec::new();
    for (title, expr) in &queries {
        let q = parse(expr);
        assert!(!q.metrics.is_empty(), "{title}: no metric in {expr}");
        for m in &q.metrics {
            used.insert(m.clone());
            if !live.contains_key(m) {
                missing.push(format!("{title}: metric {m}"));
            }
        }
        for l in &q.labels {
            if !q
                .metrics
                .iter()
                .any(|m| live.get(m).is_some_and(|ls| ls.contains(l)))
            {
                missing.push(format!("{title}: label {l} on none of {:?}", q.metrics));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries what the stack does not export:\n{}",
        missing.join("\n")
    );
    // What the dashboard is for: each of these is on it.
    for m in [
        "cost_optimizer_route_requests",
        "cost_optimizer_route_cache_hits",
        "cost_optimizer_route_coalesce_coalesced",
        "cost_optimizer_route_batch_members",
        "cost_optimizer_route_limit_limited_low",
        "cost_optimizer_route_budget_exceeded",
        "cost_optimizer_route_cost_actual_micros",
        "cost_optimizer_route_cost_saving_micros",
        "cost_optimizer_accounting_spend_failures",
        "cost_control_spend_cost_micros_total",
        "cost_control_http_requests_total",
    ] {
        assert!(used.contains(m), "the dashboard does not show {m}");
    }
    eprintln!(
        "{} queries over {} metrics, all live",
        queries.len(),
        used.len()
    );
}
