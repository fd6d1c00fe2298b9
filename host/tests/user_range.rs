//! The model's user range: where every `UserMemory` lives, the only
//! addresses a user-mode `HostSpace` touches, and probe rule 5's mask
//! against it.
//!
//! The mask only matters on a mispredicted path, which no test can observe
//! architecturally, so its contract is tested directly against an oracle,
//! and the oracle is shown to reject deliberately wrong masks.
//!
//! The tests of this binary take a lock: the exhaustion test fills the whole
//! user range, which would make the others' allocations fail.
#![cfg(unix)]

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use usercap::{AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, UserPtr};
use usercap_host::guarded::{mask_to_user_range, page_size};
use usercap_host::{
    HostSpace, KernelBuffer, USER_RANGE_LEN, UserMemory, is_user_range, user_range,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

const AV: CaptureError = CaptureError::AccessViolation;

/// The user range, reserved (by a region the caller keeps alive).
fn reserved() -> (UserMemory, (usize, usize)) {
    let mem = UserMemory::new(page_size()).unwrap();
    let (start, end) = user_range();
    assert!(start != 0 && end - start == USER_RANGE_LEN);
    (mem, (start, end))
}

#[test]
fn user_memory_lives_in_the_user_range_and_nothing_else_does() {
    static STATIC: [u8; 64] = [7; 64];
    let _serial = serial();
    let (_keep, (start, end)) = reserved();
    let regions: Vec<UserMemory> = [1, 2, 100, 1 << 20]
        .into_iter()
        .map(|len| UserMemory::new(len).unwrap())
        .collect();
    for r in &regions {
        assert!(start <= r.addr() && r.end() <= end);
        assert!(is_user_range(r.addr(), r.len()));
    }
    // Regions never touch: at least one unmapped page between any two.
    let mut spans: Vec<(usize, usize)> = regions.iter().map(|r| (r.addr(), r.end())).collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[1].0 >= pair[0].1 + page_size(), "{pair:x?}");
    }
    // Everything the model calls kernel memory is outside it.
    let heap = Box::new([1_u8; 64]);
    let stack = [2_u8; 64];
    let kb = KernelBuffer::new(64).unwrap();
    for addr in [
        heap.as_ptr().addr(),
        stack.as_ptr().addr(),
        STATIC.as_ptr().addr(),
        kb.addr(),
    ] {
        assert!(!is_user_range(addr, 1), "{addr:#x}");
        // Mapped and readable, but not user memory: the user-mode probe
        // refuses it, the kernel-mode space reads it.
        let mut out = [0_u8; 64];
        assert_eq!(HostSpace::new().read(addr, &mut out, 1), Err(AV));
        assert_eq!(HostSpace::kernel().read(addr, &mut out, 1), Ok(()));
    }
    // The edges of the range.
    assert!(is_user_range(start, 1) && is_user_range(end - 1, 1));
    assert!(is_user_range(start, USER_RANGE_LEN));
    assert!(!is_user_range(start - 1, 2) && !is_user_range(end - 1, 2));
    assert!(!is_user_range(end, 1) && !is_user_range(usize::MAX, 1));
}

#[test]
fn a_dropped_region_stays_in_the_user_range_and_faults() {
    let _serial = serial();
    let (_keep, _) = reserved();
    let mem = UserMemory::new(page_size()).unwrap();
    mem.fill(0x5A).unwrap();
    let gone = mem.addr();
    assert_eq!(
        *UserPtr::<u8>::new(gone).capture(&HostSpace::new()).unwrap(),
        0x5A
    );
    drop(mem);
    assert!(is_user_range(gone, page_size()));
    assert_eq!(
        UserPtr::<u8>::new(gone)
            .capture(&HostSpace::new())
            .unwrap_err(),
        AV
    );
    assert_eq!(
        UserPtr::<u8>::new(gone)
            .capture(&HostSpace::kernel())
            .unwrap_err(),
        AV
    );
    // The next region does not reuse the address (next-fit placement).
    let next = UserMemory::new(page_size()).unwrap();
    assert_ne!(next.addr(), gone);
}

