//! What goes wrong during the soak, on a fixed timetable: upstream faults
//! installed on the demo APIs through their `POST /__faults` (each rule
//! counted, so it ends by itself after that many matching requests), and
//! cost-control killed (SIGKILL) and started again on the same store,
//! twice. Everything done is written to the [`Journal`] with its time,
//! which the client asks whether a reset reply is explained.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Which demo API a fault goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// `demo_api`: every rule's upstream, and the routing rule's primary.
    Primary,
    /// `demo_api_b`: the routing rule's secondary (the cheaper one).
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (`{"error":"injected_fault"}`).
    Status(u16),
    /// Close the connection without answering.
    Reset,
    /// Answer 2 s late.
    Stall,
    /// Answer 200 with a body that is not JSON.
    Garbage,
}

impl FaultKind {
    pub fn name(self) -> String {
        match self {
            FaultKind::Status(s) => format!("{s} burst"),
            FaultKind::Reset => "connection reset".into(),
            FaultKind::Stall => "2 s stall".into(),
            FaultKind::Garbage => "garbage answer".into(),
        }
    }

    fn rule(self, prefix: &str, count: u64) -> Value {
        match self {
            FaultKind::Status(s) => json!({"path_prefix": prefix, "status": s, "count": count}),
            FaultKind::Reset => json!({"path_prefix": prefix, "abort": true, "count": count}),
            FaultKind::Stall => json!({"path_prefix": prefix, "latency_ms": 2000, "count": count}),
            FaultKind::Garbage => json!({"path_prefix": prefix, "garbage": true, "count": count}),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Fault {
        demo: Demo,
        prefix: &'static str,
        kind: FaultKind,
        count: u64,
    },
    /// SIGKILL cost-control.
    KillControl,
    /// Start it again on the same store.
    StartControl,
}

/// The timetable for a soak of `total` seconds: a fault cycle every
/// `cycle` seconds (a tenth of the run, 20 to 60 s) and cost-control down
/// twice, from 30 % and 60 % of the run for 4 % of it (5 to 30 s).
/// Seconds from the soak's start.
pub fn timetable(total: f64) -> Vec<(f64, Action)> {
    let cycle = (total / 10.0).clamp(20.0, 60.0);
    let mut out = Vec::new();
    let fault = |demo, prefix, kind, count| Action::Fault {
        demo,
        prefix,
        kind,
        count,
    };
    let statuses = [500, 502, 503];
    let mut n = 0;
    let mut t0 = 0.0;
    // The last cycle starts early enough to end before the run does.
    while t0 + cycle * 0.9 < total {
        let status = FaultKind::Status(statuses[n % statuses.len()]);
        let at = |f: f64| t0 + cycle * f;
        use Demo::{Primary, Secondary};
        out.push((at(0.10), fault(Primary, "/api/items/", status, 40)));
        out.push((at(0.10), fault(Primary, "/api/orders/", status, 10)));
        out.push((at(0.10), fault(Primary, "/api/reports/", status, 10)));
        out.push((
            at(0.25),
            fault(Primary, "/api/items/", FaultKind::Reset, 15),
        ));
        // The routing rule sends to the cheaper secondary while its
        // breaker lets it: its faults are met at once (a fault on the
        // primary would wait for traffic there, and be met one probe at
        // a time while both breakers are open). Small counts: past the
        // third failure in a row the breaker is open and the rest is met
        // by one probe every `open_s`.
        out.push((
            at(0.25),
            fault(Secondary, "/api/search/", FaultKind::Reset, 4),
        ));
        out.push((at(0.40), fault(Secondary, "/api/search/", status, 6)));
        out.push((
            at(0.55),
            fault(Secondary, "/api/search/", FaultKind::Stall, 3),
        ));
        out.push((
            at(0.55),
            fault(Primary, "/api/items/", FaultKind::Stall, 10),
        ));
        out.push((at(0.55), fault(Primary, "/api/batch", FaultKind::Stall, 2)));
        out.push((
            at(0.55),
            fault(Primary, "/api/orders/", FaultKind::Stall, 5),
        ));
        out.push((
            at(0.70),
            fault(Primary, "/api/batch", FaultKind::Garbage, 5),
        ));
        out.push((at(0.85), fault(Primary, "/api/batch", status, 3)));
        t0 += cycle;
        n += 1;
    }
    let down = (total * 0.04).clamp(5.0, 30.0);
    for f in [0.30, 0.60] {
        out.push((total * f, Action::KillControl));
        out.push((total * f + down, Action::StartControl));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// One thing done, and when (seconds from the soak's start).
#[derive(Debug, Clone)]
pub struct Entry {
    pub at_s: f64,
    pub action: Action,
    /// Empty when it worked, else why not (a failed action fails the soak).
    pub error: String,
}

/// What was done, for the client's classification and the report.
#[derive(Default)]
pub struct Journal {
    entries: Mutex<Vec<Entry>>,
}

/// A reset explains Envoy's reset reply to requests sent from this long
/// before it was installed (a request held by a batch or a coalescing
/// leader reaches the upstream later) until this long after.
const RESET_BEFORE_S: f64 = 5.0;
const RESET_AFTER_S: f64 = 30.0;

impl Journal {
    pub fn push(&self, e: Entry) {
        if let Ok(mut v) = self.entries.lock() {
            v.push(e);
        }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Whether a reset on either demo API for `prefix` explains a reset
    /// reply to a request sent at `at_s`.
    pub fn reset_active(&self, prefix: &str, at_s: f64) -> bool {
        let Ok(v) = self.entries.lock() else {
            return false;
        };
        v.iter().any(|e| {
            matches!(&e.action, Action::Fault { prefix: p, kind: FaultKind::Reset, .. } if *p == prefix)
                && at_s >= e.at_s - RESET_BEFORE_S
                && at_s <= e.at_s + RESET_AFTER_S
        })
    }

    /// Windows cost-control was down: (killed at, started at or None).
    pub fn control_outages(&self) -> Vec<(f64, Option<f64>)> {
        let mut out: Vec<(f64, Option<f64>)> = Vec::new();
        for e in self.entries() {
            match e.action {
                Action::KillControl => out.push((e.at_s, None)),
                Action::StartControl => {
                    if let Some(last) = out.last_mut() {
                        last.1 = Some(e.at_s);
                    }
                }
                Action::Fault { .. } => {}
            }
        }
        out
    }
}

/// Carry out the timetable (times from `epoch`) until it is done or
/// `stop` is set; `act` does one action and says why it failed.
pub fn run(
    table: &[(f64, Action)],
    epoch: Instant,
    journal: &Journal,
    stop: &AtomicBool,
    mut act: impl FnMut(&Action) -> Result<(), String>,
) {
    for (at, action) in table {
        let due = epoch + Duration::from_secs_f64(*at);
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((due - Instant::now()).min(Duration::from_millis(100)));
        }
        let at_s = epoch.elapsed().as_secs_f64();
        let error = act(action).err().unwrap_or_default();
        if !error.is_empty() {
            eprintln!("soak: at {at_s:.1} s, {action:?} failed: {error}");
        }
        journal.push(Entry {
            at_s,
            action: action.clone(),
            error,
        });
    }
}

/// The JSON of a fault for `POST /__faults`.
pub fn fault_rule(prefix: &str, kind: FaultKind, count: u64) -> Value {
    kind.rule(prefix, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timetable_of_ten_minutes() {
        let t = timetable(600.0);
        let kills = t.iter().filter(|(_, a)| *a == Action::KillControl).count();
        let starts: Vec<f64> = t
            .iter()
            .filter(|(_, a)| *a == Action::StartControl)
            .map(|(s, _)| *s)
            .collect();
        assert_eq!((kills, starts.clone()), (2, vec![204.0, 384.0]));
        let resets = t
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    Action::Fault {
                        kind: FaultKind::Reset,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(resets, 20, "two per cycle, ten cycles");
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(t.iter().all(|(s, _)| *s < 600.0));
        // A short run still has both outages and a cycle of faults.
        let short = timetable(90.0);
        assert_eq!(
            short
                .iter()
                .filter(|(_, a)| *a == Action::KillControl)
                .count(),
            2
        );
        assert!(short.iter().any(|(_, a)| matches!(
            a,
            Action::Fault {
                kind: FaultKind::Garbage,
                ..
            }
        )));
    }

    #[test]
    fn resets_explain_replies_near_them_only() {
        let j = Journal::default();
        j.push(Entry {
            at_s: 100.0,
            action: Action::Fault {
                demo: Demo::Primary,
                prefix: "/api/items/",
                kind: FaultKind::Reset,
                count: 5,
            },
            error: String::new(),
        });
        assert!(j.reset_active("/api/items/", 101.0));
        assert!(j.reset_active("/api/items/", 96.0));
        assert!(!j.reset_active("/api/items/", 140.0));
        assert!(!j.reset_active("/api/orders/", 101.0));
        assert_eq!(
            fault_rule("/api/batch", FaultKind::Garbage, 5),
            json!({"path_prefix": "/api/batch", "garbage": true, "count": 5})
        );
    }
}
