//! The breaker's state table (every state × event), the window rule, probe
//! places, and config values that would make no sense.

use super::*;

const T0: u64 = 1_700_000_000_000;
/// When the breakers of [`open`] may be probed.
const H: u64 = T0 + 500;

fn cfg() -> BreakerConfig {
    BreakerConfig {
        failures: 3,
        failure_rate: 0.5,
        min_requests: 4,
        window_ms: 1_000,
        open_ms: 500,
        probes: 2,
        probe_timeout_ms: 300,
    }
}

fn closed() -> Breaker {
    Breaker::default()
}

/// Closed, one failure short of opening.
fn closed_near_open() -> Breaker {
    let mut b = closed();
    for _ in 0..2 {
        assert_eq!(
            b.record(false, 10, Claim::Normal, T0, &cfg()),
            Transition::None
        );
    }
    b
}

/// Opened at T0 (open until H).
fn open() -> Breaker {
    let mut b = closed_near_open();
    assert_eq!(
        b.record(false, 10, Claim::Normal, T0, &cfg()),
        Transition::Opened
    );
    b
}

/// HalfOpen since H, one probe out (claimed at H).
fn half_open() -> Breaker {
    let mut b = open();
    assert_eq!(
        b.claim(H, &cfg()),
        (Some(Claim::Probe), Transition::HalfOpened)
    );
    b
}

/// HalfOpen with both probe places taken at H.
fn half_open_full() -> Breaker {
    let mut b = half_open();
    assert_eq!(b.claim(H, &cfg()).0, Some(Claim::Probe));
    b
}

/// HalfOpen with one probe success in (and its place freed).
fn half_open_one_success() -> Breaker {
    let mut b = half_open();
    assert_eq!(
        b.record(true, 20, Claim::Probe, H + 20, &cfg()),
        Transition::None
    );
    b
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Claim(u64),
    Result {
        ok: bool,
        claim: Claim,
        latency_ms: u64,
        now: u64,
    },
}

fn ok(claim: Claim, now: u64) -> Event {
    Event::Result {
        ok: true,
        claim,
        latency_ms: 20,
        now,
    }
}

fn fail(claim: Claim, now: u64) -> Event {
    Event::Result {
        ok: false,
        claim,
        latency_ms: 20,
        now,
    }
}

/// For a claim: what it answered. For a result: `None`.
type Answer = Option<Option<Claim>>;

/// Name, starting breaker, event, and what should come of it.
type Row = (
    &'static str,
    fn() -> Breaker,
    Event,
    Answer,
    Transition,
    State,
);

#[test]
fn state_table() {
    use Claim::{Normal, Probe};
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        // Closed
        ("closed claim", closed, Event::Claim(T0), Some(Some(Normal)), Transition::None, State::Closed),
        ("closed success", closed, ok(Normal, T0), None, Transition::None, State::Closed),
        ("closed failure under threshold", closed, fail(Normal, T0), None, Transition::None, State::Closed),
        ("closed failure at threshold", closed_near_open, fail(Normal, T0), None, Transition::Opened, State::Open),
        ("closed straggler probe success", closed, ok(Probe, T0), None, Transition::None, State::Closed),
        ("closed straggler probe failure counts", closed_near_open, fail(Probe, T0), None, Transition::Opened, State::Open),
        // Open (until H)
        ("open claim before open_until", open, Event::Claim(H - 1), Some(None), Transition::None, State::Open),
        ("open claim at open_until", open, Event::Claim(H), Some(Some(Probe)), Transition::HalfOpened, State::HalfOpen),
        ("open claim long after", open, Event::Claim(H + 3_600_000), Some(Some(Probe)), Transition::HalfOpened, State::HalfOpen),
        ("open non-probe success", open, ok(Normal, T0 + 100), None, Transition::None, State::Open),
        ("open non-probe failure", open, fail(Normal, T0 + 100), None, Transition::None, State::Open),
        ("open probe success", open, ok(Probe, T0 + 100), None, Transition::None, State::Open),
        ("open probe failure", open, fail(Probe, T0 + 100), None, Transition::None, State::Open),
        ("open non-probe result after open_until", open, fail(Normal, H + 1), None, Transition::None, State::Open),
        // HalfOpen (one probe of two out)
        ("half-open claim with a free place", half_open, Event::Claim(H + 1), Some(Some(Probe)), Transition::None, State::HalfOpen),
        ("half-open claim, places taken", half_open_full, Event::Claim(H + 299), Some(None), Transition::None, State::HalfOpen),
        ("half-open claim after probe timeout", half_open_full, Event::Claim(H + 300), Some(Some(Probe)), Transition::None, State::HalfOpen),
        ("half-open probe success, not enough", half_open, ok(Probe, H + 20), None, Transition::None, State::HalfOpen),
        ("half-open probe success, enough", half_open_one_success, ok(Probe, H + 40), None, Transition::Closed, State::Closed),
        ("half-open probe failure", half_open, fail(Probe, H + 20), None, Transition::Reopened, State::Open),
        ("half-open late probe success counts", half_open_one_success, Event::Result { ok: true, claim: Probe, latency_ms: 400, now: H + 400 }, None, Transition::Closed, State::Closed),
        ("half-open non-probe success", half_open, ok(Normal, H + 20), None, Transition::None, State::HalfOpen),
        ("half-open non-probe failure", half_open, fail(Normal, H + 20), None, Transition::None, State::HalfOpen),
    ];
    for (name, start, event, answer, transition, state) in rows {
        let mut b = start();
        let (got_answer, got_transition) = match event {
            Event::Claim(now) => {
                let (c, t) = b.claim(now, &cfg());
                (Some(c), t)
            }
            Event::Result {
                ok,
                claim,
                latency_ms,
                now,
            } => (None, b.record(ok, latency_ms, claim, now, &cfg())),
        };
        assert_eq!(got_answer, answer, "{name}: answer");
        assert_eq!(got_transition, transition, "{name}: transition");
        assert_eq!(b.state(), state, "{name}: state");
    }
}

