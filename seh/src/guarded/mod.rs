//! The SEH-guarded copy: the only `unsafe` code of `usercap-seh`.
//!
//! This is the Windows x64 twin of `usercap-host`'s exception-table copy,
//! and of Linux's `copy_from_user` (`arch/x86/lib/copy_user_64.S` plus
//! `_ASM_EXTABLE_UA`): perform the access with a small set of known
//! instructions, and when one of them faults, resume at a fixup that reports
//! how many bytes were left. Linux finds the fixup in its exception table;
//! Windows finds it in the faulting function's unwind data.
//!
//! # The mechanism
//!
//! x64 exception handling is table-driven. Every function has a
//! `RUNTIME_FUNCTION` in `.pdata` pointing at its `UNWIND_INFO` in
//! `.xdata`, which describes the prologue (so the unwinder can undo it) and
//! may name a *language-specific handler*. When an instruction faults, the
//! dispatcher (`RtlDispatchException`, user mode or kernel) finds the
//! function that holds the faulting RIP and calls its handler.
//! `__C_specific_handler`, which MSVC names for every function with a
//! `__try`, reads a *scope table* stored right after the unwind info: a
//! count, then `{BeginAddress, EndAddress, HandlerAddress, JumpTarget}`
//! records, all image-relative. If the faulting RIP lies in
//! `[BeginAddress, EndAddress)` and the filter (HandlerAddress) says
//! "execute", it calls `RtlUnwindEx` to the function's own frame with the
//! exception code as the return value, and execution continues at
//! JumpTarget with `rax` = that code.
//!
//! The three routines of [`routines`](self) are written for that:
//!
//! - each is one `.seh_proc` with a real prologue: `push rsi`, `push rdi`,
//!   `push rbx`, each described by `.seh_pushreg`, then `.seh_endprologue`,
//!   and `.seh_handler __C_specific_handler, @except`;
//! - its scope table has one entry per group of instructions that touch the
//!   untrusted range (the loads of `copy_from`, the stores of `copy_to` and
//!   `clear`), and nothing else: the accesses to the trusted side, the
//!   arithmetic and the branches lie outside every scope, so a fault there
//!   is not ours and goes on to the next handler, as a bug should;
//! - at a jump target only `rsp` and the nonvolatile registers are defined
//!   (`RtlUnwindEx` restores the frame's nonvolatiles; `rcx`, the count in
//!   the fast paths, is garbage there). So the cursors live in `rsi`/`rdi`
//!   and the end of the untrusted range in `rbx`, and every target computes
//!   "bytes not done" from them.
//!
//! # The filter
//!
//! Every scope names one filter, `usercap_seh_filter`, a Rust
//! `extern "system"` function, rather than the constant 1
//! (EXCEPTION_EXECUTE_HANDLER) a C driver's `__except
//! (EXCEPTION_EXECUTE_HANDLER)` emits. It runs during dispatch, before
//! anything is unwound, and it:
//!
//! - takes exactly the memory faults a scoped access can raise,
//!   `STATUS_ACCESS_VIOLATION` (no-access, reserved or unmapped pages, and
//!   `#GP` on a non-canonical address), `STATUS_IN_PAGE_ERROR` (the page
//!   could not be read in) and `STATUS_GUARD_PAGE_VIOLATION`, and refuses
//!   every other code, which then goes on to the next handler as if the
//!   scope were not there (a breakpoint or single-step trap that no
//!   debugger took, an illegal instruction);
//! - records the code and the address the access touched
//!   (`ExceptionInformation[1]`) in the call's fault record, which the
//!   routine's first argument points at and which the filter finds through
//!   the establisher frame, as MSVC's filters find their function's locals.
//!
//! Why not the constant: the code has to reach the caller
//! ([`Outcome::code`]: an access violation and an in-page error are
//! different statuses), and the guard-page rule below needs the address.
//! On Windows `__C_specific_handler` passes the code to the target in
//! `rax`, but Wine 8.0's passes 0 (measured: `RtlUnwindEx` is called with a
//! return value of 0), so a design that read `rax` could not be tested
//! under Wine, and one that reads the record behaves the same on both.
//!
//! The price is kernel CFG. With HVCI, `__C_specific_handler`'s indirect
//! call to a filter is checked against the image's CFG bitmap. An image
//! built without CFG (a Rust driver's default) has no table, and the call
//! is allowed. An image built with `-C control-flow-guard` must list the
//! filter: the scope tables name it only in assembly, which the compiler
//! does not see, so the module also takes its address in a `#[used]`
//! static, which makes the compiler list it. Neither case has been run in
//! a kernel by this project. The filter itself only reads the exception
//! record and writes the fault record: it cannot fault, take a lock,
//! depend on IRQL or panic.
//!
//! # Exactness, on any CPU
//!
//! Each routine is split by size, as host's is: up to 96 bytes one block of
//! overlapping loads and stores (the first and last 4, 8, 16, 32 or 48
//! bytes, through `rax`/`rdx` or the volatile `xmm0` to `xmm5`; `xmm6` to
//! `xmm15` are nonvolatile on Windows and would have to be saved), longer
//! ranges in 96-byte blocks (`clear`: 128) and then one last block. Within
//! a block every load comes before every store and the cursors do not move,
//! so a fault in a block resumes in a byte loop at the block's start, which
//! faults again on the exact first bad byte, whose target returns
//! `rbx - cursor`. The result does not depend on where the CPU reports a
//! fault inside an instruction. `rep movsb` is not used: on this project's
//! CPUs it is 9 to 17x slower when `(dst - src) mod 4096` is small, its
//! registers at a fault are exact on some CPUs only, and the block loop
//! meets the targets without it (docs/performance.md). A byte written by
//! `copy_to` or `clear` before the fault lies in the returned prefix:
//! within a block the stores go in ascending order of pages, and the first
//! store to touch a bad page faults before anything lands there.
//!
//! The overlapping block loads read the middle bytes of a small range
//! twice; every byte of the kernel copy comes from one load, the later
//! one, and nothing is computed from the other.
//!
//! # Guard pages
//!
//! A `PAGE_GUARD` page faults once with `STATUS_GUARD_PAGE_VIOLATION` and
//! the system clears the guard as it raises it. A retry would then read
//! straight through the page. **A guard page ends a copy like a no-access
//! page: the bytes before it are done, the copy stops at its first byte,
//! and [`Outcome::code`] is `STATUS_GUARD_PAGE_VIOLATION`.** The guard is
//! consumed, as by any other access, so a second copy of the same range
//! reads the page. That is what Windows system services do ("If a guard
//! page exception occurs during a system service, the service typically
//! returns a failure status"), and what a C driver's `__except` does.
//!
//! The target of a block that faulted on a guard page copies byte by byte
//! from the cursor to the start of the page that holds the recorded
//! address (never below the cursor, never past the end), then fails there.
//! A page that becomes a guard page while the copy runs is a race with the
//! user, like any protection change: the result is still a prefix and a
//! failure.

