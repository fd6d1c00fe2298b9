//! `KmdfSpace`: the requester's address space, as `usercap` sees it.
//!
//! This is the driver's only backend and the only code in usercap.sys that
//! reads or writes memory named by a request.
//!
//! **User mode** (`WdfRequestGetRequestorMode` is `UserMode`): every access
//! goes through one of two backends, chosen at build time, each the whole
//! user path (the probe rules, the speculation barrier, the guarded access)
//! with the same two entry points:
//!
//! - `seh` (the default): `usercap-seh`'s `SehSpace`, one SEH-guarded copy
//!   straight between the user address and the kernel buffer, as Linux's
//!   `copy_from_user` does;
//! - `probe_and_lock` (cargo feature `probe-and-lock`): the framework's
//!   guarded probe (`WdfRequestProbeAndLockUserBufferForRead/ForWrite`),
//!   then one copy from or to the locked pages' system mapping.
//!
//! Both map a failure through `usercap::CaptureError::from_fault`, so a
//! fault completes with the same status on either. The trade-off is in the
//! `seh` module's docs and docs/windows.md.
//!
//! **Kernel mode** (any other requestor mode): the request came from a kernel
//! component, whose buffers are kernel memory; Windows does not probe them and
//! neither does this backend (`WdfRequestProbeAndLockUserBuffer*` always
//! probes as UserMode and would refuse them). Null and wrapping ranges are
//! still refused. This trusts the kernel caller exactly as the I/O manager
//! does: a kernel driver that sends usercap a bad pointer with `KernelMode`
//! crashes the machine, as it would with any Windows driver.

#[cfg(feature = "probe-and-lock")]
mod probe_and_lock;
#[cfg(feature = "probe-and-lock")]
use probe_and_lock as user;
#[cfg(not(feature = "probe-and-lock"))]
mod seh;
#[cfg(not(feature = "probe-and-lock"))]
use seh as user;

use core::ptr;

use usercap::{AddressSpace, CaptureError, Mode};
use wdk_sys::WDFREQUEST;

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
            Mode::User => user::read(self.request, src, dst, align),
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
            Mode::User => user::write(self.request, dst, src, align),
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
