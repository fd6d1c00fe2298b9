//! Property test: on arbitrary region layouts, addresses, lengths and
//! alignments, a capture either returns exactly the user's bytes (each
//! fetched once) or the error an independent oracle of the probe rules
//! predicts, and it never panics.

use proptest::prelude::*;
use usercap::sim::{Perm, SimSpace};
use usercap::zerocopy::{FromBytes, Immutable, IntoBytes};
use usercap::{CaptureError, CaptureSlot, DEFAULT_PROBE_LIMIT, Limits, UserPtr, UserSlice};

const WINDOW: usize = 0x800;
const MAX_CAPTURE: usize = 0x300;

#[derive(Debug, Clone)]
struct Layout {
    base: usize,
    probe_limit: usize,
    regions: Vec<(usize, Vec<u8>, Perm)>,
}

fn perm() -> impl Strategy<Value = Perm> {
    prop_oneof![Just(Perm::READ), Just(Perm::READ_WRITE), Just(Perm::NONE)]
}

fn layout() -> impl Strategy<Value = Layout> {
    let bases = prop_oneof![
        Just(0usize),
        Just(0x1_0000 - 0x100),
        Just(0x10_0000),
        Just(DEFAULT_PROBE_LIMIT - 0x400),
        Just(usize::MAX - 0x400),
    ];
    let limits = prop_oneof![Just(DEFAULT_PROBE_LIMIT), Just(usize::MAX)];
    let region = (
        0..WINDOW,
        prop::collection::vec(any::<u8>(), 1..0x200),
        perm(),
    );
    (bases, limits, prop::collection::vec(region, 0..5)).prop_map(|(base, probe_limit, rs)| {
        let regions = rs
            .into_iter()
            .filter_map(|(offset, bytes, perm)| {
                let addr = base.checked_add(offset)?;
                addr.checked_add(bytes.len())?;
                Some((addr, bytes, perm))
            })
            .collect();
        Layout {
            base,
            probe_limit,
            regions,
        }
    })
}

/// Maps the layout's regions into `space`. Regions the sim refuses
/// (overlaps) are dropped from the returned layout, so the oracle does not
/// see them either.
fn map_layout(space: &SimSpace, layout: Layout) -> Layout {
    Layout {
        regions: layout
            .regions
            .into_iter()
            .filter(|(addr, bytes, perm)| space.map(*addr, bytes, *perm).is_ok())
            .collect(),
        ..layout
    }
}

/// The probe rules and the memory model, restated independently of the
/// crate: what a capture of `len` elements of `size` bytes at `addr` must give.
fn oracle(
    space: &SimSpace,
    layout: &Layout,
    addr: usize,
    len: usize,
    size: usize,
) -> Result<Vec<u8>, CaptureError> {
    let bytes = len.checked_mul(size).ok_or(CaptureError::Overflow)?;
    if bytes > MAX_CAPTURE {
        return Err(CaptureError::TooLarge);
    }
    if bytes == 0 {
        return Ok(Vec::new());
    }
    if addr < 0x1_0000 {
        return Err(CaptureError::AccessViolation);
    }
    if !addr.is_multiple_of(size) {
        return Err(CaptureError::Misaligned);
    }
    match addr.checked_add(bytes) {
        Some(end) if end <= layout.probe_limit => {}
        _ => return Err(CaptureError::AccessViolation),
    }
    // Every byte must lie in a readable region.
    for a in addr..addr + bytes {
        let readable = layout
            .regions
            .iter()
            .any(|(base, data, perm)| perm.read && a >= *base && a - base < data.len());
        if !readable {
            return Err(CaptureError::AccessViolation);
        }
    }
    Ok(space.peek(addr, bytes).expect("readable bytes are mapped"))
}

fn capture_as<T: FromBytes + IntoBytes + Immutable>(
    space: &SimSpace,
    addr: usize,
    len: usize,
) -> Result<Vec<u8>, CaptureError> {
    Ok(UserSlice::<T>::new(addr, len)?
        .capture(space)?
        .as_bytes()
        .to_vec())
}

fn cases() -> u32 {
    if cfg!(miri) { 24 } else { 2000 }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn capture_matches_the_oracle(
        layout in layout(),
        offset in 0..WINDOW + 0x100,
        len in 0usize..0x120,
        size_log2 in 0u32..4,
    ) {
        let space = SimSpace::new()
            .with_probe_limit(layout.probe_limit)
            .with_limits(Limits { max_capture: MAX_CAPTURE, max_request: 4 * MAX_CAPTURE });
        let layout = map_layout(&space, layout);
        let addr = layout.base.wrapping_add(offset);
        let size = 1usize << size_log2;
        let expected = oracle(&space, &layout, addr, len, size);
        let got = match size {
            1 => capture_as::<u8>(&space, addr, len),
            2 => capture_as::<u16>(&space, addr, len),
            4 => capture_as::<u32>(&space, addr, len),
            _ => capture_as::<u64>(&space, addr, len),
        };
        prop_assert_eq!(&got, &expected);
        prop_assert!(space.max_fetches() <= 1);
        if let Ok(bytes) = &got {
            prop_assert_eq!(space.fetched_bytes(), bytes.len() as u64);
        }
    }

    #[test]
    fn both_ptr_capture_forms_match_the_oracle(
        layout in layout(),
        offset in 0..WINDOW + 0x100,
        leftover in any::<[u64; 3]>(),
    ) {
        let space = SimSpace::new().with_probe_limit(layout.probe_limit);
        let layout = map_layout(&space, layout);
        let addr = layout.base.wrapping_add(offset);
        // A `[u64; 3]` is three 8-byte elements at an 8-aligned address.
        let expected = oracle(&space, &layout, addr, 3, 8);
        let by_value = UserPtr::<[u64; 3]>::new(addr)
            .capture(&space)
            .map(|c| c.as_bytes().to_vec());
        prop_assert_eq!(&by_value, &expected);
        prop_assert!(space.max_fetches() <= 1);
        // The slot first holds an unrelated capture: nothing of it may show.
        let mut slot = CaptureSlot::<[u64; 3]>::new();
        space.map(0x7000_0000, leftover.as_bytes(), Perm::READ).unwrap();
        let first = UserPtr::<[u64; 3]>::new(0x7000_0000).capture_into(&space, &mut slot);
        prop_assert_eq!(first.map(|c| **c), Ok(leftover));
        space.reset_counters();
        let in_place = UserPtr::<[u64; 3]>::new(addr)
            .capture_into(&space, &mut slot)
            .map(|c| c.as_bytes().to_vec());
        prop_assert_eq!(&in_place, &expected);
        prop_assert!(space.max_fetches() <= 1);
    }
}
