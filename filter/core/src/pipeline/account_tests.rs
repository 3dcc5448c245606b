//! The account and budget stages against the in-memory host: spend events
//! reach the timer's report, a first request waits for its tenant's lease,
//! a spent budget refuses, and the response settles the reservation.

use super::*;
use crate::config::parse;
use crate::cost::budget;
use crate::mem_host::MemHost;

const CFG: &str = r#"{"version":1,
  "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","flush_ms":100,
                "budgets":{"lease":"0.01","slots":4}},
  "routes":[
  {"name":"paid","match":{"prefix":"/paid/"},"debug_headers":true,
   "cost":{"cost_per_call":"0.002","budget":{}}},
  {"name":"free","match":{"prefix":"/free/"},"cost":{"cost_per_call":"0.003"}}]}"#;

fn setup(host: &mut MemHost) -> (Filter, Worker) {
    let filter = Filter::new(parse(CFG.as_bytes()).unwrap(), host);
    filter.create_tables(host).unwrap();
    let worker = Worker::new(&filter.config, host);
    (filter, worker)
}

fn request(host: &mut MemHost, path: &str) {
    host.request_headers = vec![
        (":method".into(), b"GET".to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        ("x-tenant-id".into(), b"acme".to_vec()),
    ];
}

fn answer_callout(f: &Filter, w: &mut Worker, h: &mut MemHost, status: &str, body: &str) {
    let token = h.callouts.last().unwrap().token;
    h.callout_headers = vec![(":status".into(), status.as_bytes().to_vec())];
    h.callout_body = body.as_bytes().to_vec();
    let n = h.callout_body.len();
    on_callout_response(f, w, h, token, n);
}

fn lease(h: &mut MemHost, micros: i64) -> budget::Grant {
    let g = budget::Grant {
        allowance_id: (micros > 0).then(|| "L1".to_string()),
        granted_micros: micros,
        expires_at_ms: 100_000,
        soft: false,
        hard: false,
    };
    budget::apply_grant(h, 4, "acme", &g, 10_000, 1_000).unwrap();
    g
}

fn upstream_ok(f: &Filter, w: &mut Worker, h: &mut MemHost, stream: StreamId) {
    h.response_headers = vec![(":status".into(), b"200".to_vec())];
    on_response_headers(f, w, h, stream, true);
    on_done(f, w, h, stream);
}

#[test]
fn a_priced_response_becomes_a_spend_event_in_the_timers_report() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    request(&mut h, "/free/1");
    let v = on_request_headers(&f, &mut w, &mut h, 1);
    assert_eq!(v, Verdict::Continue, "no budget on this rule");
    upstream_ok(&f, &mut w, &mut h, 1);
    assert_eq!(
        h.counter("cost_optimizer.route.free.cost.upstream.actual_micros"),
        3_000
    );
    h.now_ms = 10_200;
    on_tick(&f, &mut w, &mut h);
    let call = h.callouts.last().unwrap().clone();
    assert_eq!(call.target, "cc");
    let header = |n: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header(":path").as_deref(), Some("/v1/spend"));
    assert_eq!(header("authorization").as_deref(), Some("Bearer tok"));
    let body: serde_json::Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["events"][0]["tenant"], "acme");
    assert_eq!(body["events"][0]["route"], "free");
    assert_eq!(body["events"][0]["cost_micros"], 3_000);
    // A failed report is sent again with the same batch id.
    answer_callout(&f, &mut w, &mut h, "503", "");
    h.now_ms = 30_000;
    on_tick(&f, &mut w, &mut h);
    let again: serde_json::Value =
        serde_json::from_slice(h.callouts.last().unwrap().body.as_ref().unwrap()).unwrap();
    assert_eq!(again["batch_id"], body["batch_id"]);
    answer_callout(&f, &mut w, &mut h, "200", "{}");
    let sent = h.callouts.len();
    h.now_ms = 40_000;
    on_tick(&f, &mut w, &mut h);
    assert_eq!(h.callouts.len(), sent, "nothing left to report");
}

#[test]
fn a_first_request_waits_for_the_lease_and_its_response_settles() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    request(&mut h, "/paid/1");
    let v = on_request_headers(&f, &mut w, &mut h, 7);
    assert_eq!(v, Verdict::Pause, "no lease yet: it waits");
    assert_eq!(w.requests[&7].phase, Phase::Parked(Wait::Lease));
    on_tick(&f, &mut w, &mut h);
    let lease = h.callouts.last().unwrap().clone();
    let body: serde_json::Value = serde_json::from_slice(lease.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["want_micros"], 10_000);
    assert_eq!(body["gateway_id"], "gw");
    answer_callout(
        &f,
        &mut w,
        &mut h,
        "200",
        r#"{"allowance_id":"L1","granted_micros":10000,"expires_at_ms":100000,"soft":true}"#,
    );
    assert_eq!(h.resumed, vec![7], "the lease let it go");
    upstream_ok(&f, &mut w, &mut h, 7);
    assert_eq!(h.response_header("x-optimizer-cost"), Some("2000"));
    assert_eq!(
        h.response_header("x-optimizer-warning"),
        Some("budget-soft-limit")
    );
    let e = budget::read(&h, 4, "acme").unwrap();
    assert_eq!(e.pool_micros, 8_000);
}

