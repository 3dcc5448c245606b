//! Fault rules installed through `POST /__faults`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

/// Body of `POST /__faults`. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// Remove every installed rule first.
    #[serde(default)]
    pub clear: bool,
    /// Requests whose path starts with this match (default `/`).
    pub path_prefix: Option<String>,
    /// Extra latency for every matching request.
    pub latency_ms: Option<u64>,
    /// Probability of answering with `status` (default 1.0 when `status`
    /// is given, else 0).
    pub error_rate: Option<f64>,
    /// Status of injected errors (default 503).
    pub status: Option<u16>,
    /// Close the connection without answering.
    pub abort: Option<bool>,
    /// Answer 200 with a body that is not JSON.
    pub garbage: Option<bool>,
    /// Omit the last K members of a REST batch answer.
    pub drop_members: Option<usize>,
    /// Send every slot of a REST batch answer twice, the copy with a
    /// different body (an upstream disagreeing with itself).
    pub duplicate_members: Option<bool>,
    /// Pad a REST batch answer with this many bytes (a field the client
    /// ignores; at most 64 MiB).
    pub pad_bytes: Option<usize>,
    /// Apply to the next N matching requests only.
    pub count: Option<u64>,
}

impl FaultRequest {
    fn has_rule(&self) -> bool {
        !self.clear
            || self.path_prefix.is_some()
            || self.latency_ms.is_some()
            || self.error_rate.is_some()
            || self.status.is_some()
            || self.abort.is_some()
            || self.garbage.is_some()
            || self.drop_members.is_some()
            || self.duplicate_members.is_some()
            || self.pad_bytes.is_some()
            || self.count.is_some()
    }
}

/// One installed rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultRule {
    pub path_prefix: String,
    pub latency_ms: u64,
    pub error_rate: f64,
    pub status: u16,
    pub abort: bool,
    pub garbage: bool,
    pub drop_members: usize,
    pub duplicate_members: bool,
    pub pad_bytes: usize,
    /// Matching requests left before the rule disappears (`None`: forever).
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// Validate a request into a rule; the error names the bad field.
    pub fn from_request(req: &FaultRequest) -> Result<Self, String> {
        let status = req.status.unwrap_or(503);
        if StatusCode::from_u16(status).is_err() {
            return Err(format!(
                "status: {status} is not an HTTP status (100..=999)"
            ));
        }
        let error_rate = req
            .error_rate
            .unwrap_or(if req.status.is_some() { 1.0 } else { 0.0 });
        if !(0.0..=1.0).contains(&error_rate) {
            return Err(format!("error_rate: {error_rate} is not within 0..=1"));
        }
        if req.pad_bytes.is_some_and(|n| n > MAX_PAD) {
            return Err(format!("pad_bytes: at most {MAX_PAD}"));
        }
        if req.count == Some(0) {
            return Err("count: must be at least 1 (or null for no limit)".to_owned());
        }
        Ok(Self {
            path_prefix: req.path_prefix.clone().unwrap_or_else(|| "/".to_owned()),
            latency_ms: req.latency_ms.unwrap_or(0),
            error_rate,
            status,
            abort: req.abort.unwrap_or(false),
            garbage: req.garbage.unwrap_or(false),
            drop_members: req.drop_members.unwrap_or(0),
            duplicate_members: req.duplicate_members.unwrap_or(false),
            pad_bytes: req.pad_bytes.unwrap_or(0),
            remaining: req.count,
        })
    }
}

/// What the matching rules do to one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Sum of the matching rules' latencies.
    pub latency: Duration,
    /// Status to answer with instead of the normal answer.
    pub error_status: Option<StatusCode>,
    /// Close the connection without an answer.
    pub abort: bool,
    /// Answer 200 with a non-JSON body.
    pub garbage: bool,
    /// What to do to a REST batch answer.
    pub batch: BatchFaults,
}

/// Faults of a REST batch answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchFaults {
    /// Members to omit from the end of the answer.
    pub drop_members: usize,
    /// Every slot twice, the copy with another body.
    pub duplicate_members: bool,
    /// Bytes of padding in the answer.
    pub pad_bytes: usize,
}

/// The largest padding a rule may ask for.
pub const MAX_PAD: usize = 64 * 1024 * 1024;

/// The installed rules.
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    rng: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Self {
            rules: Mutex::new(Vec::new()),
            rng: AtomicU64::new(seed),
        }
    }
}

impl Faults {
    /// Apply a `POST /__faults` body: clear if asked, then install the
    /// rule it describes (a body holding only `"clear": true` installs
    /// nothing). Returns the number of rules now installed.
    pub fn apply(&self, req: &FaultRequest) -> Result<usize, String> {
        let rule = if req.has_rule() {
            Some(FaultRule::from_request(req)?)
        } else {
            None
        };
        let mut rules = self.lock();
        if req.clear {
            rules.clear();
        }
        rules.extend(rule);
        Ok(rules.len())
    }

    /// Remove every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Copy of the installed rules.
    pub fn list(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Combine every rule matching `path`, using up one of each counted
    /// rule's matches (a rule whose count runs out is removed).
    pub fn evaluate(&self, path: &str) -> Outcome {
        let mut out = Outcome::default();
        let mut rules = self.lock();
        for rule in rules.iter_mut() {
            if !path.starts_with(&rule.path_prefix) {
                continue;
            }
            if let Some(left) = rule.remaining.as_mut() {
                *left = left.saturating_sub(1);
            }
            out.latency += Duration::from_millis(rule.latency_ms);
            out.abort |= rule.abort;
            out.garbage |= rule.garbage;
            out.batch.drop_members += rule.drop_members;
            out.batch.duplicate_members |= rule.duplicate_members;
            out.batch.pad_bytes = out.batch.pad_bytes.max(rule.pad_bytes);
            if out.error_status.is_none() && self.roll(rule.error_rate) {
                out.error_status = StatusCode::from_u16(rule.status).ok();
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        out
    }

    fn roll(&self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        // splitmix64: good enough to spread errors, no extra crate.
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    fn lock(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
