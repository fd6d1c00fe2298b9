//! Fault-tolerant access to "user" memory of the current process: the only
//! `unsafe` code of `usercap-host`.
//!
//! This is a user-space model of the Linux kernel's `copy_from_user` family
//! (`arch/x86/lib/copy_user_64.S` plus the exception table, as wrapped by
//! Rust-for-Linux's `uaccess.rs`). The host model of usercap must copy from
//! *arbitrary* addresses of its own process, and a bad address has to come
//! back as an error (a short copy) instead of killing the process.
//!
//! # Design
//!
//! The kernel does not validate every page before touching it. It simply
//! performs the access with a small set of known instructions and, when one of
//! those instructions faults, the page-fault handler looks the faulting
//! instruction pointer up in an *exception table* and resumes at a *fixup*
//! that reports how many bytes were left. We do exactly the same:
//!
//! * Three leaf routines written in `global_asm!` ([`copy_from`], [`copy_to`],
//!   [`clear`]). Every instruction that touches the untrusted side carries a
//!   global label and an entry `(instruction, fixup, side)` in a table emitted
//!   next to it, in the spirit of the kernel's `_ASM_EXTABLE_UA`.
//! * Each routine is split by size. The copies move up to 256 bytes as one
//!   block of overlapping loads and stores by size class (the first and last
//!   4, 8, 16, 32, 64 or 128 bytes, as glibc's `memcpy` does; SSE2 `movups`,
//!   which is baseline on `x86_64`, in up to 16 registers), longer ranges up
//!   to 2 KiB in 128-byte blocks and then one last block, and above 2 KiB
//!   `rep movsb`; `clear` uses qword and 32-byte loops and `rep stosb`.
//!   Within a block every load precedes every store and the cursors do not
//!   move, so a fault in a block, a qword or a `rep` resumes in the byte loop
//!   at the block's start, which then faults on the exact first bad byte,
//!   whose fixup returns `rcx`. The returned count is therefore exact to the
//!   byte whatever path faulted (this also sidesteps valgrind's off-by-one on
//!   `rep movsb`, and any fast-string early stop).
//! * Inline load blocks for a value whose size is known at compile time, 1
//!   to 256 bytes ([`read_value`], [`read_into`]), as the kernel inlines
//!   `get_user` of a scalar: one `asm!` block of loads into registers,
//!   chosen by size class at compile time and expanded in the caller, each
//!   load listed in the same table with the same register roles. The
//!   compiler then stores the registers straight where the value goes (a
//!   returned `Result`, a capture slot), so a by-value capture writes each
//!   byte once and pays no call. A fault writes nothing and just fails the
//!   read: a capture is all or nothing, so no count is computed.
//! * The table is one section, `usercap_extable_v1`, that every object adds
//!   its entries to (the routines' and each inline block's, wherever the
//!   compiler instantiated it), flagged `SHF_GNU_RETAIN` so the linker's
//!   garbage collection keeps it, and read between the linker-defined
//!   `__start_usercap_extable_v1` and `__stop_usercap_extable_v1`, as the
//!   kernel reads `__ex_table`. The `v1` is the version of the entry format
//!   (the entry layout, its `side` values and the register roles the handler
//!   reads): two copies of this crate in one program (two semver-incompatible
//!   versions, which cargo builds as two crates) add to and read the same
//!   table only if they agree on the format, and a change of format changes
//!   the name, so neither handler ever misreads the other's entries. The
//!   routines' global symbols carry the crate's major and minor version
//!   (`usercap_host_0_1_copy_from`), so two such copies also link side by
//!   side. Each copy installs its own handler; the one installed second
//!   finds the first as its previous disposition and forwards to it (rule
//!   4).
//! * A `SIGSEGV`/`SIGBUS` handler (installed once by [`install`], which every
//!   copy function calls) that rewrites `RIP` to the fixup when, and only
//!   when, the fault is ours.
//!
//! # Rules the handler follows
//!
//! 1. `SA_SIGINFO | SA_ONSTACK`, so that std's stack-overflow report still
//!    works: the handler runs on std's alternate signal stack.
//! 2. Only real faults (`si_code > 0`) are claimed. A `SIGSEGV` sent with
//!    `kill`/`pthread_kill` while a copy is running is never a short copy.
//! 3. A fault is claimed only if `RIP` is a listed instruction *and* the fault
//!    address lies on that instruction's untrusted side, in the part of the
//!    range not copied yet (`[rsi, rsi + rcx)` for reads, `[rdi, rdi + rcx)`
//!    for writes). A fault on the trusted buffer is a bug of the caller and is
//!    not hidden. A non-canonical address raises `#GP`, which the kernel
//!    reports as `SI_KERNEL` with `si_addr == 0`; it is claimed only if the
//!    remaining untrusted range reaches past the 47-bit user half.
//! 4. Anything else is passed on, in place, to the disposition that was
//!    there before ours (saved when ours was installed): the handler never
//!    uninstalls itself, so a sent signal or a foreign fault never takes the
//!    guarded copies of other threads down with it. What that disposition
//!    gets is what the kernel would have given it without us:
//!    - `SIG_IGN`: a sent signal is discarded; a fault is treated as under
//!      `SIG_DFL`, since the kernel never lets a fault be ignored;
//!    - `SIG_DFL`: restored, and the default action happens: a fault
//!      repeats on return, a sent signal is raised again; the process dies
//!      as it would have;
//!    - a handler: called with its own convention (`SA_SIGINFO` or not),
//!      this signal's `siginfo` and context, its own mask, `SA_NODEFER` and
//!      `SA_RESETHAND` applied. If it changes the disposition while it runs
//!      (std's handler sets `SIG_DFL` for every fault that is not a stack
//!      overflow, and for every sent signal), the new disposition is what we
//!      forward to from then on, and ours is put back at once.
//!
//!    So one sent `SIGSEGV` goes to std's handler, which resets the
//!    disposition and returns: the process survives it, as it does without
//!    this crate, and the next one kills it, as it does without this crate.
//!    The guarded backend stays active throughout. One window remains: from
//!    the moment a forwarded-to handler changes the disposition to the
//!    moment ours is back (one `sigaction` call, a few hundred nanoseconds),
//!    a guarded copy that faults *on another thread* meets the handler's
//!    disposition instead of ours; for std's, `SIG_DFL`, so the process
//!    dies. Only a signal forwarded to a handler that writes the disposition
//!    opens it (for std's handler: a sent signal; a foreign fault kills the
//!    process anyway), and closing it would take intercepting the other
//!    handler's own `sigaction` call (interposing libc's symbol, or syscall
//!    user dispatch), which a library has no business doing. With three
//!    threads in faulting copies without pause on two cores, it killed 13
//!    of 200 processes that got one `SIGSEGV` sent to an idle thread, and 2
//!    of 200 that got one sent to the process (`host/tests/subprocess.rs`,
//!    the `_unpaused` scenarios, which no test runs); the tests keep their
//!    copiers out of it.
//!    We never hand a fault of our own copies to std's handler: on a fault
//!    it does not recognise it resets the disposition to `SIG_DFL` for the
//!    whole process. [`forwarded_signals`] counts the signals passed on.
//! 5. The handler only does arithmetic, atomic loads and stores, a spin
//!    lock held for three atomic accesses, `sigaction`, `sigismember`/
//!    `sigaddset`, `pthread_sigmask` and `raise`, all async-signal-safe, and
//!    calls the previous handler, which was written to run in a signal
//!    handler. No `SA_NODEFER`. It reads the signal frame through raw
//!    pointers only: glibc's `ucontext_t` (968 bytes) is longer than the
//!    kernel's (304), which the kernel follows with the `siginfo`, so a
//!    `&mut ucontext_t` would overlap `*info`.
//!
//! # Soundness: reads anywhere, writes only to [`UserMemory`]
//!
//! The copy routines are safe functions, so no argument may lead to
//! undefined behaviour. The two directions differ:
//!
//! * **Reads may target any address**, under one assumption. A read
//!   either faults (and becomes a short count) or returns bytes; it never
//!   changes memory, so it cannot break an invariant that Rust code relies
//!   on. The access is made by assembly the compiler cannot see into, with
//!   no Rust reference to the source. That makes a read harmless for memory
//!   that no Rust allocation owns and that only this module's routines
//!   touch: [`UserMemory`] (a user-mode `HostSpace` reads nothing else),
//!   unmapped and `PROT_NONE` pages. There, a read racing another thread's
//!   write is what `copy_from_user` racing a user thread is: unspecified,
//!   possibly torn bytes, and nothing worse, as with memory shared with
//!   another process. For memory that Rust code owns (the heap, a stack, a
//!   [`KernelBuffer`](crate::KernelBuffer)), which kernel-mode `HostSpace`,
//!   these functions and the Linux facade may read, the read is an access
//!   in the Rust abstract machine like any other: a read of bytes another
//!   thread writes at the same time, or of bytes under a live `&mut`
//!   elsewhere, is a data race or an aliasing violation, undefined
//!   behaviour however harmless the hardware finds it. These functions
//!   cannot check that, so the assumption is the caller's, as it is in a
//!   kernel, where a kernel-mode caller's pointers are trusted: kernel-mode
//!   reads of Rust memory must not race with writes to it or read memory a
//!   `&mut` holds (a source that overlaps the destination among them).
//!   `HostSpace` keeps to it: in user mode it reads only the user range, and
//!   in kernel mode it refuses a source that overlaps the destination (a
//!   request's input pointer at its own SystemBuffer), the one case it can
//!   see. The functions here do not check even that: [`overlaps`] costs
//!   about a nanosecond on every copy, a third of an 8-byte capture, and a
//!   user-mode probe has already made it impossible.
//! * **Writes may target only memory this model owns as user memory.** A
//!   write to an arbitrary address could land in a live `&`/`&mut`, a heap
//!   allocator's metadata or an immutable static: undefined behaviour reached
//!   from safe code. So [`copy_to`], [`copy_to_with`] and [`clear`] first
//!   check that the whole destination range lies inside one live
//!   [`UserMemory`]: an anonymous mapping this module created, into which it
//!   never hands out a Rust reference (only addresses and copies). Anything
//!   else is refused: nothing is written and the full length is returned, as
//!   if the first byte had faulted. The check and the write run under a read
//!   lock of the registry, and dropping a `UserMemory` takes the write lock
//!   to unregister *and* unmap it, so a region cannot be unmapped (and its
//!   addresses reused by an allocation Rust code references) between the
//!   check and the write.
//!
//! The registry is consulted only on writes; reads stay at memcpy cost.
//!
//! # Contract and limits
//!
//! * Return values are the number of bytes **not** copied, exact to the byte;
//!   `0` means success. Unlike Linux's `copy_from_user`, [`copy_from`] does
//!   **not** zero-fill the uncopied tail of the destination: the bytes after
//!   the copied prefix are left untouched, and callers that need Linux
//!   semantics zero-fill themselves (as [`crate::linux::copy_from_user`] does).
//! * A range that wraps around the address space, or (on `x86_64`) ends above
//!   `1 << 63`, is rejected up front: nothing is touched and the full length
//!   is returned. A zero length returns 0 without touching anything.
//! * A thread that blocks `SIGSEGV`/`SIGBUS` is killed by the kernel on any
//!   fault, including ours.
//! * **Other libraries' handlers.** Installed *before* [`install`] (std's,
//!   a crash reporter's), a handler gets every signal that is not ours, as
//!   rule 4 says. Installed *after* it, it gets every fault first,
//!   ours included: if it forwards what it does not recognise to the
//!   handler it found (ours), as well-behaved runtimes do, the guarded copy
//!   keeps working; if it does not, a fault in a guarded copy is whatever
//!   that handler makes of it, typically death.
//! * **A guarded copy claims its faults first.** A fault at a listed
//!   instruction on the untrusted side is ours, whatever the page is. If a
//!   copy reads memory that another library protects on purpose and
//!   recovers on a fault (a GC's barrier pages, a JIT's lazily committed
//!   code, a wasm runtime's lazily mapped linear memory), the other
//!   library's handler never sees that fault: the copy stops there, short.
//!   Faults the kernel resolves on its own (demand paging, swap-in,
//!   copy-on-write, `userfaultfd` ranges) raise no signal and are invisible
//!   to everyone; only what would have been a `SIGSEGV` or `SIGBUS` reaches
//!   a handler.
//! * **Not async-signal-safe.** The copy functions call [`install`], which
//!   runs a `Once` (it may wait for another thread's installation), and the
//!   writes take the [`UserMemory`] registry's read lock, which waits while
//!   a region is placed or dropped. Do not call them from a signal handler.
//! * A fault costs a few microseconds and faults serialise in the kernel: this
//!   is an error path, never a control-flow device for a fast path.
//! * Targets other than `x86_64` Linux use `process_vm_readv`/`writev` on our
//!   own pid for every backend. It is exact to the byte too: the kernel copies
//!   page by page and stops at the first inaccessible page, and accessibility
//!   is page-granular. On Unix systems other than Linux there is no fallback:
//!   every copy reports that nothing was copied.
#![allow(
    unsafe_code,
    reason = "the one module of usercap-host that needs unsafe: the guarded copy, the \
              signal handler, the speculation barrier and the mmap wrappers"
)]

