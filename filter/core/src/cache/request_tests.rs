use super::*;
use crate::cache::generations::Generations;
use crate::cache::response::OnHeaders;
use crate::config::parse;
use crate::header_list::HeaderList;
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
        let all = HeaderList::from(
            &vec![
                (":method".to_string(), b"GET".to_vec()),
                (":path".to_string(), path.as_bytes().to_vec()),
            ][..],
        );
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
                unshared: false,
                prompt: None,
                epoch_hint: None,
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
        let resp = [
            (":status".to_string(), b"200".to_vec()),
            ("cache-control".to_string(), cc.as_bytes().to_vec()),
        ];
        let rule = self.cfg.routes[0].cache.as_ref().unwrap();
        let at = now + took;
        assert!(matches!(
            f.on_response_headers(
                rule,
                state,
                200,
                &Headers::new(&HeaderList::from(&resp[..])),
                at
            ),
            OnHeaders::Pass { .. }
        ));
        f.on_body_chunk(b"body");
        assert!(f
            .finish(&self.cfg.cache_store, state, host, at)
            .unwrap()
            .is_some());
    }
}

impl World {
    /// Forward `path` and store a `200` with these headers and `body`;
    /// the entry the store reports.
    fn store_with(
        &self,
        host: &mut MemHost,
        state: &mut CacheState,
        path: &str,
        headers: &[(&str, &str)],
        now: u64,
    ) -> Option<std::rc::Rc<crate::cache::entry::Entry>> {
        let Outcome::Forward(mut f) = self.ask(host, state, path, now, 0.5) else {
            panic!("expected a miss")
        };
        self.answer(host, state, &mut f, headers, now)
    }

    fn answer(
        &self,
        host: &mut MemHost,
        state: &mut CacheState,
        f: &mut Forward,
        headers: &[(&str, &str)],
        now: u64,
    ) -> Option<std::rc::Rc<crate::cache::entry::Entry>> {
        let mut resp = vec![(":status".to_string(), b"200".to_vec())];
        resp.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        let rule = self.cfg.routes[0].cache.as_ref().unwrap();
        f.on_response_headers(
            rule,
            state,
            200,
            &Headers::new(&HeaderList::from(&resp[..])),
            now,
        );
        f.on_body_chunk(b"body");
        f.finish(&self.cfg.cache_store, state, host, now)
            .unwrap()
            .map(|r| r.entry)
    }

    fn write(&self, host: &mut MemHost, state: &mut CacheState, path: &str) {
        let all = HeaderList::from(
            &vec![
                (":method".to_string(), b"PUT".to_vec()),
                (":path".to_string(), path.as_bytes().to_vec()),
            ][..],
        );
        let rule = self.cfg.routes[0].cache.as_ref().unwrap();
        let facts = facts_of(&all, 0);
        let Outcome::Write { slots } = on_request(&self.cfg.cache_store, rule, state, host, facts)
        else {
            panic!("a PUT is a write")
        };
        Generations::bump(host, self.cfg.cache_store.generation_slots, &slots, None).unwrap();
    }
}

/// The facts of a request of tenant `t` with these headers at `now_ms`.
fn facts_of(all: &HeaderList, now_ms: u64) -> RequestFacts<'_> {
    RequestFacts {
        route: 0,
        tenant: "t",
        headers: Headers::new(all),
        all_headers: all,
        now_ms,
        rand01: 0.5,
        lease_ms: 1,
        background: true,
        unshared: false,
        prompt: None,
        epoch_hint: None,
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
    let err = [(":status".to_string(), b"503".to_vec())];
    assert!(matches!(
        f.on_response_headers(
            rule,
            &s,
            503,
            &Headers::new(&HeaderList::from(&err[..])),
            2_000
        ),
        OnHeaders::ServeStale(_)
    ));
    let o = w.ask(&mut h, &mut s, "/e", 12_000, 0.5);
    let Outcome::Forward(mut f) = o else { panic!() };
    assert!(
        f.stale.is_none()
            || !matches!(
                f.on_response_headers(
                    rule,
                    &s,
                    503,
                    &Headers::new(&HeaderList::from(&err[..])),
                    12_000
                ),
                OnHeaders::ServeStale(_)
            )
    );
}

#[test]
fn writes_and_other_methods() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let all = HeaderList::from(
        &vec![
            (":method".to_string(), b"POST".to_vec()),
            (":path".to_string(), b"/a".to_vec()),
        ][..],
    );
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
        unshared: false,
        prompt: None,
        epoch_hint: None,
    };
    assert!(matches!(
        on_request(&w.cfg.cache_store, rule, &mut s, &mut h, facts(&all)),
        Outcome::Write { .. }
    ));
    let opt = [
        (":method".to_string(), b"OPTIONS".to_vec()),
        (":path".to_string(), b"/a".to_vec()),
    ];
    assert!(matches!(
        on_request(
            &w.cfg.cache_store,
            rule,
            &mut s,
            &mut h,
            facts(&HeaderList::from(&opt[..]))
        ),
        Outcome::Bypass { fwd: Fwd::Method }
    ));
}

