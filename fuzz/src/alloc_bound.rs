//! A counting global allocator, for a fuzz binary to install with
//! `#[global_allocator]`, and the allocation bound an input is held to.
//!
//! Bound: `64 × input length + 1 MiB`, for the largest single allocation
//! and for the growth of live bytes while the input runs. The decoders'
//! own working sets are a small multiple of the input: a
//! `serde_json::Value` holds 32 bytes per array element of as little as
//! two input bytes (`0,`), an `Entry` copies its strings once, and the
//! bound leaves room for that. 1 MiB covers the fixed part (a config's
//! metric names, a worker's tables, a SQLite page). What it catches is
//! what matters for a filter that shares one VM heap with every request:
//! an allocation sized by a length or count field read from the bytes
//! (`Vec::with_capacity(n)` of a damaged `n`), megabytes to gigabytes
//! from a few input bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The bound for one input of `len` bytes.
pub fn bound(len: usize) -> usize {
    64 * len + (1 << 20)
}

/// Larger than this, an allocation is refused rather than attempted (the
/// machine could not hold it) and the input is saved to the file given
/// to [`save_oversize_to`]; the process then aborts.
const ABORT_ABOVE: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
static OVERSIZE_FILE: Mutex<Option<File>> = Mutex::new(None);

/// Where an input that asks for more than 1 GiB at once is written before
/// the process aborts (`None`: nowhere).
pub fn save_oversize_to(file: Option<File>) {
    if let Ok(mut g) = OVERSIZE_FILE.lock() {
        *g = file;
    }
}

/// What one input allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// The largest single allocation.
    pub largest: usize,
    /// Peak live bytes above those live when the input started.
    pub grew: usize,
}

impl Usage {
    pub fn within(&self, len: usize) -> bool {
        self.largest <= bound(len) && self.grew <= bound(len)
    }
}

/// Start counting for `input`, which must stay alive until [`end`].
pub fn begin(input: &[u8]) {
    CURRENT.store(input.as_ptr().cast_mut(), Ordering::Relaxed);
    CURRENT_LEN.store(input.len(), Ordering::Relaxed);
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    ARMED.store(true, Ordering::Relaxed);
}

/// Stop counting; what the input allocated since [`begin`].
pub fn end(base_live: usize) -> Usage {
    ARMED.store(false, Ordering::Relaxed);
    CURRENT.store(std::ptr::null_mut(), Ordering::Relaxed);
    Usage {
        largest: LARGEST.load(Ordering::Relaxed),
        grew: PEAK.load(Ordering::Relaxed).saturating_sub(base_live),
    }
}

/// Live bytes now (pass to [`end`] the value taken just before [`begin`]).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The allocator. Every call goes to `System`; the counters are atomics.
pub struct Counting;

fn note(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

/// Called from inside the allocator: must not allocate. `write_all` on an
/// open `File` does not.
fn refuse(size: usize) -> bool {
    if !ARMED.load(Ordering::Relaxed) || size <= ABORT_ABOVE {
        return false;
    }
    let (ptr, len) = (
        CURRENT.load(Ordering::Relaxed),
        CURRENT_LEN.load(Ordering::Relaxed),
    );
    if !ptr.is_null() {
        // SAFETY: `begin` stored the input, which outlives the run.
        let input = unsafe { std::slice::from_raw_parts(ptr, len) };
        if let Ok(mut g) = OVERSIZE_FILE.try_lock() {
            if let Some(f) = g.as_mut() {
                let _ = f.write_all(input);
                let _ = f.flush();
            }
        }
    }
    true
}

// SAFETY: every call is forwarded to `System` (or refused with null, which
// the caller handles as an allocation failure); the bookkeeping uses
// atomics only and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            note(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refuse(new_size) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            note(new_size);
        }
        p
    }
}
