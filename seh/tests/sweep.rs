//! Fault-boundary sweep: every size 0..=300 at every start offset
//! straddling both ends of an accessible range fenced by a `PAGE_NOACCESS`
//! page, by a reserved (decommitted) page and by a guard page, and 4 KiB
//! at every such start, 64 KiB at sampled ones, for `copy_from`, `copy_to`
//! and `clear`:
//! the exact return value, the exact prefix, and nothing written outside
//! it. The same sweep as `usercap-host`'s `host/tests/sweep.rs`, on the
//! Windows routines.
#![cfg(all(windows, target_arch = "x86_64"))]

mod common;

use common::{FENCE_BYTE, Fence, Fenced, pattern};
use usercap_seh::{
    Outcome, STATUS_ACCESS_VIOLATION, STATUS_GUARD_PAGE_VIOLATION, clear_outcome,
    copy_from_outcome, copy_to_outcome, page_size,
};

const CANARY: u8 = 0xFF;
/// Margin of canary bytes checked around each destination.
const PAD: usize = 16;
/// Accessible pages: enough for a 64 KiB copy that starts 4 KiB in.
const PAGES: usize = 17;
const FENCES: [Fence; 3] = [Fence::NoAccess, Fence::Reserved, Fence::Guard];

/// `(start, len)` pairs to try, around the accessible range `[m, e)`.
/// Sizes 0..=300 and 4 KiB: every start in `[m - n, m]` and `[e - n, e]`.
/// 64 KiB: starts at sampled distances from both edges.
fn cases(m: usize, e: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for n in (0..=300).chain([4096]) {
        for k in 0..=n {
            out.push((m - k, n));
            out.push((e - k, n));
        }
    }
    // 64 KiB at every start would be 131,074 copies of 64 KiB per fence and
    // routine, about 8 GiB of copying and checking each, too slow for the
    // Wine lane; the sampled distances cover each block class and loop
    // boundary on both sides of each edge, and the page boundary.
    let n = 65_536;
    for k in [
        0, 1, 7, 15, 16, 17, 63, 64, 65, 95, 96, 97, 127, 128, 129, 4095, 4096, 4097,
    ] {
        out.push((m - k, n));
        out.push((e - k, n));
    }
    out.push((e - n, n));
    out.push((e - n - 1, n));
    out
}

/// Bytes of `[s, s + n)` inside the accessible `[m, e)` before the first
/// inaccessible byte.
fn expected(s: usize, n: usize, m: usize, e: usize) -> usize {
    if s < m { 0 } else { n.min(e - s) }
}

/// The exception code a copy of `[s, s + n)` that stops short must report:
/// the fence's, or, for a start more than a page before the range, that
/// of the reserved page before the region.
fn code_for(fence: Fence, s: usize, m: usize) -> u32 {
    match fence {
        Fence::Guard if s + page_size() >= m => STATUS_GUARD_PAGE_VIOLATION,
        _ => STATUS_ACCESS_VIOLATION,
    }
}

/// `want` bytes done of `n` at `s`, and the exception code that goes with it.
fn check_outcome(
    out: Outcome,
    (s, n, want): (usize, usize, usize),
    m: usize,
    fence: Fence,
    what: &str,
) {
    assert!(out.left <= n, "{what}: left {} > len", out.left);
    assert_eq!(n - out.left, want, "{what}: bytes done");
    let code = if want == n { 0 } else { code_for(fence, s, m) };
    assert_eq!(out.code, code, "{what}: exception code {:#x}", out.code);
}

#[test]
fn copy_from_sweep() {
    for fence in FENCES {
        let fenced = Fenced::new(PAGES, fence);
        let (m, e) = (fenced.addr(), fenced.end());
        let src: Vec<u8> = (0..fenced.len()).map(pattern).collect();
        fenced.write(0, &src);
        let mut count = 0_usize;
        for (s, n) in cases(m, e) {
            let mut buf = vec![CANARY; n + 2 * PAD];
            let out = copy_from_outcome(&mut buf[PAD..PAD + n], s);
            if fence == Fence::Guard && out.left > 0 {
                fenced.rearm();
            }
            let want = expected(s, n, m, e);
            let what = format!("{fence:?} copy_from {s:#x}+{n} (range {m:#x}..{e:#x})");
            check_outcome(out, (s, n, want), m, fence, &what);
            if want > 0 {
                assert!(
                    buf[PAD..PAD + want] == src[s - m..s - m + want],
                    "{what}: data"
                );
            }
            assert!(
                buf[..PAD]
                    .iter()
                    .chain(&buf[PAD + want..])
                    .all(|&b| b == CANARY),
                "{what}: destination written outside the prefix"
            );
            count += 1;
        }
        assert!(fenced.read(0, fenced.len()) == src, "source changed");
        eprintln!("{fence:?}: {count} copies checked");
    }
}

/// Fills the window of the accessible range a case can reach with
/// `CANARY`, runs `op`, and checks that the window then holds `CANARY`
/// except for the `want` bytes at `s`, which hold `written(i)`.
fn check_window(
    fenced: &Fenced,
    s: usize,
    n: usize,
    want: usize,
    written: impl Fn(usize) -> u8,
    what: &str,
) {
    let (m, e) = (fenced.addr(), fenced.end());
    let lo = s.saturating_sub(PAD).max(m);
    let hi = (s + n + PAD).min(e);
    if lo >= hi {
        return;
    }
    let got = fenced.read(lo - m, hi - lo);
    for (i, &b) in got.iter().enumerate() {
        let addr = lo + i;
        let expect = if addr >= s && addr < s + want {
            written(addr - s)
        } else {
            CANARY
        };
        assert_eq!(b, expect, "{what}: byte at {addr:#x}");
    }
}