/// RFC 9111 §4.4: a write invalidates its own target URI, not every
/// response in flight (the old global-epoch check dropped them all).
#[test]
fn a_write_elsewhere_while_in_flight_does_not_stop_storing_but_one_to_the_same_uri_does() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let (mut h2, mut s2) = w.worker();
    let Outcome::Forward(mut f) = w.ask(&mut h, &mut s, "/items/1", 0, 0.5) else {
        panic!()
    };
    w.write(&mut h2, &mut s2, "/orders/9");
    assert!(w
        .answer(
            &mut h,
            &mut s,
            &mut f,
            &[("cache-control", "max-age=60")],
            10
        )
        .is_some());
    assert_eq!(label(&w.ask(&mut h2, &mut s2, "/items/1", 20, 0.5)), "hit");

    let Outcome::Forward(mut f) = w.ask(&mut h, &mut s, "/items/2", 0, 0.5) else {
        panic!()
    };
    w.write(&mut h2, &mut s2, "/items/2");
    w.answer(
        &mut h,
        &mut s,
        &mut f,
        &[("cache-control", "max-age=60")],
        10,
    );
    assert_eq!(
        label(&w.ask(&mut h2, &mut s2, "/items/2", 20, 0.5)),
        "miss",
        "stored under the counters its request started with: the write made it unreachable"
    );
}

/// §4.4: `location` / `content-location` on the request's origin.
#[test]
fn a_write_invalidates_the_uris_its_answer_names_on_its_own_origin_only() {
    let w = World::new();
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    let n = w.cfg.cache_store.generation_slots;
    let slots = |values: &[&str]| location_slots(rule, "t", "api.example.com", values, n);
    let path = |p: &str| slot("t", Scope::Path(p), n);
    assert_eq!(slots(&["/items/9"]), vec![path("/items/9")]);
    assert_eq!(
        slots(&["http://api.example.com/items/9?x=1"]),
        vec![path("/items/9")]
    );
    assert_eq!(slots(&["HTTPS://API.example.com"]), vec![path("/")]);
    assert!(slots(&["https://evil.example.com/items/9"]).is_empty());
    assert!(slots(&["//api.example.com/items/9", "items/9", ""]).is_empty());
}

/// §3.1: the stored `Date` is the origin's (one is added when missing);
/// fields named by `Connection` are not stored.
#[test]
fn stored_headers_keep_date_and_drop_connection_named_fields() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let e = w
        .store_with(
            &mut h,
            &mut s,
            "/d",
            &[
                ("cache-control", "max-age=60"),
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("connection", "x-hop, close"),
                ("x-hop", "1"),
                ("x-kept", "2"),
            ],
            784_111_777_000,
        )
        .unwrap();
    assert_eq!(e.header("date"), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    assert_eq!(e.header("x-hop"), None);
    assert_eq!(e.header("connection"), None);
    assert_eq!(e.header("x-kept"), Some("2"));
    let e = w
        .store_with(
            &mut h,
            &mut s,
            "/nd",
            &[("cache-control", "max-age=60")],
            784_111_777_000,
        )
        .unwrap();
    assert_eq!(e.header("date"), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
}

/// §4.3.1, §4.3.4: a stale entry with a validator is revalidated; a 304
/// refreshes it (headers updated, body kept).
#[test]
fn a_304_refreshes_the_stale_entry_with_its_headers_and_keeps_the_body() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    w.store_with(
        &mut h,
        &mut s,
        "/r",
        &[
            ("cache-control", "max-age=1"),
            ("etag", "\"v1\""),
            ("x-gen", "1"),
        ],
        0,
    );
    let Outcome::Forward(mut f) = w.ask(&mut h, &mut s, "/r", 5_000, 0.5) else {
        panic!("stale: revalidate")
    };
    assert_eq!(f.validators, vec![("if-none-match", b"\"v1\"".to_vec())]);
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    let nm = [
        (":status".to_string(), b"304".to_vec()),
        ("cache-control".to_string(), b"max-age=60".to_vec()),
        ("x-gen".to_string(), b"2".to_vec()),
    ];
    assert!(matches!(
        f.on_response_headers(
            rule,
            &s,
            304,
            &Headers::new(&HeaderList::from(&nm[..])),
            5_000
        ),
        OnHeaders::NotModified
    ));
    let (entry, stored) = f
        .refresh(
            rule,
            &w.cfg.cache_store,
            &mut s,
            &mut h,
            &Headers::new(&HeaderList::from(&nm[..])),
            5_000,
        )
        .unwrap();
    assert!(matches!(stored, Ok(Some(_))));
    assert_eq!(entry.header("x-gen"), Some("2"));
    assert_eq!(entry.header("etag"), Some("\"v1\""));
    let crate::cache::entry::Body::Response { body, .. } = &entry.body else {
        panic!()
    };
    assert_eq!(body, b"body");
    assert_eq!(label(&w.ask(&mut h, &mut s, "/r", 6_000, 0.5)), "hit");
}

