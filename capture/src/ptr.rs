//! `UserPtr<T>` and its kernel copy `Captured<T>`.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ops::Deref;

use zerocopy::{FromBytes, IntoBytes};

use crate::{AddressSpace, CaptureError};

/// The address of one `T` in the requester's address space.
///
/// A `UserPtr` is an integer with a type, nothing more: it cannot be
/// dereferenced, and it is neither `Copy` nor `Clone`.
/// [`capture`](Self::capture) consumes it, so the code that fetches the same
/// user object twice has to say so with a second, visible `UserPtr::new`.
///
/// ```compile_fail
/// # use usercap::UserPtr;
/// let p = UserPtr::<u32>::new(0x1_0000);
/// let q = p.clone(); // UserPtr is not Clone: one pointer, one fetch.
/// ```
#[derive(Debug)]
pub struct UserPtr<T> {
    addr: usize,
    // `fn() -> T`: the pointer owns no `T`, and stays `Send + Sync` whatever `T` is.
    _type: PhantomData<fn() -> T>,
}

impl<T> UserPtr<T> {
    /// A pointer to a `T` at user address `addr`. Nothing is checked yet:
    /// the probe happens at capture, where it cannot be forgotten.
    #[must_use]
    pub const fn new(addr: usize) -> Self {
        Self {
            addr,
            _type: PhantomData,
        }
    }

    /// The user address, for diagnostics. It is an integer: there is no way
    /// to turn it back into a reference.
    #[must_use]
    pub const fn addr(&self) -> usize {
        self.addr
    }
}

impl<T: FromBytes + IntoBytes> UserPtr<T> {
    /// Probes the range with `align_of::<T>()` (as drivers probe with
    /// `TYPE_ALIGNMENT`), copies `size_of::<T>()` bytes once, and returns the
    /// kernel copy. The copy lives inline: no allocation.
    ///
    /// A zero-sized `T` is returned without touching memory.
    ///
    /// The value is returned by value. Where the copy lands depends on the
    /// backend ([`AddressSpace::read_value`]): `HostSpace` reads up to 256
    /// bytes into registers, which the compiler stores straight into the
    /// caller's `Result`; otherwise the copy fills a local, which is then
    /// moved: a second pass over its bytes, and for a large `T` a temporary
    /// on the kernel stack. For large structs, or to capture into a request
    /// context, use [`capture_into`](Self::capture_into), which writes each
    /// byte once, in place, at any size.
    ///
    /// # Errors
    /// `AccessViolation` or `Misaligned` from the probe or the copy.
    pub fn capture<S: AddressSpace + ?Sized>(self, space: &S) -> Result<Captured<T>, CaptureError> {
        space.read_value::<T, _>(self.addr, align_of::<T>(), Captured)
    }

    /// Captures into `slot`, in place, and returns the kernel copy there.
    ///
    /// The same probe and the same single copy as [`capture`](Self::capture),
    /// through [`AddressSpace::read_into`], but the copy writes the slot's
    /// bytes directly and nothing is moved afterwards: each byte is written
    /// once at any size, and the kernel stack holds no temporary `T`. A
    /// slot is made once ([`CaptureSlot::new`] zeroes it) and reused, e.g.
    /// in a KMDF request context or a device's per-request state.
    ///
    /// On an error the slot holds whatever part of the copy was made, but
    /// nothing can read it: the only way to the slot's contents is the
    /// reference a successful capture returns, and a successful capture
    /// writes every byte.
    ///
    /// # Errors
    /// As [`capture`](Self::capture).
    pub fn capture_into<'s, S: AddressSpace + ?Sized>(
        self,
        space: &S,
        slot: &'s mut CaptureSlot<T>,
    ) -> Result<&'s Captured<T>, CaptureError> {
        space.read_into(self.addr, align_of::<T>(), &mut slot.0.0)?;
        Ok(&slot.0)
    }
}

/// Storage for the in-place capture of one `T`
/// ([`UserPtr::capture_into`]): made once, reused for every capture.
///
/// Its contents are reachable only through the `&Captured<T>` a successful
/// capture returns; `Debug` shows none of them, since after a failed capture
/// they are a partial copy that no handler may see.
///
/// A slot is 16-aligned whatever `T` is, as pool allocations are on x64
/// (see [`PoolBlock`](crate::PoolBlock)): the copy then writes whole 16-byte
/// units, none of them split across cache lines.
#[repr(C, align(16))]
pub struct CaptureSlot<T>(Captured<T>);