//! # Soundness of the safe functions
//!
//! - [`copy_from`] is safe: it only reads `src`, through assembly the
//!   compiler cannot see into, with no Rust reference to the source. A fault
//!   becomes a short count. A source that overlaps `dst` is refused whole
//!   (nothing read or written), because it would read memory under a live
//!   `&mut`. A source that another thread writes, or that Rust code
//!   elsewhere holds `&mut` to, is read like `copy_from_user` reads racing
//!   user memory: the bytes are unspecified, possibly torn, never a crash.
//!   In the kernel the source is user memory, which no Rust reference
//!   covers; in user mode (tests, the `sim` transport) `SehSpace`'s probe
//!   admits only [`UserMemory`].
//! - [`copy_to`] and [`clear`] are `unsafe`: a write to an arbitrary address
//!   could land in memory Rust references. The caller vouches for the
//!   target: in the kernel, the probe rules put it below
//!   `MmUserProbeAddress`, in user space, where no kernel Rust object
//!   lives; in user mode, `SehSpace` writes only into a live
//!   [`UserMemory`], checked under the registry's lock as host does.
//!
//! # The kernel, CFG, CET and SMAP
//!
//! - Direct access to a user address is legal only in the requestor's
//!   context, below DISPATCH_LEVEL: EvtIoInCallerContext at PASSIVE_LEVEL.
//!   The probe rules must hold first; the guard turns a fault into a status,
//!   it does not decide what a user address is.
//! - A fault on an invalid *kernel* address is a bugcheck in the kernel
//!   whatever the scope table says (SEH does not protect kernel addresses).
//!   Only the user-mode probe makes the guarded copy safe to call on a
//!   user's pointer.
//! - usercap.sys is not built with `/guard:ehcont`, so its jump targets are
//!   not in an EH-continuation table: with kernel-mode CET (shadow stacks)
//!   enforcing EH continuation, the unwind to a target would be refused. The
//!   project makes no claim of CET compatibility.
//! - SMAP: the routines read user addresses directly, so they are not
//!   SMAP-proof; Windows does not enforce SMAP for drivers today.
//!   `WdfRequestProbeAndLockUserBuffer*` reads a system mapping instead and
//!   stays usercap.sys's alternative (the `probe-and-lock` feature).
//!
//! # What runs where
//!
//! User mode: the same routines run under Wine on Linux, whose
//! `__C_specific_handler` and unwinder implement the same tables; the
//! project's tests and benchmarks run there (the Windows ABI, not Windows).
//! Kernel mode: only on a Windows machine, where this project has run
//! nothing.
#![allow(
    unsafe_code,
    reason = "the one module of usercap-seh that needs unsafe: the guarded routines, \
              the address mask, copies into uninitialised memory and, in user mode, \
              VirtualAlloc"
)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

