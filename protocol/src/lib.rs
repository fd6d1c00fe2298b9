//! The usercap ABI: what crosses the user/kernel boundary, byte for byte.
//!
//! Client authors read this page. Every IOCTL shows one classic hazard of
//! Windows drivers and the cure the driver applies. The wire structs are
//! `#[repr(C)]`, have explicit padding fields (which the driver ignores on
//! input and writes as zero on output), and carry pointers as `u64`, so a
//! 32-bit and a 64-bit caller lay them out the same. All integers are
//! little-endian.
//!
//! # Statuses
//!
//! Every IOCTL may also fail with `STATUS_INVALID_DEVICE_REQUEST` (unknown
//! code, or a code sent with the wrong transfer method). What a failed
//! request leaves behind:
//!
//! - its `Information` is 0;
//! - it writes nothing to the output buffer, except when the failure is
//!   the write of the reply itself (the output is not writable, or stops
//!   being writable): then the bytes of the reply before the first byte
//!   that could not be written may be in the buffer, as Linux's
//!   `copy_to_user` leaves them. For METHOD_NEITHER that write is the
//!   driver's; for METHOD_BUFFERED it is the I/O manager's copy-back;
//! - it leaves the device state (name, configuration, counters) unchanged,
//!   except a METHOD_BUFFERED request that the driver completed
//!   successfully and whose reply the I/O manager then could not copy back
//!   (an output page that is not writable at copy-back): the driver has
//!   acted, so its change and its count stand, and the request fails with
//!   `STATUS_ACCESS_VIOLATION`. Windows finds an output that is read-only
//!   from the start in its probe, before the driver runs; a page made
//!   unwritable after that probe it finds only at copy-back.
//!
//! A caller that needs to know whether such a request took effect reads
//! STATS (or GET_NAME) afterwards. The rules shared by all IOCTLs:
//!
//! - input shorter than the request struct: `STATUS_INVALID_PARAMETER`;
//! - output shorter than the reply: `STATUS_BUFFER_TOO_SMALL`;
//! - an input or embedded pointer that is not user memory, or faults:
//!   `STATUS_ACCESS_VIOLATION`;
//! - an input or embedded pointer to user memory whose page could not be
//!   read in (an I/O error of the file behind it): `STATUS_IN_PAGE_ERROR`;
//! - a pointer misaligned for the type it points at:
//!   `STATUS_DATATYPE_MISALIGNMENT`;
//! - a count whose byte size overflows: `STATUS_INTEGER_OVERFLOW`;
//! - a count or length above the limits below: `STATUS_INVALID_BUFFER_SIZE`;
//! - the driver out of pool: `STATUS_INSUFFICIENT_RESOURCES`.
//!
//! # The IOCTLs
//!
//! | IOCTL | method | access | input | output |
//! |---|---|---|---|---|
//! | [`IOCTL_ECHO`] | BUFFERED | read, write | any bytes | the same bytes |
//! | [`IOCTL_SUM`] | NEITHER | read | [`SumRequest`] → `[u32]` | [`SumReply`] |
//! | [`IOCTL_MESSAGE`] | BUFFERED | read | [`Message`]: header + inline `[u32]` | [`MessageReply`] |
//! | [`IOCTL_SET_NAME`] | NEITHER | write | [`SetNameRequest`] → UTF-16 | none |
//! | [`IOCTL_GET_NAME`] | BUFFERED | read | none | [`NameReply`] + UTF-16 |
//! | [`IOCTL_CONFIGURE`] | BUFFERED | write | [`ConfigV1`] / [`Config`] / newer | [`Config`] (optional) |
//! | [`IOCTL_BATCH`] | NEITHER | read | [`BatchRequest`] → `[Segment]` → bytes | [`BatchReply`] |
//! | [`IOCTL_STATS`] | BUFFERED | read | none | [`Stats`] |
//!
//! Each IOCTL's constant documents its hazard, its rules and its statuses.
#![no_std]
#![forbid(unsafe_code)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use usercap::{NtStatus, WireUnicodeString};

// ------------------------------------------------------------------ codes

/// The device type of usercap's IOCTLs: vendor range (0x8000 and up).
pub const FILE_DEVICE_USERCAP: u32 = 0x8337;

