//! The Linux facade, function by function, on real memory with guard pages:
//! each documented case, every `copy_struct_from_user` branch, and
//! `check_zeroed_user` over every `(start, end)` pair of 1 KiB windows.
#![cfg(unix)]

mod common;

use common::{GuardedPage, pattern};
use usercap::CaptureError;
use usercap_host::guarded::page_size;
use usercap_host::linux::{
    Errno, KMALLOC_MAX_SIZE, USER_LIMIT, access_ok, check_zeroed_user, clear_user, copy_from_user,
    copy_struct_from_user, copy_to_user, memdup_user, strncpy_from_user,
};
use usercap_host::{KernelBuffer, Prot, UserMemory};

const EFAULT: Errno = Errno::EFAULT;
const E2BIG: Errno = Errno::E2BIG;

#[test]
fn errno_values_names_and_conversion() {
    assert_eq!(
        [
            Errno::EFAULT.0,
            Errno::E2BIG.0,
            Errno::EINVAL.0,
            Errno::ENOMEM.0
        ],
        [14, 7, 22, 12]
    );
    assert_eq!(Errno::EFAULT.to_string(), "EFAULT (14)");
    assert_eq!(format!("{:?}", Errno::E2BIG), "E2BIG (7)");
    assert_eq!(Errno(99).to_string(), "errno 99");
    assert_eq!(Errno(99).name(), None);
    assert_eq!(Errno::from(CaptureError::AccessViolation), EFAULT);
    assert_eq!(Errno::from(CaptureError::Misaligned), EFAULT);
    assert_eq!(Errno::from(CaptureError::NonZeroTail), E2BIG);
    assert_eq!(Errno::from(CaptureError::TooLarge), E2BIG);
    assert_eq!(Errno::from(CaptureError::NoMemory), Errno::ENOMEM);
    assert_eq!(Errno::from(CaptureError::Invalid), Errno::EINVAL);
    assert_eq!(
        Errno::from(CaptureError::Overflow).name(),
        Some("EOVERFLOW")
    );
    assert_eq!(
        Errno::from(CaptureError::BufferTooSmall).name(),
        Some("ERANGE")
    );
}

#[test]
fn access_ok_is_linux_rule_plus_system_space() {
    let limit = USER_LIMIT;
    assert_eq!(limit, 0x7FFF_FFFF_0000);
    // size <= LIMIT && addr <= LIMIT - size.
    assert!(access_ok(limit - 8, 8));
    assert!(!access_ok(limit - 7, 8));
    assert!(access_ok(limit, 0), "size 0 passes for an in-range address");
    assert!(!access_ok(limit + 1, 0));
    assert!(access_ok(0, limit));
    assert!(!access_ok(1, limit));
    assert!(!access_ok(0, limit + 1));
    assert!(!access_ok(usize::MAX, 1));
    assert!(!access_ok(usize::MAX - 3, 8), "wraps");
    assert!(!access_ok(1 << 47, 8), "non-canonical");
    // Low addresses pass: Linux's access_ok checks only the top. (usercap's
    // probe rejects them; both end in EFAULT, see the copies below.)
    assert!(access_ok(0, 0));
    assert!(access_ok(0, 16));
    assert!(access_ok(0x1000, 16));
    let kb = KernelBuffer::new(32).unwrap();
    assert!(!access_ok(kb.addr(), 32));
    assert!(!access_ok(kb.addr() + 31, 1));
    assert!(!access_ok(kb.addr() - 4, 5));
    assert!(
        !access_ok(kb.addr() + 8, 0),
        "size 0 inside a kernel buffer"
    );
    // The whole of system space is kernel memory, not only live buffers.
    assert!(!access_ok(kb.addr() + 32, 4), "the buffer's guard");
    let (start, end) = usercap_host::guarded::system_space();
    assert!(access_ok(start - 4, 4) && access_ok(end, 4));
    assert!(!access_ok(start - 4, 5) && !access_ok(end - 1, 4));
    let gone = kb.addr();
    drop(kb);
    assert!(
        !access_ok(gone, 32),
        "a freed kernel buffer is still kernel memory"
    );
}