fn fill_window(fenced: &Fenced, s: usize, n: usize) {
    let (m, e) = (fenced.addr(), fenced.end());
    let lo = s.saturating_sub(PAD).max(m);
    let hi = (s + n + PAD).min(e);
    if lo < hi {
        fenced
            .memory()
            .fill_at(lo - m + page_size(), hi - lo, CANARY)
            .unwrap();
    }
}

/// A guard fence's page after a failed write: nothing of the copy may
/// have landed there (the copy stops at its first byte).
fn check_guard_pages_untouched(fenced: &Fenced, what: &str) {
    fenced.open_guards();
    let page = page_size();
    let mem = fenced.memory();
    let mut buf = vec![0; page];
    for offset in [0, fenced.len() + page] {
        mem.read_at(offset, &mut buf).unwrap();
        assert!(
            buf.iter().all(|&b| b == FENCE_BYTE),
            "{what}: a guard page was written"
        );
    }
    fenced.rearm();
}

#[test]
fn copy_to_sweep() {
    for fence in FENCES {
        let fenced = Fenced::new(PAGES, fence);
        let (m, e) = (fenced.addr(), fenced.end());
        let src: Vec<u8> = (0..65_536 + 4096).map(pattern).collect();
        let mut count = 0_usize;
        for (s, n) in cases(m, e) {
            fill_window(&fenced, s, n);
            // SAFETY: the destination lies in (or next to) a UserMemory
            // this test owns and never references.
            let out = unsafe { copy_to_outcome(s, &src[..n]) };
            let want = expected(s, n, m, e);
            let what = format!("{fence:?} copy_to {s:#x}+{n} (range {m:#x}..{e:#x})");
            check_outcome(out, (s, n, want), m, fence, &what);
            check_window(&fenced, s, n, want, |i| src[i], &what);
            if fence == Fence::Guard && out.left > 0 {
                check_guard_pages_untouched(&fenced, &what);
            }
            count += 1;
        }
        eprintln!("{fence:?}: {count} copies checked");
    }
}

#[test]
fn clear_sweep() {
    for fence in FENCES {
        let fenced = Fenced::new(PAGES, fence);
        let (m, e) = (fenced.addr(), fenced.end());
        let mut count = 0_usize;
        for (s, n) in cases(m, e) {
            fill_window(&fenced, s, n);
            // SAFETY: as in `copy_to_sweep`.
            let out = unsafe { clear_outcome(s, n) };
            let want = expected(s, n, m, e);
            let what = format!("{fence:?} clear {s:#x}+{n} (range {m:#x}..{e:#x})");
            check_outcome(out, (s, n, want), m, fence, &what);
            check_window(&fenced, s, n, want, |_| 0, &what);
            if fence == Fence::Guard && out.left > 0 {
                check_guard_pages_untouched(&fenced, &what);
            }
            count += 1;
        }
        eprintln!("{fence:?}: {count} clears checked");
    }
}

/// A guard page is consumed by the copy that stops at it, as by any other
/// access: the same copy again reads through the page.
#[test]
fn a_guard_page_stops_one_copy_and_is_then_gone() {
    let fenced = Fenced::new(1, Fence::Guard);
    let page = page_size();
    let e = fenced.end();
    let mut buf = [0_u8; 64];
    let first = copy_from_outcome(&mut buf, e - 16);
    assert_eq!(
        first,
        Outcome {
            left: 48,
            code: STATUS_GUARD_PAGE_VIOLATION
        }
    );
    let second = copy_from_outcome(&mut buf, e - 16);
    assert_eq!(second, Outcome::DONE, "the guard was consumed");
    // And it was the trailing guard alone that went: the leading one still
    // stops a copy at its first byte.
    let lead = copy_from_outcome(&mut buf, fenced.addr() - page);
    assert_eq!(lead.code, STATUS_GUARD_PAGE_VIOLATION);
    assert_eq!(lead.left, 64);
}

/// Large in-bounds copies through every path (no fault), between heap
/// buffers and a `UserMemory`, at several misalignments.
#[test]
fn valid_copies_all_sizes() {
    let src: Vec<u8> = (0..70_000).map(pattern).collect();
    let out = usercap_seh::UserMemory::new(70_016).unwrap();
    for n in (0..300).chain([2047, 2048, 2049, 4096, 65_536, 69_990]) {
        for off in [0, 1, 7] {
            let mut dst = vec![CANARY; n];
            assert_eq!(
                usercap_seh::copy_from(&mut dst, src.as_ptr().addr() + off),
                0
            );
            assert!(dst == src[off..off + n]);
            out.fill_at(0, n + off + 1, CANARY).unwrap();
            // SAFETY: inside a UserMemory this test owns.
            let left = unsafe { usercap_seh::copy_to(out.addr() + off, &src[..n]) };
            assert_eq!(left, 0);
            let mut back = vec![0; n + off + 1];
            out.read_at(0, &mut back).unwrap();
            assert!(back[off..off + n] == src[..n]);
            assert!(
                back[..off]
                    .iter()
                    .chain(&back[off + n..])
                    .all(|&b| b == CANARY)
            );
            // SAFETY: as above.
            assert_eq!(unsafe { usercap_seh::clear(out.addr() + off, n) }, 0);
            out.read_at(0, &mut back).unwrap();
            assert!(back[off..off + n].iter().all(|&b| b == 0));
            assert!(
                back[..off]
                    .iter()
                    .chain(&back[off + n..])
                    .all(|&b| b == CANARY)
            );
        }
    }
}