use usercap::{CaptureError, Mode, PoolBlock};

#[cfg(feature = "user")]
mod memory;
mod routines;

#[cfg(feature = "user")]
pub(crate) use memory::copy_to_user_memory;
#[cfg(feature = "user")]
pub use memory::{Prot, USER_SPACE_LEN, UserMemory, page_size, user_space};
#[cfg(test)]
mod unwind_tests;

/// An access to an inaccessible address: a no-access, reserved or unmapped
/// page, or a non-canonical address.
pub const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;
/// The page is valid but could not be read in (an I/O error of its backing
/// file).
pub const STATUS_IN_PAGE_ERROR: u32 = 0xC000_0006;
/// A `PAGE_GUARD` page was touched; the guard is cleared as it is raised.
pub const STATUS_GUARD_PAGE_VIOLATION: u32 = routines::GUARD_PAGE;

/// How a guarded copy ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// Bytes **not** done: 0 on success. The bytes done are the prefix
    /// `len - left`.
    pub left: usize,
    /// The exception code of the fault that ended the copy (for example
    /// [`STATUS_ACCESS_VIOLATION`]); 0 when `left` is 0. A range refused
    /// before any access (it wraps, or a source overlaps its destination)
    /// reports `STATUS_ACCESS_VIOLATION`.
    pub code: u32,
}

impl Outcome {
    /// Everything was done.
    pub const DONE: Outcome = Outcome { left: 0, code: 0 };

    /// What a routine's return value and its fault record say.
    const fn of(left: usize, fault: routines::Fault) -> Self {
        Outcome {
            left,
            code: if left == 0 { 0 } else { fault.code },
        }
    }

    /// Nothing of `len` bytes was done, refused before any access.
    const fn refused(len: usize) -> Self {
        Outcome {
            left: len,
            code: STATUS_ACCESS_VIOLATION,
        }
    }

    /// Whether every byte was done.
    #[must_use]
    pub const fn is_done(&self) -> bool {
        self.left == 0
    }