#[test]
fn copy_from_user_counts_and_zero_fills() {
    let gp = GuardedPage::new();
    let page = page_size();
    let data: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &data);
    let m = gp.addr();
    let mut dst = vec![0xAA; 256];
    assert_eq!(copy_from_user(&mut dst, m + 100), 0);
    assert_eq!(dst, data[100..356]);
    // Runs into the guard page: the copied prefix, then zeros.
    dst.fill(0xAA);
    assert_eq!(copy_from_user(&mut dst, m + page - 56), 200);
    assert_eq!(dst[..56], data[page - 56..]);
    assert!(dst[56..].iter().all(|&b| b == 0));
    // Starts in the guard page before it.
    dst.fill(0xAA);
    assert_eq!(copy_from_user(&mut dst, m - 1), 256);
    assert!(dst.iter().all(|&b| b == 0));
    // Fails access_ok or faults: everything zeroed, n returned.
    let kb = KernelBuffer::from_bytes(&[0x5A; 64]).unwrap();
    for bad in [
        0,
        0x1000,
        USER_LIMIT - 8,
        1 << 47,
        usize::MAX - 8,
        kb.addr(),
    ] {
        dst.fill(0xAA);
        assert_eq!(copy_from_user(&mut dst[..64], bad), 64, "{bad:#x}");
        assert!(dst[..64].iter().all(|&b| b == 0), "{bad:#x}");
        assert!(dst[64..].iter().all(|&b| b == 0xAA), "{bad:#x}");
    }
    assert_eq!(copy_from_user(&mut [], 0), 0);
    assert_eq!(copy_from_user(&mut [], usize::MAX), 0);
}

#[test]
fn copy_to_user_and_clear_user() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    gp.fill(0xAA);
    assert_eq!(copy_to_user(m + 8, &[1; 16]), 0);
    assert_eq!(
        copy_to_user(m + page - 10, &[2; 16]),
        6,
        "partial, up to the guard page"
    );
    assert_eq!(clear_user(m + 100, 50), 0);
    assert_eq!(clear_user(m + page - 4, 10), 6);
    let now = gp.read();
    assert_eq!(&now[8..24], &[1; 16]);
    assert_eq!(&now[page - 10..page - 4], &[2; 6]);
    assert_eq!(&now[page - 4..], &[0; 4]);
    assert!(now[100..150].iter().all(|&b| b == 0));
    assert_eq!(now[99], 0xAA);
    assert_eq!(now[150], 0xAA);
    // Not user memory, or not accessible: nothing written.
    let mut heap = vec![0x11_u8; 32];
    let kb = KernelBuffer::new(32).unwrap();
    for bad in [
        0,
        heap.as_mut_ptr().addr(),
        kb.addr(),
        USER_LIMIT - 8,
        1 << 47,
        m - 16,
    ] {
        assert_eq!(copy_to_user(bad, &[3; 32]), 32, "{bad:#x}");
        assert_eq!(clear_user(bad, 32), 32, "{bad:#x}");
    }
    assert!(heap.iter().all(|&b| b == 0x11));
    assert!(kb.as_slice().iter().all(|&b| b == 0));
    assert_eq!(copy_to_user(0, &[]), 0);
    assert_eq!(clear_user(0, 0), 0);
}

/// Expected `check_zeroed_user` result for `[s, e)` with one non-zero byte at
/// `nz` (if any) and unreadable memory from `fault` on.
fn expected_zeroed(s: usize, e: usize, nz: Option<usize>, fault: usize) -> Result<bool, Errno> {
    if s == e {
        return Ok(true);
    }
    if nz.is_some_and(|p| s <= p && p < e.min(fault)) {
        return Ok(false);
    }
    if e > fault { Err(EFAULT) } else { Ok(true) }
}

