//! `UserSlice<T>` and its kernel copies: `CapturedSlice<T>`, `CapturedBytes`,
//! `CapturedCStr`.

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::Deref;

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::ptr::{Extensible, sized_copy_len};
use crate::space::PoolBlock;
use crate::{AddressSpace, CaptureError, Captured};

/// `len` elements of `T` at a user address.
///
/// Like [`UserPtr`](crate::UserPtr), it is an integer range that cannot be
/// dereferenced, is neither `Copy` nor `Clone`, and is consumed by the one
/// call that fetches it. Its byte length is checked for overflow when it is
/// made, so no later code multiplies a user count by a size unchecked.
#[derive(Debug)]
pub struct UserSlice<T> {
    addr: usize,
    len: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> UserSlice<T> {
    /// `len` elements at `addr`.
    ///
    /// # Errors
    /// [`CaptureError::Overflow`] when `len * size_of::<T>()` overflows.
    pub const fn new(addr: usize, len: usize) -> Result<Self, CaptureError> {
        if len.checked_mul(size_of::<T>()).is_none() {
            return Err(CaptureError::Overflow);
        }
        Ok(Self {
            addr,
            len,
            _type: PhantomData,
        })
    }

    /// The user address (an integer, for diagnostics).
    #[must_use]
    pub const fn addr(&self) -> usize {
        self.addr
    }

    /// The number of elements.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice has no elements (capturing it touches nothing).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length in bytes; checked for overflow in [`new`](Self::new).
    #[must_use]
    pub const fn byte_len(&self) -> usize {
        // `new` proved the product does not overflow.
        self.len.saturating_mul(size_of::<T>())
    }
}

impl<T: FromBytes + IntoBytes + Immutable> UserSlice<T> {
    /// Checks the limits, allocates the kernel copy fallibly, probes with
    /// `align_of::<T>()` and copies every byte once.
    ///
    /// An empty slice is returned without touching memory, whatever the address.
    ///
    /// # Errors
    /// `TooLarge` above the per-capture cap or the request's budget,
    /// `NoMemory` if the allocation fails, and the probe's and copy's errors.
    pub fn capture<S: AddressSpace + ?Sized>(
        self,
        space: &S,
    ) -> Result<CapturedSlice<T>, CaptureError> {
        let bytes = self.byte_len();
        space.limits().check_capture(bytes)?;
        space.charge(bytes)?;
        let storage = space.read_to_pool(self.addr, bytes, align_of::<T>())?;
        CapturedSlice::from_storage(storage, self.len)
    }
}

/// Chunk size for scans that need no kernel copy of their own. Chunks end on
/// multiples of this size, so on real memory a chunk never crosses a page:
/// the chunk that holds a string's NUL cannot fault when the NUL's page is
/// mapped (the reason Linux reads strings a word at a time, aligned).
const SCAN_CHUNK: usize = 64;

/// The length of the chunk starting at `addr` with `remaining` bytes to go:
/// up to the next multiple of [`SCAN_CHUNK`].
fn chunk_len(addr: usize, remaining: usize) -> usize {
    let to_boundary = SCAN_CHUNK - (addr % SCAN_CHUNK);
    to_boundary.min(remaining)
}

/// Whether `len` user bytes at `addr` are all zero, reading each byte once
/// through a stack chunk and stopping at the first non-zero one.
pub(crate) fn user_range_is_zeroed<S: AddressSpace + ?Sized>(
    space: &S,
    addr: usize,
    len: usize,
) -> Result<bool, CaptureError> {
    let mut chunk = [0u8; SCAN_CHUNK];
    let mut done = 0;
    while done < len {
        let at = addr
            .checked_add(done)
            .ok_or(CaptureError::AccessViolation)?;
        let n = chunk_len(at, len - done);
        let buf = chunk.get_mut(..n).ok_or(CaptureError::Invalid)?;
        space.read(at, buf, 1)?;
        if buf.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

impl UserSlice<u8> {
    /// Narrows a user byte range to the `T` at its start, for a
    /// METHOD_NEITHER input that holds one fixed-size struct. Only
    /// `size_of::<T>()` bytes will be fetched, however long the range.
    ///
    /// # Errors
    /// `Invalid` if the range is shorter than a `T` (a short input).
    pub fn into_ptr<T>(self) -> Result<crate::UserPtr<T>, CaptureError> {
        if self.len < size_of::<T>() {
            return Err(CaptureError::Invalid);
        }
        Ok(crate::UserPtr::new(self.addr))
    }

    /// Whether every byte of the range is zero (`check_zeroed_user`).
    ///
    /// Each byte is fetched at most once, through a small stack buffer: no
    /// allocation. An empty range is zeroed without touching memory.
    ///
    /// # Errors
    /// `TooLarge` above the per-capture cap, and the probe's and copy's
    /// errors.
    pub fn is_zeroed<S: AddressSpace + ?Sized>(self, space: &S) -> Result<bool, CaptureError> {
        space.limits().check_capture(self.len)?;
        user_range_is_zeroed(space, self.addr, self.len)
    }

    /// Captures a NUL-terminated string of at most `self.len()` bytes, with
    /// `strncpy_from_user`'s semantics: the result stops before the first
    /// NUL; if there is none within the bound, it holds all `len` bytes and
    /// [`CapturedCStr::is_terminated`] is false.
    ///
    /// The string is read in chunks that end on 64-byte boundaries, so bytes
    /// after the NUL up to the end of its chunk are fetched too (once), as
    /// Linux's word-at-a-time read does; they are zeroed in the kernel copy.
    ///
    /// # Errors
    /// `TooLarge` above the per-capture cap or budget, `NoMemory`, and the
    /// probe's and copy's errors for any chunk up to and including the NUL's.
    pub fn capture_cstr<S: AddressSpace + ?Sized>(
        self,
        space: &S,
    ) -> Result<CapturedCStr, CaptureError> {
        let bound = self.len;
        space.limits().check_capture(bound)?;
        space.charge(bound)?;
        let mut copy = CapturedSlice::<u8>::zeroed(bound)?;
        let buf = copy.bytes_mut();
        let mut done = 0;
        let mut nul = None;
        while done < bound {
            let at = self
                .addr
                .checked_add(done)
                .ok_or(CaptureError::AccessViolation)?;
            let n = chunk_len(at, bound - done);
            let chunk = buf.get_mut(done..done + n).ok_or(CaptureError::Invalid)?;
            space.read(at, chunk, 1)?;
            if let Some(i) = chunk.iter().position(|&b| b == 0) {
                // Bytes past the NUL were fetched with its chunk; they are not
                // part of the string, so they do not stay in the kernel copy.
                chunk.iter_mut().skip(i).for_each(|b| *b = 0);
                nul = Some(done + i);
                break;
            }
            done += n;
        }
        let terminated = nul.is_some();
        copy.truncate(nul.unwrap_or(bound));
        Ok(CapturedCStr {
            bytes: copy,
            terminated,
        })
    }
}

/// The kernel copy of a user slice, in one pool allocation.
///
/// In the driver the global allocator is `wdk-alloc`, so the allocation is
/// non-paged pool: the copy can be read at any IRQL and no user thread can
/// change it. The allocation is fallible: running out of pool is
/// [`CaptureError::NoMemory`], never a panic.
pub struct CapturedSlice<T> {
    storage: Vec<PoolBlock>,
    len: usize,
    _type: PhantomData<T>,
}

/// The kernel copy of a user byte range.
pub type CapturedBytes = CapturedSlice<u8>;

impl<T: FromBytes + IntoBytes + Immutable> CapturedSlice<T> {
    /// A zeroed kernel buffer for `len` elements, allocated fallibly.
    fn zeroed(len: usize) -> Result<Self, CaptureError> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or(CaptureError::Overflow)?;
        let storage = PoolBlock::new_vec_zeroed(PoolBlock::blocks_for(bytes))
            .map_err(|_| CaptureError::NoMemory)?;
        Self::from_storage(storage, len)
    }

    /// Wraps storage a backend filled. A backend that returned too few
    /// blocks is refused rather than trusted.
    fn from_storage(storage: Vec<PoolBlock>, len: usize) -> Result<Self, CaptureError> {
        const {
            assert!(
                size_of::<T>() > 0,
                "captured element types are not zero-sized"
            );
            assert!(
                align_of::<T>() <= align_of::<PoolBlock>(),
                "pool gives 16-byte alignment at most"
            );
        }
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or(CaptureError::Overflow)?;
        if storage.len() < PoolBlock::blocks_for(bytes) {
            return Err(CaptureError::Invalid);
        }
        Ok(Self {
            storage,
            len,
            _type: PhantomData,
        })
    }

    /// The copy's bytes, `len * size_of::<T>()` of them.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        let bytes = self.len.saturating_mul(size_of::<T>());
        self.storage.as_bytes().get(..bytes).unwrap_or(&[])
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let bytes = self.len.saturating_mul(size_of::<T>());
        self.storage
            .as_mut_bytes()
            .get_mut(..bytes)
            .unwrap_or(&mut [])
    }

    /// Shortens the visible copy; the allocation keeps its size.
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl<T: FromBytes + IntoBytes + Immutable> Deref for CapturedSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // The storage holds at least `len` elements and is 16-aligned, which
        // `zeroed` asserted is enough for `T`, so the cast cannot fail; the
        // empty fallback only keeps this path free of panics.
        <[T]>::ref_from_prefix_with_elems(self.storage.as_bytes(), self.len)
            .map_or(&[], |(slice, _)| slice)
    }
}

