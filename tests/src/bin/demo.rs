//! `make demo`: drive a fixed workload through the optimizer and print one
//! table of what it saved, per strategy.
//!
//! Uses the stack on the default ports when one is running (`make run`;
//! ENVOY_PORT, ADMIN_PORT, DEMO_PORT, CONTROL_PORT as in the Makefile),
//! else starts its own (demo API, cost-control, Envoy on the shipped
//! `envoy/envoy.yaml`) on free ports and stops it at the end.
//!
//! Requests and upstream calls come from the responses (`x-cache` debug
//! header) and the demo API's `/__calls`; money comes from cost-control's
//! ledger (`GET /v1/spend?tenant=demo&group_by=strategy`), as reported by
//! the filter. "Without the optimizer" every served request is one
//! upstream call at its baseline price.

// A harness tool like the tests: a failure panics with what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::control::CostControl;
use e2e::http::{self, Resp};
use e2e::procs::port_open;
use e2e::sse::SseStream;
use e2e::stack::Stack;
use serde_json::Value;

const TENANT: &str = "demo";
/// The LLM part's tenant: its ledger rows are its own.
const LLM_TENANT: &str = "demo-llm";
const CHAT: &str = "/v1/chat/completions";
const DEFAULT_SEED: u64 = 42;
/// The demo API's delay on items: a slow upstream is where coalescing pays.
const ITEMS_DELAY_MS: u64 = 200;
const STRATEGIES: [&str; 5] = ["upstream", "cache", "coalesced", "batched", "routed"];
const USAGE: &str = "usage: demo [--own-stack] [--seed N]\n\
    Uses the stack on ENVOY_PORT/ADMIN_PORT/DEMO_PORT/CONTROL_PORT (default\n\
    10000/9901/8080/8081) when one runs there, else starts its own.";

fn env_port(var: &str, default: u16) -> u16 {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a port")),
        _ => default,
    }
}

/// Where the traffic goes, and the stack this run started, if any.
struct Target {
    envoy: u16,
    demo: u16,
    /// The second provider (the search rule's cheaper one).
    demo_b: u16,
    control: Option<CostControl>,
    own: Option<Stack>,
}

impl Target {
    fn find(force_own: bool) -> Target {
        let envoy = env_port("ENVOY_PORT", 10000);
        let admin = env_port("ADMIN_PORT", 9901);
        let demo = env_port("DEMO_PORT", 8080);
        let demo_b = env_port("DEMO_B_PORT", 8082);
        let control = env_port("CONTROL_PORT", 8081);
        let ready = http::try_request("GET", &format!("http://127.0.0.1:{admin}/ready"), &[], None)
            .map(|r| r.status == 200)
            .unwrap_or(false);
        if !force_own && ready && port_open(envoy) {
            if !port_open(demo) {
                panic!("Envoy runs on :{envoy} but no demo API answers on :{demo} (DEMO_PORT)");
            }
            let cc = CostControl::attach(control);
            println!(
                "==> using the running stack: Envoy :{envoy}, demo API :{demo}, cost-control :{control}{}",
                if cc.is_some() { "" } else { " (not answering)" }
            );
            return Target {
                envoy,
                demo,
                demo_b,
                control: cc,
                own: None,
            };
        }
        println!("==> no stack on :{envoy}/:{admin}; starting one on free ports (shipped envoy/envoy.yaml)");
        let stack = Stack::start_shipped_with_control("demo");
        println!(
            "    Envoy :{}, demo API :{}, cost-control :{}; logs in {}",
            stack.ports.listen,
            stack.ports.demo,
            stack.ports.control,
            stack.dir.display()
        );
        let cc = CostControl::attach(stack.ports.control);
        Target {
            envoy: stack.ports.listen,
            demo: stack.ports.demo,
            demo_b: stack.ports.demo_b,
            control: cc,
            own: Some(stack),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.envoy)
    }

    /// Calls seen by each provider's demo API: (primary, secondary).
    fn calls(&self) -> (Value, Value) {
        let of = |port: u16| http::get(&format!("http://127.0.0.1:{port}/__calls"), &[]).json();
        (of(self.demo), of(self.demo_b))
    }

