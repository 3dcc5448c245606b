//! The filter's own heap, counted: the module's global allocator wraps the
//! default one (wasi-libc's dlmalloc on wasm32-wasip1) and keeps the bytes
//! now allocated in one integer; each VM's timer brings the gauge
//! `cost_optimizer.wasm.heap_live_bytes` (Envoy: `wasmcustom.` before it)
//! up to date by adding what its count changed by since its last report.
//! Envoy keeps one gauge per name for all VMs of the plugin and takes a
//! negative increment as a subtraction (`Context::incrementMetric`), so
//! the gauge is the sum of the live bytes of every VM that ticks (one per
//! worker). `make soak` reads it from `/stats` to see the heap stay flat.
//!
//! Under the count sits `optimizer_core::small_blocks`: freed blocks of up
//! to 512 bytes wait on per-size lists for the next allocation of their
//! size instead of going back to dlmalloc (issue 18: dlmalloc's malloc
//! and free were 6 % of Kong's instructions per request on the miss path). The
//! gauge counts what the filter has allocated, not what waits there (at
//! most `small_blocks::MAX_CACHED_BYTES`).
//!
//! Cost: one relaxed add per allocation, free and reallocation. wasm32
//! without the `atomics` feature has no threads (one VM is one thread),
//! so these compile to a plain load, add and store.
//!
//! Envoy only: Kong's engine keeps a gauge per worker and takes `record`,
//! not an increment, so on Kong nothing is reported.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};

use optimizer_core::host::HostKind;
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
use optimizer_core::small_blocks::SmallBlocks;

/// Counts the bytes of live allocations (as asked, not as the allocator
/// rounds them), then hands every call to the block cache over the
/// default allocator unchanged.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Freed small blocks, kept for reuse, over wasi-libc's dlmalloc (one VM
/// is one thread, which the cache needs).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
static BLOCKS: SmallBlocks<System> = SmallBlocks::new(System);
/// A native build of this crate (lint, docs) may have threads: the
/// system allocator as it is.
#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
static BLOCKS: System = System;

// SAFETY: every call is forwarded to `BLOCKS` with the caller's arguments;
// the count is only bookkeeping beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on unchanged.
        let p = unsafe { BLOCKS.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { BLOCKS.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as `alloc`.
        unsafe { BLOCKS.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { BLOCKS.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // On failure the old block stays allocated: no change.
            LIVE.fetch_add(new_size, Relaxed);
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const NAME: &str = "cost_optimizer.wasm.heap_live_bytes";
/// proxy-wasm's `MetricType::Gauge`.
const METRIC_GAUGE: u32 = 1;
const OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_define_metric(
        metric_type: u32,
        name: *const u8,
        name_size: usize,
        out: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

/// This VM's gauge id once defined (Envoy's gauge ids carry the type in
/// their low bits, so 0 is never one).
static GAUGE: AtomicU32 = AtomicU32::new(0);
/// The host refused the gauge: stop asking.
static REFUSED: AtomicBool = AtomicBool::new(false);
/// What this VM has added to the gauge so far.
static REPORTED: AtomicUsize = AtomicUsize::new(0);

/// Bytes this VM has allocated and not freed.
pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// Add to the gauge what this VM's live bytes changed by since its last
/// report (called from the root's timer). A host error leaves the gauge
/// as it was; the next tick tries the difference again.
pub fn report(host: HostKind) {
    if host != HostKind::Envoy || REFUSED.load(Relaxed) {
        return;
    }
    let mut id = GAUGE.load(Relaxed);
    if id == 0 {
        // SAFETY: a valid slice and out pointer for the call's duration.
        let status =
            unsafe { proxy_define_metric(METRIC_GAUGE, NAME.as_ptr(), NAME.len(), &mut id) };
        if status != OK || id == 0 {
            REFUSED.store(true, Relaxed);
            return;
        }
        GAUGE.store(id, Relaxed);
    }
    let now = live_bytes();
    let before = REPORTED.load(Relaxed);
    if now == before {
        return;
    }
    let delta = now as i64 - before as i64;
    // SAFETY: plain value call.
    if unsafe { proxy_increment_metric(id, delta) } == OK {
        REPORTED.store(now, Relaxed);
    }
}
