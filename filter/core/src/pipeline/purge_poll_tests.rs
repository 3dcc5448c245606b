//! The purge poll through the pipeline's hooks, against the in-memory
//! host: the timer asks cost-control for the snapshot (one worker at a
//! time, conditional on the version it has), and its purges turn hits into
//! misses on every worker.

use std::cell::RefCell;
use std::rc::Rc;

use crate::host::Level;
use crate::mem_host::{MemHost, SharedStore};
use crate::pipeline::{
    on_callout_response, on_done, on_request_headers, on_response_body, on_response_headers,
    on_tick, Filter, Verdict, Worker,
};

const CFG: &str = r#"{"version":1,
  "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","timeout_ms":1000,
                "purge_poll_ms":200},
  "routes":[{"name":"items","match":{"prefix":"/api/items"},"debug_headers":true,"cache":{}}]}"#;

struct W {
    host: MemHost,
    filter: Filter,
    worker: Worker,
    next_stream: u32,
}

fn gateway(cfg: &str) -> (Rc<RefCell<SharedStore>>, W, W) {
    let store = SharedStore::new_shared();
    let mk = || {
        let (host, filter, worker) = crate::pipeline::test_worker(&store, cfg, 10_000);
        W {
            host,
            filter,
            worker,
            next_stream: 1,
        }
    };
    let a = mk();
    let b = mk();
    (store, a, b)
}

impl W {
    /// A GET; `"HIT"` when the filter answered it from the cache, else it
    /// goes upstream, is answered 200 with `cache-tag: tags`, and stored.
    fn get(&mut self, tenant: &str, path: &str, tags: &str) -> &'static str {
        let stream = self.next_stream;
        self.next_stream += 1;
        self.host.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            ("x-tenant-id".into(), tenant.as_bytes().to_vec()),
        ];
        let replies = self.host.replies.len();
        let v = on_request_headers(&self.filter, &mut self.worker, &mut self.host, stream);
        if v == Verdict::Pause {
            let r = &self.host.replies[replies];
            assert_eq!(r.header("x-cache"), Some("HIT"));
            on_done(&self.filter, &mut self.worker, &mut self.host, stream);
            return "HIT";
        }
        self.host.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("cache-control".into(), b"max-age=600".to_vec()),
            ("content-length".into(), b"4".to_vec()),
            ("cache-tag".into(), tags.as_bytes().to_vec()),
        ];
        let (f, w, h) = (&self.filter, &mut self.worker, &mut self.host);
        on_response_headers(f, w, h, stream, false);
        h.response_chunk = b"body".to_vec();
        on_response_body(f, w, h, stream, 4, true);
        on_done(f, w, h, stream);
        assert_eq!(h.response_header("x-cache"), Some("MISS"));
        "MISS"
    }

    fn tick(&mut self, at: u64) -> Option<crate::mem_host::SentCallout> {
        self.host.now_ms = at;
        let before = self.host.callouts.len();
        on_tick(&self.filter, &mut self.worker, &mut self.host);
        assert!(self.host.callouts.len() <= before + 1);
        self.host.callouts.get(before).cloned()
    }

    fn answer(&mut self, token: u32, status: &str, body: &str) {
        self.host.callout_headers = vec![(":status".into(), status.as_bytes().to_vec())];
        self.host.callout_body = body.as_bytes().to_vec();
        let n = body.len();
        on_callout_response(&self.filter, &mut self.worker, &mut self.host, token, n);
    }

    fn logged(&self, level: Level, text: &str) -> usize {
        self.host
            .logs
            .borrow()
            .iter()
            .filter(|(l, m)| *l == level && m.contains(text))
            .count()
    }
}

