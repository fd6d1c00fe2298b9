//! A user-mode requestor's memory through `usercap-seh` (the default
//! backend): the probe rules, the speculation barrier and one SEH-guarded
//! copy, straight between the user address and the kernel buffer.
//!
//! Every access is `SehSpace::for_request(Mode::User)`'s:
//!
//! 1. a zero length returns at once, touching nothing;
//! 2. to 4. `usercap::check_user_range` with `DEFAULT_PROBE_LIMIT`
//!    (`MmUserProbeAddress` on x64): null and the first 64 KiB,
//!    misalignment, wrapping and kernel addresses are refused before any
//!    access;
//! 5. the branch-free address mask (a rejected range becomes the null page
//!    on the speculative path), in place of `lfence`;
//! 6. one guarded copy (`usercap_seh::guarded`): routines whose unwind data
//!    names ntoskrnl's `__C_specific_handler`, with scope tables over exactly
//!    their user-side accesses. A fault becomes the status of its exception
//!    code through `usercap::CaptureError::from_fault`, the table the
//!    probe-and-lock backend uses too: an access violation or a guard page
//!    is `STATUS_ACCESS_VIOLATION`, a page that could not be read in
//!    `STATUS_IN_PAGE_ERROR`.
//!
//! No MDL, no locked pages, no system mapping: a capture costs a copy. The
//! trade-off against the `probe-and-lock` feature (docs/windows.md,
//! "Choosing the user-memory backend"):
//!
//! - this backend reads and writes the user address itself, so it needs the
//!   requestor's context and PASSIVE_LEVEL (EvtIoInCallerContext checks
//!   both before dispatch), and it is not SMAP-proof: should Windows ever
//!   enforce SMAP for drivers, a direct user access would fault;
//! - probe-and-lock reads a system mapping of locked pages, which SMAP
//!   cannot object to, but it pins the pages, maps them into system space
//!   for every capture, and can fail under low resources (Driver Verifier's
//!   Low Resources Simulation fails the MDL, the lock and the mapping).
//!
//! The user pages stay writable by the user's other threads during the
//! copy, as with probe-and-lock: each byte is fetched once, and the device
//! only looks at the kernel copy.
//!
//! This module has the same two entry points as `probe_and_lock`, so the
//! feature chooses between them on `mod` declarations alone.

use usercap::{AddressSpace, CaptureError, Mode};
use usercap_seh::SehSpace;
use wdk_sys::WDFREQUEST;

/// The requestor's user address space.
fn space() -> SehSpace {
    // SAFETY: only `KmdfSpace::read`/`write` call this module, for a
    // user-mode requestor, under `KmdfSpace`'s invariant: (1) kernel mode,
    // in EvtIoInCallerContext, in the thread that sent the request, at
    // PASSIVE_LEVEL (io.rs refuses anything above before dispatch), before
    // the request completes; (2) the requestor mode is UserMode, so every
    // address below MmUserProbeAddress that the space's probe admits is the
    // requestor's user memory, never memory Rust code references; (3) the
    // space does not outlive this call.
    unsafe { SehSpace::for_request(Mode::User) }
}

/// Reads `dst.len()` bytes at user address `src` of `request`'s requestor.
///
/// `request` must be live, not completed, and this must run in its
/// requestor's thread (`KmdfSpace`'s invariant). The request itself is not
/// needed: the copy reads the user address directly.
pub(super) fn read(
    _request: WDFREQUEST,
    src: usize,
    dst: &mut [u8],
    align: usize,
) -> Result<(), CaptureError> {
    space().read(src, dst, align)
}

/// Writes `src` to user address `dst` of `request`'s requestor; same
/// requirements as [`read`]. A fault may leave a prefix written, as
/// `copy_to_user` does (the protocol's failure contract allows it).
pub(super) fn write(
    _request: WDFREQUEST,
    dst: usize,
    src: &[u8],
    align: usize,
) -> Result<(), CaptureError> {
    space().write(dst, src, align)
}
