//! The shared tier: a set-associative table in host shared data, fixed at
//! `slots × ways` so memory is bounded by config.
//!
//! Each slot has an index key (per way: key tag, usable-until, last use,
//! refresh lease) updated by compare-and-swap, and one data key per way.
//! A writer claims a way in the index first, then writes the data; a
//! reader trusts only the data's own full key, so a race between two
//! writers can cost a miss but never serve the wrong body.

use crate::config::Store;
use crate::host::{Host, HostError};
use crate::shared::{cache_data, cache_index};

use super::entry::Entry;
use super::key::Key;
use crate::shared::{cas_update, cas_update_from};

const INDEX_MAGIC: [u8; 4] = *b"CIX\x01";
const WAY_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Way {
    pub tag: u64,
    pub usable_until_ms: u64,
    /// Recency within the slot: a logical clock (the slot's highest value
    /// plus one on every store or touch), not wall time. Each worker's clock
    /// is its event loop's cached time, which under load lags another
    /// worker's by tens of milliseconds; ordering by it evicted freshly
    /// stored entries first (seen in the 100,000-key test).
    pub last_used_ms: u64,
    pub refresh_until_ms: u64,
}

fn decode_index(bytes: &[u8], ways: u32) -> Vec<Way> {
    let mut out = vec![Way::default(); ways as usize];
    if bytes.get(..4) != Some(&INDEX_MAGIC[..]) {
        return out; // another version or damage: every way reads empty
    }
    for (i, w) in bytes[4..]
        .chunks_exact(WAY_BYTES)
        .take(ways as usize)
        .enumerate()
    {
        let u = |o: usize| {
            u64::from_le_bytes([
                w[o],
                w[o + 1],
                w[o + 2],
                w[o + 3],
                w[o + 4],
                w[o + 5],
                w[o + 6],
                w[o + 7],
            ])
        };
        out[i] = Way {
            tag: u(0),
            usable_until_ms: u(8),
            last_used_ms: u(16),
            refresh_until_ms: u(24),
        };
    }
    out
}

