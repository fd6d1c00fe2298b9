//! Addresses that can never be copied from: null, non-canonical, wrapping,
//! and pages beyond the end of a shared file (SIGBUS).
#![cfg(unix)]

/// Whether this target has the exception-table routines.
const GUARDED: bool = cfg!(all(target_arch = "x86_64", target_os = "linux"));

mod common;

use common::{GuardedPage, pattern};
use usercap::CaptureError;
use usercap_host::guarded::{self as g, Backend, page_size};
use usercap_host::{Prot, UserMemory};

const BACKENDS: [Backend; 2] = [Backend::Guarded, Backend::ProcessVmReadv];

#[test]
fn null_noncanonical_and_wrapping() {
    let bad = [
        0,                     // null page
        1 << 47,               // first non-canonical address with 4-level paging: #GP
        0x1234_5678_9abc_def0, // deep in the non-canonical hole: #GP
        0x8000_0000_0000_0000, // upper half: rejected by access_ok
        0xffff_ffff_ff60_0000, // vsyscall page: rejected by access_ok
        usize::MAX - 3,        // [MAX - 3, MAX + 13) wraps: rejected
    ];
    for addr in bad {
        for backend in BACKENDS {
            let mut dst = [0xAA_u8; 16];
            assert_eq!(
                g::copy_from_with(backend, &mut dst, addr),
                16,
                "{backend:?} read {addr:#x}"
            );
            assert_eq!(dst, [0xAA; 16], "destination touched");
            assert_eq!(
                g::copy_to_with(backend, addr, &[1; 16]),
                16,
                "{backend:?} write {addr:#x}"
            );
        }
        assert_eq!(g::clear(addr, 16), 16, "clear {addr:#x}");
        // Large enough for the 32-byte-chunk and rep paths.
        let mut big = vec![0; 5000];
        assert_eq!(g::copy_from(&mut big, addr), 5000);
        assert_eq!(g::copy_from(&mut big[..100], addr), 100);
    }
    assert_eq!(g::copy_from(&mut [], 0), 0, "empty copies touch nothing");
    assert_eq!(g::is_guarded(), GUARDED);
}

/// The same bad addresses through typed captures in kernel mode, which has
/// no probe, so only the copy's guard stands between the address and the
/// process: up to 256 bytes that is the inline loads (a `#GP` for the
/// non-canonical ones, a page fault for null), above it the routine. Every
/// size class of the inline loads is tried, in both capture forms. A fault
/// writes nothing into the slot.
#[test]
fn typed_captures_of_bad_addresses_in_kernel_mode_fail_cleanly() {
    fn both_forms<const N: usize>(space: &usercap_host::HostSpace, addr: usize) {
        let by_value = usercap::UserPtr::<[u8; N]>::new(addr).capture(space);
        assert_eq!(
            by_value.err(),
            Some(CaptureError::AccessViolation),
            "{N} at {addr:#x}"
        );
        let mut slot = usercap::CaptureSlot::<[u8; N]>::new();
        let in_place = usercap::UserPtr::<[u8; N]>::new(addr).capture_into(space, &mut slot);
        assert_eq!(
            in_place.err(),
            Some(CaptureError::AccessViolation),
            "{N} into at {addr:#x}"
        );
    }
    let bad = [0, 1 << 47, 0x1234_5678_9abc_def0, usize::MAX - 3];
    for backend in BACKENDS {
        let space = usercap_host::HostSpace::kernel().with_backend(backend);
        for addr in bad {
            both_forms::<1>(&space, addr);
            both_forms::<3>(&space, addr);
            both_forms::<4>(&space, addr);
            both_forms::<8>(&space, addr);
            both_forms::<16>(&space, addr);
            both_forms::<24>(&space, addr);
            both_forms::<100>(&space, addr);
            both_forms::<256>(&space, addr);
            both_forms::<257>(&space, addr);
        }
    }
}

