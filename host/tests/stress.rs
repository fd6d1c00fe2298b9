//! Concurrent faulting copies: 4 threads x 100,000 copies that run into a
//! `PROT_NONE` page (400,000 faults, about 1 s per 100,000 in debug on 2 cores; faults
//! serialise in the kernel, so more threads do not make it faster) while a
//! fifth thread copies valid memory and checks the content.
#![cfg(unix)]

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this target has the exception-table routines.
const GUARDED: bool = cfg!(all(target_arch = "x86_64", target_os = "linux"));

mod common;

use common::GuardedPage;
use usercap_host::guarded::{self as g, page_size};

const THREADS: usize = 4;
const FAULTS_PER_THREAD: usize = 100_000;

#[test]
fn concurrent_faults_are_exact() {
    let (gp, page) = (GuardedPage::new(), page_size());
    let content: Vec<u8> = (0..page).map(|i| u8::try_from(i % 241).unwrap()).collect();
    gp.write(0, &content);
    let end = gp.addr() + page;
    let done = AtomicBool::new(false);
    let valid: Vec<u8> = (0..10_000)
        .map(|i| u8::try_from(i % 239).unwrap())
        .collect();

    std::thread::scope(|s| {
        let normal = s.spawn(|| {
            let mut copies = 0_u64;
            let mut dst = vec![0; valid.len()];
            while !done.load(Ordering::Relaxed) {
                for n in [5, 64, 1000, 10_000] {
                    dst[..n].fill(0);
                    assert_eq!(g::copy_from(&mut dst[..n], valid.as_ptr().addr()), 0);
                    assert!(dst[..n] == valid[..n]);
                    copies += 1;
                }
            }
            copies
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let content = &content;
                s.spawn(move || {
                    let mut buf = vec![0; 4200];
                    for i in 0..FAULTS_PER_THREAD {
                        // k mapped bytes before the guard page, n - k beyond it.
                        let k = (i * 31 + t * 7) % 300;
                        let n = k + 1 + (i * 13 + t) % 3900;
                        let left = g::copy_from(&mut buf[..n], end - k);
                        assert_eq!(left, n - k, "thread {t} copy {i}");
                        assert!(buf[..k] == content[page - k..], "thread {t} copy {i} data");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let copies = normal.join().unwrap();
        assert!(copies > 0);
        eprintln!(
            "{} faulting copies, {copies} concurrent valid copies",
            THREADS * FAULTS_PER_THREAD
        );
    });
    assert_eq!(g::is_guarded(), GUARDED);
}
