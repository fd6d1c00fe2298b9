//! Address spaces, the probe rules every backend shares, and capture limits.
//!
//! An [`AddressSpace`] is the only thing in usercap that touches user memory.
//! Backends implement it: `SimSpace` (simulated, in this crate), `HostSpace`
//! (this process's real memory with a fault-guarded copy, in `usercap-host`),
//! `SehSpace` (the Windows SEH-guarded copy, in `usercap-seh`) and
//! `KmdfSpace` (the driver's, over `SehSpace` or the framework's
//! probe-and-lock).
//!
//! In [`Mode::User`] every backend applies the same rules, in this order, and
//! [`check_user_range`] implements rules 2 to 4 so that no backend can spell
//! them differently:
//!
//! 1. A zero-length access never reaches a backend: the capture API returns an
//!    empty result without touching memory. (`ProbeForRead` with length 0
//!    checks nothing and returns, and a driver that then dereferences the
//!    pointer anyway is the classic zero-length probe bypass. Here there is
//!    nothing to dereference.)
//! 2. An address below 64 KiB, null included, is `AccessViolation`: Windows
//!    never maps the first 64 KiB.
//! 3. `addr % align != 0` is `Misaligned`, as `ProbeForRead` raises
//!    `STATUS_DATATYPE_MISALIGNMENT`.
//! 4. An `addr + len` that wraps, or that ends above the probe limit
//!    (`MmUserProbeAddress`, 0x7FFF_FFFF_0000 on x64), is `AccessViolation`.
//!    This is what keeps a user from pointing the kernel at kernel memory.
//! 5. A speculation barrier, so that a mispredicted range check cannot feed a
//!    speculative load from a kernel address (Spectre v1): either `lfence`, or
//!    Linux's branch-free address mask, which makes the copy's address a data
//!    dependency of the check (the address itself if the range passed, a
//!    never-mapped one if not). It is the backend's job because both need
//!    `unsafe` (`_mm_lfence`, `asm!`), and this crate has none.
//! 6. The copy itself, under a fault guard: a fault is `AccessViolation`,
//!    never a crash.
//!
//! In [`Mode::Kernel`] a backend copies without probing, as Windows does for
//! requests whose `RequestorMode` is `KernelMode`: a kernel caller's pointers
//! are kernel pointers, and the kernel caller is trusted.

use alloc::vec::Vec;
use core::cell::Cell;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::CaptureError;

/// The storage unit of captured slices: 16 bytes, 16-aligned.
///
/// A kernel copy in `PoolBlock`s can be viewed as `[T]` or parsed as a wire
/// struct for any `T` aligned to 16 or less, which is the most `wdk-alloc`'s
/// pool allocations guarantee on x64. Backends see it only to implement
/// [`AddressSpace::read_to_pool`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C, align(16))]
pub struct PoolBlock(pub [u8; 16]);

impl PoolBlock {
    /// How many blocks hold `bytes` bytes.
    #[must_use]
    pub const fn blocks_for(bytes: usize) -> usize {
        bytes.div_ceil(core::mem::size_of::<PoolBlock>())
    }
}

/// The lowest address a user buffer may start at: the first 64 KiB of the
/// address space are never mapped on Windows.
pub const LOWEST_USER_ADDRESS: usize = 0x1_0000;

/// `MmUserProbeAddress` on x64 since Windows 8.1: a user range must end at or
/// below it. The 64 KiB just below it are a no-access guard region.
pub const DEFAULT_PROBE_LIMIT: usize = 0x7FFF_FFFF_0000;

/// The processor mode the request came from (`KPROCESSOR_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A user-mode caller: every address is probed.
    User,
    /// A kernel-mode caller: addresses are trusted and copied without probing.
    Kernel,
}

/// Capture limits: the byte cap of one capture and the budget of one request.
///
/// They bound the pool one request can make the driver allocate, so a hostile
/// length is a clean [`CaptureError::TooLarge`] rather than pool exhaustion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// The most bytes one capture may copy into the kernel.
    pub max_capture: usize,
    /// The most bytes all captures of one request may copy together.
    pub max_request: usize,
}

impl Limits {
    /// 1 MiB per capture, 4 MiB per request.
    pub const DEFAULT: Limits = Limits {
        max_capture: 1 << 20,
        max_request: 4 << 20,
    };

