//! Behaviour of the capture API on `SimSpace`, case by case.
//!
//! Each test pins one rule of `shared/design.md` at its exact boundary, and
//! the safety properties (single fetch, race immunity) each come with a
//! deliberately wrong reader that the same checks catch.

// Test values are small; their casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

use usercap::sim::{Perm, SimSpace};
use usercap::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use usercap::{
    AddressSpace, Budgeted, CaptureError, CaptureSlot, CapturedBytes, CapturedUnicode,
    CountedLayout, DEFAULT_PROBE_LIMIT, Extensible, Limits, Mode, NtStatus, UserPtr, UserSlice,
    UserWriter, WireUnicodeString, errno,
};

const PAGE: usize = 0x1000;
const USER: usize = 0x10_0000;

fn space_with(addr: usize, bytes: &[u8], perm: Perm) -> SimSpace {
    let space = SimSpace::new();
    space.map(addr, bytes, perm).unwrap();
    space
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 1) as u8).collect()
}

// ---------------------------------------------------------------- probe rules

#[test]
fn probe_rejects_null_and_the_first_64k_and_accepts_0x10000() {
    let space = SimSpace::new();
    space.map_zeroed(0, 0x2_0000, Perm::READ_WRITE).unwrap();
    for addr in [0, 1, 0xFFFF] {
        assert_eq!(
            UserPtr::<u8>::new(addr).capture(&space).unwrap_err(),
            CaptureError::AccessViolation,
            "address {addr:#x} is below 64 KiB"
        );
    }
    assert!(UserPtr::<u8>::new(0x1_0000).capture(&space).is_ok());
    // Nothing below 64 KiB was fetched, though it is mapped in the sim.
    assert_eq!(space.fetches(0), 0);
    assert_eq!(space.fetches(0xFFFF), 0);
}

#[test]
fn probe_accepts_an_end_exactly_at_the_limit_and_rejects_one_byte_past() {
    let limit = DEFAULT_PROBE_LIMIT;
    let space = space_with(limit - PAGE, &pattern(2 * PAGE), Perm::READ);
    let at_limit = UserSlice::<u8>::new(limit - 16, 16)
        .unwrap()
        .capture(&space);
    assert_eq!(&*at_limit.unwrap(), &pattern(2 * PAGE)[PAGE - 16..PAGE]);
    let past = UserSlice::<u8>::new(limit - 16, 17)
        .unwrap()
        .capture(&space);
    assert_eq!(past.unwrap_err(), CaptureError::AccessViolation);
    let above = UserPtr::<u8>::new(limit).capture(&space);
    assert_eq!(above.unwrap_err(), CaptureError::AccessViolation);
    // The rejected probes touched nothing, although the sim has memory there.
    assert_eq!(space.fetches(limit), 0);
    assert_eq!(space.fetched_bytes(), 16);
}

#[test]
fn probe_limit_is_configurable() {
    let space = SimSpace::new().with_probe_limit(USER + 8);
    space.map(USER, &pattern(16), Perm::READ).unwrap();
    assert!(UserPtr::<u64>::new(USER).capture(&space).is_ok());
    assert_eq!(
        UserPtr::<u64>::new(USER + 8).capture(&space).unwrap_err(),
        CaptureError::AccessViolation
    );
}

#[test]
fn probe_rejects_ranges_that_wrap_past_the_top() {
    let space = SimSpace::new().with_probe_limit(usize::MAX);
    space.map(usize::MAX - 15, &[0; 15], Perm::READ).unwrap();
    let wrap = UserSlice::<u8>::new(usize::MAX - 7, 16)
        .unwrap()
        .capture(&space);
    assert_eq!(wrap.unwrap_err(), CaptureError::AccessViolation);
    assert_eq!(space.fetched_bytes(), 0);
}

#[test]
fn probe_rejects_misaligned_typed_captures_before_reading() {
    let space = space_with(USER, &pattern(64), Perm::READ);
    for offset in 1..8 {
        assert_eq!(
            UserPtr::<u64>::new(USER + offset)
                .capture(&space)
                .unwrap_err(),
            CaptureError::Misaligned
        );
    }
    assert_eq!(
        UserPtr::<u32>::new(USER + 2).capture(&space).unwrap_err(),
        CaptureError::Misaligned
    );
    assert_eq!(
        UserSlice::<u16>::new(USER + 1, 3)
            .unwrap()
            .capture(&space)
            .unwrap_err(),
        CaptureError::Misaligned
    );
    assert!(UserPtr::<u64>::new(USER + 8).capture(&space).is_ok());
    assert!(UserPtr::<[u8; 8]>::new(USER + 3).capture(&space).is_ok());
    assert_eq!(space.fetched_bytes(), 16);
}

#[test]
fn probe_order_puts_low_address_before_alignment_and_alignment_before_range() {
    let space = SimSpace::new();
    // Low and misaligned: the low-address rule wins.
    assert_eq!(
        UserPtr::<u64>::new(3).capture(&space).unwrap_err(),
        CaptureError::AccessViolation
    );
    // Misaligned and past the limit: the alignment rule wins.
    assert_eq!(
        UserPtr::<u64>::new(DEFAULT_PROBE_LIMIT + 1)
            .capture(&space)
            .unwrap_err(),
        CaptureError::Misaligned
    );
}

