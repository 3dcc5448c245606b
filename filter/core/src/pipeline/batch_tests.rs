//! The batching stage against the in-memory host: members gathered,
//! flushed by the timer, answered from their parts or sent alone.

use super::*;
use crate::config::parse;
use crate::mem_host::MemHost;

const CFG: &str = r#"{"version":1,"routes":[
  {"name":"q","match":{"prefix":"/q/"},"sla_ms":2000,
   "batch":{"upstream":"demo_api","path":"/api/batch","window_ms":100,"max_size":3}},
  {"name":"g","match":{"prefix":"/graphql"},"sla_ms":2000,
   "batch":{"upstream":"demo_api","path":"/graphql","format":"graphql","window_ms":100,"max_size":3}}]}"#;

fn setup() -> (Filter, Worker, MemHost) {
    let mut host = MemHost::new();
    let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), &mut host);
    let worker = Worker::new(&filter.config, &mut host);
    (filter, worker, host)
}

fn get(f: &Filter, w: &mut Worker, h: &mut MemHost, stream: u32, path: &str) -> (Verdict, ()) {
    h.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
    ];
    (on_request_headers(f, w, h, stream), ())
}

#[test]
fn members_are_sent_as_one_call_and_answered_from_their_parts() {
    let (f, mut w, mut h) = setup();
    h.now_ms = 1_000;
    for s in 1..=2 {
        assert_eq!(
            get(&f, &mut w, &mut h, s, &format!("/q/{s}")).0,
            Verdict::Pause
        );
    }
    on_tick(&f, &mut w, &mut h);
    assert!(h.callouts.is_empty(), "the window is still open");
    h.now_ms = 1_200;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.callouts.len(), 1);
    let call = h.callouts[0].clone();
    assert_eq!(call.target, "demo_api");
    let sent: serde_json::Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    let ids: Vec<String> = sent["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    h.callout_headers = vec![(":status".into(), b"200".to_vec())];
    // Member 2's part is missing: it goes alone.
    h.callout_body = serde_json::json!({"responses":[{"id": ids[0], "status": 201, "headers": {"content-type": "text/plain"}, "body": "one"}]})
        .to_string()
        .into_bytes();
    let n = h.callout_body.len();
    on_callout_response(&f, &mut w, &mut h, call.token, n);
    assert_eq!(h.replies.len(), 1);
    assert_eq!(
        (
            h.replies[0].stream,
            h.replies[0].status,
            h.replies[0].body.as_slice()
        ),
        (1, 201, &b"one"[..])
    );
    assert_eq!(h.replies[0].header("x-cache"), Some("BATCHED"));
    assert_eq!(h.resumed, vec![2]);
}

#[test]
fn a_full_batch_is_handed_to_the_timer_at_once_and_a_failed_call_releases_all() {
    let (f, mut w, mut h) = setup();
    for s in 1..=3 {
        get(&f, &mut w, &mut h, s, &format!("/q/{s}"));
    }
    assert_eq!(
        h.tick_periods.last(),
        Some(&1),
        "full: the timer sends it on its next 1 ms tick"
    );
    on_tick(&f, &mut w, &mut h);
    let token = h.callouts[0].token;
    h.callout_headers = vec![];
    on_callout_response(&f, &mut w, &mut h, token, 0);
    assert_eq!(h.resumed, vec![1, 2, 3]);
}

fn post(f: &Filter, w: &mut Worker, h: &mut MemHost, stream: u32, path: &str) -> Phase {
    h.request_headers = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
    ];
    let v = on_request_headers_eos(f, w, h, stream, false);
    assert_eq!(v, Verdict::Continue, "headers go on to the buffer filter");
    w.requests.get(&stream).expect("a rule matched").phase
}

fn body(
    f: &Filter,
    w: &mut Worker,
    h: &mut MemHost,
    stream: u32,
    size: usize,
    end: bool,
) -> Verdict {
    on_request_body(f, w, h, stream, size, end)
}

#[test]
fn a_rest_rule_without_bodies_sends_a_request_with_a_body_alone() {
    let (f, mut w, mut h) = setup();
    let phase = post(&f, &mut w, &mut h, 7, "/q/1");
    assert_eq!(phase, Phase::Upstream);
    h.now_ms += 500;
    on_tick(&f, &mut w, &mut h);
    assert!(h.callouts.is_empty());
}

