//! Shared data, the one place every table of the filter meets it: the
//! names of all keys (each starts with the filter's prefix, because shared
//! data is one namespace for all filters of a VM id; DESIGN.md host
//! facts) and the compare-and-swap update they are all written with.
//! Cache, coalescing, limits and budgets use this leaf; none uses another
//! for it.

use crate::host::{Host, HostError};

pub const PREFIX: &str = "cost_optimizer";

pub fn gen_epoch() -> &'static str {
    concat!("cost_optimizer", "/gen/epoch")
}

pub fn gen_table() -> &'static str {
    concat!("cost_optimizer", "/gen/table")
}

/// Per generation slot, the fingerprint of the purges last applied to it.
pub fn purge_applied() -> &'static str {
    concat!("cost_optimizer", "/purge/applied")
}

/// Who polls `cost-control` for purges, when next, and the version seen.
pub fn purge_poll() -> &'static str {
    concat!("cost_optimizer", "/purge/poll")
}

/// `{PREFIX}{middle}{n}` (and `/{more}`) in one allocation: these keys
/// are named several times per request.
fn numbered(middle: &str, n: u64, more: Option<u32>) -> String {
    let mut k = String::with_capacity(PREFIX.len() + middle.len() + 22);
    k.push_str(PREFIX);
    k.push_str(middle);
    crate::decimal::push_u64(&mut k, n);
    if let Some(m) = more {
        k.push('/');
        crate::decimal::push_u64(&mut k, m.into());
    }
    k
}

pub fn cache_index(slot: u32) -> String {
    numbered("/c/i/", slot.into(), None)
}

pub fn cache_data(slot: u32, way: u32) -> String {
    numbered("/c/d/", slot.into(), Some(way))
}

/// A coalescing slot's marker (leader, turn, state).
pub fn coalesce_marker(slot: u32) -> String {
    numbered("/f/m/", slot.into(), None)
}

/// A coalescing slot's published result.
pub fn coalesce_result(slot: u32) -> String {
    numbered("/f/r/", slot.into(), None)
}

/// A rate-limit slot (bucket or window state).
pub fn limit_slot(slot: u32) -> String {
    numbered("/l/", slot.into(), None)
}

/// A budget allowance slot (leased pools of tenants).
pub fn budget_slot(slot: u32) -> String {
    numbered("/b/", slot.into(), None)
}

/// A routing rule's provider health (breakers and latency, all its
/// providers in one key so that a claim is one compare-and-swap).
pub fn route_health(rule: usize) -> String {
    numbered("/r/h/", rule as u64, None)
}

/// How many times a compare-and-swap is retried before giving up.
const CAS_RETRIES: usize = 16;

/// Read-modify-write of one shared key with compare-and-swap, retried a
/// bounded number of times. `change` returning `None` leaves it as is.
pub fn cas_update(
    host: &mut impl Host,
    key: &str,
    change: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Result<(), HostError> {
    cas_update_from(host, key, None, change)
}

/// [`cas_update`] whose first attempt starts from a value read earlier
/// (`seen`: bytes and cas) instead of reading it again: when nobody
/// changed the key meanwhile that saves a read returning bytes (issue
/// 18: a cache miss stores into the slot index its lookup read); when
/// somebody did, the compare-and-swap fails and the loop reads afresh.
pub fn cas_update_from(
    host: &mut impl Host,
    key: &str,
    mut seen: Option<(Vec<u8>, u32)>,
    mut change: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Result<(), HostError> {
    for _ in 0..CAS_RETRIES {
        let (current, cas) = match seen.take() {
            Some(s) => s,
            None => host.shared_get(key)?.ok_or(HostError::NotFound)?,
        };
        let Some(next) = change(&current) else {
            return Ok(());
        };
        match host.shared_set(key, &next, cas) {
            Ok(()) => return Ok(()),
            Err(HostError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(HostError::CasMismatch)
}

/// FNV-1a, for spreading names over fixed tables (not for security: a
/// collision only makes two scopes share a slot).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