#[test]
fn zero_length_captures_at_bogus_addresses_succeed_and_touch_nothing() {
    let space = space_with(USER, &pattern(16), Perm::READ);
    for addr in [
        0,
        1,
        0xFFFF,
        DEFAULT_PROBE_LIMIT,
        usize::MAX,
        0xFFFF_8000_0000_0000,
    ] {
        let empty = UserSlice::<u32>::new(addr, 0)
            .unwrap()
            .capture(&space)
            .unwrap();
        assert!(empty.is_empty());
        assert!(
            UserSlice::<u8>::new(addr, 0)
                .unwrap()
                .is_zeroed(&space)
                .unwrap()
        );
        let s = UserSlice::<u8>::new(addr, 0)
            .unwrap()
            .capture_cstr(&space)
            .unwrap();
        assert!(s.is_empty() && !s.is_terminated());
        assert!(UserPtr::<()>::new(addr).capture(&space).is_ok());
        let mut w = UserWriter::user(addr, 0);
        w.write_bytes(&space, &[]).unwrap();
        assert_eq!(w.written(), 0);
    }
    assert_eq!(
        space.accesses(),
        0,
        "zero-length accesses never reach the backend"
    );
}

#[test]
fn kernel_mode_copies_without_probing() {
    let kernel = 0xFFFF_8000_0000_1000;
    let space = SimSpace::kernel();
    space.map(kernel, &pattern(8), Perm::READ).unwrap();
    space.map(0x100, &pattern(8), Perm::READ).unwrap();
    assert_eq!(space.mode(), Mode::Kernel);
    assert_eq!(
        &*UserSlice::<u8>::new(kernel, 8)
            .unwrap()
            .capture(&space)
            .unwrap(),
        &pattern(8)
    );
    assert!(UserPtr::<u8>::new(0x100).capture(&space).is_ok());
    // Unmapped memory still faults; the model cannot bugcheck.
    assert_eq!(
        UserPtr::<u8>::new(kernel + PAGE)
            .capture(&space)
            .unwrap_err(),
        CaptureError::AccessViolation
    );
    // The same addresses from user mode are rejected by the probe.
    space.set_mode(Mode::User);
    assert_eq!(
        UserPtr::<u8>::new(kernel).capture(&space).unwrap_err(),
        CaptureError::AccessViolation
    );
}

#[test]
fn unmapped_guard_and_write_only_memory_fault() {
    let space = SimSpace::new();
    space.map(USER, &pattern(PAGE), Perm::READ).unwrap();
    space.map_zeroed(USER + PAGE, PAGE, Perm::NONE).unwrap();
    let straddle = UserSlice::<u8>::new(USER + PAGE - 8, 16)
        .unwrap()
        .capture(&space);
    assert_eq!(straddle.unwrap_err(), CaptureError::AccessViolation);
    // Like `rep movsb`, the bytes before the fault were fetched (once).
    assert_eq!(space.fetches(USER + PAGE - 1), 1);
    assert_eq!(space.fetches(USER + PAGE), 0);
    let unmapped = UserPtr::<u32>::new(USER + 4 * PAGE).capture(&space);
    assert_eq!(unmapped.unwrap_err(), CaptureError::AccessViolation);
}

// ----------------------------------------------------------- in-place capture

/// What a capture gave, as bytes, for comparing the two forms.
fn by_value<T: FromBytes + IntoBytes + Immutable>(
    space: &SimSpace,
    addr: usize,
) -> Result<Vec<u8>, CaptureError> {
    Ok(UserPtr::<T>::new(addr).capture(space)?.as_bytes().to_vec())
}

fn in_place<T: FromBytes + IntoBytes + Immutable>(
    space: &SimSpace,
    addr: usize,
    slot: &mut CaptureSlot<T>,
) -> Result<Vec<u8>, CaptureError> {
    Ok(UserPtr::<T>::new(addr)
        .capture_into(space, slot)?
        .as_bytes()
        .to_vec())
}

#[test]
fn capture_into_gives_what_capture_gives_for_every_probe_outcome() {
    let space = SimSpace::new();
    space.map(USER, &pattern(PAGE), Perm::READ).unwrap();
    space
        .map(DEFAULT_PROBE_LIMIT - PAGE, &pattern(2 * PAGE), Perm::READ)
        .unwrap();
    let mut slot = CaptureSlot::<[u64; 3]>::new();
    let cases = [
        (0, CaptureError::AccessViolation),
        (0xFFF8, CaptureError::AccessViolation),
        (USER + 4, CaptureError::Misaligned),
        (USER + PAGE - 16, CaptureError::AccessViolation), // runs off the region
        (DEFAULT_PROBE_LIMIT - 16, CaptureError::AccessViolation), // past the limit
        (usize::MAX - 7, CaptureError::AccessViolation),   // wraps
    ];
    for (addr, error) in cases {
        space.reset_counters();
        assert_eq!(by_value::<[u64; 3]>(&space, addr), Err(error), "{addr:#x}");
        let fetched = space.fetched_bytes();
        space.reset_counters();
        assert_eq!(in_place(&space, addr, &mut slot), Err(error), "{addr:#x}");
        assert_eq!(space.fetched_bytes(), fetched, "{addr:#x}");
    }
    for addr in [USER, USER + 8, USER + PAGE - 24, DEFAULT_PROBE_LIMIT - 24] {
        let expected = space.peek(addr, 24).unwrap();
        space.reset_counters();
        assert_eq!(by_value::<[u64; 3]>(&space, addr).unwrap(), expected);
        space.reset_counters();
        assert_eq!(in_place(&space, addr, &mut slot).unwrap(), expected);
        assert_eq!(space.max_fetches(), 1);
        assert_eq!(space.fetched_bytes(), 24);
    }
    // A zero-sized type touches nothing, at any address.
    space.reset_counters();
    let mut unit = CaptureSlot::<()>::new();
    assert!(
        UserPtr::<()>::new(0)
            .capture_into(&space, &mut unit)
            .is_ok()
    );
    assert_eq!(space.accesses(), 0);
}