#[test]
fn the_user_range_fills_up_and_frees_cleanly() {
    let _serial = serial();
    let (_keep, _) = reserved();
    // Regions of 1 GiB, and a page of guard each, as placement keeps.
    let size = 1 << 30;
    assert!(
        UserMemory::new(USER_RANGE_LEN).is_err(),
        "larger than the range"
    );
    let mut regions = Vec::new();
    let error = loop {
        match UserMemory::new(size) {
            Ok(region) => regions.push(region),
            Err(error) => break error,
        }
        assert!(regions.len() <= 64, "more than fit");
    };
    assert_eq!(error.kind(), io::ErrorKind::OutOfMemory, "{error}");
    // The range is full, not the system: this process holds one page and
    // `regions` (a page was placed first, so 62 fit besides it, or 63 if
    // the page went into the gap at the end).
    assert!(
        error.raw_os_error().is_none() && error.to_string().contains("no free gap"),
        "{error}"
    );
    assert!((62..=63).contains(&regions.len()), "{}", regions.len());
    drop(regions.pop());
    // A gigabyte freed: one gigabyte fits again.
    let again = UserMemory::new(size).unwrap();
    again.write_at(size - 1, &[1]).unwrap();
    drop(again);
    let count = regions.len() + 1;
    drop(regions);
    // All of it is free again.
    let refill: Vec<UserMemory> = (0..count).map(|_| UserMemory::new(size).unwrap()).collect();
    assert_eq!(refill.len(), count);
}

/// What the mask must return: `addr` if `[addr, addr + len)` lies inside
/// the user range and ends at or below `limit`; else 0.
fn expected(addr: usize, len: usize, limit: usize) -> usize {
    let (start, end) = user_range();
    match addr.checked_add(len) {
        Some(stop) if start <= addr && stop <= end && stop <= limit => addr,
        _ => 0,
    }
}

/// Boundary-heavy cases around the user range, the limit and the top of the
/// address space, plus a deterministic pseudo-random spread.
fn cases() -> Vec<(usize, usize, usize)> {
    let (start, end) = user_range();
    let middle = start + USER_RANGE_LEN / 2;
    let limits = [DEFAULT_PROBE_LIMIT, middle, start, usize::MAX, 0];
    let mut points = vec![0, 1, 0x1_0000, usize::MAX, 1 << 47, 1 << 63];
    for edge in [start, end, middle, DEFAULT_PROBE_LIMIT, usize::MAX] {
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
        USER_RANGE_LEN - 1,
        USER_RANGE_LEN,
        USER_RANGE_LEN + 1,
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
        // And ranges inside the user range or across its edges.
        let near = start
            .wrapping_add(next() % (USER_RANGE_LEN + 8192))
            .wrapping_sub(4096);
        out.push((
            near,
            (next() % (2 << 20)).max(1),
            limits[next() % limits.len()],
        ));
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
fn the_mask_keeps_ranges_inside_the_user_range_and_nulls_the_rest() {
    let _serial = serial();
    let (_keep, (start, end)) = reserved();
    assert_eq!(disagreement(mask_to_user_range), None);

    // Spot checks that say what the oracle means.
    let limit = DEFAULT_PROBE_LIMIT;
    assert_eq!(mask_to_user_range(start, 8, limit), start);
    assert_eq!(
        mask_to_user_range(end - 8, 8, limit),
        end - 8,
        "ends on the end"
    );
    assert_eq!(mask_to_user_range(end - 8, 9, limit), 0, "one past it");
    assert_eq!(
        mask_to_user_range(start - 1, 8, limit),
        0,
        "starts below it"
    );
    assert_eq!(mask_to_user_range(start, 8, start + 7), 0, "past the limit");
    assert_eq!(
        mask_to_user_range(start, 8, start + 8),
        start,
        "on the limit"
    );
    assert_eq!(
        mask_to_user_range(start, usize::MAX, usize::MAX),
        0,
        "wraps"
    );
    let heap = Box::new([0_u8; 8]);
    assert_eq!(
        mask_to_user_range(heap.as_ptr().addr(), 8, limit),
        0,
        "the heap"
    );
}

#[test]
fn the_oracle_catches_wrong_masks() {
    let _serial = serial();
    let (_keep, (start, end)) = reserved();
    // No mask at all.
    assert!(disagreement(|addr, _, _| addr).is_some());
    // Forgets the start of the range: kernel memory below it would load.
    assert!(
        disagreement(|addr, len, limit| match addr.checked_add(len) {
            Some(stop) if stop <= end && stop <= limit => addr,
            _ => 0,
        })
        .is_some()
    );
    // Forgets the limit.
    assert!(
        disagreement(|addr, len, _| match addr.checked_add(len) {
            Some(stop) if start <= addr && stop <= end => addr,
            _ => 0,
        })
        .is_some()
    );
    // Off by one at the end.
    assert!(
        disagreement(|addr, len, limit| match addr.checked_add(len) {
            Some(stop) if start <= addr && stop < end && stop <= limit => addr,
            _ => 0,
        })
        .is_some()
    );
    // Sets the high bits instead of clamping to a canonical address.
    assert!(
        disagreement(
            |addr, len, limit| match mask_to_user_range(addr, len, limit) {
                0 => usize::MAX,
                kept => kept,
            }
        )
        .is_some()
    );
}
