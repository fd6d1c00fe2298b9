//! [`HostSpace`]: `usercap::AddressSpace` over this process's real memory.

use usercap::{
    AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, Limits, Mode, PoolBlock, check_user_range,
};

use zerocopy::{FromBytes, IntoBytes};

use crate::guarded::{self, Backend, is_user_range_in, mask_to_user_range_in};

/// The requester's address space, modelled by this process's own memory.
///
/// Every access follows the probe rules of [`usercap::space`], in order:
///
/// 1. a zero length succeeds without touching memory;
/// 2. to 4. in user mode, [`check_user_range`] against the probe limit
///    (below 64 KiB, misaligned, wrapping or past the limit), and then this
///    backend's addition to rule 4: a range that is not inside the model's
///    user range ([`guarded::user_range`], where every
///    [`UserMemory`](crate::UserMemory) lives) is `AccessViolation`. On
///    Windows everything above `MmUserProbeAddress` is kernel memory; here
///    everything outside the user range is: the heap (the device object,
///    the I/O model's SystemBuffers, the pool copies of captures), stacks,
///    statics and system space, where every
///    [`KernelBuffer`](crate::KernelBuffer) lives;
/// 5. the speculation barrier, as a data dependency rather than an
///    `lfence`: the copy reads from [`guarded::mask_to_user_range`]'s
///    result, which is the address itself on the architectural path and the
///    null page for any range 2 to 4 rejected, so a mispredicted check
///    cannot feed a speculative load from kernel memory (Linux's
///    `mask_user_address`);
/// 6. the fault-guarded copy of the chosen [`Backend`] (for a value of up
///    to 256 bytes read by `read_value` or `read_into`, the guarded
///    backend's inline loads, see [`guarded::read_value`]); any byte not
///    copied is `AccessViolation`.
///
/// The backend's part of 4 and 5 together is one load of the user range's
/// bounds, two comparisons and one `cmov` chain, as system space's check
/// was before the user range existed.
///
/// Kernel mode ([`HostSpace::kernel`]) skips 2 to 5, as Windows does for a
/// `KernelMode` requestor (nothing was checked, so there is nothing to
/// mispredict), but still copies under the fault guard, so a bad
/// kernel-mode pointer is an error here rather than a bugcheck, and it
/// refuses a `read`/`read_into` whose source overlaps its destination (a
/// read of memory a `&mut` holds, which the abstract machine forbids).
///
/// Writes in either mode may target only a live
/// [`UserMemory`](crate::UserMemory) (see [`guarded`]'s module docs for why):
/// any other destination is `AccessViolation`, with nothing written.
///
/// The default probe limit is `MmUserProbeAddress`, 0x7FFF_FFFF_0000. x86_64
/// Linux user addresses end below 0x7FFF_FFFF_F000, so the same limit works
/// for this process, and the user range lies below it;
/// [`with_probe_limit`](Self::with_probe_limit) changes it (tests use a
/// limit in the middle of a mapping to see the probe act on memory that is
/// really there). A user-mode range must pass both: below the limit and
/// inside the user range.
///
/// `HostSpace` is a small `Copy` value with no state of its own, `Send` and
/// `Sync`: threads share one freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSpace {
    mode: Mode,
    probe_limit: usize,
    backend: Backend,
    limits: Limits,
}

