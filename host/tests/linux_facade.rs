//! The Linux facade, rule by rule, on real memory with guard pages.
//!
//! Each test is one rule of the Linux code the facade follows (listed in
//! each function's docs in `usercap_host::linux`), named after the rule:
//! what the function writes into the destination in that case, bytes Linux
//! does not promise included, and what it returns. The kernel's own
//! usercopy KUnit cases (`lib/tests/usercopy_kunit.c`) are among them: the
//! `check_zeroed_user` sweep over every `(start, end)` pair of a 1 KiB
//! window across a page boundary, kernel-to-kernel copies refused with the
//! destination zeroed, and the `copy_struct_from_user` cases.
#![cfg(unix)]

mod common;

use common::{GuardedPage, pattern};
use usercap::CaptureError;
use usercap_host::guarded::{page_size, system_space};
use usercap_host::linux::{
    Errno, INT_MAX, KMALLOC_MAX_SIZE, USER_LIMIT, access_ok, check_zeroed_user, clear_user,
    copy_from_user, copy_struct_from_user, copy_to_user, memdup_user, strncpy_from_user,
};
use usercap_host::{KernelBuffer, Prot, UserMemory};

const EFAULT: Errno = Errno::EFAULT;
const E2BIG: Errno = Errno::E2BIG;
const ENOMEM: Errno = Errno::ENOMEM;

/// Addresses no user range starts at: null, a low page, the limit, a
/// non-canonical address, the top of the address space.
const NOT_USER: [usize; 5] = [0, 0x1000, USER_LIMIT, 1 << 47, usize::MAX];

/// Two pages: the first read-write, the second `prot`; returns the memory
/// and the address of the boundary between them.
fn two_pages(prot: Prot) -> (UserMemory, usize) {
    let page = page_size();
    let mem = UserMemory::new(2 * page).unwrap();
    mem.protect(page, page, prot).unwrap();
    let boundary = mem.addr() + page;
    (mem, boundary)
}

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
    assert_eq!(Errno::from(CaptureError::NoMemory), ENOMEM);
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

// ------------------------------------------------------------- access_ok

#[test]
fn access_ok_passes_a_range_that_does_not_wrap_and_ends_at_or_below_the_limit() {
    let limit = USER_LIMIT;
    assert_eq!(limit, 0x7FFF_FFFF_0000);
    assert!(access_ok(limit - 8, 8));
    assert!(!access_ok(limit - 7, 8));
    assert!(
        access_ok(limit, 0),
        "size 0 passes for an address at the limit"
    );
    assert!(!access_ok(limit + 1, 0));
    // The largest ranges that pass: everything below system space, and
    // everything from its end to the limit (system space is reserved by the
    // first kernel buffer).
    let _reserve = KernelBuffer::new(1).unwrap();
    let (start, end) = system_space();
    assert!(access_ok(0, start));
    assert!(access_ok(end, limit - end));
    assert!(!access_ok(end, limit - end + 1));
    assert!(!access_ok(1, limit));
    assert!(!access_ok(0, limit + 1));
    assert!(!access_ok(usize::MAX, 1));
    assert!(!access_ok(usize::MAX - 3, 8), "wraps");
    assert!(!access_ok(1 << 47, 8), "non-canonical");
    // Low addresses pass: Linux's access_ok checks only the top.
    assert!(access_ok(0, 0));
    assert!(access_ok(0, 16));
    assert!(access_ok(0x1000, 16));
}

#[test]
fn access_ok_fails_a_range_that_overlaps_system_space_as_one_that_crosses_the_limit() {
    let kb = KernelBuffer::new(32).unwrap();
    assert!(!access_ok(kb.addr(), 32));
    assert!(!access_ok(kb.addr() + 31, 1));
    assert!(!access_ok(kb.addr() - 4, 5));
    assert!(!access_ok(kb.addr() + 8, 0), "size 0 inside system space");
    // The whole of system space, not only live buffers.
    assert!(!access_ok(kb.addr() + 32, 4), "the buffer's guard");
    let (start, end) = system_space();
    assert!(access_ok(start - 4, 4) && access_ok(end, 4));
    assert!(!access_ok(start - 4, 5) && !access_ok(end - 1, 4));
    let gone = kb.addr();
    drop(kb);
    assert!(
        !access_ok(gone, 32),
        "a freed kernel buffer is still kernel memory"
    );
}