fn encode_index(ways: &[Way]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + ways.len() * WAY_BYTES);
    b.extend_from_slice(&INDEX_MAGIC);
    for w in ways {
        for v in [w.tag, w.usable_until_ms, w.last_used_ms, w.refresh_until_ms] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// Where a key lives.
pub fn slot_of(key: &Key, store: &Store) -> u32 {
    (key.slot_bits() % u64::from(store.slots.max(1))) as u32
}

/// Create every slot's index up front (DESIGN.md: a fixed key space, so
/// compare-and-swap always has a value to compare on both hosts).
pub fn create(host: &mut impl Host, store: &Store) -> Result<(), HostError> {
    let empty = encode_index(&vec![Way::default(); store.ways as usize]);
    for slot in 0..store.slots {
        host.shared_create(&cache_index(slot), &empty)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub entry: Entry,
    pub slot: u32,
    pub way: u32,
    /// Another request holds the refresh lease until then.
    pub refresh_until_ms: u64,
}

/// A slot's index as a lookup that found nothing read it: the store of
/// the answer tries its compare-and-swap on it first
/// ([`crate::shared::cas_update_from`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSeen {
    slot: u32,
    bytes: Vec<u8>,
    cas: u32,
}

pub fn lookup(host: &mut impl Host, store: &Store, key: &Key, now_ms: u64) -> Option<Found> {
    lookup_seen(host, store, key, now_ms, &mut None)
}

/// [`lookup`], keeping in `seen` the index it read when no way holds the
/// key.
pub fn lookup_seen(
    host: &mut impl Host,
    store: &Store,
    key: &Key,
    now_ms: u64,
    seen: &mut Option<IndexSeen>,
) -> Option<Found> {
    let slot = slot_of(key, store);
    let (bytes, cas) = host.shared_get(&cache_index(slot)).ok()??;
    let ways = decode_index(&bytes, store.ways);
    let tag = key.tag();
    let Some((way, w)) = ways
        .iter()
        .enumerate()
        .find(|(_, w)| w.tag == tag && w.usable_until_ms > now_ms)
    else {
        *seen = Some(IndexSeen { slot, bytes, cas });
        return None;
    };
    let (data, _) = host.shared_get(&cache_data(slot, way as u32)).ok()??;
    let entry = Entry::decode(&data)?;
    if entry.key != key.material {
        return None;
    }
    // Touch only when another way is more recent: the hottest entry of a
    // slot costs no shared write per hit.
    let newest = ways.iter().map(|w| w.last_used_ms).max().unwrap_or(0);
    if w.last_used_ms < newest {
        let _ = update_way(host, slot, way as u32, store.ways, tag, |w| {
            // Saturating: the clock is read from shared data, where a
            // damaged or foreign index may hold u64::MAX (found by
            // fuzzing, `cache_index`).
            w.last_used_ms = newest.saturating_add(1)
        });
    }
    Some(Found {
        entry,
        slot,
        way: way as u32,
        refresh_until_ms: w.refresh_until_ms,
    })
}

fn update_way(
    host: &mut impl Host,
    slot: u32,
    way: u32,
    ways: u32,
    tag: u64,
    mut f: impl FnMut(&mut Way),
) -> Result<bool, HostError> {
    let mut changed = false;
    cas_update(host, &cache_index(slot), |bytes| {
        let mut all = decode_index(bytes, ways);
        let w = all.get_mut(way as usize)?;
        if w.tag != tag {
            changed = false;
            return None;
        }
        f(w);
        changed = true;
        Some(encode_index(&all))
    })?;
    Ok(changed)
}

/// Take the refresh lease of an entry until `until_ms`, if nobody holds
/// it: exactly one request across all workers wins and goes upstream.
pub fn claim_refresh(
    host: &mut impl Host,
    store: &Store,
    found: &Found,
    key: &Key,
    now_ms: u64,
    until_ms: u64,
) -> bool {
    let mut won = false;
    let res = cas_update(host, &cache_index(found.slot), |bytes| {
        let mut all = decode_index(bytes, store.ways);
        let w = all.get_mut(found.way as usize)?;
        won = w.tag == key.tag() && w.refresh_until_ms <= now_ms;
        if !won {
            return None;
        }
        w.refresh_until_ms = until_ms;
        Some(encode_index(&all))
    });
    res.is_ok() && won
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stored {
    /// A live entry of another key was pushed out.
    pub evicted: bool,
}

/// Store an encoded entry: claim a way (this key's own, else an empty or
/// expired one, else the least recently used), then write the data.
pub fn store_entry(
    host: &mut impl Host,
    store: &Store,
    key: &Key,
    entry: &Entry,
    now_ms: u64,
) -> Result<Stored, HostError> {
    store_entry_seen(host, store, key, entry, now_ms, &mut None)
}

/// [`store_entry`], starting from the index a lookup read (`seen`, taken
/// only when it is this key's slot, left for another store otherwise).
pub fn store_entry_seen(
    host: &mut impl Host,
    store: &Store,
    key: &Key,
    entry: &Entry,
    now_ms: u64,
    seen: &mut Option<IndexSeen>,
) -> Result<Stored, HostError> {
    let slot = slot_of(key, store);
    let tag = key.tag();
    let mut chosen = 0u32;
    let mut evicted = false;
    let usable_until = entry.usable_until_ms();
    let seen = seen.take_if(|s| s.slot == slot).map(|s| (s.bytes, s.cas));
    cas_update_from(host, &cache_index(slot), seen, |bytes| {
        let mut all = decode_index(bytes, store.ways);
        let pick = all
            .iter()
            .position(|w| w.tag == tag)
            .or_else(|| all.iter().position(|w| w.usable_until_ms <= now_ms))
            .or_else(|| {
                all.iter()
                    .enumerate()
                    .min_by_key(|(_, w)| w.last_used_ms)
                    .map(|(i, _)| i)
            })?;
        evicted = all[pick].tag != tag && all[pick].usable_until_ms > now_ms;
        let newest = all.iter().map(|w| w.last_used_ms).max().unwrap_or(0);
        all[pick] = Way {
            tag,
            usable_until_ms: usable_until,
            last_used_ms: newest.saturating_add(1), // as in `lookup`
            refresh_until_ms: 0,
        };
        chosen = pick as u32;
        Some(encode_index(&all))
    })?;
    host.shared_put(&cache_data(slot, chosen), &entry.encode())?;
    Ok(Stored { evicted })
}

/// Number of ways holding an entry usable at `now_ms` (for tests and
/// the memory-bound check).
pub fn live_entries(host: &impl Host, store: &Store, now_ms: u64) -> u64 {
    (0..store.slots)
        .filter_map(|s| host.shared_get(&cache_index(s)).ok().flatten())
        .map(|(b, _)| {
            decode_index(&b, store.ways)
                .iter()
                .filter(|w| w.tag != 0 && w.usable_until_ms > now_ms)
                .count() as u64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Body;
    use crate::mem_host::{MemHost, SharedStore};

    fn store_cfg(slots: u32, ways: u32) -> Store {
        Store {
            slots,
            ways,
            max_entry_bytes: 4096,
            l1_max_entries: 0,
            l1_max_bytes: 0,
            generation_slots: 16,
        }
    }

    fn entry(key: &Key, until: u64) -> Entry {
        Entry {
            key: key.material.clone(),
            stored_ms: 0,
            initial_age_s: 0,
            fresh_until_ms: until,
            swr_until_ms: 0,
            sie_until_ms: 0,
            keep_until_ms: 0,
            fetch_ms: 0,
            gens: vec![],
            body: Body::Response {
                status: 200,
                headers: vec![],
                body: key.material.as_bytes().to_vec(),
            },
        }
    }

    /// Found by fuzzing (`cache_index`): an index whose recency clock is
    /// at u64::MAX (damaged, or written by another version) overflowed
    /// `newest + 1` when storing, and when a hit touched its way.
    #[test]
    fn an_index_clock_at_its_maximum_neither_overflows_on_store_nor_on_touch() {
        let mut h = MemHost::new();
        let cfg = store_cfg(1, 2);
        let (k1, k2) = (
            Key::from_material("k1".into()),
            Key::from_material("k2".into()),
        );
        let ways = [
            Way {
                tag: k1.tag(),
                usable_until_ms: 1_000,
                last_used_ms: 1,
                refresh_until_ms: 0,
            },
            Way {
                tag: 99,
                usable_until_ms: 1_000,
                last_used_ms: u64::MAX,
                refresh_until_ms: 0,
            },
        ];
        h.shared_put(&cache_index(0), &encode_index(&ways)).unwrap();
        h.shared_put(&cache_data(0, 0), &entry(&k1, 1_000).encode())
            .unwrap();
        let found = lookup(&mut h, &cfg, &k1, 10).unwrap();
        assert_eq!(found.way, 0);
        store_entry(&mut h, &cfg, &k2, &entry(&k2, 1_000), 10).unwrap();
        assert!(lookup(&mut h, &cfg, &k2, 10).is_some());
    }

    /// A miss's store starts from the index its lookup read: no second
    /// read when the slot is as it was, and a correct store when another
    /// worker changed the slot in between (the compare-and-swap fails on
    /// the old value and the store reads afresh: both entries stay).
    #[test]
    fn store_from_the_index_the_lookup_read() {
        let shared = SharedStore::new_shared();
        let mut a = MemHost::with_store(shared.clone());
        let mut b = MemHost::with_store(shared.clone());
        let cfg = store_cfg(1, 4);
        create(&mut a, &cfg).unwrap();
        let (k1, k2, k3) = (
            Key::from_material("k1".into()),
            Key::from_material("k2".into()),
            Key::from_material("k3".into()),
        );

        let mut seen = None;
        assert!(lookup_seen(&mut a, &cfg, &k1, 10, &mut seen).is_none());
        assert!(seen.is_some(), "a miss keeps the index it read");
        a.take_calls();
        store_entry_seen(&mut a, &cfg, &k1, &entry(&k1, 1_000), 10, &mut seen).unwrap();
        let calls = a.take_calls();
        assert_eq!(calls.get("shared_get"), None, "{calls:?}");
        assert_eq!(calls.get("shared_set"), Some(&1), "{calls:?}");

        let mut seen = None;
        assert!(lookup_seen(&mut a, &cfg, &k2, 20, &mut seen).is_none());
        // Another worker stores into the same slot meanwhile.
        store_entry(&mut b, &cfg, &k3, &entry(&k3, 1_000), 21).unwrap();
        a.take_calls();
        store_entry_seen(&mut a, &cfg, &k2, &entry(&k2, 1_000), 22, &mut seen).unwrap();
        let calls = a.take_calls();
        assert_eq!(calls.get("shared_get"), Some(&1), "{calls:?}");
        assert_eq!(calls.get("shared_set"), Some(&2), "{calls:?}");
        for k in [&k1, &k2, &k3] {
            assert!(lookup(&mut b, &cfg, k, 30).is_some(), "{k:?} lost");
        }
        assert_eq!(live_entries(&b, &cfg, 30), 3);
    }

    /// The index a lookup read is used only for its own slot.
    #[test]
    fn an_index_seen_in_another_slot_is_not_used() {
        let mut h = MemHost::new();
        let cfg = store_cfg(64, 2);
        create(&mut h, &cfg).unwrap();
        let k1 = Key::from_material("k0".into());
        let other = (1..200)
            .map(|i| Key::from_material(format!("k{i}")))
            .find(|k| slot_of(k, &cfg) != slot_of(&k1, &cfg))
            .unwrap();
        let mut seen = None;
        assert!(lookup_seen(&mut h, &cfg, &other, 10, &mut seen).is_none());
        store_entry_seen(&mut h, &cfg, &k1, &entry(&k1, 1_000), 10, &mut seen).unwrap();
        assert!(seen.is_some(), "left for a store into its own slot");
        assert!(lookup(&mut h, &cfg, &k1, 20).is_some());
        assert_eq!(live_entries(&h, &cfg, 20), 1);
    }

    #[test]
    fn store_then_lookup_across_workers() {
        let shared = SharedStore::new_shared();
        let mut a = MemHost::with_store(shared.clone());
        let mut b = MemHost::with_store(shared.clone());
        let cfg = store_cfg(4, 2);
        create(&mut a, &cfg).unwrap();
        let k = Key::from_material("k1".into());
        store_entry(&mut a, &cfg, &k, &entry(&k, 100), 10).unwrap();
        let found = lookup(&mut b, &cfg, &k, 20).unwrap();
        assert_eq!(found.entry.key, "k1");
        assert!(lookup(&mut b, &cfg, &k, 100).is_none(), "expired");
        assert!(lookup(&mut b, &cfg, &Key::from_material("k2".into()), 20).is_none());
    }

    #[test]
    fn replacement_prefers_expired_then_least_recently_used_and_never_exceeds_the_bound() {
        let mut h = MemHost::new();
        let cfg = store_cfg(1, 2);
        create(&mut h, &cfg).unwrap();
        let k: Vec<Key> = (0..4)
            .map(|i| Key::from_material(format!("k{i}")))
            .collect();
        assert!(
            !store_entry(&mut h, &cfg, &k[0], &entry(&k[0], 50), 1)
                .unwrap()
                .evicted
        );
        assert!(
            !store_entry(&mut h, &cfg, &k[1], &entry(&k[1], 1000), 2)
                .unwrap()
                .evicted
        );
        // k0 expired at 50: it is replaced first, nothing live is evicted.
        assert!(
            !store_entry(&mut h, &cfg, &k[2], &entry(&k[2], 1000), 60)
                .unwrap()
                .evicted
        );
        assert!(lookup(&mut h, &cfg, &k[2], 61).is_some());
        assert!(lookup(&mut h, &cfg, &k[1], 61).is_some());
        // Both live: k1 was stored before k2, but the lookup above made it
        // the most recent, so k2 goes.
        let s = store_entry(&mut h, &cfg, &k[3], &entry(&k[3], 1000), 62).unwrap();
        assert!(s.evicted);
        assert_eq!(live_entries(&h, &cfg, 63), 2);
        assert!(lookup(&mut h, &cfg, &k[3], 63).is_some());
        assert!(lookup(&mut h, &cfg, &k[1], 63).is_some());
        assert!(lookup(&mut h, &cfg, &k[2], 63).is_none());
    }

    #[test]
    fn recency_does_not_depend_on_the_workers_clocks() {
        let mut h = MemHost::new();
        let cfg = store_cfg(1, 2);
        create(&mut h, &cfg).unwrap();
        let k: Vec<Key> = (0..3)
            .map(|i| Key::from_material(format!("c{i}")))
            .collect();
        // A worker whose clock lags stores the newer entry.
        store_entry(&mut h, &cfg, &k[0], &entry(&k[0], 10_000), 500).unwrap();
        store_entry(&mut h, &cfg, &k[1], &entry(&k[1], 10_000), 400).unwrap();
        store_entry(&mut h, &cfg, &k[2], &entry(&k[2], 10_000), 450).unwrap();
        assert!(
            lookup(&mut h, &cfg, &k[0], 451).is_none(),
            "the oldest store went"
        );
        assert!(lookup(&mut h, &cfg, &k[1], 451).is_some());
    }

    #[test]
    fn a_tag_collision_with_another_key_is_a_miss() {
        let mut h = MemHost::new();
        let cfg = store_cfg(1, 1);
        create(&mut h, &cfg).unwrap();
        let k = Key::from_material("real".into());
        store_entry(&mut h, &cfg, &k, &entry(&k, 100), 1).unwrap();
        // Same hashes, other text: as if SipHash collided.
        let forged = Key::with_placement("other", k.placement());
        assert!(lookup(&mut h, &cfg, &forged, 2).is_none());
    }

    #[test]
    fn damaged_index_and_data_are_misses() {
        let mut h = MemHost::new();
        let cfg = store_cfg(1, 1);
        create(&mut h, &cfg).unwrap();
        let k = Key::from_material("k".into());
        store_entry(&mut h, &cfg, &k, &entry(&k, 100), 1).unwrap();
        h.shared_put(&cache_data(0, 0), b"garbage").unwrap();
        assert!(lookup(&mut h, &cfg, &k, 2).is_none());
        let (_, cas) = h.shared_get(&cache_index(0)).unwrap().unwrap();
        h.shared_set(&cache_index(0), b"CIX\x09junk", cas).unwrap();
        assert!(lookup(&mut h, &cfg, &k, 2).is_none());
        // And the slot is usable again.
        store_entry(&mut h, &cfg, &k, &entry(&k, 100), 3).unwrap();
        assert!(lookup(&mut h, &cfg, &k, 4).is_some());
    }

    #[test]
    fn exactly_one_claims_the_refresh_lease() {
        let shared = SharedStore::new_shared();
        let mut a = MemHost::with_store(shared.clone());
        let mut b = MemHost::with_store(shared.clone());
        let cfg = store_cfg(2, 2);
        create(&mut a, &cfg).unwrap();
        let k = Key::from_material("k".into());
        store_entry(&mut a, &cfg, &k, &entry(&k, 100), 1).unwrap();
        let fa = lookup(&mut a, &cfg, &k, 5).unwrap();
        let fb = lookup(&mut b, &cfg, &k, 5).unwrap();
        shared.borrow_mut().inject_conflicts(3);
        assert!(claim_refresh(&mut a, &cfg, &fa, &k, 5, 50));
        assert!(!claim_refresh(&mut b, &cfg, &fb, &k, 6, 50));
        // The lease expires: someone may take it again.
        assert!(claim_refresh(&mut b, &cfg, &fb, &k, 51, 90));
    }
}