/// Every `(start, end)` pair of the window `[base, base + window)`, with
/// the only non-zero byte at `nz`, if any, and unreadable memory from
/// `fault` on.
fn sweep_window(mem: &UserMemory, base: usize, window: usize, fault: usize, nz: Option<usize>) {
    mem.fill_at(base - mem.addr(), window.min(fault - base), 0)
        .unwrap();
    if let Some(p) = nz {
        mem.write_at(p - mem.addr(), &[0x80]).unwrap();
    }
    let mut pairs = 0;
    for s in base..=base + window {
        for e in s..=base + window {
            assert_eq!(
                check_zeroed_user(s, e - s),
                expected_zeroed(s, e, nz, fault),
                "[{:+}, {:+}) non-zero at {:?}",
                s.wrapping_sub(base + 512).cast_signed(),
                e.wrapping_sub(base + 512).cast_signed(),
                nz.map(|p| p.wrapping_sub(base + 512).cast_signed())
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, (window + 1) * (window + 2) / 2);
}

/// A window straddling the boundary between two mapped pages, with the
/// non-zero byte at `at` bytes from the boundary (or none).
fn across_mapped_pages(at: Option<isize>) {
    let page = page_size();
    let mem = UserMemory::new(2 * page).unwrap();
    let boundary = mem.addr() + page;
    let nz = at.map(|d| boundary.wrapping_add_signed(d));
    sweep_window(&mem, boundary - 512, 1024, usize::MAX, nz);
}

/// A window of 512 mapped bytes and the first 64 of a PROT_NONE page:
/// EFAULT only for ranges that reach the guard page with no non-zero byte
/// before it. (Each fault costs microseconds, so the window reaches only 64
/// bytes into the guard page: chunks never cross a page, so deeper ends
/// change nothing.)
fn into_a_guard_page(at: Option<isize>) {
    let page = page_size();
    let mem = UserMemory::new(2 * page).unwrap();
    mem.protect(page, page, Prot::None).unwrap();
    let guard = mem.addr() + page;
    let nz = at.map(|d| guard.wrapping_add_signed(d));
    sweep_window(&mem, guard - 512, 512 + 64, guard, nz);
}

// One test per placement, so the harness spreads them over the cores.

#[test]
fn check_zeroed_user_across_mapped_pages_all_zero() {
    across_mapped_pages(None);
}

#[test]
fn check_zeroed_user_across_mapped_pages_non_zero_before_boundary() {
    across_mapped_pages(Some(-1));
}

#[test]
fn check_zeroed_user_across_mapped_pages_non_zero_after_boundary() {
    across_mapped_pages(Some(0));
}

#[test]
fn check_zeroed_user_into_guard_page_all_zero() {
    into_a_guard_page(None);
}

#[test]
fn check_zeroed_user_into_guard_page_non_zero_before_it() {
    into_a_guard_page(Some(-1));
}

#[test]
fn check_zeroed_user_edges() {
    assert_eq!(check_zeroed_user(0, 0), Ok(true), "size 0 touches nothing");
    assert_eq!(check_zeroed_user(usize::MAX, 0), Ok(true));
    assert_eq!(check_zeroed_user(0, 1), Err(EFAULT));
    assert_eq!(check_zeroed_user(USER_LIMIT, 1), Err(EFAULT));
    let kb = KernelBuffer::new(64).unwrap();
    assert_eq!(check_zeroed_user(kb.addr(), 64), Err(EFAULT));
    let gp = GuardedPage::new();
    assert_eq!(check_zeroed_user(gp.addr(), page_size()), Ok(true));
    gp.write(page_size() - 1, &[1]);
    assert_eq!(check_zeroed_user(gp.addr(), page_size()), Ok(false));
    assert_eq!(
        check_zeroed_user(gp.addr() + 1, page_size()),
        Ok(false),
        "stops before the guard"
    );
    assert_eq!(check_zeroed_user(gp.addr() - 1, 2), Err(EFAULT));
}

/// A 16-byte kernel struct read from user memory at `src` with `usize_`.
fn cs(src: usize, usize_: usize) -> (Result<(), Errno>, [u8; 16]) {
    let mut dst = [0xAA; 16];
    let result = copy_struct_from_user(&mut dst, src, usize_);
    (result, dst)
}

#[test]
fn copy_struct_from_user_every_branch() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let user: Vec<u8> = (1..=64).collect();
    gp.write(0, &user);
    let mut expect = [0u8; 16];

    // usize < ksize: copy usize bytes, zero the rest.
    for usize_ in 0..16 {
        let (result, dst) = cs(m, usize_);
        assert_eq!(result, Ok(()));
        expect.fill(0);
        expect[..usize_].copy_from_slice(&user[..usize_]);
        assert_eq!(dst, expect, "usize {usize_}");
    }
    // usize == ksize: a plain copy.
    assert_eq!(cs(m, 16), (Ok(()), user[..16].try_into().unwrap()));
    // usize > ksize with a non-zero tail: E2BIG.
    assert_eq!(cs(m, 17).0, Err(E2BIG));
    assert_eq!(cs(m, 64).0, Err(E2BIG));
    // usize > ksize with a zero tail: copy ksize bytes.
    gp.write(16, &[0; 200]);
    for usize_ in [17, 24, 100, 216] {
        assert_eq!(
            cs(m, usize_),
            (Ok(()), user[..16].try_into().unwrap()),
            "usize {usize_}"
        );
    }
    // ...the non-zero byte at the last tail position only.
    gp.write(215, &[9]);
    assert_eq!(cs(m, 216).0, Err(E2BIG));
    assert_eq!(cs(m, 215).0, Ok(()));

    // Faults. In the copied part, no tail: EFAULT, and dst is the copied
    // prefix plus zeros (copy_from_user's zero fill).
    let src = m + page - 10;
    gp.write(page - 10, &[7; 10]);
    let (result, dst) = cs(src, 16);
    assert_eq!(result, Err(EFAULT));
    assert_eq!(&dst[..10], &[7; 10]);
    assert_eq!(&dst[10..], &[0; 6]);
    assert_eq!(cs(m - 4, 8).0, Err(EFAULT), "starts in the guard page");
    // A tail that reaches the guard page while still zero: EFAULT.
    let src = m + page - 32;
    gp.write(page - 32, &[0; 32]);
    assert_eq!(cs(src, 33).0, Err(EFAULT));
    assert_eq!(cs(src, 32).0, Ok(()), "ends exactly at the guard page");
    // ...but a non-zero tail byte before the fault wins: E2BIG (the scan
    // stops there, as Linux's does).
    gp.write(page - 1, &[1]);
    assert_eq!(cs(src, 1 << 20).0, Err(E2BIG));
    // No cap and no floor, as in Linux: a huge usize is scanned until the
    // first non-zero byte or fault.
    assert_eq!(cs(m, 1 << 30).0, Err(E2BIG));
    gp.fill(0);
    assert_eq!(cs(m, 1 << 30).0, Err(EFAULT));
    // A tail past the end of user memory fails access_ok first: EFAULT,
    // even with a non-zero byte right after the struct.
    gp.write(16, &[1]);
    assert_eq!(cs(m, USER_LIMIT).0, Err(EFAULT));
    gp.write(16, &[0]);
    // ksize 0: only the tail check.
    assert_eq!(copy_struct_from_user(&mut [], m, 100), Ok(()));
    assert_eq!(copy_struct_from_user(&mut [], m, page + 1), Err(EFAULT));
    // usize 0 touches nothing, wherever src is.
    assert_eq!(cs(0, 0), (Ok(()), [0; 16]));
    // The tail address overflows: EFAULT.
    assert_eq!(cs(usize::MAX - 4, 32).0, Err(EFAULT));
    // Kernel memory: EFAULT.
    let kb = KernelBuffer::new(64).unwrap();
    assert_eq!(cs(kb.addr(), 16).0, Err(EFAULT));
    assert_eq!(cs(kb.addr(), 64).0, Err(EFAULT));
}

fn strncpy(src: usize, count: usize) -> (Result<usize, Errno>, Vec<u8>) {
    let mut dst = vec![0xAA; count];
    let result = strncpy_from_user(&mut dst, src);
    (result, dst)
}

#[test]
fn strncpy_from_user_three_outcomes() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    gp.fill(b'x');
    gp.write(100, b"hello\0world\0");

    // 1. A NUL within count: its length, NUL-terminated.
    let (result, dst) = strncpy(m + 100, 64);
    assert_eq!(result, Ok(5));
    assert_eq!(&dst[..6], b"hello\0");
    assert_eq!(strncpy(m + 100, 6).0, Ok(5));
    assert_eq!(strncpy(m + 105, 10).0, Ok(0), "empty string");
    // 2. No NUL within count: count, not terminated.
    let (result, dst) = strncpy(m + 100, 5);
    assert_eq!(result, Ok(5));
    assert_eq!(dst, b"hello");
    let (result, dst) = strncpy(m + 200, 300);
    assert_eq!(result, Ok(300));
    assert!(dst.iter().all(|&b| b == b'x'));
    // 3. A fault before the NUL: EFAULT.
    assert_eq!(strncpy(m + page - 10, 64).0, Err(EFAULT));
    assert_eq!(strncpy(m - 1, 64).0, Err(EFAULT));
    // ...but not if the count ends before the fault, or the NUL comes first.
    assert_eq!(strncpy(m + page - 10, 10).0, Ok(10));
    gp.write(page - 1, b"\0");
    assert_eq!(
        strncpy(m + page - 10, 64).0,
        Ok(9),
        "NUL in the last byte of the page"
    );
    // count 0 touches nothing.
    assert_eq!(strncpy(0, 0).0, Ok(0));
    // Not user memory.
    assert_eq!(strncpy(0, 8).0, Err(EFAULT));
    assert_eq!(strncpy(USER_LIMIT, 8).0, Err(EFAULT));
    assert_eq!(strncpy(1 << 47, 8).0, Err(EFAULT));
    let kb = KernelBuffer::from_bytes(b"kernel\0").unwrap();
    assert_eq!(strncpy(kb.addr(), 16).0, Err(EFAULT));
    // A string across a page boundary between two mapped pages.
    let two = UserMemory::new(2 * page).unwrap();
    two.fill(b'y').unwrap();
    two.write_at(page + 20, b"\0").unwrap();
    let (result, dst) = strncpy(two.addr() + page - 30, 100);
    assert_eq!(result, Ok(50));
    assert!(dst[..50].iter().all(|&b| b == b'y'));
    assert_eq!(dst[50], 0);
}