// -------------------------------------------------------- copy_from_user

#[test]
fn copy_from_user_of_more_than_int_max_bytes_writes_nothing_and_returns_n() {
    // Both sides are lazily mapped zero pages: only the bytes touched cost
    // memory. A copy that ran would overwrite the 0xAA markers (and zero-fill
    // whatever it did not copy).
    let n = INT_MAX + 1;
    let from = UserMemory::new(n).unwrap();
    let mut to = vec![0u8; n];
    to[0] = 0xAA;
    to[n - 1] = 0xAA;
    assert_eq!(copy_from_user(&mut to, from.addr()), n);
    assert_eq!((to[0], to[n - 1]), (0xAA, 0xAA));
    // ...and from an address that fails access_ok: still not zeroed.
    assert_eq!(copy_from_user(&mut to, 0x1000), n);
    assert_eq!((to[0], to[n - 1]), (0xAA, 0xAA));
}

#[test]
fn copy_from_user_that_fails_access_ok_zeroes_all_of_to_and_returns_n() {
    let kb = KernelBuffer::from_bytes(&[0x5A; 64]).unwrap();
    let mut to = [0xAAu8; 128];
    for from in [
        USER_LIMIT - 8,
        USER_LIMIT,
        1 << 47,
        usize::MAX - 8,
        kb.addr(),
    ] {
        to.fill(0xAA);
        assert_eq!(copy_from_user(&mut to[..64], from), 64, "{from:#x}");
        assert!(to[..64].iter().all(|&b| b == 0), "{from:#x}");
        assert!(to[64..].iter().all(|&b| b == 0xAA), "{from:#x}");
    }
    // The KUnit case: a kernel-to-kernel copy fails and zeroes the
    // destination.
    let mut kernel_to = [0x11u8; 64];
    assert_ne!(copy_from_user(&mut kernel_to, kb.addr()), 0);
    assert_eq!(kernel_to, [0; 64]);
}

#[test]
fn copy_from_user_of_zero_bytes_returns_0_and_touches_nothing_at_any_address() {
    let kb = KernelBuffer::new(16).unwrap();
    for from in NOT_USER.into_iter().chain([kb.addr()]) {
        assert_eq!(copy_from_user(&mut [], from), 0, "{from:#x}");
    }
}

#[test]
fn copy_from_user_copies_up_to_the_first_unreadable_byte_and_zeroes_the_rest() {
    let gp = GuardedPage::new();
    let page = page_size();
    let data: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &data);
    let m = gp.addr();
    // Every split of a 64-byte copy across the guard page after the page,
    // and a long copy, and the page before it.
    for readable in 0..=64 {
        let mut to = [0xFFu8; 64];
        let left = copy_from_user(&mut to, m + page - readable);
        assert_eq!(left, 64 - readable, "{readable} readable");
        assert_eq!(to[..readable], data[page - readable..], "{readable}");
        assert!(to[readable..].iter().all(|&b| b == 0), "{readable}");
    }
    let mut to = vec![0xFF; 3000];
    assert_eq!(copy_from_user(&mut to, m + page - 1000), 2000);
    assert_eq!(to[..1000], data[page - 1000..]);
    assert!(to[1000..].iter().all(|&b| b == 0));
    let mut to = [0xFFu8; 256];
    assert_eq!(
        copy_from_user(&mut to, m - 1),
        256,
        "starts in a guard page"
    );
    assert!(to.iter().all(|&b| b == 0));
    // Readable memory: every byte, return 0.
    assert_eq!(copy_from_user(&mut to, m + 100), 0);
    assert_eq!(to[..], data[100..356]);
    // Null and low pages pass access_ok and fault in the copy.
    to.fill(0xFF);
    assert_eq!(copy_from_user(&mut to, 0), 256);
    assert!(to.iter().all(|&b| b == 0));
}

