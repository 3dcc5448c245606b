//! The routing stage through the pipeline's hooks, against the in-memory
//! host: the cheapest healthy provider, a pinned request, retries only
//! for retryable requests, which provider answered, breakers shared by two
//! workers, and the price of what a provider served.

use crate::mem_host::{MemHost, SharedStore};
use crate::pipeline::{on_done, on_request_headers, on_response_headers, Filter, Verdict, Worker};

const CFG: &str = r#"{"version":1,"routes":[{"name":"search","match":{"prefix":"/s"},
  "debug_headers":true,
  "routing":{"strategy":"cheapest","pin_header":"x-pin","max_attempts":3,
    "breaker":{"failures":2,"open_s":1,"probes":1},
    "providers":[
      {"name":"primary","upstream":"via_primary","addresses":["10.0.0.1:80"],"cost":{"cost_per_call":"0.002"}},
      {"name":"secondary","upstream":"via_secondary","addresses":["10.0.0.2:80"],"cost":{"cost_per_call":"0.001"}}]},
  "cost":{"cost_per_call":"0.002"}}]}"#;

struct W {
    host: MemHost,
    filter: Filter,
    worker: Worker,
    stream: u32,
}

impl W {
    fn new(store: &std::rc::Rc<std::cell::RefCell<SharedStore>>) -> W {
        let (host, filter, worker) = crate::pipeline::test_worker(store, CFG, 1_000_000);
        W {
            host,
            filter,
            worker,
            stream: 0,
        }
    }

    /// A request with `headers`; the routed upstream and retries, or the
    /// local answer's status.
    fn send(&mut self, method: &str, headers: &[(&str, &str)]) -> Result<(String, u32), u16> {
        self.stream += 1;
        let mut h = vec![
            (":method".to_string(), method.as_bytes().to_vec()),
            (":path".to_string(), b"/s/q".to_vec()),
        ];
        h.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        self.host.request_headers = h;
        let replies = self.host.replies.len();
        let routed = self.host.routed.len();
        let v = on_request_headers(&self.filter, &mut self.worker, &mut self.host, self.stream);
        if v == Verdict::Pause {
            return Err(self.host.replies[replies].status);
        }
        let r = self.host.routed.get(routed).expect("routed");
        Ok((r.upstream.clone(), r.retries))
    }

    /// The answer of the last request, from the endpoint at `peer`.
    fn answer(&mut self, status: u16, peer: &str) -> Option<String> {
        self.host
            .properties
            .insert(vec!["upstream".into(), "address".into()], peer.into());
        self.host.response_headers = vec![(":status".into(), status.to_string().into_bytes())];
        let (f, w, h) = (&self.filter, &mut self.worker, &mut self.host);
        on_response_headers(f, w, h, self.stream, true);
        on_done(f, w, h, self.stream);
        h.response_header("x-optimizer-provider")
            .map(str::to_string)
    }
}

#[test]
fn cheapest_first_pinned_requests_stay_and_only_retryable_requests_retry() {
    let store = SharedStore::new_shared();
    let mut w = W::new(&store);
    assert_eq!(w.send("GET", &[]), Ok(("via_secondary".into(), 2)));
    assert_eq!(w.answer(200, "10.0.0.2:80").as_deref(), Some("secondary"));
    assert_eq!(w.host.response_header("x-optimizer-cost"), Some("1000"));
    assert_eq!(w.host.response_header("x-optimizer-saving"), Some("1000"));
    assert_eq!(
        w.send("GET", &[("x-pin", "primary")]),
        Ok(("via_primary".into(), 2))
    );
    w.answer(200, "10.0.0.1:80");
    assert_eq!(w.host.response_header("x-optimizer-saving"), Some("0"));
    assert_eq!(
        w.send("POST", &[]).map(|r| r.1),
        Ok(0),
        "a write is not retried"
    );
    w.answer(200, "10.0.0.2:80");
    assert_eq!(
        w.send("POST", &[("idempotency-key", "k1")]).map(|r| r.1),
        Ok(2)
    );
    w.answer(200, "10.0.0.2:80");
}

#[test]
fn a_failover_counts_against_the_chosen_provider_and_breakers_are_shared() {
    let store = SharedStore::new_shared();
    let (mut a, mut b) = (W::new(&store), W::new(&store));
    // The secondary fails; the host retried on the primary, which served.
    assert_eq!(a.send("GET", &[]).unwrap().0, "via_secondary");
    assert_eq!(a.answer(200, "10.0.0.1:80").as_deref(), Some("primary"));
    assert_eq!(
        a.host
            .counter("cost_optimizer.route.search.routing.failovers"),
        1
    );
    // Priced at the provider that served, the default: no saving.
    assert_eq!(a.host.response_header("x-optimizer-cost"), Some("2000"));
    // A second failure, on the other worker, opens the breaker for both.
    assert_eq!(b.send("GET", &[]).unwrap().0, "via_secondary");
    b.answer(503, "10.0.0.2:80");
    assert_eq!(
        b.host
            .counter("cost_optimizer.route.search.routing.provider.secondary.opened"),
        1
    );
    assert_eq!(a.send("GET", &[]).unwrap().0, "via_primary");
    a.answer(200, "10.0.0.1:80");
    // After open_s one probe goes to it; it succeeds and closes it.
    a.host.now_ms += 1_001;
    assert_eq!(a.send("GET", &[]).unwrap().0, "via_secondary");
    assert_eq!(
        a.host
            .counter("cost_optimizer.route.search.routing.provider.secondary.half_opened"),
        1
    );
    b.host.now_ms += 1_001;
    assert_eq!(
        b.send("GET", &[]).unwrap().0,
        "via_primary",
        "one probe at a time"
    );
    b.answer(200, "10.0.0.1:80");
    a.answer(200, "10.0.0.2:80");
    assert_eq!(b.send("GET", &[]).unwrap().0, "via_secondary");
}

#[test]
fn with_every_breaker_open_the_answer_is_a_clear_503() {
    let store = SharedStore::new_shared();
    let mut w = W::new(&store);
    for _ in 0..4 {
        let (up, _) = w.send("GET", &[]).unwrap();
        let peer = if up == "via_primary" {
            "10.0.0.1:80"
        } else {
            "10.0.0.2:80"
        };
        w.answer(503, peer);
    }
    assert_eq!(w.send("GET", &[]), Err(503));
    let r = w.host.replies.last().unwrap();
    assert!(r
        .header("x-optimizer-warning")
        .unwrap()
        .contains("no provider"));
    assert_eq!(
        w.host
            .counter("cost_optimizer.route.search.routing.unavailable"),
        1
    );
}

/// A routed rule with no other strategy still reads the answer's status
/// (a bench found every answer taken for a failure, status 0).
#[test]
fn a_routed_rule_without_a_price_learns_from_the_status() {
    let cfg = CFG.replace(",\n  \"cost\":{\"cost_per_call\":\"0.002\"}}]}", "}]}");
    assert_ne!(cfg, CFG, "the rule's own cost removed");
    let store = SharedStore::new_shared();
    let (host, filter, worker) = crate::pipeline::test_worker(&store, &cfg, 1_000_000);
    let mut w = W {
        host,
        filter,
        worker,
        stream: 0,
    };
    for _ in 0..5 {
        assert_eq!(w.send("GET", &[]).unwrap().0, "via_secondary");
        assert_eq!(w.answer(200, "10.0.0.2:80").as_deref(), Some("secondary"));
    }
    assert_eq!(
        w.host
            .counter("cost_optimizer.route.search.routing.provider.secondary.failures"),
        0
    );
}
