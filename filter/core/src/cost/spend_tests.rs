//! The spend buffer: wire format, folding, retries with the same batch id.

use super::*;
use serde_json::Value;

fn ev(tenant: &str, cost: u64) -> SpendEvent {
    SpendEvent {
        tenant: tenant.into(),
        service: "svc".into(),
        route: "r".into(),
        provider: "p".into(),
        strategy: "upstream",
        cost_micros: cost,
        baseline_micros: cost * 2,
        ts_ms: 1_000,
        allowance_id: Some("a1".into()),
    }
}

/// Requests a batch stands for (a folded sum's `count`, else 1 each).
fn requests(body: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.get("count").map_or(1, |c| c.as_u64().unwrap()))
        .sum()
}

fn totals(body: &[u8]) -> (u64, u64, usize) {
    let v: Value = serde_json::from_slice(body).unwrap();
    let evs = v["events"].as_array().unwrap();
    (
        evs.iter().map(|e| e["cost_micros"].as_u64().unwrap()).sum(),
        evs.iter()
            .map(|e| e["baseline_micros"].as_u64().unwrap())
            .sum(),
        evs.len(),
    )
}

#[test]
fn the_wire_format_is_cost_controls_ingest_contract() {
    let mut b = SpendBuffer::new("gw-1", 0xab, 100);
    b.push(ev("acme", 2_000));
    let mut no_lease = ev("acme", 5);
    no_lease.allowance_id = None;
    b.push(no_lease);
    let out = b.next_batch(5_000, 1_000, 500).unwrap();
    assert_eq!(out.batch_id, "gw-1-00000000000000ab-1");
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["gateway_id"], "gw-1");
    assert_eq!(v["batch_id"], out.batch_id);
    let e = &v["events"][0];
    for (k, want) in [
        ("tenant", Value::from("acme")),
        ("service", "svc".into()),
        ("route", "r".into()),
        ("provider", "p".into()),
        ("strategy", "upstream".into()),
        ("cost_micros", 2_000.into()),
        ("baseline_micros", 4_000.into()),
        ("ts", 1_000.into()),
        ("allowance_id", "a1".into()),
    ] {
        assert_eq!(e[k], want, "{k}");
    }
    assert!(v["events"][1].get("allowance_id").is_none());
}

#[test]
fn past_the_bound_events_fold_and_totals_stay_exact() {
    let mut b = SpendBuffer::new("gw", 1, 10);
    let mut want = (0, 0);
    for i in 0..1_000u64 {
        let t = if i % 3 == 0 { "a" } else { "b" };
        b.push(ev(t, i));
        want.0 += i;
        want.1 += 2 * i;
    }
    assert_eq!(b.folded_total, 990);
    assert_eq!(b.pending(), 10 + 2, "10 events and one sum per tenant");
    let mut got = (0, 0);
    let mut sent = 0;
    let mut now = 10_000;
    while let Some(out) = b.next_batch(now, 1, 4) {
        assert!(out.events <= 4);
        let (c, bl, _) = totals(&out.body);
        got.0 += c;
        got.1 += bl;
        sent += requests(&out.body);
        b.on_result(now, FlushOutcome::Accepted, 0, 10, 100);
        now += 10;
    }
    assert_eq!(got, want, "money is never lost, only detail");
    assert_eq!(sent, 1_000, "and every request is counted");
}

#[test]
fn a_failed_batch_is_retried_with_the_same_id_after_a_jittered_backoff() {
    let mut b = SpendBuffer::new("gw", 1, 100);
    b.push(ev("a", 1));
    let first = b.next_batch(1_000, 100, 500).unwrap();
    b.push(ev("a", 2));
    assert_eq!(b.next_batch(5_000, 100, 500), None, "never two at once");
    let mut now = 5_000;
    let mut last_delay = 0;
    for attempt in 0..8u32 {
        b.on_result(
            now,
            FlushOutcome::Failed,
            u64::MAX / 3 + u64::from(attempt),
            200,
            10_000,
        );
        assert_eq!(b.next_batch(now, 100, 500), None, "waits its backoff");
        let full = backoff_delay(attempt, 200, 10_000);
        let mut t = now;
        let again = loop {
            t += 1;
            if let Some(x) = b.next_batch(t, 100, 500) {
                break x;
            }
        };
        let waited = t - now;
        assert!(waited >= full / 2 && waited <= full, "{waited} vs {full}");
        assert_eq!(
            again, first,
            "same id, same body: idempotent at cost-control"
        );
        last_delay = full;
        now = t;
    }
    assert_eq!(last_delay, 10_000, "capped");
    b.on_result(now, FlushOutcome::Accepted, 0, 200, 10_000);
    let next = b.next_batch(now + 1_000, 100, 500).unwrap();
    assert_ne!(next.batch_id, first.batch_id);
    assert_eq!(totals(&next.body).0, 2);
}

