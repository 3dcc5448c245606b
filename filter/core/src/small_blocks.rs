//! A cache of freed small blocks in front of an allocator: the filter's
//! `.wasm` puts it in front of wasi-libc's dlmalloc (`filter/wasm`'s
//! `heap.rs`).
//!
//! Why: a request on the miss path makes about 60 allocations, nearly all
//! under a few hundred bytes, and frees them before the next. Counted
//! with callgrind on Kong's engine (issue 18), dlmalloc's `malloc` and
//! `free` cost about 130 instructions each there, 6 % of the gateway's
//! instructions per request. A block freed here goes on a list of its size
//! class and the next allocation of that class takes it back: a pop and a
//! push, a dozen instructions.
//!
//! Shape: sizes 1..=512 bytes in 32 classes of 16 bytes, each block
//! allocated from the backing allocator at its class's size with 16-byte
//! alignment (so any layout of alignment up to 16 fits). A free block
//! holds the address of the next one in its first bytes. At most
//! [`MAX_CACHED_BYTES`] wait in the lists; beyond that a freed block goes
//! back to the backing allocator, so the cache adds at most that much to
//! a worker's heap. Anything larger, more aligned or zero-sized goes to
//! the backing allocator as it is.
//!
//! Its methods are never inlined: with LTO they were inlined into every
//! allocation site of the module, 200 KB more code (1.17 → 1.39 MB) for
//! 1 % fewer instructions per request.
//!
//! Not thread-safe: one instance serves one thread. A proxy-wasm VM is
//! one thread (wasm32 without the `atomics` feature has no threads), which
//! is where the module installs it.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Class width and the alignment every cached block has.
const GRAIN: usize = 16;
const CLASSES: usize = 32;
/// Largest size served from the lists.
pub const MAX_SMALL: usize = GRAIN * CLASSES;
/// Most bytes kept in the lists (the heap the cache may hold on to).
pub const MAX_CACHED_BYTES: usize = 1 << 20;

struct Lists {
    heads: [*mut u8; CLASSES],
    cached_bytes: usize,
}

pub struct SmallBlocks<A> {
    backing: A,
    lists: UnsafeCell<Lists>,
}

// SAFETY: only where there are no threads: the module's global allocator
// on wasm32 without `atomics`, where a VM is one thread.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<A: Sync> Sync for SmallBlocks<A> {}

/// The class of a layout the lists serve.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    (size > 0 && size <= MAX_SMALL && layout.align() <= GRAIN).then(|| (size - 1) / GRAIN)
}

fn class_size(class: usize) -> usize {
    (class + 1) * GRAIN
}

fn class_layout(class: usize) -> Layout {
    // A multiple of 16 up to 512 with alignment 16: always valid.
    Layout::from_size_align(class_size(class), GRAIN).unwrap_or(Layout::new::<[u128; 1]>())
}