impl<T: FromBytes + IntoBytes> CaptureSlot<T> {
    /// A zeroed slot. Zeroing once here is what lets every capture into it
    /// write each byte once, with no `unsafe` in this crate.
    #[must_use]
    pub fn new() -> Self {
        Self(Captured(T::new_zeroed()))
    }
}

impl<T: FromBytes + IntoBytes> Default for CaptureSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> core::fmt::Debug for CaptureSlot<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CaptureSlot").finish_non_exhaustive()
    }
}

/// A versioned, extensible struct: newer versions only append fields, and
/// the user says how many bytes its version has (`copy_struct_from_user`).
pub trait Extensible: FromBytes + IntoBytes {
    /// The size of the oldest version this driver accepts. Smaller sizes are
    /// [`CaptureError::Invalid`] (Linux: `EINVAL`).
    const MIN_SIZE: usize;
    /// The largest user size accepted; larger is [`CaptureError::TooLarge`]
    /// (Linux callers cap at a page and return `E2BIG`). It bounds how many
    /// tail bytes a request can make the driver read.
    const MAX_SIZE: usize = 4096;
}

/// The size rules shared by the user and the kernel-buffer forms of a sized
/// capture: the floor, the cap, and how many bytes are copied.
pub(crate) fn sized_copy_len<T: Extensible>(user_size: usize) -> Result<usize, CaptureError> {
    if user_size < T::MIN_SIZE {
        return Err(CaptureError::Invalid);
    }
    if user_size > T::MAX_SIZE {
        return Err(CaptureError::TooLarge);
    }
    Ok(user_size.min(size_of::<T>()))
}

impl<T: Extensible> UserPtr<T> {
    /// Captures a versioned struct of which the user claims `user_size`
    /// bytes, with `copy_struct_from_user`'s rules:
    ///
    /// - `user_size < size_of::<T>()`: an older version; its bytes are copied
    ///   and the fields it does not have are zero;
    /// - equal: a plain capture;
    /// - `user_size > size_of::<T>()`: a newer version; accepted only if
    ///   every byte past `size_of::<T>()` is zero, since a non-zero byte there
    ///   is a request for a feature this driver does not have.
    ///
    /// Every byte of the user's `user_size` is fetched exactly once.
    ///
    /// # Errors
    /// `Invalid` below `T::MIN_SIZE`, `TooLarge` above `T::MAX_SIZE`,
    /// `NonZeroTail` for a non-zero byte in the tail, and the probe's and
    /// copy's errors.
    pub fn capture_sized<S: AddressSpace + ?Sized>(
        self,
        space: &S,
        user_size: usize,
    ) -> Result<Captured<T>, CaptureError> {
        let copy = sized_copy_len::<T>(user_size)?;
        let mut value = T::new_zeroed();
        if copy > 0 {
            let known = value
                .as_mut_bytes()
                .get_mut(..copy)
                .ok_or(CaptureError::Invalid)?;
            space.read(self.addr, known, align_of::<T>())?;
        }
        let tail_len = user_size.saturating_sub(copy);
        if tail_len > 0 {
            let tail = self
                .addr
                .checked_add(copy)
                .ok_or(CaptureError::AccessViolation)?;
            if !crate::slice::user_range_is_zeroed(space, tail, tail_len)? {
                return Err(CaptureError::NonZeroTail);
            }
        }
        Ok(Captured(value))
    }
}

/// The kernel copy of a `T` that came from user memory.
///
/// It is stored inline, so it lives wherever its owner lives: in the
/// handler's kernel stack frame or in a request context, both non-paged. No
/// user thread can change it, and it can only be made by a capture.
#[derive(Debug)]
pub struct Captured<T>(T);

impl<T> Captured<T> {
    /// The copied value, out of its wrapper.
    pub fn into_inner(self) -> T {
        self.0
    }

    pub(crate) fn from_kernel_copy(value: T) -> Self {
        Self(value)
    }
}

impl<T> Deref for Captured<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
