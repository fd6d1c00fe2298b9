//! The shell's decisions that need no Windows type: compiled and unit-tested
//! on every host, called by the Windows-only modules.
//!
//! Everything here is plain arithmetic on integers the framework hands over
//! (lengths, a requestor mode, an NTSTATUS). Keeping it out of the `cfg`'d
//! code means the Linux CI runs it, and the Windows-only code that cannot be
//! compiled here stays a thin sequence of framework calls.

use usercap::{CaptureError, DEFAULT_PROBE_LIMIT, Mode, NtStatus, check_user_range};
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

/// The capture error for a failed `WdfRequestProbeAndLockUserBuffer*`.
///
/// The framework returns the exception code of `MmProbeAndLockPages`
/// (`STATUS_ACCESS_VIOLATION` for an unmapped or wrong-protection page,
/// `STATUS_DATATYPE_MISALIGNMENT`), or a status of its own: out of memory,
/// an invalid or completed request, the wrong thread. Out of memory is
/// `NoMemory`; misalignment is `Misaligned`; everything else means "this
/// range could not be accessed" and is `AccessViolation`, so the caller sees
/// `STATUS_ACCESS_VIOLATION` as the protocol documents.
pub(crate) const fn probe_failure(status: i32) -> CaptureError {
    if status == NtStatus::STATUS_INSUFFICIENT_RESOURCES.0 || status == STATUS_NO_MEMORY {
        CaptureError::NoMemory
    } else if status == NtStatus::STATUS_DATATYPE_MISALIGNMENT.0 {
        CaptureError::Misaligned
    } else {
        CaptureError::AccessViolation
    }
}

/// `STATUS_NO_MEMORY` (0xC0000017), which `MmProbeAndLockPages` can raise.
const STATUS_NO_MEMORY: i32 = 0xC000_0017_u32.cast_signed();

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

/// `UNICODE_STRING.Length` for `units` UTF-16 code units: bytes, checked to
/// fit the `USHORT` at compile time where it is used.
pub(crate) const fn unicode_bytes(units: usize) -> u16 {
    let bytes = units * 2;
    assert!(
        bytes <= u16::MAX as usize,
        "string too long for a UNICODE_STRING"
    );
    #[allow(clippy::cast_possible_truncation)] // checked on the line above
    let bytes = bytes as u16;
    bytes
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
        assert_eq!(
            probe_failure(NtStatus::STATUS_ACCESS_VIOLATION.0),
            CaptureError::AccessViolation
        );
        assert_eq!(
            probe_failure(NtStatus::STATUS_INSUFFICIENT_RESOURCES.0),
            CaptureError::NoMemory
        );
        assert_eq!(probe_failure(STATUS_NO_MEMORY), CaptureError::NoMemory);
        assert_eq!(
            probe_failure(NtStatus::STATUS_DATATYPE_MISALIGNMENT.0),
            CaptureError::Misaligned
        );
        // STATUS_INVALID_USER_BUFFER, STATUS_INVALID_DEVICE_REQUEST,
        // STATUS_INVALID_PARAMETER: the range could not be accessed.
        for raw in [0xC000_00E8_u32, 0xC000_0010, 0xC000_000D] {
            assert_eq!(
                probe_failure(raw.cast_signed()),
                CaptureError::AccessViolation
            );
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
        assert_eq!(usize::from(unicode_bytes(N)), N * 2);
    }
}
