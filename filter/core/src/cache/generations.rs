//! Invalidation by generation counters (shared data cannot be listed, so
//! entries are never searched and deleted).
//!
//! A fixed table of counters lives in one shared-data key; a scope (a
//! tenant's path, prefix or tag) hashes to one counter. An entry records
//! the counters of its scopes when its request started; bumping any of
//! them makes it unreachable. A small `epoch` key changes with every bump,
//! and each worker re-reads the table only after a bump. Two scopes
//! sharing a counter only ever cause an extra miss, never a stale hit.
//!
//! A lookup does not read the epoch key either while nothing moved: every
//! bump also adds 1 to the host counter `cost_optimizer.cache.epoch`
//! (after the table and the epoch), and a lookup reads that counter, a
//! host call that returns no bytes (on Envoy about a ninth of a
//! shared-data read's instructions: no allocation in the VM). When it
//! moved, the lookup reads the epoch and, if that moved, the table: a bump
//! is seen by the next lookup on any worker, as when the epoch was read
//! per lookup. The timer reads the epoch key itself once a second, so a
//! bump by a writer that does not move the counter (another version of
//! the filter on the same shared data) is seen within about a second.
//!
//! A request going upstream keeps the table as it stood when it started
//! (an `Rc`, so keeping it copies nothing). Its answer is stored under the
//! counters of that moment, those of the tags the answer names included:
//! an invalidation of any of its scopes while it was in flight leaves the
//! stored answer unreachable, and one of any other scope leaves it alone.

use std::rc::Rc;

use crate::host::{Host, HostError};
use crate::shared::{cas_update, fnv1a, gen_epoch, gen_table};

