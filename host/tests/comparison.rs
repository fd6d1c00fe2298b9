//! The executable comparison: the same cases through Linux's vocabulary
//! (`usercap_host::linux`) and through usercap's capture API on `HostSpace`,
//! on the same real memory.
//!
//! Where the two models agree by design, every case must give the same bytes
//! or the same errno. Where they differ by design, the difference is
//! asserted here, so it stays documented and deliberate:
//!
//! - `capture_sized` copies the known prefix first and scans the tail after;
//!   Linux scans the tail first. A struct with both a fault in the prefix and
//!   a non-zero tail is `EFAULT` here, `E2BIG` on Linux.
//! - `capture_sized` probes with the type's alignment (`Misaligned`, errno
//!   `EFAULT`); Linux has no alignment rule.
//! - `capture_sized` has a floor and a cap from `Extensible` (`EINVAL`,
//!   `E2BIG`); Linux's `copy_struct_from_user` has neither (callers add them).
//! - A failed capture hands out nothing; `copy_from_user` hands out the
//!   copied prefix and a count.
#![cfg(unix)]

mod common;

use common::{GuardedPage, pattern};
use usercap::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
use usercap::{CaptureError, Extensible, UserPtr, UserSlice};
use usercap_host::HostSpace;
use usercap_host::guarded::page_size;
use usercap_host::linux::{
    Errno, check_zeroed_user, copy_from_user, copy_struct_from_user, memdup_user, strncpy_from_user,
};

/// A versioned struct: 16 bytes now, accepting any older size (floor 1) and
/// newer ones up to a page.
#[derive(Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Versioned {
    flags: u32,
    level: u32,
    quota: u64,
}

impl Extensible for Versioned {
    const MIN_SIZE: usize = 1;
}

fn linux_struct(src: usize, usize_: usize) -> Result<[u8; 16], Errno> {
    let mut dst = [0xAA; 16];
    copy_struct_from_user(&mut dst, src, usize_).map(|()| dst)
}

fn usercap_struct(src: usize, usize_: usize) -> Result<[u8; 16], Errno> {
    UserPtr::<Versioned>::new(src)
        .capture_sized(&HostSpace::new(), usize_)
        .map(|v| v.as_bytes().try_into().unwrap())
        .map_err(Errno::from)
}

/// The layouts of user memory the struct cases run over.
fn layouts(gp: &GuardedPage) -> Vec<(&'static str, usize)> {
    let page = page_size();
    let m = gp.addr();
    vec![
        ("mid-page", m + 256),
        ("tail reaches the guard page", m + page - 24),
        ("prefix reaches the guard page", m + page - 8),
        ("ends at the guard page", m + page - 16),
    ]
}

