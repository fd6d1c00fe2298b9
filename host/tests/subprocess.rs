//! Faults and signals that are not ours must behave as if the handler were
//! not there, and must not disturb the copies that are ours. Each scenario
//! re-runs this test binary with `GUARDED_SCENARIO` set, so the child dies
//! alone; the parent checks how it died, or that it lived.

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
    } else if let Some(target) = scenario.strip_prefix("one_signal_std_only_") {
        one_signal(false, target);
    } else if let Some(kind) = scenario.strip_prefix("disposition_") {
        // The disposition this crate finds when it installs its handler.
        set_disposition(kind);
        g::install();
        prove_handler_works();
        forwarded_to(kind);
    } else if scenario == "foreign_fault" {
        // The other library's handler comes first, so that ours finds it.
        install_foreign_handler();
        g::install();
        prove_handler_works();
        foreign_fault();
    } else {
        g::install();
        prove_handler_works();
        match scenario.as_str() {
            "overflow" => overflow(),
            "null" => null_deref(),
            "trusted_fault" => trusted_side_fault(),
            "kill" => kill_during_copies(true, |dst, src| g::copy_from(dst, src.as_ptr().addr())),
            other => match other.strip_prefix("one_signal_") {
                Some(target) => one_signal(true, target),
                None => panic!("unknown scenario {other}"),
            },
        }
    }
    eprintln!("SCENARIO RETURNED");
    std::process::exit(4);
}

/// Runs a scenario until its signal was delivered (exit code 6 says it was
/// merged into a pending fault; see `one_signal`), at most twenty times
/// (it is merged in about a third of the runs of `one_signal_copier`).
fn run_delivered(scenario: &str) -> Output {
    for _ in 0..20 {
        let out = run(scenario);
        if out.status.code() != Some(6) {
            return out;
        }
    }
    panic!("{scenario}: the signal was never delivered in twenty runs");
}

