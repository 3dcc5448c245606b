use super::*;

#[test]
fn cas_write_with_stale_token_fails() {
    let mut host = MemHost::new();
    assert_eq!(host.shared_create("k", b"a"), Ok(true));
    assert_eq!(host.shared_create("k", b"b"), Ok(false));
    let (v, cas) = host.shared_get("k").unwrap().unwrap();
    assert_eq!(v, b"a");
    host.shared_set("k", b"c", cas).unwrap();
    assert_eq!(host.shared_set("k", b"d", cas), Err(HostError::CasMismatch));
    assert_eq!(host.shared.borrow().value("k"), Some(&b"c"[..]));
}

#[test]
fn injected_conflicts_fail_then_clear() {
    let store = SharedStore::new_shared();
    let mut a = MemHost::with_store(store.clone());
    let b = MemHost::with_store(store.clone());
    a.shared_create("k", b"0").unwrap();
    store.borrow_mut().inject_conflicts(2);
    let (_, cas) = a.shared_get("k").unwrap().unwrap();
    assert_eq!(a.shared_set("k", b"1", cas), Err(HostError::CasMismatch));
    let (_, cas) = b.shared_get("k").unwrap().unwrap();
    assert_eq!(a.shared_set("k", b"1", cas), Err(HostError::CasMismatch));
    let (_, cas) = b.shared_get("k").unwrap().unwrap();
    assert_eq!(a.shared_set("k", b"1", cas), Ok(()));
    assert_eq!(b.shared_get("k").unwrap().unwrap().0, b"1");
}

#[test]
fn set_on_missing_key_is_refused() {
    let mut host = MemHost::new();
    assert_eq!(host.shared_set("nope", b"x", 0), Err(HostError::NotFound));
}

#[test]
fn replies_to_gone_streams_fail() {
    let mut host = MemHost::new();
    host.gone.insert(7);
    let reply = |headers: &'static [(&'static str, &'static [u8])]| Wake::Reply {
        status: 200,
        headers,
        body: b"x",
    };
    assert_eq!(host.wake(7, reply(&[])), Err(HostError::BadArgument));
    assert_eq!(host.wake(7, Wake::Resume), Err(HostError::BadArgument));
    assert!(host.wake(8, reply(&[("a", b"b")])).is_ok());
    assert_eq!(host.replies[0].header("A"), Some("b"));
}

#[test]
fn counters_are_named() {
    let mut host = MemHost::new();
    let a = host.define_counter("a").unwrap();
    let b = host.define_counter("b").unwrap();
    assert_eq!(host.define_counter("a"), Some(a));
    host.increment(a, 2);
    host.increment(b, 1);
    host.increment(a, 3);
    assert_eq!(host.counter("a"), 5);
    assert_eq!(host.counter("b"), 1);
}

// --- dispatch statuses the Rust SDK panicked on -----------------------------
//
// The SDK's `dispatch_http_call` panicked on every status but Ok,
// BadArgument and InternalFailure; the module now makes the call itself
// (filter/wasm/src/sdk.rs and abi.rs) and hands any status to the core.
// Whatever status a host answers a callout with, each stage that makes one
// goes on as it does on any failed call, and says so in the log.

use crate::host::Level;
use crate::pipeline::{
    self, on_done, on_request_headers, on_response_body, on_response_headers, on_tick, Filter,
    Verdict, Worker,
};

/// Every proxy-wasm status but Ok (0), BadArgument (2) and
/// InternalFailure (10), and one that no ABI version defines.
const STATUSES_THE_SDK_PANICS_ON: [u32; 11] = [1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 99];

#[test]
fn statuses_map_onto_host_errors() {
    assert_eq!(HostError::from_status(1), HostError::NotFound);
    assert_eq!(HostError::from_status(2), HostError::BadArgument);
    assert_eq!(HostError::from_status(7), HostError::Other(7));
    assert_eq!(HostError::from_status(8), HostError::CasMismatch);
    assert_eq!(HostError::from_status(12), HostError::Unsupported);
    assert_eq!(HostError::from_status(99), HostError::Other(99));
}

/// A fresh worker of `cfg` (tables created), its clock at `now_ms`.
fn failing(cfg: &str, now_ms: u64) -> (MemHost, Filter, Worker) {
    let store = SharedStore::new_shared();
    crate::pipeline::test_worker(&store, cfg, now_ms)
}