    /// `Ok` if every byte was done, else the capture error of the fault
    /// (see [`fault_error`]).
    ///
    /// # Errors
    /// [`fault_error`]`(code)` when `left > 0`.
    pub const fn result(&self) -> Result<(), CaptureError> {
        if self.left == 0 {
            Ok(())
        } else {
            Err(fault_error(self.code))
        }
    }
}

/// The capture error for a guarded access that faulted with `code`: the
/// table every Windows backend maps through,
/// [`CaptureError::from_fault`]. Of the codes the filter takes, an in-page
/// error (a valid page that could not be read in, not the caller's bad
/// pointer) is [`CaptureError::InPageError`]; an access violation and a
/// guard page are [`CaptureError::AccessViolation`].
#[must_use]
pub const fn fault_error(code: u32) -> CaptureError {
    CaptureError::from_fault(usercap::NtStatus(code.cast_signed()))
}

/// The routines' own check: the range must not wrap (their end pointer
/// `rbx` is `start + len`). No other address policy: that is
/// `SehSpace`'s.
const fn range_ok(addr: usize, len: usize) -> bool {
    addr.checked_add(len).is_some()
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte (both ranges
/// known not to wrap).
const fn overlaps(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a < b + b_len && b < a + a_len
}

/// Copies `dst.len()` bytes from the untrusted address `src` into `dst`.
///
/// Returns the number of bytes **not** copied (0 on success); the copied
/// bytes are the prefix `dst[..dst.len() - ret]`, exact to the byte, and the
/// rest of `dst` is left untouched. Never crashes on a bad `src`. A range
/// that wraps, or a `src` that overlaps `dst`, is refused whole. No address
/// policy: any other address is tried (module docs, "Soundness").
#[must_use]
#[inline]
pub fn copy_from(dst: &mut [u8], src: usize) -> usize {
    copy_from_outcome(dst, src).left
}

/// [`copy_from`], with the exception code of the fault that ended it.
#[must_use]
#[inline]
pub fn copy_from_outcome(dst: &mut [u8], src: usize) -> Outcome {
    let (ptr, len) = (dst.as_mut_ptr(), dst.len());
    if range_ok(src, len) && overlaps(src, len, ptr.addr(), len) {
        return Outcome::refused(len);
    }
    // SAFETY: a `&mut [u8]` is valid for `len` writes and not aliased
    // while we hold it, and the source does not overlap it (checked).
    unsafe { copy_from_raw(ptr, len, src) }
}

/// The copy from an untrusted address, with the checks every form shares.
///
/// # Safety
/// `dst` must be valid for `len` writes (it may be uninitialised), not
/// aliased by any reference during the call, and not overlap
/// `[src, src + len)`.
#[inline]
unsafe fn copy_from_raw(dst: *mut u8, len: usize, src: usize) -> Outcome {
    if len == 0 {
        return Outcome::DONE;
    }
    if !range_ok(src, len) {
        return Outcome::refused(len);
    }
    let mut fault = routines::Fault::default();
    // SAFETY: `dst` is valid for `len` writes (our contract) and is only
    // written by the routine's stores, which lie outside every scope: a
    // bad `dst` would not be swallowed. `src` is only read, by the scoped
    // loads, whose faults resume at a target that returns the count; the
    // range does not wrap (checked). `fault` is a live local the filter may
    // write during the call.
    let left = unsafe {
        routines::usercap_seh_copy_from(
            &raw mut fault,
            dst,
            core::ptr::with_exposed_provenance(src),
            len,
        )
    };
    Outcome::of(left, fault)
}

/// Copies `src` to the untrusted address `dst`. Returns the number of bytes
/// not written (0 on success); the written bytes are the prefix of `src`,
/// exact to the byte. Never crashes on a bad `dst`; a range that wraps is
/// refused whole.
///
/// # Safety
/// `[dst, dst + src.len())` must not be memory that Rust references or
/// that the program relies on (a live `&`/`&mut`, an allocator's metadata,
/// a static): in the kernel, a probed user address; in user mode, a live
/// [`UserMemory`] (what `SehSpace` checks). Unmapped, no-access and guard
/// pages are fine: the copy fails there.
#[must_use]
pub unsafe fn copy_to(dst: usize, src: &[u8]) -> usize {
    // SAFETY: forwarded from our own contract.
    unsafe { copy_to_outcome(dst, src) }.left
}

/// [`copy_to`], with the exception code of the fault that ended it.
///
/// # Safety
/// As [`copy_to`].
#[must_use]
pub unsafe fn copy_to_outcome(dst: usize, src: &[u8]) -> Outcome {
    let len = src.len();
    if len == 0 {
        return Outcome::DONE;
    }
    if !range_ok(dst, len) {
        return Outcome::refused(len);
    }
    let mut fault = routines::Fault::default();
    // SAFETY: `src` is valid for `len` reads, by the unscoped loads. `dst`
    // is only written by the scoped stores, whose faults resume at a
    // target that returns the count; the range does not wrap (checked);
    // that it is memory no Rust code relies on is our caller's contract.
    // `fault` is a live local the filter may write during the call.
    let left = unsafe {
        routines::usercap_seh_copy_to(
            &raw mut fault,
            core::ptr::with_exposed_provenance_mut(dst),
            src.as_ptr(),
            len,
        )
    };
    Outcome::of(left, fault)
}

/// Zeroes `len` bytes at the untrusted address `dst`. Returns the number of
/// bytes not zeroed (0 on success); the zeroed bytes are a prefix, exact to
/// the byte.
///
/// # Safety
/// As [`copy_to`]: the range must not be memory Rust references.
#[must_use]
pub unsafe fn clear(dst: usize, len: usize) -> usize {
    // SAFETY: forwarded from our own contract.
    unsafe { clear_outcome(dst, len) }.left
}

/// [`clear`], with the exception code of the fault that ended it.
///
/// # Safety
/// As [`copy_to`].
#[must_use]
pub unsafe fn clear_outcome(dst: usize, len: usize) -> Outcome {
    if len == 0 {
        return Outcome::DONE;
    }
    if !range_ok(dst, len) {
        return Outcome::refused(len);
    }
    let mut fault = routines::Fault::default();
    // SAFETY: as for `copy_to`, without a source: the scoped stores write
    // `dst`, which our caller vouches for.
    let left = unsafe {
        routines::usercap_seh_clear(
            &raw mut fault,
            core::ptr::with_exposed_provenance_mut(dst),
            len,
        )
    };
    Outcome::of(left, fault)
}

/// A proof that the holder runs where a probed user address is never memory
/// Rust references: in the kernel, in a requestor's context. Made only by
/// the unsafe [`Vouched::new`], which `SehSpace::for_request` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Vouched(());

impl Vouched {
    /// # Safety
    /// The caller guarantees what `SehSpace::for_request` documents: kernel
    /// mode, the requestor's context, user addresses probed before every
    /// write, and kernel requestors' buffers valid for their lengths.
    pub(crate) const unsafe fn new() -> Self {
        Self(())
    }
}

impl crate::SehSpace {
    /// The space of a request in usercap.sys: user mode probes against
    /// `[64 KiB, MmUserProbeAddress)` and writes to the probed address;
    /// kernel mode trusts the requestor's pointers (null and wrapping
    /// ranges refused).
    ///
    /// # Safety
    /// The caller guarantees that:
    /// - it runs in kernel mode, in the context of the thread that sent the
    ///   request (EvtIoInCallerContext), below DISPATCH_LEVEL, and uses the
    ///   space only there, before the request completes;
    /// - for [`Mode::User`], the requestor is a user-mode caller, so every
    ///   address below `MmUserProbeAddress` is the requestor's user memory
    ///   and never memory Rust code references;
    /// - for [`Mode::Kernel`], the requestor (a kernel component) passed
    ///   buffers that are valid for their lengths and that nothing else
    ///   references while the request runs, as every Windows driver trusts
    ///   a `KernelMode` requestor.
    #[must_use]
    pub const unsafe fn for_request(mode: Mode) -> Self {
        // SAFETY: forwarded from our own contract, which is `Vouched`'s.
        Self::vouched(mode, unsafe { Vouched::new() })
    }
}

/// [`copy_to_outcome`] for a holder of [`Vouched`].
pub(crate) fn copy_to_vouched(_proof: Vouched, dst: usize, src: &[u8]) -> Outcome {
    // SAFETY: `Vouched` exists only where its constructor's caller
    // guaranteed that a destination `SehSpace` probed (or a kernel
    // requestor handed over) is not memory Rust references.
    unsafe { copy_to_outcome(dst, src) }
}

/// Probe rule 5 without a serialising barrier: returns `addr` if
/// `[addr, addr + len)` lies in `[low, high)` without wrapping, otherwise
/// 0, the null page.
///
/// The caller has already rejected such ranges with ordinary branches, so
/// on the architectural path this returns `addr`. Its point is the
/// speculative path: the copy that follows loads from the address computed
/// here, and the computation is a data dependency (`sub`/`cmp`/`cmov`, in
/// `asm!` so the compiler can neither branch on it nor fold it away), so a
/// mispredicted check cannot feed a speculative load from a kernel address.
/// It is Linux's `mask_user_address` (a `cmp`/`cmova` against
/// `USER_PTR_MAX`), with a lower bound as well, because the user-mode model
/// reserves its user range inside the process (`usercap-host` masks twice
/// for the same reason). On Windows system space lies above
/// `MmUserProbeAddress`, so in the kernel `high` is that address and
/// `low` 64 KiB. A `len` of 0 is checked as 1.
#[inline]
#[must_use]
pub fn mask_user_range(addr: usize, len: usize, low: usize, high: usize) -> usize {
    let len = len.max(1);
    let masked: usize;
    // SAFETY: register arithmetic only: no memory access, no stack; flags
    // are clobbered, which `asm!` assumes without `preserves_flags`.
    unsafe {
        core::arch::asm!(
            // width = high - low; a range fits iff len <= width and
            // addr - low <= width - len (mod 2^64; addr < low wraps high).
            "xor {zero:e}, {zero:e}",
            "sub {width}, {low}",
            "sub {width}, {len}",
            "cmovb {addr}, {zero}",
            "mov {d}, {addr}",
            "sub {d}, {low}",
            "cmp {d}, {width}",
            "cmova {addr}, {zero}",
            addr = inout(reg) addr => masked,
            len = in(reg) len,
            low = in(reg) low,
            width = inout(reg) high => _,
            zero = out(reg) _,
            d = out(reg) _,
            options(pure, nomem, nostack),
        );
    }
    masked
}

/// Reads `len` bytes from the untrusted address `src` into a fresh,
/// fallibly allocated vector of pool blocks, without zero-filling what the
/// copy overwrites: each byte is written once, as `memdup_user` writes a
/// fresh `kmalloc` buffer. Bytes of the last block past `len` are zero.
///
/// # Errors
/// `NoMemory` if the allocation fails; the fault's error
/// ([`fault_error`]) if any byte could not be read (nothing partial
/// escapes).
pub fn copy_from_to_pool(src: usize, len: usize) -> Result<Vec<PoolBlock>, CaptureError> {
    let blocks = PoolBlock::blocks_for(len);
    if blocks == 0 {
        return Ok(Vec::new());
    }
    let mut storage: Box<[MaybeUninit<PoolBlock>]> = {
        let mut v = Vec::new();
        v.try_reserve_exact(blocks)
            .map_err(|_| CaptureError::NoMemory)?;
        v.resize_with(blocks, MaybeUninit::uninit);
        v.into_boxed_slice()
    };
    let base = storage.as_mut_ptr();
    // A kernel-mode space applies no probe, so nothing else keeps `src`
    // off the block just allocated (as `read_value` checks too).
    if range_ok(src, len) && overlaps(src, len, base.addr(), blocks * 16) {
        return Err(CaptureError::AccessViolation);
    }
    if let Some(last) = storage.last_mut() {
        // The bytes past `len` must be initialised; the copy overwrites
        // the rest of this block.
        last.write(PoolBlock([0; 16]));
    }
    // SAFETY: `base` points at `blocks * 16 >= len` bytes owned by
    // `storage`, valid for writes, not aliased by any reference during the
    // call (the `last_mut` borrow has ended), and not overlapping the
    // untrusted `src` range (checked above); the routine never reads
    // `dst`.
    let outcome = unsafe { copy_from_raw(base.cast(), len, src) };
    outcome.result()?;
    // SAFETY: every block is initialised: bytes `[0, len)` by the copy
    // (`left == 0`: the routine wrote all `len` bytes) and the rest of the
    // last block by the zero store above; any bit pattern is a valid
    // `PoolBlock`. `MaybeUninit<T>` has `T`'s layout.
    let storage = unsafe { storage.assume_init() };
    Ok(storage.into_vec())
}

/// Reads one `T` from the untrusted address `src` into uninitialised
/// memory and returns `wrap(value)`: the copy is the only write to the
/// value. A zero-sized `T` is returned without touching memory.
///
/// # Errors
/// The fault's error ([`fault_error`]) if any byte could not be read;
/// nothing partial is returned.
#[inline]
pub fn read_value<T: zerocopy::FromBytes, R>(
    src: usize,
    wrap: impl FnOnce(T) -> R,
) -> Result<R, CaptureError> {
    let mut value = MaybeUninit::<T>::uninit();
    let len = core::mem::size_of::<T>();
    if range_ok(src, len) && overlaps(src, len, value.as_ptr().addr(), len) {
        return Err(CaptureError::AccessViolation);
    }
    // SAFETY: `value` is valid for `size_of::<T>()` writes (uninitialised
    // is allowed), nothing else refers to it, and it does not overlap the
    // source (checked).
    let outcome = unsafe { copy_from_raw(value.as_mut_ptr().cast(), len, src) };
    outcome.result()?;
    // SAFETY: `left == 0`: the routine wrote all `size_of::<T>()` bytes, so
    // the value is initialised, and `T: FromBytes` makes every initialised
    // byte pattern a valid `T`.
    Ok(wrap(unsafe { value.assume_init() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_maps_codes() {
        assert_eq!(Outcome::DONE.result(), Ok(()));
        let av = Outcome {
            left: 3,
            code: STATUS_ACCESS_VIOLATION,
        };
        assert_eq!(av.result(), Err(CaptureError::AccessViolation));
        let guard = Outcome {
            left: 3,
            code: STATUS_GUARD_PAGE_VIOLATION,
        };
        assert_eq!(guard.result(), Err(CaptureError::AccessViolation));
        let in_page = Outcome {
            left: 3,
            code: STATUS_IN_PAGE_ERROR,
        };
        assert_eq!(in_page.result(), Err(CaptureError::InPageError));
    }

    #[test]
    fn mask_passes_exactly_the_ranges_inside() {
        let (low, high) = (0x1_0000, 0x7FFF_FFFF_0000);
        for (addr, len, ok) in [
            (0x1_0000, 1, true),
            (0xFFFF, 1, false),
            (0, 0, false),
            (high - 8, 8, true),
            (high - 7, 8, false),
            (high, 0, false),
            (usize::MAX - 3, 8, false),
            (0x1_0000, high - low, true),
            (0x1_0000, high - low + 1, false),
            (0x2_0000, usize::MAX, false),
        ] {
            let want = if ok { addr } else { 0 };
            assert_eq!(
                mask_user_range(addr, len, low, high),
                want,
                "{addr:#x}+{len}"
            );
        }
    }
}
