//! How big Kong's shared-memory zone for the filter must be
//! (`nginx_wasm_shm_kv_cost_optimizer` in kong.conf, `shm_kv
//! cost_optimizer SIZE eviction=none` in nginx).
//!
//! On Kong a write to a full zone is a wasm trap ("failed setting value
//! to shm (could not write to slab)", ngx_wasm_module 3bed2783
//! `ngx_proxy_wasm_host.c`), which rebuilds the worker's filter instance,
//! and with `eviction=none` (which the filter needs: its tables are
//! created once, up front) nothing is ever freed. So the zone must hold the
//! most the config lets the filter write:
//!
//! - the tables created at configure (cache index, generation and purge
//!   tables, coalescing markers, rate-limit and budget slots): measured,
//!   by running the filter's own `create_tables` against the in-memory
//!   host and reading back every key it made;
//! - budget slots as they fill: at most four tenants each, measured by
//!   encoding four of the longest entries;
//! - cache entries (`cache_store.max_entries`, each at most the largest
//!   `max_entry_bytes` of a caching rule) and coalescing results
//!   (`coalesce_store.slots`, each at most the largest
//!   `coalesce.max_body_bytes`): bodies bounded by the config, plus an
//!   assumed [`ENTRY_OVERHEAD`] for the key text, the stored response
//!   headers and the entry's fields. This part is an estimate: an answer
//!   with more header bytes than that takes more.
//!
//! Each key costs the zone what ngx_wasm_module allocates for it: a
//! 96-byte node (`ngx_wa_shm_kv_node_t` on 64-bit) plus key and value,
//! taken from nginx's slab allocator, which rounds up to a power of two
//! (8 bytes at least) up to half a page and to whole 4 KiB pages above;
//! each page also costs a 24-byte descriptor.

use optimizer_core::config::Config;
use optimizer_core::cost::budget;
use optimizer_core::mem_host::{MemHost, SharedStore};
use optimizer_core::pipeline::Filter;
use optimizer_core::shared;

/// Bytes of a shm_kv node beside its key and value.
pub const NODE_BYTES: u64 = 96;
/// nginx's page on x86_64 and aarch64 Linux.
pub const PAGE: u64 = 4096;
/// Page descriptor (`ngx_slab_page_t`) per page of the zone.
const PAGE_DESCRIPTOR: u64 = 24;
/// Assumed bytes of a stored answer beside its body: key text, response
/// headers, times and generation stamps (an estimate, see the module doc).
pub const ENTRY_OVERHEAD: u64 = 4096;

/// What the zone must hold for one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmNeed {
    /// Keys the filter creates at configure.
    pub fixed_keys: usize,
    /// Zone bytes those keys take, budget slots counted full.
    pub fixed_bytes: u64,
    /// Zone bytes of a full cache (0 without a caching rule).
    pub cache_bytes: u64,
    /// Zone bytes of every coalescing slot holding a result (0 without a
    /// coalescing rule).
    pub coalesce_bytes: u64,
}

impl ShmNeed {
    /// The smallest zone that holds it all, page descriptors included.
    pub fn total(&self) -> u64 {
        let used = self.fixed_bytes + self.cache_bytes + self.coalesce_bytes;
        let pages = used.div_ceil(PAGE);
        pages * (PAGE + PAGE_DESCRIPTOR)
    }

    /// `total` in whole MiB, for `nginx_wasm_shm_kv_cost_optimizer`.
    pub fn total_mib(&self) -> u64 {
        self.total().div_ceil(1024 * 1024)
    }
}

/// Bytes nginx's slab allocator hands out for a request of `size`.
pub fn slab_bytes(size: u64) -> u64 {
    if size > PAGE / 2 {
        size.div_ceil(PAGE) * PAGE
    } else {
        size.max(8).next_power_of_two()
    }
}

fn kv_bytes(key_len: usize, value_len: u64) -> u64 {
    slab_bytes(NODE_BYTES + key_len as u64 + value_len)
}