fn get(h: &mut MemHost, path: &str) {
    h.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        ("x-tenant-id".into(), b"acme".to_vec()),
    ];
}

/// Upstream answers `stream` 200 with `body` and `headers`, and it ends.
fn upstream(
    f: &Filter,
    w: &mut Worker,
    h: &mut MemHost,
    stream: StreamId,
    headers: &[(&str, &str)],
    body: &str,
) {
    h.response_headers = [(":status", "200")]
        .iter()
        .chain(headers)
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    on_response_headers(f, w, h, stream, false);
    h.response_chunk = body.as_bytes().to_vec();
    on_response_body(f, w, h, stream, body.len(), true);
    on_done(f, w, h, stream);
}

fn warned(h: &MemHost, what: &str) -> bool {
    h.logs
        .borrow()
        .iter()
        .any(|(level, m)| *level >= Level::Warn && m.contains(what))
}

#[test]
fn a_batch_whose_call_cannot_start_sends_its_members_alone() {
    const CFG: &str = r#"{"version":1,"routes":[
      {"name":"q","match":{"prefix":"/q/"},"sla_ms":2000,
       "batch":{"upstream":"demo_api","path":"/api/batch","window_ms":100,"max_size":3}}]}"#;
    for status in STATUSES_THE_SDK_PANICS_ON {
        let (mut h, f, mut w) = failing(CFG, 1_000);
        for s in 1..=2 {
            get(&mut h, &format!("/q/{s}"));
            assert_eq!(on_request_headers(&f, &mut w, &mut h, s), Verdict::Pause);
        }
        h.call_error = Some(HostError::from_status(status));
        h.now_ms = 1_200;
        on_tick(&f, &mut w, &mut h);
        assert!(h.callouts.is_empty());
        assert_eq!(h.resumed, vec![1, 2], "status {status}: both go upstream");
        assert!(h.replies.is_empty());
        assert!(warned(&h, "failed to start"), "status {status}");
    }
}

#[test]
fn a_spend_report_that_cannot_start_is_kept_and_sent_later() {
    const CFG: &str = r#"{"version":1,
      "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","flush_ms":100},
      "routes":[{"name":"free","match":{"prefix":"/free/"},"cost":{"cost_per_call":"0.003"}}]}"#;
    for status in STATUSES_THE_SDK_PANICS_ON {
        let (mut h, f, mut w) = failing(CFG, 10_000);
        get(&mut h, "/free/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 1), Verdict::Continue);
        upstream(&f, &mut w, &mut h, 1, &[], "ok");
        h.call_error = Some(HostError::from_status(status));
        h.now_ms = 10_200;
        on_tick(&f, &mut w, &mut h);
        assert!(h.callouts.is_empty());
        assert!(
            warned(&h, "spend report could not start"),
            "status {status}"
        );
        // The host takes calls again: the same event goes out.
        h.call_error = None;
        h.now_ms = 100_000;
        on_tick(&f, &mut w, &mut h);
        let call = h.callouts.last().expect("the report is sent again");
        let body: serde_json::Value =
            serde_json::from_slice(call.body.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(body["events"][0]["cost_micros"], 3_000, "status {status}");
    }
}

#[test]
fn a_lease_call_that_cannot_start_does_not_hold_the_request() {
    const CFG: &str = r#"{"version":1,
      "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","flush_ms":100,
                    "budgets":{"lease":"0.01","slots":4}},
      "routes":[{"name":"paid","match":{"prefix":"/paid/"},
                 "cost":{"cost_per_call":"0.002","budget":{}}}]}"#;
    for status in STATUSES_THE_SDK_PANICS_ON {
        let (mut h, f, mut w) = failing(CFG, 10_000);
        get(&mut h, "/paid/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 7), Verdict::Pause);
        h.call_error = Some(HostError::from_status(status));
        on_tick(&f, &mut w, &mut h);
        assert!(h.callouts.is_empty());
        assert!(warned(&h, "could not start"), "status {status}");
        assert_eq!(h.resumed, vec![7], "status {status}");
    }
}