#[test]
fn a_reused_slot_holds_each_new_capture_whole() {
    let space = space_with(USER, &pattern(PAGE), Perm::READ);
    let mut slot = CaptureSlot::<[u32; 8]>::new();
    for addr in [USER + 64, USER, USER + 1024, USER + 64] {
        let captured = UserPtr::<[u32; 8]>::new(addr)
            .capture_into(&space, &mut slot)
            .unwrap();
        assert_eq!(captured.as_bytes(), &pattern(PAGE)[addr - USER..][..32]);
    }
    // Four captures of 32 bytes; the two of USER + 64 are separate
    // `UserPtr`s, so those bytes were fetched twice, visibly.
    assert_eq!(space.fetched_bytes(), 128);
    assert_eq!(space.fetches(USER + 64), 2);
    assert_eq!(space.fetches(USER), 1);
}

#[test]
fn a_failed_capture_into_hands_out_nothing_and_the_slot_shows_nothing() {
    let space = SimSpace::new();
    space.map(USER, &[0xAB; 16], Perm::READ).unwrap();
    space.map_zeroed(USER + 16, PAGE, Perm::NONE).unwrap();
    space.map(USER + 0x1_0000, &[0xCD; 32], Perm::READ).unwrap();
    let mut slot = CaptureSlot::<[u8; 32]>::new();
    let good = **UserPtr::<[u8; 32]>::new(USER + 0x1_0000)
        .capture_into(&space, &mut slot)
        .unwrap();
    assert_eq!(good, [0xCD; 32]);
    // 16 readable bytes, then a fault: the slot now holds half a copy...
    assert_eq!(
        UserPtr::<[u8; 32]>::new(USER)
            .capture_into(&space, &mut slot)
            .unwrap_err(),
        CaptureError::AccessViolation
    );
    assert_eq!(space.fetches(USER + 15), 1);
    // ...which nothing can read: no accessor, and `Debug` shows no bytes
    // (a derived `Debug` would print them; this catches it).
    assert_eq!(format!("{slot:?}"), "CaptureSlot { .. }");
    // The next successful capture overwrites every byte.
    let again = UserPtr::<[u8; 32]>::new(USER + 0x1_0000)
        .capture_into(&space, &mut slot)
        .unwrap();
    assert_eq!(**again, [0xCD; 32]);
}

#[test]
fn capture_into_keeps_its_snapshot_when_the_user_rewrites_the_bytes() {
    let space = space_with(USER, &42u64.to_le_bytes(), Perm::READ_WRITE);
    space.on_fetch(USER, |memory| {
        assert!(memory.poke(USER, &u64::MAX.to_le_bytes()));
    });
    let mut slot = CaptureSlot::<u64>::new();
    let value = UserPtr::<u64>::new(USER)
        .capture_into(&space, &mut slot)
        .unwrap();
    assert_eq!(space.peek(USER, 8).unwrap(), u64::MAX.to_le_bytes());
    assert_eq!(**value, 42);
}

// -------------------------------------------------------------- single fetch

/// The classic driver shape, written against the sim: validate a length,
/// then fetch it again to use it. Kept here to prove the counters catch it.
fn double_fetching_reader(space: &SimSpace, addr: usize) -> Result<u32, CaptureError> {
    let mut first = [0u8; 4];
    space.read(addr, &mut first, 4)?;
    let mut again = [0u8; 4];
    space.read(addr, &mut again, 4)?;
    Ok(u32::from_le_bytes(again))
}

#[test]
fn every_capture_fetches_every_byte_exactly_once() {
    let space = space_with(USER, &pattern(PAGE), Perm::READ_WRITE);
    let _ = UserPtr::<[u64; 4]>::new(USER).capture(&space).unwrap();
    let _ = UserSlice::<u32>::new(USER + 32, 100)
        .unwrap()
        .capture(&space)
        .unwrap();
    let _ = UserPtr::<u16>::new(USER + 432).capture(&space).unwrap();
    assert_eq!(space.max_fetches(), 1);
    assert_eq!(space.fetched_bytes(), 32 + 400 + 2);
    for addr in USER..USER + 434 {
        assert_eq!(space.fetches(addr), 1, "byte {addr:#x}");
    }
    assert_eq!(space.fetches(USER + 434), 0);
}

#[test]
fn the_fetch_counters_catch_a_double_fetching_reader() {
    let space = space_with(USER, &pattern(16), Perm::READ);
    double_fetching_reader(&space, USER).unwrap();
    assert_eq!(space.max_fetches(), 2);
    assert_eq!(space.first_double_fetch(), Some(USER));
    space.reset_counters();
    assert_eq!(space.max_fetches(), 0);
    let _ = UserPtr::<u32>::new(USER).capture(&space).unwrap();
    assert_eq!(space.max_fetches(), 1);
    assert_eq!(space.first_double_fetch(), None);
}