use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod arch;
mod memory;
mod reservation;
mod system;
mod vm;

pub(crate) use memory::is_user_range_in;
pub use memory::{Prot, USER_RANGE_LEN, UserMemory, is_user_range, user_range};
pub(crate) use system::SystemPages;
pub use system::{
    MAX_KERNEL_BUFFER_LEN, MAX_KERNEL_BUFFERS, SYSTEM_SPACE_LEN, is_kernel_range, system_space,
};

/// Which copy implementation to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Exception-table routines; only on `x86_64` Linux, elsewhere (or if
    /// the handler could not be installed) this is the same as
    /// [`Backend::ProcessVmReadv`].
    #[default]
    Guarded,
    /// `process_vm_readv`/`process_vm_writev` on our own pid: one syscall per
    /// copy, the kernel's own fault-safe copy.
    ProcessVmReadv,
}

/// The system page size.
#[must_use]
pub fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf only reads a configuration value; it has no
    // preconditions.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(raw).ok().filter(|&p| p > 0).unwrap_or(4096);
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Installs the `SIGSEGV`/`SIGBUS` handler, once per process. Idempotent and
/// cheap after the first call; every copy function calls it. Does nothing on
/// targets without the guarded routines.
pub fn install() {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    arch::install();
}

/// Whether [`Backend::Guarded`] runs the exception-table routines (installs
/// the handler first). False on other targets and if installation failed;
/// once true, true for good: the handler never uninstalls itself (rule 4).
#[must_use]
pub fn is_guarded() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    return arch::active();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

