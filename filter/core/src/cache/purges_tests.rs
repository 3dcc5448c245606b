//! Purges against the in-memory host: which entries each kind reaches,
//! idempotence across polls, workers and reloads, the poll claim, and
//! damaged bytes.

use super::*;
use crate::cache::request::{on_request, Outcome, RequestFacts};
use crate::cache::response::OnHeaders;
use crate::cache::CacheState;
use crate::config::parse;
use crate::header_list::HeaderList;
use crate::headers::Headers;
use crate::mem_host::{MemHost, SharedStore};
use crate::shared::gen_epoch;

const CFG: &str = r#"{"version":1,"cache_store":{"max_entries":256,"ways":4},
  "accounting":{"cost_control":"cc","token":"t","gateway_id":"g"},
  "routes":[
   {"name":"items","match":{"prefix":"/api/items"},
    "cache":{"related_prefixes":["/api/ite"],"vary":["accept-language"]}},
   {"name":"things","match":{"prefix":"/api/things"},"cache":{"ignore_query":["utm_source"]}}]}"#;

pub(in crate::cache) fn cfg() -> Config {
    parse(CFG.as_bytes()).unwrap()
}

/// The config's mapping over so many slots that unrelated scopes never
/// share one: these tests are about which scopes match.
fn wide() -> (Config, Mapping) {
    let c = cfg();
    let m = Mapping {
        slots: 1 << 30,
        ..Mapping::of(&c)
    };
    (c, m)
}

/// Whether a purge reaches the entry of `url` (tenant `entry_tenant`,
/// stored under rule `rule` with these tags).
fn reaches(purge: (&str, PurgeKind, &str), entry: (&str, usize, &str, &[&str])) -> bool {
    let (c, m) = wide();
    let (entry_tenant, rule, url, tags) = entry;
    let rule = c.routes[rule].cache.as_ref().unwrap();
    let (path, query) = key::normalise(url.as_bytes(), &rule.ignore_query);
    let mut recorded = entry_slots(rule, entry_tenant, &path, &query, m.slots);
    recorded.extend(
        tags.iter()
            .map(|t| slot(entry_tenant, Scope::Tag(t), m.slots)),
    );
    let (tenant, kind, value) = purge;
    purge_slots(tenant, kind, value, &m)
        .iter()
        .any(|s| recorded.contains(s))
}

#[test]
fn a_prefix_purge_reaches_the_path_and_everything_under_it_on_whole_segments() {
    use PurgeKind::Prefix;
    let cases: &[(&str, &str, bool)] = &[
        ("/api/items", "/api/items/1", true),
        ("/api/items", "/api/items/1?x=y", true),
        ("/api/items", "/api/items", true),
        ("/api/items", "/api/items/", true),
        ("/api/items", "/api/items?page=2", true),
        ("/api/items/", "/api/items/1", true),
        ("/api/items", "/api/items/1/parts/2", true),
        ("/api/items", "/api/itemsX/1", false),
        ("/api/items", "/api/other/1", false),
        ("/api/items/1", "/api/items/1?lang=en", true),
        ("/api/items/1", "/api/items/10", false),
        ("/api/items/1", "/api/items/2", false),
        ("/", "/api/items/3", true),
        ("", "/api/items/3", true),
        // A value equal to one of the rule's related prefixes covers what
        // that prefix covers, segment or not.
        ("/api/ite", "/api/items/1", true),
        ("/api/it", "/api/items/1", false),
        // As a user copies it: with the origin, encoded differently.
        ("http://gw.example:10000/api/items", "/api/items/5", true),
        ("HTTPS://gw.example", "/api/items/5", true),
        ("/api/%69tems", "/api/items/5", true),
        ("api/items", "/api/items/5", true),
        // Deeper than the entries record: the ancestor at that depth goes
        // (its siblings too: extra misses, never a stale hit).
        ("/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h/i/j/k", true),
        ("/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h/i/j", true),
        ("/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/h/z/y", true),
        ("/a/b/c/d/e/f/g/h/i/j", "/a/b/c/d/e/f/g/x/y", false),
        ("/a/b/c/d/e/f/g/h", "/a/b/c/d/e/f/g/h/x/y/z", true),
    ];
    for &(value, url, want) in cases {
        assert_eq!(
            reaches(("acme", Prefix, value), ("acme", 0, url, &[])),
            want,
            "prefix {value:?} on {url}"
        );
    }
}