/// A shared mapping of two pages over a memfd shrunk to one page: the second
/// page raises SIGBUS. Exactly the first page must be copied.
#[cfg(target_os = "linux")]
#[test]
fn sigbus_beyond_end_of_file() {
    let page = page_size();
    let mem = UserMemory::shared_file(2 * page).unwrap();
    // Shrinking the file makes the second page SIGBUS.
    mem.set_file_len(page).unwrap();
    let base = mem.addr();
    let content: Vec<u8> = (0..page).map(|i| u8::try_from(i % 253).unwrap()).collect();
    assert_eq!(g::copy_to(base, &content), 0);

    for backend in BACKENDS {
        let mut dst = vec![0xFF; 2 * page];
        assert_eq!(
            g::copy_from_with(backend, &mut dst, base),
            page,
            "{backend:?}"
        );
        assert!(dst[..page] == content[..], "{backend:?} data");
        assert!(dst[page..].iter().all(|&b| b == 0xFF));
        let mut small = [0xFF; 200];
        assert_eq!(
            g::copy_from_with(backend, &mut small, base + page - 100),
            100,
            "{backend:?}"
        );
        assert!(small[..100] == content[page - 100..], "{backend:?} data");
        assert_eq!(
            g::copy_to_with(backend, base + page - 100, &[7; 200]),
            100,
            "{backend:?}"
        );
        let mut back = [0; 100];
        assert_eq!(g::copy_from(&mut back, base + page - 100), 0);
        assert_eq!(back, [7; 100]);
        assert_eq!(g::copy_to(base + page - 100, &content[page - 100..]), 0);
    }
    assert_eq!(g::clear(base + page - 3000, 5000), 2000);
    // Growing the file back makes the page accessible again, and zero.
    mem.set_file_len(2 * page).unwrap();
    let mut second = vec![0xFF; page];
    mem.read_at(page, &mut second).unwrap();
    assert!(second.iter().all(|&b| b == 0));
    assert_eq!(g::is_guarded(), GUARDED);
}

/// Writes are refused, whole, anywhere but in a live `UserMemory`: the heap,
/// the stack, a static, a region that has been dropped, and a range that
/// runs off the end of a region. Nothing is written.
#[test]
fn writes_outside_user_memory_are_refused() {
    static RODATA: [u8; 64] = [0x33; 64];
    let mut heap = vec![0x11_u8; 64];
    let mut stack = [0x22_u8; 64];
    let targets = [
        heap.as_mut_ptr().addr(),
        stack.as_mut_ptr().addr(),
        RODATA.as_ptr().addr(),
    ];
    for addr in targets {
        for backend in BACKENDS {
            assert_eq!(g::copy_to_with(backend, addr, &[0xEE; 64]), 64, "{addr:#x}");
        }
        assert_eq!(g::clear(addr, 64), 64, "{addr:#x}");
    }
    assert!(heap.iter().all(|&b| b == 0x11));
    assert!(stack.iter().all(|&b| b == 0x22));
    assert!(RODATA.iter().all(|&b| b == 0x33));

    let page = page_size();
    let mem = UserMemory::new(page).unwrap();
    assert_eq!(g::copy_to(mem.addr() + page - 8, &[1; 8]), 0);
    // One byte past the end: refused whole, the in-region prefix untouched.
    assert_eq!(g::copy_to(mem.addr() + page - 8, &[2; 9]), 9);
    let mut back = [0; 8];
    mem.read_at(page - 8, &mut back).unwrap();
    assert_eq!(back, [1; 8]);
    let gone = mem.addr();
    drop(mem);
    assert_eq!(g::copy_to(gone, &[1; 8]), 8);
    assert_eq!(g::clear(gone, 8), 8);
}