#[test]
fn non_probe_results_leave_open_until_and_probe_count_alone() {
    let mut b = open();
    b.record(false, 20, Claim::Normal, T0 + 400, &cfg());
    assert_eq!(b.open_until_ms, H);
    let mut b = half_open_one_success();
    b.record(false, 20, Claim::Normal, H + 50, &cfg());
    b.record(true, 20, Claim::Normal, H + 50, &cfg());
    assert_eq!(b.probe_successes, 1);
    assert_eq!(b.outstanding_probes(H + 50, &cfg()), 0);
}

#[test]
fn reopen_restarts_the_cool_down() {
    let mut b = half_open();
    assert_eq!(
        b.record(false, 20, Claim::Probe, H + 20, &cfg()),
        Transition::Reopened
    );
    assert_eq!(b.open_until_ms, H + 20 + 500);
    assert_eq!(b.claim(H + 519, &cfg()).0, None);
    assert_eq!(
        b.claim(H + 520, &cfg()),
        (Some(Claim::Probe), Transition::HalfOpened)
    );
    assert_eq!(b.probe_successes, 0);
}

#[test]
fn closing_resets_the_counters() {
    let mut b = half_open_one_success();
    assert_eq!(
        b.record(true, 10, Claim::Probe, H + 40, &cfg()),
        Transition::Closed
    );
    assert_eq!(
        (b.consecutive, b.window_requests, b.window_failures),
        (0, 0, 0)
    );
    assert_eq!(b.probe_successes, 0);
    // Two failures do not reopen it: the old count is gone.
    for _ in 0..2 {
        assert_eq!(
            b.record(false, 10, Claim::Normal, H + 50, &cfg()),
            Transition::None
        );
    }
    assert_eq!(
        b.record(false, 10, Claim::Normal, H + 50, &cfg()),
        Transition::Opened
    );
}

#[test]
fn a_success_breaks_the_run_of_failures() {
    // Only the run rule: the window would hold 4 failures in 5.
    let cfg = BreakerConfig {
        failure_rate: f64::NAN,
        ..cfg()
    };
    let mut b = closed_near_open();
    b.record(true, 10, Claim::Normal, T0, &cfg);
    for _ in 0..2 {
        assert_eq!(
            b.record(false, 10, Claim::Normal, T0, &cfg),
            Transition::None
        );
    }
    assert_eq!(
        b.record(false, 10, Claim::Normal, T0, &cfg),
        Transition::Opened
    );
}