#[test]
fn a_key_purge_reaches_one_url_as_the_cache_key_normalises_it() {
    use PurgeKind::Key;
    let cases: &[(&str, usize, &str, bool)] = &[
        ("/api/items/1?lang=en", 0, "/api/items/1?lang=en", true),
        ("/api/items/1?b=2&a=1", 0, "/api/items/1?a=1&b=2", true),
        ("/api/items/1?a=%31", 0, "/api/items/1?a=1", true),
        ("https://gw/api/items/%31", 0, "/api/items/1", true),
        ("/api/items/1", 0, "/api/items/1?lang=en", false),
        ("/api/items/1?lang=en", 0, "/api/items/1", false),
        ("/api/items/1?lang=en", 0, "/api/items/1?lang=fr", false),
        ("/api/items/1", 0, "/api/items/1/parts", false),
        ("/api/items", 0, "/api/items/1", false),
        // The rule that cached it ignores utm_source: so does the purge.
        ("/api/things/1?utm_source=mail", 1, "/api/things/1", true),
        ("/api/things/1", 1, "/api/things/1?utm_source=x", true),
    ];
    for &(value, rule, url, want) in cases {
        assert_eq!(
            reaches(("acme", Key, value), ("acme", rule, url, &[])),
            want,
            "key {value:?} on {url}"
        );
    }
}

#[test]
fn a_tag_purge_reaches_entries_with_that_tag_whatever_its_case() {
    use PurgeKind::Tag;
    let e = |tags: &'static [&'static str]| ("acme", 0usize, "/api/items/1", tags);
    assert!(reaches(("acme", Tag, "blue"), e(&["blue", "item-1"])));
    assert!(reaches(("acme", Tag, " Blue "), e(&["blue"])));
    assert!(reaches(("acme", Tag, "item-1"), e(&["blue", "item-1"])));
    assert!(!reaches(("acme", Tag, "red"), e(&["blue"])));
    assert!(!reaches(("acme", Tag, "blue"), e(&[])));
}

#[test]
fn a_purge_never_reaches_another_tenants_entries() {
    for (kind, value) in [
        (PurgeKind::Prefix, "/"),
        (PurgeKind::Prefix, "/api/items"),
        (PurgeKind::Key, "/api/items/1"),
        (PurgeKind::Tag, "blue"),
    ] {
        assert!(reaches(
            ("acme", kind, value),
            ("acme", 0, "/api/items/1", &["blue"])
        ));
        assert!(
            !reaches(
                ("acme", kind, value),
                ("globex", 0, "/api/items/1", &["blue"])
            ),
            "{kind:?} {value}"
        );
    }
}

#[test]
fn entries_record_a_bounded_number_of_slots() {
    let (c, m) = wide();
    let rule = c.routes[0].cache.as_ref().unwrap();
    let deep = "/a".repeat(40);
    let s = entry_slots(rule, "acme", &deep, "x=1", m.slots);
    // path, url, `/` and MAX_PREFIX_DEPTH ancestors
    assert_eq!(s.len(), 3 + MAX_PREFIX_DEPTH);
    let s = entry_slots(rule, "acme", "/api/items/1", "", m.slots);
    // path, url, `/`, /api, /api/items, related /api/ite
    assert_eq!(s.len(), 6);
}

// --- the snapshot ---------------------------------------------------------------