fn header<'a>(c: &'a crate::mem_host::SentCallout, name: &str) -> Option<&'a str> {
    c.headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn snapshot(version: &str, purges: &str) -> String {
    format!(r#"{{"version":"{version}","generated_at_ms":1,"tenants":[],"purges":[{purges}]}}"#)
}

#[test]
fn a_polled_purge_turns_hits_into_misses_on_every_worker() {
    let (_, mut a, mut b) = gateway(CFG);
    let paths = ["/api/items/1", "/api/items/2", "/api/items-other/1"];
    for tenant in ["acme", "globex"] {
        for p in paths {
            assert_eq!(a.get(tenant, p, ""), "MISS");
            assert_eq!(a.get(tenant, p, ""), "HIT");
            assert_eq!(b.get(tenant, p, ""), "HIT");
        }
    }

    let call = a.tick(10_200).expect("a polls");
    assert_eq!(b.tick(10_200), None, "one worker at a time");
    assert_eq!(call.target, "cc");
    assert_eq!(header(&call, ":method"), Some("GET"));
    assert_eq!(header(&call, ":path"), Some("/v1/snapshot"));
    assert_eq!(header(&call, ":authority"), Some("cost-control"));
    assert_eq!(header(&call, "authorization"), Some("Bearer tok"));
    assert_eq!(header(&call, "content-length"), None);
    assert_eq!(call.body, None);
    assert_eq!(call.timeout_ms, 1000);
    a.answer(
        call.token,
        "200",
        &snapshot(
            "5.1",
            r#"{"tenant":"acme","kind":"prefix","value":"/api/items","generation":1}"#,
        ),
    );

    // Each worker finds its entry gone (and stores it again: the other
    // worker then hits that new entry).
    assert_eq!(a.get("acme", "/api/items/1", ""), "MISS");
    assert_eq!(b.get("acme", "/api/items/2", ""), "MISS");
    assert_eq!(b.get("acme", "/api/items/1", ""), "HIT");
    assert_eq!(a.get("acme", "/api/items/2", ""), "HIT");
    for w in [&mut a, &mut b] {
        assert_eq!(w.get("acme", "/api/items-other/1", ""), "HIT");
        for p in paths {
            assert_eq!(w.get("globex", p, ""), "HIT");
        }
    }
    assert_eq!(a.host.counter("cost_optimizer.accounting.purge_polls"), 1);
    assert!(a.host.counter("cost_optimizer.accounting.purge_bumps") > 0);
    assert_eq!(a.logged(Level::Info, "snapshot 5.1 applied"), 1);
}

#[test]
fn later_polls_ask_since_the_version_and_apply_each_purge_once() {
    let (_, mut a, mut b) = gateway(CFG);
    let one = r#"{"tenant":"acme","kind":"tag","value":"blue","generation":1}"#;
    let call = a.tick(10_200).unwrap();
    a.answer(call.token, "200", &snapshot("5.1", one));
    a.get("acme", "/api/items/1", "blue");
    assert_eq!(b.get("acme", "/api/items/1", "blue"), "HIT");

    assert_eq!(b.tick(10_300), None, "not due before the interval");
    let call = b.tick(10_400).expect("due: any worker may poll");
    assert_eq!(header(&call, ":path"), Some("/v1/snapshot?since=5.1"));
    b.answer(call.token, "304", "");
    assert_eq!(a.get("acme", "/api/items/1", "blue"), "HIT");

    // The version moved (a spend, say) but the purges did not: no bump.
    let call = a.tick(10_600).unwrap();
    a.answer(call.token, "200", &snapshot("6.1", one));
    assert_eq!(a.get("acme", "/api/items/1", "blue"), "HIT");
    assert_eq!(b.get("acme", "/api/items/1", "blue"), "HIT");

    // Purged again: generation 2.
    let call = a.tick(10_800).unwrap();
    assert_eq!(header(&call, ":path"), Some("/v1/snapshot?since=6.1"));
    a.answer(
        call.token,
        "200",
        &snapshot("7.1", &one.replace("\"generation\":1", "\"generation\":2")),
    );
    assert_eq!(b.get("acme", "/api/items/1", "blue"), "MISS");
}

#[test]
fn while_cost_control_is_down_hits_go_on_and_missed_purges_apply_when_it_is_back() {
    let (_, mut a, mut b) = gateway(CFG);
    a.get("acme", "/api/items/1", "blue");
    a.get("acme", "/api/items/2?x=1", "");
    a.get("acme", "/api/items/3", "");
    let mut t = 10_200;
    for (i, status) in ["503", "0", "401"].into_iter().enumerate() {
        let w = if i % 2 == 0 { &mut a } else { &mut b };
        let call = w.tick(t).unwrap();
        w.answer(call.token, status, "");
        assert_eq!(w.get("acme", "/api/items/1", "blue"), "HIT");
        t += 200;
    }
    // An answer that is not a snapshot is a failed poll too.
    let call = b.tick(t).unwrap();
    b.answer(call.token, "200", "<html>oops</html>");
    t += 200;
    assert_eq!(
        a.host
            .counter("cost_optimizer.accounting.purge_poll_failures"),
        2
    );
    assert_eq!(
        b.host
            .counter("cost_optimizer.accounting.purge_poll_failures"),
        2
    );
    // Loud once, then quiet.
    assert_eq!(a.logged(Level::Warn, "snapshot poll failed"), 1);
    assert_eq!(b.logged(Level::Warn, "snapshot poll failed"), 0);
    assert_eq!(b.logged(Level::Debug, "snapshot poll failed"), 2);

    // Back, with three purges made meanwhile (one of them twice).
    let call = a.tick(t).unwrap();
    assert_eq!(
        header(&call, ":path"),
        Some("/v1/snapshot"),
        "nothing applied yet"
    );
    a.answer(
        call.token,
        "200",
        &snapshot(
            "9.1",
            r#"{"tenant":"acme","kind":"tag","value":"blue","generation":2},
               {"tenant":"acme","kind":"key","value":"/api/items/2?x=1","generation":1}"#,
        ),
    );
    assert_eq!(
        a.logged(Level::Info, "answers again (after 4 failed polls)"),
        1
    );
    assert_eq!(b.get("acme", "/api/items/1", "blue"), "MISS");
    assert_eq!(b.get("acme", "/api/items/2?x=1", ""), "MISS");
    assert_eq!(b.get("acme", "/api/items/3", ""), "HIT");
}

#[test]
fn an_unanswered_poll_is_given_up_after_its_claim() {
    let (_, mut a, mut b) = gateway(CFG);
    let lost = a.tick(10_200).unwrap();
    // timeout 1000 + 1000: the claim lasts until 12_200.
    assert_eq!(b.tick(12_199), None);
    assert_eq!(a.tick(12_199), None, "still waiting for its own answer");
    let call = b.tick(12_200).expect("the claim expired");
    b.answer(call.token, "304", "");
    // A late answer to the lost call is not this worker's any more.
    let next = a.tick(12_400).unwrap();
    a.answer(lost.token, "200", &snapshot("1.1", ""));
    assert_eq!(
        a.worker.cache.purges.in_flight.map(|f| f.token),
        Some(next.token)
    );
}

#[test]
fn the_timer_looks_at_the_poll_four_times_per_interval() {
    let (_, mut a, _) = gateway(CFG);
    a.tick(10_000);
    assert_eq!(a.host.tick_periods.last(), Some(&50), "four per interval");
    let (_, mut c, _) = gateway(&CFG.replace("\"purge_poll_ms\":200", "\"purge_poll_ms\":0"));
    assert_eq!(c.tick(10_000), None, "polling off");
    assert_eq!(c.host.tick_periods.last(), Some(&1000));
}