// ---------------------------------------------------------- copy_to_user

#[test]
fn copy_to_user_of_more_than_int_max_bytes_writes_nothing_and_returns_n() {
    // A destination region large enough that a copy could run: it would
    // overwrite the 0xAA markers with the source's zeros.
    let n = INT_MAX + 1;
    let to = UserMemory::new(n).unwrap();
    to.write_at(0, &[0xAA]).unwrap();
    to.write_at(n - 1, &[0xAA]).unwrap();
    let from = vec![0u8; n];
    assert_eq!(copy_to_user(to.addr(), &from), n);
    let (mut first, mut last) = ([0u8], [0u8]);
    to.read_at(0, &mut first).unwrap();
    to.read_at(n - 1, &mut last).unwrap();
    assert_eq!((first, last), ([0xAA], [0xAA]));
}

#[test]
fn copy_to_user_that_fails_access_ok_writes_nothing_and_returns_n() {
    let kb = KernelBuffer::new(32).unwrap();
    for to in [
        USER_LIMIT - 8,
        USER_LIMIT,
        1 << 47,
        usize::MAX - 8,
        kb.addr(),
    ] {
        assert_eq!(copy_to_user(to, &[3; 32]), 32, "{to:#x}");
    }
    // The KUnit case: copy_to_user into kernel memory fails.
    assert!(kb.as_slice().iter().all(|&b| b == 0));
}

#[test]
fn copy_to_user_of_zero_bytes_returns_0_at_any_address() {
    let kb = KernelBuffer::new(16).unwrap();
    for to in NOT_USER.into_iter().chain([kb.addr()]) {
        assert_eq!(copy_to_user(to, &[]), 0, "{to:#x}");
    }
}

#[test]
fn copy_to_user_writes_up_to_the_first_unwritable_byte() {
    let (mem, boundary) = two_pages(Prot::Read);
    let page = page_size();
    let from: Vec<u8> = (0..64).map(pattern).collect();
    for writable in 0..=64 {
        mem.fill_at(0, page, 0xEE).unwrap();
        assert_eq!(
            copy_to_user(boundary - writable, &from),
            64 - writable,
            "{writable} writable"
        );
        let mut now = vec![0; 2 * page];
        mem.read_at(0, &mut now).unwrap();
        assert_eq!(now[page - writable..page], from[..writable], "{writable}");
        assert!(
            now[..page - writable].iter().all(|&b| b == 0xEE),
            "{writable}"
        );
        assert!(now[page..].iter().all(|&b| b == 0), "the read-only page");
    }
}

#[test]
fn copy_to_user_refuses_a_destination_outside_user_memory_whole_where_linux_writes_a_prefix() {
    // usercap's one deliberate difference: only UserMemory is written.
    let mut heap = vec![0x11_u8; 32];
    let addr = heap.as_mut_ptr().addr();
    assert_eq!(copy_to_user(addr, &[3; 32]), 32);
    assert!(heap.iter().all(|&b| b == 0x11));
    // A range that runs off the end of a region is refused whole too:
    // Linux would write the 8 bytes before the end.
    let page = page_size();
    let mem = UserMemory::new(page).unwrap();
    mem.fill(0xEE).unwrap();
    assert_eq!(copy_to_user(mem.addr() + page - 8, &[3; 16]), 16);
    assert_eq!(clear_user(mem.addr() + page - 8, 16), 16);
    let mut now = vec![0; page];
    mem.read_at(0, &mut now).unwrap();
    assert!(now.iter().all(|&b| b == 0xEE));
}

// ------------------------------------------------------------ clear_user

#[test]
fn clear_user_that_fails_access_ok_writes_nothing_and_returns_n() {
    let kb = KernelBuffer::from_bytes(&[7; 32]).unwrap();
    for to in [
        USER_LIMIT - 8,
        USER_LIMIT,
        1 << 47,
        usize::MAX - 8,
        kb.addr(),
    ] {
        assert_eq!(clear_user(to, 32), 32, "{to:#x}");
    }
    assert!(kb.as_slice().iter().all(|&b| b == 7));
}

