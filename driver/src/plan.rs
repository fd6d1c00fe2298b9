//! The shell's decisions that need no Windows type: compiled and unit-tested
//! on every host, called by the Windows-only modules.
//!
//! Everything here is plain arithmetic on integers the framework hands over
//! (lengths, a requestor mode, an NTSTATUS). Keeping it out of the `cfg`'d
//! code means the Linux CI runs it, and the Windows-only code that cannot be
//! compiled here stays a thin sequence of framework calls.
//!
//! # C integer types and their Rust spellings
//!
//! wdk-sys's bindings come from bindgen, which maps C's `size_t` to `usize`
//! and nothing else: `SIZE_T` and `ULONG_PTR` are `unsigned __int64` on x64
//! and arrive as `u64` (`c_ulonglong`), `ULONG` as `u32`, `USHORT` as `u16`.
//! WDF's own DDIs take `size_t` for buffer lengths, so lengths stay `usize`;
//! the one `ULONG_PTR` the shell passes (`Information`) goes through
//! [`information`], and every structure `Size` through [`ulong`] or
//! [`ushort`]. The full table is in docs/windows.md's appendix.
//!
//! [`trace`] holds the tracing decisions: which events are printed, at which
//! `DbgPrintEx` level, in which words.

pub(crate) mod trace;

use usercap::{CaptureError, DEFAULT_PROBE_LIMIT, Mode, NtStatus, PoolBlock, check_user_range};
use usercap_protocol::Method;

/// `KernelMode` in `wdm.h`'s `MODE` enumeration (`UserMode` is 1).
pub(crate) const KERNEL_MODE: i32 = 0;

/// `PASSIVE_LEVEL`, the IRQL every user-buffer call of this driver needs.
pub(crate) const PASSIVE_LEVEL: u8 = 0;

/// `WdfRequestGetRequestorMode`'s answer as a [`Mode`].
///
/// Only an explicit `KernelMode` is trusted; any other value is treated as a
/// user-mode requestor and probed. If the raw value were ever misread, the
/// error would be on the safe side: a kernel caller's pointers would fail the
/// probe, never the other way round.
pub(crate) const fn requestor_mode(raw: i32) -> Mode {
    if raw == KERNEL_MODE {
        Mode::Kernel
    } else {
        Mode::User
    }
}

/// How the shell hands a DEVICE_CONTROL request to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// METHOD_BUFFERED: one SystemBuffer of max(in, out) bytes.
    Buffered,
    /// METHOD_NEITHER: the caller's raw addresses.
    Neither,
    /// METHOD_IN_DIRECT / METHOD_OUT_DIRECT: no usercap IOCTL uses them;
    /// completed with `STATUS_INVALID_DEVICE_REQUEST` without touching any
    /// buffer.
    Refused,
}

/// The shape of the request an IOCTL code asks for (its low two bits).
pub(crate) const fn shape(code: u32) -> Shape {
    match Method::of(code) {
        Method::Buffered => Shape::Buffered,
        Method::Neither => Shape::Neither,
        Method::InDirect | Method::OutDirect => Shape::Refused,
    }
}

/// The SystemBuffer of a METHOD_BUFFERED request, as the I/O manager
/// allocated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SystemBufferPlan {
    /// max(InputBufferLength, OutputBufferLength): the bytes the allocation
    /// holds and the slice handed to the device.
    pub(crate) len: usize,
    /// Retrieve it through `WdfRequestRetrieveInputBuffer` (true) or
    /// `...OutputBuffer` (false): whichever direction has the full length, so
    /// `MinimumRequiredSize = len` is exactly satisfied.
    pub(crate) via_input: bool,
    /// Bytes past the input (`len - input_len`). This part of the pool is
    /// uninitialised; the shell zeroes it before forming a Rust slice.
    pub(crate) tail: usize,
}

/// Plans the SystemBuffer access for the given lengths; `None` when both are
/// zero (the I/O manager allocates nothing and the device gets `&mut []`).
pub(crate) const fn system_buffer(input_len: usize, output_len: usize) -> Option<SystemBufferPlan> {
    let via_input = input_len >= output_len;
    let len = if via_input { input_len } else { output_len };
    if len == 0 {
        return None;
    }
    Some(SystemBufferPlan {
        len,
        via_input,
        tail: len - input_len,
    })
}

