//! Background refresh through the pipeline's hooks, against the in-memory
//! host: the lease winner is answered stale at once, the root sends one
//! refresh on its tick, and its answer (a `304` or a new body) lands in the
//! cache.

use crate::mem_host::MemHost;
use crate::pipeline::{
    on_callout_response, on_done, on_request_headers, on_response_body, on_response_headers,
    on_tick, Filter, Verdict, Worker,
};

const CFG: &str = r#"{"version":1,
  "routes":[{"name":"items","match":{"prefix":"/api/items"},
             "cache":{"xfetch_beta":0,"refresh":{"target":"origin","timeout_ms":900}}}]}"#;

struct W {
    host: MemHost,
    filter: Filter,
    worker: Worker,
    next_stream: u32,
}

impl W {
    fn new() -> W {
        let store = crate::mem_host::SharedStore::new_shared();
        let (host, filter, worker) = crate::pipeline::test_worker(&store, CFG, 1_000_000);
        W {
            host,
            filter,
            worker,
            next_stream: 1,
        }
    }

    /// A GET at `at`: the cache's answer (`x-cache`, body), or it goes
    /// upstream and is answered with `body`.
    fn get(&mut self, at: u64, body: &str) -> (String, String) {
        let stream = self.next_stream;
        self.next_stream += 1;
        self.host.now_ms = at;
        self.host.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), b"/api/items/1?x=1".to_vec()),
            (":authority".into(), b"api.example.com".to_vec()),
            ("x-tenant-id".into(), b"acme".to_vec()),
            ("accept".into(), b"application/json".to_vec()),
        ];
        let replies = self.host.replies.len();
        let (f, w, h) = (&self.filter, &mut self.worker, &mut self.host);
        if on_request_headers(f, w, h, stream) == Verdict::Pause {
            let r = &h.replies[replies];
            let out = (
                r.header("x-cache").unwrap_or_default().to_string(),
                String::from_utf8_lossy(&r.body).into_owned(),
            );
            on_done(f, w, h, stream);
            return out;
        }
        h.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            (
                "cache-control".into(),
                b"max-age=1, stale-while-revalidate=60".to_vec(),
            ),
            ("etag".into(), b"\"v1\"".to_vec()),
            ("content-length".into(), body.len().to_string().into_bytes()),
        ];
        on_response_headers(f, w, h, stream, false);
        h.response_chunk = body.as_bytes().to_vec();
        on_response_body(f, w, h, stream, body.len(), true);
        on_done(f, w, h, stream);
        (
            h.response_header("x-cache").unwrap_or_default().to_string(),
            body.to_string(),
        )
    }

    fn tick(&mut self) -> Vec<crate::mem_host::SentCallout> {
        let before = self.host.callouts.len();
        on_tick(&self.filter, &mut self.worker, &mut self.host);
        self.host.callouts[before..].to_vec()
    }

    fn answer(&mut self, token: u32, headers: &[(&str, &str)], body: &str) {
        self.host.callout_headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        self.host.callout_body = body.as_bytes().to_vec();
        let (f, w, h) = (&self.filter, &mut self.worker, &mut self.host);
        on_callout_response(f, w, h, token, body.len());
    }
}

fn header<'a>(c: &'a crate::mem_host::SentCallout, name: &str) -> Option<&'a str> {
    c.headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn the_lease_winner_is_answered_stale_and_one_refresh_goes_from_the_timer() {
    let mut w = W::new();
    let t = 1_000_000;
    assert_eq!(w.get(t, "old"), s("MISS", "old"));
    assert!(w.tick().is_empty(), "nothing to refresh yet");
    // Stale: answered at once, a refresh queued; the next one too, with
    // no second refresh (the lease is taken).
    assert_eq!(w.get(t + 2_000, "unused"), s("STALE", "old"));
    assert_eq!(w.get(t + 2_001, "unused"), s("STALE", "old"));
    let sent = w.tick();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let call = &sent[0];
    assert_eq!(call.target, "origin");
    assert_eq!(call.timeout_ms, 900);
    assert_eq!(header(call, ":method"), Some("GET"));
    assert_eq!(header(call, ":path"), Some("/api/items/1?x=1"));
    assert_eq!(header(call, ":authority"), Some("api.example.com"));
    assert_eq!(header(call, "accept"), Some("application/json"));
    assert_eq!(header(call, "if-none-match"), Some("\"v1\""));
    assert!(w.tick().is_empty(), "sent once");
    // A new answer replaces the entry.
    w.host.now_ms = t + 2_100;
    w.answer(
        call.token,
        &[
            (":status", "200"),
            ("cache-control", "max-age=60"),
            ("content-length", "3"),
        ],
        "new",
    );
    assert_eq!(w.get(t + 2_200, "unused"), s("HIT", "new"));
    assert_eq!(
        w.host.counter("cost_optimizer.route.items.cache.refreshes"),
        1
    );
}

#[test]
fn a_304_to_the_refresh_renews_the_entry_and_a_failure_leaves_it() {
    let mut w = W::new();
    let t = 1_000_000;
    w.get(t, "old");
    assert_eq!(w.get(t + 2_000, "unused"), s("STALE", "old"));
    let call = w.tick().remove(0);
    // The upstream fails: the entry stays stale; after the lease a new
    // refresh goes.
    w.answer(call.token, &[(":status", "503")], "");
    assert_eq!(w.get(t + 2_100, "unused"), s("STALE", "old"));
    assert!(w.tick().is_empty(), "lease still held");
    // The lease lasts twice the rule's SLA (2 s by default).
    assert_eq!(w.get(t + 6_100, "unused"), s("STALE", "old"));
    let call = w.tick().remove(0);
    w.host.now_ms = t + 6_150;
    w.answer(
        call.token,
        &[(":status", "304"), ("cache-control", "max-age=60")],
        "",
    );
    assert_eq!(w.get(t + 6_200, "unused"), s("HIT", "old"));
    assert_eq!(
        w.host
            .counter("cost_optimizer.route.items.cache.revalidated"),
        1
    );
}

/// Review findings: an answer of another status than the entry's is not
/// taken for the resource, and a refresh whose answer never comes stops
/// holding a place after its timeout.
#[test]
fn a_refresh_answered_with_another_status_or_never_answered_changes_nothing() {
    let mut w = W::new();
    let t = 1_000_000;
    w.get(t, "old");
    assert_eq!(w.get(t + 2_000, "unused"), s("STALE", "old"));
    let call = w.tick().remove(0);
    w.host.now_ms = t + 2_100;
    w.answer(
        call.token,
        &[
            (":status", "404"),
            ("cache-control", "max-age=600"),
            ("content-length", "4"),
        ],
        "gone",
    );
    assert_eq!(w.get(t + 2_200, "unused"), s("STALE", "old"));
    assert_eq!(w.worker.cache.refreshes.in_flight_len(), 0);
    // Another refresh after the lease; its answer never comes.
    assert_eq!(w.get(t + 6_100, "unused"), s("STALE", "old"));
    assert_eq!(w.tick().len(), 1);
    assert_eq!(w.worker.cache.refreshes.in_flight_len(), 1);
    w.host.now_ms = t + 6_100 + 900 + 1_001;
    w.tick();
    assert_eq!(w.worker.cache.refreshes.in_flight_len(), 0, "forgotten");
}