#[test]
fn clear_user_of_zero_bytes_returns_0_at_any_address() {
    for to in NOT_USER {
        assert_eq!(clear_user(to, 0), 0, "{to:#x}");
    }
}

#[test]
fn clear_user_zeroes_up_to_the_first_unwritable_byte() {
    let (mem, boundary) = two_pages(Prot::Read);
    let page = page_size();
    for writable in [0, 1, 7, 8, 9, 31, 32, 33, 100, 1000] {
        mem.fill_at(0, page, 0xEE).unwrap();
        assert_eq!(
            clear_user(boundary - writable, 2000),
            2000 - writable,
            "{writable} writable"
        );
        let mut now = vec![0; page];
        mem.read_at(0, &mut now).unwrap();
        assert!(now[page - writable..].iter().all(|&b| b == 0), "{writable}");
        assert!(
            now[..page - writable].iter().all(|&b| b == 0xEE),
            "{writable}"
        );
    }
}

#[test]
fn clear_user_refuses_a_destination_outside_user_memory_whole_where_linux_clears_a_prefix() {
    let mut heap = vec![0x11_u8; 32];
    assert_eq!(clear_user(heap.as_mut_ptr().addr(), 32), 32);
    assert!(heap.iter().all(|&b| b == 0x11));
}

// ----------------------------------------------------- check_zeroed_user

#[test]
fn check_zeroed_user_of_size_0_is_true_at_any_address() {
    let kb = KernelBuffer::new(8).unwrap();
    for from in NOT_USER.into_iter().chain([kb.addr()]) {
        assert_eq!(check_zeroed_user(from, 0), Ok(true), "{from:#x}");
    }
}

#[test]
fn check_zeroed_user_is_efault_when_the_word_aligned_range_fails_access_ok() {
    assert_eq!(check_zeroed_user(USER_LIMIT, 1), Err(EFAULT));
    assert_eq!(check_zeroed_user(USER_LIMIT - 4, 5), Err(EFAULT));
    assert_eq!(check_zeroed_user(usize::MAX - 100, 50), Err(EFAULT));
    let kb = KernelBuffer::new(64).unwrap();
    assert_eq!(check_zeroed_user(kb.addr(), 64), Err(EFAULT));
    assert_eq!(check_zeroed_user(kb.addr() - 3, 4), Err(EFAULT));
    // Null passes access_ok, and its word faults.
    assert_eq!(check_zeroed_user(0, 1), Err(EFAULT));
}

#[test]
fn check_zeroed_user_ignores_the_bytes_of_its_first_and_last_words_outside_the_range() {
    let gp = GuardedPage::new();
    let m = gp.addr();
    gp.fill(0xFF);
    // [m + 3, m + 13) zero, non-zero bytes right before and after it in the
    // same two words.
    gp.write(3, &[0; 10]);
    assert_eq!(check_zeroed_user(m + 3, 10), Ok(true));
    assert_eq!(check_zeroed_user(m + 2, 11), Ok(false));
    assert_eq!(check_zeroed_user(m + 3, 11), Ok(false));
    // Inside one word.
    assert_eq!(check_zeroed_user(m + 4, 2), Ok(true));
}

#[test]
fn check_zeroed_user_stops_at_the_first_word_holding_a_non_zero_byte() {
    // A non-zero byte in a word before a guard page: false, though the
    // range goes on into the guard page, whose words are never read. With
    // no such byte the scan reaches the guard page: EFAULT.
    let (mem, guard) = two_pages(Prot::None);
    let page = page_size();
    mem.write_at(page - 1, &[1]).unwrap();
    assert_eq!(check_zeroed_user(guard - 64, 1 << 20), Ok(false));
    mem.write_at(page - 1, &[0]).unwrap();
    mem.write_at(page - 9, &[1]).unwrap();
    assert_eq!(check_zeroed_user(guard - 64, 1 << 20), Ok(false));
    mem.write_at(page - 9, &[0]).unwrap();
    assert_eq!(check_zeroed_user(guard - 64, 1 << 20), Err(EFAULT));
    assert_eq!(check_zeroed_user(guard - 64, 64), Ok(true));
    assert_eq!(check_zeroed_user(guard - 64, 65), Err(EFAULT));
}