impl<A: GlobalAlloc> SmallBlocks<A> {
    pub const fn new(backing: A) -> Self {
        SmallBlocks {
            backing,
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES],
                cached_bytes: 0,
            }),
        }
    }

    /// Bytes now waiting in the lists.
    pub fn cached_bytes(&self) -> usize {
        // SAFETY: one thread (see the module note); no reference into the
        // lists outlives a method call.
        unsafe { (*self.lists.get()).cached_bytes }
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline(never)]
    pub unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.backing.alloc(layout) };
        };
        // SAFETY: one thread; the lists hold only blocks of this class
        // that were freed to it, each holding the next one's address.
        unsafe {
            let lists = &mut *self.lists.get();
            let head = lists.heads[class];
            if head.is_null() {
                return self.backing.alloc(class_layout(class));
            }
            lists.heads[class] = ptr::read(head.cast::<*mut u8>());
            lists.cached_bytes -= class_size(class);
            head
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    #[inline(never)]
    pub unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout).is_none() {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.backing.alloc_zeroed(layout) };
        }
        // SAFETY: as `alloc`; the block has at least `layout.size()` bytes.
        unsafe {
            let p = self.alloc(layout);
            if !p.is_null() {
                ptr::write_bytes(p, 0, layout.size());
            }
            p
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    #[inline(never)]
    pub unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.backing.dealloc(p, layout) };
        };
        // SAFETY: `p` came from `alloc` with a layout of this class, so it
        // is a block of `class_size` bytes aligned to 16, room for the
        // next block's address.
        unsafe {
            let lists = &mut *self.lists.get();
            let size = class_size(class);
            if lists.cached_bytes + size > MAX_CACHED_BYTES {
                return self.backing.dealloc(p, class_layout(class));
            }
            ptr::write(p.cast::<*mut u8>(), lists.heads[class]);
            lists.heads[class] = p;
            lists.cached_bytes += size;
        }
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    #[inline(never)]
    pub unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with this alignment is
        // a valid layout (GlobalAlloc::realloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // SAFETY: both large: the backing allocator's own realloc.
            (None, None) => unsafe { self.backing.realloc(p, layout, new_size) },
            // The block already has room (its class's size).
            (Some(a), Some(b)) if a == b => p,
            // SAFETY: a new block, the bytes both have copied, the old one
            // freed, as GlobalAlloc's default realloc does.
            _ => unsafe {
                let q = self.alloc(new_layout);
                if !q.is_null() {
                    ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.dealloc(p, layout);
                }
                q
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;
    use std::cell::Cell;

    /// The system allocator, counting the bytes it has out.
    #[derive(Default)]
    struct Backing {
        out: Cell<isize>,
        calls: Cell<usize>,
    }

    unsafe impl GlobalAlloc for Backing {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            self.out.set(self.out.get() + l.size() as isize);
            self.calls.set(self.calls.get() + 1);
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            self.out.set(self.out.get() - l.size() as isize);
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            self.out
                .set(self.out.get() + n as isize - l.size() as isize);
            unsafe { System.realloc(p, l, n) }
        }
    }

    struct Block {
        p: *mut u8,
        layout: Layout,
        fill: u8,
    }

    fn check(b: &Block) {
        let bytes = unsafe { std::slice::from_raw_parts(b.p, b.layout.size()) };
        assert!(bytes.iter().all(|&x| x == b.fill), "block overwritten");
        assert_eq!(b.p as usize % b.layout.align(), 0, "misaligned");
    }

    fn fill(b: &Block) {
        unsafe { ptr::write_bytes(b.p, b.fill, b.layout.size()) };
    }

    /// Random allocations, frees and reallocations of every size class
    /// and beyond: every live block keeps its bytes and its alignment,
    /// a freed block is handed out again, and once everything is freed
    /// the backing allocator has out exactly what the lists hold.
    #[test]
    fn blocks_keep_their_bytes_and_the_cache_stays_bounded() {
        let cache = SmallBlocks::new(Backing::default());
        let mut live: Vec<Block> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200_000u32 {
            let r = next();
            match r % 4 {
                0 | 1 if live.len() < 2_000 => {
                    let size = match r >> 8 & 7 {
                        0 => 1 + (r >> 16) as usize % 4_000,
                        _ => 1 + (r >> 16) as usize % MAX_SMALL,
                    };
                    let align = [1, 2, 4, 8, 16, 32][(r >> 12) as usize % 6];
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let zeroed = r >> 40 & 1 == 1;
                    let p = unsafe {
                        if zeroed {
                            cache.alloc_zeroed(layout)
                        } else {
                            cache.alloc(layout)
                        }
                    };
                    assert!(!p.is_null());
                    if zeroed {
                        let bytes = unsafe { std::slice::from_raw_parts(p, size) };
                        assert!(bytes.iter().all(|&x| x == 0), "not zeroed");
                    }
                    let b = Block {
                        p,
                        layout,
                        fill: round as u8,
                    };
                    fill(&b);
                    live.push(b);
                }
                2 if !live.is_empty() => {
                    let i = (r >> 8) as usize % live.len();
                    let b = live.swap_remove(i);
                    check(&b);
                    unsafe { cache.dealloc(b.p, b.layout) };
                }
                _ if !live.is_empty() => {
                    let i = (r >> 8) as usize % live.len();
                    let b = &mut live[i];
                    check(b);
                    let new_size = 1 + (r >> 20) as usize % 1_500;
                    let p = unsafe { cache.realloc(b.p, b.layout, new_size) };
                    assert!(!p.is_null());
                    let kept = b.layout.size().min(new_size);
                    let bytes = unsafe { std::slice::from_raw_parts(p, kept) };
                    assert!(bytes.iter().all(|&x| x == b.fill), "realloc lost bytes");
                    b.p = p;
                    b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
                    fill(b);
                }
                _ => {}
            }
            assert!(cache.cached_bytes() <= MAX_CACHED_BYTES);
        }
        for b in live.drain(..) {
            check(&b);
            unsafe { cache.dealloc(b.p, b.layout) };
        }
        assert_eq!(cache.backing.out.get(), cache.cached_bytes() as isize);
        assert!(cache.cached_bytes() > 0);
    }

    /// The point of it: a freed small block is reused without asking the
    /// backing allocator again.
    #[test]
    fn a_freed_block_is_reused() {
        let cache = SmallBlocks::new(Backing::default());
        let l = Layout::from_size_align(40, 8).unwrap();
        let a = unsafe { cache.alloc(l) };
        unsafe { cache.dealloc(a, l) };
        let calls = cache.backing.calls.get();
        // Another size of the same class (33..=48 bytes).
        let b = unsafe { cache.alloc(Layout::from_size_align(48, 4).unwrap()) };
        assert_eq!(a, b);
        assert_eq!(cache.backing.calls.get(), calls);
        assert_eq!(cache.cached_bytes(), 0);
        unsafe { cache.dealloc(b, Layout::from_size_align(48, 4).unwrap()) };
        assert_eq!(cache.cached_bytes(), 48);
    }

    /// Past the bound, freed blocks go back to the backing allocator.
    #[test]
    fn the_lists_hold_at_most_the_bound() {
        let cache = SmallBlocks::new(Backing::default());
        let l = Layout::from_size_align(MAX_SMALL, 16).unwrap();
        let n = MAX_CACHED_BYTES / MAX_SMALL + 100;
        let blocks: Vec<*mut u8> = (0..n).map(|_| unsafe { cache.alloc(l) }).collect();
        for p in blocks {
            unsafe { cache.dealloc(p, l) };
        }
        assert_eq!(cache.cached_bytes(), MAX_CACHED_BYTES);
        assert_eq!(cache.backing.out.get(), MAX_CACHED_BYTES as isize);
    }
}
