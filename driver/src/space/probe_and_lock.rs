//! A user-mode requestor's memory, through the framework's probe and lock.
//!
//! Every access:
//!
//! 1. a zero length returns at once, touching nothing and calling nothing;
//! 2. to 4. `usercap::check_user_range` with `DEFAULT_PROBE_LIMIT`
//!    (`MmUserProbeAddress` on x64), through `plan::user_access`: null and
//!    the first 64 KiB, misalignment, wrapping and kernel addresses are
//!    refused before the framework sees the address (so the framework's
//!    NULL-pointer bug check is unreachable), and the length is capped at
//!    `u32::MAX` (the framework truncates it to a ULONG);
//! 5. `lfence`, so no load below runs speculatively on a range that failed;
//! 6. `WdfRequestProbeAndLockUserBufferForRead`/`ForWrite`: the framework
//!    builds an MDL and calls `MmProbeAndLockPages(UserMode, ...)` inside its
//!    own `__try/__except`, so a bad page comes back as a status, never as an
//!    exception Rust could not catch (`plan::probe_failure` maps the status);
//!    it maps the locked pages (`MmGetSystemAddressForMdlSafe`), and
//!    `WdfMemoryGetBuffer` returns the mapping;
//! 7. one copy between the mapping and the kernel buffer, by `rep movsb`.
//!
//! The locked pages are still mapped, and writable, in the user process: a
//! racing thread can change them during the copy. The copy is a single
//! `asm!` block, which the compiler treats as opaque, so no Rust-level read of
//! racing memory exists and nothing is fetched twice; the device only ever
//! looks at the kernel copy. The MDL and mapping are released by the framework
//! when the request completes.
//!
//! This module is the whole user-mode path of `KmdfSpace` and has exactly two
//! entry points, [`read()`] and [`write()`], with the `AddressSpace` signatures
//! plus the request: an alternative backend (an SEH-guarded copy) can sit
//! beside it and the two be chosen by a cargo feature on `mod`
//! declarations alone.

use core::ffi::c_void;
use core::ptr;

use usercap::CaptureError;
use wdk_sys::{NT_SUCCESS, WDFMEMORY, WDFREQUEST, call_unsafe_wdf_function_binding};

use super::copy_bytes;
use crate::plan;

/// Which way a locked range is used.
#[derive(Clone, Copy)]
enum Access {
    /// `WdfRequestProbeAndLockUserBufferForRead`: the driver reads.
    Read,
    /// `WdfRequestProbeAndLockUserBufferForWrite`: the driver writes.
    Write,
}

/// Reads `dst.len()` bytes at user address `src` of `request`'s requestor.
///
/// `request` must be live, not completed, and this must run in its
/// requestor's thread (`KmdfSpace`'s invariant).
pub(super) fn read(
    request: WDFREQUEST,
    src: usize,
    dst: &mut [u8],
    align: usize,
) -> Result<(), CaptureError> {
    let Some(len) = plan::user_access(src, dst.len(), align)? else {
        return Ok(());
    };
    speculation_barrier();
    let mapped = lock(request, src, len, Access::Read)?;
    // SAFETY: (1) `mapped` maps `len` locked, readable bytes (`lock` checked
    // the mapping's size), valid until the request completes, which happens
    // after this returns; (2) `dst` is an exclusive borrow of exactly `len`
    // bytes; (3) `dst` is kernel memory owned by the caller and `mapped` a
    // fresh system mapping of user pages, so they do not overlap; (4) no
    // other reference to `dst` exists during the call.
    unsafe { copy_bytes(mapped, dst.as_mut_ptr(), len) };
    Ok(())
}

/// Writes `src` to user address `dst` of `request`'s requestor; same
/// requirements as [`read`].
pub(super) fn write(
    request: WDFREQUEST,
    dst: usize,
    src: &[u8],
    align: usize,
) -> Result<(), CaptureError> {
    let Some(len) = plan::user_access(dst, src.len(), align)? else {
        return Ok(());
    };
    speculation_barrier();
    let mapped = lock(request, dst, len, Access::Write)?;
    // SAFETY: (1) `src` is a shared borrow of `len` bytes; (2) `mapped` maps
    // `len` locked, writable bytes, valid until the request completes; (3)
    // `src` is kernel memory and `mapped` a fresh system mapping of user
    // pages, so they do not overlap; (4) no Rust reference to the mapping
    // exists.
    unsafe { copy_bytes(src.as_ptr(), mapped, len) };
    Ok(())
}

/// Probes, locks and maps `len` bytes at user address `addr`, and returns the
/// kernel mapping.
///
/// The caller has applied `plan::user_access`: `addr` is a non-null user
/// address and `0 < len <= u32::MAX`.
fn lock(
    request: WDFREQUEST,
    addr: usize,
    len: usize,
    access: Access,
) -> Result<*mut u8, CaptureError> {
    // A user address is never dereferenced by Rust: it is only handed to
    // the framework, which probes it and builds an MDL. Hence a pointer
    // without provenance.
    let buffer: *mut c_void = ptr::without_provenance_mut(addr);
    let mut memory: WDFMEMORY = ptr::null_mut();
    let status = match access {
        Access::Write => {
            // SAFETY: (1) `request` is live, not completed, and we run in its
            // requestor's thread (KmdfSpace invariant), as the call requires;
            // (2) `buffer` is non-null and `len` is non-zero and at most
            // u32::MAX (plan::user_access, run by the caller), so the
            // framework neither bug-checks on NULL nor truncates the length;
            // `len` is a size_t, `usize` in the bindings; (3) `memory` is a
            // valid out location; (4) IRQL is PASSIVE_LEVEL (checked in io.rs
            // before dispatch), as documented.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestProbeAndLockUserBufferForWrite,
                    request,
                    buffer,
                    len,
                    &raw mut memory
                )
            }
        }
        Access::Read => {
            // SAFETY: as for ForWrite just above: (1) live request in its
            // caller's thread; (2) non-null buffer, 0 < len <= u32::MAX;
            // (3) valid out location; (4) PASSIVE_LEVEL.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestProbeAndLockUserBufferForRead,
                    request,
                    buffer,
                    len,
                    &raw mut memory
                )
            }
        }
    };
    if !NT_SUCCESS(status) {
        return Err(plan::probe_failure(status));
    }
    if memory.is_null() {
        return Err(CaptureError::AccessViolation);
    }
    let mut mapped_len: usize = 0;
    // SAFETY: (1) `memory` is the WDFMEMORY the framework just returned for
    // this request, valid until the request completes; (2) `mapped_len` is a
    // valid size_t out location; (3) WdfMemoryGetBuffer may be called at any
    // IRQL.
    let mapped = unsafe {
        call_unsafe_wdf_function_binding!(WdfMemoryGetBuffer, memory, &raw mut mapped_len)
    };
    if mapped.is_null() || mapped_len < len {
        return Err(CaptureError::AccessViolation);
    }
    Ok(mapped.cast::<u8>())
}

/// Speculation barrier (probe rule 5).
fn speculation_barrier() {
    // SAFETY: (1) `_mm_lfence` needs only SSE2, which every x86_64 CPU has
    // and the x86_64-pc-windows-msvc target enables; (2) it reads and writes
    // no memory.
    unsafe { core::arch::x86_64::_mm_lfence() };
}
