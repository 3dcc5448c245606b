//! Prometheus metrics in the text exposition format, kept with atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
    pub spend_batches: AtomicU64,
    pub spend_batches_duplicate: AtomicU64,
    pub spend_events: AtomicU64,
    pub spend_cost_micros: AtomicU64,
    pub allowances_granted: AtomicU64,
    pub allowance_granted_micros: AtomicU64,
    pub snapshots_not_modified: AtomicU64,
    pub purges: AtomicU64,
    pub alerts_fired: AtomicU64,
    pub alert_deliveries: AtomicU64,
    pub alert_delivery_failures: AtomicU64,
}

pub fn inc(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

impl Metrics {
    pub fn observe_http(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut m) = self.http.lock() {
            *m.entry((method.to_owned(), route.to_owned(), status))
                .or_insert(0) += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 11] = [
            (
                "cost_control_spend_batches_total",
                "Spend batches committed.",
                &self.spend_batches,
            ),
            (
                "cost_control_spend_batches_duplicate_total",
                "Replayed spend batches acknowledged without counting.",
                &self.spend_batches_duplicate,
            ),
            (
                "cost_control_spend_events_total",
                "Spend events committed.",
                &self.spend_events,
            ),
            (
                "cost_control_spend_cost_micros_total",
                "Cost committed, micro-USD.",
                &self.spend_cost_micros,
            ),
            (
                "cost_control_allowances_granted_total",
                "Allowance leases granted.",
                &self.allowances_granted,
            ),
            (
                "cost_control_allowance_granted_micros_total",
                "Micro-USD granted as allowances.",
                &self.allowance_granted_micros,
            ),
            (
                "cost_control_snapshots_not_modified_total",
                "Snapshot polls answered 304.",
                &self.snapshots_not_modified,
            ),
            (
                "cost_control_purges_total",
                "Purge generation bumps.",
                &self.purges,
            ),
            (
                "cost_control_alerts_fired_total",
                "Budget alerts fired.",
                &self.alerts_fired,
            ),
            (
                "cost_control_alert_deliveries_total",
                "Webhook deliveries that succeeded.",
                &self.alert_deliveries,
            ),
            (
                "cost_control_alert_delivery_failures_total",
                "Webhook delivery attempts that failed.",
                &self.alert_delivery_failures,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let name = "cost_control_http_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests by route and status.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.http.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out
    }
}

/// Middleware counting requests by matched route (not raw path: bounded labels).
/// Takes the `Metrics` substate only.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    metrics.observe_http(&method, &route, resp.status().as_u16());
    resp
}