#[test]
fn a_purge_poll_that_cannot_start_leaves_the_cache_serving() {
    const CFG: &str = r#"{"version":1,
      "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","purge_poll_ms":200},
      "routes":[{"name":"items","match":{"prefix":"/api/items"},"cache":{}}]}"#;
    for status in STATUSES_THE_SDK_PANICS_ON {
        let (mut h, f, mut w) = failing(CFG, 10_000);
        get(&mut h, "/api/items/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 1), Verdict::Continue);
        upstream(
            &f,
            &mut w,
            &mut h,
            1,
            &[("cache-control", "max-age=60")],
            "one",
        );
        h.call_error = Some(HostError::from_status(status));
        h.now_ms = 10_500;
        on_tick(&f, &mut w, &mut h);
        assert!(h.callouts.is_empty());
        assert!(warned(&h, "snapshot poll failed"), "status {status}");
        get(&mut h, "/api/items/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 2), Verdict::Pause);
        let hit = h.replies.last().expect("answered from the cache");
        assert_eq!((hit.stream, hit.body.as_slice()), (2, &b"one"[..]));
    }
}

#[test]
fn a_refresh_that_cannot_start_leaves_the_stale_answer() {
    const CFG: &str = r#"{"version":1,
      "routes":[{"name":"items","match":{"prefix":"/api/items"},
                 "cache":{"xfetch_beta":0,"refresh":{"target":"origin","timeout_ms":900}}}]}"#;
    for status in STATUSES_THE_SDK_PANICS_ON {
        let t = 1_000_000;
        let (mut h, f, mut w) = failing(CFG, t);
        get(&mut h, "/api/items/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 1), Verdict::Continue);
        let swr = [("cache-control", "max-age=1, stale-while-revalidate=60")];
        upstream(&f, &mut w, &mut h, 1, &swr, "old");
        h.now_ms = t + 2_000;
        get(&mut h, "/api/items/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 2), Verdict::Pause);
        let stale = h.replies.last().and_then(|r| r.header("x-cache"));
        assert_eq!(stale, Some("STALE"));
        h.call_error = Some(HostError::from_status(status));
        on_tick(&f, &mut w, &mut h);
        assert!(h.callouts.is_empty());
        assert!(warned(&h, "background refresh"), "status {status}");
        get(&mut h, "/api/items/1");
        assert_eq!(on_request_headers(&f, &mut w, &mut h, 3), Verdict::Pause);
        let again = h
            .replies
            .last()
            .map(|r| (r.header("x-cache"), r.body.as_slice()));
        assert_eq!(again, Some((Some("STALE"), &b"old"[..])), "status {status}");
    }
}

#[test]
fn on_kong_a_request_that_cannot_make_its_wake_call_does_not_wait() {
    const CFG: &str = r#"{"version":1,"host":"kong","wake":{"target":"127.0.0.1:8081"},
      "routes":[
        {"name":"live","match":{"prefix":"/live/"},"sla_ms":1000,"coalesce":{"grace_ms":100}},
        {"name":"queued","match":{"prefix":"/q/"},"sla_ms":5000,"priority":"medium",
         "limit":{"by":"tenant","token_bucket":{"capacity":1,"refill_per_s":10.0}}}]}"#;
    for status in STATUSES_THE_SDK_PANICS_ON {
        let (mut h, f, mut w) = failing(CFG, 1_700_000_000_000);
        h.own_context_wakes = true;
        pipeline::start_timer(&f, &mut w, &mut h);
        h.call_error = Some(HostError::from_status(status));
        let send = |h: &mut MemHost, w: &mut Worker, stream, path| {
            h.context = Some(stream);
            get(h, path);
            on_request_headers(&f, w, h, stream)
        };
        assert_eq!(send(&mut h, &mut w, 1, "/live/x"), Verdict::Continue);
        // A follower goes on at once instead of waiting for its leader.
        assert_eq!(send(&mut h, &mut w, 2, "/live/x"), Verdict::Continue);
        // A request that would queue is refused at once.
        assert_eq!(send(&mut h, &mut w, 10, "/q/a"), Verdict::Continue);
        assert_eq!(send(&mut h, &mut w, 11, "/q/a"), Verdict::Pause);
        let refused = h.replies.last().map(|r| (r.stream, r.status));
        assert_eq!(refused, Some((11, 503)), "status {status}");
        assert!(warned(&h, "cannot make its wake call"), "status {status}");
    }
}