    /// Install (or clear) a fault on the secondary provider.
    fn fault_secondary(&self, rule: &str) {
        let url = format!("http://127.0.0.1:{}/__faults", self.demo_b);
        let r = http::request("POST", &url, &[], Some(rule.as_bytes()));
        assert_eq!(
            r.status,
            200,
            "fault on the secondary provider: {}",
            r.text()
        );
    }
}

/// splitmix64: a fixed seed gives the same workload on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// What the client saw, per outcome.
#[derive(Default)]
struct Seen {
    by_strategy: BTreeMap<&'static str, u64>,
    /// Answers the primary gave after the secondary failed (the host's
    /// failover), and answers refused with every provider down.
    failovers: u64,
    limited: u64,
    errors: BTreeMap<u16, u64>,
    sent: u64,
}

impl Seen {
    fn record(&mut self, r: &Resp) {
        self.sent += 1;
        if r.status == 429 {
            self.limited += 1;
            return;
        }
        if r.status >= 400 {
            *self.errors.entry(r.status).or_default() += 1;
            return;
        }
        let strategy = match (r.header("x-cache"), r.header("x-optimizer-provider")) {
            (Some("HIT") | Some("STALE"), _) => "cache",
            (Some("COALESCED"), _) => "coalesced",
            (Some("BATCHED"), _) => "batched",
            (_, Some("secondary")) => "routed",
            _ => "upstream",
        };
        *self.by_strategy.entry(strategy).or_default() += 1;
    }

    fn served(&self) -> u64 {
        self.by_strategy.values().sum()
    }
}

fn headers() -> [(&'static str, &'static str); 1] {
    [("x-tenant-id", TENANT)]
}

/// `paths` fired together, each from its own connection.
fn burst(t: &Target, paths: &[String], seen: &Mutex<Seen>) {
    let barrier = Barrier::new(paths.len());
    std::thread::scope(|sc| {
        for path in paths {
            let (barrier, url) = (&barrier, t.url(path));
            sc.spawn(move || {
                barrier.wait();
                let r = http::request_fresh("GET", &url, &headers(), None);
                seen.lock().unwrap().record(&r);
            });
        }
    });
}

/// `paths` in order by `workers` clients.
fn pool(t: &Target, paths: &[String], workers: usize, seen: &Mutex<Seen>) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(i) else { break };
                let r = http::get(&t.url(path), &headers());
                seen.lock().unwrap().record(&r);
            });
        }
    });
}

