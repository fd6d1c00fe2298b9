//! `UNICODE_STRING` with an embedded buffer pointer: the wire form and its
//! kernel copy.

use core::ops::Deref;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{AddressSpace, CaptureError, CapturedSlice, UserSlice};

/// `UNICODE_STRING` as a 64-bit caller lays it out, with the padding spelled
/// out and the pointer as a `u64`.
///
/// `length` and `maximum_length` are in bytes, as in Windows. The string's
/// characters are not here: `buffer` points at them in user memory, so they
/// need a capture of their own, which [`CapturedUnicode::capture`] does.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct WireUnicodeString {
    /// Bytes of string in `buffer`, not counting any terminator. Must be even.
    pub length: u16,
    /// Size of `buffer` in bytes; `length <= maximum_length`.
    pub maximum_length: u16,
    /// Explicit padding. A 64-bit caller leaves whatever its stack held here,
    /// so it is ignored, never checked and never copied back.
    pub reserved: u32,
    /// User address of the UTF-16 characters.
    pub buffer: u64,
}

/// The kernel copy of a `UNICODE_STRING`'s characters.
#[derive(Debug)]
pub struct CapturedUnicode {
    chars: CapturedSlice<u16>,
}

impl CapturedUnicode {
    /// Captures the characters a wire `UNICODE_STRING` points at.
    ///
    /// `wire` must itself be a kernel copy (a field of a captured struct):
    /// `length` is read from it once, and every check below is made on that
    /// one value. Then exactly `length` bytes are captured once from
    /// `buffer`, with 2-byte alignment.
    ///
    /// A zero `length` gives an empty string without touching memory, even
    /// with a null `buffer`.
    ///
    /// # Errors
    /// `Invalid` for an odd `length` or `length > maximum_length`, `TooLarge`
    /// for `length > max_bytes`, and the capture's errors (a `buffer` at a
    /// kernel address is `AccessViolation`).
    pub fn capture<S: AddressSpace + ?Sized>(
        wire: &WireUnicodeString,
        space: &S,
        max_bytes: usize,
    ) -> Result<Self, CaptureError> {
        let length = wire.length;
        if !length.is_multiple_of(2) || length > wire.maximum_length {
            return Err(CaptureError::Invalid);
        }
        let bytes = usize::from(length);
        if bytes > max_bytes {
            return Err(CaptureError::TooLarge);
        }
        let addr = usize::try_from(wire.buffer).map_err(|_| CaptureError::AccessViolation)?;
        let chars = UserSlice::<u16>::new(addr, bytes / 2)?.capture(space)?;
        Ok(Self { chars })
    }

    /// The characters as UTF-16 code units.
    #[must_use]
    pub fn as_u16(&self) -> &[u16] {
        &self.chars
    }

    /// The length in bytes (`UNICODE_STRING.Length`).
    #[must_use]
    pub fn byte_len(&self) -> usize {
        self.chars.as_bytes().len()
    }

    /// The captured bytes, little-endian UTF-16.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.chars.as_bytes()
    }
}

impl Deref for CapturedUnicode {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        self.as_u16()
    }
}
