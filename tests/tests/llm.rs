//! LLM APIs end to end (Envoy with two workers, the demo API's
//! OpenAI-style `POST /v1/chat/completions`, the real cost-control): a
//! streamed answer passes as it is made and is priced from its usage
//! chunk; the same deterministic prompt is answered from the cache per
//! tenant; identical prompts in flight make one call; a cut stream is
//! priced from what arrived and not stored; a token budget holds across
//! two gateways.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use e2e::envoy_config::Options;
use e2e::gateway::GatewayKind;
use e2e::on_both_hosts;
use e2e::procs::wait_for;
use e2e::sse::{End, SseStream};
use e2e::stack::Stack;
use serde_json::{json, Value};

const PATH: &str = "/v1/chat/completions";

fn filter(gateway: &str, budget: bool) -> Options {
    let mut cost = json!({"cost_per_call": "0.001", "provider": "demo",
        "tokens": {"models": {"demo-small": {"prompt_per_1k": "0.5", "completion_per_1k": "1.5"}},
                   "default_model": "demo-small"}});
    if budget {
        cost["budget"] = json!({"estimate": "0.05"});
    }
    Options {
        filter: json!({
            "version": 1,
            "accounting": {
                "cost_control": "cost_control", "token": "gateway-dev-token",
                "gateway_id": gateway, "flush_ms": 100, "backoff_min_ms": 100,
                "backoff_max_ms": 1000, "timeout_ms": 1000,
                "budgets": {"lease": "0.2", "retry_ms": 200}
            },
            "routes": [
                {"name": "chat", "match": {"prefix": PATH}, "debug_headers": true,
                 "sla_ms": 20000,
                 "prompt": {},
                 "cache": {"default_ttl_s": 300},
                 "coalesce": {"max_wait_ms": 20000},
                 "cost": cost}
            ]
        }),
        jwt: false,
    }
}

/// demo-small: $0.5 / $1.5 per 1k tokens, in micros.
fn price(prompt: u64, completion: u64) -> u64 {
    (prompt * 500_000 + completion * 1_500_000).div_ceil(1000)
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

fn chat(content: &str, extra: Value) -> Vec<u8> {
    let mut b = json!({"model": "demo-small",
                       "messages": [{"role": "user", "content": content}]});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string().into_bytes()
}

fn send(port: u16, tenant: &str, body: &[u8], extra: &[(&str, &str)]) -> SseStream {
    let mut h = vec![
        ("x-tenant-id", tenant),
        ("content-type", "application/json"),
    ];
    h.extend_from_slice(extra);
    SseStream::post(port, PATH, &h, body)
}

/// The usage chunk of a received stream: (prompt, completion).
fn usage_of(stream: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(stream);
    let usage = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v.get("usage").cloned())
        .unwrap_or_else(|| panic!("no usage chunk in {text}"));
    (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

fn content_events(stream: &[u8]) -> usize {
    String::from_utf8_lossy(stream)
        .split("\n\n")
        .filter(|e| e.contains("\"delta\""))
        .count()
}

fn ledger(s: &Stack, tenant: &str, events: u64) -> Value {
    wait_for(
        &format!("{events} spend events of {tenant} in the ledger"),
        Duration::from_secs(30),
        || (s.control().total_events(tenant) >= events).then_some(()),
    );
    s.control().spend(tenant, "strategy")
}

fn stream_events_made(s: &Stack) -> u64 {
    s.demo.calls()["stream_events"].as_u64().unwrap()
}

on_both_hosts!(a_stream_reaches_the_client_as_it_is_made_and_is_priced_by_its_usage);
fn a_stream_reaches_the_client_as_it_is_made_and_is_priced_by_its_usage(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "llm-stream", filter("gw-l1", false));
    let port = port_of(&s.url(""));
    // Not deterministic (no temperature 0, no seed): nothing is shared.
    let body = chat(
        "tell me a story",
        json!({"stream": true, "max_tokens": 10, "stream_options": {"include_usage": true}}),
    );
    let mut st = send(port, "streamer", &body, &[("x-demo-chunk-delay-ms", "100")]);
    assert_eq!(st.status, 200);
    assert!(st
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let first = st.next_event().expect("a first event");
    assert!(first.contains("tok0"), "{first}");
    // 10 content events + usage + [DONE] = 12, 100 ms apart: when the
    // first reached the client, the upstream had not made the last.
    let made = stream_events_made(&s);
    assert!(
        made < 12,
        "the first event arrived after all {made} were made"
    );
    assert_eq!(st.finish(), End::Clean);
    assert_eq!(content_events(&st.received), 10);
    assert!(String::from_utf8_lossy(&st.received).ends_with("data: [DONE]\n\n"));
    let (p, c) = usage_of(&st.received);
    assert_eq!(c, 10);
    let report = ledger(&s, "streamer", 1);
    assert_eq!(report["total"]["events"], 1);
    assert_eq!(
        report["total"]["cost_micros"].as_u64().unwrap(),
        price(p, c)
    );
    s.with_envoy_stat(
        "wasmcustom.cost_optimizer.route.chat.prompt.streams_usage",
        |n| assert_eq!(n, 1),
    );
}

on_both_hosts!(the_same_deterministic_prompt_is_answered_from_the_cache_per_tenant);
fn the_same_deterministic_prompt_is_answered_from_the_cache_per_tenant(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "llm-cache", filter("gw-l2", false));
    let port = port_of(&s.url(""));
    let calls = || s.demo.calls_for(PATH);
    for (i, stream) in [false, true].into_iter().enumerate() {
        let content = format!("what is two plus two, form {i}");
        let extra = json!({"temperature": 0, "stream": stream, "max_tokens": 5,
                           "stream_options": {"include_usage": true}});
        let body = chat(&content, extra.clone());
        // The same prompt, keys in another order and spaced out.
        let reordered = format!(
            r#"{{ "max_tokens": 5, "stream_options": {{"include_usage": true}}, "stream": {stream},
                "temperature": 0, "messages": [{{"content": {c}, "role": "user"}}],
                "model": "demo-small" }}"#,
            c = Value::from(content.clone())
        );
        let before = calls();
        let mut a = send(port, "cachy", &body, &[]);
        assert_eq!(a.finish(), End::Clean);
        assert_eq!(a.header("x-cache"), Some("MISS"), "stream={stream}");
        let mut b = send(port, "cachy", reordered.as_bytes(), &[]);
        assert_eq!(b.finish(), End::Clean);
        assert_eq!(b.header("x-cache"), Some("HIT"), "stream={stream}");
        assert_eq!(b.received, a.received, "the same bytes (stream={stream})");
        if stream {
            assert!(b
                .header("content-type")
                .unwrap()
                .starts_with("text/event-stream"));
            assert_eq!(content_events(&b.received), 5);
        }
        assert_eq!(calls(), before + 1, "one upstream call (stream={stream})");
        // Another tenant's identical prompt is its own.
        let mut other = send(port, "someone-else", &body, &[]);
        assert_eq!(other.finish(), End::Clean);
        assert_eq!(other.header("x-cache"), Some("MISS"));
        assert_eq!(calls(), before + 2);
    }
    // Not deterministic: asked twice, paid twice.
    let warm = chat("a poem", json!({"temperature": 0.7}));
    for _ in 0..2 {
        let mut r = send(port, "cachy", &warm, &[]);
        assert_eq!(r.finish(), End::Clean);
        assert_ne!(r.header("x-cache"), Some("HIT"));
    }
    assert_eq!(calls(), 6);
    // The hits saved the model's price of their answers.
    let report = ledger(&s, "cachy", 6);
    let cache_row = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "cache")
        .cloned()
        .unwrap_or_else(|| panic!("no cache row in {report}"));
    assert_eq!(cache_row["events"], 2);
    assert_eq!(cache_row["cost_micros"], 0);
    assert!(cache_row["savings_micros"].as_u64().unwrap() > 0);
}