/// How the I/O manager passes an IOCTL's buffers (`METHOD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Method {
    /// One SystemBuffer of max(in, out) bytes, copied in and out by the I/O manager.
    Buffered = 0,
    /// Input buffered, output described by an MDL (read direction).
    InDirect = 1,
    /// Input buffered, output described by an MDL (write direction).
    OutDirect = 2,
    /// The raw user addresses, passed through untouched.
    Neither = 3,
}

impl Method {
    /// The transfer method encoded in the low two bits of an IOCTL code.
    #[must_use]
    pub const fn of(code: u32) -> Method {
        match code & 3 {
            0 => Method::Buffered,
            1 => Method::InDirect,
            2 => Method::OutDirect,
            _ => Method::Neither,
        }
    }
}

/// `FILE_ANY_ACCESS`: any open handle may send the IOCTL.
pub const FILE_ANY_ACCESS: u32 = 0;
/// `FILE_READ_ACCESS`: the handle must be open for reading (data flows to the caller).
pub const FILE_READ_ACCESS: u32 = 1;
/// `FILE_WRITE_ACCESS`: the handle must be open for writing (the caller changes the device).
pub const FILE_WRITE_ACCESS: u32 = 2;

/// `CTL_CODE` from `devioctl.h`:
/// `(DeviceType << 16) | (Access << 14) | (Function << 2) | Method`.
#[must_use]
pub const fn ctl_code(device_type: u32, function: u32, method: Method, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method as u32
}

/// Echoes its input. **Hazard:** METHOD_BUFFERED uses one SystemBuffer of
/// max(in, out) bytes for both directions; the part past the input is stale
/// pool, and the I/O manager copies `Information` bytes of it back. **Cure:**
/// the input is captured before any output is written, and `Information` is
/// exactly the bytes written.
///
/// Input: up to [`MAX_ECHO_BYTES`] bytes. Output: the same bytes; an output
/// buffer shorter than the input is `STATUS_BUFFER_TOO_SMALL`. `Information`
/// is the input length.
pub const IOCTL_ECHO: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x800,
    Method::Buffered,
    FILE_READ_ACCESS | FILE_WRITE_ACCESS,
);

/// Sums an array of `u32`. **Hazard:** the input header holds a count and a
/// pointer to the values, both in user memory: the classic double fetch of a
/// size (validate the count, fetch it again to use it), count overflow, and
/// kernel-pointer injection through the embedded pointer. **Cure:** the header
/// is captured once, the count is validated on the copy, the byte size is
/// computed with an overflow check, and the values are captured in one probed
/// copy.
///
/// Input: [`SumRequest`]. `count` at most [`MAX_SUM_VALUES`]; `values` 4-aligned.
/// Output: [`SumReply`]. `count == 0` sums nothing and ignores `values`.
pub const IOCTL_SUM: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x801,
    Method::Neither,
    FILE_READ_ACCESS,
);

/// Summarises a message of inline items. **Hazard:** a header whose count
/// says more items follow than the buffer holds (reading past the input into
/// stale pool). **Cure:** the count is checked against the captured length.
///
/// Input: [`Message`] with `count` items, `count` at most
/// [`MAX_MESSAGE_ITEMS`]; a count beyond the bytes sent is
/// `STATUS_INVALID_PARAMETER`. Output: [`MessageReply`].
pub const IOCTL_MESSAGE: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x802,
    Method::Buffered,
    FILE_READ_ACCESS,
);

/// Sets the device name. **Hazard:** `UNICODE_STRING` has an embedded
/// buffer pointer and two lengths a racing thread can change, and an odd or
/// inconsistent length. **Cure:** the struct is captured once, its lengths are
/// checked on the copy, and exactly `Length` bytes are captured once.
///
/// Input: [`SetNameRequest`]: `Length` even, `Length <= MaximumLength`, at most
/// [`MAX_NAME_BYTES`] (`STATUS_INVALID_PARAMETER` / `STATUS_INVALID_BUFFER_SIZE`
/// otherwise). `Length == 0` clears the name. No output.
pub const IOCTL_SET_NAME: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x803,
    Method::Neither,
    FILE_WRITE_ACCESS,
);

