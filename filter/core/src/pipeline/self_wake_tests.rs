//! Kong's rules against the in-memory host (`own_context_wakes`): a
//! parked request is woken only from its own context, the timer is set
//! only from the root, and a parked request makes its own wake call. What
//! the timer or another request decides for it waits on it until that
//! call answers in its context.

use super::*;
use crate::config::parse;
use crate::host::HostError;
use crate::mem_host::{MemHost, SentCallout};

const CFG: &str = r#"{"version":1,"host":"kong","wake":{"target":"127.0.0.1:8081"},
  "routes":[
    {"name":"live","match":{"prefix":"/live/"},"sla_ms":1000,"coalesce":{"grace_ms":100}},
    {"name":"queued","match":{"prefix":"/q/"},"sla_ms":5000,"priority":"medium",
     "limit":{"by":"tenant","token_bucket":{"capacity":1,"refill_per_s":10.0}}}]}"#;

const T0: u64 = 1_700_000_000_000;

struct Kong {
    f: Filter,
    w: Worker,
    h: MemHost,
}

impl Kong {
    fn new() -> Kong {
        let mut h = MemHost::new();
        h.own_context_wakes = true;
        h.now_ms = T0;
        let f = Filter::new(parse(CFG.as_bytes()).unwrap(), &mut h);
        f.create_tables(&mut h).unwrap();
        let mut w = Worker::new(&f.config, &mut h);
        // As `on_configure` does, in the root context.
        start_timer(&f, &mut w, &mut h);
        Kong { f, w, h }
    }

    /// A GET's headers, in its own context.
    fn get(&mut self, stream: StreamId, path: &str) -> Verdict {
        self.h.context = Some(stream);
        self.h.request_headers = vec![
            (":method".into(), b"GET".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            ("x-tenant-id".into(), b"acme".to_vec()),
        ];
        on_request_headers(&self.f, &mut self.w, &mut self.h, stream)
    }

    /// Upstream's answer to `stream`, in its own context.
    fn respond(&mut self, stream: StreamId, body: &[u8]) {
        self.h.context = Some(stream);
        self.h.response_headers = vec![(":status".into(), b"200".to_vec())];
        self.h.response_chunk = body.to_vec();
        on_response_headers(&self.f, &mut self.w, &mut self.h, stream, false);
        on_response_body(&self.f, &mut self.w, &mut self.h, stream, body.len(), true);
    }

    fn tick(&mut self) {
        self.h.context = None;
        on_tick(&self.f, &mut self.w, &mut self.h);
    }

    fn wake_calls(&self) -> Vec<SentCallout> {
        self.h
            .callouts
            .iter()
            .filter(|c| {
                c.headers
                    .iter()
                    .any(|(k, v)| k == ":path" && v.starts_with(b"/v1/wake"))
            })
            .cloned()
            .collect()
    }

    /// The answer (`status`, 0 for none) to the latest wake call, which
    /// `stream` made, in its context.
    fn answer_wake(&mut self, stream: StreamId, status: u16) {
        let token = self.wake_calls().last().expect("a wake call").token;
        self.h.context = Some(stream);
        self.h.callout_headers = if status == 0 {
            Vec::new()
        } else {
            vec![(":status".into(), status.to_string().into_bytes())]
        };
        on_stream_callout_response(&self.f, &mut self.w, &mut self.h, stream, token, 0);
    }

    fn phase(&self, stream: StreamId) -> Phase {
        self.w.requests[&stream].phase
    }

    fn replies_to(&self, stream: StreamId) -> Vec<&crate::mem_host::Reply> {
        self.h
            .replies
            .iter()
            .filter(|r| r.stream == stream)
            .collect()
    }
}

#[test]
fn a_follower_is_answered_in_its_own_wake_call() {
    let mut k = Kong::new();
    assert_eq!(k.get(1, "/live/x"), Verdict::Continue);
    assert_eq!(k.get(2, "/live/x"), Verdict::Pause);
    assert_eq!(k.phase(2), Phase::Parked(Wait::Leader));
    // Its wake call: cost-control's wake endpoint after the fast tick.
    let calls = k.wake_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].target, "127.0.0.1:8081");
    let header = |n: &str| {
        calls[0]
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header(":path").as_deref(), Some("/v1/wake?after_ms=10"));
    assert_eq!(header(":authority").as_deref(), Some("cost-control"));
    // The timer was set once, at configure: a request's context never
    // sets it on Kong.
    assert_eq!(k.h.tick_periods, vec![10]);

    // The leader's answer decides for the follower, which cannot be
    // answered from the leader's context: nothing is sent yet.
    k.respond(1, b"answer");
    assert!(k.replies_to(2).is_empty());
    assert_eq!(k.phase(2), Phase::Parked(Wait::Leader));

    // Its wake call answers: now it is answered, in its own context.
    k.answer_wake(2, 204);
    let replies = k.replies_to(2);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].status, &replies[0].body[..]),
        (200, &b"answer"[..])
    );
    assert_eq!(k.phase(2), Phase::Answered(Served::Coalesced));
    assert_eq!(k.wake_calls().len(), 1, "no further wake call");
}

