//! Held counters: a request's increments reach the host from the timer,
//! once `metrics.flush_ms` has passed, and when the filter stops.

use super::*;
use crate::config::parse;
use crate::mem_host::MemHost;

const REQUESTS: &str = "cost_optimizer.route.items.requests";

fn setup(host: &mut MemHost, metrics: &str) -> (Filter, Worker) {
    let cfg = format!(
        r#"{{"version":1,{metrics}"routes":[{{"name":"items","match":{{"prefix":"/api/items/"}}}}]}}"#
    );
    let filter = Filter::new(parse(cfg.as_bytes()).unwrap(), host);
    let worker = Worker::new(&filter.config, host);
    (filter, worker)
}

fn request(filter: &Filter, worker: &mut Worker, host: &mut MemHost, stream: u32) {
    assert_eq!(
        on_request_headers(filter, worker, host, stream),
        Verdict::Continue
    );
    on_done(filter, worker, host, stream);
}

#[test]
fn increments_wait_for_the_tick_after_flush_ms() {
    let mut host = MemHost::get("/api/items/1");
    let (filter, mut worker) = setup(&mut host, "");
    assert_eq!(filter.config.metrics.flush_ms, 1_000, "the default");
    for stream in 1..=3 {
        request(&filter, &mut worker, &mut host, stream);
    }
    assert_eq!(host.sent_counter(REQUESTS), 0, "held");
    assert_eq!(host.counter(REQUESTS), 3);
    host.take_calls();
    // A tick before the period: nothing leaves.
    host.now_ms += 400;
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(host.sent_counter(REQUESTS), 0);
    // The tick a period after the start: one call for the three.
    host.now_ms += 600;
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(host.sent_counter(REQUESTS), 3);
    assert_eq!(host.take_calls().get("increment").copied(), Some(1));
    // Nothing moved: the next flush sends nothing.
    host.now_ms += 1_000;
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(host.take_calls().get("increment").copied().unwrap_or(0), 0);
    assert_eq!(host.sent_counter(REQUESTS), 3);
}

#[test]
fn a_tick_a_little_early_still_flushes() {
    let mut host = MemHost::get("/api/items/1");
    let (filter, mut worker) = setup(&mut host, "");
    start_timer(&filter, &mut worker, &mut host);
    assert_eq!(host.tick_periods.last(), Some(&1_000));
    request(&filter, &mut worker, &mut host, 1);
    // The host's timer fires a little before the second is up.
    host.now_ms += 990;
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(host.sent_counter(REQUESTS), 1);
}

#[test]
fn a_shorter_flush_ms_shortens_the_idle_tick() {
    let mut host = MemHost::get("/api/items/1");
    let (filter, mut worker) = setup(&mut host, r#""metrics":{"flush_ms":200},"#);
    start_timer(&filter, &mut worker, &mut host);
    assert_eq!(host.tick_periods.last(), Some(&200));
    request(&filter, &mut worker, &mut host, 1);
    host.now_ms += 200;
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(host.sent_counter(REQUESTS), 1);
}

#[test]
fn flush_ms_0_sends_every_increment_at_once() {
    let mut host = MemHost::get("/api/items/1");
    let (filter, mut worker) = setup(&mut host, r#""metrics":{"flush_ms":0},"#);
    host.take_calls();
    request(&filter, &mut worker, &mut host, 1);
    assert_eq!(host.sent_counter(REQUESTS), 1);
    assert_eq!(host.take_calls().get("increment").copied(), Some(1));
}

#[test]
fn the_held_sums_leave_when_the_filter_stops() {
    let mut host = MemHost::get("/api/items/1");
    let (filter, mut worker) = setup(&mut host, "");
    request(&filter, &mut worker, &mut host, 1);
    request(&filter, &mut worker, &mut host, 2);
    assert_eq!(host.sent_counter(REQUESTS), 0);
    on_shutdown(&filter, &mut worker, &mut host);
    assert_eq!(host.sent_counter(REQUESTS), 2);
}

#[test]
fn a_new_configuration_without_holding_sends_what_the_old_one_held() {
    let mut host = MemHost::get("/api/items/1");
    let (filter, mut worker) = setup(&mut host, "");
    request(&filter, &mut worker, &mut host, 1);
    // The same worker (one VM) configured again, now with flush_ms 0.
    let (filter, mut worker) = setup(&mut host, r#""metrics":{"flush_ms":0},"#);
    request(&filter, &mut worker, &mut host, 2);
    assert_eq!(host.sent_counter(REQUESTS), 1, "the new one's at once");
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(
        host.sent_counter(REQUESTS),
        2,
        "the old one's at the next tick"
    );
}

#[test]
fn a_flush_ms_over_a_minute_is_refused_with_its_field() {
    let err = parse(br#"{"version":1,"metrics":{"flush_ms":60001}}"#).unwrap_err();
    assert_eq!(err.field, "metrics.flush_ms");
    let err = parse(br#"{"version":1,"metrics":{"flush":5}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert!(parse(br#"{"version":1,"metrics":{"flush_ms":60000}}"#).is_ok());
}

#[test]
fn on_kong_a_timer_for_the_counters_alone_ticks_at_flush_ms() {
    // Kong's timer period is set once: with nothing else for the timer
    // to do, it is the flush period, not the fast tick of parked requests.
    let mut host = MemHost::get("/api/items/1");
    host.own_context_wakes = true;
    let (filter, mut worker) = setup(&mut host, r#""host":"kong","#);
    assert!(filter.flushes_counters() && !filter.needs_timer());
    start_timer(&filter, &mut worker, &mut host);
    assert_eq!(host.tick_periods, vec![1_000]);
    request(&filter, &mut worker, &mut host, 1);
    host.now_ms += 1_000;
    on_tick(&filter, &mut worker, &mut host);
    assert_eq!(host.sent_counter(REQUESTS), 1);
}

#[test]
fn without_rules_there_is_nothing_to_flush() {
    let mut host = MemHost::get("/api/items/1");
    let filter = Filter::new(parse(br#"{"version":1}"#).unwrap(), &mut host);
    assert!(!filter.flushes_counters());
}