/// Returns the device name. **Hazard:** variable-size output larger than the
/// user's buffer. **Cure:** the size is checked before anything is written.
///
/// Output: [`NameReply`] followed by `length` bytes of UTF-16. An output
/// buffer smaller than `size_of::<NameReply>() + length` is
/// `STATUS_BUFFER_TOO_SMALL` with nothing written. The required size is
/// `size_of::<NameReply>()` plus [`Stats::name_bytes`], and
/// [`GET_NAME_MAX_OUTPUT`] bytes always suffice.
pub const IOCTL_GET_NAME: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x804,
    Method::Buffered,
    FILE_READ_ACCESS,
);

/// Applies a configuration. **Hazard:** versioned, extensible structs: an
/// old caller sends fewer bytes, a newer one more, and a driver that copies
/// `size_of` bytes reads past an old caller's input or ignores a newer
/// caller's request. **Cure:** `copy_struct_from_user` rules on the input
/// length: shorter is zero-extended, longer is accepted only with an all-zero
/// tail (`STATUS_NOT_SUPPORTED` otherwise).
///
/// Input: [`ConfigV1`] (8 bytes), [`Config`] (16, current) or longer, at most
/// [`MAX_CONFIG_BYTES`]; below 8 is `STATUS_INVALID_PARAMETER`. `level` at
/// most [`MAX_LEVEL`] and no `flags` outside [`CONFIG_FLAGS_KNOWN`]
/// (`STATUS_INVALID_PARAMETER`). Output: none, or at least 16 bytes for the
/// applied [`Config`].
pub const IOCTL_CONFIGURE: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x805,
    Method::Buffered,
    FILE_WRITE_ACCESS,
);

/// Checksums a table of segments. **Hazard:** two levels of embedded
/// pointers (table, then each segment's data) and a total length the user
/// controls: pointer injection at either level, a sum of lengths that
/// overflows, and pool exhaustion. **Cure:** the table is captured once, the
/// lengths are summed with overflow checks against one byte budget before any
/// data is captured, and each segment is captured once.
///
/// Input: [`BatchRequest`] with at most [`MAX_BATCH_SEGMENTS`] segments whose
/// lengths add up to at most [`MAX_BATCH_BYTES`] (`STATUS_INVALID_BUFFER_SIZE`;
/// a sum that overflows `u64` is `STATUS_INTEGER_OVERFLOW`). Output:
/// [`BatchReply`], with the [`checksum`] of all segments' bytes in order.
pub const IOCTL_BATCH: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x806,
    Method::Neither,
    FILE_READ_ACCESS,
);

/// Returns the device counters. **Hazard:** output structs with implicit
/// padding leak stale kernel stack bytes. **Cure:** [`Stats`] has no padding,
/// which the type system checks (`IntoBytes`).
///
/// Output: [`Stats`].
pub const IOCTL_STATS: u32 = ctl_code(
    FILE_DEVICE_USERCAP,
    0x807,
    Method::Buffered,
    FILE_READ_ACCESS,
);

/// Every IOCTL with its name, for tools and tests.
pub const IOCTLS: [(&str, u32); 8] = [
    ("ECHO", IOCTL_ECHO),
    ("SUM", IOCTL_SUM),
    ("MESSAGE", IOCTL_MESSAGE),
    ("SET_NAME", IOCTL_SET_NAME),
    ("GET_NAME", IOCTL_GET_NAME),
    ("CONFIGURE", IOCTL_CONFIGURE),
    ("BATCH", IOCTL_BATCH),
    ("STATS", IOCTL_STATS),
];

/// The name of an IOCTL code, if it is one of ours.
#[must_use]
pub fn ioctl_name(code: u32) -> Option<&'static str> {
    IOCTLS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(name, _)| *name)
}

// ------------------------------------------------------------------ names

/// The device interface class GUID, `{5F1D8C9E-2B7A-4C31-9E64-0D3A7B21C5F8}`,
/// as `(Data1, Data2, Data3, Data4)`.
pub const INTERFACE_GUID: (u32, u16, u16, [u8; 8]) = (
    0x5F1D_8C9E,
    0x2B7A,
    0x4C31,
    [0x9E, 0x64, 0x0D, 0x3A, 0x7B, 0x21, 0xC5, 0xF8],
);
/// The interface GUID in registry/INF spelling.
pub const INTERFACE_GUID_STR: &str = "{5F1D8C9E-2B7A-4C31-9E64-0D3A7B21C5F8}";
/// The path a user-mode client opens.
pub const USER_DEVICE_PATH: &str = r"\\.\UserCap";
/// The symbolic link the driver creates (kernel namespace).
pub const SYMBOLIC_LINK_NAME: &str = r"\DosDevices\UserCap";
/// The hardware ID of the root-enumerated device.
pub const HARDWARE_ID: &str = r"Root\UserCap";
/// The service name. The binary is `usercap_driver.sys`: the WDK packaging
/// tools name it after the driver crate's package (see docs/design.md).
pub const SERVICE_NAME: &str = "usercap";
/// The SDDL applied to the device: SYSTEM and Administrators, full access.
pub const DEVICE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

