//! `KmdfSpace`: the requester's address space, as `usercap` sees it.
//!
//! This is the driver's only backend and the only code in usercap.sys that
//! reads or writes memory named by a request.
//!
//! **User mode** (`WdfRequestGetRequestorMode` is `UserMode`), every access:
//!
//! 1. a zero length returns at once, touching nothing and calling nothing;
//! 2. to 4. `usercap::check_user_range` with `DEFAULT_PROBE_LIMIT`
//!    (`MmUserProbeAddress` on x64): null and the first 64 KiB, misalignment,
//!    wrapping and kernel addresses are refused before the framework sees the
//!    address (so the framework's NULL-pointer bug check is unreachable), and
//!    the length is capped at `u32::MAX` (the framework truncates it to a
//!    ULONG);
//! 5. `lfence`, so no load below runs speculatively on a range that failed;
//! 6. `WdfRequestProbeAndLockUserBufferForRead`/`ForWrite`: the framework
//!    builds an MDL and calls `MmProbeAndLockPages(UserMode, ...)` inside its
//!    own `__try/__except`, so a bad page comes back as a status, never as an
//!    exception Rust could not catch; it maps the locked pages
//!    (`MmGetSystemAddressForMdlSafe`), and `WdfMemoryGetBuffer` returns the
//!    mapping;
//! 7. one copy between the mapping and the kernel buffer, by `rep movsb`.
//!
//! The locked pages are still mapped, and writable, in the user process: a
//! racing thread can change them during the copy. The copy is a single
//! `asm!` block, which the compiler treats as opaque, so no Rust-level read of
//! racing memory exists and nothing is fetched twice; the device only ever
//! looks at the kernel copy. The MDL and mapping are released by the framework
//! when the request completes.
//!
//! **Kernel mode** (any other requestor mode): the request came from a kernel
//! component, whose buffers are kernel memory; Windows does not probe them and
//! neither does this backend (`WdfRequestProbeAndLockUserBuffer*` always
//! probes as UserMode and would refuse them). Null and wrapping ranges are
//! still refused. This trusts the kernel caller exactly as the I/O manager
//! does: a kernel driver that sends usercap a bad pointer with `KernelMode`
//! crashes the machine, as it would with any Windows driver.

use core::ffi::c_void;
use core::ptr;

use usercap::{AddressSpace, CaptureError, Mode};
use wdk_sys::{NT_SUCCESS, WDFMEMORY, WDFREQUEST, call_unsafe_wdf_function_binding};

use crate::plan;

/// The address space of one request.
///
/// Invariant: `request` is the WDFREQUEST this value was built for, not yet
/// completed, and this value lives only inside `EvtIoInCallerContext`, in the
/// requesting thread, before the request is completed.
pub(crate) struct KmdfSpace {
    request: WDFREQUEST,
    mode: Mode,
}

impl KmdfSpace {
    /// The space of `request`, whose requestor mode is `mode`.
    ///
    /// The caller guarantees the invariant above: `request` is live and not
    /// completed while the space is used, and we are in its caller context.
    pub(crate) fn new(request: WDFREQUEST, mode: Mode) -> Self {
        Self { request, mode }
    }

    /// Probes, locks and maps `len` bytes at user address `addr` for reading
    /// (`write == false`) or writing, and returns the kernel mapping.
    fn lock_user(&self, addr: usize, len: usize, write: bool) -> Result<*mut u8, CaptureError> {
        // A user address is never dereferenced by Rust: it is only handed to
        // the framework, which probes it and builds an MDL. Hence a pointer
        // without provenance.
        let buffer: *mut c_void = ptr::without_provenance_mut(addr);
        let mut memory: WDFMEMORY = ptr::null_mut();
        let status = if write {
            // SAFETY: (1) `self.request` is live, not completed, and we run in
            // its requestor's thread (KmdfSpace invariant), as the call
            // requires; (2) `buffer` is non-null and `len` is non-zero and at
            // most u32::MAX (plan::user_access, run by the caller), so the
            // framework neither bug-checks on NULL nor truncates the length;
            // (3) `memory` is a valid out location; (4) IRQL is PASSIVE_LEVEL
            // (checked in io.rs before dispatch), as documented.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestProbeAndLockUserBufferForWrite,
                    self.request,
                    buffer,
                    len,
                    &mut memory
                )
            }
        } else {
            // SAFETY: as for ForWrite just above: (1) live request in its
            // caller's thread; (2) non-null buffer, 0 < len <= u32::MAX;
            // (3) valid out location; (4) PASSIVE_LEVEL.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfRequestProbeAndLockUserBufferForRead,
                    self.request,
                    buffer,
                    len,
                    &mut memory
                )
            }
        };
        if !NT_SUCCESS(status) {
            return Err(plan::probe_failure(status));
        }
        if memory.is_null() {
            return Err(CaptureError::AccessViolation);
        }
        let mut mapped_len: usize = 0;
        // SAFETY: (1) `memory` is the WDFMEMORY the framework just returned
        // for this request, valid until the request completes; (2)
        // `mapped_len` is a valid out location; (3) WdfMemoryGetBuffer may be
        // called at any IRQL.
        let mapped = unsafe {
            call_unsafe_wdf_function_binding!(WdfMemoryGetBuffer, memory, &mut mapped_len)
        };
        if mapped.is_null() || mapped_len < len {
            return Err(CaptureError::AccessViolation);
        }
        Ok(mapped.cast::<u8>())
    }
}