/// Probe rules 2 to 4 for a user-mode access, plus what the framework call
/// needs on top: `Ok(None)` for a zero-length access (rule 1: touch nothing,
/// and never call `WdfRequestProbeAndLockUserBuffer*` with 0, which fails with
/// `STATUS_INVALID_USER_BUFFER`), `Ok(Some(len))` for an access that may go to
/// the framework.
///
/// `len` is capped at `u32::MAX` because the framework truncates its `Length`
/// to a ULONG (a 4 GiB + 1 byte request would lock 1 byte and let the copy
/// run past it). The capture limits are far below that; this is the backstop.
///
/// # Errors
/// `AccessViolation` (null, below 64 KiB, past the probe limit, wrapping),
/// `Misaligned`, `Invalid` (bad `align`), `TooLarge` (above `u32::MAX`).
#[cfg_attr(
    not(feature = "probe-and-lock"),
    allow(
        dead_code,
        reason = "the probe-and-lock backend's; tested on every host"
    )
)]
pub(crate) const fn user_access(
    addr: usize,
    len: usize,
    align: usize,
) -> Result<Option<usize>, CaptureError> {
    if len == 0 {
        return Ok(None);
    }
    if let Err(e) = check_user_range(addr, len, align, DEFAULT_PROBE_LIMIT) {
        return Err(e);
    }
    if len > u32::MAX as usize {
        return Err(CaptureError::TooLarge);
    }
    Ok(Some(len))
}

/// A kernel-mode requestor's range: no probe (its pointers are kernel
/// pointers, trusted as Windows trusts them), but null and wrapping ranges are
/// still refused, because no kernel caller can mean them and touching them
/// would crash the machine rather than fail the request.
///
/// # Errors
/// `AccessViolation` for a null address or a range that wraps.
pub(crate) const fn kernel_access(addr: usize, len: usize) -> Result<Option<usize>, CaptureError> {
    if len == 0 {
        return Ok(None);
    }
    if addr == 0 || addr.checked_add(len).is_none() {
        return Err(CaptureError::AccessViolation);
    }
    Ok(Some(len))
}

/// `STATUS_NO_MEMORY` (0xC0000017): a quota or commit failure while paging
/// the buffer in.
pub(crate) const STATUS_NO_MEMORY: i32 = NtStatus::STATUS_NO_MEMORY.0;
/// `STATUS_QUOTA_EXCEEDED` (0xC0000044): the process's quota was exceeded.
pub(crate) const STATUS_QUOTA_EXCEEDED: i32 = NtStatus::STATUS_QUOTA_EXCEEDED.0;
/// `STATUS_WORKING_SET_QUOTA` (0xC00000A1): locking the pages would exceed
/// the process's working-set quota, which `MmProbeAndLockPages` raises for
/// large or many locked buffers, and Low Resources Simulation provokes.
pub(crate) const STATUS_WORKING_SET_QUOTA: i32 = NtStatus::STATUS_WORKING_SET_QUOTA.0;
/// `STATUS_OBJECT_NAME_COLLISION` (0xC0000035): `IoCreateSymbolicLink` found
/// the name taken.
pub(crate) const STATUS_OBJECT_NAME_COLLISION: i32 = 0xC000_0035_u32.cast_signed();

/// The statuses that mean "out of memory or quota", not "bad range": a
/// request that fails with one of them was refused for lack of resources
/// and is completed with `STATUS_INSUFFICIENT_RESOURCES`
/// ([`CaptureError::NoMemory`]).
///
/// KMDF returns `MmProbeAndLockPages`' exception code unchanged
/// (`FxProbeAndLockForRead/ForWrite` in the KMDF sources: `return
/// GetExceptionCode()`), and returns `STATUS_INSUFFICIENT_RESOURCES` itself
/// when the MDL, the system mapping or the WDFMEMORY cannot be allocated.
/// Under Driver Verifier's Low Resources Simulation every one of these
/// happens to valid requests; mapping them to `STATUS_ACCESS_VIOLATION`
/// would blame the caller's pointer for the machine's memory.
pub(crate) const OUT_OF_RESOURCES: [i32; 4] = [
    NtStatus::STATUS_INSUFFICIENT_RESOURCES.0,
    STATUS_NO_MEMORY,
    STATUS_QUOTA_EXCEEDED,
    STATUS_WORKING_SET_QUOTA,
];

