//! [`SehSpace`]: `usercap::AddressSpace` over the SEH-guarded routines.

use alloc::vec::Vec;

use usercap::{
    AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, LOWEST_USER_ADDRESS, Limits, Mode, PoolBlock,
    check_user_range,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::guarded::{self, Outcome, Vouched, mask_user_range};

/// Where a space's writes may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Writes {
    /// Anywhere the probe (or a kernel requestor) allows: the kernel, where
    /// user memory is never Rust memory. Made only by the unsafe
    /// [`SehSpace::for_request`].
    Vouched(Vouched),
    /// Only into a live `UserMemory`: the user-mode model, where the
    /// "kernel" and the "user" share one process.
    #[cfg(feature = "user")]
    UserMemoryOnly,
}

/// The requester's address space, with the Windows guarded copy.
///
/// Every access follows the probe rules of `usercap::space`, in order:
///
/// 1. a zero length succeeds without touching memory;
/// 2. to 4. in user mode, [`check_user_range`] against the probe limit
///    (below 64 KiB, misaligned, wrapping or past the limit), then the
///    space's lower bound (64 KiB in the kernel; the model's user space in
///    user mode): `AccessViolation`, `Misaligned`;
/// 5. the speculation barrier, as a data dependency:
///    [`mask_user_range`] makes the address the copy uses the address
///    itself on the architectural path and the null page for any range 2 to
///    4 rejected, so a mispredicted check cannot feed a speculative load
///    from kernel memory;
/// 6. one SEH-guarded copy ([`crate::guarded`]): a fault is the error of
///    its exception code (`InPageError` for `STATUS_IN_PAGE_ERROR`,
///    otherwise `AccessViolation`).
///
/// Kernel mode (a `KernelMode` requestor) skips 2 to 5, as Windows does,
/// and still refuses a null address and a range that wraps, which no kernel
/// caller can mean, as usercap.sys always has. The copy still runs under the
/// guard, which in the kernel changes nothing for a bad kernel address
/// (SEH does not make an invalid kernel address survivable: that is a
/// bugcheck), and in user mode makes it an error.
///
/// Two ways to build one:
///
/// - [`SehSpace::for_request`] (unsafe): usercap.sys, in
///   EvtIoInCallerContext, from `WdfRequestGetRequestorMode`. User
///   addresses below `MmUserProbeAddress`; writes go straight to the probed
///   address (in the kernel a user address is never Rust memory).
/// - [`SehSpace::new`] and [`SehSpace::kernel`] (feature `user`): the
///   user-mode model, for tests and the client's `sim` transport. The probe
///   admits only the model's user space ([`crate::user_space`]), so
///   everything else in the process (the device object, SystemBuffers,
///   pool copies) is kernel memory to it, and writes in either mode go only
///   into a live [`crate::UserMemory`].
///
/// A small `Copy` value with no state of its own, `Send` and `Sync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SehSpace {
    mode: Mode,
    /// User ranges start at or above this address.
    low: usize,
    /// User ranges end at or below this address.
    probe_limit: usize,
    limits: Limits,
    writes: Writes,
}

impl SehSpace {
    /// The space of a request whose writes the caller vouched for
    /// ([`SehSpace::for_request`], in `guarded`, holds the one `unsafe`
    /// step): user mode probes against `[64 KiB, MmUserProbeAddress)`.
    pub(crate) const fn vouched(mode: Mode, proof: Vouched) -> Self {
        Self {
            mode,
            low: LOWEST_USER_ADDRESS,
            probe_limit: DEFAULT_PROBE_LIMIT,
            limits: Limits::DEFAULT,
            writes: Writes::Vouched(proof),
        }
    }

    /// A user-mode requester in the model: probe against the model's user
    /// space (reserved on first use), writes only into `UserMemory`,
    /// default limits.
    #[cfg(feature = "user")]
    #[must_use]
    pub fn new() -> Self {
        let (start, end) = crate::user_space();
        Self {
            mode: Mode::User,
            // `(0, 0)` if the reservation failed: then nothing passes.
            low: start.max(LOWEST_USER_ADDRESS),
            probe_limit: end.min(DEFAULT_PROBE_LIMIT),
            limits: Limits::DEFAULT,
            writes: Writes::UserMemoryOnly,
        }
    }

    /// A kernel-mode requester in the model: no probe (null and wrapping
    /// ranges refused), still guarded; writes only into `UserMemory`.
    #[cfg(feature = "user")]
    #[must_use]
    pub fn kernel() -> Self {
        Self {
            mode: Mode::Kernel,
            ..Self::new()
        }
    }

    /// The same space with the probe limit lowered to `limit` (a higher
    /// `limit` is ignored: a space never admits more than it was built
    /// with). Tests use a limit in the middle of a mapping to see the probe
    /// act on memory that is really there.
    #[must_use]
    pub const fn with_probe_limit(self, limit: usize) -> Self {
        let probe_limit = if limit < self.probe_limit {
            limit
        } else {
            self.probe_limit
        };
        Self {
            probe_limit,
            ..self
        }
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

    /// The lowest address a user range may start at.
    #[must_use]
    pub const fn lowest_user_address(&self) -> usize {
        self.low
    }

    /// Probe rules 2 to 5 for `len > 0` bytes: the address the copy must
    /// use.
    #[inline]
    fn probe(&self, addr: usize, len: usize, align: usize) -> Result<usize, CaptureError> {
        match self.mode {
            Mode::Kernel => {
                if addr == 0 || addr.checked_add(len).is_none() {
                    return Err(CaptureError::AccessViolation);
                }
                Ok(addr)
            }
            Mode::User => {
                check_user_range(addr, len, align, self.probe_limit)?;
                if addr < self.low {
                    return Err(CaptureError::AccessViolation);
                }
                Ok(mask_user_range(addr, len, self.low, self.probe_limit))
            }
        }
    }

    /// The space's write of `src` to the probed address `dst`.
    fn write_probed(&self, dst: usize, src: &[u8]) -> Outcome {
        match self.writes {
            Writes::Vouched(proof) => guarded::copy_to_vouched(proof, dst, src),
            #[cfg(feature = "user")]
            Writes::UserMemoryOnly => guarded::copy_to_user_memory(dst, src),
        }
    }
}

#[cfg(feature = "user")]
impl Default for SehSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl AddressSpace for SehSpace {
    fn mode(&self) -> Mode {
        self.mode
    }

    #[inline]
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        if dst.is_empty() {
            return Ok(());
        }
        let src = self.probe(src, dst.len(), align)?;
        guarded::copy_from_outcome(dst, src).result()
    }

    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        if src.is_empty() {
            return Ok(());
        }
        let dst = self.probe(dst, src.len(), align)?;
        self.write_probed(dst, src).result()
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
        guarded::copy_from_to_pool(src, len)
    }

    /// Probes, then copies straight into an uninitialised `T` (see
    /// `guarded::read_value`).
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
        guarded::read_value(src, wrap)
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}