on_both_hosts!(twenty_identical_streamed_prompts_make_one_call);
fn twenty_identical_streamed_prompts_make_one_call(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "llm-coalesce", filter("gw-l3", false));
    let port = port_of(&s.url(""));
    let body = chat(
        "the same question from twenty agents",
        json!({"temperature": 0, "stream": true, "max_tokens": 10,
               "stream_options": {"include_usage": true}}),
    );
    let barrier = std::sync::Barrier::new(20);
    let one = |body: &[u8]| {
        let t = std::time::Instant::now();
        let mut st = send(port, "agents", body, &[("x-demo-chunk-delay-ms", "100")]);
        let head = t.elapsed().as_millis();
        let end = st.finish();
        let label = st
            .header("x-cache")
            .map(|l| format!("{l} {head}/{}ms", t.elapsed().as_millis()));
        (label, end, st.received)
    };
    let streams: Vec<(Option<String>, End, Vec<u8>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..20)
            .map(|_| {
                let (barrier, one, body) = (&barrier, &one, &body);
                sc.spawn(move || {
                    barrier.wait();
                    one(body)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Each stream's x-cache, first-byte and last-byte times, for a failure.
    let labels: Vec<Option<&str>> = streams.iter().map(|st| st.0.as_deref()).collect();
    assert_eq!(s.demo.calls_for(PATH), 1, "one upstream call: {labels:?}");
    let first = &streams[0].2;
    for (label, end, bytes) in &streams {
        assert_eq!(*end, End::Clean);
        assert_eq!(bytes, first, "every stream is the same, whole");
        assert!(
            matches!(
                label.as_deref().and_then(|l| l.split(' ').next()),
                Some("MISS" | "COALESCED" | "HIT")
            ),
            "{label:?}"
        );
    }
    assert_eq!(content_events(first), 10);
    let (p, c) = usage_of(first);
    let report = ledger(&s, "agents", 20);
    assert_eq!(report["total"]["events"], 20);
    assert_eq!(
        report["total"]["cost_micros"].as_u64().unwrap(),
        price(p, c)
    );
    assert_eq!(
        report["total"]["savings_micros"].as_u64().unwrap(),
        19 * price(p, c),
        "19 priced at 0, each saving the model's price"
    );

    // One prompt alone, then 4 more once its stream flows: its headers
    // came long before its end, so they follow it rather than lead calls
    // of their own.
    let body = chat(
        "a second question, asked first by one agent",
        json!({"temperature": 0, "stream": true, "max_tokens": 10}),
    );
    let made = stream_events_made(&s);
    let late: Vec<(Option<String>, End, Vec<u8>)> = std::thread::scope(|sc| {
        let mut hs = vec![sc.spawn(|| one(&body))];
        wait_for(
            "the leader's stream flowing",
            Duration::from_secs(20),
            || (stream_events_made(&s) >= made + 2).then_some(()),
        );
        hs.extend((0..4).map(|_| sc.spawn(|| one(&body))));
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let labels: Vec<Option<&str>> = late.iter().map(|st| st.0.as_deref()).collect();
    assert_eq!(
        s.demo.calls_for(PATH),
        2,
        "one more upstream call: {labels:?}"
    );
    assert!(late
        .iter()
        .all(|st| st.1 == End::Clean && st.2 == late[0].2));
}

on_both_hosts!(a_cut_stream_is_priced_from_what_arrived_and_not_stored);
fn a_cut_stream_is_priced_from_what_arrived_and_not_stored(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "llm-cut", filter("gw-l4", false));
    let port = port_of(&s.url(""));
    let content = "count to ten slowly";
    let body = chat(
        content,
        json!({"temperature": 0, "stream": true, "max_tokens": 10,
               "stream_options": {"include_usage": true}}),
    );
    let mut st = send(port, "cutter", &body, &[("x-demo-cut-after", "4")]);
    assert_eq!(st.finish(), End::Cut, "the client sees the cut");
    assert_eq!(content_events(&st.received), 4);
    // Priced from what arrived: 4 completion tokens, and the prompt as the
    // filter estimated it (a quarter of the bytes of its text, "user" and
    // the content).
    let prompt_estimate = ((4 + content.len()) as u64).div_ceil(4);
    let report = ledger(&s, "cutter", 1);
    assert_eq!(
        report["total"]["cost_micros"].as_u64().unwrap(),
        price(prompt_estimate, 4)
    );
    // Nothing was stored: the same prompt goes upstream again.
    let mut again = send(port, "cutter", &body, &[]);
    assert_eq!(again.finish(), End::Clean);
    assert_eq!(again.header("x-cache"), Some("MISS"));
    assert_eq!(s.demo.calls_for(PATH), 2);
}

on_both_hosts!(a_token_budget_holds_across_two_gateways_with_streamed_answers);
fn a_token_budget_holds_across_two_gateways_with_streamed_answers(kind: GatewayKind) {
    let s = Stack::start_with_control_on(kind, "llm-budget", filter("gw-l5", true));
    let second = s.second_gateway(filter("gw-l6", true));
    // 20 prompt words at most + 20 completion tokens: at most 40 000
    // micros an answer; $0.5 a day is a dozen or so of them.
    let budget = 500_000;
    s.control().put_budget("thrifty", budget);
    let ports = [port_of(&s.url("")), second.listen_port()];
    let results: Vec<(u16, Vec<u8>)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let port = ports[t % 2];
                sc.spawn(move || {
                    let mut out = Vec::new();
                    let mut refused = 0;
                    for i in 0..100 {
                        // Not deterministic: every one is paid for.
                        let body = chat(
                            &format!("question {t} {i} about the weather today"),
                            json!({"stream": true, "max_tokens": 20,
                                   "stream_options": {"include_usage": true}}),
                        );
                        let mut st = send(port, "thrifty", &body, &[]);
                        let status = st.status;
                        st.finish();
                        refused += usize::from(status == 429);
                        out.push((status, st.received));
                        if refused >= 3 {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut served = 0u64;
    let mut most = 0u64;
    for (status, body) in &results {
        match status {
            200 => {
                served += 1;
                let (p, c) = usage_of(body);
                most = most.max(price(p, c));
            }
            429 => assert!(
                String::from_utf8_lossy(body).contains("budget_exceeded"),
                "{}",
                String::from_utf8_lossy(body)
            ),
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(body)),
        }
    }
    let report = ledger(&s, "thrifty", served);
    let spent = report["total"]["cost_micros"].as_u64().unwrap();
    eprintln!("token budget: {served} streamed answers, {spent} of {budget} micros spent");
    assert!(
        served >= 3,
        "only {served} answers before the budget stopped them"
    );
    assert!(
        spent <= budget + most,
        "spend {spent} over the budget {budget} plus one answer ({most})"
    );
    assert_eq!(s.demo.calls_for(PATH), served);
}