#[test]
fn window_rate_opens_once_min_requests_are_in() {
    // No run of failures long enough: only the rate can open it.
    let cfg = BreakerConfig {
        failures: 100,
        ..cfg()
    };
    let mut b = closed();
    // fail, ok, fail: 3 requests < min 4, rate not counted yet.
    for (i, ok) in [false, true, false].into_iter().enumerate() {
        let t = b.record(ok, 10, Claim::Normal, T0 + i as u64, &cfg);
        assert_eq!(t, Transition::None, "request {i}");
    }
    // The 4th is a success: 2/4 = 0.5 >= 0.5 opens it all the same.
    assert_eq!(
        b.record(true, 10, Claim::Normal, T0 + 3, &cfg),
        Transition::Opened
    );
}

#[test]
fn window_below_rate_stays_closed() {
    let cfg = BreakerConfig {
        failures: 100,
        ..cfg()
    };
    let mut b = closed();
    for i in 0..40u64 {
        // One failure in three, never ahead of that: at most 0.33 < 0.5.
        let ok = i % 3 != 2;
        assert_eq!(
            b.record(ok, 10, Claim::Normal, T0 + i, &cfg),
            Transition::None
        );
    }
}

#[test]
fn the_window_restarts_after_window_ms() {
    let cfg = BreakerConfig {
        failures: 100,
        ..cfg()
    };
    let mut b = closed();
    // Two failures early in the first window...
    b.record(false, 10, Claim::Normal, T0, &cfg);
    b.record(false, 10, Claim::Normal, T0 + 1, &cfg);
    // ...forgotten once window_ms has passed since it started.
    for i in 0..3u64 {
        let t = b.record(true, 10, Claim::Normal, T0 + 1_000 + i, &cfg);
        assert_eq!(t, Transition::None);
    }
    assert_eq!((b.window_requests, b.window_failures), (3, 0));
    assert_eq!(b.window_start_ms, T0 + 1_000);
    // 1 failure in 4 (0.25) does not open; had the window kept the old
    // failures it would be 3/6.
    assert_eq!(
        b.record(false, 10, Claim::Normal, T0 + 1_010, &cfg),
        Transition::None
    );
    // Within the window the count goes on: 3/6 opens.
    b.record(false, 10, Claim::Normal, T0 + 1_020, &cfg);
    assert_eq!(
        b.record(false, 10, Claim::Normal, T0 + 1_999, &cfg),
        Transition::Opened
    );
}

#[test]
fn a_window_of_successes_never_opens_even_at_rate_zero() {
    let cfg = BreakerConfig {
        failure_rate: 0.0,
        ..cfg()
    };
    let mut b = closed();
    for i in 0..20 {
        assert_eq!(
            b.record(true, 10, Claim::Normal, T0 + i, &cfg),
            Transition::None
        );
    }
    assert_eq!(
        b.record(false, 10, Claim::Normal, T0 + 30, &cfg),
        Transition::Opened
    );
}

#[test]
fn nan_rate_and_zero_failures_disable_their_rules() {
    let cfg = BreakerConfig {
        failures: 0,
        failure_rate: f64::NAN,
        ..cfg()
    };
    let mut b = closed();
    for i in 0..50 {
        assert_eq!(
            b.record(false, 10, Claim::Normal, T0 + i, &cfg),
            Transition::None
        );
    }
}

#[test]
fn zero_probes_reads_as_one() {
    let cfg = BreakerConfig { probes: 0, ..cfg() };
    let mut b = open();
    assert_eq!(b.claim(H, &cfg).0, Some(Claim::Probe));
    assert_eq!(b.claim(H, &cfg).0, None);
    assert_eq!(
        b.record(true, 5, Claim::Probe, H + 5, &cfg),
        Transition::Closed
    );
}

#[test]
fn probes_are_clamped_to_the_places_there_are() {
    let cfg = BreakerConfig {
        probes: 1_000,
        ..cfg()
    };
    let mut b = open();
    let granted = (0..1_000).filter(|_| b.claim(H, &cfg).0.is_some()).count();
    assert_eq!(granted, MAX_PROBES);
}

#[test]
fn a_probe_result_frees_the_oldest_live_place() {
    let mut b = half_open(); // claimed at H
    assert_eq!(b.claim(H + 100, &cfg()).0, Some(Claim::Probe));
    // A result of 10 ms frees one place: the one of H (oldest) goes, so
    // the place left is the later one, which lives until H + 400.
    b.record(true, 10, Claim::Probe, H + 110, &cfg());
    assert_eq!(b.outstanding_probes(H + 110, &cfg()), 1);
    assert_eq!(b.outstanding_probes(H + 399, &cfg()), 1);
    assert_eq!(b.outstanding_probes(H + 400, &cfg()), 0);
}

