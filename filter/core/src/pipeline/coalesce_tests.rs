//! The coalescing state machine against the in-memory host: two workers
//! sharing one store, leaders publishing or failing, followers answered,
//! released or timed out, with compare-and-swap conflicts injected.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::config::parse;
use crate::mem_host::{MemHost, SharedStore};

const CFG: &str = r#"{"version":1,"routes":[
  {"name":"live","match":{"prefix":"/live/"},"sla_ms":1000,"coalesce":{"grace_ms":100}}]}"#;

struct Gw {
    filter: Filter,
    store: Rc<RefCell<SharedStore>>,
}

struct W {
    host: MemHost,
    worker: Worker,
}

impl Gw {
    fn new() -> Gw {
        let store = SharedStore::new_shared();
        let mut h = MemHost::with_store(store.clone());
        let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), &mut h);
        filter.create_tables(&mut h).unwrap();
        Gw { filter, store }
    }

    fn worker(&self, seed: u64) -> W {
        let mut host = MemHost::with_store(self.store.clone()).seed(seed);
        let worker = Worker::new(&self.filter.config, &mut host);
        // Metrics are per host: define them on this one too.
        let _ = Metrics::define(&self.filter.config, &mut host);
        W { host, worker }
    }

    fn request(
        &self,
        w: &mut W,
        stream: StreamId,
        path: &str,
        now: u64,
    ) -> (Verdict, Option<StreamId>) {
        w.host.now_ms = now;
        w.host.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
        ];
        let v = on_request_headers(&self.filter, &mut w.worker, &mut w.host, stream);
        (v, w.worker.requests.contains_key(&stream).then_some(stream))
    }

    fn respond(&self, w: &mut W, stream: StreamId, status: u16, body: &[u8]) {
        w.host.response_headers = vec![
            (":status".into(), status.to_string().into_bytes()),
            ("content-type".into(), b"text/plain".to_vec()),
        ];
        w.host.response_chunk = body.to_vec();
        on_response_headers(&self.filter, &mut w.worker, &mut w.host, stream, false);
        on_response_body(
            &self.filter,
            &mut w.worker,
            &mut w.host,
            stream,
            body.len(),
            true,
        );
    }
}

#[test]
fn followers_on_both_workers_get_the_leaders_answer() {
    let gw = Gw::new();
    let (mut a, mut b) = (gw.worker(1), gw.worker(2));
    let (v, leader) = gw.request(&mut a, 1, "/live/x", 0);
    assert_eq!((v, leader), (Verdict::Continue, Some(1)));
    gw.store.borrow_mut().inject_conflicts(3);
    let (va, _fa) = gw.request(&mut a, 2, "/live/x", 1);
    let (vb, _fb) = gw.request(&mut b, 7, "/live/x", 1);
    assert_eq!((va, vb), (Verdict::Pause, Verdict::Pause));
    assert_eq!(
        b.host.tick_periods,
        vec![10],
        "the waiting worker ticks fast"
    );

    gw.respond(&mut a, 1, 200, b"hello");
    // Same worker: answered at once from the leader's hook.
    let r = &a.host.replies[0];
    assert_eq!(
        (r.stream, r.status, r.body.as_slice()),
        (2, 200, &b"hello"[..])
    );
    assert_eq!(r.header("x-cache"), Some("COALESCED"));
    assert_eq!(
        a.worker.requests[&2].phase,
        Phase::Answered(Served::Coalesced)
    );
    // Other worker: answered by its timer.
    assert!(b.host.replies.is_empty());
    b.host.now_ms = 20;
    on_tick(&gw.filter, &mut b.worker, &mut b.host);
    assert_eq!(b.host.replies[0].stream, 7);
    assert_eq!(b.host.replies[0].body, b"hello");
    // Nobody waits any more: the timer slows down.
    on_tick(&gw.filter, &mut b.worker, &mut b.host);
    assert_eq!(b.host.tick_periods, vec![10, SLOW_TICK_MS]);
    // A late arrival inside the grace window gets the same answer.
    let (v, _) = gw.request(&mut b, 8, "/live/x", 50);
    assert_eq!(v, Verdict::Pause);
    assert_eq!(b.host.replies[1].stream, 8);
    // After it, a new leader.
    let (v, _) = gw.request(&mut b, 9, "/live/x", 500);
    assert_eq!(v, Verdict::Continue);
    assert!(matches!(
        b.worker.requests[&9].coalesce,
        CoalesceStep::Leader(_)
    ));
}

#[test]
fn a_failed_leader_releases_everyone_and_a_5xx_is_not_shared() {
    let gw = Gw::new();
    let (mut a, mut b) = (gw.worker(1), gw.worker(2));
    gw.request(&mut a, 1, "/live/y", 0);
    gw.request(&mut a, 2, "/live/y", 1);
    gw.request(&mut b, 3, "/live/y", 1);
    gw.respond(&mut a, 1, 503, b"down");
    assert_eq!(a.host.resumed, vec![2]);
    assert!(a.host.replies.is_empty());
    on_tick(&gw.filter, &mut b.worker, &mut b.host);
    assert_eq!(b.host.resumed, vec![3]);
    assert!(b.host.replies.is_empty());
}

#[test]
fn a_leader_that_vanishes_releases_its_followers() {
    let gw = Gw::new();
    let mut a = gw.worker(1);
    gw.request(&mut a, 1, "/live/z", 0);
    gw.request(&mut a, 2, "/live/z", 1);
    on_done(&gw.filter, &mut a.worker, &mut a.host, 1);
    assert_eq!(a.host.resumed, vec![2]);
}