fn run_workload(t: &Target, seed: u64) -> Seen {
    let mut rng = Rng(seed);
    let seen = Mutex::new(Seen::default());
    let item = |id: u64| format!("/api/items/{id}?delay_ms={ITEMS_DELAY_MS}");

    // Items, 200 GETs of 20 ids: a cold burst of 3 per id (one upstream
    // call each, the others coalesce), then 140 more in a seeded order
    // (cache hits).
    let cold: Vec<String> = (1..=20)
        .flat_map(|id| [item(id), item(id), item(id)])
        .collect();
    burst(t, &cold, &seen);
    let mut warm: Vec<String> = (0..7).flat_map(|_| (1..=20).map(item)).collect();
    rng.shuffle(&mut warm);
    pool(t, &warm, 8, &seen);

    // Quotes: 4 bursts of 16 distinct ids (batching).
    for _ in 0..4 {
        let quotes: Vec<String> = (0..16)
            .map(|_| format!("/api/quotes/{}", 1 + rng.below(1000)))
            .collect();
        burst(t, &quotes, &seen);
    }

    // Reports: 40 GETs in a row against a token bucket of 5 (rate limit).
    let reports: Vec<String> = (1..=40).map(|n| format!("/api/reports/{n}")).collect();
    pool(t, &reports, 1, &seen);

    // Search: 40 GETs routed to the cheaper provider, then 10 while it
    // answers 503 (the host fails over to the primary and the breaker
    // opens), then it recovers.
    let search: Vec<String> = (1..=40).map(|n| format!("/api/search/s{n}")).collect();
    pool(t, &search, 2, &seen);
    t.fault_secondary(r#"{"path_prefix": "/api/search/", "status": 503}"#);
    for n in 1..=10 {
        let r = http::get(&t.url(&format!("/api/search/f{n}")), &headers());
        let mut seen = seen.lock().unwrap();
        seen.record(&r);
        if r.status == 200 && r.header("x-optimizer-provider") == Some("primary") {
            seen.failovers += 1;
        }
    }
    t.fault_secondary(r#"{"clear": true}"#);

    // Users: 20 GETs no rule matches (pass-through).
    let users: Vec<String> = (1..=20)
        .map(|_| format!("/api/users/{}", 1 + rng.below(100)))
        .collect();
    pool(t, &users, 2, &seen);

    seen.into_inner().unwrap()
}

/// What the LLM part's clients saw: requests by how they were served.
#[derive(Default)]
struct LlmSeen {
    by_strategy: BTreeMap<&'static str, u64>,
    errors: u64,
}

/// One prompt to the chat API (streamed or not), read to its end.
fn prompt(t: &Target, body: &str, stream: bool, seen: &Mutex<LlmSeen>) {
    let mut st = SseStream::post(
        t.envoy,
        CHAT,
        &[
            ("x-tenant-id", LLM_TENANT),
            ("content-type", "application/json"),
            ("x-demo-chunk-delay-ms", if stream { "20" } else { "0" }),
        ],
        body.as_bytes(),
    );
    let clean = st.finish() == e2e::sse::End::Clean;
    let mut seen = seen.lock().unwrap();
    if st.status != 200 || !clean {
        seen.errors += 1;
        return;
    }
    let strategy = match st.header("x-cache") {
        Some("HIT") => "cache",
        Some("COALESCED") => "coalesced",
        _ => "upstream",
    };
    *seen.by_strategy.entry(strategy).or_default() += 1;
}

/// LLM prompts: 10 identical streamed deterministic prompts at once (one
/// call, the rest coalesced), 10 identical non-streamed ones at once, then
/// each asked 5 more times with its keys in another order (prompt cache),
/// and 5 prompts that are not deterministic (each paid).
fn run_llm_workload(t: &Target) -> LlmSeen {
    let seen = Mutex::new(LlmSeen::default());
    let streamed = r#"{"model":"demo-large","temperature":0,"stream":true,"max_tokens":20,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"summarise the quarterly report in twenty words"}]}"#;
    let streamed_again = r#"{"messages":[{"content":"summarise the quarterly report in twenty words","role":"user"}],"max_tokens":20,"stream_options":{"include_usage":true},"stream":true,"temperature":0,"model":"demo-large"}"#;
    let plain = r#"{"model":"demo-large","seed":7,"max_tokens":50,"messages":[{"role":"user","content":"classify this ticket: printer on fire"}]}"#;
    let plain_again = r#"{"max_tokens":50,"seed":7,"messages":[{"role":"user","content":"classify this ticket: printer on fire"}],"model":"demo-large","user":"someone"}"#;
    for (body, stream) in [(streamed, true), (plain, false)] {
        let barrier = Barrier::new(10);
        std::thread::scope(|sc| {
            for _ in 0..10 {
                let (barrier, seen) = (&barrier, &seen);
                sc.spawn(move || {
                    barrier.wait();
                    prompt(t, body, stream, seen);
                });
            }
        });
    }
    for _ in 0..5 {
        prompt(t, streamed_again, true, &seen);
        prompt(t, plain_again, false, &seen);
    }
    for n in 0..5 {
        let warm = format!(
            r#"{{"model":"demo-small","temperature":0.7,"messages":[{{"role":"user","content":"a haiku, take {n}"}}]}}"#
        );
        prompt(t, &warm, false, &seen);
    }
    seen.into_inner().unwrap()
}

fn print_llm(seen: &LlmSeen, calls: u64, ledger: Option<&Value>) {
    let mut rows: BTreeMap<String, Money> = BTreeMap::new();
    if let Some(report) = ledger {
        for row in report["rows"].as_array().into_iter().flatten() {
            let key = row["key"].as_str().unwrap_or("").to_string();
            rows.insert(key, Money::of(row));
        }
    }
    let requests: u64 = seen.by_strategy.values().sum();
    println!(
        "\nLLM prompts ({CHAT}, tenant {LLM_TENANT:?}): {requests} requests, {calls} upstream calls"
    );
    for (label, key) in [
        ("prompt-cache", "cache"),
        ("prompt-coalesced", "coalesced"),
        ("prompt-upstream", "upstream"),
    ] {
        print_row(
            label,
            seen.by_strategy.get(key).copied().unwrap_or(0),
            if key == "upstream" { calls } else { 0 },
            rows.get(key).copied().unwrap_or_default(),
        );
    }
    if seen.errors > 0 {
        println!("errors (not in the table): {}", seen.errors);
    }
}

/// Upstream calls between two `calls()`: (all, batch calls, secondary's).
fn calls_delta(before: &(Value, Value), after: &(Value, Value)) -> (u64, u64, u64) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let secondary = n(&after.1["total"]).saturating_sub(n(&before.1["total"]));
    let (before, after) = (&before.0, &after.0);
    let total = n(&after["total"]).saturating_sub(n(&before["total"])) + secondary;
    let batch =
        n(&after["by_path"]["/api/batch"]).saturating_sub(n(&before["by_path"]["/api/batch"]));
    (total, batch, secondary)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The ledger since `from_ms`, once its event count reaches `served` or
/// stops growing (the filter flushes spend about every second).
fn settled_ledger(cc: &CostControl, tenant: &str, from_ms: u64, served: u64) -> (Value, Duration) {
    let start = Instant::now();
    let mut last = (u64::MAX, Instant::now());
    loop {
        let report = cc.spend_since(tenant, "strategy", from_ms);
        let events = report["total"]["events"].as_u64().unwrap_or(0);
        if events != last.0 {
            last = (events, Instant::now());
        }
        let quiet = last.1.elapsed() >= Duration::from_millis(2500);
        if events >= served || quiet || start.elapsed() >= Duration::from_secs(10) {
            return (report, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Ledger figures of one row.
#[derive(Default, Clone, Copy)]
struct Money {
    events: u64,
    cost: u64,
    baseline: u64,
}

impl Money {
    fn of(row: &Value) -> Money {
        let n = |k: &str| row[k].as_u64().unwrap_or(0);
        Money {
            events: n("events"),
            cost: n("cost_micros"),
            baseline: n("baseline_micros"),
        }
    }
}

fn usd(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

fn signed_usd(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    format!("{sign}{}", usd(micros.unsigned_abs() as u64))
}

fn percent(part: i128, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn print_row(name: &str, requests: u64, calls: u64, m: Money) {
    let saving = i128::from(m.baseline) - i128::from(m.cost);
    println!(
        "{name:<10} {requests:>8} {calls:>8} {events:>7} {with:>12} {without:>12} {saving:>12} {pct:>7}",
        events = m.events,
        with = usd(m.cost),
        without = usd(m.baseline),
        saving = signed_usd(saving),
        pct = percent(saving, m.baseline),
    );
}

fn print_table(seen: &Seen, calls: (u64, u64, u64), ledger: Option<&Value>) {
    let (total_calls, batch_calls, secondary_calls) = calls;
    let mut rows: BTreeMap<String, Money> = BTreeMap::new();
    if let Some(report) = ledger {
        for row in report["rows"].as_array().into_iter().flatten() {
            let key = row["key"].as_str().unwrap_or("").to_string();
            rows.insert(key, Money::of(row));
        }
    }
    println!();
    println!(
        "{:<10} {:>8} {:>8} {:>7} {:>12} {:>12} {:>12} {:>7}",
        "strategy",
        "requests",
        "upstream",
        "ledger",
        "cost with",
        "cost without",
        "saving",
        "saving"
    );
    println!(
        "{:<10} {:>8} {:>8} {:>7} {:>12} {:>12} {:>12} {:>7}",
        "", "", "calls", "events", "optimizer", "(baseline)", "$", "%"
    );
    println!("{}", "-".repeat(84));
    let mut names: Vec<String> = STRATEGIES.iter().map(|s| s.to_string()).collect();
    // Strategies the ledger knows beyond these four are shown, not hidden.
    names.extend(
        rows.keys()
            .filter(|k| !STRATEGIES.contains(&k.as_str()))
            .cloned(),
    );
    for name in &names {
        let requests = seen.by_strategy.get(name.as_str()).copied().unwrap_or(0);
        let calls = match name.as_str() {
            "upstream" => total_calls
                .saturating_sub(batch_calls)
                .saturating_sub(secondary_calls),
            "batched" => batch_calls,
            "routed" => secondary_calls,
            _ => 0,
        };
        let label = if name.is_empty() { "(none)" } else { name };
        print_row(
            label,
            requests,
            calls,
            rows.get(name).copied().unwrap_or_default(),
        );
    }
    println!("{}", "-".repeat(84));
    let total = ledger.map(|r| Money::of(&r["total"])).unwrap_or_default();
    print_row("total", seen.served(), total_calls, total);
    println!();

    let served = seen.served();
    let saved_calls = i128::from(served) - i128::from(total_calls);
    println!(
        "upstream calls: {total_calls} with the optimizer, {served} without (one per served request): {} fewer ({})",
        saved_calls,
        percent(saved_calls, served)
    );
    if seen.failovers > 0 {
        println!(
            "failover: the secondary provider answered 503 for {} requests; the gateway retried them on the primary (served 200, priced as upstream) and opened its breaker",
            seen.failovers
        );
    }
    if seen.limited > 0 {
        println!(
            "rate limited: {} requests answered 429 by the optimizer (not served, not in the table)",
            seen.limited
        );
    }
    if !seen.errors.is_empty() {
        println!("errors (not in the table): {:?}", seen.errors);
    }
}

fn main() {
    let mut force_own = false;
    let mut seed = DEFAULT_SEED;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--own-stack" => force_own = true,
            "--seed" => {
                let v = args.next().unwrap_or_default();
                seed = v
                    .parse()
                    .unwrap_or_else(|_| panic!("--seed {v:?}: not a number\n{USAGE}"));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => panic!("unknown argument {other:?}\n{USAGE}"),
        }
    }

    let target = Target::find(force_own);
    println!(
        "==> workload (tenant {TENANT:?}, seed {seed}): 200 GET /api/items/1..20 (cache, coalescing; \
         upstream delay {ITEMS_DELAY_MS} ms),\n    4 bursts of 16 GET /api/quotes/N (batching), \
         40 GET /api/reports/N (rate limit), 50 GET /api/search/N (routing; the cheaper\n    provider failing for the last 10), 20 GET /api/users/N (pass-through)"
    );
    let from_ms = now_ms();
    let before = target.calls();
    let t = Instant::now();
    let seen = run_workload(&target, seed);
    let after = target.calls();
    println!(
        "    {} requests in {:.1} s",
        seen.sent,
        t.elapsed().as_secs_f64()
    );

    let ledger = match &target.control {
        Some(cc) => {
            let (report, waited) = settled_ledger(cc, TENANT, from_ms, seen.served());
            let events = report["total"]["events"].as_u64().unwrap_or(0);
            println!(
                "==> cost-control ledger: {events} spend events for {TENANT:?} since the start (waited {:.1} s)",
                waited.as_secs_f64()
            );
            if events == 0 {
                println!("    no spend reported yet: the money columns show 0");
            }
            Some(report)
        }
        None => {
            println!("==> cost-control not reachable: the money columns show 0");
            None
        }
    };
    print_table(&seen, calls_delta(&before, &after), ledger.as_ref());

    println!(
        "\n==> LLM workload: 10 identical streamed prompts at once, 10 identical JSON prompts at once,\n    each asked 5 more times (keys reordered), 5 prompts that are not deterministic"
    );
    let chat_calls = |c: &(Value, Value)| c.0["by_path"][CHAT].as_u64().unwrap_or(0);
    let before = target.calls();
    let llm = run_llm_workload(&target);
    let calls = chat_calls(&target.calls()).saturating_sub(chat_calls(&before));
    let llm_ledger = target.control.as_ref().map(|cc| {
        let served: u64 = llm.by_strategy.values().sum();
        settled_ledger(cc, LLM_TENANT, from_ms, served).0
    });
    print_llm(&llm, calls, llm_ledger.as_ref());

    if let Some(stack) = target.own {
        println!(
            "\n==> stopping the demo stack (logs in {})",
            stack.dir.display()
        );
        drop(target.control);
        drop(stack);
    }
}