#[test]
fn a_queued_request_calls_again_until_the_timer_lets_it_go() {
    let mut k = Kong::new();
    assert_eq!(k.get(10, "/q/a"), Verdict::Continue);
    assert_eq!(k.get(11, "/q/a"), Verdict::Pause);
    assert_eq!(k.phase(11), Phase::Parked(Wait::Limit));

    // Woken before a token is back: nothing decided, so it calls again.
    k.h.now_ms = T0 + 10;
    k.answer_wake(11, 204);
    assert_eq!(k.wake_calls().len(), 2);
    assert!(k.h.resumed.is_empty());

    // The timer finds a token: the decision waits for its wake call.
    k.h.now_ms = T0 + 150;
    k.tick();
    assert!(k.h.resumed.is_empty());
    k.answer_wake(11, 204);
    assert_eq!(k.h.resumed, vec![11]);
    assert_eq!(k.phase(11), Phase::Upstream);
    // Whatever waited and ticked, the period was set once (Kong traps on
    // a second one).
    k.tick();
    assert_eq!(k.h.tick_periods, vec![10]);
}

#[test]
fn wake_calls_that_fail_end_the_wait_as_the_rule_requires() {
    let mut k = Kong::new();
    // A queued request: refused with 503 rather than let past its limit.
    assert_eq!(k.get(10, "/q/a"), Verdict::Continue);
    assert_eq!(k.get(11, "/q/a"), Verdict::Pause);
    k.answer_wake(11, 0);
    assert!(k.replies_to(11).is_empty(), "one failure is retried");
    k.answer_wake(11, 503);
    let replies = k.replies_to(11);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status, 503);
    assert!(k.w.limiter.queue.is_empty(), "it left the limiter's queue");

    // A follower: goes upstream itself, as if it had led.
    assert_eq!(k.get(1, "/live/x"), Verdict::Continue);
    assert_eq!(k.get(2, "/live/x"), Verdict::Pause);
    k.answer_wake(2, 0);
    k.answer_wake(2, 0);
    assert_eq!(k.h.resumed, vec![2]);
    assert_eq!(k.phase(2), Phase::Upstream);
}

#[test]
fn a_request_that_cannot_make_its_wake_call_does_not_wait() {
    let mut k = Kong::new();
    k.h.call_error = Some(HostError::BadArgument);
    assert_eq!(k.get(1, "/live/x"), Verdict::Continue);
    // A follower goes on at once.
    assert_eq!(k.get(2, "/live/x"), Verdict::Continue);
    assert_eq!(k.phase(2), Phase::Upstream);
    // A request that would queue is refused at once.
    assert_eq!(k.get(10, "/q/a"), Verdict::Continue);
    assert_eq!(k.get(11, "/q/a"), Verdict::Pause);
    assert_eq!(k.replies_to(11)[0].status, 503);
    assert!(k.w.limiter.queue.is_empty());
}