#[test]
fn a_refused_batch_is_parked_per_tenant_and_sent_again_alone() {
    let mut b = SpendBuffer::new("gw", 1, 2);
    for (t, cost) in [("a", 10), ("b", 20), ("a", 30), ("b", 40)] {
        b.push(ev(t, cost)); // two events, then two folded sums
    }
    let first = b.next_batch(1_000, 100, 500).unwrap();
    assert_eq!((totals(&first.body).0, requests(&first.body)), (100, 4));
    assert_eq!(b.on_result(1_001, FlushOutcome::Rejected, 0, 10, 10), 4);
    assert!(!b.busy());
    assert_eq!(b.parked(), (100, 4), "nothing dropped");
    // New spend goes on meanwhile; the parked money waits its backoff.
    b.push(ev("c", 5));
    let next = b.next_batch(2_000, 100, 500).unwrap();
    assert_eq!(totals(&next.body).0, 5);
    b.on_result(2_001, FlushOutcome::Accepted, 0, 10, 10);
    assert_eq!(b.next_batch(3_000, 100, 500), None, "parked for 2.5..5 s");
    let mut alone = Vec::new();
    let mut now = 3_000;
    while alone.len() < 2 {
        now += 100;
        if let Some(out) = b.next_batch(now, 100, 500) {
            let v: Value = serde_json::from_slice(&out.body).unwrap();
            assert_eq!(v["events"].as_array().unwrap().len(), 1, "one tenant alone");
            let e = v["events"][0].clone();
            assert_eq!(e["strategy"], "folded");
            assert!(e.get("allowance_id").is_none(), "sent without its lease");
            alone.push((
                e["tenant"].as_str().unwrap().to_string(),
                totals(&out.body).0,
                requests(&out.body),
            ));
            let outcome = if e["tenant"] == "a" {
                FlushOutcome::Accepted
            } else {
                FlushOutcome::Rejected
            };
            b.on_result(now, outcome, 0, 10, 10);
        }
    }
    assert!(now <= 6_000, "retried within the first backoff: {now}");
    alone.sort();
    assert_eq!(alone, vec![("a".into(), 40, 2), ("b".into(), 60, 2)]);
    assert_eq!(b.parked(), (60, 2), "b refused again: still parked");
    // Its second refusal doubles the wait (5..10 s).
    assert_eq!(b.next_batch(now + 4_000, 100, 500), None);
    let again = b.next_batch(now + 10_000, 100, 500).unwrap();
    assert_eq!((totals(&again.body).0, requests(&again.body)), (60, 2));
    b.on_result(now + 10_001, FlushOutcome::Accepted, 0, 10, 10);
    assert_eq!(b.parked(), (0, 0));
}

#[test]
fn a_silent_batch_expires_and_is_retried() {
    let mut b = SpendBuffer::new("gw", 1, 100);
    b.push(ev("a", 1));
    b.next_batch(2_000, 100, 500).unwrap();
    assert!(!b.expire(2_500, 1_000, 0, 10, 10));
    assert!(b.expire(3_001, 1_000, 0, 10, 10));
    assert!(b.next_batch(3_100, 100, 500).is_some(), "retried");
}

#[test]
fn long_fields_are_cut_to_what_cost_control_accepts() {
    let mut b = SpendBuffer::new("gw", 1, 100);
    let mut e = ev(&"é".repeat(300), 1);
    e.route = "r".repeat(5_000);
    b.push(e);
    let out = b.next_batch(10_000, 1, 10).unwrap();
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert!(v["events"][0]["tenant"].as_str().unwrap().len() <= 200);
    assert_eq!(v["events"][0]["route"].as_str().unwrap().len(), 1024);
}

/// A backlog (cost-control away) grows the buffer; once it has drained,
/// `compact` gives the room back (`make soak`'s heap check found it kept).
#[test]
fn a_drained_backlog_gives_its_room_back() {
    let mut b = SpendBuffer::new("gw", 1, 10_000);
    for i in 0..5_000 {
        b.push(ev("a", i));
    }
    let grown = b.events.capacity();
    assert!(grown >= 5_000);
    while let Some(batch) = b.next_batch(0, 0, 500) {
        assert!(batch.events > 0);
        b.on_result(0, FlushOutcome::Accepted, 0, 100, 1_000);
    }
    assert_eq!(b.pending(), 0);
    b.compact();
    assert!(b.events.capacity() <= 256, "{} kept", b.events.capacity());
    // A buffer in use keeps its working room.
    for i in 0..100 {
        b.push(ev("a", i));
    }
    let working = b.events.capacity();
    b.compact();
    assert_eq!(b.events.capacity(), working);
}