// ------------------------------------------------------------ race immunity

#[derive(Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Message {
    count: u32,
    flags: u32,
    items: [u32],
}

impl CountedLayout for Message {
    fn claimed_count(&self) -> u64 {
        u64::from(self.count)
    }
}

fn message_bytes(count: u32, items: &[u32]) -> Vec<u8> {
    let mut bytes = count.to_le_bytes().to_vec();
    bytes.extend_from_slice(&0u32.to_le_bytes());
    for item in items {
        bytes.extend_from_slice(&item.to_le_bytes());
    }
    bytes
}

#[test]
fn a_hook_that_rewrites_bytes_right_after_the_fetch_does_not_change_the_capture() {
    let space = space_with(USER, &42u64.to_le_bytes(), Perm::READ_WRITE);
    space.on_fetch(USER, |memory| {
        assert!(memory.poke(USER, &u64::MAX.to_le_bytes()));
    });
    let value = UserPtr::<u64>::new(USER).capture(&space).unwrap();
    // The attacker did win the race in memory...
    assert_eq!(space.peek(USER, 8).unwrap(), u64::MAX.to_le_bytes());
    // ...and the kernel copy is the snapshot.
    assert_eq!(*value, 42);
    assert_eq!(value.into_inner(), 42);
}

#[test]
fn a_flipping_count_cannot_make_a_captured_message_parse_past_its_bytes() {
    let bytes = message_bytes(3, &[10, 20, 30]);
    let space = space_with(USER, &bytes, Perm::READ_WRITE);
    let mut flips = 0u32;
    space.on_fetch(USER, move |memory| {
        flips += 1;
        let count: u32 = if flips % 2 == 1 { u32::MAX } else { 3 };
        memory.poke(USER, &count.to_le_bytes());
    });
    let captured = UserSlice::<u8>::new(USER, bytes.len())
        .unwrap()
        .capture(&space)
        .unwrap();
    let message = captured.parse::<Message>().unwrap();
    assert_eq!(message.count, 3);
    assert_eq!(&message.items, &[10, 20, 30]);
    // The user memory now says u32::MAX; a second capture sees it and the
    // parse rejects it against the captured length.
    let again = UserSlice::<u8>::new(USER, bytes.len())
        .unwrap()
        .capture(&space)
        .unwrap();
    assert_eq!(again.parse::<Message>().unwrap_err(), CaptureError::Invalid);
}

#[test]
fn the_same_race_breaks_a_reader_that_fetches_the_count_twice() {
    // The naive shape: read the count to validate it, read it again to use it.
    let bytes = message_bytes(3, &[10, 20, 30]);
    let space = space_with(USER, &bytes, Perm::READ_WRITE);
    space.after_access(1, |memory| {
        memory.poke(USER, &1000u32.to_le_bytes());
    });
    let mut count = [0u8; 4];
    space.read(USER, &mut count, 4).unwrap();
    let validated = u32::from_le_bytes(count);
    assert!(validated <= 3, "validation passes on the first fetch");
    space.read(USER, &mut count, 4).unwrap();
    let used = u32::from_le_bytes(count);
    assert_eq!(used, 1000, "the second fetch sees the attacker's value");
    assert!(used > validated);
    assert_eq!(space.max_fetches(), 2);
}

#[test]
fn parse_checks_counts_against_captured_bytes() {
    let exact =
        CapturedBytes::from_system_buffer(&message_bytes(2, &[1, 2]), &SimSpace::new()).unwrap();
    assert_eq!(&exact.parse::<Message>().unwrap().items, &[1, 2]);
    let extra =
        CapturedBytes::from_system_buffer(&message_bytes(1, &[1, 2]), &SimSpace::new()).unwrap();
    assert_eq!(&extra.parse::<Message>().unwrap().items, &[1]);
    let beyond =
        CapturedBytes::from_system_buffer(&message_bytes(3, &[1, 2]), &SimSpace::new()).unwrap();
    assert_eq!(
        beyond.parse::<Message>().unwrap_err(),
        CaptureError::Invalid
    );
    let huge = CapturedBytes::from_system_buffer(&message_bytes(u32::MAX, &[1]), &SimSpace::new())
        .unwrap();
    assert_eq!(huge.parse::<Message>().unwrap_err(), CaptureError::Invalid);
    let short = CapturedBytes::from_system_buffer(&[1, 0, 0], &SimSpace::new()).unwrap();
    assert_eq!(short.parse::<Message>().unwrap_err(), CaptureError::Invalid);
    assert_eq!(short.read::<u32>().unwrap_err(), CaptureError::Invalid);
    assert_eq!(*exact.read::<u32>().unwrap(), 2);
}

#[test]
fn into_ptr_narrows_a_byte_range_to_its_leading_struct() {
    let space = space_with(USER, &pattern(64), Perm::READ);
    let short = UserSlice::<u8>::new(USER, 7).unwrap().into_ptr::<u64>();
    assert_eq!(short.unwrap_err(), CaptureError::Invalid);
    let head = UserSlice::<u8>::new(USER, 64)
        .unwrap()
        .into_ptr::<u64>()
        .unwrap();
    assert_eq!(head.capture(&space).unwrap().to_le_bytes(), pattern(8)[..]);
    assert_eq!(space.fetched_bytes(), 8, "only the struct is fetched");
}

// ------------------------------------------------------------ capture_sized

