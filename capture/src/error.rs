//! Errors of the capture API and their Windows and Linux names.
//!
//! Every way a user can make a capture fail is one [`CaptureError`] variant,
//! and each variant has exactly one NTSTATUS (what the driver completes the
//! IRP with) and one errno (what the Linux facade returns, for the
//! comparison with `copy_from_user` and friends). The tables are written out
//! as `match`es, so adding a variant without a mapping does not compile.

use core::fmt;

/// A Windows `NTSTATUS` value.
///
/// `NTSTATUS` is a signed 32-bit integer: the top two bits are the severity
/// (`0b11` error, `0b10` warning, `0b00` success). The raw value is public so
/// that shells can pass it straight to `WdfRequestCompleteWithInformation`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct NtStatus(pub i32);

/// Builds an `NtStatus` from its documented unsigned hexadecimal spelling.
macro_rules! ntstatus {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl NtStatus {
            $( $(#[$doc])* pub const $name: NtStatus = NtStatus(($value as u32).cast_signed()); )*

            /// Every status this project can produce, in declaration order.
            pub const ALL: &'static [NtStatus] = &[$(NtStatus::$name),*];

            /// The symbolic name (`"STATUS_ACCESS_VIOLATION"`), or `None` for a
            /// status this project does not know.
            #[must_use]
            pub const fn name(self) -> Option<&'static str> {
                match self.0.cast_unsigned() {
                    $( $value => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

ntstatus! {
    /// The operation completed successfully.
    STATUS_SUCCESS = 0x0000_0000,
    /// A user address was misaligned for the type read (what `ProbeForRead` raises).
    STATUS_DATATYPE_MISALIGNMENT = 0x8000_0002,
    /// The output buffer was too small; the required size was reported.
    STATUS_BUFFER_OVERFLOW = 0x8000_0005,
    /// The request is not valid for this device (unknown IOCTL code, wrong method).
    STATUS_INVALID_DEVICE_REQUEST = 0xC000_0010,
    /// A user address was invalid or not accessible (what a probe or a fault gives).
    STATUS_ACCESS_VIOLATION = 0xC000_0005,
    /// A valid user page could not be read in: an I/O error of its backing
    /// store (what a guarded access raises for it).
    STATUS_IN_PAGE_ERROR = 0xC000_0006,
    /// A parameter was invalid.
    STATUS_INVALID_PARAMETER = 0xC000_000D,
    /// The buffer is too small to hold the data.
    STATUS_BUFFER_TOO_SMALL = 0xC000_0023,
    /// An arithmetic result overflowed.
    STATUS_INTEGER_OVERFLOW = 0xC000_0095,
    /// Pool could not be allocated.
    STATUS_INSUFFICIENT_RESOURCES = 0xC000_009A,
    /// The request asks for something this driver does not implement
    /// (a newer struct version with non-zero fields the driver does not know).
    STATUS_NOT_SUPPORTED = 0xC000_00BB,
    /// A length was above the limit this driver accepts.
    STATUS_INVALID_BUFFER_SIZE = 0xC000_0206,
}

/// Statuses a Windows backend can see from a failed access, which
/// [`CaptureError::from_fault`] maps to one of the statuses above: the
/// device never completes a request with them, so they are not in
/// [`NtStatus::ALL`] and have no [`name`](NtStatus::name).
impl NtStatus {
    /// A `PAGE_GUARD` page was touched (the guard is cleared as it is
    /// raised): completed as `STATUS_ACCESS_VIOLATION`.
    pub const STATUS_GUARD_PAGE_VIOLATION: NtStatus = NtStatus(0x8000_0001_u32.cast_signed());
    /// Not enough virtual memory or paging-file quota: completed as
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub const STATUS_NO_MEMORY: NtStatus = NtStatus(0xC000_0017_u32.cast_signed());
    /// The process's quota was exceeded: completed as
    /// `STATUS_INSUFFICIENT_RESOURCES`.
    pub const STATUS_QUOTA_EXCEEDED: NtStatus = NtStatus(0xC000_0044_u32.cast_signed());
    /// Locking the pages would exceed the process's working-set quota:
    /// completed as `STATUS_INSUFFICIENT_RESOURCES`.
    pub const STATUS_WORKING_SET_QUOTA: NtStatus = NtStatus(0xC000_00A1_u32.cast_signed());
}

impl NtStatus {
    /// `NT_SUCCESS`: success and informational statuses (severity bit clear).
    #[must_use]
    pub const fn is_success(self) -> bool {
        self.0 >= 0
    }

    /// The raw value as Windows prints it (`0xC0000005`).
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self.0.cast_unsigned()
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:08X})", self.as_u32()),
            None => write!(f, "NTSTATUS 0x{:08X}", self.as_u32()),
        }
    }
}

/// Why a capture (or a write to user memory) failed.
///
/// On any error, nothing partial is handed out: a failed capture returns no
/// kernel copy at all, so a handler cannot act on half-copied data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureError {
    /// The range is not user memory (null, below 64 KiB, at or above the probe
    /// limit, wrapping), or touching it faulted.
    AccessViolation,
    /// The range is user memory, but a page of it could not be read in (an
    /// I/O error of the file or device behind it): the guarded access
    /// faulted with `STATUS_IN_PAGE_ERROR`, which is not the caller's bad
    /// pointer. Linux reports the same case (a `SIGBUS` page) as `EFAULT`.
    InPageError,
    /// The address is not aligned for the type being captured.
    Misaligned,
    /// The length is above the per-capture cap, the request's budget, or the
    /// type's size cap.
    TooLarge,
    /// An element count times the element size overflowed.
    Overflow,
    /// The kernel copy could not be allocated.
    NoMemory,
    /// A versioned struct is longer than this driver knows and its extra bytes
    /// are not all zero (`copy_struct_from_user`'s `E2BIG`).
    NonZeroTail,
    /// A captured value broke a rule of its format (odd string length, a count
    /// beyond the captured bytes, a size below the oldest version).
    Invalid,
    /// The output range is too small for what is to be written.
    BufferTooSmall,
}

impl CaptureError {
    /// The capture error for an access to user memory that failed with
    /// `status`: the exception code of a guarded access (`usercap-seh`),
    /// or what the framework's `WdfRequestProbeAndLockUserBuffer*`
    /// returned (the exception code of `MmProbeAndLockPages`, or a status
    /// of the framework's own). One table for every Windows backend, so
    /// that a fault completes with the same status whichever guard saw it.
    ///
    /// | status | error | completed with |
    /// |---|---|---|
    /// | `STATUS_INSUFFICIENT_RESOURCES`, `STATUS_NO_MEMORY`, `STATUS_QUOTA_EXCEEDED`, `STATUS_WORKING_SET_QUOTA` | `NoMemory` | `STATUS_INSUFFICIENT_RESOURCES` |
    /// | `STATUS_IN_PAGE_ERROR` | `InPageError` | `STATUS_IN_PAGE_ERROR` |
    /// | `STATUS_DATATYPE_MISALIGNMENT` | `Misaligned` | `STATUS_DATATYPE_MISALIGNMENT` |
    /// | anything else | `AccessViolation` | `STATUS_ACCESS_VIOLATION` |
    ///
    /// Out of memory or quota is the machine's state, not the caller's
    /// pointer (Driver Verifier's Low Resources Simulation provokes each of
    /// the four for valid requests); an in-page error is a valid page that
    /// could not be read in. "Anything else" means the range could not be
    /// accessed: an unmapped, reserved or no-access page, a guard page
    /// (`STATUS_GUARD_PAGE_VIOLATION`), or an invalid request.
    #[must_use]
    pub const fn from_fault(status: NtStatus) -> CaptureError {
        match status {
            NtStatus::STATUS_INSUFFICIENT_RESOURCES
            | NtStatus::STATUS_NO_MEMORY
            | NtStatus::STATUS_QUOTA_EXCEEDED
            | NtStatus::STATUS_WORKING_SET_QUOTA => Self::NoMemory,
            NtStatus::STATUS_IN_PAGE_ERROR => Self::InPageError,
            NtStatus::STATUS_DATATYPE_MISALIGNMENT => Self::Misaligned,
            _ => Self::AccessViolation,
        }
    }

    /// The NTSTATUS a driver completes the request with.
    ///
    /// | error | NTSTATUS |
    /// |---|---|
    /// | `AccessViolation` | `STATUS_ACCESS_VIOLATION` |
    /// | `InPageError` | `STATUS_IN_PAGE_ERROR` |
    /// | `Misaligned` | `STATUS_DATATYPE_MISALIGNMENT` |
    /// | `TooLarge` | `STATUS_INVALID_BUFFER_SIZE` |
    /// | `Overflow` | `STATUS_INTEGER_OVERFLOW` |
    /// | `NoMemory` | `STATUS_INSUFFICIENT_RESOURCES` |
    /// | `NonZeroTail` | `STATUS_NOT_SUPPORTED` |
    /// | `Invalid` | `STATUS_INVALID_PARAMETER` |
    /// | `BufferTooSmall` | `STATUS_BUFFER_TOO_SMALL` |
    #[must_use]
    pub const fn to_ntstatus(self) -> NtStatus {
        match self {
            Self::AccessViolation => NtStatus::STATUS_ACCESS_VIOLATION,
            Self::InPageError => NtStatus::STATUS_IN_PAGE_ERROR,
            Self::Misaligned => NtStatus::STATUS_DATATYPE_MISALIGNMENT,
            Self::TooLarge => NtStatus::STATUS_INVALID_BUFFER_SIZE,
            Self::Overflow => NtStatus::STATUS_INTEGER_OVERFLOW,
            Self::NoMemory => NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            Self::NonZeroTail => NtStatus::STATUS_NOT_SUPPORTED,
            Self::Invalid => NtStatus::STATUS_INVALID_PARAMETER,
            Self::BufferTooSmall => NtStatus::STATUS_BUFFER_TOO_SMALL,
        }
    }

    /// The positive errno a Linux driver would return (negated) for the same
    /// failure.
    ///
    /// | error | errno |
    /// |---|---|
    /// | `AccessViolation` | `EFAULT` (14) |
    /// | `InPageError` | `EFAULT` (14), as Linux's uaccess reports a page it cannot read in |
    /// | `Misaligned` | `EFAULT` (14): Linux does not check alignment, a bad pointer is a bad pointer |
    /// | `TooLarge` | `E2BIG` (7) |
    /// | `Overflow` | `EOVERFLOW` (75) |
    /// | `NoMemory` | `ENOMEM` (12) |
    /// | `NonZeroTail` | `E2BIG` (7), as `copy_struct_from_user` |
    /// | `Invalid` | `EINVAL` (22) |
    /// | `BufferTooSmall` | `ERANGE` (34), as `getxattr` for a short buffer |
    #[must_use]
    pub const fn to_errno(self) -> i32 {
        match self {
            Self::AccessViolation | Self::InPageError | Self::Misaligned => errno::EFAULT,
            Self::TooLarge | Self::NonZeroTail => errno::E2BIG,
            Self::Overflow => errno::EOVERFLOW,
            Self::NoMemory => errno::ENOMEM,
            Self::Invalid => errno::EINVAL,
            Self::BufferTooSmall => errno::ERANGE,
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::AccessViolation => "user range is not accessible user memory",
            Self::InPageError => "a page of the user range could not be read in",
            Self::Misaligned => "user address is misaligned for the type",
            Self::TooLarge => "length is above the capture limit",
            Self::Overflow => "length computation overflowed",
            Self::NoMemory => "kernel copy could not be allocated",
            Self::NonZeroTail => "newer struct version has non-zero unknown fields",
            Self::Invalid => "captured value is malformed",
            Self::BufferTooSmall => "output buffer is too small",
        };
        f.write_str(what)
    }
}

impl core::error::Error for CaptureError {}

/// Linux errno numbers (x86_64 and generic), positive, as `to_errno` returns them.
pub mod errno {
    /// Argument list too long: `copy_struct_from_user`'s non-zero tail, and sizes above a cap.
    pub const E2BIG: i32 = 7;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Bad address.
    pub const EFAULT: i32 = 14;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Result out of range: the output buffer is too small.
    pub const ERANGE: i32 = 34;
    /// Value too large for defined data type.
    pub const EOVERFLOW: i32 = 75;
}

impl From<CaptureError> for NtStatus {
    fn from(error: CaptureError) -> Self {
        error.to_ntstatus()
    }
}
