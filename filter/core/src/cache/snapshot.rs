//! What the filter reads of `cost-control`'s snapshot (its purges), and
//! the gateway's poll state in shared data: which worker polls, when the
//! next poll is due, and the version it asks about. The purges themselves
//! become generation bumps in `purges.rs`.

use crate::config::TICKS_PER_POLL;
use crate::host::{Host, HostError, Level};
use crate::shared::{cas_update, purge_poll};

use optimizer_wire::PurgeEntry;

use super::purges::{Purge, PurgeKind, MAX_VERSION_LEN};

/// What the filter reads of `GET /v1/snapshot` (budget states are not
/// used: budgets work through leases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: String,
    pub purges: Vec<Purge>,
    /// Entries that could not be read (unknown kind, bad generation).
    pub skipped: usize,
}

/// The snapshot as `cost-control` writes it (`optimizer_wire::Snapshot`),
/// budget states skipped and each purge kept as JSON to be read on its own.
type RawSnapshot = optimizer_wire::Snapshot<serde::de::IgnoredAny, serde_json::Value>;

/// Read a snapshot body. A body that is not a snapshot is an error (the
/// poll failed); a purge entry that cannot be read is skipped and counted,
/// so one odd entry (a kind this build does not know) holds up no other.
pub fn parse_snapshot(body: &[u8]) -> Result<Snapshot, String> {
    let raw: RawSnapshot = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut purges = Vec::with_capacity(raw.purges.len());
    let mut skipped = 0;
    for v in raw.purges {
        let p = serde_json::from_value::<PurgeEntry<String>>(v)
            .ok()
            .and_then(|p| {
                Some(Purge {
                    kind: PurgeKind::parse(&p.kind)?,
                    generation: u64::try_from(p.generation).ok()?,
                    tenant: p.tenant,
                    value: p.value,
                })
            });
        match p {
            Some(p) => purges.push(p),
            None => skipped += 1,
        }
    }
    Ok(Snapshot {
        version: raw.version,
        purges,
        skipped,
    })
}

// --- who polls, and when --------------------------------------------------------

/// The gateway's poll state in shared data: one worker at a time holds
/// the claim, the next poll is due at `next_at_ms`, and `version` (applied
/// with mapping `mapping`) is what `since=` asks about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollState {
    pub claim_until_ms: u64,
    pub next_at_ms: u64,
    pub mapping: u64,
    /// Polls failed in a row (for logging the first and the recovery).
    pub failures: u32,
    pub version: String,
}

const POLL_STATE_FORMAT: u8 = 1;
const POLL_STATE_FIXED: usize = 1 + 8 + 8 + 8 + 4;

impl PollState {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(POLL_STATE_FIXED + self.version.len());
        b.push(POLL_STATE_FORMAT);
        b.extend_from_slice(&self.claim_until_ms.to_le_bytes());
        b.extend_from_slice(&self.next_at_ms.to_le_bytes());
        b.extend_from_slice(&self.mapping.to_le_bytes());
        b.extend_from_slice(&self.failures.to_le_bytes());
        b.extend_from_slice(self.version.as_bytes());
        b
    }

    /// `None` for bytes this build did not write.
    pub fn decode(b: &[u8]) -> Option<PollState> {
        if b.len() < POLL_STATE_FIXED || b[0] != POLL_STATE_FORMAT {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        Some(PollState {
            claim_until_ms: u64_at(1)?,
            next_at_ms: u64_at(9)?,
            mapping: u64_at(17)?,
            failures: u32::from_le_bytes(b.get(25..29)?.try_into().ok()?),
            version: String::from_utf8(b.get(POLL_STATE_FIXED..)?.to_vec()).ok()?,
        })
    }
}

fn read_state(host: &impl Host, bytes: &[u8]) -> PollState {
    PollState::decode(bytes).unwrap_or_else(|| {
        host.log(
            Level::Warn,
            &format!(
                "purges: poll state unreadable ({} bytes); starting afresh",
                bytes.len()
            ),
        );
        PollState::default()
    })
}

/// Take the right to poll now: `Some(since)` when this worker won it
/// (`since` is the version to ask about, when it was applied with this
/// mapping), `None` when the poll is not due or another worker has it.
pub fn claim(
    host: &mut impl Host,
    now: u64,
    interval_ms: u64,
    claim_ms: u64,
    mapping: u64,
) -> Result<Option<Option<String>>, HostError> {
    let key = purge_poll();
    let (bytes, cas) = host.shared_get(key)?.ok_or(HostError::NotFound)?;
    let st = read_state(host, &bytes);
    // A time further ahead than this config could have set (a reload with
    // a shorter interval, a clock that went back) does not hold us up.
    let held = now < st.claim_until_ms && st.claim_until_ms <= now.saturating_add(claim_ms);
    // Due a tick early: timers tick TICKS_PER_POLL times per interval, so
    // polls are between 3/4 and one interval apart, never late by a tick.
    let early = interval_ms / TICKS_PER_POLL;
    let waiting = now.saturating_add(early) < st.next_at_ms
        && st.next_at_ms <= now.saturating_add(interval_ms);
    if held || waiting {
        return Ok(None);
    }
    let since = (st.mapping == mapping && !st.version.is_empty()).then(|| st.version.clone());
    let next = PollState {
        claim_until_ms: now.saturating_add(claim_ms),
        next_at_ms: now.saturating_add(interval_ms),
        ..st
    };
    match host.shared_set(key, &next.encode(), cas) {
        Ok(()) => Ok(Some(since)),
        Err(HostError::CasMismatch) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How a poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollEnd<'a> {
    /// 304: nothing changed.
    NotModified,
    /// This version's purges are applied.
    Applied {
        version: &'a str,
        mapping: u64,
    },
    Failed,
}

/// Release the claim and record the outcome. Returns the failures in a
/// row before this one.
pub fn finish(host: &mut impl Host, end: PollEnd<'_>) -> Result<u32, HostError> {
    let mut before = 0;
    let mut unreadable = false;
    cas_update(host, purge_poll(), |bytes| {
        let mut st = PollState::decode(bytes).unwrap_or_else(|| {
            unreadable = true;
            PollState::default()
        });
        before = st.failures;
        st.claim_until_ms = 0;
        match end {
            PollEnd::NotModified => st.failures = 0,
            PollEnd::Applied { version, mapping } => {
                st.failures = 0;
                st.mapping = mapping;
                // An odd version is not asked about again: the next poll
                // fetches the whole snapshot.
                st.version = if version.len() <= MAX_VERSION_LEN {
                    version.to_string()
                } else {
                    String::new()
                };
            }
            PollEnd::Failed => st.failures = st.failures.saturating_add(1),
        }
        Some(st.encode())
    })?;
    if unreadable {
        host.log(Level::Warn, "purges: poll state unreadable; rewritten");
    }
    Ok(before)
}

/// This worker's poll in flight, if any.
#[derive(Debug, Default)]
pub struct Poller {
    pub in_flight: Option<InFlight>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    pub token: u32,
    /// After this the answer is not waited for any more (the claim has
    /// expired too).
    pub until_ms: u64,
}

/// `since=` value, percent-encoded (versions are opaque).
pub fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