/// A versioned struct: v1 is 8 bytes, v2 (this driver's) 16.
#[derive(Debug, PartialEq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ConfigV2 {
    flags: u32,
    level: u32,
    quota: u64,
}

impl Extensible for ConfigV2 {
    const MIN_SIZE: usize = 8;
    const MAX_SIZE: usize = 64;
}

fn config_bytes(len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x11u32.to_le_bytes());
    v.extend_from_slice(&0x22u32.to_le_bytes());
    v.extend_from_slice(&0x33u64.to_le_bytes());
    v.resize(len.max(16), 0);
    v.truncate(len);
    v
}

#[test]
fn capture_sized_zero_extends_a_shorter_version() {
    // The user's v1 struct is followed by non-zero memory, so a capture that
    // read past the user's size, or left the new fields uninitialised, could
    // not produce zeros there.
    let mut memory = config_bytes(8);
    memory.extend_from_slice(&[0xEE; 24]);
    let space = space_with(USER, &memory, Perm::READ);
    let config = UserPtr::<ConfigV2>::new(USER)
        .capture_sized(&space, 8)
        .unwrap();
    assert_eq!(
        *config,
        ConfigV2 {
            flags: 0x11,
            level: 0x22,
            quota: 0
        }
    );
    assert_eq!(space.fetched_bytes(), 8);
    assert_eq!(space.fetches(USER + 8), 0);
}

#[test]
fn capture_sized_equal_and_longer_with_a_zero_tail() {
    let space = space_with(USER, &config_bytes(64), Perm::READ);
    let equal = UserPtr::<ConfigV2>::new(USER)
        .capture_sized(&space, 16)
        .unwrap();
    assert_eq!(
        *equal,
        ConfigV2 {
            flags: 0x11,
            level: 0x22,
            quota: 0x33
        }
    );
    space.reset_counters();
    let longer = UserPtr::<ConfigV2>::new(USER)
        .capture_sized(&space, 64)
        .unwrap();
    assert_eq!(
        *longer,
        ConfigV2 {
            flags: 0x11,
            level: 0x22,
            quota: 0x33
        }
    );
    assert_eq!(space.max_fetches(), 1);
    assert_eq!(space.fetched_bytes(), 64);
}

#[test]
fn capture_sized_rejects_a_non_zero_byte_anywhere_in_the_tail() {
    for at in 16..40 {
        let mut memory = config_bytes(40);
        memory[at] = 1;
        let space = space_with(USER, &memory, Perm::READ);
        assert_eq!(
            UserPtr::<ConfigV2>::new(USER)
                .capture_sized(&space, 40)
                .unwrap_err(),
            CaptureError::NonZeroTail,
            "non-zero byte at offset {at}"
        );
        assert_eq!(space.max_fetches(), 1);
    }
}