/// A client's own conditional request carries its validators upstream
/// untouched: the cache adds none.
#[test]
fn a_conditional_client_request_gets_no_cache_validators() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    w.store_with(
        &mut h,
        &mut s,
        "/c",
        &[("cache-control", "max-age=1"), ("etag", "\"a\"")],
        0,
    );
    let all = HeaderList::from(
        &vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), b"/c".to_vec()),
            ("range".to_string(), b"bytes=0-1".to_vec()),
        ][..],
    );
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    let facts = facts_of(&all, 5_000);
    let Outcome::Forward(f) = on_request(&w.cfg.cache_store, rule, &mut s, &mut h, facts) else {
        panic!()
    };
    assert!(f.validators.is_empty());
}

/// Review finding: an answer to a conditional or range request other than
/// a 200 (a 416, a 412) answers that request alone and is not stored.
#[test]
fn a_non_200_answer_to_a_range_or_conditional_request_is_not_stored() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    for (name, value, status) in [("range", "bytes=999-", 416u16), ("if-match", "\"x\"", 412)] {
        let all = [
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), b"/q".to_vec()),
            (name.to_string(), value.as_bytes().to_vec()),
        ];
        let all = HeaderList::from(&all[..]);
        let facts = facts_of(&all, 0);
        let Outcome::Forward(mut f) = on_request(&w.cfg.cache_store, rule, &mut s, &mut h, facts)
        else {
            panic!()
        };
        let resp = [
            (":status".to_string(), status.to_string().into_bytes()),
            ("cache-control".to_string(), b"max-age=60".to_vec()),
        ];
        assert!(matches!(
            f.on_response_headers(
                rule,
                &s,
                status,
                &Headers::new(&HeaderList::from(&resp[..])),
                0
            ),
            OnHeaders::Pass { storing: false }
        ));
        assert!(!f.is_capturing(), "{name}");
    }
    assert_eq!(label(&w.ask(&mut h, &mut s, "/q", 1, 0.5)), "miss");
}

/// §4.3.4: a 304 naming another ETag does not update the entry; a 304's
/// own Age counts (§4.2.3).
#[test]
fn a_304_for_another_representation_updates_nothing_and_a_304s_age_counts() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    let store = &w.cfg.cache_store;
    w.store_with(
        &mut h,
        &mut s,
        "/v",
        &[("cache-control", "max-age=1"), ("etag", "\"v1\"")],
        0,
    );
    let Outcome::Forward(mut f) = w.ask(&mut h, &mut s, "/v", 5_000, 0.5) else {
        panic!()
    };
    let other = [
        (":status".to_string(), b"304".to_vec()),
        ("etag".to_string(), b"\"v2\"".to_vec()),
        ("cache-control".to_string(), b"max-age=600".to_vec()),
    ];
    let (entry, stored) = f
        .refresh(
            rule,
            store,
            &mut s,
            &mut h,
            &Headers::new(&HeaderList::from(&other[..])),
            5_000,
        )
        .unwrap();
    assert!(matches!(stored, Ok(None)), "nothing stored");
    assert_eq!(entry.header("etag"), Some("\"v1\""));
    // Same ETag, but the 304 is already 590 s old: fresh for 10 s only.
    let Outcome::Forward(mut f) = w.ask(&mut h, &mut s, "/v", 6_000, 0.5) else {
        panic!("still stale")
    };
    let aged = [
        (":status".to_string(), b"304".to_vec()),
        ("etag".to_string(), b"W/\"v1\"".to_vec()),
        ("cache-control".to_string(), b"max-age=600".to_vec()),
        ("age".to_string(), b"590".to_vec()),
    ];
    let (entry, stored) = f
        .refresh(
            rule,
            store,
            &mut s,
            &mut h,
            &Headers::new(&HeaderList::from(&aged[..])),
            6_000,
        )
        .unwrap();
    assert!(matches!(stored, Ok(Some(_))));
    assert_eq!(entry.fresh_until_ms, 16_000);
}

/// §4.4: a method of unknown safety invalidates like a write; tags are
/// bounded per entry.
#[test]
fn unknown_methods_invalidate_and_tags_are_bounded() {
    let w = World::new();
    let (mut h, mut s) = w.worker();
    let rule = w.cfg.routes[0].cache.as_ref().unwrap();
    for m in ["PURGE", "MKCOL", "POST"] {
        let all = [
            (":method".to_string(), m.as_bytes().to_vec()),
            (":path".to_string(), b"/a".to_vec()),
        ];
        let all = HeaderList::from(&all[..]);
        let facts = facts_of(&all, 0);
        assert!(
            matches!(
                on_request(&w.cfg.cache_store, rule, &mut s, &mut h, facts),
                Outcome::Write { .. }
            ),
            "{m}"
        );
    }
    let tags: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
    let joined = tags.join(" ");
    let e = w
        .store_with(
            &mut h,
            &mut s,
            "/tags",
            &[("cache-control", "max-age=60"), ("cache-tag", &joined)],
            0,
        )
        .unwrap();
    assert!(
        e.gens.len() <= 16 + crate::cache::response::MAX_TAGS,
        "{}",
        e.gens.len()
    );
}