/// `UserMemory`'s own accessors: bounds, guard pages, read-only pages.
#[test]
fn user_memory_accessors() {
    let page = page_size();
    let mem = UserMemory::new(page + 1).unwrap();
    assert_eq!(mem.len(), 2 * page, "rounded up to pages");
    assert!(!mem.is_empty());
    assert_eq!(mem.end(), mem.addr() + 2 * page);
    assert!(mem.contains(mem.addr(), 2 * page));
    assert!(!mem.contains(mem.addr(), 2 * page + 1));
    assert!(!mem.contains(mem.addr() - 1, 1));
    assert!(UserMemory::new(0).is_err());
    let mut buf = [0xAA_u8; 16];
    mem.read_at(0, &mut buf).unwrap();
    assert_eq!(buf, [0; 16], "fresh memory is zero");
    mem.fill(0x5A).unwrap();
    mem.read_at(2 * page - 16, &mut buf).unwrap();
    assert_eq!(buf, [0x5A; 16]);
    assert_eq!(
        mem.read_at(2 * page - 15, &mut buf),
        Err(CaptureError::Invalid)
    );
    assert_eq!(mem.write_at(usize::MAX, &buf), Err(CaptureError::Invalid));
    assert!(mem.protect(1, page, Prot::None).is_err(), "unaligned");
    assert!(
        mem.protect(page, 2 * page, Prot::None).is_err(),
        "out of bounds"
    );

    mem.protect(page, page, Prot::Read).unwrap();
    assert_eq!(mem.write_at(page, &[1]), Err(CaptureError::AccessViolation));
    mem.read_at(page, &mut buf).unwrap();
    assert_eq!(
        buf, [0x5A; 16],
        "read-only pages stay readable and unchanged"
    );
    // A write straddling into the read-only page writes the prefix only.
    assert_eq!(
        mem.write_at(page - 4, &[9; 8]),
        Err(CaptureError::AccessViolation)
    );
    mem.read_at(page - 4, &mut buf[..8]).unwrap();
    assert_eq!(&buf[..8], &[9, 9, 9, 9, 0x5A, 0x5A, 0x5A, 0x5A]);
    assert_eq!(mem.fill(0), Err(CaptureError::AccessViolation));

    mem.protect(page, page, Prot::None).unwrap();
    assert_eq!(
        mem.read_at(page, &mut buf),
        Err(CaptureError::AccessViolation)
    );
    mem.protect(page, page, Prot::ReadWrite).unwrap();
    mem.fill_at(page, page, 3).unwrap();
    mem.read_at(page, &mut buf).unwrap();
    assert_eq!(buf, [3; 16]);
    assert_eq!(g::is_guarded(), GUARDED);
}

/// `copy_from_to_vec`: straight into spare capacity, growing by the copied
/// prefix, never past the capacity.
#[test]
fn copy_from_to_vec_grows_by_the_copied_prefix() {
    let gp = GuardedPage::new();
    let page = page_size();
    let data: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &data);
    for backend in BACKENDS {
        let mut out = Vec::with_capacity(300);
        out.extend_from_slice(b"head");
        assert_eq!(
            g::copy_from_to_vec(backend, &mut out, gp.addr() + 10, 100),
            0
        );
        assert_eq!(out.len(), 104);
        assert_eq!(&out[..4], b"head");
        assert!(out[4..] == data[10..110]);
        // Into the guard page: the prefix only.
        assert_eq!(
            g::copy_from_to_vec(backend, &mut out, gp.addr() + page - 50, 150),
            100
        );
        assert_eq!(out.len(), 154);
        assert!(out[104..] == data[page - 50..]);
        // More than the spare capacity: nothing read.
        let spare = out.capacity() - out.len();
        assert_eq!(
            g::copy_from_to_vec(backend, &mut out, gp.addr(), spare + 1),
            spare + 1
        );
        assert_eq!(out.len(), 154);
        assert_eq!(g::copy_from_to_vec(backend, &mut out, 0, 0), 0);
        assert_eq!(g::copy_from_to_vec(backend, &mut out, 0, 8), 8);
        assert_eq!(out.len(), 154);
    }
}