#[test]
fn capture_sized_enforces_the_floor_and_the_cap() {
    let space = space_with(USER, &config_bytes(128), Perm::READ);
    for size in [0, 1, 7] {
        assert_eq!(
            UserPtr::<ConfigV2>::new(USER)
                .capture_sized(&space, size)
                .unwrap_err(),
            CaptureError::Invalid
        );
    }
    assert!(
        UserPtr::<ConfigV2>::new(USER)
            .capture_sized(&space, 64)
            .is_ok()
    );
    assert_eq!(
        UserPtr::<ConfigV2>::new(USER)
            .capture_sized(&space, 65)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    assert_eq!(
        UserPtr::<ConfigV2>::new(USER)
            .capture_sized(&space, usize::MAX)
            .unwrap_err(),
        CaptureError::TooLarge
    );
}

#[test]
fn capture_sized_reports_a_fault_inside_the_tail() {
    let space = SimSpace::new();
    space.map_zeroed(USER, 32, Perm::READ).unwrap();
    assert_eq!(
        UserPtr::<ConfigV2>::new(USER)
            .capture_sized(&space, 48)
            .unwrap_err(),
        CaptureError::AccessViolation
    );
    space.reset_counters();
    space.fail_access(Some(2)); // the prefix is access 1, the first tail chunk 2
    assert_eq!(
        UserPtr::<ConfigV2>::new(USER)
            .capture_sized(&space, 24)
            .unwrap_err(),
        CaptureError::AccessViolation
    );
}

#[test]
fn read_sized_applies_the_same_rules_to_a_kernel_copy() {
    let read = |bytes: &[u8]| {
        CapturedBytes::from_system_buffer(bytes, &SimSpace::new())
            .unwrap()
            .read_sized::<ConfigV2>()
    };
    assert_eq!(read(&config_bytes(8)).unwrap().quota, 0);
    assert_eq!(read(&config_bytes(16)).unwrap().quota, 0x33);
    assert_eq!(read(&config_bytes(64)).unwrap().quota, 0x33);
    let mut tail = config_bytes(32);
    tail[31] = 9;
    assert_eq!(read(&tail).unwrap_err(), CaptureError::NonZeroTail);
    assert_eq!(read(&config_bytes(4)).unwrap_err(), CaptureError::Invalid);
    assert_eq!(read(&config_bytes(65)).unwrap_err(), CaptureError::TooLarge);
}

// ------------------------------------------------------------ UNICODE_STRING

fn wire(length: u16, maximum_length: u16, buffer: u64) -> WireUnicodeString {
    WireUnicodeString {
        length,
        maximum_length,
        reserved: 0xDEAD_BEEF,
        buffer,
    }
}

#[test]
fn captured_unicode_takes_exactly_length_bytes_once() {
    let text: Vec<u8> = "usercap!"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let space = space_with(USER, &text, Perm::READ);
    let name = CapturedUnicode::capture(&wire(10, 16, USER as u64), &space, 64).unwrap();
    assert_eq!(String::from_utf16(name.as_u16()).unwrap(), "userc");
    assert_eq!(name.byte_len(), 10);
    assert_eq!(space.fetched_bytes(), 10);
    assert_eq!(space.max_fetches(), 1);
}

#[test]
fn captured_unicode_rejects_malformed_lengths_before_touching_memory() {
    let space = space_with(USER, &[0x41; 64], Perm::READ);
    let cases = [
        (wire(3, 8, USER as u64), CaptureError::Invalid), // odd Length
        (wire(10, 8, USER as u64), CaptureError::Invalid), // Length > MaximumLength
        (wire(40, 40, USER as u64), CaptureError::TooLarge), // over the cap
        (
            wire(2, 2, 0xFFFF_8000_0000_0000),
            CaptureError::AccessViolation,
        ), // kernel Buffer
        (wire(2, 2, USER as u64 + 1), CaptureError::Misaligned),
    ];
    for (w, expected) in cases {
        assert_eq!(
            CapturedUnicode::capture(&w, &space, 32).unwrap_err(),
            expected,
            "{w:?}"
        );
    }
    assert_eq!(space.fetched_bytes(), 0);
    let empty = CapturedUnicode::capture(&wire(0, 0, 0), &space, 32).unwrap();
    assert!(empty.is_empty());
    assert_eq!(space.accesses(), 0);
}

// ------------------------------------------------------------ strings

#[test]
fn capture_cstr_stops_at_the_nul() {
    let space = space_with(USER, b"hello\0world\0", Perm::READ);
    let s = UserSlice::<u8>::new(USER, 12)
        .unwrap()
        .capture_cstr(&space)
        .unwrap();
    assert_eq!(&*s, b"hello");
    assert!(s.is_terminated());
}

#[test]
fn capture_cstr_without_a_nul_within_the_bound_returns_the_bound() {
    let space = space_with(USER, &[b'a'; 200], Perm::READ);
    let s = UserSlice::<u8>::new(USER, 150)
        .unwrap()
        .capture_cstr(&space)
        .unwrap();
    assert_eq!(s.len(), 150);
    assert!(!s.is_terminated());
    assert_eq!(space.fetched_bytes(), 150);
    assert_eq!(space.max_fetches(), 1);
}

#[test]
fn capture_cstr_faults_before_the_nul() {
    // 70 non-NUL bytes, then unmapped memory: the chunk that would hold a
    // NUL faults.
    let space = space_with(USER, &[b'a'; 70], Perm::READ);
    let s = UserSlice::<u8>::new(USER, 100)
        .unwrap()
        .capture_cstr(&space);
    assert_eq!(s.unwrap_err(), CaptureError::AccessViolation);
}

#[test]
fn capture_cstr_does_not_touch_chunks_after_the_nul() {
    // The NUL is in the first 64-byte chunk and memory after that chunk is
    // unmapped: a string read may not fault there.
    let mut bytes = b"short\0".to_vec();
    bytes.resize(64, b'x');
    let space = space_with(USER, &bytes, Perm::READ);
    let s = UserSlice::<u8>::new(USER, 4096)
        .unwrap()
        .capture_cstr(&space)
        .unwrap();
    assert_eq!(&*s, b"short");
    assert!(s.is_terminated());
}

// ------------------------------------------------------------ is_zeroed

#[test]
fn is_zeroed_across_a_region_boundary() {
    let space = SimSpace::new();
    space.map_zeroed(USER, PAGE, Perm::READ).unwrap();
    space
        .map_zeroed(USER + PAGE, PAGE, Perm::READ_WRITE)
        .unwrap();
    let straddle = || UserSlice::<u8>::new(USER + PAGE - 100, 200).unwrap();
    assert!(straddle().is_zeroed(&space).unwrap());
    space.poke(USER + PAGE + 99, &[1]);
    assert!(!straddle().is_zeroed(&space).unwrap());
    // One past the last mapped byte faults.
    let past = UserSlice::<u8>::new(USER + 2 * PAGE - 10, 11).unwrap();
    assert_eq!(
        past.is_zeroed(&space).unwrap_err(),
        CaptureError::AccessViolation
    );
}

#[test]
fn is_zeroed_fetches_each_byte_at_most_once_and_stops_early() {
    let space = SimSpace::new();
    space.map_zeroed(USER, PAGE, Perm::READ).unwrap();
    assert!(
        UserSlice::<u8>::new(USER + 3, 1000)
            .unwrap()
            .is_zeroed(&space)
            .unwrap()
    );
    assert_eq!(space.max_fetches(), 1);
    assert_eq!(space.fetched_bytes(), 1000);
    space.reset_counters();
    space.poke(USER + 10, &[7]);
    assert!(
        !UserSlice::<u8>::new(USER, 1000)
            .unwrap()
            .is_zeroed(&space)
            .unwrap()
    );
    assert!(
        space.fetched_bytes() <= 64,
        "stops at the first non-zero chunk"
    );
}

// ------------------------------------------------------------ UserWriter

#[derive(IntoBytes, Immutable)]
#[repr(C)]
struct Out {
    a: u32,
    b: u32,
}

#[test]
fn user_writer_counts_what_it_wrote() {
    let space = space_with(USER, &[0xAA; 32], Perm::READ_WRITE);
    let mut w = UserWriter::user(USER, 20);
    w.write(&space, &Out { a: 1, b: 2 }).unwrap();
    w.write(&space, &3u32).unwrap();
    w.write_bytes(&space, &[9, 9]).unwrap();
    assert_eq!(w.written(), 14);
    assert_eq!(w.remaining(), 6);
    let fits = w.write(&space, &Out { a: 5, b: 6 });
    assert_eq!(fits.unwrap_err(), CaptureError::BufferTooSmall);
    assert_eq!(w.finish(), 14);
    let memory = space.peek(USER, 32).unwrap();
    assert_eq!(&memory[..14], &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 9, 9]);
    assert!(
        memory[14..].iter().all(|&b| b == 0xAA),
        "nothing past what was written"
    );
}