/// The zone a config needs on Kong.
pub fn estimate(config: &Config) -> Result<ShmNeed, String> {
    let store = SharedStore::new_shared();
    let mut host = MemHost::with_store(store.clone());
    let filter = Filter::new(config.clone(), &mut host);
    filter
        .create_tables(&mut host)
        .map_err(|e| format!("creating the tables in memory failed: {e:?}"))?;

    let budget_slot_max = largest_budget_slot();
    let cs = &config.cache_store;
    let mut candidates: Vec<String> = [
        shared::gen_epoch(),
        shared::gen_table(),
        shared::purge_applied(),
        shared::purge_poll(),
    ]
    .map(str::to_owned)
    .to_vec();
    candidates.extend((0..cs.slots).map(shared::cache_index));
    candidates.extend((0..config.coalesce_store.slots).map(shared::coalesce_marker));
    candidates.extend((0..config.limit_slots).map(shared::limit_slot));
    candidates.extend((0..config.routes.len()).map(shared::route_health));
    let budget_keys: Vec<String> = config
        .accounting
        .as_ref()
        .map(|a| (0..a.budgets.slots).map(shared::budget_slot).collect())
        .unwrap_or_default();

    let store = store.borrow();
    let mut fixed_keys = 0;
    let mut fixed_bytes = 0;
    for key in &candidates {
        if let Some(v) = store.value(key) {
            fixed_keys += 1;
            fixed_bytes += kv_bytes(key.len(), v.len() as u64);
        }
    }
    for key in &budget_keys {
        if let Some(v) = store.value(key) {
            fixed_keys += 1;
            fixed_bytes += kv_bytes(key.len(), (v.len() as u64).max(budget_slot_max));
        }
    }
    if fixed_keys != store.len() {
        // A table this estimate does not know: say so rather than
        // undercount.
        return Err(format!(
            "the filter created {} shared keys at configure, this estimate knows {fixed_keys}: \
             update filter/validate/src/kong_shm.rs",
            store.len()
        ));
    }

    // The longest key of each kind (the last slot), each value at most the
    // largest body a rule allows plus the entry's overhead; a coalescing
    // result also carries its leader's 8-byte sequence number.
    let cache_bytes = bounded(
        cs.max_entries(),
        &shared::cache_data(cs.slots.saturating_sub(1), cs.ways.saturating_sub(1)),
        config
            .routes
            .iter()
            .filter_map(|r| r.cache.as_ref().map(|c| c.max_entry_bytes))
            .max(),
        ENTRY_OVERHEAD,
    );
    let coalesce_bytes = bounded(
        u64::from(config.coalesce_store.slots),
        &shared::coalesce_result(config.coalesce_store.slots.saturating_sub(1)),
        config
            .routes
            .iter()
            .filter_map(|r| r.coalesce.as_ref().map(|c| c.max_body_bytes))
            .max(),
        8 + ENTRY_OVERHEAD,
    );

    Ok(ShmNeed {
        fixed_keys,
        fixed_bytes,
        cache_bytes,
        coalesce_bytes,
    })
}

/// Zone bytes of `count` keys like `key` whose values hold a body of at
/// most `largest_body` plus `overhead`; none when no rule stores any.
fn bounded(count: u64, key: &str, largest_body: Option<u32>, overhead: u64) -> u64 {
    largest_body.map_or(0, |body| {
        count * kv_bytes(key.len(), u64::from(body) + overhead)
    })
}

/// A budget slot holding four tenants with the longest names and lease
/// ids the record keeps.
fn largest_budget_slot() -> u64 {
    let long = "t".repeat(255);
    let entry = budget::Entry {
        tenant: long.clone(),
        allowance_id: long,
        ..budget::Entry::default()
    };
    budget::encode(&vec![entry; budget::WAYS]).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use optimizer_core::config::parse;

    #[test]
    fn slab_rounding() {
        assert_eq!(slab_bytes(1), 8);
        assert_eq!(slab_bytes(130), 256);
        assert_eq!(slab_bytes(2048), 2048);
        assert_eq!(slab_bytes(2049), 4096);
        assert_eq!(slab_bytes(4097), 8192);
    }

    #[test]
    fn nothing_to_store_needs_nothing() {
        let need = estimate(&parse(b"").unwrap()).unwrap();
        assert_eq!(need.fixed_keys, 0);
        assert_eq!(need.total(), 0);
    }

    #[test]
    fn every_table_is_counted_and_bodies_bound_the_rest() {
        let c = parse(
            br#"{"version": 1,
                 "cache_store": {"max_entries": 64, "ways": 4, "max_entry_bytes": 8192,
                                 "generation_slots": 16},
                 "coalesce_store": {"slots": 8},
                 "limit_store": {"slots": 32},
                 "accounting": {"cost_control": "cc", "token": "t", "gateway_id": "g",
                                "budgets": {"slots": 4}},
                 "routes": [
                   {"name": "a", "match": {"prefix": "/a"},
                    "cache": {"max_entry_bytes": 4096}, "coalesce": {"max_body_bytes": 1000}},
                   {"name": "b", "match": {"prefix": "/b"}, "cache": {},
                    "limit": {"token_bucket": {"capacity": 1, "refill_per_s": 1}},
                    "cost": {"cost_per_call": "0.1", "budget": {}}}]}"#,
        )
        .unwrap();
        let need = estimate(&c).unwrap();
        // gen epoch + table, purge applied + poll, 16 cache indexes,
        // 8 coalescing markers, 32 limit slots, 4 budget slots.
        assert_eq!(need.fixed_keys, 2 + 2 + 16 + 8 + 32 + 4);
        // 64 entries of an 8 KiB body (the largest rule's bound) + 4 KiB
        // + node and key: 4 pages each.
        assert_eq!(need.cache_bytes, 64 * 4 * PAGE);
        // 8 results of 1000 + 8 + 4096 bytes: 2 pages each.
        assert_eq!(need.coalesce_bytes, 8 * 2 * PAGE);
        assert!(need.total() > need.fixed_bytes + need.cache_bytes + need.coalesce_bytes);
    }
}