/// What a counter stands for, within one tenant. `purges.rs` says which
/// scopes an entry records and which a purge bumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A canonical path, any query (writes to it, prefix purges of it).
    Path(&'a str),
    /// A path prefix: an ancestor directory, or a rule's related prefix.
    Prefix(&'a str),
    /// A `cache-tag` / `surrogate-key` value, lowercase.
    Tag(&'a str),
    /// One URL: canonical path and query (key purges), kept apart so
    /// that no request has to build the URL to find its counter.
    Key { path: &'a str, query: &'a str },
}

pub fn slot(tenant: &str, scope: Scope<'_>, slots: u32) -> u32 {
    let t = tenant.as_bytes();
    let h = match scope {
        Scope::Path(v) => fnv1a(&[t, b"path", v.as_bytes()]),
        Scope::Prefix(v) => fnv1a(&[t, b"prefix", v.as_bytes()]),
        Scope::Tag(v) => fnv1a(&[t, b"tag", v.as_bytes()]),
        Scope::Key { path, query } => fnv1a(&[t, b"key", path.as_bytes(), query.as_bytes()]),
    };
    (h % u64::from(slots.max(1))) as u32
}

/// A worker's copy of the counters, valid for one epoch.
#[derive(Debug, Clone, Default)]
pub struct Generations {
    epoch: Option<u64>,
    table: Rc<[u32]>,
    /// The epoch counter's value when the copy was last brought up to date.
    hint_seen: Option<u64>,
    /// When the timer last read the epoch key ([`Generations::check_epoch`]).
    epoch_checked_ms: u64,
}

fn decode_table(bytes: &[u8], slots: u32) -> Vec<u32> {
    let mut t: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // A table of another size (another config) reads as zeros past its end.
    t.resize(slots as usize, 0);
    t
}

fn encode_table(t: &[u32]) -> Vec<u8> {
    t.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn read_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// The counters as they stood when a request started; none taken yet
/// (every counter 0) by default, which allocates nothing: a hit never
/// takes one.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(Option<Rc<[u32]>>);

impl Snapshot {
    pub fn value(&self, slot: u32) -> u32 {
        self.0
            .as_ref()
            .and_then(|t| t.get(slot as usize).copied())
            .unwrap_or(0)
    }
}

impl Generations {
    /// Create the shared keys unless they exist.
    pub fn create(host: &mut impl Host, slots: u32) -> Result<(), HostError> {
        host.shared_create(gen_table(), &encode_table(&vec![0; slots as usize]))?;
        host.shared_create(gen_epoch(), &0u64.to_le_bytes())?;
        Ok(())
    }

    /// Bring the worker's copy up to date. With the epoch counter
    /// (`hint`: its id) that is one read of the counter while nothing
    /// changed; without it, one small shared-data read.
    pub fn refresh(&mut self, host: &impl Host, slots: u32, hint: Option<u32>) {
        let seen = hint.and_then(|id| host.counter_value(id));
        if seen.is_some() && seen == self.hint_seen && self.table.len() == slots as usize {
            return;
        }
        self.refresh_from_epoch(host, slots);
        self.hint_seen = seen;
    }

    /// The timer's check: bring the copy up to date from the epoch key,
    /// whatever the counter says, at most once per `every_ms` (the timer
    /// ticks every few ms while requests wait; a shared-data read on each
    /// tick would cost more than it guards).
    pub fn check_epoch(&mut self, host: &impl Host, slots: u32, now_ms: u64, every_ms: u64) {
        if now_ms < self.epoch_checked_ms.saturating_add(every_ms) {
            return;
        }
        self.epoch_checked_ms = now_ms;
        self.refresh_from_epoch(host, slots);
    }

    fn refresh_from_epoch(&mut self, host: &impl Host, slots: u32) {
        let epoch = match host.shared_get(gen_epoch()) {
            Ok(Some((v, _))) => read_u64(&v),
            _ => 0,
        };
        if self.epoch == Some(epoch) && self.table.len() == slots as usize {
            return;
        }
        self.table = match host.shared_get(gen_table()) {
            Ok(Some((v, _))) => decode_table(&v, slots),
            _ => vec![0; slots as usize],
        }
        .into();
        self.epoch = Some(epoch);
    }

    pub fn value(&self, slot: u32) -> u32 {
        self.table.get(slot as usize).copied().unwrap_or(0)
    }

    /// The counters as they stand now, kept by a request going upstream.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(Some(self.table.clone()))
    }

    /// Whether every recorded counter still has the recorded value.
    pub fn valid(&self, recorded: &[(u32, u32)]) -> bool {
        recorded.iter().all(|&(s, g)| self.value(s) == g)
    }

    /// Bump the counters of `slots_to_bump`, then the epoch, each by a
    /// bounded compare-and-swap loop, then the epoch counter (`hint`).
    pub fn bump(
        host: &mut impl Host,
        slots: u32,
        slots_to_bump: &[u32],
        hint: Option<u32>,
    ) -> Result<(), HostError> {
        cas_update(host, gen_table(), |bytes| {
            let mut t = decode_table(bytes, slots);
            for &s in slots_to_bump {
                if let Some(v) = t.get_mut(s as usize) {
                    *v = v.wrapping_add(1);
                }
            }
            Some(encode_table(&t))
        })?;
        cas_update(host, gen_epoch(), |bytes| {
            Some(read_u64(bytes).wrapping_add(1).to_le_bytes().to_vec())
        })?;
        // Last: a worker that sees the counter move finds both written.
        if let Some(id) = hint {
            host.increment_at_once(id, 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_host::{MemHost, SharedStore};

    #[test]
    fn a_bump_on_one_worker_invalidates_on_another() {
        let store = SharedStore::new_shared();
        let mut a = MemHost::with_store(store.clone());
        let b = MemHost::with_store(store.clone());
        Generations::create(&mut a, 64).unwrap();
        let s = slot("acme", Scope::Path("/api/items/1"), 64);
        let mut view_b = Generations::default();
        view_b.refresh(&b, 64, None);
        let recorded = vec![(s, view_b.value(s))];
        assert!(view_b.valid(&recorded));

        Generations::bump(&mut a, 64, &[s], None).unwrap();
        view_b.refresh(&b, 64, None);
        assert!(!view_b.valid(&recorded));
    }

    #[test]
    fn bump_survives_cas_conflicts_and_gives_up_when_they_never_end() {
        let store = SharedStore::new_shared();
        let mut a = MemHost::with_store(store.clone());
        Generations::create(&mut a, 8).unwrap();
        store.borrow_mut().inject_conflicts(5);
        Generations::bump(&mut a, 8, &[3], None).unwrap();
        let mut v = Generations::default();
        v.refresh(&a, 8, None);
        assert_eq!(v.value(3), 1);
        store.borrow_mut().inject_conflicts(1000);
        assert_eq!(
            Generations::bump(&mut a, 8, &[3], None),
            Err(HostError::CasMismatch)
        );
    }

    #[test]
    fn tenants_and_scopes_spread_over_slots() {
        let a = slot("acme", Scope::Path("/x"), 4096);
        assert_ne!(a, slot("globex", Scope::Path("/x"), 4096));
        assert_ne!(a, slot("acme", Scope::Prefix("/x"), 4096));
        assert!(slot("t", Scope::Tag("t"), 1) == 0);
    }

    #[test]
    fn a_table_of_another_size_reads_safely() {
        assert_eq!(decode_table(&[1, 0, 0, 0, 9], 3), vec![1, 0, 0]);
    }
}