#[test]
fn user_writer_buffer_too_small_writes_nothing() {
    let space = space_with(USER, &[0xAA; 8], Perm::READ_WRITE);
    let mut w = UserWriter::user(USER, 7);
    assert_eq!(
        w.write(&space, &0u64).unwrap_err(),
        CaptureError::BufferTooSmall
    );
    assert_eq!(w.written(), 0);
    assert_eq!(space.accesses(), 0);
    assert_eq!(space.peek(USER, 8).unwrap(), [0xAA; 8]);
}

#[test]
fn user_writer_to_read_only_or_kernel_memory_fails_without_counting() {
    let space = space_with(USER, &[0; 8], Perm::READ);
    let mut w = UserWriter::user(USER, 8);
    assert_eq!(
        w.write(&space, &1u32).unwrap_err(),
        CaptureError::AccessViolation
    );
    assert_eq!(w.written(), 0);
    let mut k = UserWriter::user(0xFFFF_8000_0000_0000, 8);
    assert_eq!(
        k.write(&space, &1u32).unwrap_err(),
        CaptureError::AccessViolation
    );
    let mut odd = UserWriter::user(USER + 1, 7);
    assert_eq!(
        odd.write(&space, &1u32).unwrap_err(),
        CaptureError::Misaligned
    );
}

#[test]
fn user_writer_over_a_system_buffer() {
    let space = SimSpace::new();
    let mut system_buffer = [0xCCu8; 12];
    let mut w = UserWriter::system_buffer(&mut system_buffer[..10]);
    w.write(&space, &Out { a: 7, b: 8 }).unwrap();
    assert_eq!(
        w.write(&space, &0u32).unwrap_err(),
        CaptureError::BufferTooSmall
    );
    assert_eq!(w.finish(), 8);
    assert_eq!(system_buffer[..8], [7, 0, 0, 0, 8, 0, 0, 0]);
    assert_eq!(system_buffer[8..], [0xCC; 4]);
}

// ------------------------------------------------------------ limits