impl<T: FromBytes + IntoBytes + Immutable + core::fmt::Debug> core::fmt::Debug
    for CapturedSlice<T>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("CapturedSlice").field(&&**self).finish()
    }
}

/// A message whose header says how many trailing elements follow it, as a
/// zerocopy slice DST (`struct M { header fields…, items: [E] }`).
pub trait CountedLayout: KnownLayout<PointerMetadata = usize> + FromBytes + Immutable {
    /// The element count the header claims. It is read from the kernel copy
    /// and checked against the captured length before any element is seen.
    fn claimed_count(&self) -> u64;
}

impl CapturedBytes {
    /// Copies a METHOD_BUFFERED input out of the SystemBuffer.
    ///
    /// The SystemBuffer is kernel memory, but it is also where the output
    /// goes: a handler that reads input while it writes output corrupts its
    /// own input (and, in Rust, would hold `&[u8]` and `&mut [u8]` over the
    /// same bytes). Capturing the input first makes that impossible.
    ///
    /// The copy obeys `space`'s limits and is charged to its request budget,
    /// as every other capture is.
    ///
    /// # Errors
    /// `TooLarge` above the per-capture cap or the request's budget, `NoMemory`.
    pub fn from_system_buffer<S: AddressSpace + ?Sized>(
        input: &[u8],
        space: &S,
    ) -> Result<Self, CaptureError> {
        space.limits().check_capture(input.len())?;
        space.charge(input.len())?;
        let mut copy = Self::zeroed(input.len())?;
        copy.bytes_mut().copy_from_slice(input);
        Ok(copy)
    }

