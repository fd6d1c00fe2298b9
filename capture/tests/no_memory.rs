//! `NoMemory`: a failing global allocator shows that running out of pool is
//! an error value, never a panic or an abort.
//!
//! This file is its own test binary so that its allocator affects nothing
//! else. Failure is switched on per thread, so the test harness's own
//! threads allocate normally.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use usercap::sim::{Perm, SimSpace};
use usercap::{CaptureError, CapturedBytes, CapturedUnicode, UserSlice, WireUnicodeString};

struct FailingAllocator;

thread_local! {
    static FAIL: Cell<bool> = const { Cell::new(false) };
    static REFUSED: Cell<u32> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System`, which upholds the `GlobalAlloc`
// contract, except that `alloc`/`alloc_zeroed` may return null, which the
// contract allows to signal failure.
unsafe impl GlobalAlloc for FailingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL.with(Cell::get) {
            REFUSED.with(|n| n.set(n.get() + 1));
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if FAIL.with(Cell::get) {
            REFUSED.with(|n| n.set(n.get() + 1));
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: FailingAllocator = FailingAllocator;

fn failing<R>(f: impl FnOnce() -> R) -> (R, u32) {
    REFUSED.with(|n| n.set(0));
    FAIL.with(|fail| fail.set(true));
    let result = f();
    FAIL.with(|fail| fail.set(false));
    (result, REFUSED.with(Cell::get))
}

#[test]
fn every_allocating_capture_reports_no_memory() {
    let user = 0x10_0000;
    let space = SimSpace::new();
    space.map(user, &[1; 256], Perm::READ).unwrap();
    let wire = WireUnicodeString {
        length: 8,
        maximum_length: 8,
        reserved: 0,
        buffer: user as u64,
    };

    let (slice, refused) = failing(|| {
        UserSlice::<u32>::new(user, 16)
            .unwrap()
            .capture(&space)
            .map(|_| ())
    });
    assert_eq!(slice, Err(CaptureError::NoMemory));
    assert!(refused > 0, "the allocator was asked and refused");
    let (cstr, _) = failing(|| {
        UserSlice::<u8>::new(user, 64)
            .unwrap()
            .capture_cstr(&space)
            .map(|_| ())
    });
    assert_eq!(cstr, Err(CaptureError::NoMemory));
    let (unicode, _) = failing(|| CapturedUnicode::capture(&wire, &space, 64).map(|_| ()));
    assert_eq!(unicode, Err(CaptureError::NoMemory));
    let (system, _) =
        failing(|| CapturedBytes::from_system_buffer(&[1, 2, 3], &SimSpace::new()).map(|_| ()));
    assert_eq!(system, Err(CaptureError::NoMemory));
    // Nothing was fetched: the allocation comes before the copy.
    assert_eq!(space.fetched_bytes(), 0);

    // With the allocator back, the same captures work.
    assert_eq!(
        UserSlice::<u32>::new(user, 16)
            .unwrap()
            .capture(&space)
            .unwrap()
            .len(),
        16
    );
}
