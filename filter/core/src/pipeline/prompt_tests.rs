//! Prompt rules and streamed answers against the in-memory host: a JSON
//! POST is read at its body, cached and coalesced by its canonical form
//! per tenant, a non-deterministic one is not shared, a stream is priced
//! from its usage chunk (or from what arrived when cut off), and a
//! budget reserves from `max_tokens`.

use super::*;
use crate::config::parse;
use crate::mem_host::MemHost;

const CFG: &str = r#"{"version":1,
  "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","flush_ms":100,
                "budgets":{"lease":"1","slots":4}},
  "routes":[
  {"name":"chat","match":{"prefix":"/v1/chat/"},"debug_headers":true,
   "prompt":{},
   "cache":{"default_ttl_s":60},
   "coalesce":{},
   "cost":{"cost_per_call":"0.001",
           "tokens":{"models":{"big":{"prompt_per_1k":"0.001","completion_per_1k":"0.002"}},
                     "default_model":"big"},
           "budget":{"estimate":"0.01"}}}]}"#;

fn setup(host: &mut MemHost) -> (Filter, Worker) {
    let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), host);
    filter.create_tables(host).unwrap();
    let worker = Worker::new(&filter.config, host);
    for (tenant, lease) in [("acme", "L1"), ("other", "L2")] {
        let grant = crate::cost::budget::Grant {
            allowance_id: Some(lease.into()),
            granted_micros: 1_000_000,
            expires_at_ms: 1_000_000,
            soft: false,
            hard: false,
        };
        crate::cost::budget::apply_grant(host, 4, tenant, &grant, 10_000, 1_000).unwrap();
    }
    (filter, worker)
}

/// Send a prompt's headers and body; the verdict at its body.
fn prompt(
    f: &Filter,
    w: &mut Worker,
    h: &mut MemHost,
    s: StreamId,
    tenant: &str,
    body: &str,
) -> Verdict {
    h.request_headers = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/v1/chat/completions".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("x-tenant-id".into(), tenant.as_bytes().to_vec()),
    ];
    let v = on_request_headers_eos(f, w, h, s, false);
    assert_eq!(v, Verdict::Continue, "headers go on to the buffer filter");
    assert_eq!(w.requests[&s].phase, Phase::ReadingPrompt);
    h.request_body = body.as_bytes().to_vec();
    let half = body.len() / 2;
    assert_eq!(on_request_body(f, w, h, s, half, false), Verdict::Pause);
    on_request_body(f, w, h, s, body.len(), true)
}

fn respond(
    f: &Filter,
    w: &mut Worker,
    h: &mut MemHost,
    s: StreamId,
    ctype: &str,
    pieces: &[&str],
    end: bool,
) {
    h.response_headers = vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), ctype.as_bytes().to_vec()),
        ("cache-control".into(), b"no-cache".to_vec()),
    ];
    on_response_headers(f, w, h, s, false);
    for (i, p) in pieces.iter().enumerate() {
        h.response_chunk = p.as_bytes().to_vec();
        let last = end && i + 1 == pieces.len();
        assert_eq!(
            on_response_body(f, w, h, s, p.len(), last),
            Verdict::Continue,
            "a chunk is never held"
        );
    }
    on_done(f, w, h, s);
}

/// The upstream's whole JSON answer with its `usage`.
fn respond_json(f: &Filter, w: &mut Worker, h: &mut MemHost, s: StreamId) {
    respond(f, w, h, s, "application/json", &[JSON_ANSWER], true);
}

const DET: &str =
    r#"{"model":"big","temperature":0,"messages":[{"role":"user","content":"hello there"}]}"#;
const DET_REORDERED: &str = r#"{"messages":[{"content":"hello there","role":"user"}],"temperature":0,"model":"big","user":"u1"}"#;
const JSON_ANSWER: &str =
    r#"{"model":"big","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":50}}"#;