#[test]
fn snapshots_are_read_and_odd_entries_skipped() {
    let s = parse_snapshot(
        br#"{"version":"12.29000000","generated_at_ms":1,"tenants":[{"tenant":"acme","x":[1]}],
            "purges":[{"tenant":"acme","kind":"prefix","value":"/api","generation":2},
                      {"tenant":"acme","kind":"url","value":"/x","generation":1},
                      {"tenant":"acme","kind":"tag","value":"t","generation":-1},
                      {"tenant":"acme","kind":"tag"},
                      "junk",
                      {"tenant":"acme","kind":"key","value":"/k?a=1","generation":1}]}"#,
    )
    .unwrap();
    assert_eq!(s.version, "12.29000000");
    assert_eq!(s.skipped, 4);
    assert_eq!(
        s.purges,
        vec![
            Purge {
                tenant: "acme".into(),
                kind: PurgeKind::Prefix,
                value: "/api".into(),
                generation: 2
            },
            Purge {
                tenant: "acme".into(),
                kind: PurgeKind::Key,
                value: "/k?a=1".into(),
                generation: 1
            },
        ]
    );
    assert!(parse_snapshot(br#"{"version":"1"}"#)
        .unwrap()
        .purges
        .is_empty());
    for bad in [
        &b""[..],
        b"<html>",
        br#"{"purges":[]}"#,
        br#"{"version":3}"#,
        b"\xff\xfe",
    ] {
        assert!(
            parse_snapshot(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

// --- applying: idempotent across polls, workers, reloads ---------------------------

fn purge(tenant: &str, kind: PurgeKind, value: &str, generation: u64) -> Purge {
    Purge {
        tenant: tenant.into(),
        kind,
        value: value.into(),
        generation,
    }
}

fn epoch(store: &Rc<RefCell<SharedStore>>) -> u64 {
    let b = store.borrow().value(gen_epoch()).unwrap().to_vec();
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

use std::cell::RefCell;
use std::rc::Rc;

pub(in crate::cache) fn setup() -> (Config, Mapping, Rc<RefCell<SharedStore>>) {
    let c = cfg();
    let store = SharedStore::new_shared();
    let mut h = MemHost::with_store(store.clone());
    crate::cache::create_tables(&c, &mut h).unwrap();
    let m = Mapping::of(&c);
    (c, m, store)
}

#[test]
fn a_purge_is_applied_once_however_often_and_wherever_it_is_polled() {
    let (c, m, store) = setup();
    let mut a = MemHost::with_store(store.clone());
    let mut b = MemHost::with_store(store.clone());
    let snap = vec![purge("acme", PurgeKind::Prefix, "/api/items", 1)];
    assert!(apply(&mut a, &snap, &m, None).unwrap() > 0);
    let e = epoch(&store);
    assert_eq!(e, 1, "one bump of the epoch for the whole snapshot");
    assert_eq!(apply(&mut a, &snap, &m, None).unwrap(), 0, "polled again");
    assert_eq!(
        apply(&mut b, &snap, &m, None).unwrap(),
        0,
        "polled by another worker"
    );
    // A reloaded filter: new tables are not created over the old ones.
    let mut reloaded = MemHost::with_store(store.clone());
    crate::cache::create_tables(&c, &mut reloaded).unwrap();
    assert_eq!(
        apply(&mut reloaded, &snap, &m, None).unwrap(),
        0,
        "after a reload"
    );
    assert_eq!(epoch(&store), e);

    // The same purge made again: a new generation, a new bump.
    let again = vec![purge("acme", PurgeKind::Prefix, "/api/items", 2)];
    assert!(apply(&mut b, &again, &m, None).unwrap() > 0);
    assert_eq!(epoch(&store), e + 1);
    assert_eq!(apply(&mut a, &again, &m, None).unwrap(), 0);
    // An older snapshot arriving late bumps again (a miss, never a stale hit).
    assert!(apply(&mut a, &snap, &m, None).unwrap() > 0);
}

#[test]
fn missed_polls_apply_everything_at_once() {
    let (_, m, store) = setup();
    let mut h = MemHost::with_store(store.clone());
    apply(&mut h, &[purge("acme", PurgeKind::Tag, "a", 1)], &m, None).unwrap();
    // Three purges made (one of them twice) while this gateway polled nothing.
    let later = vec![
        purge("acme", PurgeKind::Tag, "a", 3),
        purge("acme", PurgeKind::Key, "/k", 1),
        purge("globex", PurgeKind::Prefix, "/", 1),
    ];
    let want: Vec<u32> = later
        .iter()
        .flat_map(|p| purge_slots(&p.tenant, p.kind, &p.value, &m))
        .collect();
    let mut before = Generations::default();
    before.refresh(&h, m.slots, None);
    apply(&mut h, &later, &m, None).unwrap();
    let mut after = Generations::default();
    after.refresh(&h, m.slots, None);
    for s in want {
        assert_ne!(before.value(s), after.value(s), "slot {s} not bumped");
    }
}

#[test]
fn damaged_applied_table_bumps_again_with_a_log_line() {
    let (_, m, store) = setup();
    let mut h = MemHost::with_store(store.clone());
    let snap = vec![purge("acme", PurgeKind::Tag, "a", 1)];
    apply(&mut h, &snap, &m, None).unwrap();
    h.shared_put(purge_applied(), b"\x01\x02\x03").unwrap();
    assert!(apply(&mut h, &snap, &m, None).unwrap() > 0);
    assert!(h
        .logs
        .borrow()
        .iter()
        .any(|(_, l)| l.contains("applied table")));
    // Rewritten whole: the next poll is quiet again.
    assert_eq!(apply(&mut h, &snap, &m, None).unwrap(), 0);
}

#[test]
fn a_failed_bump_records_nothing_so_the_next_poll_retries() {
    let (_, m, store) = setup();
    let mut h = MemHost::with_store(store.clone());
    let snap = vec![purge("acme", PurgeKind::Tag, "a", 1)];
    store.borrow_mut().inject_conflicts(1000);
    assert_eq!(apply(&mut h, &snap, &m, None), Err(HostError::CasMismatch));
    store.borrow_mut().inject_conflicts(0);
    assert!(apply(&mut h, &snap, &m, None).unwrap() > 0);
}

// --- stored entries become unreachable ----------------------------------------

struct Gateway {
    cfg: Config,
    store: Rc<RefCell<SharedStore>>,
}

impl Gateway {
    fn new() -> Self {
        let (cfg, _, store) = setup();
        Gateway { cfg, store }
    }

    fn worker(&self) -> (MemHost, CacheState) {
        (
            MemHost::with_store(self.store.clone()),
            CacheState::new(&self.cfg),
        )
    }

    fn ask(&self, w: &mut (MemHost, CacheState), tenant: &str, url: &str, lang: &str) -> Outcome {
        let all = HeaderList::from(
            &vec![
                (":method".to_string(), b"GET".to_vec()),
                (":path".to_string(), url.as_bytes().to_vec()),
                ("accept-language".to_string(), lang.as_bytes().to_vec()),
            ][..],
        );
        let route = if url.starts_with("/api/things") { 1 } else { 0 };
        let rule = self.cfg.routes[route].cache.as_ref().unwrap();
        on_request(
            &self.cfg.cache_store,
            rule,
            &mut w.1,
            &mut w.0,
            RequestFacts {
                route,
                tenant,
                headers: Headers::new(&all),
                all_headers: &all,
                now_ms: 1_000,
                rand01: 0.5,
                lease_ms: 5_000,
                background: true,
                unshared: false,
                prompt: None,
                epoch_hint: None,
            },
        )
    }

    /// `true` for a hit; a miss is stored (with these tags).
    fn get(&self, w: &mut (MemHost, CacheState), tenant: &str, url: &str, tags: &str) -> bool {
        self.get_lang(w, tenant, url, tags, "en")
    }

    fn get_lang(
        &self,
        w: &mut (MemHost, CacheState),
        tenant: &str,
        url: &str,
        tags: &str,
        lang: &str,
    ) -> bool {
        let Outcome::Forward(mut f) = self.ask(w, tenant, url, lang) else {
            return true;
        };
        let route = f.route;
        let rule = self.cfg.routes[route].cache.as_ref().unwrap();
        let resp = [
            (":status".to_string(), b"200".to_vec()),
            ("cache-control".to_string(), b"max-age=600".to_vec()),
            ("cache-tag".to_string(), tags.as_bytes().to_vec()),
        ];
        assert!(matches!(
            f.on_response_headers(
                rule,
                &w.1,
                200,
                &Headers::new(&HeaderList::from(&resp[..])),
                1_000
            ),
            OnHeaders::Pass { .. }
        ));
        f.on_body_chunk(b"body");
        assert!(f
            .finish(&self.cfg.cache_store, &mut w.1, &mut w.0, 1_000)
            .unwrap()
            .is_some());
        false
    }

    fn purge(&self, purges: &[Purge]) {
        let mut h = MemHost::with_store(self.store.clone());
        apply(&mut h, purges, &Mapping::of(&self.cfg), None).unwrap();
    }
}

#[test]
fn prefix_tag_and_key_purges_make_stored_entries_unreachable_on_every_worker() {
    let g = Gateway::new();
    let mut w1 = g.worker();
    let mut w2 = g.worker();
    let urls = [
        ("/api/items/1", "blue"),
        ("/api/items/1?lang=en", ""),
        ("/api/items/2", "blue, red"),
        ("/api/items/3/parts", ""),
        ("/api/itemsX/1", ""),
        ("/api/things/1", "red"),
    ];
    for tenant in ["acme", "globex"] {
        for (url, tags) in urls {
            assert!(!g.get(&mut w1, tenant, url, tags), "first {tenant} {url}");
            assert!(g.get(&mut w1, tenant, url, tags), "{tenant} {url} stored");
            assert!(g.get(&mut w2, tenant, url, tags), "{tenant} {url} on w2");
        }
    }
    let hits = |g: &Gateway, w: &mut (MemHost, CacheState), tenant: &str| -> Vec<bool> {
        urls.iter()
            .map(|(url, _)| matches!(g.ask(w, tenant, url, "en"), Outcome::Hit { .. }))
            .collect()
    };

    // Key: that URL only (not the same path with a query).
    g.purge(&[purge("acme", PurgeKind::Key, "/api/items/1", 1)]);
    let want = vec![false, true, true, true, true, true];
    assert_eq!(hits(&g, &mut w1, "acme"), want);
    assert_eq!(hits(&g, &mut w2, "acme"), want);

    // Tag: every entry with it, in any rule.
    g.purge(&[
        purge("acme", PurgeKind::Key, "/api/items/1", 1),
        purge("acme", PurgeKind::Tag, "RED", 1),
    ]);
    let want = vec![false, true, false, true, true, false];
    assert_eq!(hits(&g, &mut w1, "acme"), want);
    assert_eq!(hits(&g, &mut w2, "acme"), want);

    // Prefix: the path and below, not /api/itemsX.
    g.purge(&[
        purge("acme", PurgeKind::Key, "/api/items/1", 1),
        purge("acme", PurgeKind::Tag, "RED", 1),
        purge("acme", PurgeKind::Prefix, "/api/items/", 1),
    ]);
    let want = vec![false, false, false, false, true, false];
    assert_eq!(hits(&g, &mut w1, "acme"), want);
    assert_eq!(hits(&g, &mut w2, "acme"), want);

    // Nothing of another tenant went.
    assert_eq!(hits(&g, &mut w1, "globex"), vec![true; urls.len()]);
    assert_eq!(hits(&g, &mut w2, "globex"), vec![true; urls.len()]);

    // Stored again after the purge, an entry stays until the next one.
    assert!(!g.get(&mut w1, "acme", "/api/items/1", "blue"));
    assert!(g.get(&mut w2, "acme", "/api/items/1", "blue"));
}

#[test]
fn a_key_purge_reaches_every_variant_of_the_url() {
    let g = Gateway::new();
    let mut w = g.worker();
    for lang in ["en", "fr"] {
        assert!(!g.get_lang(&mut w, "acme", "/api/items/9", "", lang));
        assert!(g.get_lang(&mut w, "acme", "/api/items/9", "", lang));
    }
    g.purge(&[purge("acme", PurgeKind::Key, "/api/items/9", 1)]);
    for lang in ["en", "fr"] {
        assert!(!matches!(
            g.ask(&mut w, "acme", "/api/items/9", lang),
            Outcome::Hit { .. }
        ));
    }
}
