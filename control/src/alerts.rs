//! Alert delivery: each fired alert is POSTed as JSON to every configured
//! webhook, retried with exponential backoff and jitter until it succeeds or
//! the attempts run out; the outcome is recorded in the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{inc, Metrics};
use crate::model::Alert;
use crate::money::format_usd;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1-based): half of the capped
    /// exponential plus a random part of the other half ("equal jitter").
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay).as_millis() as u64;
        Duration::from_millis(cap / 2 + fastrand::u64(0..=cap / 2))
    }
}

#[derive(Clone)]
pub struct AlertDispatcher {
    urls: Arc<Vec<String>>,
    store: Arc<dyn Store>,
    retry: RetryPolicy,
    metrics: Arc<Metrics>,
}

/// The JSON body a webhook receives.
pub fn payload(a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "type": "budget_alert",
        "alert": a,
        "message": format!(
            "tenant {}{} crossed its {} {} limit: spent ${} of ${}",
            a.tenant,
            if a.service.is_empty() { String::new() } else { format!(" service {}", a.service) },
            a.window, a.level, format_usd(a.spent_micros), format_usd(a.limit_micros)
        ),
    })
}

fn post(url: &str, body: &serde_json::Value, timeout: Duration) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    agent
        .post(url)
        .send_json(body)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl AlertDispatcher {
    pub fn new(
        urls: Vec<String>,
        store: Arc<dyn Store>,
        retry: RetryPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            urls: Arc::new(urls),
            store,
            retry,
            metrics,
        }
    }

    /// Starts delivering `alerts` in the background.
    pub fn dispatch(&self, alerts: Vec<Alert>) {
        for a in alerts {
            inc(&self.metrics.alerts_fired, 1);
            tracing::warn!(tenant = %a.tenant, service = %a.service, window = %a.window,
                level = %a.level, spent_micros = a.spent_micros, limit_micros = a.limit_micros,
                "budget alert fired");
            if self.urls.is_empty() {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move { me.deliver(a).await });
        }
    }

    async fn deliver(self, a: Alert) {
        let body = Arc::new(payload(&a));
        let mut pending: Vec<String> = self.urls.to_vec();
        let mut attempt: u32 = 0;
        while !pending.is_empty() && attempt < self.retry.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.delay(attempt)).await;
            }
            attempt += 1;
            let mut failed = Vec::new();
            for url in pending {
                let (b, u, t) = (body.clone(), url.clone(), self.retry.timeout);
                let res = tokio::task::spawn_blocking(move || post(&u, &b, t)).await;
                match res {
                    Ok(Ok(())) => inc(&self.metrics.alert_deliveries, 1),
                    Ok(Err(e)) => {
                        self.metrics
                            .alert_delivery_failures
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(alert_id = a.id, url = %url, attempt, error = %e, "webhook delivery failed");
                        failed.push(url);
                    }
                    Err(e) => {
                        tracing::warn!(alert_id = a.id, error = %e, "webhook task failed");
                        failed.push(url);
                    }
                }
            }
            pending = failed;
        }
        let delivered = pending.is_empty();
        let attempts = i32::try_from(attempt).unwrap_or(i32::MAX);
        if let Err(e) = self.store.alert_attempted(a.id, attempts, delivered).await {
            tracing::error!(alert_id = a.id, error = %e, "could not record alert delivery");
        }
    }
}