/// `memdup_user`'s ENOMEM is deterministic here: like kmalloc, it refuses
/// more than KMALLOC_MAX_SIZE (4 MiB) before touching memory. A failing
/// allocation below that cannot be provoked in a test process.
#[test]
fn memdup_user_success_enomem_efault() {
    let gp = GuardedPage::new();
    let page = page_size();
    let data: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &data);
    let m = gp.addr();
    assert_eq!(&*memdup_user(m + 3, 500).unwrap(), &data[3..503]);
    assert_eq!(&*memdup_user(m, page).unwrap(), &data[..]);
    assert!(
        memdup_user(0, 0).unwrap().is_empty(),
        "len 0: kmalloc(0) succeeds, nothing read"
    );
    assert_eq!(memdup_user(m + 1, page), Err(EFAULT));
    assert_eq!(memdup_user(0, 8), Err(EFAULT));
    let kb = KernelBuffer::new(16).unwrap();
    assert_eq!(memdup_user(kb.addr(), 16), Err(EFAULT));
    for huge in [KMALLOC_MAX_SIZE + 1, 1 << 40, usize::MAX] {
        assert_eq!(memdup_user(m, huge), Err(Errno::ENOMEM), "{huge:#x}");
    }
    let big = UserMemory::new(KMALLOC_MAX_SIZE).unwrap();
    big.fill(3).unwrap();
    let copy = memdup_user(big.addr(), KMALLOC_MAX_SIZE).unwrap();
    assert!(copy.len() == KMALLOC_MAX_SIZE && copy.iter().all(|&b| b == 3));
}
