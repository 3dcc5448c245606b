//! The snapshot's poll state against the in-memory host: one worker polls
//! at a time, failures are counted, damaged state never stops polling.

use super::*;
use crate::cache::purges::polling;
// The purge tests' config (two cached rules, accounting) and tables.
use crate::cache::purges::tests::{cfg, setup};
use crate::config::parse;
use crate::mem_host::MemHost;

// --- the poll claim ---------------------------------------------------------------

#[test]
fn poll_state_round_trips_and_foreign_bytes_read_as_none() {
    let s = PollState {
        claim_until_ms: 1,
        next_at_ms: 2,
        mapping: 3,
        failures: 4,
        version: "5.6".into(),
    };
    assert_eq!(PollState::decode(&s.encode()), Some(s));
    assert_eq!(PollState::decode(&[]), None);
    assert_eq!(PollState::decode(&[9; 40]), None);
    let mut bad_utf8 = PollState::default().encode();
    bad_utf8.push(0xff);
    assert_eq!(PollState::decode(&bad_utf8), None);
}

#[test]
fn one_worker_polls_at_a_time_and_not_before_the_interval() {
    let (_, m, store) = setup();
    let mut a = MemHost::with_store(store.clone());
    let mut b = MemHost::with_store(store.clone());
    let fp = m.fingerprint;
    assert_eq!(claim(&mut a, 1_000, 200, 3_000, fp).unwrap(), Some(None));
    assert_eq!(claim(&mut b, 1_000, 200, 3_000, fp).unwrap(), None, "taken");
    assert_eq!(claim(&mut b, 1_500, 200, 3_000, fp).unwrap(), None, "held");
    finish(
        &mut a,
        PollEnd::Applied {
            version: "7.1",
            mapping: fp,
        },
    )
    .unwrap();
    assert_eq!(
        claim(&mut b, 1_500, 200, 3_000, fp).unwrap(),
        Some(Some("7.1".into())),
        "released and due: asks since the applied version"
    );
    finish(&mut b, PollEnd::NotModified).unwrap();
    assert_eq!(
        claim(&mut a, 1_600, 200, 3_000, fp).unwrap(),
        None,
        "not due"
    );
    assert_eq!(claim(&mut a, 1_649, 200, 3_000, fp).unwrap(), None);
    // Due a quarter interval early (the timers tick four times per
    // interval), so no poll waits for a whole extra tick.
    assert!(claim(&mut a, 1_650, 200, 3_000, fp).unwrap().is_some());
    // A claim whose worker never answers expires.
    assert_eq!(claim(&mut b, 4_649, 200, 3_000, fp).unwrap(), None);
    assert!(claim(&mut b, 4_650, 200, 3_000, fp).unwrap().is_some());
    // Another mapping (a reload with other rules) does not trust the version.
    finish(&mut b, PollEnd::NotModified).unwrap();
    assert_eq!(
        claim(&mut a, 5_000, 200, 3_000, fp + 1).unwrap(),
        Some(None)
    );
}

#[test]
fn failures_are_counted_until_a_poll_succeeds() {
    let (_, m, store) = setup();
    let mut a = MemHost::with_store(store.clone());
    for (t, before) in [(1_000, 0), (1_200, 1), (1_400, 2)] {
        claim(&mut a, t, 200, 3_000, m.fingerprint)
            .unwrap()
            .unwrap();
        assert_eq!(finish(&mut a, PollEnd::Failed).unwrap(), before);
    }
    claim(&mut a, 1_600, 200, 3_000, m.fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(finish(&mut a, PollEnd::NotModified).unwrap(), 3);
    claim(&mut a, 1_800, 200, 3_000, m.fingerprint)
        .unwrap()
        .unwrap();
    assert_eq!(finish(&mut a, PollEnd::NotModified).unwrap(), 0);
}

#[test]
fn a_far_future_deadline_or_damaged_state_does_not_stop_polling() {
    let (_, m, store) = setup();
    let mut a = MemHost::with_store(store.clone());
    // As left by a config with an interval of an hour.
    let st = PollState {
        next_at_ms: 1_000 + 3_600_000,
        ..PollState::default()
    };
    a.shared_put(purge_poll(), &st.encode()).unwrap();
    assert!(claim(&mut a, 1_000, 200, 3_000, m.fingerprint)
        .unwrap()
        .is_some());
    a.shared_put(purge_poll(), b"garbage").unwrap();
    assert_eq!(
        claim(&mut a, 2_000, 200, 3_000, m.fingerprint).unwrap(),
        Some(None)
    );
    assert!(a
        .logs
        .borrow()
        .iter()
        .any(|(_, l)| l.contains("poll state")));
    a.shared_put(purge_poll(), b"garbage").unwrap();
    finish(&mut a, PollEnd::Failed).unwrap();
    assert!(PollState::decode(store.borrow().value(purge_poll()).unwrap()).is_some());
}

#[test]
fn polling_needs_the_link_a_cache_rule_and_an_interval() {
    assert!(polling(&cfg()).is_some());
    let off = parse(
        br#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g","purge_poll_ms":0},
            "routes":[{"name":"r","match":{"prefix":"/"},"cache":{}}]}"#,
    )
    .unwrap();
    assert!(polling(&off).is_none());
    let no_cache = parse(
        br#"{"version":1,"accounting":{"cost_control":"cc","token":"t","gateway_id":"g"},
            "routes":[{"name":"r","match":{"prefix":"/"}}]}"#,
    )
    .unwrap();
    assert!(polling(&no_cache).is_none());
    let no_link =
        parse(br#"{"version":1,"routes":[{"name":"r","match":{"prefix":"/"},"cache":{}}]}"#)
            .unwrap();
    assert!(polling(&no_link).is_none());
}

#[test]
fn versions_are_sent_percent_encoded() {
    assert_eq!(query_value("12.2900"), "12.2900");
    assert_eq!(query_value("a b&c=\"d\""), "a%20b%26c%3D%22d%22");
}