#[test]
fn too_large_at_cap_plus_one() {
    let limits = Limits {
        max_capture: 64,
        max_request: 1000,
    };
    let space = SimSpace::new().with_limits(limits);
    space.map_zeroed(USER, 256, Perm::READ).unwrap();
    assert_eq!(
        UserSlice::<u8>::new(USER, 64)
            .unwrap()
            .capture(&space)
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        UserSlice::<u8>::new(USER, 65)
            .unwrap()
            .capture(&space)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    assert_eq!(
        UserSlice::<u32>::new(USER, 17)
            .unwrap()
            .capture(&space)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    assert_eq!(
        UserSlice::<u8>::new(USER, 65)
            .unwrap()
            .capture_cstr(&space)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    assert_eq!(
        UserSlice::<u8>::new(USER, 65)
            .unwrap()
            .is_zeroed(&space)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    assert_eq!(space.fetched_bytes(), 64, "rejected captures fetch nothing");
}

#[test]
fn overflow_when_the_byte_length_overflows() {
    assert_eq!(
        UserSlice::<u32>::new(USER, usize::MAX / 4 + 1).unwrap_err(),
        CaptureError::Overflow
    );
    assert_eq!(
        UserSlice::<u64>::new(USER, usize::MAX).unwrap_err(),
        CaptureError::Overflow
    );
    assert!(UserSlice::<u32>::new(USER, usize::MAX / 4).is_ok());
    assert!(UserSlice::<u8>::new(USER, usize::MAX).is_ok());
}

#[test]
fn the_request_budget_bounds_all_captures_of_a_request() {
    let space = SimSpace::new().with_limits(Limits {
        max_capture: 100,
        max_request: 250,
    });
    space.map_zeroed(USER, PAGE, Perm::READ).unwrap();
    let request = Budgeted::new(&space);
    for _ in 0..2 {
        UserSlice::<u8>::new(USER, 100)
            .unwrap()
            .capture(&request)
            .unwrap();
    }
    assert_eq!(request.used(), 200);
    assert_eq!(
        UserSlice::<u8>::new(USER, 51)
            .unwrap()
            .capture(&request)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    assert_eq!(request.used(), 200, "a refused charge spends nothing");
    UserSlice::<u8>::new(USER, 50)
        .unwrap()
        .capture(&request)
        .unwrap();
    assert_eq!(
        UserSlice::<u8>::new(USER, 1)
            .unwrap()
            .capture(&request)
            .unwrap_err(),
        CaptureError::TooLarge
    );
    // A new request starts with a full budget.
    let next = Budgeted::new(&space);
    assert!(
        UserSlice::<u8>::new(USER, 100)
            .unwrap()
            .capture(&next)
            .is_ok()
    );
}

// ------------------------------------------------------------ fault injection

#[test]
fn an_injected_fault_fails_exactly_the_nth_access_and_fetches_nothing() {
    let space = space_with(USER, &pattern(64), Perm::READ);
    space.fail_access(Some(2));
    assert!(UserPtr::<u32>::new(USER).capture(&space).is_ok());
    assert_eq!(
        UserPtr::<u32>::new(USER + 4).capture(&space).unwrap_err(),
        CaptureError::AccessViolation
    );
    assert!(UserPtr::<u32>::new(USER + 8).capture(&space).is_ok());
    assert_eq!(space.fetches(USER + 4), 0);
    assert_eq!(space.accesses(), 3);
}

// ------------------------------------------------------------ error mapping

#[test]
fn every_error_maps_to_its_documented_ntstatus_and_errno() {
    let table = [
        (
            CaptureError::AccessViolation,
            0xC000_0005,
            errno::EFAULT,
            "STATUS_ACCESS_VIOLATION",
        ),
        (
            CaptureError::Misaligned,
            0x8000_0002,
            errno::EFAULT,
            "STATUS_DATATYPE_MISALIGNMENT",
        ),
        (
            CaptureError::InPageError,
            0xC000_0006,
            errno::EFAULT,
            "STATUS_IN_PAGE_ERROR",
        ),
        (
            CaptureError::TooLarge,
            0xC000_0206,
            errno::E2BIG,
            "STATUS_INVALID_BUFFER_SIZE",
        ),
        (
            CaptureError::Overflow,
            0xC000_0095,
            errno::EOVERFLOW,
            "STATUS_INTEGER_OVERFLOW",
        ),
        (
            CaptureError::NoMemory,
            0xC000_009A,
            errno::ENOMEM,
            "STATUS_INSUFFICIENT_RESOURCES",
        ),
        (
            CaptureError::NonZeroTail,
            0xC000_00BB,
            errno::E2BIG,
            "STATUS_NOT_SUPPORTED",
        ),
        (
            CaptureError::Invalid,
            0xC000_000D,
            errno::EINVAL,
            "STATUS_INVALID_PARAMETER",
        ),
        (
            CaptureError::BufferTooSmall,
            0xC000_0023,
            errno::ERANGE,
            "STATUS_BUFFER_TOO_SMALL",
        ),
    ];
    for (error, status, errno, name) in table {
        let nt = error.to_ntstatus();
        assert_eq!(nt.as_u32(), status, "{error:?}");
        assert_eq!(nt.name(), Some(name));
        assert!(!nt.is_success());
        assert_eq!(error.to_errno(), errno, "{error:?}");
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(
        (errno::EFAULT, errno::E2BIG, errno::EINVAL, errno::ENOMEM),
        (14, 7, 22, 12)
    );
    assert_eq!((errno::ERANGE, errno::EOVERFLOW), (34, 75));
    assert!(NtStatus::STATUS_SUCCESS.is_success());
    assert_eq!(NtStatus(0x1234).name(), None);
    assert_eq!(
        NtStatus::STATUS_ACCESS_VIOLATION.to_string(),
        "STATUS_ACCESS_VIOLATION (0xC0000005)"
    );
    let names: std::collections::HashSet<_> = NtStatus::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names.len(),
        NtStatus::ALL.len(),
        "every status has its own name"
    );
}

/// Every Windows backend maps a failed access's status through one table.
#[test]
fn every_fault_status_maps_through_one_table() {
    for (status, error) in [
        (
            NtStatus::STATUS_ACCESS_VIOLATION,
            CaptureError::AccessViolation,
        ),
        (
            NtStatus::STATUS_GUARD_PAGE_VIOLATION,
            CaptureError::AccessViolation,
        ),
        (NtStatus::STATUS_IN_PAGE_ERROR, CaptureError::InPageError),
        (
            NtStatus::STATUS_DATATYPE_MISALIGNMENT,
            CaptureError::Misaligned,
        ),
        (
            NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            CaptureError::NoMemory,
        ),
        (NtStatus::STATUS_NO_MEMORY, CaptureError::NoMemory),
        (NtStatus::STATUS_QUOTA_EXCEEDED, CaptureError::NoMemory),
        (NtStatus::STATUS_WORKING_SET_QUOTA, CaptureError::NoMemory),
        (
            NtStatus::STATUS_INVALID_DEVICE_REQUEST,
            CaptureError::AccessViolation,
        ),
        (
            NtStatus(0xC000_00E8_u32.cast_signed()),
            CaptureError::AccessViolation,
        ),
    ] {
        assert_eq!(CaptureError::from_fault(status), error, "{status}");
    }
    // The statuses only this table reads are not ones the device completes
    // with.
    for status in [
        NtStatus::STATUS_GUARD_PAGE_VIOLATION,
        NtStatus::STATUS_NO_MEMORY,
        NtStatus::STATUS_QUOTA_EXCEEDED,
        NtStatus::STATUS_WORKING_SET_QUOTA,
    ] {
        assert!(!NtStatus::ALL.contains(&status), "{status}");
        assert_eq!(status.name(), None);
    }
}