/// Runs one scenario in a child; a child still running after 60 s (a fault
/// that repeats forever, say) is killed, which the callers see as death by
/// SIGKILL.
fn run(scenario: &str) -> Output {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "scenario_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VAR, scenario)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("[{scenario}] still running after 60 s: killed");
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
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

/// Copier threads. With `faults`, each reads 64 bytes starting 10 bytes
/// before its own guard page, over and over, and checks it gets exactly 10
/// (the copy faults on every call); while [`PAUSE`] is set it copies 64
/// valid bytes instead, and says so in its `calm` flag. Without `faults`,
/// the threads copy valid memory with `copy_from_slice` (the baseline
/// without this crate).
struct Copiers {
    faults: bool,
    counts: Vec<&'static AtomicU64>,
    calm: Vec<&'static AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// While set, the copiers make no copy that faults.
static PAUSE: AtomicBool = AtomicBool::new(false);

impl Copiers {
    fn start(faults: bool, threads: usize) -> Self {
        let mut copiers = Self {
            faults,
            counts: Vec::new(),
            calm: Vec::new(),
            threads: Vec::new(),
        };
        for _ in 0..threads {
            let count: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
            let calm: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
            copiers.counts.push(count);
            copiers.calm.push(calm);
            copiers.threads.push(std::thread::spawn(move || {
                if faults {
                    let gp = GuardedPage::new();
                    let mut dst = [0_u8; 64];
                    loop {
                        let paused = PAUSE.load(Ordering::Acquire);
                        calm.store(paused, Ordering::Release);
                        let (src, expected) = if paused {
                            (gp.addr(), 0)
                        } else {
                            (gp.addr() + page_size() - 10, 54)
                        };
                        let left = g::copy_from(&mut dst, src);
                        if left != expected {
                            eprintln!("WRONG COUNT: {left} bytes left, expected {expected}");
                            std::process::exit(3);
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    let src = vec![0x5A_u8; 4096];
                    let mut dst = vec![0_u8; 4096];
                    loop {
                        dst.copy_from_slice(std::hint::black_box(&src));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        copiers.wait_for(100);
        copiers
    }

    fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Waits until `done` holds; exits with 5 if it does not within 20 s.
    fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        if !wait_at_most(Duration::from_secs(20), &done) {
            eprintln!("STALLED waiting for {what} at {:?}", self.counts());
            std::process::exit(5);
        }
    }

    /// Waits until every copier has done `more` copies from now on.
    fn wait_for(&self, more: u64) {
        let from = self.counts();
        self.wait_until("copies", || {
            self.counts()
                .iter()
                .zip(&from)
                .all(|(now, was)| now - was >= more)
        });
    }

    /// Stops the faulting copies: when this returns, no copier is in (or
    /// starts) a copy that faults.
    fn pause(&self) {
        PAUSE.store(true, Ordering::Release);
        self.wait_until("calm", || {
            self.calm.iter().all(|c| c.load(Ordering::Acquire))
        });
    }

    fn resume() {
        PAUSE.store(false, Ordering::Release);
    }

    fn pthread(&self, i: usize) -> libc::pthread_t {
        use std::os::unix::thread::JoinHandleExt;
        self.threads[i].as_pthread_t()
    }
}

/// Waits until `done` holds, for at most `limit`; whether it did.
fn wait_at_most(limit: Duration, done: impl Fn() -> bool) -> bool {
    let started = std::time::Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Copier threads run (faulting copies with `ours`, plain copies without);
/// one signal is sent to `target`:
///
/// - `copier`: `pthread_kill(SIGSEGV)` to the only copier, in the middle of
///   its faulting copies;
/// - `idle`: `pthread_kill(SIGSEGV)` to a thread that only sleeps;
/// - `process`: `kill(getpid(), SIGSEGV)`, to whichever thread;
/// - `sigbus`: `pthread_kill(SIGBUS)` to a copier.
///
/// Then every copier must do 2,000 more copies (faulting ones with `ours`),
/// each exact, and the guarded backend must still be active. std's handler,
/// without this crate, lets the process survive one sent SIGSEGV or SIGBUS
/// (it resets the disposition to `SIG_DFL` and returns); so must we.
///
/// For the three targets with several copiers, the copiers make no
/// faulting copy from just before the signal until our handler is done
/// with it (`pause`, then `forwarded_signals`): std's handler sets the
/// disposition to `SIG_DFL` for the few hundred nanoseconds before ours
/// is back, and a fault on another thread in that window kills the process
/// as it would under std alone (see `guarded`'s module docs, rule 4). The
/// `_unpaused` variants leave the copiers faulting throughout, to measure
/// that window; no test runs them.
fn one_signal(ours: bool, target: &str) {
    let (target, paused) = match target.strip_suffix("_unpaused") {
        Some(target) => (target, false),
        None => (target, target != "copier"),
    };
    let copiers = Copiers::start(ours, if target == "copier" { 1 } else { 3 });
    let idle = std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    eprintln!("COPYING {:?}", copiers.counts());
    let forwarded = g::forwarded_signals();
    if ours && paused {
        copiers.pause();
    }
    let (sig, thread) = match target {
        "copier" => (libc::SIGSEGV, Some(copiers.pthread(0))),
        "idle" => (
            libc::SIGSEGV,
            Some(std::os::unix::thread::JoinHandleExt::as_pthread_t(&idle)),
        ),
        "process" => (libc::SIGSEGV, None),
        "sigbus" => (libc::SIGBUS, Some(copiers.pthread(0))),
        other => panic!("unknown target {other}"),
    };
    let rc = if let Some(thread) = thread {
        // SAFETY: the threads are alive (they never return) and their
        // pthread_t stays valid while we hold the JoinHandles.
        unsafe { libc::pthread_kill(thread, sig) }
    } else {
        let pid = libc::pid_t::try_from(std::process::id()).unwrap();
        // SAFETY: kill of our own pid with a valid signal.
        unsafe { libc::kill(pid, sig) }
    };
    assert_eq!(rc, 0);
    eprintln!("SENT signal {sig} to {target}");
    if ours {
        // A sent SIGSEGV that arrives while one of the copier's own faults
        // is pending is merged into it by the kernel (a standard signal is
        // pending once or not at all) and never delivered: then this run
        // proves nothing, and says so (the parent runs it again).
        if !wait_at_most(Duration::from_secs(2), || {
            g::forwarded_signals() > forwarded
        }) {
            eprintln!("SIGNAL NOT DELIVERED");
            std::process::exit(6);
        }
        Copiers::resume();
    }
    copiers.wait_for(2_000);
    let guarded = if copiers.faults {
        format!("{}", g::is_guarded())
    } else {
        "n/a".into()
    };
    eprintln!(
        "SURVIVED ONE SIGNAL guarded={guarded} counts={:?}",
        copiers.counts()
    );
}

/// How many times `plain_handler` ran.
static PLAIN_CALLS: AtomicU64 = AtomicU64::new(0);

/// A handler without `SA_SIGINFO`, called with the signal number alone.
extern "C" fn plain_handler(sig: libc::c_int) {
    if sig == libc::SIGSEGV {
        PLAIN_CALLS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sets SIGSEGV's disposition before our handler is installed: `ignore`
/// (`SIG_IGN`), `plain` (`plain_handler`, no flags), `resethand`
/// (`plain_handler` with `SA_RESETHAND`).
fn set_disposition(kind: &str) {
    // SAFETY: plain data; all-zero is a valid sigaction.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = match kind {
        "ignore" => libc::SIG_IGN,
        "plain" | "resethand" => plain_handler as *const () as libc::sighandler_t,
        other => panic!("unknown disposition {other}"),
    };
    if kind == "resethand" {
        action.sa_flags = libc::SA_RESETHAND;
    }
    // SAFETY: a valid disposition for SIGSEGV.
    let rc = unsafe { libc::sigaction(libc::SIGSEGV, &raw const action, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// Sends this thread a SIGSEGV and waits until our handler has passed it on.
fn send_one() {
    let forwarded = g::forwarded_signals();
    // SAFETY: pthread_self has no preconditions.
    let this = unsafe { libc::pthread_self() };
    // SAFETY: pthread_kill to the calling thread with a valid signal.
    let rc = unsafe { libc::pthread_kill(this, libc::SIGSEGV) };
    assert_eq!(rc, 0);
    // The signal is delivered before pthread_kill returns to a thread that
    // sends it to itself and does not block it.
    assert!(g::forwarded_signals() > forwarded, "not passed on");
}

/// Sends one SIGSEGV, then does what distinguishes each disposition:
///
/// - `ignore`: the sent signal is discarded; a real fault (a null read) is
///   not ignorable and kills, as the kernel does without us;
/// - `plain`: the plain handler runs, each time (two signals), and stays;
/// - `resethand`: it runs once, and the disposition is then `SIG_DFL`, so
///   the second signal kills.
fn forwarded_to(kind: &str) {
    send_one();
    eprintln!(
        "AFTER ONE: calls={} guarded={}",
        PLAIN_CALLS.load(Ordering::Relaxed),
        g::is_guarded()
    );
    if kind == "ignore" {
        null_deref();
    } else {
        send_one();
        eprintln!("AFTER TWO: calls={}", PLAIN_CALLS.load(Ordering::Relaxed));
    }
}

/// The flag of the other library's page: set by its handler.
static FOREIGN_PAGE: AtomicU64 = AtomicU64::new(0);
static FOREIGN_RECOVERED: AtomicU64 = AtomicU64::new(0);

/// Another library's SIGSEGV handler, installed before ours: it recovers
/// from faults on its own page (a GC's or a JIT's barrier page: it makes
/// the page readable and lets the access repeat) and treats anything else
/// as std does (`SIG_DFL`, return).
extern "C" fn foreign_handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel (or the handler forwarding to us) passes this
    // signal's siginfo.
    let info = unsafe { &*info };
    let code = info.si_code;
    // SAFETY: si_addr is the valid member for a fault (code > 0), and for
    // a sent signal it reads the sender's pid and uid, which never fall in
    // the page.
    let addr = unsafe { info.si_addr() }.addr();
    let page = usize::try_from(FOREIGN_PAGE.load(Ordering::Relaxed)).unwrap_or(0);
    if code > 0 && page != 0 && (page..page + page_size()).contains(&addr) {
        // SAFETY: the page is our own mapping (see `foreign_fault`).
        unsafe {
            libc::mprotect(
                std::ptr::with_exposed_provenance_mut(page),
                page_size(),
                libc::PROT_READ,
            )
        };
        FOREIGN_RECOVERED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: plain data; all-zero is a valid sigaction (SIG_DFL).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = libc::SIG_DFL;
    // SAFETY: restores the default disposition, as std's handler does.
    unsafe { libc::sigaction(libc::SIGSEGV, &raw const action, std::ptr::null_mut()) };
}

fn install_foreign_handler() {
    // SAFETY: plain data; all-zero is a valid sigaction.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = foreign_handler as *const () as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: a valid handler of the SA_SIGINFO signature.
    let rc = unsafe { libc::sigaction(libc::SIGSEGV, &raw const action, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// A fault on the other library's page while copiers fault on theirs: the
/// other library recovers from its fault, and every copier goes on.
fn foreign_fault() {
    let copiers = Copiers::start(true, 3);
    // SAFETY: a fresh anonymous PROT_NONE mapping of one page.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page_size(),
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    FOREIGN_PAGE.store(page.expose_provenance() as u64, Ordering::Relaxed);
    // SAFETY: deliberately faults once: the page is PROT_NONE until the
    // foreign handler makes it readable; then the read repeats and reads 0.
    let value = unsafe { std::ptr::read_volatile(page.cast::<u8>()) };
    eprintln!(
        "FOREIGN FAULT RECOVERED {} times, read {value}",
        FOREIGN_RECOVERED.load(Ordering::Relaxed)
    );
    copiers.wait_for(2_000);
    eprintln!(
        "SURVIVED FOREIGN FAULT guarded={} counts={:?}",
        g::is_guarded(),
        copiers.counts()
    );
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
    // The first signal (almost surely landing in `rep movsb`) went to std's
    // handler, and the guarded backend stayed active.
    let second = err.lines().find(|l| l.starts_with("SIGNAL 2 "));
    assert!(
        second
            .expect("survived the first")
            .ends_with("guarded=true"),
        "the guarded backend stood down after one sent SIGSEGV"
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

/// The child survived its one signal, with the guarded backend as `guarded`
/// says (`n/a` for the baseline), and returned normally.
fn assert_survived_one_signal(out: &Output, guarded: &str) {
    let err = stderr(out);
    assert!(err.contains("SENT signal"), "no signal was sent");
    assert!(!err.contains("WRONG COUNT"), "a copy's count changed");
    assert!(
        err.contains(&format!("SURVIVED ONE SIGNAL guarded={guarded} ")),
        "did not survive one sent signal, or stood down: {:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(4), "returned normally");
}

// One sent signal, many threads in faulting copies: the process lives, as
// it does with std alone, and the copies stay guarded. Before the handler
// learnt to chain in place it gave the signal back and uninstalled itself,
// and the next fault of a copy in flight killed the process.

#[test]
fn one_sent_sigsegv_to_a_copier_kills_no_copy() {
    assert_survived_one_signal(&run_delivered("one_signal_copier"), "true");
}

#[test]
fn one_sent_sigsegv_to_an_idle_thread_kills_no_copy() {
    assert_survived_one_signal(&run_delivered("one_signal_idle"), "true");
}

#[test]
fn one_process_directed_sigsegv_kills_no_copy() {
    assert_survived_one_signal(&run_delivered("one_signal_process"), "true");
}

#[test]
fn one_sent_sigbus_kills_no_copy() {
    assert_survived_one_signal(&run_delivered("one_signal_sigbus"), "true");
}

/// The baseline: std alone survives each of these signals.
#[test]
fn one_sent_signal_baseline_without_handler() {
    for target in ["copier", "idle", "process", "sigbus"] {
        assert_survived_one_signal(&run(&format!("one_signal_std_only_{target}")), "n/a");
    }
}

/// A fault another library's handler recovers from goes to that handler,
/// and the copies in flight stay guarded.
#[test]
fn a_fault_another_handler_recovers_from_kills_no_copy() {
    let out = run("foreign_fault");
    let err = stderr(&out);
    assert!(err.contains("FOREIGN FAULT RECOVERED 1 times, read 0"));
    assert!(!err.contains("WRONG COUNT"), "a copy's count changed");
    assert!(
        err.contains("SURVIVED FOREIGN FAULT guarded=true "),
        "{:?}",
        out.status
    );
    assert_eq!(out.status.code(), Some(4));
}

/// `SIG_IGN`: a sent SIGSEGV is discarded, a fault still kills.
#[test]
fn an_ignored_sigsegv_is_ignored_and_a_fault_still_kills() {
    let out = run("disposition_ignore");
    let err = stderr(&out);
    assert!(
        err.contains("AFTER ONE: calls=0 guarded=true"),
        "{:?}",
        out.status
    );
    assert!(err.contains("ABOUT TO FAULT"));
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
}

/// A handler without `SA_SIGINFO` is called, with its convention, for
/// every sent signal, and stays the disposition we forward to.
#[test]
fn a_plain_handler_is_called_every_time() {
    let out = run("disposition_plain");
    let err = stderr(&out);
    assert!(
        err.contains("AFTER ONE: calls=1 guarded=true"),
        "{:?}",
        out.status
    );
    assert!(err.contains("AFTER TWO: calls=2"));
    assert_eq!(out.status.code(), Some(4));
}

/// `SA_RESETHAND`: the handler runs once, then the default action kills,
/// as the kernel does it.
#[test]
fn a_resethand_handler_runs_once_then_the_default_kills() {
    let out = run("disposition_resethand");
    let err = stderr(&out);
    assert!(
        err.contains("AFTER ONE: calls=1 guarded=true"),
        "{:?}",
        out.status
    );
    assert!(!err.contains("AFTER TWO"));
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
}