/// Whether `status` is one of [`OUT_OF_RESOURCES`].
pub(crate) const fn is_out_of_resources(status: i32) -> bool {
    let mut i = 0;
    while i < OUT_OF_RESOURCES.len() {
        if OUT_OF_RESOURCES[i] == status {
            return true;
        }
        i += 1;
    }
    false
}

/// The capture error for a failed `WdfRequestProbeAndLockUserBuffer*`.
///
/// | status | error | completed with |
/// |---|---|---|
/// | [`OUT_OF_RESOURCES`] (four codes) | `NoMemory` | `STATUS_INSUFFICIENT_RESOURCES` |
/// | `STATUS_IN_PAGE_ERROR` | `InPageError` | `STATUS_IN_PAGE_ERROR` |
/// | `STATUS_DATATYPE_MISALIGNMENT` | `Misaligned` | `STATUS_DATATYPE_MISALIGNMENT` |
/// | anything else | `AccessViolation` | `STATUS_ACCESS_VIOLATION` |
///
/// It is `usercap`'s one fault table, [`CaptureError::from_fault`], which
/// the SEH backend maps its exception codes through too, so a fault
/// completes with the same status whichever guard saw it. "Anything else"
/// is `MmProbeAndLockPages`' exception for an unmapped or wrong-protection
/// page (`STATUS_ACCESS_VIOLATION`, a guard page's
/// `STATUS_GUARD_PAGE_VIOLATION`) or a status of the framework's own (an
/// invalid or completed request, the wrong thread): all mean "this range
/// could not be accessed", which the protocol documents as
/// `STATUS_ACCESS_VIOLATION`.
#[cfg_attr(
    not(feature = "probe-and-lock"),
    allow(
        dead_code,
        reason = "the probe-and-lock backend's; tested on every host"
    )
)]
pub(crate) const fn probe_failure(status: i32) -> CaptureError {
    CaptureError::from_fault(NtStatus(status))
}

/// The NTSTATUS to complete with when a framework call that retrieves a
/// buffer failed: its own status if it is an error, else (a success with no
/// usable buffer, which the documentation rules out) `INVALID_PARAMETER`.
pub(crate) const fn retrieval_failure(status: i32) -> NtStatus {
    if status < 0 {
        NtStatus(status)
    } else {
        NtStatus::STATUS_INVALID_PARAMETER
    }
}

/// Encodes an ASCII string as UTF-16 at compile time, for the
/// `UNICODE_STRING`s the shell passes to the framework (the C
/// `DECLARE_CONST_UNICODE_STRING` macro is not in the bindings). `N` must be
/// the string's length; anything else, or a non-ASCII byte, fails the build.
pub(crate) const fn ascii_utf16<const N: usize>(s: &str) -> [u16; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() == N, "ascii_utf16: N must be the string length");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        assert!(bytes[i].is_ascii(), "ascii_utf16: ASCII only");
        out[i] = bytes[i] as u16;
        i += 1;
    }
    out
}

/// `UNICODE_STRING.Length` for `units` UTF-16 code units: bytes, or `None`
/// if they do not fit its `USHORT`. The shell evaluates it in a `const`, so
/// `None` is a build error, never a run-time one.
pub(crate) const fn unicode_bytes(units: usize) -> Option<u16> {
    match units.checked_mul(2) {
        Some(bytes) => ushort(bytes),
        None => None,
    }
}

/// `IoStatus.Information`, a `ULONG_PTR` (`u64` in the bindings), from the
/// device's byte count (`usize`).
///
/// Lossless on every target this crate builds for: `usize` is at most 64
/// bits (checked at compile time below), so no count is ever truncated.
/// The shell must never use `as` at the call site: a future 32-bit
/// `ULONG_PTR` binding would then silently truncate instead of failing here.
#[allow(clippy::cast_possible_truncation)] // usize::BITS <= 64, asserted below
pub(crate) const fn information(bytes: usize) -> u64 {
    const _: () = assert!(usize::BITS <= u64::BITS);
    bytes as u64
}

/// A structure's `sizeof` as the `ULONG` its `Size` member holds, or `None`
/// if it does not fit. Used in `const` items only, where `None` becomes a
/// build error (the C `_INIT` macros that set `Size` are not in the
/// bindings).
#[allow(clippy::cast_possible_truncation)] // range checked on the line above the cast
pub(crate) const fn ulong(bytes: usize) -> Option<u32> {
    if bytes <= u32::MAX as usize {
        Some(bytes as u32)
    } else {
        None
    }
}