#[test]
fn a_result_older_than_the_probe_timeout_frees_no_place() {
    let mut b = half_open(); // claimed at H, expires at H + 300
    assert_eq!(b.claim(H + 310, &cfg()).0, Some(Claim::Probe));
    // The first probe's result, 320 ms after its claim: its place expired
    // already, the live one belongs to the second probe and stays.
    b.record(true, 320, Claim::Probe, H + 320, &cfg());
    assert_eq!(b.outstanding_probes(H + 320, &cfg()), 1);
    assert_eq!(b.probe_successes, 1);
}

#[test]
fn probe_places_survive_a_reopen() {
    let mut b = half_open_full(); // both places taken at H
    assert_eq!(
        b.record(false, 10, Claim::Probe, H + 10, &cfg()),
        Transition::Reopened
    );
    assert_eq!(b.outstanding_probes(H + 10, &cfg()), 1);
    // Cool-down over at H + 510, but the other probe's place is held
    // until H + 300 only, so by then both are free again.
    assert_eq!(b.claim(H + 510, &cfg()).0, Some(Claim::Probe));
    assert_eq!(b.claim(H + 510, &cfg()).0, Some(Claim::Probe));
    assert_eq!(b.claim(H + 510, &cfg()).0, None);

    // With a long probe timeout the straggler still holds its place.
    let long = BreakerConfig {
        probe_timeout_ms: 10_000,
        ..cfg()
    };
    let mut b = open();
    assert_eq!(b.claim(H, &long).0, Some(Claim::Probe));
    assert_eq!(b.claim(H, &long).0, Some(Claim::Probe));
    assert_eq!(
        b.record(false, 10, Claim::Probe, H + 10, &long),
        Transition::Reopened
    );
    assert_eq!(
        b.claim(H + 510, &long),
        (Some(Claim::Probe), Transition::HalfOpened)
    );
    assert_eq!(b.claim(H + 510, &long).0, None);
}

#[test]
fn halfopening_with_every_place_held_claims_nothing() {
    let long = BreakerConfig {
        probes: 1,
        probe_timeout_ms: 10_000,
        ..cfg()
    };
    let mut b = open();
    // Probe P takes the only place at H.
    assert_eq!(b.claim(H, &long).0, Some(Claim::Probe));
    // A straggler probe of long ago fails: that reopens the breaker but
    // frees no place (the straggler's own expired), so P keeps its place.
    assert_eq!(
        b.record(false, 10_000, Claim::Probe, H + 10, &long),
        Transition::Reopened
    );
    // The cool-down ends: the breaker half-opens, but the place is P's.
    assert_eq!(b.claim(H + 510, &long), (None, Transition::HalfOpened));
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.claim(H + 9_999, &long), (None, Transition::None));
    // P never answered: its place frees at its timeout.
    assert_eq!(
        b.claim(H + 10_000, &long),
        (Some(Claim::Probe), Transition::None)
    );
}

#[test]
fn a_clock_that_went_back_does_not_lock_a_provider_out() {
    let mut b = open(); // open until H
                        // The clock jumped back an hour: the cool-down is cut to open_ms.
    let back = T0 - 3_600_000;
    assert_eq!(
        b.claim(back, &cfg()),
        (Some(Claim::Probe), Transition::HalfOpened)
    );
    // A place claimed "in the future" no longer holds.
    let mut b = half_open_full();
    assert_eq!(b.outstanding_probes(back, &cfg()), 0);
    assert_eq!(b.claim(back, &cfg()).0, Some(Claim::Probe));
}

#[test]
fn extreme_times_do_not_overflow() {
    let cfg = BreakerConfig {
        open_ms: u64::MAX,
        probe_timeout_ms: u64::MAX,
        window_ms: u64::MAX,
        ..cfg()
    };
    let mut b = closed();
    for _ in 0..3 {
        b.record(false, u64::MAX, Claim::Probe, u64::MAX, &cfg);
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.claim(u64::MAX, &cfg).0, Some(Claim::Probe));
    assert_eq!(b.claim(0, &cfg).1, Transition::None);
}