#[test]
fn graphql_members_join_once_their_body_is_complete_and_are_answered_by_position() {
    let (f, mut w, mut h) = setup();
    h.now_ms = 1_000;
    let ops = [
        r#"{"query":"{ a }"}"#,
        r#"{"query":"{ b }","variables":{"n":2}}"#,
    ];
    for (i, op) in ops.iter().enumerate() {
        let stream = 10 + i as u32;
        assert_eq!(
            post(&f, &mut w, &mut h, stream, "/graphql"),
            Phase::GatheringBody
        );
        h.request_body = op.as_bytes().to_vec();
        let half = op.len() / 2;
        assert_eq!(
            body(&f, &mut w, &mut h, stream, half, false),
            Verdict::Pause,
            "keep buffering until the body is complete"
        );
        assert_eq!(
            body(&f, &mut w, &mut h, stream, op.len(), true),
            Verdict::Pause,
            "joined its batch"
        );
        assert_eq!(w.requests[&stream].phase, Phase::Parked(Wait::Batch));
    }
    h.now_ms = 1_200;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.callouts.len(), 1);
    let call = h.callouts[0].clone();
    let sent: serde_json::Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    assert_eq!(
        sent,
        serde_json::json!([{"query":"{ a }"},{"query":"{ b }","variables":{"n":2}}])
    );
    h.callout_headers = vec![(":status".into(), b"200".to_vec())];
    h.callout_body = br#"[{"data":{"a":1}},{"data":{"b":2}}]"#.to_vec();
    let n = h.callout_body.len();
    on_callout_response(&f, &mut w, &mut h, call.token, n);
    assert_eq!(h.replies.len(), 2);
    assert_eq!(h.replies[0].stream, 10);
    assert_eq!(h.replies[0].body, br#"{"data":{"a":1}}"#.to_vec());
    assert_eq!(h.replies[1].stream, 11);
    assert_eq!(h.replies[1].body, br#"{"data":{"b":2}}"#.to_vec());
}

#[test]
fn an_oversized_or_unbatchable_body_goes_alone() {
    let (f, mut w, mut h) = setup();
    post(&f, &mut w, &mut h, 3, "/graphql");
    assert_eq!(
        body(&f, &mut w, &mut h, 3, 64 * 1024 + 1, false),
        Verdict::Continue
    );
    assert_eq!(w.requests[&3].phase, Phase::Upstream);
    post(&f, &mut w, &mut h, 4, "/graphql");
    h.request_body = b"[1,2]".to_vec(); // not one GraphQL operation
    assert_eq!(body(&f, &mut w, &mut h, 4, 5, true), Verdict::Continue);
    assert_eq!(w.requests[&4].phase, Phase::Upstream);
    h.now_ms += 1_000;
    on_tick(&f, &mut w, &mut h);
    assert!(h.callouts.is_empty());
}

#[test]
fn a_batch_never_exceeds_its_max_size() {
    let (f, mut w, mut h) = setup();
    for s in 1..=5 {
        get(&f, &mut w, &mut h, s, &format!("/q/{s}"));
    }
    on_tick(&f, &mut w, &mut h);
    assert_eq!(
        h.callouts.len(),
        1,
        "the full batch left; the rest waits for its window"
    );
    let sent: serde_json::Value =
        serde_json::from_slice(h.callouts[0].body.as_ref().unwrap()).unwrap();
    assert_eq!(sent["requests"].as_array().unwrap().len(), 3);
    h.now_ms += 1_000;
    on_tick(&f, &mut w, &mut h);
    let sent: serde_json::Value =
        serde_json::from_slice(h.callouts[1].body.as_ref().unwrap()).unwrap();
    assert_eq!(sent["requests"].as_array().unwrap().len(), 2);
}

/// A batch call the host never answers (Kong's engine reading a huge
/// answer) does not hold its members past its timeout: they go alone,
/// and the late answer is dropped.
#[test]
fn members_of_a_call_unanswered_past_its_timeout_go_alone() {
    let (f, mut w, mut h) = setup();
    h.now_ms = 1_000;
    for s in 1..=2 {
        get(&f, &mut w, &mut h, s, &format!("/q/{s}"));
    }
    h.now_ms = 1_200;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.callouts.len(), 1);
    let call = h.callouts[0].clone();
    let timeout = call.timeout_ms;
    h.now_ms = 1_200 + timeout + batch_call::ANSWER_GRACE_MS - 1;
    on_tick(&f, &mut w, &mut h);
    assert!(h.resumed.is_empty(), "still within its timeout");
    h.now_ms += 1;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.resumed, vec![1, 2]);
    assert_eq!(h.counter("cost_optimizer.route.q.batch.fallback_failed"), 2);
    h.callout_headers = vec![(":status".into(), b"200".to_vec())];
    h.callout_body = br#"{"responses":[]}"#.to_vec();
    let n = h.callout_body.len();
    on_callout_response(&f, &mut w, &mut h, call.token, n);
    assert!(h.replies.is_empty(), "the late answer is dropped");
    assert_eq!(h.resumed, vec![1, 2]);
}