    /// `TooLarge` if one capture of `bytes` is above the per-capture cap.
    ///
    /// # Errors
    /// [`CaptureError::TooLarge`] when `bytes > max_capture`.
    pub const fn check_capture(&self, bytes: usize) -> Result<(), CaptureError> {
        if bytes > self.max_capture {
            Err(CaptureError::TooLarge)
        } else {
            Ok(())
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The address space a request came from.
///
/// Implemented by backends. Callers never use `read`/`write` directly: they go
/// through [`UserPtr`](crate::UserPtr), [`UserSlice`](crate::UserSlice) and
/// [`UserWriter`](crate::UserWriter), which handle zero lengths, limits and
/// allocation, and hand out only kernel copies.
pub trait AddressSpace {
    /// The requestor mode: user addresses are probed, kernel ones are not.
    fn mode(&self) -> Mode;

    /// Copies exactly `dst.len()` bytes from `src` into `dst`, or fails.
    ///
    /// In user mode the backend applies the probe rules of the
    /// [module docs](self) in order. `dst` is never empty when called from
    /// this crate; a backend must treat an empty `dst` as success without
    /// touching memory. On failure the content of `dst` is unspecified and the
    /// caller discards it.
    ///
    /// # Errors
    /// `AccessViolation` for a range outside user memory or a fault,
    /// `Misaligned` for `src % align != 0`.
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError>;

    /// Copies all of `src` to `dst`, or fails; user memory may then be
    /// partly written, as with `copy_to_user`.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError>;

    /// The limits captures from this space obey.
    fn limits(&self) -> Limits {
        Limits::DEFAULT
    }

    /// Copies `len` bytes from `src` into a fresh, fallible pool allocation
    /// of [`PoolBlock::blocks_for`]`(len)` blocks, with the same probe rules
    /// as [`read`](Self::read). Bytes of the last block past `len` are zero.
    ///
    /// The default allocates zeroed blocks and calls `read`. A backend that
    /// can copy into uninitialised memory overrides it, so a capture writes
    /// each byte once instead of zeroing it first (what `memdup_user` does).
    /// A zero `len` gives an empty vector without touching memory.
    ///
    /// # Errors
    /// `NoMemory` if the allocation fails, and `read`'s errors.
    fn read_to_pool(
        &self,
        src: usize,
        len: usize,
        align: usize,
    ) -> Result<Vec<PoolBlock>, CaptureError> {
        let mut storage = PoolBlock::new_vec_zeroed(PoolBlock::blocks_for(len))
            .map_err(|_| CaptureError::NoMemory)?;
        if len > 0 {
            let bytes = storage
                .as_mut_bytes()
                .get_mut(..len)
                .ok_or(CaptureError::Invalid)?;
            self.read(src, bytes, align)?;
        }
        Ok(storage)
    }

    /// Reads one `T` at `src` and returns `wrap(value)`: `size_of::<T>()`
    /// bytes with the probe rules of [`read`](Self::read), alignment
    /// `align`. A zero-sized `T` is wrapped without touching memory.
    ///
    /// The default zero-initialises a `T` and reads into its bytes, so every
    /// byte is written twice before the value is returned. A backend that
    /// can copy into uninitialised memory overrides it, so that the copy is
    /// the only write there.
    ///
    /// `wrap` is there for the one move that remains. Returning the value
    /// moves it into the caller's frame (Rust has no guaranteed in-place
    /// return), and when a capture rewrapped a returned `Result<T, _>` into
    /// `Result<Captured<T>, _>`, the compiler moved it twice and split the
    /// moves at odd offsets, which stalls on the copy's just-written bytes.
    /// Wrapping where the copy lands leaves a single, aligned move, and
    /// none at all when the backend reads the value into registers, as
    /// `HostSpace` does up to 256 bytes: the compiler then stores them
    /// straight into the caller's `Result`.
    /// [`UserPtr::capture_into`](crate::UserPtr::capture_into) has no move
    /// at any size.
    ///
    /// An implementation calls `wrap` once, with the value it read, and not
    /// at all on an error: `wrap` is how [`UserPtr::capture`](crate::UserPtr::capture)
    /// builds its `Captured<T>`, so it must only ever see user bytes copied
    /// under the probe rules.
    ///
    /// A generic method makes this trait unusable as `dyn AddressSpace`;
    /// nothing takes one, since every capture is generic over its space.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    fn read_value<T: FromBytes + IntoBytes, R>(
        &self,
        src: usize,
        align: usize,
        wrap: impl FnOnce(T) -> R,
    ) -> Result<R, CaptureError> {
        let mut value = T::new_zeroed();
        let bytes = value.as_mut_bytes();
        if !bytes.is_empty() {
            self.read(src, bytes, align)?;
        }
        Ok(wrap(value))
    }

    /// Reads one `T` at `src` into `dst`, in place: `size_of::<T>()` bytes
    /// with the probe rules of [`read`](Self::read), alignment `align`. A
    /// zero-sized `T` is left as it is, without touching memory.
    ///
    /// The default reads into `dst`'s bytes. A backend overrides it when it
    /// has a faster way to read a value whose size is known at compile time
    /// (`HostSpace` loads up to 256 bytes inline, through registers).
    ///
    /// On an error `dst` may hold part of a copy, as after a failed `read`:
    /// [`UserPtr::capture_into`](crate::UserPtr::capture_into) never lets
    /// anyone see it.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    fn read_into<T: FromBytes + IntoBytes>(
        &self,
        src: usize,
        align: usize,
        dst: &mut T,
    ) -> Result<(), CaptureError> {
        let bytes = dst.as_mut_bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        self.read(src, bytes, align)
    }

    /// Charges `bytes` against the current request's budget before they are
    /// allocated. The default has no request budget; [`Budgeted`] adds one.
    ///
    /// # Errors
    /// [`CaptureError::TooLarge`] when the request's budget would be exceeded.
    fn charge(&self, bytes: usize) -> Result<(), CaptureError> {
        let _ = bytes;
        Ok(())
    }
}

impl<S: AddressSpace + ?Sized> AddressSpace for &S {
    fn mode(&self) -> Mode {
        (**self).mode()
    }
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        (**self).read(src, dst, align)
    }
    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        (**self).write(dst, src, align)
    }
    fn read_to_pool(
        &self,
        src: usize,
        len: usize,
        align: usize,
    ) -> Result<Vec<PoolBlock>, CaptureError> {
        (**self).read_to_pool(src, len, align)
    }
    fn read_value<T: FromBytes + IntoBytes, R>(
        &self,
        src: usize,
        align: usize,
        wrap: impl FnOnce(T) -> R,
    ) -> Result<R, CaptureError> {
        (**self).read_value(src, align, wrap)
    }
    fn read_into<T: FromBytes + IntoBytes>(
        &self,
        src: usize,
        align: usize,
        dst: &mut T,
    ) -> Result<(), CaptureError> {
        (**self).read_into(src, align, dst)
    }
    fn limits(&self) -> Limits {
        (**self).limits()
    }
    fn charge(&self, bytes: usize) -> Result<(), CaptureError> {
        (**self).charge(bytes)
    }
}

