//! A racing writer: one thread rewrites the source, a page of user memory,
//! between two patterns while another copies it. Every copy must report
//! the full length (a race is never a short or torn count) and every byte
//! of the kernel copy must be one the writer wrote (each comes from one
//! fetch). The race must be seen to happen: copies that caught the writer
//! mid-page, holding both patterns. And the checker must catch a copy that
//! computes a byte from two fetches.
#![cfg(all(windows, target_arch = "x86_64"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use usercap::UserSlice;
use usercap_seh::{SehSpace, UserMemory, copy_from, page_size};

const A: u8 = 0xAA;
const B: u8 = 0x55;
/// Copies that saw both patterns before a run may stop early.
const ENOUGH_MIXED: u64 = 200;
/// The longest a run takes when the race is rare (a loaded machine).
const BOUND: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct Stats {
    copies: u64,
    mixed: u64,
    short: u64,
    foreign_bytes: u64,
    flips: u64,
}

/// Races `copy` (which returns the bytes not copied) against a writer
/// flipping the page between `A` and `B`, until `done` says so or `BOUND`.
fn race(copy: impl Fn(&mut [u8], usize) -> usize, done: impl Fn(&Stats) -> bool) -> Stats {
    let page = page_size();
    let mem = Arc::new(UserMemory::new(page).unwrap());
    mem.fill(A).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let writer = {
        let (mem, stop, flips) = (Arc::clone(&mem), Arc::clone(&stop), Arc::clone(&flips));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                mem.fill(B).unwrap();
                mem.fill(A).unwrap();
                flips.fetch_add(2, Ordering::Relaxed);
            }
        })
    };
    let mut stats = Stats::default();
    let mut buf = vec![0_u8; page];
    let start = Instant::now();
    while !done(&stats) && start.elapsed() < BOUND {
        let left = copy(&mut buf, mem.addr());
        stats.copies += 1;
        if left != 0 {
            stats.short += 1;
        }
        let (mut a, mut b) = (false, false);
        for &byte in &buf {
            match byte {
                A => a = true,
                B => b = true,
                _ => stats.foreign_bytes += 1,
            }
        }
        if a && b {
            stats.mixed += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    stats.flips = flips.load(Ordering::Relaxed);
    eprintln!("{stats:?} in {:?}", start.elapsed());
    stats
}

#[test]
fn a_racing_writer_never_shortens_a_copy_nor_mixes_fetches() {
    let stats = race(copy_from, |s| s.mixed >= ENOUGH_MIXED);
    assert!(stats.flips > 0, "the writer never ran");
    assert!(
        stats.mixed > 0,
        "no copy overlapped a rewrite: the race was not tested"
    );
    assert_eq!(stats.short, 0, "a race shortened a copy");
    assert_eq!(stats.foreign_bytes, 0, "a byte no writer wrote");
}

#[test]
fn a_racing_writer_under_a_capture() {
    let space = SehSpace::new();
    let stats = race(
        |dst, src| {
            let captured = UserSlice::<u8>::new(src, dst.len())
                .unwrap()
                .capture(&space);
            match captured {
                Ok(bytes) => {
                    dst.copy_from_slice(&bytes);
                    0
                }
                Err(_) => dst.len(),
            }
        },
        |s| s.mixed >= ENOUGH_MIXED,
    );
    assert!(stats.mixed > 0, "the race was not tested");
    assert_eq!(stats.short, 0);
    assert_eq!(stats.foreign_bytes, 0);
}

/// The checker against a deliberately wrong copy that fetches every byte
/// twice and combines the two (as a handler that validates one fetch and
/// uses another would): it sees bytes no writer wrote.
#[test]
fn the_checker_catches_a_copy_that_fetches_twice() {
    let stats = race(
        |dst, src| {
            let mut second = vec![0_u8; dst.len()];
            let left = copy_from(dst, src) + copy_from(&mut second, src);
            for (d, s) in dst.iter_mut().zip(&second) {
                *d |= s;
            }
            left
        },
        |s| s.foreign_bytes > 0,
    );
    assert!(
        stats.foreign_bytes > 0,
        "the double fetch went unseen: {stats:?}"
    );
}