/// Speculation barrier (probe rule 5).
fn speculation_barrier() {
    // SAFETY: (1) `_mm_lfence` needs only SSE2, which every x86_64 CPU has
    // and the x86_64-pc-windows-msvc target enables; (2) it reads and writes
    // no memory.
    unsafe { core::arch::x86_64::_mm_lfence() };
}

/// Copies `len` bytes from `src` to `dst` with one `rep movsb`.
///
/// An `asm!` block is opaque to the compiler: it cannot split, repeat or
/// reorder the loads, which is what a copy out of memory another thread may
/// be writing needs (see the module docs).
///
/// # Safety
/// (1) `src` is valid for reads of `len` bytes; (2) `dst` is valid for writes
/// of `len` bytes; (3) the ranges do not overlap; (4) nothing else holds a
/// Rust reference to `dst`'s bytes during the call.
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: (1)-(4) are the caller's guarantees, which make every byte this
    // instruction reads and writes valid; (5) the direction flag is clear on
    // entry to an asm! block (Rust's asm! rules, and the Windows x64 ABI), so
    // the copy runs upwards, and `rep movsb` leaves it clear and changes no
    // other flag (`preserves_flags`); (6) it uses no stack (`nostack`); the
    // three registers it advances are declared clobbered.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
    }
}

impl AddressSpace for KmdfSpace {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        match self.mode {
            Mode::User => {
                let Some(len) = plan::user_access(src, dst.len(), align)? else {
                    return Ok(());
                };
                speculation_barrier();
                let mapped = self.lock_user(src, len, false)?;
                // SAFETY: (1) `mapped` maps `len` locked, readable bytes
                // (lock_user checked the mapping's size), valid until the
                // request completes, which happens after this returns;
                // (2) `dst` is an exclusive borrow of exactly `len` bytes;
                // (3) `dst` is kernel memory owned by the caller and `mapped`
                // a fresh system mapping of user pages, so they do not overlap;
                // (4) no other reference to `dst` exists during the call.
                unsafe { copy_bytes(mapped, dst.as_mut_ptr(), len) };
                Ok(())
            }
            Mode::Kernel => {
                let Some(len) = plan::kernel_access(src, dst.len())? else {
                    return Ok(());
                };
                // A kernel requestor's buffer is dereferenced directly: the
                // pointer takes the provenance the kernel caller exposed.
                let from: *const u8 = ptr::with_exposed_provenance(src);
                // SAFETY: (1) a KernelMode requestor vouches that `src` names
                // `len` readable kernel bytes (the documented trust
                // assumption of the module docs; null and wrapping ranges were
                // refused); (2) `dst` is an exclusive borrow of `len` bytes;
                // (3) `dst` is the device's fresh capture buffer, distinct from
                // the caller's buffer; (4) no other reference to `dst` exists.
                unsafe { copy_bytes(from, dst.as_mut_ptr(), len) };
                Ok(())
            }
        }
    }

    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        match self.mode {
            Mode::User => {
                let Some(len) = plan::user_access(dst, src.len(), align)? else {
                    return Ok(());
                };
                speculation_barrier();
                let mapped = self.lock_user(dst, len, true)?;
                // SAFETY: (1) `src` is a shared borrow of `len` bytes;
                // (2) `mapped` maps `len` locked, writable bytes, valid until
                // the request completes; (3) `src` is kernel memory and
                // `mapped` a fresh system mapping of user pages, so they do
                // not overlap; (4) no Rust reference to the mapping exists.
                unsafe { copy_bytes(src.as_ptr(), mapped, len) };
                Ok(())
            }
            Mode::Kernel => {
                let Some(len) = plan::kernel_access(dst, src.len())? else {
                    return Ok(());
                };
                let to: *mut u8 = ptr::with_exposed_provenance_mut(dst);
                // SAFETY: (1) `src` is a shared borrow of `len` bytes; (2) a
                // KernelMode requestor vouches that `dst` names `len` writable
                // kernel bytes (trust assumption; null and wrapping refused);
                // (3) the device's output bytes and the caller's buffer are
                // distinct; (4) no Rust reference to the caller's buffer
                // exists.
                unsafe { copy_bytes(src.as_ptr(), to, len) };
                Ok(())
            }
        }
    }
}