    /// Reads a `T` from the start of the kernel copy.
    ///
    /// # Errors
    /// `Invalid` if fewer than `size_of::<T>()` bytes were captured (a short
    /// input; `BufferTooSmall` is kept for the output side).
    pub fn read<T: FromBytes>(&self) -> Result<Captured<T>, CaptureError> {
        T::read_from_prefix(self.as_bytes())
            .map(|(value, _)| Captured::from_kernel_copy(value))
            .map_err(|_| CaptureError::Invalid)
    }

    /// Reads a versioned struct that fills the whole kernel copy, with the
    /// rules of [`UserPtr::capture_sized`](crate::UserPtr::capture_sized):
    /// the captured length is the user's size.
    ///
    /// # Errors
    /// `Invalid`, `TooLarge` and `NonZeroTail` as `capture_sized`.
    pub fn read_sized<T: Extensible>(&self) -> Result<Captured<T>, CaptureError> {
        let bytes = self.as_bytes();
        let copy = sized_copy_len::<T>(bytes.len())?;
        let (known, tail) = bytes.split_at_checked(copy).ok_or(CaptureError::Invalid)?;
        if tail.iter().any(|&b| b != 0) {
            return Err(CaptureError::NonZeroTail);
        }
        let mut value = T::new_zeroed();
        value
            .as_mut_bytes()
            .get_mut(..copy)
            .ok_or(CaptureError::Invalid)?
            .copy_from_slice(known);
        Ok(Captured::from_kernel_copy(value))
    }

    /// Views the kernel copy as a header plus trailing array whose length is
    /// the header's claimed count, checked against the bytes actually
    /// captured, never against what the user said the input length was.
    /// Bytes after the last element are ignored.
    ///
    /// The count is read from the kernel copy, so a user thread that flips it
    /// after the capture changes nothing.
    ///
    /// # Errors
    /// `Invalid` if the header itself was not captured or the claimed
    /// elements do not fit in the captured bytes.
    pub fn parse<M: CountedLayout + ?Sized>(&self) -> Result<&M, CaptureError> {
        let bytes = self.as_bytes();
        let (header, _) =
            M::ref_from_prefix_with_elems(bytes, 0).map_err(|_| CaptureError::Invalid)?;
        let count = usize::try_from(header.claimed_count()).map_err(|_| CaptureError::Invalid)?;
        M::ref_from_prefix_with_elems(bytes, count)
            .map(|(message, _)| message)
            .map_err(|_| CaptureError::Invalid)
    }
}

/// A string captured by [`UserSlice::capture_cstr`]: the bytes before the
/// NUL, or all of them if there was no NUL within the bound.
#[derive(Debug)]
pub struct CapturedCStr {
    bytes: CapturedBytes,
    terminated: bool,
}

impl CapturedCStr {
    /// Whether a NUL was found within the bound (`strncpy_from_user`
    /// returning less than `count`).
    #[must_use]
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }
}

impl Deref for CapturedCStr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes.as_bytes()
    }
}