// ------------------------------------------------------------------ limits

/// The most bytes ECHO accepts (the per-capture cap).
pub const MAX_ECHO_BYTES: usize = usercap::Limits::DEFAULT.max_capture;
/// The most values SUM accepts (1 MiB of `u32`).
pub const MAX_SUM_VALUES: u64 = 1 << 18;
/// The most items a MESSAGE may carry.
pub const MAX_MESSAGE_ITEMS: u32 = 4096;
/// The longest name, in bytes of UTF-16.
pub const MAX_NAME_BYTES: u16 = 256;
/// An output size that always holds GET_NAME's reply.
pub const GET_NAME_MAX_OUTPUT: usize = core::mem::size_of::<NameReply>() + MAX_NAME_BYTES as usize;
/// The largest CONFIGURE input accepted (newer versions with a zero tail).
pub const MAX_CONFIG_BYTES: usize = 512;
/// The highest configuration level.
pub const MAX_LEVEL: u32 = 7;
/// The configuration flags this driver knows.
pub const CONFIG_FLAGS_KNOWN: u32 = CONFIG_FLAG_VERBOSE | CONFIG_FLAG_STRICT;
/// Configuration flag: verbose tracing.
pub const CONFIG_FLAG_VERBOSE: u32 = 1 << 0;
/// Configuration flag: strict mode.
pub const CONFIG_FLAG_STRICT: u32 = 1 << 1;
/// The most segments in one BATCH.
pub const MAX_BATCH_SEGMENTS: u32 = 64;
/// The most bytes all segments of one BATCH may add up to.
pub const MAX_BATCH_BYTES: u64 = 1 << 20;

// ------------------------------------------------------------------ wire structs

/// SUM's input.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SumRequest {
    /// How many `u32` values `values` points at.
    pub count: u64,
    /// User address of the values.
    pub values: u64,
}

/// SUM's output.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SumReply {
    /// The sum of the values (wrapping is impossible: at most 2^18 values of 2^32).
    pub sum: u64,
    /// How many values were summed.
    pub count: u64,
}

/// MESSAGE's input: a header and `count` inline items.
#[derive(Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Message {
    /// A caller-chosen tag, echoed in the reply.
    pub kind: u32,
    /// How many items follow.
    pub count: u32,
    /// The items.
    pub items: [u32],
}

impl usercap::CountedLayout for Message {
    fn claimed_count(&self) -> u64 {
        u64::from(self.count)
    }
}

/// The size of [`Message`]'s header.
pub const MESSAGE_HEADER_BYTES: usize = 8;

/// MESSAGE's output.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MessageReply {
    /// The message's `kind`.
    pub kind: u32,
    /// How many items it had.
    pub count: u32,
    /// The sum of its items.
    pub sum: u64,
}

/// SET_NAME's input.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SetNameRequest {
    /// The name, as a 64-bit `UNICODE_STRING`.
    pub name: WireUnicodeString,
}

/// GET_NAME's output header; `length` bytes of UTF-16 follow it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct NameReply {
    /// Bytes of UTF-16 after this header.
    pub length: u32,
    /// Always zero.
    pub reserved: u32,
}

/// CONFIGURE's first version (8 bytes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ConfigV1 {
    /// `CONFIG_FLAG_*` bits.
    pub flags: u32,
    /// 0 to [`MAX_LEVEL`].
    pub level: u32,
}

/// CONFIGURE's current version (16 bytes): [`ConfigV1`] plus `quota`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Config {
    /// `CONFIG_FLAG_*` bits.
    pub flags: u32,
    /// 0 to [`MAX_LEVEL`].
    pub level: u32,
    /// A byte quota; 0 for none. Added in version 2.
    pub quota: u64,
}

