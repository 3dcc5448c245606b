use super::*;
use crate::cache::response::OnHeaders;
use crate::config::parse;
use crate::mem_host::{MemHost, SharedStore};

const CFG: &str = r#"{"version":1,"cache_store":{"max_entries":64,"ways":4},
    "routes":[{"name":"r","match":{"prefix":"/"},"cache":{"xfetch_beta":1.0}}]}"#;

struct World {
    cfg: crate::config::Config,
    store: std::rc::Rc<std::cell::RefCell<SharedStore>>,
}

impl World {
    fn new() -> Self {
        let cfg = parse(CFG.as_bytes()).unwrap();
        let store = SharedStore::new_shared();
        let mut h = MemHost::with_store(store.clone());
        crate::cache::create_tables(&cfg, &mut h).unwrap();
        World { cfg, store }
    }
    fn worker(&self) -> (MemHost, CacheState) {
        (
            MemHost::with_store(self.store.clone()),
            CacheState::new(&self.cfg),
        )
    }
    fn ask(
        &self,
        host: &mut MemHost,
        state: &mut CacheState,
        path: &str,
        now: u64,
        rand01: f64,
    ) -> Outcome {
        let all = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), path.as_bytes().to_vec()),
        ];
        let rule = self.cfg.routes[0].cache.as_ref().unwrap();
        on_request(
            &self.cfg.cache_store,
            rule,
            state,
            host,
            RequestFacts {
                route: 0,
                tenant: "t",
                headers: Headers::new(&all),
                all_headers: &all,
                now_ms: now,
                rand01,
                lease_ms: 5_000,
                background: true,
            },
        )
    }
    /// Forward a miss and store an answer with this Cache-Control,
    /// the upstream having taken `took` ms.
    fn store(
        &self,
        host: &mut MemHost,
        state: &mut CacheState,
        path: &str,
        cc: &str,
        now: u64,
        took: u64,
    ) {
        let Outcome::Forward(mut f) = self.ask(host, state, path, now, 0.5) else {
            panic!("expected a miss")
        };
        let resp = vec![
            (":status".to_string(), b"200".to_vec()),
            ("cache-control".to_string(), cc.as_bytes().to_vec()),
        ];
        let rule = self.cfg.routes[0].cache.as_ref().unwrap();
        let at = now + took;
        assert!(matches!(
            f.on_response_headers(rule, state, 200, &Headers::new(&resp), at),
            OnHeaders::Pass { .. }
        ));
        f.on_body_chunk(b"body");
        assert!(f
            .finish(&self.cfg.cache_store, state, host, at)
            .unwrap()
            .is_some());
    }
}

fn label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Hit {
            label: Label::Hit, ..
        } => "hit",
        Outcome::Hit {
            label: Label::Stale,
            ..
        } => "stale",
        Outcome::Hit { .. } => "other-hit",
        Outcome::Forward(f) if f.fwd == Fwd::Stale => "refresh",
        Outcome::Forward(_) => "miss",
        Outcome::Bypass { .. } => "bypass",
        Outcome::Write { .. } => "write",
    }
}

#[test]
fn stale_while_revalidate_elects_exactly_one_refresher_across_workers() {
    let w = World::new();
    let (mut h1, mut s1) = w.worker();
    let (mut h2, mut s2) = w.worker();
    w.store(
        &mut h1,
        &mut s1,
        "/a",
        "max-age=1, stale-while-revalidate=60",
        0,
        0,
    );
    // Another writer's conflicts do not break the election.
    w.store.borrow_mut().inject_conflicts(2);
    let first = w.ask(&mut h2, &mut s2, "/a", 1500, 0.5);
    let second = w.ask(&mut h1, &mut s1, "/a", 1500, 0.5);
    let third = w.ask(&mut h2, &mut s2, "/a", 1501, 0.5);
    assert_eq!(
        [label(&first), label(&second), label(&third)],
        ["refresh", "stale", "stale"]
    );
    // The lease runs out (the refresher died): someone else refreshes.
    assert_eq!(
        label(&w.ask(&mut h1, &mut s1, "/a", 1500 + 5_001, 0.5)),
        "refresh"
    );
}

#[test]
fn early_refresh_is_likelier_near_expiry_and_for_slow_upstreams() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    // Stored at t=0 after the upstream took 500 ms: fresh until 60 500.
    w.store(&mut h, &mut s, "/slow", "max-age=60", 0, 500);
    // Far from expiry nothing refreshes, whatever the draw.
    assert_eq!(label(&w.ask(&mut h, &mut s, "/slow", 1_000, 1e-6)), "hit");
    // 200 ms before expiry: a draw with -ln(u) >= 0.4 refreshes
    // (500 ms × 0.4 = 200 ms), a draw near 1 does not.
    assert_eq!(label(&w.ask(&mut h, &mut s, "/slow", 60_300, 0.99)), "hit");
    assert_eq!(
        label(&w.ask(&mut h, &mut s, "/slow", 60_300, 0.5)),
        "refresh"
    );
    // The lease is taken: the others keep hitting.
    assert_eq!(label(&w.ask(&mut h, &mut s, "/slow", 60_301, 0.01)), "hit");
}

#[test]
fn expired_beyond_stale_windows_is_a_miss_that_can_fall_back_on_error() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    w.store(&mut h, &mut s, "/e", "max-age=1, stale-if-error=10", 0, 0);
    let o = w.ask(&mut h, &mut s, "/e", 2_000, 0.5);
    let Outcome::Forward(mut f) = o else { panic!() };
    assert!(f.stale.is_some());
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    let err = vec![(":status".to_string(), b"503".to_vec())];
    assert!(matches!(
        f.on_response_headers(rule, &s, 503, &Headers::new(&err), 2_000),
        OnHeaders::ServeStale(_)
    ));
    let o = w.ask(&mut h, &mut s, "/e", 12_000, 0.5);
    let Outcome::Forward(mut f) = o else { panic!() };
    assert!(
        f.stale.is_none()
            || !matches!(
                f.on_response_headers(rule, &s, 503, &Headers::new(&err), 12_000),
                OnHeaders::ServeStale(_)
            )
    );
}

#[test]
fn writes_and_other_methods() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let all = vec![
        (":method".to_string(), b"POST".to_vec()),
        (":path".to_string(), b"/a".to_vec()),
    ];
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    let facts = |all| RequestFacts {
        route: 0,
        tenant: "t",
        headers: Headers::new(all),
        all_headers: all,
        now_ms: 0,
        rand01: 0.5,
        lease_ms: 1,
        background: true,
    };
    assert!(matches!(
        on_request(&w.cfg.cache_store, rule, &mut s, &mut h, facts(&all)),
        Outcome::Write { .. }
    ));
    let opt = vec![
        (":method".to_string(), b"OPTIONS".to_vec()),
        (":path".to_string(), b"/a".to_vec()),
    ];
    assert!(matches!(
        on_request(&w.cfg.cache_store, rule, &mut s, &mut h, facts(&opt)),
        Outcome::Bypass { fwd: Fwd::Method }
    ));
}
