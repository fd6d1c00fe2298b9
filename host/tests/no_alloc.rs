//! `UserPtr::capture` and `capture_into` of a fixed-size struct make no heap
//! allocation: the kernel copy lives inline, in the caller's frame or slot.
//! Checked with a counting global allocator that counts only on the
//! measuring thread.
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use usercap::UserPtr;
use usercap_host::{HostSpace, UserMemory};
use usercap_protocol::{Config, SumRequest};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    // Per thread as well: tests run in parallel threads, and a global count
    // would pick up another test's allocations.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only
// const-initialised thread-locals (which never allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. System.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. System.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts the allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_counts() {
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8; 10]))), 1);
}

#[test]
fn user_ptr_capture_allocates_nothing() {
    const N: u64 = 10_000;
    let mem = UserMemory::new(4096).unwrap();
    mem.fill(0x11).unwrap();
    let space = HostSpace::new();
    let addr = mem.addr();
    // Warm up: the first copy installs the signal handler.
    let _ = UserPtr::<SumRequest>::new(addr).capture(&space).unwrap();
    let mut sum = 0u64;
    let mut slot = usercap::CaptureSlot::<[u8; 256]>::new();
    let count = allocations(|| {
        for _ in 0..N {
            let request = UserPtr::<SumRequest>::new(addr).capture(&space).unwrap();
            let config = UserPtr::<Config>::new(addr + 64).capture(&space).unwrap();
            let block = UserPtr::<[u8; 256]>::new(addr + 256)
                .capture(&space)
                .unwrap();
            let in_place = UserPtr::<[u8; 256]>::new(addr + 512)
                .capture_into(&space, &mut slot)
                .unwrap();
            sum = sum.wrapping_add(u64::from(in_place[0]));
            let sized = UserPtr::<Config>::new(addr + 1024)
                .capture_sized(&space, 24)
                .map(|_| ())
                .unwrap_err();
            sum = sum
                .wrapping_add(request.count)
                .wrapping_add(config.quota)
                .wrapping_add(u64::from(block[255]));
            std::hint::black_box(sized);
        }
    });
    assert_eq!(count, 0, "{count} allocations in {N} x 5 captures");
    let word = 0x1111_1111_1111_1111_u64;
    let expected = (0..N).fold(0u64, |s, _| {
        s.wrapping_add(word)
            .wrapping_add(word)
            .wrapping_add(0x11)
            .wrapping_add(0x11)
    });
    assert_eq!(sum, expected);
}