#[test]
fn check_zeroed_user_of_a_size_that_wraps_with_the_alignment_reads_one_word_and_is_true() {
    // size + (from % 8) wraps to less than from % 8: Linux reads the one
    // word at the aligned start and masks all of it away.
    let gp = GuardedPage::new();
    let m = gp.addr();
    gp.fill(0xFF);
    assert_eq!(check_zeroed_user(m + 3, usize::MAX), Ok(true));
    assert_eq!(check_zeroed_user(m + 3, usize::MAX - 1), Ok(true));
    assert_eq!(check_zeroed_user(m + 7, usize::MAX - 5), Ok(true));
    // ...or EFAULT if that word cannot be read.
    assert_eq!(check_zeroed_user(m - 5, usize::MAX), Err(EFAULT));
    // Without the wrap, such a size fails access_ok.
    assert_eq!(check_zeroed_user(m, usize::MAX), Err(EFAULT));
    assert_eq!(check_zeroed_user(m + 3, usize::MAX - 3), Err(EFAULT));
}

/// Expected `check_zeroed_user` result for `[s, e)` with one non-zero byte at
/// `nz` (if any) and unreadable memory from `fault` on (page-aligned): the
/// words are read in order, and a fault or the non-zero byte, whichever
/// comes first, decides.
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

/// The KUnit sweep: a 1 KiB window straddling the boundary between two
/// mapped pages, with the non-zero byte at `at` bytes from the boundary (or
/// none).
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
/// bytes into the guard page: words never cross a page, so deeper ends
/// change nothing.)
fn into_a_guard_page(at: Option<isize>) {
    let (mem, guard) = two_pages(Prot::None);
    let nz = at.map(|d| guard.wrapping_add_signed(d));
    sweep_window(&mem, guard - 512, 512 + 64, guard, nz);
}

// One test per placement, so the harness spreads them over the cores.

#[test]
fn check_zeroed_user_answers_as_memchr_inv_for_every_start_and_end_across_mapped_pages() {
    across_mapped_pages(None);
}

#[test]
fn check_zeroed_user_answers_as_memchr_inv_with_a_non_zero_byte_before_the_page_boundary() {
    across_mapped_pages(Some(-1));
}

#[test]
fn check_zeroed_user_answers_as_memchr_inv_with_a_non_zero_byte_after_the_page_boundary() {
    across_mapped_pages(Some(0));
}

#[test]
fn check_zeroed_user_is_efault_exactly_for_ranges_reaching_a_guard_page_while_zero() {
    into_a_guard_page(None);
}

#[test]
fn check_zeroed_user_is_false_for_ranges_reaching_a_non_zero_byte_before_a_guard_page() {
    into_a_guard_page(Some(-1));
}

// ------------------------------------------------- copy_struct_from_user

/// A 16-byte kernel struct read from user memory at `src` with `usize_`.
fn cs(src: usize, usize_: usize) -> (Result<(), Errno>, [u8; 16]) {
    let mut dst = [0xAA; 16];
    let result = copy_struct_from_user(&mut dst, src, usize_);
    (result, dst)
}

#[test]
fn copy_struct_from_user_shorter_zeroes_the_rest_and_copies_so_every_byte_of_dst_is_written() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let user: Vec<u8> = (1..=64).collect();
    gp.write(0, &user);
    for usize_ in 0..16 {
        let (result, dst) = cs(m, usize_);
        assert_eq!(result, Ok(()));
        let mut expect = [0u8; 16];
        expect[..usize_].copy_from_slice(&user[..usize_]);
        assert_eq!(dst, expect, "usize {usize_}");
    }
    // usize 0 touches no user memory, wherever src is.
    for src in NOT_USER {
        assert_eq!(cs(src, 0), (Ok(()), [0; 16]), "{src:#x}");
    }
    // A fault in the copied part: EFAULT, and dst is the copied prefix,
    // then copy_from_user's zeros, then the memset's zeros.
    gp.write(page - 6, &[7; 6]);
    let (result, dst) = cs(m + page - 6, 10);
    assert_eq!(result, Err(EFAULT));
    assert_eq!(dst[..6], [7; 6]);
    assert_eq!(dst[6..], [0; 10]);
}

