//! Issue 20: cost-control's dashboard in a real browser (headless Chromium
//! through chromedriver) against a real cost-control whose ledger holds
//! spend from real traffic through Envoy (the shipped `envoy/envoy.yaml`).
//!
//! The savings view shows the totals of `GET /v1/spend`; a budget set in
//! the page is the one `GET /v1/budgets` answers; a wrong token shows an
//! error and no data; a purge from the page makes the next request a cache
//! miss; nothing in the page breaks under the Content-Security-Policy
//! cost-control sends. A screenshot of each view goes to
//! `target/dashboard/` for a person to look at.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::Duration;

use e2e::browser::Browser;
use e2e::control::{ADMIN_TOKEN, GATEWAY_TOKEN};
use e2e::http::{self, Resp};
use e2e::procs::{repo_root, wait_for};
use e2e::stack::Stack;
use serde_json::{json, Value};

fn shots() -> PathBuf {
    repo_root().join("target/dashboard")
}

fn get(s: &Stack, path: &str, tenant: &str) -> Resp {
    http::request_fresh("GET", &s.url(path), &[("x-tenant-id", tenant)], None)
}

/// Real traffic through Envoy, answered 200s per tenant (every rule of the
/// shipped config is priced, so each is one spend event).
fn traffic(s: &Stack) -> BTreeMap<&'static str, u64> {
    let mut served: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut count = |tenant: &'static str, r: &Resp| {
        if r.status == 200 {
            *served.entry(tenant).or_default() += 1;
        }
        r.status
    };
    // acme: a cold burst of 3 per item against a slow upstream (one call,
    // two coalesced), then two cache hits each; a burst of quotes
    // (batched); searches (routed to the cheaper provider).
    let items: Vec<String> = (1..=4)
        .map(|i| format!("/api/items/{i}?delay_ms=200"))
        .collect();
    let burst = |paths: Vec<String>| -> Vec<Resp> {
        let barrier = Barrier::new(paths.len());
        std::thread::scope(|sc| {
            let hs: Vec<_> = paths
                .iter()
                .map(|p| {
                    let barrier = &barrier;
                    sc.spawn(move || {
                        barrier.wait();
                        get(s, p, "acme")
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let cold: Vec<String> = items.iter().flat_map(|p| [p, p, p]).cloned().collect();
    for r in burst(cold) {
        assert_eq!(count("acme", &r), 200, "{}", r.text());
    }
    for p in items.iter().chain(items.iter()) {
        let r = get(s, p, "acme");
        assert_eq!(r.header("x-cache"), Some("HIT"), "{p}");
        count("acme", &r);
    }
    for r in burst((1..=8).map(|i| format!("/api/quotes/{i}")).collect()) {
        assert_eq!(count("acme", &r), 200, "{}", r.text());
    }
    for i in 1..=6 {
        let r = get(s, &format!("/api/search/q{i}"), "acme");
        assert_eq!(count("acme", &r), 200, "{}", r.text());
    }
    // globex: reports until its $0.015 daily budget is spent (3 at
    // $0.005): the rest are refused, and the soft and hard alerts fire.
    // Then two items (a rule without budget enforcement: served, and
    // recorded past the limit).
    let mut refused = 0;
    for i in 1..=5 {
        let r = get(s, &format!("/api/reports/{i}"), "globex");
        if count("globex", &r) == 429 {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "the budget allows 3 reports of 5");
    for p in ["/api/items/100", "/api/items/100"] {
        let r = get(s, p, "globex");
        assert_eq!(count("globex", &r), 200);
    }
    served
}

/// Until the ledger holds every served request of each tenant.
fn ledger_settles(s: &Stack, served: &BTreeMap<&'static str, u64>) {
    for (tenant, n) in served {
        wait_for(
            &format!("{n} spend events of {tenant}"),
            Duration::from_secs(30),
            || (s.control().total_events(tenant) >= *n).then_some(()),
        );
        assert_eq!(s.control().total_events(tenant), *n, "{tenant}");
    }
}

fn api(s: &Stack, path: &str) -> Value {
    let r = s.control().call("GET", path, ADMIN_TOKEN, None);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// "$1,234.5678" as micro-USD.
fn micros(text: &str) -> i64 {
    let t = text.trim().replace([',', '$'], "");
    let (neg, t) = t
        .strip_prefix('-')
        .map_or((false, t.as_str()), |r| (true, r));
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    assert!(frac.len() <= 6, "{text}");
    let v =
        whole.parse::<i64>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<i64>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

fn num(v: &Option<String>) -> i64 {
    v.as_deref().unwrap().parse().unwrap()
}

/// Submits `token` in the sign-in form (signing out first).
fn sign_in(b: &Browser, token: &str) {
    if b.visible("#sign-out") {
        b.click("#sign-out");
    }
    b.wait("#token");
    b.type_into("#token", token);
    b.click("#token-form button[type=submit]");
}

/// Signs in with a valid token and waits for the first view to draw.
fn sign_in_ok(b: &Browser, token: &str) {
    sign_in(b, token);
    b.wait(".view[data-state=ready]");
}

/// The view `name`, drawn afresh.
fn view(b: &Browser, base: &str, name: &str) {
    b.exec(
        "const v = document.getElementById('view-' + arguments[0]); delete v.dataset.state;",
        vec![json!(name)],
    );
    if b.url().ends_with(&format!("#{name}")) {
        b.reload();
    } else {
        b.open(&format!("{base}/ui/#{name}"));
    }
    b.wait(&format!(
        "#view-{name}[data-state]:not([data-state=loading])"
    ));
    assert_eq!(
        b.attr(&format!("#view-{name}"), "data-state"),
        "ready",
        "{}",
        b.text("main")
    );
}

/// Chooses `value` in the savings view's `control` select and waits until
/// the view is drawn with it.
fn choose(b: &Browser, control: &str, value: &str) {
    b.select(&format!("#savings-{control}"), value);
    b.wait(&format!("#savings-summary[data-{control}=\"{value}\"]"));
}

/// The savings view's numbers against the API's over the same range.
fn savings_match_the_api(b: &Browser, s: &Stack, tenant: Option<&str>) {
    let sel = match tenant {
        Some(t) => format!("#savings-summary[data-tenant=\"{t}\"]"),
        None => "#savings-summary[data-tenant=\"\"]".to_owned(),
    };
    b.wait(&sel);
    let from = b.attr("#savings-summary", "data-from-ms");
    let to = b.attr("#savings-summary", "data-to-ms");
    let who = tenant.map(|t| format!("&tenant={t}")).unwrap_or_default();
    let q = |g: &str| format!("/v1/spend?from={from}&to={to}&group_by={g}{who}");
    let total = api(s, &q("hour"))["total"].clone();
    assert!(total["events"].as_i64().unwrap() > 0, "{total}");
    // The totals in words.
    for (css, field) in [
        ("#savings-summary .cost", "cost_micros"),
        ("#savings-summary .baseline", "baseline_micros"),
        ("#savings-summary .saved", "savings_micros"),
    ] {
        assert_eq!(
            micros(&b.text(css)),
            total[field].as_i64().unwrap(),
            "{css}: {}",
            b.text("#savings-summary")
        );
    }
    assert_eq!(
        b.text("#savings-summary .events").replace(',', ""),
        total["events"].to_string()
    );
    // The chart: its buckets add up to the same totals.
    for (attr, field) in [
        ("data-cost-micros", "cost_micros"),
        ("data-baseline-micros", "baseline_micros"),
        ("data-events", "events"),
    ] {
        let sum: i64 = b.attrs("#savings-time .bucket", attr).iter().map(num).sum();
        assert_eq!(sum, total[field].as_i64().unwrap(), "chart {attr}");
    }
    // The saving by strategy (and by tenant): one bar per row of the API.
    let mut groups = vec![("#savings-strategy .bar", "strategy")];
    if tenant.is_none() {
        groups.push(("#savings-tenant .bar", "tenant"));
    }
    for (css, group) in groups {
        let report = api(s, &q(group));
        let want: Vec<(String, i64)> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_owned(),
                    r["savings_micros"].as_i64().unwrap(),
                )
            })
            .collect();
        let keys = b.attrs(css, "data-key");
        let values = b.attrs(css, "data-value-micros");
        let got: Vec<(String, i64)> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.clone().unwrap(), num(v)))
            .collect();
        assert_eq!(got, want, "{group} bars");
    }
}

#[test]
fn the_dashboard_shows_the_ledger_and_sets_budgets_in_a_real_browser() {
    // No Chromium: fail at once, naming the script that installs it.
    e2e::browser::chromium_bin();
    e2e::browser::chromedriver_bin();
    let s = Stack::start_shipped_with_control("dashboard");
    let base = s.control().url("");
    let b = Browser::start(&s.dir, 1280, 1500);
    let shot = |name: &str| b.screenshot(&shots().join(format!("{name}.png")));

    // The page carries the policy the browser enforces below.
    let page = http::get(&s.control().url("/ui/"), &[]);
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));

    // A new install: the savings view says what to do, not a blank chart.
    b.open(&format!("{base}/"));
    b.wait("#sign-in");
    sign_in(&b, ADMIN_TOKEN);
    b.wait("#savings-empty");
    assert!(
        b.text("#savings-empty").contains("No spend recorded yet"),
        "{}",
        b.text("#savings-empty")
    );
    assert!(!b.visible("#savings-time"));
    shot("empty");
    view(&b, &base, "budgets");
    assert!(b.text("#budgets-empty").contains("No budgets yet"));
    view(&b, &base, "alerts");
    assert!(b.text("#alerts-empty").contains("No alerts yet"));

    // Real traffic, then the ledger it produced.
    s.control().put_budget("globex", 15_000);
    for budget in [
        json!({"tenant": "acme", "daily": "0.025", "soft_limit_percent": 50}),
        json!({"tenant": "initech", "monthly": "20"}),
    ] {
        let r = s
            .control()
            .call("PUT", "/v1/budgets", ADMIN_TOKEN, Some(&budget));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let served = traffic(&s);
    ledger_settles(&s, &served);
    eprintln!("served: {served:?}");

    // A wrong token: an error, and no data anywhere on the page.
    sign_in(&b, "not-the-token");
    b.wait("#sign-in-error");
    let err = b.text("#sign-in-error");
    assert!(err.contains("refused this token (401"), "{err}");
    assert!(!b.visible(".view"), "a view is shown: {}", b.text("main"));
    assert!(b.attrs(".view *", "class").is_empty(), "views hold data");
    shot("wrong-token");

    // Savings: all tenants, then one.
    sign_in_ok(&b, ADMIN_TOKEN);
    view(&b, &base, "savings");
    savings_match_the_api(&b, &s, None);
    let strategies: Vec<String> = b
        .attrs("#savings-strategy .bar", "data-key")
        .into_iter()
        .flatten()
        .collect();
    for st in ["batched", "cache", "coalesced", "routed", "upstream"] {
        assert!(strategies.iter().any(|k| k == st), "{st}: {strategies:?}");
    }
    shot("savings");
    b.select("#savings-tenant", "acme");
    savings_match_the_api(&b, &s, Some("acme"));
    // Daily buckets over 7 days: the same money, in 7 or 8 bars. (Each
    // choice draws the view again, controls included: wait for it.)
    choose(&b, "range", "7d");
    choose(&b, "bucket", "day");
    savings_match_the_api(&b, &s, Some("acme"));
    let days = b.attrs("#savings-time .bucket", "data-start-ms").len();
    assert!((7..=8).contains(&days), "{days} daily buckets");
    choose(&b, "tenant", "");
    choose(&b, "range", "24h");
    choose(&b, "bucket", "hour");

    // Budgets: globex is spent (hard); edit it in place, and add one.
    view(&b, &base, "budgets");
    let globex = "article.budget[data-tenant=\"globex\"][data-service=\"\"]";
    b.wait(globex);
    let before = &s.control().budgets("globex")["budgets"][0];
    assert_eq!(before["hard"], true, "{before}");
    assert!(b.visible(&format!("{globex}.state-hard")));
    assert!(
        b.visible("article.budget[data-tenant=\"acme\"].state-soft"),
        "{}",
        b.text("#budget-list")
    );
    assert!(b.visible("article.budget[data-tenant=\"initech\"].state-ok"));
    assert!(b.text(globex).contains("$0.015"), "{}", b.text(globex));
    shot("budgets");
    b.click(&format!("{globex} button.edit"));
    b.type_into(&format!("{globex} input[name=daily]"), "1.25");
    b.click(&format!("{globex} button[type=submit]"));
    b.wait(".note.ok");
    let after = &s.control().budgets("globex")["budgets"][0];
    assert_eq!(after["daily_limit_micros"], 1_250_000, "{after}");
    assert_eq!(after["hard"], false, "{after}");
    b.wait(&format!("{globex}.state-ok"));
    b.type_into("#budget-new input[name=tenant]", "umbrella");
    b.type_into("#budget-new input[name=service]", "search");
    b.type_into("#budget-new input[name=monthly]", "20");
    b.click("#budget-new button[type=submit]");
    b.wait("article.budget[data-tenant=\"umbrella\"][data-service=\"search\"]");
    let umbrella = &s.control().budgets("umbrella")["budgets"][0];
    assert_eq!(
        (
            umbrella["service"].as_str(),
            umbrella["monthly_limit_micros"].as_i64(),
            umbrella["daily_limit_micros"].as_i64()
        ),
        (Some("search"), Some(20_000_000), None),
        "{umbrella}"
    );

    // Alerts: the soft and hard alerts globex's reports fired.
    view(&b, &base, "alerts");
    b.wait("#alert-table");
    let alerts = api(&s, "/v1/alerts?limit=50")["alerts"].clone();
    let ids: Vec<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].to_string())
        .collect();
    let rows: Vec<String> = b
        .attrs("#alert-table tbody tr", "data-id")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(rows, ids, "the page lists the API's alerts, newest first");
    for level in ["soft", "hard"] {
        assert!(
            b.visible(&format!("#alert-table tr.level-{level}")),
            "no {level} alert: {alerts}"
        );
    }
    shot("alerts");

    // Purge: a cached item, purged from the page, is a miss again.
    let item = "/api/items/1?delay_ms=200";
    assert_eq!(get(&s, item, "acme").header("x-cache"), Some("HIT"));
    view(&b, &base, "purge");
    b.type_into("#purge-form input[name=tenant]", "acme");
    b.select("#purge-form select[name=kind]", "key");
    b.type_into("#purge-form input[name=value]", item);
    b.click("#purge-form button[type=submit]");
    b.wait("#purge-result .note.ok");
    assert!(
        b.text("#purge-result").contains("generation 1"),
        "{}",
        b.text("#purge-result")
    );
    shot("purge");
    wait_for("the purged item to miss", Duration::from_secs(10), || {
        (get(&s, item, "acme").header("x-cache") == Some("MISS")).then_some(())
    });
    // A prefix and a tag, as the snapshot gateways poll shows them.
    for (kind, value) in [("prefix", "/api/items"), ("tag", "items")] {
        b.select("#purge-form select[name=kind]", kind);
        b.type_into("#purge-form input[name=value]", value);
        b.click("#purge-form button[type=submit]");
        b.wait(&format!("#purge-result .note.ok[data-kind={kind}]"));
    }
    let r = s.control().call("GET", "/v1/snapshot", GATEWAY_TOKEN, None);
    let purges: Vec<(String, String, String, i64)> = r.json()["purges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["tenant"].as_str().unwrap().to_owned(),
                p["kind"].as_str().unwrap().to_owned(),
                p["value"].as_str().unwrap().to_owned(),
                p["generation"].as_i64().unwrap(),
            )
        })
        .collect();
    for (kind, value) in [("key", item), ("prefix", "/api/items"), ("tag", "items")] {
        assert!(
            purges.contains(&("acme".into(), kind.into(), value.into(), 1)),
            "{kind} {value}: {purges:?}"
        );
    }

    // The gateway token reads but cannot write.
    sign_in_ok(&b, GATEWAY_TOKEN);
    view(&b, &base, "budgets");
    b.wait(globex);
    b.click(&format!("{globex} button.edit"));
    b.type_into(&format!("{globex} input[name=daily]"), "9");
    b.click(&format!("{globex} button[type=submit]"));
    b.wait(&format!("{globex} .note.error"));
    assert!(
        b.text(&format!("{globex} .note.error"))
            .contains("needs the admin token (403"),
        "{}",
        b.text(globex)
    );
    assert_eq!(
        s.control().budgets("globex")["budgets"][0]["daily_limit_micros"],
        1_250_000
    );

    // The token lives in the tab's session storage, never in a URL.
    let stored = b.exec(
        "return sessionStorage.getItem('cost-control-token');",
        vec![],
    );
    assert_eq!(stored, json!(GATEWAY_TOKEN));
    assert!(!b.url().contains("token"), "{}", b.url());
    b.click("#sign-out");
    b.wait("#sign-in");
    let stored = b.exec(
        "return sessionStorage.getItem('cost-control-token');",
        vec![],
    );
    assert_eq!(stored, Value::Null);

    // Nothing in the page ran into the policy: no violation, no script
    // error (401s and 403s the test provoked are the only failed loads).
    let log = b.log();
    for entry in &log {
        let msg = entry["message"].as_str().unwrap_or_default();
        assert!(
            !msg.contains("Content Security Policy")
                && !msg.contains("Refused to")
                && !msg.contains("Uncaught"),
            "{entry}"
        );
        if entry["level"] == "SEVERE" {
            assert!(
                msg.contains("status of 401") || msg.contains("status of 403"),
                "{entry}"
            );
        }
    }
    // And the browser does enforce it on this page: an inline script is
    // refused (and reported).
    let ran = b.exec(
        "const s = document.createElement('script');
         s.textContent = 'window.inlineRan = true';
         document.head.append(s);
         return window.inlineRan === true;",
        vec![],
    );
    assert_eq!(ran, json!(false), "an inline script ran");
    assert!(
        b.log().iter().any(|e| e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Content Security Policy")),
        "the refused inline script was not reported"
    );
    eprintln!("screenshots in {}", shots().display());
}