#[test]
fn copy_struct_from_user_vs_capture_sized() {
    let gp = GuardedPage::new();
    let page = page_size();
    let sizes = [1, 4, 8, 15, 16, 17, 23, 24, 31, 32, 100, 1000, 4096];
    // Tail contents: all zero, non-zero right after the struct, non-zero far
    // out (only some sizes reach it).
    let tails: [(&str, Option<usize>); 3] =
        [("zero", None), ("near", Some(16)), ("far", Some(600))];
    let mut compared = 0;
    for (name, src) in layouts(&gp) {
        for (tail_name, nz) in tails {
            // Struct bytes 1..=16 at src, zeros after, one non-zero byte.
            gp.fill(0);
            let offset = src - gp.addr();
            let head: Vec<u8> = (1..=16).collect();
            let fits = head.len().min(page - offset);
            gp.write(offset, &head[..fits]);
            if let Some(at) = nz
                && offset + at < page
            {
                gp.write(offset + at, &[0x80]);
            }
            for usize_ in sizes {
                let linux = linux_struct(src, usize_);
                let usercap = usercap_struct(src, usize_);
                let prefix_faults = offset + usize_.min(16) > page;
                let tail_non_zero = nz.is_some_and(|at| at < usize_ && offset + at < page);
                if prefix_faults && tail_non_zero {
                    // The documented difference: which check runs first.
                    assert_eq!(linux, Err(Errno::E2BIG), "{name}/{tail_name}/{usize_}");
                    assert_eq!(usercap, Err(Errno::EFAULT), "{name}/{tail_name}/{usize_}");
                } else {
                    assert_eq!(linux, usercap, "{name}/{tail_name}/{usize_}");
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 4 * 3 * sizes.len());
}

#[test]
fn copy_struct_differences_by_design() {
    let gp = GuardedPage::new();
    let m = gp.addr();
    gp.write(0, &(1..=32).collect::<Vec<u8>>());
    // Alignment: usercap probes with align_of::<Versioned>() = 8.
    assert!(linux_struct(m + 4, 16).is_ok());
    assert_eq!(
        UserPtr::<Versioned>::new(m + 4)
            .capture_sized(&HostSpace::new(), 16)
            .unwrap_err(),
        CaptureError::Misaligned
    );
    // Floor and cap belong to the type in usercap; Linux has none.
    gp.fill(0);
    assert!(linux_struct(m, 0).is_ok());
    assert_eq!(usercap_struct(m, 0), Err(Errno::EINVAL));
    let page = page_size();
    let two = usercap_host::UserMemory::new(2 * page).unwrap();
    assert!(linux_struct(two.addr(), 4097).is_ok());
    assert_eq!(usercap_struct(two.addr(), 4097), Err(Errno::E2BIG));
    // A partial copy: Linux hands out the prefix and zeros, usercap nothing.
    gp.write(page - 4, &[7; 4]);
    let mut dst = [0xAA; 8];
    assert_eq!(copy_from_user(&mut dst, m + page - 4), 4);
    assert_eq!(dst, [7, 7, 7, 7, 0, 0, 0, 0]);
    let captured = UserSlice::<u8>::new(m + page - 4, 8)
        .unwrap()
        .capture(&HostSpace::new());
    assert_eq!(captured.unwrap_err(), CaptureError::AccessViolation);
}

#[test]
fn strncpy_from_user_vs_capture_cstr() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let space = HostSpace::new();
    let mut compared = 0;
    // Strings of several lengths, ending at several distances from the
    // guard page, read with several counts.
    for len in [0, 1, 7, 63, 64, 65, 200] {
        for gap in [0, 1, 5, 64, 300] {
            // The string's NUL sits `gap` bytes before the guard page, or
            // there is no NUL at all when gap == 0.
            gp.fill(b'z');
            let start = page - gap - len;
            if gap > 0 {
                gp.write(page - gap, &[0]);
            }
            let src = m + start;
            for count in [0, 1, len, len + 1, len + gap, len + gap + 1, 4096] {
                let mut dst = vec![0xAA; count];
                let linux = strncpy_from_user(&mut dst, src);
                let usercap = UserSlice::<u8>::new(src, count)
                    .unwrap()
                    .capture_cstr(&space);
                match (&linux, &usercap) {
                    (Ok(n), Ok(cstr)) => {
                        assert_eq!(*n, cstr.len(), "len {len} gap {gap} count {count}");
                        assert_eq!(cstr.is_terminated(), *n < count);
                        assert_eq!(&dst[..*n], &cstr[..]);
                        assert!(cstr.iter().all(|&b| b == b'z'));
                    }
                    (Err(errno), Err(error)) => {
                        assert_eq!(
                            *errno,
                            Errno::from(*error),
                            "len {len} gap {gap} count {count}"
                        );
                    }
                    _ => panic!("len {len} gap {gap} count {count}: {linux:?} vs {usercap:?}"),
                }
                compared += 1;
            }
        }
    }
    assert!(compared > 200);
}

#[test]
fn check_zeroed_user_vs_is_zeroed() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let space = HostSpace::new();
    for nz in [None, Some(page - 300), Some(page - 1)] {
        gp.fill(0);
        if let Some(at) = nz {
            gp.write(at, &[1]);
        }
        for start in [
            page - 512,
            page - 301,
            page - 300,
            page - 64,
            page - 1,
            page,
        ] {
            for len in [0, 1, 63, 64, 65, 300, 301, 512, 513] {
                let linux = check_zeroed_user(m + start, len);
                let usercap = UserSlice::<u8>::new(m + start, len)
                    .unwrap()
                    .is_zeroed(&space)
                    .map_err(Errno::from);
                assert_eq!(linux, usercap, "start {start} len {len} nz {nz:?}");
            }
        }
    }
}

#[test]
fn memdup_user_vs_capture() {
    let gp = GuardedPage::new();
    let page = page_size();
    let m = gp.addr();
    let data: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &data);
    let space = HostSpace::new();
    for (offset, len) in [
        (0, 0),
        (0, 1),
        (8, 100),
        (0, page),
        (page - 5, 5),
        (page - 5, 6),
        (1, page),
    ] {
        let linux = memdup_user(m + offset, len);
        let usercap = UserSlice::<u8>::new(m + offset, len)
            .unwrap()
            .capture(&space);
        match (linux, usercap) {
            (Ok(a), Ok(b)) => assert_eq!(&*a, &*b),
            (Err(errno), Err(error)) => assert_eq!(errno, Errno::from(error)),
            (a, b) => panic!("{offset}+{len}: {a:?} vs {b:?}"),
        }
    }
}