/// Probe rules 2 to 4 for a user-mode access of `len > 0` bytes at `addr`.
///
/// Every backend calls this before touching memory, then issues its
/// speculation barrier (rule 5), then copies under its fault guard (rule 6).
/// A zero `len` passes without any check, because zero-length accesses never
/// touch memory (rule 1) and so need no probe.
///
/// `align` must be a power of two; anything else is `Invalid`, a bug in the
/// caller rather than the user's fault.
///
/// # Errors
/// `AccessViolation` (rules 2 and 4), `Misaligned` (rule 3), `Invalid` for a
/// bad `align`.
pub const fn check_user_range(
    addr: usize,
    len: usize,
    align: usize,
    probe_limit: usize,
) -> Result<(), CaptureError> {
    if len == 0 {
        return Ok(());
    }
    if addr < LOWEST_USER_ADDRESS {
        return Err(CaptureError::AccessViolation);
    }
    if !align.is_power_of_two() {
        return Err(CaptureError::Invalid);
    }
    if addr & (align - 1) != 0 {
        return Err(CaptureError::Misaligned);
    }
    match addr.checked_add(len) {
        Some(end) if end <= probe_limit => Ok(()),
        _ => Err(CaptureError::AccessViolation),
    }
}

/// An address space with a per-request byte budget.
///
/// A device wraps the space it is handed in a `Budgeted` at the start of each
/// request, so the sum of every allocation that request's captures make is
/// bounded by [`Limits::max_request`], however many embedded pointers the
/// user packs into one request.
#[derive(Debug)]
pub struct Budgeted<'s, S: AddressSpace + ?Sized> {
    space: &'s S,
    limits: Limits,
    used: Cell<usize>,
}

impl<'s, S: AddressSpace + ?Sized> Budgeted<'s, S> {
    /// Starts a request over `space` with that space's limits and nothing spent.
    pub fn new(space: &'s S) -> Self {
        Self::with_limits(space, space.limits())
    }

    /// Starts a request with explicit limits.
    pub fn with_limits(space: &'s S, limits: Limits) -> Self {
        Self {
            space,
            limits,
            used: Cell::new(0),
        }
    }

    /// Bytes charged so far in this request.
    pub fn used(&self) -> usize {
        self.used.get()
    }
}

impl<S: AddressSpace + ?Sized> AddressSpace for Budgeted<'_, S> {
    fn mode(&self) -> Mode {
        self.space.mode()
    }
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        self.space.read(src, dst, align)
    }
    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        self.space.write(dst, src, align)
    }
    fn read_to_pool(
        &self,
        src: usize,
        len: usize,
        align: usize,
    ) -> Result<Vec<PoolBlock>, CaptureError> {
        self.space.read_to_pool(src, len, align)
    }
    fn read_value<T: FromBytes + IntoBytes, R>(
        &self,
        src: usize,
        align: usize,
        wrap: impl FnOnce(T) -> R,
    ) -> Result<R, CaptureError> {
        self.space.read_value(src, align, wrap)
    }
    fn read_into<T: FromBytes + IntoBytes>(
        &self,
        src: usize,
        align: usize,
        dst: &mut T,
    ) -> Result<(), CaptureError> {
        self.space.read_into(src, align, dst)
    }
    fn limits(&self) -> Limits {
        self.limits
    }
    fn charge(&self, bytes: usize) -> Result<(), CaptureError> {
        self.limits.check_capture(bytes)?;
        let total = match self.used.get().checked_add(bytes) {
            Some(total) if total <= self.limits.max_request => total,
            _ => return Err(CaptureError::TooLarge),
        };
        // An outer budget (a space that is itself budgeted) must agree too.
        self.space.charge(bytes)?;
        self.used.set(total);
        Ok(())
    }
}