#[test]
fn a_spent_budget_refuses_low_and_medium_and_unused_reservations_return() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    lease(&mut h, 2_000);
    request(&mut h, "/paid/1");
    let v = on_request_headers(&f, &mut w, &mut h, 1);
    assert_eq!(v, Verdict::Continue);
    // The client leaves before any response: the reservation returns.
    on_done(&f, &mut w, &mut h, 1);
    assert_eq!(budget::read(&h, 4, "acme").unwrap().pool_micros, 2_000);
    // The budget is spent: an empty grant.
    lease(&mut h, 0);
    // What is left of the current lease is still spendable; another
    // worker spends it.
    budget::reserve(
        &mut h,
        4,
        "acme",
        2_000,
        10_000,
        budget::Policy {
            allow_overdraft: false,
            on_unavailable: crate::config::OnUnavailable::FailOpen,
            credit_micros: 0,
            low_water_micros: 0,
            renew_before_ms: 0,
        },
    )
    .unwrap();
    request(&mut h, "/paid/2");
    let v = on_request_headers(&f, &mut w, &mut h, 2);
    assert_eq!(v, Verdict::Pause);
    let reply = h.replies.last().unwrap();
    assert_eq!((reply.stream, reply.status), (2, 429));
    assert!(String::from_utf8_lossy(&reply.body).contains("budget_exceeded"));
    assert_eq!(h.counter("cost_optimizer.route.paid.budget.exceeded"), 1);
}

#[test]
fn a_request_the_limiter_queued_meets_its_budget_when_admitted() {
    const LIMITED: &str = r#"{"version":1,
      "accounting":{"cost_control":"cc","token":"tok","gateway_id":"gw","budgets":{"slots":4}},
      "routes":[{"name":"paid","match":{"prefix":"/paid/"},"priority":"medium","sla_ms":5000,
       "limit":{"by":"tenant","token_bucket":{"capacity":1,"refill_per_s":1.0}},
       "cost":{"cost_per_call":"0.002","budget":{}}}]}"#;
    let mut h = MemHost::new();
    let f = Filter::new(parse(LIMITED.as_bytes()).unwrap(), &mut h);
    f.create_tables(&mut h).unwrap();
    let mut w = Worker::new(&f.config, &mut h);
    h.now_ms = 10_000;
    lease(&mut h, 2_000);
    request(&mut h, "/paid/1");
    let v = on_request_headers(&f, &mut w, &mut h, 1);
    assert_eq!(v, Verdict::Continue, "token and budget for one call");
    request(&mut h, "/paid/2");
    let v = on_request_headers(&f, &mut w, &mut h, 2);
    assert_eq!(v, Verdict::Pause, "no token: queued");
    // The empty grant: nothing more to spend.
    lease(&mut h, 0);
    h.now_ms = 11_500; // a token is back
    on_tick(&f, &mut w, &mut h);
    assert!(h.resumed.is_empty(), "not let go past its budget");
    let reply = h.replies.last().unwrap();
    assert_eq!((reply.stream, reply.status), (2, 429));
    assert!(String::from_utf8_lossy(&reply.body).contains("budget_exceeded"));
}

/// The filter stopping writes every request's spend to the log: the batch
/// out (its answer never came) with its id, and what was never sent.
#[test]
fn at_shutdown_the_spend_left_goes_to_the_log_in_replayable_parts() {
    let mut h = MemHost::new();
    let (f, mut w) = setup(&mut h);
    h.now_ms = 10_000;
    for stream in 1..=3 {
        request(&mut h, &format!("/free/{stream}"));
        on_request_headers(&f, &mut w, &mut h, stream);
        upstream_ok(&f, &mut w, &mut h, stream);
    }
    h.now_ms = 10_200;
    on_tick(&f, &mut w, &mut h);
    let out = String::from_utf8(h.callouts.last().unwrap().body.clone().unwrap()).unwrap();
    for stream in 4..=5 {
        request(&mut h, &format!("/free/{stream}"));
        on_request_headers(&f, &mut w, &mut h, stream);
        upstream_ok(&f, &mut w, &mut h, stream);
    }
    h.logs.borrow_mut().clear();
    on_shutdown(&f, &mut w, &mut h);
    let logs = h.logs.borrow();
    let mut bodies: Vec<String> = Vec::new();
    for (level, line) in logs.iter() {
        assert_eq!(*level, crate::host::Level::Error, "{line}");
        let Some(rest) = line.strip_prefix(crate::cost::spend::spill::MARKER) else {
            continue;
        };
        let hex = rest.split(' ').nth(3).unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        bodies.push(String::from_utf8(bytes).unwrap());
    }
    assert_eq!(bodies.len(), 2, "{logs:?}");
    assert_eq!(bodies[0], out, "the batch out, same id and body");
    let events: usize = bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["events"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(events, 5);
    drop(logs);
    h.logs.borrow_mut().clear();
    on_shutdown(&f, &mut w, &mut h);
    assert!(h.logs.borrow().is_empty(), "nothing twice");
}