/// A size as a `USHORT` (`WDF_REQUEST_PARAMETERS::Size`,
/// `UNICODE_STRING::Length`), or `None` if it does not fit; `const` use
/// only, as for [`ulong`].
#[allow(clippy::cast_possible_truncation)] // range checked on the line above the cast
pub(crate) const fn ushort(bytes: usize) -> Option<u16> {
    if bytes <= u16::MAX as usize {
        Some(bytes as u16)
    } else {
        None
    }
}

/// The alignment every pool allocation has on x64
/// (`MEMORY_ALLOCATION_ALIGNMENT`, 16): what `ExAllocatePool2` guarantees,
/// and all that wdk-alloc can give, since it ignores `Layout::align()`.
pub(crate) const POOL_ALIGNMENT: usize = 16;

/// Whether a pool block (16-aligned) satisfies an allocation of alignment
/// `align`. The driver's global allocator refuses (returns null for) any
/// other request, which a fallible allocation reports as
/// [`CaptureError::NoMemory`].
pub(crate) const fn pool_serves(align: usize) -> bool {
    align.is_power_of_two() && align <= POOL_ALIGNMENT
}

/// Whether values of `T` may live in pool memory: in a wdk-alloc allocation
/// or in a framework object context.
pub(crate) const fn fits_pool<T>() -> bool {
    pool_serves(core::mem::align_of::<T>())
}

// The type this driver allocates from the pool, checked at compile time on
// every host: every capture's kernel copy is a `Vec<PoolBlock>`, and the
// capture crate views it as `[T]` or a wire struct only when
// `align_of::<T>() <= align_of::<PoolBlock>()`. The other pool-resident
// value, the device state in the WDFDEVICE's context, is checked in
// context.rs (`DeviceContext`, Windows only). A `PoolBlock` aligned above 16
// fails the build here instead of getting a misaligned block; any other
// over-aligned allocation is refused at run time by the global allocator
// (`pool_serves`).
const _: () = assert!(fits_pool::<PoolBlock>());

/// `WDF_REMOVE_LOCK_OPTION_ACQUIRE_FOR_IO` (wdfdevice.h, KMDF 1.11+): the
/// framework acquires the device's remove lock before it delivers any IRP,
/// and releases it when the IRP completes.
pub(crate) const REMOVE_LOCK_ACQUIRE_FOR_IO: u32 = 0x0000_0001;

/// What EvtDriverDeviceAdd does when `WdfDeviceCreateSymbolicLink` fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkFailure {
    /// `\DosDevices\UserCap` belongs to another usercap device (a second
    /// `Root\UserCap` devnode): keep this device, reachable through its
    /// device interface only. KMDF clears the device's link name on this
    /// failure, so removing this device later cannot delete the other
    /// device's link.
    ContinueWithoutLink,
    /// Any other failure: fail EvtDriverDeviceAdd with the status.
    Fail,
}