impl HostSpace {
    /// A user-mode space: probe limit 0x7FFF_FFFF_0000, the guarded backend,
    /// default limits.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            mode: Mode::User,
            probe_limit: DEFAULT_PROBE_LIMIT,
            backend: Backend::Guarded,
            limits: Limits::DEFAULT,
        }
    }

    /// A kernel-mode space: no probe, still fault-guarded.
    #[must_use]
    pub const fn kernel() -> Self {
        Self {
            mode: Mode::Kernel,
            ..Self::new()
        }
    }

    /// The same space with another probe limit (user mode).
    #[must_use]
    pub const fn with_probe_limit(self, probe_limit: usize) -> Self {
        Self {
            probe_limit,
            ..self
        }
    }

    /// The same space with another copy backend.
    #[must_use]
    pub const fn with_backend(self, backend: Backend) -> Self {
        Self { backend, ..self }
    }

    /// The same space with other capture limits.
    #[must_use]
    pub const fn with_limits(self, limits: Limits) -> Self {
        Self { limits, ..self }
    }

    /// The probe limit: user ranges must end at or below it.
    #[must_use]
    pub const fn probe_limit(&self) -> usize {
        self.probe_limit
    }

    /// The copy backend.
    #[must_use]
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// Probe rules 2 to 5 (user mode only): the checks, then the address
    /// the copy must use, masked so that it depends on them without a branch.
    #[inline]
    fn probe(&self, addr: usize, len: usize, align: usize) -> Result<usize, CaptureError> {
        self.probe_into(addr, len, align, None)
    }

    /// [`probe`](Self::probe) for a copy into `dst`, an existing buffer. In
    /// kernel mode nothing is probed, but a source that overlaps `dst` is
    /// refused: it would read memory the caller's `&mut` holds (see
    /// [`guarded`]'s module docs). In user mode the source lies in the user
    /// range, which no Rust buffer does, so there is nothing to check.
    #[inline]
    fn probe_into(
        &self,
        addr: usize,
        len: usize,
        align: usize,
        dst: Option<usize>,
    ) -> Result<usize, CaptureError> {
        if self.mode == Mode::Kernel {
            if dst.is_some_and(|dst| guarded::overlaps(addr, dst, len)) {
                return Err(CaptureError::AccessViolation);
            }
            return Ok(addr);
        }
        check_user_range(addr, len, align, self.probe_limit)?;
        // One load of the bounds for both the check and the mask.
        let user = guarded::user_range();
        if !is_user_range_in(addr, len, user) {
            return Err(CaptureError::AccessViolation);
        }
        Ok(mask_to_user_range_in(addr, len, self.probe_limit, user))
    }
}

impl Default for HostSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl AddressSpace for HostSpace {
    fn mode(&self) -> Mode {
        self.mode
    }

    #[inline]
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        if dst.is_empty() {
            return Ok(());
        }
        let src = self.probe_into(src, dst.len(), align, Some(dst.as_ptr().addr()))?;
        match guarded::copy_from_with(self.backend, dst, src) {
            0 => Ok(()),
            _ => Err(CaptureError::AccessViolation),
        }
    }

    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        if src.is_empty() {
            return Ok(());
        }
        let dst = self.probe(dst, src.len(), align)?;
        match guarded::copy_to_with(self.backend, dst, src) {
            0 => Ok(()),
            _ => Err(CaptureError::AccessViolation),
        }
    }

    /// Probes, then copies straight into uninitialised pool: no zero-fill
    /// before the copy (see `guarded::copy_from_to_pool`).
    fn read_to_pool(
        &self,
        src: usize,
        len: usize,
        align: usize,
    ) -> Result<Vec<PoolBlock>, CaptureError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let src = self.probe(src, len, align)?;
        guarded::copy_from_to_pool(self.backend, src, len)
    }

    /// Probes, then copies straight into an uninitialised `T`: no
    /// zero-fill before the copy (see `guarded::read_value`).
    #[inline]
    fn read_value<T: FromBytes + IntoBytes, R>(
        &self,
        src: usize,
        align: usize,
        wrap: impl FnOnce(T) -> R,
    ) -> Result<R, CaptureError> {
        let len = core::mem::size_of::<T>();
        if len == 0 {
            return Ok(wrap(T::new_zeroed()));
        }
        let src = self.probe(src, len, align)?;
        guarded::read_value(self.backend, src, wrap)
    }

    /// Probes, then reads into `dst` in place (see `guarded::read_into`).
    #[inline]
    fn read_into<T: FromBytes + IntoBytes>(
        &self,
        src: usize,
        align: usize,
        dst: &mut T,
    ) -> Result<(), CaptureError> {
        let len = core::mem::size_of::<T>();
        if len == 0 {
            return Ok(());
        }
        let src = self.probe_into(src, len, align, Some(core::ptr::from_mut(dst).addr()))?;
        guarded::read_into(self.backend, src, dst)
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}