/// A tenant's cold burst on Kong: the lease's arrival is carried out by
/// each request in its own wake call; the first leads, the rest follow
/// and get its answer. The lease retry, which runs on every tick, must
/// not take a follower for one of its own (it did: the follower was still
/// on the lease's waiting list and went upstream alone).
#[test]
fn a_cold_burst_waits_for_its_lease_then_coalesces() {
    let cfg = r#"{"version":1,"host":"kong",
      "accounting":{"cost_control":"127.0.0.1:8081","token":"tok","gateway_id":"gw","budgets":{"lease":"0.1","slots":4}},
      "routes":[{"name":"live","match":{"prefix":"/live/"},"sla_ms":5000,
        "coalesce":{},"cost":{"cost_per_call":"0.002","budget":{}}}]}"#;
    let mut k = Kong::new();
    k.f = Filter::new(parse(cfg.as_bytes()).unwrap(), &mut k.h);
    k.f.create_tables(&mut k.h).unwrap();
    k.w = Worker::new(&k.f.config, &mut k.h);
    for s in 1..=3 {
        assert_eq!(k.get(s, "/live/x"), Verdict::Pause);
        assert_eq!(k.phase(s), Phase::Parked(Wait::Lease));
    }
    // The timer asks for the lease; it arrives (at the root).
    k.tick();
    let lease =
        k.h.callouts
            .iter()
            .find(|c| {
                c.headers
                    .iter()
                    .any(|(n, v)| n == ":path" && v == b"/v1/allowances")
            })
            .expect("a lease call")
            .token;
    k.h.context = None;
    k.h.callout_headers = vec![(":status".into(), b"200".to_vec())];
    k.h.callout_body =
        br#"{"allowance_id":"L1","granted_micros":100000,"expires_at_ms":9999999999999}"#.to_vec();
    let n = k.h.callout_body.len();
    on_callout_response(&k.f, &mut k.w, &mut k.h, lease, n);
    assert!(k.h.resumed.is_empty(), "nobody can be woken from the root");
    // Each carries the lease's arrival out in its own wake call.
    for s in 1..=3 {
        let token = k.w.requests[&s].wake.token.expect("a wake call in flight");
        k.h.context = Some(s);
        k.h.callout_headers = vec![(":status".into(), b"204".to_vec())];
        on_stream_callout_response(&k.f, &mut k.w, &mut k.h, s, token, 0);
    }
    assert_eq!(k.h.resumed, vec![1], "one leader goes upstream");
    for s in 2..=3 {
        assert_eq!(k.phase(s), Phase::Parked(Wait::Leader), "stream {s}");
    }
    // Ticks (the lease retry among them) leave the followers alone: their
    // wake calls answer, and they wait on.
    k.tick();
    for s in 2..=3 {
        let token = k.w.requests[&s].wake.token.expect("a wake call in flight");
        k.h.context = Some(s);
        k.h.callout_headers = vec![(":status".into(), b"204".to_vec())];
        on_stream_callout_response(&k.f, &mut k.w, &mut k.h, s, token, 0);
        assert_eq!(k.phase(s), Phase::Parked(Wait::Leader), "stream {s}");
    }
    k.respond(1, b"hello");
    for s in 2..=3 {
        let token = k.w.requests[&s].wake.token.expect("a wake call in flight");
        k.h.context = Some(s);
        k.h.callout_headers = vec![(":status".into(), b"204".to_vec())];
        on_stream_callout_response(&k.f, &mut k.w, &mut k.h, s, token, 0);
        assert_eq!(k.phase(s), Phase::Answered(Served::Coalesced), "stream {s}");
    }
    assert_eq!(k.h.resumed, vec![1]);
    assert_eq!(k.h.counter("cost_optimizer.route.live.budget.waited"), 3);
}