#[test]
fn copy_struct_from_user_equal_is_copy_from_user() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let user: Vec<u8> = (1..=64).collect();
    gp.write(0, &user);
    assert_eq!(cs(m, 16), (Ok(()), user[..16].try_into().unwrap()));
    gp.write(page - 10, &[7; 10]);
    let (result, dst) = cs(m + page - 10, 16);
    assert_eq!(result, Err(EFAULT));
    assert_eq!(dst[..10], [7; 10]);
    assert_eq!(dst[10..], [0; 6]);
    assert_eq!(
        cs(m - 4, 16),
        (Err(EFAULT), [0; 16]),
        "starts in the guard page"
    );
}

#[test]
fn copy_struct_from_user_longer_checks_the_tail_first_and_leaves_dst_untouched_if_it_fails() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let user: Vec<u8> = (1..=64).collect();
    gp.write(0, &user);
    // A non-zero tail: E2BIG, dst untouched.
    assert_eq!(cs(m, 17), (Err(E2BIG), [0xAA; 16]));
    assert_eq!(cs(m, 64), (Err(E2BIG), [0xAA; 16]));
    // A zero tail: ksize bytes copied.
    gp.write(16, &[0; 200]);
    for usize_ in [17, 24, 100, 216] {
        assert_eq!(
            cs(m, usize_),
            (Ok(()), user[..16].try_into().unwrap()),
            "usize {usize_}"
        );
    }
    // ...with the non-zero byte at the last tail position only.
    gp.write(215, &[9]);
    assert_eq!(cs(m, 216), (Err(E2BIG), [0xAA; 16]));
    assert_eq!(cs(m, 215).0, Ok(()));
    // A tail that reaches the guard page while still zero: EFAULT, dst
    // untouched.
    let src = m + page - 32;
    gp.write(page - 32, &[0; 32]);
    assert_eq!(cs(src, 33), (Err(EFAULT), [0xAA; 16]));
    assert_eq!(cs(src, 32).0, Ok(()), "ends exactly at the guard page");
    // ...but a non-zero tail byte before the fault wins: E2BIG (the scan
    // stops at its word).
    gp.write(page - 1, &[1]);
    assert_eq!(cs(src, 1 << 20).0, Err(E2BIG));
    // No cap and no floor, as in Linux: a huge usize is scanned until the
    // first non-zero word or fault.
    assert_eq!(cs(m, 1 << 30).0, Err(E2BIG));
    gp.fill(0);
    assert_eq!(cs(m, 1 << 30).0, Err(EFAULT));
    // A tail past the end of user memory fails access_ok: EFAULT, even with
    // a non-zero byte right after the struct.
    gp.write(16, &[1]);
    assert_eq!(cs(m, USER_LIMIT).0, Err(EFAULT));
    gp.write(16, &[0]);
    // The tail of a copy whose head faults is checked first: here it is
    // zero, then the head faults.
    assert_eq!(cs(m - 4, 24), (Err(EFAULT), [0; 16]));
    // ksize 0: only the tail check.
    assert_eq!(copy_struct_from_user(&mut [], m, 100), Ok(()));
    assert_eq!(copy_struct_from_user(&mut [], m, page + 1), Err(EFAULT));
    // Kernel memory: EFAULT.
    let kb = KernelBuffer::new(64).unwrap();
    assert_eq!(cs(kb.addr(), 16).0, Err(EFAULT));
    assert_eq!(cs(kb.addr(), 64).0, Err(EFAULT));
}

#[test]
fn copy_struct_from_user_computes_the_tail_address_modulo_2_to_the_64() {
    // src + ksize wraps to a low address, which passes access_ok and
    // faults: EFAULT, dst untouched.
    assert_eq!(cs(usize::MAX - 4, 32), (Err(EFAULT), [0xAA; 16]));
    // With ksize 0 and a misaligned src, the size + alignment of the tail
    // check wraps too, and Linux answers success without copying anything.
    let gp = GuardedPage::new();
    gp.fill(0xFF);
    assert_eq!(
        copy_struct_from_user(&mut [], gp.addr() + 3, usize::MAX),
        Ok(())
    );
}