impl usercap::Extensible for Config {
    const MIN_SIZE: usize = core::mem::size_of::<ConfigV1>();
    const MAX_SIZE: usize = MAX_CONFIG_BYTES;
}

/// A future CONFIGURE version this driver does not know (24 bytes), for
/// clients and tests: accepted only while `reserved_v3` is zero.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ConfigV3 {
    /// As in [`Config`].
    pub flags: u32,
    /// As in [`Config`].
    pub level: u32,
    /// As in [`Config`].
    pub quota: u64,
    /// A field from the future.
    pub reserved_v3: u64,
}

/// BATCH's input: a pointer to a table of segments.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BatchRequest {
    /// Segments in the table.
    pub count: u32,
    /// Explicit padding; ignored.
    pub reserved: u32,
    /// User address of `[Segment; count]`, 8-aligned.
    pub segments: u64,
}

/// One BATCH segment.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Segment {
    /// User address of the bytes.
    pub addr: u64,
    /// How many bytes.
    pub len: u64,
}

/// BATCH's output.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BatchReply {
    /// Segments processed.
    pub segments: u32,
    /// Always zero.
    pub reserved: u32,
    /// Bytes over all segments.
    pub total_bytes: u64,
    /// [`checksum`] of all segments' bytes, in table order.
    pub checksum: u64,
}

/// STATS's output: successful requests per IOCTL since the driver loaded,
/// and the current state, as one snapshot: the name length and level are
/// those left by exactly the requests the counters count, and
/// `bytes_captured` is what exactly those requests captured. Failed
/// requests change nothing, counters included (see "Statuses" for the one
/// exception, a METHOD_BUFFERED reply that cannot be copied back).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Stats {
    /// Successful ECHOs.
    pub echo: u64,
    /// Successful SUMs.
    pub sum: u64,
    /// Successful MESSAGEs.
    pub message: u64,
    /// Successful SET_NAMEs.
    pub set_name: u64,
    /// Successful GET_NAMEs.
    pub get_name: u64,
    /// Successful CONFIGUREs.
    pub configure: u64,
    /// Successful BATCHes.
    pub batch: u64,
    /// Successful STATS, this one included.
    pub stats: u64,
    /// User bytes captured by successful requests.
    pub bytes_captured: u64,
    /// Length of the current name in bytes (GET_NAME's required size is this
    /// plus `size_of::<NameReply>()`).
    pub name_bytes: u32,
    /// The current configuration level.
    pub level: u32,
}

/// The checksum BATCH reports: 64-bit FNV-1a, continued across segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    /// The FNV-1a offset basis.
    #[must_use]
    pub const fn new() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }

    /// Adds bytes.
    #[must_use]
    pub fn update(self, bytes: &[u8]) -> Self {
        Self(bytes.iter().fold(self.0, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
        }))
    }

    /// The checksum so far.
    #[must_use]
    pub const fn value(self) -> u64 {
        self.0
    }
}