/// How many signals the `SIGSEGV`/`SIGBUS` handler has passed on to the
/// disposition it found (rule 4 of the module docs): signals sent with
/// `kill`/`pthread_kill`, and faults that were not a guarded copy's. Counted
/// when the forward is done. Always 0 on targets without the handler.
#[must_use]
pub fn forwarded_signals() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    return arch::forwarded();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    0
}

/// A full speculation barrier: `lfence` on `x86_64`; elsewhere a compiler
/// fence, which keeps the order in the generated code but is no hardware
/// barrier.
///
/// `HostSpace` and the facade use [`mask_user_range`] instead (probe rule
/// 5). This stays for comparison: the bench's `lfence` row is its price, and
/// the driver's `KmdfSpace` issues one before the framework's probe-and-lock.
#[inline]
pub fn speculation_barrier() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_lfence` only requires SSE2, which is part of the x86_64
    // baseline (every x86_64 CPU has it, and the target enables it). It has
    // no operands and does not access memory.
    unsafe {
        core::arch::x86_64::_mm_lfence();
    }
    #[cfg(not(target_arch = "x86_64"))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Probe rule 5 without a serialising barrier: returns `addr` if
/// `[addr, addr + len)` neither wraps, nor ends above `limit`, nor overlaps
/// [system space](system_space); otherwise returns 0, the null page.
///
/// The caller has already rejected such ranges with ordinary branches, so
/// on the architectural path this returns `addr` unchanged. Its point is
/// the *speculative* path: if the CPU mispredicts one of those branches, the
/// copy that follows still loads from the address computed here, and that
/// computation is a data dependency (`sub`/`cmp`/`cmov`, no branch, in
/// `asm!` so the compiler can neither turn it into a branch nor fold it away
/// by knowing the branches passed; a `cmov` is not predicted, it waits for
/// its flags). A rejected range therefore becomes the
/// null page, which is never mapped (the first 64 KiB, as on Windows), and a
/// mispredicted check cannot feed a speculative load from kernel memory.
///
/// This is Linux's `mask_user_address`, which replaced `barrier_nospec()`
/// (`lfence`) in 64-bit x86 `copy_from_user` in 6.12 ("x86/uaccess: Avoid
/// barrier_nospec() in 64-bit copy_from_user()"), and which since 6.13 is a
/// `cmp`/`cmova` against `USER_PTR_MAX`. Like Linux after CVE-2020-12965, it
/// clamps to a canonical address rather than setting the high bits: AMD
/// CPUs may load speculatively through a non-canonical address. It has two
/// checks where Linux has one because the model's system space lies inside
/// this process's user half, not above it.
///
/// A `len` of 0 is checked as 1.
///
/// Only the last few instructions depend on `addr`; the rest (bounds
/// derived from `len`, `limit` and system space) runs in parallel with
/// whatever produces `addr`, so the copy's loads wait about three cycles
/// for the mask.
///
/// On targets other than `x86_64` it returns `addr` after a compiler fence:
/// no hardware guarantee, as [`speculation_barrier`] there.
#[inline]
#[must_use]
pub fn mask_user_range(addr: usize, len: usize, limit: usize) -> usize {
    mask_user_range_in(addr, len, limit, system_space())
}

/// [`mask_user_range`] against system-space bounds the caller has already
/// loaded for its branchy check, so that both use the same two loads.
#[inline]
#[must_use]
pub(crate) fn mask_user_range_in(
    addr: usize,
    len: usize,
    limit: usize,
    (kernel_start, kernel_end): (usize, usize),
) -> usize {
    // A zero length is checked as one byte: never looser than the branchy
    // checks, which a zero length does not reach (probe rule 1).
    let len = len.max(1);
    #[cfg(target_arch = "x86_64")]
    {
        let masked: usize;
        // SAFETY: register arithmetic only: no memory access, no stack, no
        // flags or registers live across it other than the declared
        // operands (`pure, nomem, nostack`; flags are clobbered, which
        // `asm!` assumes without `preserves_flags`).
        unsafe {
            core::arch::asm!(
                // Two range checks, each one compare and one `cmov` of the
                // address to zero. What depends only on `len`, `limit` and
                // the bounds is computed first, in the input registers; it
                // does not wait for `addr`, which leaves three instructions
                // between `addr` and the masked address the copy waits for.
                "xor {zero:e}, {zero:e}",
                // hi = limit - len, or 0 if len > limit. `addr > hi` is
                // exactly "wraps or ends past the limit".
                "sub {hi}, {len}",
                "cmovb {hi}, {zero}",
                // The ranges that overlap system space start in
                // [kstart - (len - 1), kend). Modulo 2^64, with
                // lo = kstart - (len - 1) and
                // width = kend - kstart + (len - 1), saturated at 2^64 - 1,
                // overlap is `addr - lo < width`. (A saturated width means
                // every such range overlaps or wraps. When system space is
                // not reserved, kstart = kend = 0 and only ranges that wrap
                // are flagged, which `hi` rejects as well.)
                "sub {len}, 1",
                "sub {width}, {lo}",
                "add {width}, {len}",
                "sbb {d}, {d}",
                "or {width}, {d}",
                "sub {lo}, {len}",
                // The three instructions that wait for `addr`, and the two
                // `cmov`s.
                "mov {d}, {addr}",
                "sub {d}, {lo}",
                "cmp {addr}, {hi}",
                "cmova {addr}, {zero}",
                "cmp {d}, {width}",
                "cmovb {addr}, {zero}",
                addr = inout(reg) addr => masked,
                len = inout(reg) len => _,
                hi = inout(reg) limit => _,
                lo = inout(reg) kernel_start => _,
                width = inout(reg) kernel_end => _,
                zero = out(reg) _,
                d = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        masked
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (len, limit, kernel_start, kernel_end);
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        addr
    }
}

/// Probe rule 5 as [`HostSpace`](crate::HostSpace) applies it: returns
/// `addr` if `[addr, addr + len)` lies inside the [user range](user_range)
/// and ends at or below `limit`; otherwise 0, the null page.
///
/// The same branch-free data dependency as [`mask_user_range`] (see there
/// for why): the caller rejected such ranges with ordinary branches, and
/// this makes the address the copy loads from depend on the answer, so a
/// mispredicted check cannot feed a speculative load from kernel memory.
/// Here kernel memory is everything outside the user range, so the check is
/// one range test where `mask_user_range` has two: with
/// `top = min(end, limit)`, `addr - start <= top - start - len`, computed
/// modulo 2^64 from bounds that do not depend on `addr`, so the copy waits
/// three instructions for the mask (a `mov`, a `sub` and a `cmp` before one
/// `cmov`). A window too small for `len` (or no user range yet) becomes
/// `start = 0, top - start - len = 0`, which only `addr = 0` passes: the null
/// page either way.
///
/// A `len` of 0 is checked as 1.
///
/// On targets other than `x86_64` it returns `addr` after a compiler fence,
/// as [`mask_user_range`] does.
#[inline]
#[must_use]
pub fn mask_to_user_range(addr: usize, len: usize, limit: usize) -> usize {
    mask_to_user_range_in(addr, len, limit, user_range())
}

/// [`mask_to_user_range`] against user-range bounds the caller has already
/// loaded for its branchy check, so that both use the same load.
#[inline]
#[must_use]
pub(crate) fn mask_to_user_range_in(
    addr: usize,
    len: usize,
    limit: usize,
    (start, end): (usize, usize),
) -> usize {
    let len = len.max(1);
    #[cfg(target_arch = "x86_64")]
    {
        let masked: usize;
        // SAFETY: register arithmetic only: no memory access, no stack, no
        // flags or registers live across it other than the declared
        // operands (`pure, nomem, nostack`; flags are clobbered, which
        // `asm!` assumes without `preserves_flags`).
        unsafe {
            core::arch::asm!(
                // What does not depend on `addr` first.
                "xor {zero:e}, {zero:e}",
                // top = min(end, limit)
                "cmp {top}, {limit}",
                "cmova {top}, {limit}",
                // room = top - start - len, the largest offset of an
                // accepted range from `start`; if top < start or the window
                // is shorter than len, start = room = 0.
                "sub {top}, {start}",
                "cmovb {top}, {zero}",
                "sub {top}, {len}",
                "cmovb {top}, {zero}",
                "cmovb {start}, {zero}",
                // The three instructions that wait for `addr`, and the cmov.
                "mov {d}, {addr}",
                "sub {d}, {start}",
                "cmp {d}, {top}",
                "cmova {addr}, {zero}",
                addr = inout(reg) addr => masked,
                len = in(reg) len,
                limit = in(reg) limit,
                start = inout(reg) start => _,
                top = inout(reg) end => _,
                zero = out(reg) _,
                d = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        masked
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (len, limit, start, end);
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        addr
    }
}

/// Copies `dst.len()` bytes from the untrusted address `src` into `dst`.
///
/// Returns the number of bytes **not** copied (0 on success); the copied
/// bytes are the prefix `dst[..dst.len() - ret]` and the rest of `dst` is
/// left untouched (not zero-filled). Never crashes on a bad `src`. See the
/// module docs for what a read of memory Rust code owns assumes (a `src`
/// that overlaps `dst` breaks it).
#[must_use]
#[inline]
pub fn copy_from(dst: &mut [u8], src: usize) -> usize {
    copy_from_with(Backend::Guarded, dst, src)
}

/// Copies `src` to the untrusted address `dst`, which must lie in one live
/// [`UserMemory`] (see the module docs). Returns the number of bytes not
/// written (0 on success); the written bytes are the prefix of `src`. A
/// destination outside user memory is refused whole: nothing is written and
/// `src.len()` is returned. Never crashes on a bad `dst`.
#[must_use]
pub fn copy_to(dst: usize, src: &[u8]) -> usize {
    copy_to_with(Backend::Guarded, dst, src)
}

/// Zeroes `len` bytes at the untrusted address `dst`, which must lie in one
/// live [`UserMemory`]. Returns the number of bytes not zeroed (0 on
/// success); the zeroed bytes are a prefix. A destination outside user
/// memory is refused whole (`len` is returned).
#[must_use]
pub fn clear(dst: usize, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    if !range_ok(dst, len) {
        return len;
    }
    memory::while_user_memory(dst, len, || {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if arch::active() {
            return arch::clear(dst, len);
        }
        vm::clear(dst, len)
    })
    .unwrap_or(len)
}

/// [`copy_from`] with an explicit backend.
#[must_use]
#[inline]
pub fn copy_from_with(backend: Backend, dst: &mut [u8], src: usize) -> usize {
    // SAFETY: a `&mut [u8]` is valid for `dst.len()` writes and not aliased
    // while we hold it.
    unsafe { copy_from_raw(backend, dst.as_mut_ptr(), dst.len(), src) }
}

/// Appends `len` bytes read from the untrusted address `src` to `out`,
/// without zero-filling them first: the copy goes straight into `out`'s
/// spare capacity, as Linux's `memdup_user` copies into a fresh `kmalloc`
/// buffer.
///
/// Returns the number of bytes **not** copied (0 on success); `out` grows
/// by the bytes that were copied, a prefix of the range. If `out`'s spare
/// capacity is smaller than `len`, nothing is read and `len` is returned
/// (reserve first, fallibly).
#[must_use]
pub fn copy_from_to_vec(backend: Backend, out: &mut Vec<u8>, src: usize, len: usize) -> usize {
    let old = out.len();
    let Some(spare) = out.spare_capacity_mut().get_mut(..len) else {
        return len;
    };
    // SAFETY: `spare` is `len` bytes of `out`'s unused capacity: valid for
    // writes and not aliased while we hold it; writing uninitialised memory
    // is what `MaybeUninit` allows.
    let left = unsafe { copy_from_raw(backend, spare.as_mut_ptr().cast(), len, src) };
    // The routines write exactly a prefix of `len - left` bytes.
    let copied = len - left;
    // SAFETY: the first `copied` bytes of the spare capacity, right after
    // the old length, were initialised by the copy, and `old + copied` is
    // within the capacity (`copied <= len <= spare capacity`).
    unsafe { out.set_len(old + copied) };
    left
}

/// Reads `len` bytes from the untrusted address `src` into a fresh,
/// fallibly allocated vector of pool blocks (`usercap`'s capture storage),
/// without zero-filling what the copy overwrites: each byte is written once,
/// as `memdup_user` writes a fresh `kmalloc` buffer. Bytes of the last block
/// past `len` are zeroed, so the whole vector is initialised.
///
/// # Errors
/// `NoMemory` if the allocation fails; `AccessViolation` if any byte could
/// not be read (the vector is then dropped: nothing partial escapes).
pub fn copy_from_to_pool(
    backend: Backend,
    src: usize,
    len: usize,
) -> Result<Vec<usercap::PoolBlock>, usercap::CaptureError> {
    use std::alloc::{Layout, alloc, dealloc};
    use usercap::{CaptureError, PoolBlock};
    let blocks = PoolBlock::blocks_for(len);
    if blocks == 0 {
        return Ok(Vec::new());
    }
    // Allocated here rather than with `Vec::try_reserve_exact`, whose
    // out-of-line growth path costs as much as the copy for small captures.
    let layout = Layout::array::<PoolBlock>(blocks).map_err(|_| CaptureError::NoMemory)?;
    // SAFETY: `layout` has a non-zero size (`blocks > 0` and a block is 16
    // bytes).
    let raw = unsafe { alloc(layout) };
    #[allow(
        clippy::cast_ptr_alignment,
        reason = "`alloc` returns memory aligned for `layout`, the layout of `[PoolBlock]`"
    )]
    let base = raw.cast::<PoolBlock>();
    if base.is_null() {
        return Err(CaptureError::NoMemory);
    }
    // Zero the last block first, so the bytes past `len` are initialised
    // and the copy then overwrites the rest of it: one 16-byte store rather
    // than a `memset` of the tail.
    // SAFETY: `blocks - 1` is in bounds of the allocation of `blocks`
    // blocks.
    let last = unsafe { base.add(blocks - 1) };
    // SAFETY: `last` is in the allocation, valid for a write of one block
    // and 16-aligned (the layout's alignment).
    unsafe { last.write(PoolBlock([0; 16])) };
    // SAFETY: `base` points at `blocks * 16 >= len` bytes we own, valid for
    // writes and not aliased by any reference.
    let left = unsafe { copy_from_raw(backend, base.cast(), len, src) };
    if left != 0 {
        // SAFETY: `base` was allocated above with `layout` and is not used
        // after this.
        unsafe { dealloc(base.cast(), layout) };
        return Err(CaptureError::AccessViolation);
    }
    let slice = std::ptr::slice_from_raw_parts_mut(base, blocks);
    // SAFETY: `slice` was allocated by the global allocator with the layout
    // of `[PoolBlock; blocks]`, which is what `Box<[PoolBlock]>` deallocates
    // with. All `blocks` elements are initialised: bytes `[0, len)` by the
    // copy and the rest of the last block by the zero store (the copy writes
    // a prefix of `len` bytes exactly), and any bit pattern is a valid
    // `PoolBlock`. Nothing else owns it.
    let boxed = unsafe { Box::from_raw(slice) };
    Ok(boxed.into_vec())
}

/// Reads one `T` from the untrusted address `src` into uninitialised
/// memory and returns `wrap(value)`: the copy is the only write to the
/// value. Up to [`INLINE_VALUE_MAX`] bytes the loads are inlined and the
/// value goes through registers, which the compiler stores straight into
/// wherever `wrap`'s result ends up (see `arch::read_small`); larger values
/// are copied by the routine into a local and then moved.
///
/// A zero-sized `T` is returned without touching memory.
///
/// # Errors
/// `AccessViolation` if any byte could not be read; nothing partial is
/// returned.
#[inline]
pub fn read_value<T: zerocopy::FromBytes, R>(
    backend: Backend,
    src: usize,
    wrap: impl FnOnce(T) -> R,
) -> Result<R, usercap::CaptureError> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if reads_inline::<T>(backend, src) {
        // A local of its own, whose address never reaches a call: the
        // compiler can then put the registers straight where `wrap`'s
        // result goes. Shared with the routine's path below, whose call
        // receives its address, it is a real stack slot, moved afterwards.
        let mut value = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: `reads_inline` checked the range and the handler;
        // `value` is valid for `size_of::<T>()` writes and nothing else
        // refers to it.
        if !unsafe { arch::read_small(src, value.as_mut_ptr()) } {
            return Err(usercap::CaptureError::AccessViolation);
        }
        // SAFETY: `read_small` returned true, so it wrote all
        // `size_of::<T>()` bytes, and `T: FromBytes` makes any initialised
        // bytes a valid `T`.
        return Ok(wrap(unsafe { value.assume_init() }));
    }
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    let len = core::mem::size_of::<T>();
    // SAFETY: `value` is valid for `size_of::<T>()` writes (uninitialised
    // is allowed) and nothing else refers to it.
    let left = unsafe { copy_from_raw(backend, value.as_mut_ptr().cast(), len, src) };
    if left != 0 {
        return Err(usercap::CaptureError::AccessViolation);
    }
    // SAFETY: `left == 0`: the copy wrote all `size_of::<T>()` bytes (every
    // backend writes exactly a prefix of `len - left` bytes), so the value
    // is fully initialised, and `T: FromBytes` makes every initialised byte
    // pattern a valid `T`.
    Ok(wrap(unsafe { value.assume_init() }))
}

/// Reads one `T` from the untrusted address `src` into `dst`, in place: the
/// copy is the only write. Inlined as [`read_value`] is, up to
/// [`INLINE_VALUE_MAX`] bytes.
///
/// # Errors
/// `AccessViolation` if any byte could not be read. `dst` may then hold a
/// partial copy (from the routine above [`INLINE_VALUE_MAX`]; the inline
/// loads write nothing on a fault).
#[inline]
pub fn read_into<T: zerocopy::FromBytes>(
    backend: Backend,
    src: usize,
    dst: &mut T,
) -> Result<(), usercap::CaptureError> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if reads_inline::<T>(backend, src) {
        // SAFETY: `reads_inline` checked the range and the handler; a
        // `&mut T` is valid for `size_of::<T>()` writes and not aliased while
        // we hold it, and any bytes written are a valid `T` (`FromBytes`).
        return if unsafe { arch::read_small(src, core::ptr::from_mut(dst)) } {
            Ok(())
        } else {
            Err(usercap::CaptureError::AccessViolation)
        };
    }
    let len = core::mem::size_of::<T>();
    // SAFETY: as above, for the routine's copy.
    let left = unsafe { copy_from_raw(backend, core::ptr::from_mut(dst).cast(), len, src) };
    if left == 0 {
        Ok(())
    } else {
        Err(usercap::CaptureError::AccessViolation)
    }
}

/// The largest value [`read_value`] and [`read_into`] read with inline
/// loads (on `x86_64` Linux, with the guarded backend active).
pub const INLINE_VALUE_MAX: usize = 256;

/// Whether a `T` at `src` is read with inline loads: 1 to
/// [`INLINE_VALUE_MAX`] bytes, the guarded backend, active, and a range that
/// does not wrap (`arch::read_small`'s preconditions, bar the destination).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline]
fn reads_inline<T>(backend: Backend, src: usize) -> bool {
    let len = core::mem::size_of::<T>();
    (1..=INLINE_VALUE_MAX).contains(&len)
        && backend == Backend::Guarded
        && range_ok(src, len)
        && arch::active()
}

/// The copy from an untrusted address, with the checks every form shares.
///
/// # Safety
/// `dst` must be valid for `len` writes (it may be uninitialised) and not
/// aliased by any reference during the call.
#[inline]
unsafe fn copy_from_raw(backend: Backend, dst: *mut u8, len: usize, src: usize) -> usize {
    if len == 0 {
        return 0;
    }
    if !range_ok(src, len) {
        return len;
    }
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if backend == Backend::Guarded && arch::active() {
        // SAFETY: forwarded from our own contract.
        return unsafe { arch::copy_from(dst, len, src) };
    }
    let _ = backend;
    // SAFETY: forwarded from our own contract.
    unsafe { vm::read(dst, len, src) }
}

/// Whether `[src, src + len)` and `[dst, dst + len)` share a byte (`len >
/// 0`): a read of the buffer being written (see the module docs).
#[inline]
#[must_use]
pub fn overlaps(src: usize, dst: usize, len: usize) -> bool {
    src.wrapping_sub(dst) < len || dst.wrapping_sub(src) < len
}

/// [`copy_to`] with an explicit backend.
#[must_use]
pub fn copy_to_with(backend: Backend, dst: usize, src: &[u8]) -> usize {
    if src.is_empty() {
        return 0;
    }
    if !range_ok(dst, src.len()) {
        return src.len();
    }
    memory::while_user_memory(dst, src.len(), || {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if backend == Backend::Guarded && arch::active() {
            return arch::copy_to(dst, src);
        }
        let _ = backend;
        vm::write(dst, src)
    })
    .unwrap_or(src.len())
}

/// The routines' own range check, like Linux's `access_ok` on the whole
/// address space: the range must not wrap and, on `x86_64`, must lie in the
/// lower half. Addresses in `[1 << 47, 1 << 63)` are let through: they fault
/// (`#GP` or page fault) and the handler claims them, which keeps
/// 5-level-paging user addresses working. The probe rules of
/// [`HostSpace`](crate::HostSpace) are stricter and run before this.
fn range_ok(addr: usize, len: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    const USER_END: usize = 1 << 63;
    #[cfg(not(target_arch = "x86_64"))]
    const USER_END: usize = usize::MAX;
    addr.checked_add(len).is_some_and(|end| end <= USER_END)
}
