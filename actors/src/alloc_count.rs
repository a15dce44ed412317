//! A counting global allocator for measurements (cargo feature `alloc-count`, off by default):
//! the system allocator, plus relaxed atomic counters of allocations, live heap bytes and the
//! peak of live heap bytes, shown in `/metrics`. `cargo xtask bench` builds with it to check
//! that the frame path allocates nothing in steady state.
//!
//! Unit tests always run with it: they read the calling thread's own count
//! ([`thread_allocations`]), so tests running in parallel do not disturb each other, and a test
//! can assert that a piece of the frame path allocates nothing at all.

// `GlobalAlloc` is an unsafe trait with unsafe methods: a counting allocator cannot be written
// without `unsafe`, and it cannot live anywhere but here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

pub struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // A const-initialised `Cell` without a destructor: using it never allocates, so the
    // allocator may touch it.
    static THREAD_ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Allocations and reallocations made so far by the calling thread.
#[cfg_attr(not(test), expect(dead_code, reason = "read by unit tests"))]
pub fn thread_allocations() -> u64 {
    THREAD_ALLOCATIONS.with(Cell::get)
}

fn allocated() {
    ALLOCATIONS.fetch_add(1, Relaxed);
    THREAD_ALLOCATIONS.with(|n| n.set(n.get() + 1));
}

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters only
// observe sizes and never touch the memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            allocated();
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            allocated();
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which got them from `System`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
    }

    /// A reallocation counts as an allocation: it may move the block, and a hot path that
    /// grows a buffer per frame is exactly what the counter is there to find.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` obeys `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            allocated();
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE_BYTES.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

/// The counters in the Prometheus text format.
#[cfg_attr(
    not(feature = "alloc-count"),
    expect(dead_code, reason = "/metrics shows them only with the feature")
)]
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP nanokvmd_heap_allocations_total Heap allocations and reallocations since start.\n\
         # TYPE nanokvmd_heap_allocations_total counter\n\
         nanokvmd_heap_allocations_total {}",
        ALLOCATIONS.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP nanokvmd_heap_live_bytes Heap bytes allocated and not yet freed.\n\
         # TYPE nanokvmd_heap_live_bytes gauge\n\
         nanokvmd_heap_live_bytes {}",
        LIVE_BYTES.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP nanokvmd_heap_peak_bytes The highest nanokvmd_heap_live_bytes since start.\n\
         # TYPE nanokvmd_heap_peak_bytes gauge\n\
         nanokvmd_heap_peak_bytes {}",
        PEAK_BYTES.load(Relaxed)
    );
}
