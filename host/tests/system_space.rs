//! The model's system space and probe rule 5's address mask.
//!
//! The mask only matters on a mispredicted path, which no test can observe
//! architecturally, so its contract is tested directly: for every range,
//! `mask_user_range` returns the address when rules 2 to 4 would let the
//! range through (except the low-address rule, whose addresses are never
//! mapped, like the null page the mask returns) and 0 otherwise. The same
//! oracle rejects the deliberately wrong masks below, so it can fail.
//!
//! The tests of this binary take a lock: the exhaustion test takes every
//! slot of system space, which would make the others' allocations fail.
#![cfg(unix)]

use std::sync::{Mutex, MutexGuard, PoisonError};

use usercap::{CaptureError, DEFAULT_PROBE_LIMIT};
use usercap_host::guarded::{SYSTEM_SPACE_LEN, mask_user_range, system_space};
use usercap_host::{KernelBuffer, MAX_KERNEL_BUFFER_LEN, MAX_KERNEL_BUFFERS, is_kernel_range};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the mask must return: `addr` if the range neither wraps, nor ends
/// above `limit`, nor overlaps system space; else 0.
fn expected(addr: usize, len: usize, limit: usize) -> usize {
    let Some(end) = addr.checked_add(len) else {
        return 0;
    };
    let (start, stop) = system_space();
    if end > limit || (addr < stop && start < end) {
        0
    } else {
        addr
    }
}

/// Boundary-heavy cases around the limit, system space and the top of the
/// address space, plus a deterministic pseudo-random spread.
fn cases() -> Vec<(usize, usize, usize)> {
    let (start, end) = system_space();
    let limits = [DEFAULT_PROBE_LIMIT, 0x1_0000_0000, usize::MAX];
    let mut points = vec![
        0,
        1,
        0x1_0000,
        DEFAULT_PROBE_LIMIT,
        usize::MAX,
        1 << 47,
        1 << 63,
    ];
    for edge in [start, end, DEFAULT_PROBE_LIMIT, 0x1_0000_0000, usize::MAX] {
        for delta in [0_usize, 1, 7, 8, 4096] {
            points.push(edge.wrapping_sub(delta));
            points.push(edge.wrapping_add(delta));
        }
    }
    let lens = [
        1_usize,
        2,
        8,
        4096,
        1 << 20,
        SYSTEM_SPACE_LEN,
        usize::MAX / 2,
        usize::MAX,
    ];
    let mut out = Vec::new();
    for &limit in &limits {
        for &addr in &points {
            for &len in &lens {
                out.push((addr, len, limit));
            }
            // Ranges that end exactly on each point.
            for &end_at in &points {
                if let Some(len) = end_at.checked_sub(addr).filter(|&l| l > 0) {
                    out.push((addr, len, limit));
                }
            }
        }
    }
    // xorshift64: deterministic, so a failure reproduces.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usize::try_from(x).unwrap_or(usize::MAX)
    };
    for _ in 0..20_000 {
        let addr = next() >> (next() % 64);
        let len = (next() >> (next() % 64)).max(1);
        out.push((addr, len, limits[next() % limits.len()]));
    }
    out
}

/// Checks a mask against the oracle; the first disagreement, if any.
fn disagreement(
    mask: impl Fn(usize, usize, usize) -> usize,
) -> Option<(usize, usize, usize, usize)> {
    cases().into_iter().find_map(|(addr, len, limit)| {
        let got = mask(addr, len, limit);
        (got != expected(addr, len, limit)).then_some((addr, len, limit, got))
    })
}

#[test]
fn the_mask_keeps_accepted_ranges_and_nulls_rejected_ones() {
    let _serial = serial();
    // System space must exist for its term to be exercised.
    let kb = KernelBuffer::new(64).unwrap();
    let (start, end) = system_space();
    assert!(start != 0 && end - start == SYSTEM_SPACE_LEN);
    assert_eq!(disagreement(mask_user_range), None);

    // Spot checks that say what the oracle means.
    let limit = DEFAULT_PROBE_LIMIT;
    assert_eq!(mask_user_range(0x1_0000, 8, limit), 0x1_0000);
    assert_eq!(
        mask_user_range(limit - 8, 8, limit),
        limit - 8,
        "ends on the limit"
    );
    assert_eq!(
        mask_user_range(limit - 8, 9, limit),
        0,
        "one past the limit"
    );
    assert_eq!(mask_user_range(usize::MAX - 3, 8, usize::MAX), 0, "wraps");
    assert_eq!(mask_user_range(kb.addr(), 1, limit), 0, "a kernel buffer");
    assert_eq!(mask_user_range(start - 8, 9, limit), 0, "into system space");
    assert_eq!(
        mask_user_range(start - 8, 8, limit),
        start - 8,
        "just below it"
    );
    assert_eq!(mask_user_range(end, 8, limit), end, "just above it");
    assert_eq!(mask_user_range(end - 1, 1, limit), 0, "its last byte");
}

#[test]
fn the_oracle_catches_wrong_masks() {
    let _serial = serial();
    let _kb = KernelBuffer::new(64).unwrap();
    // No mask at all: what an `lfence`-less backend without masking does.
    assert!(disagreement(|addr, _, _| addr).is_some());
    // Forgets system space: a mispredicted probe could load a kernel buffer.
    assert!(
        disagreement(|addr, len, limit| match addr.checked_add(len) {
            Some(end) if end <= limit => addr,
            _ => 0,
        })
        .is_some()
    );
    // Off by one at the limit.
    assert!(
        disagreement(|addr, len, limit| {
            let (start, stop) = system_space();
            match addr.checked_add(len) {
                Some(end) if end < limit && !(addr < stop && start < end) => addr,
                _ => 0,
            }
        })
        .is_some()
    );
    // Sets the high bits instead of clamping to a canonical address: the
    // non-canonical speculation issue (CVE-2020-12965).
    assert!(
        disagreement(|addr, len, limit| match mask_user_range(addr, len, limit) {
            0 => usize::MAX,
            kept => kept,
        })
        .is_some()
    );
}

#[test]
fn system_space_has_a_slot_per_buffer_and_refuses_past_the_last() {
    let _serial = serial();
    assert_eq!(
        KernelBuffer::new(MAX_KERNEL_BUFFER_LEN + 1).unwrap_err(),
        CaptureError::NoMemory
    );
    let largest = KernelBuffer::new(MAX_KERNEL_BUFFER_LEN).unwrap();
    assert_eq!(largest.len(), MAX_KERNEL_BUFFER_LEN);
    assert!(largest.as_slice().iter().step_by(4096).all(|&b| b == 0));
    drop(largest);

    let all: Vec<KernelBuffer> = (0..MAX_KERNEL_BUFFERS)
        .map(|_| KernelBuffer::new(8).unwrap())
        .collect();
    assert_eq!(KernelBuffer::new(8).unwrap_err(), CaptureError::NoMemory);
    let (start, end) = system_space();
    for b in &all {
        assert!(start <= b.addr() && b.addr() + b.len() <= end);
        assert!(is_kernel_range(b.addr(), b.len()));
    }
    let mut addrs: Vec<usize> = all.iter().map(KernelBuffer::addr).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), MAX_KERNEL_BUFFERS, "one slot each");
    drop(all);
    assert!(KernelBuffer::new(8).is_ok(), "slots come back on drop");
}