// ------------------------------------------------------ strncpy_from_user

fn strncpy(src: usize, count: usize) -> (Result<usize, Errno>, Vec<u8>) {
    let mut dst = vec![0xAA; count];
    let result = strncpy_from_user(&mut dst, src);
    (result, dst)
}

#[test]
fn strncpy_from_user_of_count_0_returns_0_at_any_address() {
    let kb = KernelBuffer::new(8).unwrap();
    for src in NOT_USER.into_iter().chain([kb.addr()]) {
        assert_eq!(strncpy(src, 0), (Ok(0), vec![]), "{src:#x}");
    }
}

#[test]
fn strncpy_from_user_at_or_above_the_limit_or_in_system_space_is_efault_and_writes_nothing() {
    let kb = KernelBuffer::from_bytes(b"kernel\0").unwrap();
    for src in [
        USER_LIMIT,
        USER_LIMIT + 8,
        1 << 47,
        usize::MAX,
        kb.addr(),
        kb.addr() + 3,
    ] {
        assert_eq!(strncpy(src, 16), (Err(EFAULT), vec![0xAA; 16]), "{src:#x}");
    }
}

#[test]
fn strncpy_from_user_returns_the_length_and_zeroes_the_rest_of_the_word_holding_the_nul() {
    let gp = GuardedPage::new();
    let m = gp.addr();
    gp.fill(b'x');
    // Words are counted from src, whatever its alignment.
    for offset in [0, 3] {
        let src = m + 100 + offset;
        gp.write(100 + offset, b"hello\0world\0");
        let (result, dst) = strncpy(src, 64);
        assert_eq!(result, Ok(5), "offset {offset}");
        // "hello" and its NUL, the rest of the first word zeroed; nothing
        // after that word written.
        assert_eq!(&dst[..8], b"hello\0\0\0", "offset {offset}");
        assert!(dst[8..].iter().all(|&b| b == 0xAA), "offset {offset}");
        // A NUL in the second word: the first stored whole.
        gp.write(100 + offset, b"0123456789\0abcde");
        let (result, dst) = strncpy(src, 64);
        assert_eq!(result, Ok(10));
        assert_eq!(&dst[..16], b"0123456789\0\0\0\0\0\0");
        assert!(dst[16..].iter().all(|&b| b == 0xAA));
    }
    // The empty string: the whole first word zeroed.
    gp.write(200, b"\0yyyyyyy");
    assert_eq!(strncpy(m + 200, 8), (Ok(0), vec![0; 8]));
}

#[test]
fn strncpy_from_user_writes_nothing_after_a_nul_it_finds_byte_by_byte() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    gp.fill(b'x');
    // Fewer than 8 bytes left of count: the byte loop.
    gp.write(100, b"hi\0zzzzz");
    let (result, dst) = strncpy(m + 100, 7);
    assert_eq!(result, Ok(2));
    assert_eq!(dst, b"hi\0\xAA\xAA\xAA\xAA");
    // A word that runs into the guard page: the byte loop from that word.
    gp.write(page - 6, b"abc\0zz");
    let (result, dst) = strncpy(m + page - 6, 64);
    assert_eq!(result, Ok(3));
    assert_eq!(&dst[..4], b"abc\0");
    assert!(dst[4..].iter().all(|&b| b == 0xAA));
    // ...after whole words before it.
    gp.write(page - 14, b"01234567abc\0zz");
    let (result, dst) = strncpy(m + page - 14, 64);
    assert_eq!(result, Ok(11));
    assert_eq!(&dst[..12], b"01234567abc\0");
    assert!(dst[12..].iter().all(|&b| b == 0xAA));
    // The last word before the guard page is still read whole.
    gp.write(page - 16, b"12345678abc\0zzzz");
    let (result, dst) = strncpy(m + page - 16, 64);
    assert_eq!(result, Ok(11));
    assert_eq!(&dst[..16], b"12345678abc\0\0\0\0\0");
    assert!(dst[16..].iter().all(|&b| b == 0xAA));
}