/// The checksum of segments given in order.
#[must_use]
pub fn checksum<'a>(segments: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    segments
        .into_iter()
        .fold(Checksum::new(), Checksum::update)
        .value()
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn ctl_code_matches_devioctl_h() {
        // CTL_CODE(FILE_DEVICE_DISK=7, 0x0, METHOD_BUFFERED, FILE_ANY_ACCESS) = 0x70000 (IOCTL_DISK_GET_DRIVE_GEOMETRY).
        assert_eq!(
            ctl_code(7, 0, Method::Buffered, FILE_ANY_ACCESS),
            0x0007_0000
        );
        // IOCTL_STORAGE_QUERY_PROPERTY = CTL_CODE(0x2D, 0x500, METHOD_BUFFERED, FILE_ANY_ACCESS).
        assert_eq!(
            ctl_code(0x2D, 0x500, Method::Buffered, FILE_ANY_ACCESS),
            0x002D_1400
        );
        // FSCTL_GET_RETRIEVAL_POINTERS = CTL_CODE(9, 28, METHOD_NEITHER, FILE_ANY_ACCESS).
        assert_eq!(
            ctl_code(9, 28, Method::Neither, FILE_ANY_ACCESS),
            0x0009_0073
        );
        // IOCTL_DISK_SET_DRIVE_LAYOUT = CTL_CODE(7, 4, METHOD_BUFFERED, FILE_READ|FILE_WRITE).
        assert_eq!(
            ctl_code(7, 4, Method::Buffered, FILE_READ_ACCESS | FILE_WRITE_ACCESS),
            0x0007_C010
        );
    }

    #[test]
    fn codes_are_vendor_range_distinct_and_carry_their_method() {
        let expected = [
            (IOCTL_ECHO, Method::Buffered),
            (IOCTL_SUM, Method::Neither),
            (IOCTL_MESSAGE, Method::Buffered),
            (IOCTL_SET_NAME, Method::Neither),
            (IOCTL_GET_NAME, Method::Buffered),
            (IOCTL_CONFIGURE, Method::Buffered),
            (IOCTL_BATCH, Method::Neither),
            (IOCTL_STATS, Method::Buffered),
        ];
        for (i, (code, method)) in expected.iter().enumerate() {
            assert_eq!(Method::of(*code), *method);
            assert!(code >> 16 >= 0x8000, "vendor device type");
            assert!((code >> 2) & 0xFFF >= 0x800, "vendor function");
            assert_eq!(IOCTLS[i].1, *code);
            for (other, _) in &expected[i + 1..] {
                assert_ne!(code, other);
            }
        }
        assert_eq!(ioctl_name(IOCTL_BATCH), Some("BATCH"));
        assert_eq!(ioctl_name(0x1234), None);
        assert_eq!(IOCTL_ECHO, 0x8337_E000);
    }

    #[test]
    fn wire_layouts_are_fixed() {
        assert_eq!(size_of::<SumRequest>(), 16);
        assert_eq!(
            (
                offset_of!(SumRequest, count),
                offset_of!(SumRequest, values)
            ),
            (0, 8)
        );
        assert_eq!(size_of::<SumReply>(), 16);
        assert_eq!(offset_of!(SumReply, count), 8);
        // A u32 array, so the bytes are aligned for Message (a [u8; 16] on
        // the stack need not be; Miri places it anywhere).
        let backing = [0u32; 4];
        let header = backing.as_bytes();
        let (empty, _) = Message::ref_from_prefix_with_elems(header, 0).unwrap();
        assert_eq!(core::mem::size_of_val(empty), MESSAGE_HEADER_BYTES);
        let (two, _) = Message::ref_from_prefix_with_elems(header, 2).unwrap();
        assert_eq!(core::mem::size_of_val(two), MESSAGE_HEADER_BYTES + 8);
        assert_eq!(size_of::<MessageReply>(), 16);
        assert_eq!(offset_of!(MessageReply, sum), 8);
        assert_eq!(size_of::<WireUnicodeString>(), 16);
        assert_eq!(offset_of!(WireUnicodeString, maximum_length), 2);
        assert_eq!(offset_of!(WireUnicodeString, buffer), 8);
        assert_eq!(size_of::<SetNameRequest>(), 16);
        assert_eq!(size_of::<NameReply>(), 8);
        assert_eq!(size_of::<ConfigV1>(), 8);
        assert_eq!(size_of::<Config>(), 16);
        assert_eq!(offset_of!(Config, quota), 8);
        assert_eq!(size_of::<ConfigV3>(), 24);
        assert_eq!(size_of::<BatchRequest>(), 16);
        assert_eq!(offset_of!(BatchRequest, segments), 8);
        assert_eq!(size_of::<Segment>(), 16);
        assert_eq!(size_of::<BatchReply>(), 24);
        assert_eq!(offset_of!(BatchReply, checksum), 16);
        assert_eq!(size_of::<Stats>(), 80);
        assert_eq!(offset_of!(Stats, name_bytes), 72);
        assert_eq!(GET_NAME_MAX_OUTPUT, 264);
    }

    #[test]
    fn checksum_is_fnv1a_across_segments() {
        assert_eq!(checksum([]), 0xCBF2_9CE4_8422_2325);
        // FNV-1a 64 of "a" and of "foobar" (published test vectors).
        assert_eq!(checksum([&b"a"[..]]), 0xAF63_DC4C_8601_EC8C);
        assert_eq!(checksum([&b"foobar"[..]]), 0x8594_4171_F739_67E8);
        assert_eq!(
            checksum([&b"foo"[..], &b""[..], &b"bar"[..]]),
            checksum([&b"foobar"[..]])
        );
    }
}
