//! Low-resources simulation, as Driver Verifier's fault injection does it:
//! for every IOCTL and every k, the k-th pool allocation of a request fails.
//! The request must complete with STATUS_INSUFFICIENT_RESOURCES (never a
//! panic or an abort), leave the device state unchanged, and free
//! everything it allocated (our pool tracking).
//!
//! Its own test binary: the global allocator here counts and fails
//! allocations, on this thread only and only inside the request.

// Test inputs are small; their casts cannot truncate.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use support::{ARENA, Harness};
use usercap::NtStatus;
use usercap::zerocopy::IntoBytes;
use usercap_device::io::{IoManager, Ioctl};
use usercap_protocol::*;

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Pool {
    /// Allocations made since the window opened.
    allocations: u64,
    /// Which allocation fails (1-based), if any.
    fail_at: Option<u64>,
    /// Whether an allocation was refused.
    failed: bool,
    /// Bytes allocated minus bytes freed in the window.
    outstanding: i64,
    /// Whether the window is open.
    tracking: bool,
}

thread_local! {
    static POOL: Cell<Pool> = const { Cell::new(Pool {
        allocations: 0, fail_at: None, failed: false, outstanding: 0, tracking: false,
    }) };
}

struct FailingPool;

impl FailingPool {
    /// Counts an allocation; false if it must fail.
    fn admit(size: usize) -> bool {
        POOL.with(|cell| {
            let mut pool = cell.get();
            if !pool.tracking {
                return true;
            }
            pool.allocations += 1;
            let admit = pool.fail_at != Some(pool.allocations);
            if admit {
                pool.outstanding += size as i64;
            } else {
                pool.failed = true;
            }
            cell.set(pool);
            admit
        })
    }
}

// SAFETY: every method forwards to `System`, which upholds the `GlobalAlloc`
// contract; refusing an allocation by returning null is allowed by it. The
// bookkeeping uses a const-initialised thread-local `Cell`, which does not
// allocate.
unsafe impl GlobalAlloc for FailingPool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        POOL.with(|cell| {
            let mut pool = cell.get();
            if pool.tracking {
                pool.outstanding -= layout.size() as i64;
                cell.set(pool);
            }
        });
        // SAFETY: `ptr` came from `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: FailingPool = FailingPool;

/// Runs `f` with the k-th allocation failing; returns what it returned and
/// the pool's bookkeeping.
fn with_failure<R>(fail_at: Option<u64>, f: impl FnOnce() -> R) -> (R, Pool) {
    POOL.with(|cell| {
        cell.set(Pool {
            fail_at,
            tracking: true,
            ..Pool::default()
        });
    });
    let result = f();
    let pool = POOL.with(|cell| {
        let pool = cell.get();
        cell.set(Pool::default());
        pool
    });
    (result, pool)
}

/// A valid request for every IOCTL.
fn requests(h: &mut Harness) -> Vec<(&'static str, Ioctl)> {
    let values = h.put([1u32, 2, 3].as_bytes());
    let sum = h.put_value(&SumRequest {
        count: 3,
        values: values as u64,
    });
    let text: Vec<u8> = "name".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let buffer = h.put(&text);
    let set_name = h.put_value(&SetNameRequest {
        name: WireUnicodeString {
            length: 8,
            maximum_length: 8,
            reserved: 0,
            buffer: buffer as u64,
        },
    });
    let mut msg = 5u32.to_le_bytes().to_vec();
    msg.extend_from_slice(&2u32.to_le_bytes());
    msg.extend_from_slice([7u32, 8].as_bytes());
    let message = h.put(&msg);
    let echo = h.put(b"low resources");
    let config = h.put_value(&Config {
        flags: 1,
        level: 2,
        quota: 3,
    });
    let a = h.put(b"alpha");
    let b = h.put(b"beta");
    let table = h.put(
        [
            Segment {
                addr: a as u64,
                len: 5,
            },
            Segment {
                addr: b as u64,
                len: 4,
            },
        ]
        .as_bytes(),
    );
    let batch = h.put_value(&BatchRequest {
        count: 2,
        reserved: 0,
        segments: table as u64,
    });
    let out = support::OUT;
    let io = |code, input, input_len, output_len| Ioctl {
        code,
        input,
        input_len,
        output: out,
        output_len,
    };
    vec![
        ("ECHO", io(IOCTL_ECHO, echo, 13, 13)),
        ("SUM", io(IOCTL_SUM, sum, 16, 16)),
        ("MESSAGE", io(IOCTL_MESSAGE, message, msg.len(), 16)),
        ("SET_NAME", io(IOCTL_SET_NAME, set_name, 16, 0)),
        (
            "GET_NAME",
            io(IOCTL_GET_NAME, ARENA, 0, GET_NAME_MAX_OUTPUT),
        ),
        ("CONFIGURE", io(IOCTL_CONFIGURE, config, 16, 16)),
        ("BATCH", io(IOCTL_BATCH, batch, 16, 24)),
        ("STATS", io(IOCTL_STATS, ARENA, 0, 80)),
    ]
}

#[test]
fn every_allocation_of_every_ioctl_can_fail_cleanly() {
    let mut h = Harness::new();
    let mut injected = 0;
    for (name, ioctl) in requests(&mut h) {
        // How many allocations a successful request makes.
        let (ok, pool) = with_failure(None, || {
            IoManager::new(&h.driver).device_io_control(&h.space, &ioctl)
        });
        let ok = ok.unwrap_or_else(|v| panic!("{name}: {v}"));
        assert!(ok.status.is_success(), "{name}: {}", ok.status);
        assert_eq!(
            pool.outstanding, 0,
            "{name} leaked {} bytes",
            pool.outstanding
        );
        let allocations = pool.allocations;
        for k in 1..=allocations {
            let state = h.state();
            let (result, pool) = with_failure(Some(k), || {
                IoManager::new(&h.driver).device_io_control(&h.space, &ioctl)
            });
            let completion = result.unwrap_or_else(|v| panic!("{name}, allocation {k}: {v}"));
            assert!(pool.failed, "{name}: allocation {k} was not made");
            assert_eq!(
                completion.status,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
                "{name}: allocation {k} of {allocations} failed"
            );
            assert_eq!(completion.information, 0);
            assert_eq!(
                h.state(),
                state,
                "{name}: a failed allocation changed the device state"
            );
            assert_eq!(
                pool.outstanding, 0,
                "{name}, allocation {k}: {} bytes not freed",
                pool.outstanding
            );
            injected += 1;
        }
    }
    // Every IOCTL that takes input allocates at least its kernel copy.
    assert!(injected >= 8, "only {injected} failures injected");
}

#[test]
fn the_injection_can_catch_a_leak() {
    // The bookkeeping is not vacuous: an allocation still alive when the
    // window closes is reported as outstanding. (It is freed afterwards, so
    // Miri's own leak check stays quiet.)
    let (kept, pool) = with_failure(None, || vec![0u8; 64]);
    assert_eq!(pool.outstanding, 64);
    drop(kept);
    let (refused, pool) = with_failure(Some(1), || {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve(16).is_err()
    });
    assert!(refused && pool.failed);
}