/// Classifies a failed `WdfDeviceCreateSymbolicLink` status.
pub(crate) const fn link_failure(status: i32) -> LinkFailure {
    if status == STATUS_OBJECT_NAME_COLLISION {
        LinkFailure::ContinueWithoutLink
    } else {
        LinkFailure::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usercap_protocol::{IOCTL_BATCH, IOCTL_ECHO, IOCTL_SUM, SYMBOLIC_LINK_NAME, ctl_code};

    #[test]
    fn only_explicit_kernel_mode_is_trusted() {
        assert_eq!(requestor_mode(0), Mode::Kernel);
        assert_eq!(requestor_mode(1), Mode::User);
        assert_eq!(requestor_mode(-1), Mode::User);
        assert_eq!(requestor_mode(2), Mode::User);
    }

    #[test]
    fn shapes_follow_the_method_bits() {
        assert_eq!(shape(IOCTL_ECHO), Shape::Buffered);
        assert_eq!(shape(IOCTL_SUM), Shape::Neither);
        assert_eq!(shape(IOCTL_BATCH), Shape::Neither);
        let direct_in = ctl_code(0x8337, 0x900, Method::InDirect, 0);
        let direct_out = ctl_code(0x8337, 0x901, Method::OutDirect, 0);
        assert_eq!(shape(direct_in), Shape::Refused);
        assert_eq!(shape(direct_out), Shape::Refused);
    }

    #[test]
    fn system_buffer_is_the_larger_direction() {
        assert_eq!(system_buffer(0, 0), None);
        assert_eq!(
            system_buffer(16, 4),
            Some(SystemBufferPlan {
                len: 16,
                via_input: true,
                tail: 0
            })
        );
        assert_eq!(
            system_buffer(4, 16),
            Some(SystemBufferPlan {
                len: 16,
                via_input: false,
                tail: 12
            })
        );
        assert_eq!(
            system_buffer(8, 8),
            Some(SystemBufferPlan {
                len: 8,
                via_input: true,
                tail: 0
            })
        );
        assert_eq!(
            system_buffer(0, 32),
            Some(SystemBufferPlan {
                len: 32,
                via_input: false,
                tail: 32
            })
        );
    }

    #[test]
    fn user_access_applies_the_probe_rules_then_the_ulong_cap() {
        assert_eq!(user_access(0, 0, 1), Ok(None));
        assert_eq!(
            user_access(0x1234, 0, 8),
            Ok(None),
            "zero length touches nothing"
        );
        assert_eq!(user_access(0, 1, 1), Err(CaptureError::AccessViolation));
        assert_eq!(
            user_access(0xFFFF, 1, 1),
            Err(CaptureError::AccessViolation)
        );
        assert_eq!(user_access(0x1_0001, 4, 4), Err(CaptureError::Misaligned));
        assert_eq!(user_access(0x1_0000, 4, 3), Err(CaptureError::Invalid));
        assert_eq!(
            user_access(DEFAULT_PROBE_LIMIT - 4, 8, 1),
            Err(CaptureError::AccessViolation)
        );
        assert_eq!(
            user_access(0xFFFF_8000_0000_0000, 8, 8),
            Err(CaptureError::AccessViolation),
            "kernel addresses are refused before the framework sees them"
        );
        assert_eq!(
            user_access(usize::MAX - 1, 4, 1),
            Err(CaptureError::AccessViolation)
        );
        assert_eq!(user_access(0x1_0000, 4096, 8), Ok(Some(4096)));
        assert_eq!(user_access(DEFAULT_PROBE_LIMIT - 8, 8, 8), Ok(Some(8)));
    }

    #[test]
    fn user_access_caps_lengths_at_ulong() {
        let just_fits = u32::MAX as usize;
        assert_eq!(user_access(0x1_0000, just_fits, 1), Ok(Some(just_fits)));
        assert_eq!(
            user_access(0x1_0000, just_fits + 1, 1),
            Err(CaptureError::TooLarge)
        );
    }

    #[test]
    fn kernel_access_refuses_only_null_and_wrapping() {
        assert_eq!(kernel_access(0, 0), Ok(None));
        assert_eq!(kernel_access(0, 1), Err(CaptureError::AccessViolation));
        assert_eq!(
            kernel_access(usize::MAX, 2),
            Err(CaptureError::AccessViolation)
        );
        assert_eq!(kernel_access(0xFFFF_8000_0000_1000, 64), Ok(Some(64)));
        assert_eq!(kernel_access(0x1000, 64), Ok(Some(64)));
    }

    #[test]
    fn probe_failures_map_to_capture_errors() {
        // Out of memory or quota, whoever reports it: the framework's own
        // allocations, or MmProbeAndLockPages' exception passed through.
        for (raw, name) in [
            (0xC000_009A_u32, "STATUS_INSUFFICIENT_RESOURCES"),
            (0xC000_0017, "STATUS_NO_MEMORY"),
            (0xC000_0044, "STATUS_QUOTA_EXCEEDED"),
            (0xC000_00A1, "STATUS_WORKING_SET_QUOTA"),
        ] {
            let status = raw.cast_signed();
            assert_eq!(probe_failure(status), CaptureError::NoMemory, "{name}");
            assert_eq!(
                probe_failure(status).to_ntstatus(),
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
                "{name} completes as out of resources"
            );
            assert!(is_out_of_resources(status), "{name}");
        }
        assert_eq!(
            probe_failure(NtStatus::STATUS_DATATYPE_MISALIGNMENT.0),
            CaptureError::Misaligned
        );
        // A valid page that could not be read in is not a bad pointer.
        assert_eq!(
            probe_failure(NtStatus::STATUS_IN_PAGE_ERROR.0),
            CaptureError::InPageError
        );
        // STATUS_ACCESS_VIOLATION, STATUS_GUARD_PAGE_VIOLATION,
        // STATUS_INVALID_USER_BUFFER, STATUS_INVALID_DEVICE_REQUEST,
        // STATUS_INVALID_PARAMETER: the range could not be accessed.
        for raw in [
            0xC000_0005_u32,
            0x8000_0001,
            0xC000_00E8,
            0xC000_0010,
            0xC000_000D,
        ] {
            let status = raw.cast_signed();
            assert_eq!(probe_failure(status), CaptureError::AccessViolation);
            assert!(!is_out_of_resources(status));
        }
    }

    #[test]
    fn retrieval_failures_keep_error_statuses() {
        let too_small = NtStatus::STATUS_BUFFER_TOO_SMALL;
        assert_eq!(retrieval_failure(too_small.0), too_small);
        assert_eq!(retrieval_failure(0), NtStatus::STATUS_INVALID_PARAMETER);
    }

    #[test]
    fn symbolic_link_encodes_as_utf16() {
        const N: usize = SYMBOLIC_LINK_NAME.len();
        let wide: [u16; N] = ascii_utf16(SYMBOLIC_LINK_NAME);
        let back: Vec<u16> = SYMBOLIC_LINK_NAME.encode_utf16().collect();
        assert_eq!(wide.as_slice(), back.as_slice());
        assert_eq!(unicode_bytes(N).map(usize::from), Some(N * 2));
    }

    #[test]
    fn unicode_lengths_must_fit_a_ushort() {
        assert_eq!(unicode_bytes(0), Some(0));
        assert_eq!(unicode_bytes(0x7FFF), Some(0xFFFE));
        assert_eq!(unicode_bytes(0x8000), None, "65536 bytes overflow USHORT");
        assert_eq!(
            unicode_bytes(usize::MAX),
            None,
            "the doubling itself overflows"
        );
    }

    #[test]
    fn information_is_the_byte_count_unchanged() {
        assert_eq!(information(0), 0);
        assert_eq!(information(4096), 4096);
        assert_eq!(
            information(usize::MAX),
            u64::MAX,
            "no truncation at the top"
        );
        assert_eq!(information(0x1_0000_0001), 0x1_0000_0001, "above 4 GiB");
    }

    #[test]
    fn structure_sizes_fit_their_size_fields_or_are_refused() {
        assert_eq!(ulong(0), Some(0));
        assert_eq!(ulong(72), Some(72));
        assert_eq!(ulong(u32::MAX as usize), Some(u32::MAX));
        assert_eq!(ulong(u32::MAX as usize + 1), None);
        assert_eq!(ushort(56), Some(56));
        assert_eq!(ushort(u16::MAX as usize), Some(u16::MAX));
        assert_eq!(ushort(u16::MAX as usize + 1), None);
    }

    #[test]
    fn the_pool_serves_alignments_up_to_16_only() {
        #[repr(align(32))]
        struct Avx([u8; 32]);
        #[repr(align(16))]
        struct Sse([u8; 16]);
        for align in [1, 2, 4, 8, 16] {
            assert!(pool_serves(align), "{align}");
        }
        for align in [0, 3, 24, 32, 64, 4096] {
            assert!(!pool_serves(align), "{align}");
        }
        assert!(fits_pool::<u8>());
        assert!(fits_pool::<u64>());
        assert!(fits_pool::<Sse>());
        assert!(fits_pool::<PoolBlock>());
        assert!(!fits_pool::<Avx>(), "a 32-aligned type is caught");
        let _ = (Avx([0; 32]).0, Sse([0; 16]).0);
    }

    #[test]
    fn only_a_taken_link_name_lets_the_device_continue() {
        assert_eq!(
            link_failure(STATUS_OBJECT_NAME_COLLISION),
            LinkFailure::ContinueWithoutLink
        );
        for status in [
            NtStatus::STATUS_INSUFFICIENT_RESOURCES.0,
            NtStatus::STATUS_INVALID_DEVICE_REQUEST.0,
            0xC000_0184_u32.cast_signed(), // STATUS_INVALID_DEVICE_STATE
            0xC000_0033_u32.cast_signed(), // STATUS_OBJECT_NAME_INVALID
        ] {
            assert_eq!(link_failure(status), LinkFailure::Fail);
        }
    }
}
