//! Fault-boundary sweep: every size 0..=256 at every start offset straddling
//! both ends of a read-write page fenced by `PROT_NONE` pages, plus sampled
//! larger sizes that reach the 128-byte-block and `rep` paths, with starts
//! on both sides of each block boundary.
#![cfg(unix)]

/// Whether this target has the exception-table routines.
const GUARDED: bool = cfg!(all(target_arch = "x86_64", target_os = "linux"));

mod common;

use common::GuardedPage;
use usercap_host::UserMemory;
use usercap_host::guarded::{self as g, Backend, page_size};

const CANARY: u8 = 0xFF;
/// Margin of canary bytes around each destination buffer.
const PAD: usize = 16;
const BACKENDS: [Backend; 2] = [Backend::Guarded, Backend::ProcessVmReadv];

/// Never equal to `CANARY`, so any stray write is visible.
fn pattern(i: usize) -> u8 {
    u8::try_from(i * 7 % 251).unwrap()
}

/// `(start, len)` pairs to try. Small sizes: every start in `[m - n, m]` and
/// `[m + page - n, m + page]`. Large sizes: starts at sampled distances.
fn cases(m: usize, page: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for n in 0..=256 {
        for k in 0..=n {
            out.push((m - k, n));
            out.push((m + page - k, n));
        }
    }
    for n in [
        129, 200, 255, 256, 257, 1000, 2047, 2048, 2049, 3000, 4095, page,
    ] {
        let mut ks = vec![
            0,
            1,
            2,
            7,
            8,
            9,
            15,
            16,
            17,
            31,
            32,
            33,
            63,
            64,
            65,
            100,
            127,
            128,
            129,
            191,
            192,
            193,
            255,
            256,
            257,
            n / 2,
            n - 1,
            n,
        ];
        ks.retain(|&k| k <= n);
        for k in ks {
            out.push((m - k, n));
            out.push((m + page - k, n));
        }
    }
    out
}

/// Bytes of `[s, s + n)` that lie in the accessible page `[m, m + page)`
/// before the first inaccessible byte.
fn expected(s: usize, n: usize, m: usize, page: usize) -> usize {
    if s < m { 0 } else { n.min(m + page - s) }
}

#[test]
fn copy_from_sweep_both_backends() {
    let (gp, page) = (GuardedPage::new(), page_size());
    let src: Vec<u8> = (0..page).map(pattern).collect();
    gp.write(0, &src);
    let m = gp.addr();
    for backend in BACKENDS {
        for (s, n) in cases(m, page) {
            let mut buf = vec![CANARY; n + 2 * PAD];
            let left = g::copy_from_with(backend, &mut buf[PAD..PAD + n], s);
            let want = expected(s, n, m, page);
            assert!(left <= n);
            assert_eq!(
                n - left,
                want,
                "{backend:?} start {s:#x} (page {m:#x}) len {n}"
            );
            if want > 0 {
                assert!(
                    buf[PAD..PAD + want] == src[s - m..s - m + want],
                    "{backend:?} data {s:#x}+{n}"
                );
            }
            assert!(
                buf[..PAD]
                    .iter()
                    .chain(&buf[PAD + want..])
                    .all(|&b| b == CANARY),
                "{backend:?} dst touched outside the prefix {s:#x}+{n}"
            );
            assert!(gp.read() == src, "source changed");
        }
    }
    assert_eq!(
        g::is_guarded(),
        GUARDED,
        "the guarded backend silently fell back"
    );
}

#[test]
fn copy_to_sweep_both_backends() {
    let (gp, page) = (GuardedPage::new(), page_size());
    let m = gp.addr();
    let src: Vec<u8> = (0..page).map(pattern).collect();
    let mut expect = vec![CANARY; page];
    for backend in BACKENDS {
        for (s, n) in cases(m, page) {
            gp.fill(CANARY);
            let left = g::copy_to_with(backend, s, &src[..n]);
            let want = expected(s, n, m, page);
            assert!(left <= n);
            assert_eq!(
                n - left,
                want,
                "{backend:?} start {s:#x} (page {m:#x}) len {n}"
            );
            expect.fill(CANARY);
            if want > 0 {
                expect[s - m..s - m + want].copy_from_slice(&src[..want]);
            }
            assert!(
                gp.read() == expect,
                "{backend:?} page content after {s:#x}+{n}"
            );
        }
    }
    assert_eq!(g::is_guarded(), GUARDED);
}

#[test]
fn clear_sweep() {
    let (gp, page) = (GuardedPage::new(), page_size());
    let m = gp.addr();
    let mut expect = vec![CANARY; page];
    for (s, n) in cases(m, page) {
        gp.fill(CANARY);
        let left = g::clear(s, n);
        let want = expected(s, n, m, page);
        assert!(left <= n);
        assert_eq!(n - left, want, "start {s:#x} (page {m:#x}) len {n}");
        expect.fill(CANARY);
        if want > 0 {
            expect[s - m..s - m + want].fill(0);
        }
        assert!(gp.read() == expect, "page content after clear {s:#x}+{n}");
    }
    assert_eq!(g::is_guarded(), GUARDED);
}

/// Large in-bounds copies through every path (no fault): reads from a heap
/// buffer, writes and clears into a `UserMemory`.
#[test]
fn valid_copies_all_sizes() {
    let src: Vec<u8> = (0..70_000).map(pattern).collect();
    let out = UserMemory::new(70_016).unwrap();
    for n in (0..300).chain([2047, 2048, 2049, 4096, 65_536, 69_990]) {
        for off in [0, 1, 7] {
            let mut dst = vec![CANARY; n];
            assert_eq!(g::copy_from(&mut dst, src.as_ptr().addr() + off), 0);
            assert!(dst == src[off..off + n]);
            out.fill_at(0, n + off + 1, CANARY).unwrap();
            assert_eq!(g::copy_to(out.addr() + off, &src[..n]), 0);
            let mut back = vec![0; n + off + 1];
            out.read_at(0, &mut back).unwrap();
            assert!(back[off..off + n] == src[..n]);
            assert!(
                back[..off]
                    .iter()
                    .chain(&back[off + n..])
                    .all(|&b| b == CANARY)
            );
            assert_eq!(g::clear(out.addr() + off, n), 0);
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