fn stream_chunks() -> Vec<String> {
    let mut v: Vec<String> = (0..3)
        .map(|i| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n"))
        .collect();
    v.push("data: {\"model\":\"big\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3}}\n\n".into());
    v.push("data: [DONE]\n\n".into());
    v
}

fn spend_events(f: &Filter, w: &mut Worker, h: &mut MemHost) -> Vec<serde_json::Value> {
    h.now_ms += 1_000;
    on_tick(f, w, h);
    let call = h.last_callout_to("/v1/spend");
    let Some(call) = call else { return Vec::new() };
    let body: serde_json::Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    body["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_same_prompt_in_another_key_order_is_a_hit_priced_at_the_models_price() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    assert_eq!(
        prompt(&f, &mut w, &mut h, 1, "acme", DET),
        Verdict::Continue
    );
    respond_json(&f, &mut w, &mut h, 1);
    assert_eq!(
        prompt(&f, &mut w, &mut h, 2, "acme", DET_REORDERED),
        Verdict::Pause
    );
    let hit = h.replies.last().unwrap();
    assert_eq!(hit.body, JSON_ANSWER.as_bytes());
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    h.response_headers.clear();
    on_response_headers(&f, &mut w, &mut h, 2, true);
    on_done(&f, &mut w, &mut h, 2);
    let events = spend_events(&f, &mut w, &mut h);
    // 100 × 1000 + 50 × 2000 micros per 1k tokens = 200 micros.
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["cost_micros"], 200);
    assert_eq!(events[1]["strategy"], "cache");
    assert_eq!(events[1]["cost_micros"], 0);
    assert_eq!(events[1]["baseline_micros"], 200);
}

#[test]
fn another_tenant_and_a_nondeterministic_prompt_are_misses() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    prompt(&f, &mut w, &mut h, 1, "acme", DET);
    respond_json(&f, &mut w, &mut h, 1);
    assert_eq!(
        prompt(&f, &mut w, &mut h, 2, "other", DET),
        Verdict::Continue
    );
    respond_json(&f, &mut w, &mut h, 2);
    let warm = r#"{"model":"big","temperature":0.7,"messages":[{"role":"user","content":"hi"}]}"#;
    for s in 3..=4 {
        assert_eq!(
            prompt(&f, &mut w, &mut h, s, "acme", warm),
            Verdict::Continue,
            "stream {s}"
        );
        respond_json(&f, &mut w, &mut h, s);
    }
    assert!(h.replies.is_empty(), "nothing answered from the cache");
    assert_eq!(h.counter("cost_optimizer.route.chat.prompt.unshared"), 2);
    assert_eq!(h.counter("cost_optimizer.route.chat.prompt.read"), 4);
}

#[test]
fn a_stream_passes_untouched_and_is_priced_from_its_usage_chunk_then_replayed_whole() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    let body = r#"{"model":"big","stream":true,"seed":1,"messages":[{"content":"x"}]}"#;
    prompt(&f, &mut w, &mut h, 1, "acme", body);
    let chunks = stream_chunks();
    let pieces: Vec<&str> = chunks.iter().map(String::as_str).collect();
    respond(&f, &mut w, &mut h, 1, "text/event-stream", &pieces, true);
    assert_eq!(
        h.counter("cost_optimizer.route.chat.prompt.streams_usage"),
        1
    );
    // The same prompt: the whole stream, same bytes, same event bounds.
    assert_eq!(prompt(&f, &mut w, &mut h, 2, "acme", body), Verdict::Pause);
    let hit = h.replies.last().unwrap();
    assert_eq!(hit.body, chunks.concat().as_bytes());
    assert_eq!(hit.header("content-type"), Some("text/event-stream"));
    on_response_headers(&f, &mut w, &mut h, 2, true);
    on_done(&f, &mut w, &mut h, 2);
    let events = spend_events(&f, &mut w, &mut h);
    // 10 × 1000 + 3 × 2000 = 16 000 / 1000.
    assert_eq!(events[0]["cost_micros"], 16);
    assert_eq!(events[1]["baseline_micros"], 16);
    assert_eq!(events[1]["cost_micros"], 0);
}

#[test]
fn a_cut_stream_is_priced_from_what_arrived_and_not_stored() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    let body = r#"{"model":"big","stream":true,"temperature":0,"max_tokens":10,"messages":[{"content":"12345678"}]}"#;
    prompt(&f, &mut w, &mut h, 1, "acme", body);
    let chunks = stream_chunks();
    // Two content events arrive, then the stream is reset.
    respond(
        &f,
        &mut w,
        &mut h,
        1,
        "text/event-stream",
        &[&chunks[0], &chunks[1]],
        false,
    );
    assert_eq!(
        h.counter("cost_optimizer.route.chat.prompt.streams_estimated"),
        1
    );
    assert_eq!(
        prompt(&f, &mut w, &mut h, 2, "acme", body),
        Verdict::Continue,
        "not stored"
    );
    let events = spend_events(&f, &mut w, &mut h);
    // Prompt estimate: 8 bytes of text = 2 tokens; 2 completion events:
    // 2 × 1000 + 2 × 2000 = 6000 / 1000.
    assert_eq!(events[0]["cost_micros"], 6);
}