#[test]
fn a_follower_past_its_wait_goes_alone_and_a_gone_one_is_forgotten() {
    let gw = Gw::new();
    let (mut a, mut b) = (gw.worker(1), gw.worker(2));
    gw.request(&mut a, 1, "/live/w", 0);
    gw.request(&mut b, 5, "/live/w", 10);
    gw.request(&mut b, 6, "/live/w", 10);
    on_done(&gw.filter, &mut b.worker, &mut b.host, 6);
    b.host.now_ms = 500;
    on_tick(&gw.filter, &mut b.worker, &mut b.host);
    assert!(b.host.resumed.is_empty(), "still within max_wait");
    b.host.now_ms = 1_010;
    on_tick(&gw.filter, &mut b.worker, &mut b.host);
    assert_eq!(b.host.resumed, vec![5]);
    assert_eq!(
        b.host
            .counter("cost_optimizer.route.live.coalesce.timeouts"),
        1
    );
}

#[test]
fn many_followers_are_answered_a_bounded_number_per_host_call() {
    let gw = Gw::new();
    let mut a = gw.worker(1);
    gw.request(&mut a, 1, "/live/many", 0);
    for s in 2..102 {
        assert_eq!(gw.request(&mut a, s, "/live/many", 1).0, Verdict::Pause);
    }
    gw.respond(&mut a, 1, 200, b"ok");
    assert_eq!(a.host.replies.len(), ACTIONS_PER_CALL);
    assert_eq!(
        a.host.tick_periods.last(),
        Some(&1),
        "the rest is drained at 1 ms ticks"
    );
    let mut ticks = 0;
    while a.host.replies.len() < 100 {
        on_tick(&gw.filter, &mut a.worker, &mut a.host);
        ticks += 1;
        assert!(ticks < 10);
    }
    assert_eq!(ticks, 100usize.div_ceil(ACTIONS_PER_CALL) - 1);
    assert_eq!(a.host.tick_periods.last(), Some(&SLOW_TICK_MS));
    assert_eq!(
        a.host
            .counter("cost_optimizer.route.live.coalesce.coalesced"),
        100
    );
}

/// A conditional or range request neither waits for a plain one nor is
/// waited for: its 304 or 206 is its own.
#[test]
fn conditional_and_range_requests_are_not_coalesced() {
    let gw = Gw::new();
    let mut a = gw.worker(1);
    let (v, _) = gw.request(&mut a, 1, "/live/c", 0);
    assert_eq!(v, Verdict::Continue, "the plain GET leads");
    for (stream, (name, value)) in [
        (2, ("if-none-match", "\"x\"")),
        (3, ("range", "bytes=0-1")),
        (4, ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")),
    ] {
        a.host.now_ms = 1;
        a.host.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), b"/live/c".to_vec()),
            (name.into(), value.as_bytes().to_vec()),
        ];
        let v = on_request_headers(&gw.filter, &mut a.worker, &mut a.host, stream);
        assert_eq!(v, Verdict::Continue, "{name} goes upstream itself");
    }
    // A 304 the leader got is not handed to followers: a plain GET that
    // came meanwhile goes upstream when the leader's turn fails.
    let (v, _) = gw.request(&mut a, 5, "/live/c", 2);
    assert_eq!(v, Verdict::Pause, "a plain GET follows");
    gw.respond(&mut a, 1, 304, b"");
    assert!(
        a.host.replies.iter().all(|r| r.stream != 5),
        "no 304 for the follower"
    );
    assert!(a.host.resumed.contains(&5), "released upstream");
}

/// A GET made after a write to the same URI has been answered does not
/// join a leader that went upstream before the write (its answer may
/// predate the write): it leads a turn of its own, on either worker; a GET
/// made while that second leader is in flight follows it.
#[test]
fn a_request_after_a_write_does_not_follow_a_leader_from_before_it() {
    let cfg = r#"{"version":1,"routes":[{"name":"items","match":{"prefix":"/items/"},"sla_ms":1000,
        "cache":{},"coalesce":{"grace_ms":0}}]}"#;
    let store = crate::mem_host::SharedStore::new_shared();
    let t = 1_000_000;
    let (mut a, f, mut wa) = test_worker(&store, cfg, t);
    let (mut b, _, mut wb) = test_worker(&store, cfg, t);
    let ask = |h: &mut MemHost, w: &mut Worker, id: u32, method: &str| {
        h.request_headers = vec![
            (":method".into(), method.as_bytes().to_vec()),
            (":path".into(), b"/items/1".to_vec()),
            (":authority".into(), b"api".to_vec()),
        ];
        on_request_headers(&f, w, h, id)
    };
    assert_eq!(ask(&mut a, &mut wa, 1, "GET"), Verdict::Continue, "leader");
    assert_eq!(
        ask(&mut b, &mut wb, 2, "GET"),
        Verdict::Pause,
        "follower before the write"
    );
    // A write to the URI, answered.
    assert_eq!(ask(&mut b, &mut wb, 3, "PUT"), Verdict::Continue);
    b.response_headers = vec![(":status".into(), b"204".to_vec())];
    on_response_headers(&f, &mut wb, &mut b, 3, true);
    on_done(&f, &mut wb, &mut b, 3);
    // After it, on either worker: not a follower of stream 1.
    assert_eq!(
        ask(&mut b, &mut wb, 4, "GET"),
        Verdict::Continue,
        "a new leader"
    );
    assert_eq!(
        ask(&mut a, &mut wa, 5, "GET"),
        Verdict::Pause,
        "follows stream 4"
    );
    assert_eq!(
        a.counter("cost_optimizer.route.items.coalesce.leaders")
            + b.counter("cost_optimizer.route.items.coalesce.leaders"),
        2
    );
}