#[test]
fn strncpy_from_user_without_a_nul_within_count_returns_count_unterminated() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    gp.fill(b'x');
    gp.write(100, b"hello\0");
    assert_eq!(strncpy(m + 100, 5), (Ok(5), b"hello".to_vec()));
    let (result, dst) = strncpy(m + 200, 300);
    assert_eq!(result, Ok(300));
    assert!(dst.iter().all(|&b| b == b'x'));
    // The count may end right at the guard page.
    assert_eq!(strncpy(m + page - 10, 10), (Ok(10), vec![b'x'; 10]));
    // A string across a boundary between two mapped pages.
    let two = UserMemory::new(2 * page).unwrap();
    two.fill(b'y').unwrap();
    two.write_at(page + 20, b"\0").unwrap();
    let (result, dst) = strncpy(two.addr() + page - 30, 100);
    assert_eq!(result, Ok(50));
    assert!(dst[..50].iter().all(|&b| b == b'y'));
    assert_eq!(dst[50], 0);
}

#[test]
fn strncpy_from_user_that_cannot_read_a_byte_before_the_nul_is_efault_with_the_bytes_before_it() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    gp.fill(b'x');
    for readable in 0..=20 {
        let (result, dst) = strncpy(m + page - readable, 64);
        assert_eq!(result, Err(EFAULT), "{readable}");
        assert!(dst[..readable].iter().all(|&b| b == b'x'), "{readable}");
        assert!(dst[readable..].iter().all(|&b| b == 0xAA), "{readable}");
    }
    // Null passes the limit check and faults.
    assert_eq!(strncpy(0, 8), (Err(EFAULT), vec![0xAA; 8]));
}

// ----------------------------------------------------------- memdup_user

#[test]
fn memdup_user_above_kmalloc_max_size_is_enomem_without_reading() {
    let gp = GuardedPage::new();
    for huge in [KMALLOC_MAX_SIZE + 1, 1 << 40, usize::MAX] {
        assert_eq!(memdup_user(gp.addr(), huge), Err(ENOMEM), "{huge:#x}");
        // The allocation comes first: even a bad address is ENOMEM.
        assert_eq!(memdup_user(0, huge), Err(ENOMEM), "{huge:#x}");
    }
}

#[test]
fn memdup_user_of_0_bytes_succeeds_with_an_empty_buffer_at_any_address() {
    let kb = KernelBuffer::new(8).unwrap();
    for src in NOT_USER.into_iter().chain([kb.addr()]) {
        assert!(memdup_user(src, 0).unwrap().is_empty(), "{src:#x}");
    }
}

#[test]
fn memdup_user_that_cannot_copy_every_byte_is_efault() {
    let gp = GuardedPage::new();
    let page = page_size();
    assert_eq!(memdup_user(gp.addr() + 1, page), Err(EFAULT));
    assert_eq!(memdup_user(gp.addr() - 1, 2), Err(EFAULT));
    assert_eq!(memdup_user(0, 8), Err(EFAULT));
    let kb = KernelBuffer::new(16).unwrap();
    assert_eq!(memdup_user(kb.addr(), 16), Err(EFAULT));
}

#[test]
fn memdup_user_returns_exactly_the_user_bytes() {
    let gp = GuardedPage::new();
    let page = page_size();
    let data: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &data);
    let m = gp.addr();
    assert_eq!(&*memdup_user(m + 3, 500).unwrap(), &data[3..503]);
    assert_eq!(&*memdup_user(m, page).unwrap(), &data[..]);
    let big = UserMemory::new(KMALLOC_MAX_SIZE).unwrap();
    big.fill(3).unwrap();
    let copy = memdup_user(big.addr(), KMALLOC_MAX_SIZE).unwrap();
    assert!(copy.len() == KMALLOC_MAX_SIZE && copy.iter().all(|&b| b == 3));
}