#[test]
fn identical_prompts_in_flight_wait_for_one_answer() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    let body = r#"{"model":"big","stream":true,"temperature":0,"messages":[{"content":"same"}]}"#;
    assert_eq!(
        prompt(&f, &mut w, &mut h, 1, "acme", body),
        Verdict::Continue,
        "leader"
    );
    for s in 2..=4 {
        assert_eq!(
            prompt(&f, &mut w, &mut h, s, "acme", body),
            Verdict::Pause,
            "follower {s}"
        );
        assert_eq!(w.requests[&s].phase, Phase::Parked(Wait::Leader));
    }
    let chunks = stream_chunks();
    let pieces: Vec<&str> = chunks.iter().map(String::as_str).collect();
    respond(&f, &mut w, &mut h, 1, "text/event-stream", &pieces, true);
    assert_eq!(h.replies.len(), 3);
    for r in &h.replies {
        assert_eq!(r.body, chunks.concat().as_bytes());
        assert_eq!(r.header("x-cache"), Some("COALESCED"));
    }
    for s in 2..=4 {
        on_response_headers(&f, &mut w, &mut h, s, true);
        on_done(&f, &mut w, &mut h, s);
    }
    let events = spend_events(&f, &mut w, &mut h);
    let coalesced: Vec<_> = events
        .iter()
        .filter(|e| e["strategy"] == "coalesced")
        .collect();
    assert_eq!(coalesced.len(), 3);
    assert!(coalesced
        .iter()
        .all(|e| e["cost_micros"] == 0 && e["baseline_micros"] == 16));
}

#[test]
fn a_budget_reserves_what_max_tokens_can_cost() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    // 8 bytes of text = 2 prompt tokens, 500 completion tokens at most:
    // 2 × 1000 + 500 × 2000 = 1 002 000 / 1000 = 1002 micros.
    let body = r#"{"model":"big","max_tokens":500,"messages":[{"content":"12345678"}]}"#;
    prompt(&f, &mut w, &mut h, 1, "acme", body);
    assert_eq!(
        w.requests[&1].cost.held.as_ref().map(|h| h.estimate),
        Some(1002)
    );
    // Without a cap: the rule's estimate.
    let body = r#"{"model":"big","messages":[{"content":"12345678"}]}"#;
    prompt(&f, &mut w, &mut h, 2, "acme", body);
    assert_eq!(
        w.requests[&2].cost.held.as_ref().map(|h| h.estimate),
        Some(10_000)
    );
}

#[test]
fn a_body_over_the_bound_or_not_json_shares_nothing_and_is_not_a_write() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    for (s, body) in [(1, "not json"), (2, "not json")] {
        assert_eq!(
            prompt(&f, &mut w, &mut h, s, "acme", body),
            Verdict::Continue
        );
        respond_json(&f, &mut w, &mut h, s);
    }
    assert!(h.replies.is_empty());
    assert_eq!(h.counter("cost_optimizer.route.chat.prompt.unread"), 2);
    assert_eq!(h.counter("cost_optimizer.route.chat.cache.bypass"), 2);
}

/// A stream's headers come long before its end: a prompt that arrives
/// after the leader's headers, while its stream still flows, follows it
/// (the turn does not end at the headers because nobody had joined yet).
#[test]
fn a_prompt_arriving_while_the_leaders_stream_flows_follows_it() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    let body = r#"{"model":"big","stream":true,"temperature":0,"messages":[{"content":"late"}]}"#;
    assert_eq!(
        prompt(&f, &mut w, &mut h, 1, "acme", body),
        Verdict::Continue,
        "leader"
    );
    h.response_headers = vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), b"text/event-stream".to_vec()),
    ];
    on_response_headers(&f, &mut w, &mut h, 1, false);
    let chunks = stream_chunks();
    h.response_chunk = chunks[0].as_bytes().to_vec();
    on_response_body(&f, &mut w, &mut h, 1, chunks[0].len(), false);
    assert_eq!(
        prompt(&f, &mut w, &mut h, 2, "acme", body),
        Verdict::Pause,
        "follows"
    );
    assert_eq!(w.requests[&2].phase, Phase::Parked(Wait::Leader));
    for c in &chunks[1..] {
        h.response_chunk = c.as_bytes().to_vec();
        on_response_body(&f, &mut w, &mut h, 1, c.len(), c.contains("[DONE]"));
    }
    on_done(&f, &mut w, &mut h, 1);
    assert_eq!(h.replies.len(), 1);
    assert_eq!(h.replies[0].body, chunks.concat().as_bytes());
}
