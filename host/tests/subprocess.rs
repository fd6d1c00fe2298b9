//! Faults that are not ours must behave as if the handler were not there.
//! Each scenario re-runs this test binary with `GUARDED_SCENARIO` set, so the
//! child dies alone; the parent checks how it died.

// Scenarios specific to the exception-table handler.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

mod common;

use common::GuardedPage;
use usercap_host::guarded::{self as g, page_size};

const VAR: &str = "GUARDED_SCENARIO";

/// The child side: does nothing unless `GUARDED_SCENARIO` is set.
#[test]
fn scenario_child() {
    let Ok(scenario) = std::env::var(VAR) else {
        return;
    };
    if scenario == "kill_std_only" {
        kill_during_copies(false, |dst, src| {
            dst.copy_from_slice(src);
            0
        });
    } else {
        g::install();
        prove_handler_works();
        match scenario.as_str() {
            "overflow" => overflow(),
            "null" => null_deref(),
            "trusted_fault" => trusted_side_fault(),
            "kill" => kill_during_copies(true, |dst, src| g::copy_from(dst, src.as_ptr().addr())),
            other => panic!("unknown scenario {other}"),
        }
    }
    eprintln!("SCENARIO RETURNED");
    std::process::exit(4);
}

fn run(scenario: &str) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "scenario_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VAR, scenario)
        .output()
        .unwrap();
    eprintln!(
        "[{scenario}] {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A short copy first, so the handler is demonstrably installed and active.
fn prove_handler_works() {
    let gp = GuardedPage::new();
    let mut buf = [0; 64];
    assert_eq!(g::copy_from(&mut buf, gp.addr() + page_size() - 10), 54);
    assert!(g::is_guarded());
    eprintln!("HANDLER ACTIVE");
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    if depth == u64::MAX {
        return 0;
    }
    recurse(std::hint::black_box(depth) + 1) + frame[7]
}

fn overflow() {
    let t = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| recurse(0))
        .unwrap();
    let _ = t.join();
}

#[inline(never)]
fn null_deref() {
    eprintln!("ABOUT TO FAULT");
    let p = std::hint::black_box(std::ptr::null::<u8>());
    // SAFETY: deliberately not safe: a genuine null read, outside the guarded
    // routines, which must kill the process with SIGSEGV.
    let _ = unsafe { std::ptr::read_volatile(p) };
}

/// `copy_to` whose *trusted* source slice runs into a `PROT_NONE` page: a
/// caller bug (rule 6), which must not become a short copy.
fn trusted_side_fault() {
    let gp = GuardedPage::new();
    let target = GuardedPage::new();
    let len = page_size(); // > 2 KiB: `rep movsb`, listed for its destination side
    let start = std::hint::black_box(gp.addr() + page_size() - 16);
    // SAFETY: deliberately not safe: all but 16 bytes are PROT_NONE, and
    // reading them must kill the process.
    let bad =
        unsafe { std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(start), len) };
    let left = g::copy_to(target.addr(), bad);
    eprintln!("CLAIMED A TRUSTED-SIDE FAULT: {left} left");
}

/// One thread copies 64 MiB with `copy` over and over and reports any short
/// copy; once the first copy is done (pages populated, so the copier spends
/// its time inside the routine), this thread sends it SIGSEGV with
/// `pthread_kill` every 10 ms.
fn kill_during_copies(ours: bool, copy: fn(&mut [u8], &[u8]) -> usize) {
    use std::os::unix::thread::JoinHandleExt;
    static STARTED: AtomicBool = AtomicBool::new(false);
    static COPIES: AtomicU64 = AtomicU64::new(0);
    let copier = std::thread::spawn(move || {
        let src = vec![0x5A_u8; 64 << 20];
        let mut dst = vec![0_u8; 64 << 20];
        loop {
            STARTED.store(true, Ordering::Release);
            let left = copy(&mut dst, &src);
            if left != 0 {
                eprintln!("SHORT COPY: {left} bytes left");
                std::process::exit(3);
            }
            COPIES.fetch_add(1, Ordering::Relaxed);
        }
    });
    while !STARTED.load(Ordering::Acquire) || COPIES.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    for i in 1..=100 {
        std::thread::sleep(Duration::from_millis(10));
        // Asking `is_guarded` would install the handler: not in the baseline.
        let guarded = if ours {
            format!("{}", g::is_guarded())
        } else {
            "n/a".into()
        };
        eprintln!(
            "SIGNAL {i} after {} copies, guarded={guarded}",
            COPIES.load(Ordering::Relaxed)
        );
        // SAFETY: the copier thread is alive (it never returns) and its
        // pthread_t stays valid while we hold the JoinHandle.
        let rc = unsafe { libc::pthread_kill(copier.as_pthread_t(), libc::SIGSEGV) };
        assert_eq!(rc, 0);
    }
    eprintln!("SURVIVED 100 SIGNALS");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn stack_overflow_still_reported() {
    let out = run("overflow");
    let err = stderr(&out);
    assert!(err.contains("HANDLER ACTIVE"));
    assert!(
        err.contains("has overflowed its stack"),
        "std's report is missing"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
}

#[test]
fn null_deref_still_kills() {
    let out = run("null");
    let err = stderr(&out);
    assert!(err.contains("HANDLER ACTIVE") && err.contains("ABOUT TO FAULT"));
    assert!(!err.contains("overflowed"));
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
}

#[test]
fn trusted_side_fault_still_kills() {
    let out = run("trusted_fault");
    let err = stderr(&out);
    assert!(err.contains("HANDLER ACTIVE"));
    assert!(
        !err.contains("CLAIMED"),
        "a fault on the trusted buffer became a short copy"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
}

#[test]
fn sent_sigsegv_is_not_a_short_copy() {
    let out = run("kill");
    let err = stderr(&out);
    assert!(err.contains("SIGNAL 1 "), "no signal was sent");
    assert!(
        !err.contains("SHORT COPY"),
        "a sent SIGSEGV became a short copy"
    );
    // The first signal (almost surely landing in `rep movsb`) was given back,
    // not claimed: the handler stood down before the second was sent.
    let second = err.lines().find(|l| l.starts_with("SIGNAL 2 "));
    assert!(
        second
            .expect("survived the first")
            .ends_with("guarded=false"),
        "the first sent SIGSEGV was claimed"
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "expected death by SIGSEGV"
    );
    // Same as without the handler: std swallows the first, a later one kills
    // (usually the second; SIGSEGV is a core-dump signal, so a copier inside
    // a long syscall dies only when it leaves it).
    assert!(err.contains("SIGNAL 2 ") && !err.contains("SURVIVED"));
}

/// Baseline for the test above, without this crate: std's own SIGSEGV
/// handler treats the first sent SIGSEGV as an unrecognised fault, resets the
/// disposition to `SIG_DFL` and returns, so the process survives it; the next
/// kills. The guarded run must show the same: nothing more, nothing less.
#[test]
fn sent_sigsegv_baseline_without_handler() {
    let out = run("kill_std_only");
    let err = stderr(&out);
    assert!(
        err.contains("SIGNAL 2 ") && !err.contains("SURVIVED"),
        "std no longer swallows the first SIGSEGV?"
    );
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
}
