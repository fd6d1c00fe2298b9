//! The Linux uaccess vocabulary over the host model's primitives.
//!
//! Each function has the name, the arguments and the return convention of
//! its Linux twin (`include/linux/uaccess.h`, `lib/usercopy.c`,
//! `lib/strncpy_from_user.c`, `mm/util.c`), so that the same test cases run
//! against Linux's model and against usercap's capture API on the same real
//! memory (see `tests/comparison.rs`). It is built from the pieces
//! [`HostSpace`](crate::HostSpace) is built from: a range check, the
//! branch-free address mask of 64-bit x86 Linux since 6.12
//! ([`guarded::mask_user_range`], its `mask_user_address`) and the
//! fault-guarded copy.
//!
//! | Linux | here | returns |
//! |---|---|---|
//! | `access_ok(p, n)` | [`access_ok`] | `bool` |
//! | `copy_from_user(to, from, n)` | [`copy_from_user`] | bytes not copied; tail of `to` zeroed |
//! | `copy_to_user(to, from, n)` | [`copy_to_user`] | bytes not copied |
//! | `clear_user(to, n)` | [`clear_user`] | bytes not cleared |
//! | `check_zeroed_user(from, size)` | [`check_zeroed_user`] | `Ok(true)` = 1, `Ok(false)` = 0, `Err(EFAULT)` |
//! | `copy_struct_from_user(dst, ksize, src, usize)` | [`copy_struct_from_user`] | `Ok(())` = 0, `Err(E2BIG / EFAULT)` |
//! | `strncpy_from_user(dst, src, count)` | [`strncpy_from_user`] | `Ok(length)`, `Err(EFAULT)` |
//! | `memdup_user(src, len)` | [`memdup_user`] | `Ok(buffer)`, `Err(ENOMEM / EFAULT)` |
//!
//! Kernel sizes are slice lengths (`ksize = dst.len()`, `count = dst.len()`).
//!
//! # Where the host differs from a Linux kernel
//!
//! - **`access_ok` does not reject low addresses.** Linux checks only the
//!   top of the range (`size <= LIMIT && addr <= LIMIT - size`); a null or
//!   low pointer passes and then faults in the copy (the first 64 KiB are
//!   never mapped, `vm.mmap_min_addr`). usercap's probe rejects anything
//!   below 64 KiB before touching memory. Both give `EFAULT` in the end; only
//!   `access_ok` itself answers differently, and it keeps the Linux answer.
//! - **Kernel memory is in the same address space.** The limit is
//!   [`USER_LIMIT`] (`MmUserProbeAddress`, which also bounds x86_64 Linux user
//!   addresses), and the model's system space, where every
//!   [`KernelBuffer`](crate::KernelBuffer) lives, counts as kernel memory:
//!   `access_ok` fails for a range that overlaps it.
//! - **Writes go only to [`UserMemory`](crate::UserMemory)** (see
//!   [`guarded`] for why). A destination that is not
//!   entirely inside one region is refused whole, as if its first byte
//!   faulted, where Linux would write up to the first bad page.
//! - **`memdup_user` has kmalloc's size limit**, [`KMALLOC_MAX_SIZE`]: a
//!   larger `len` is `ENOMEM` without touching memory, as on x86_64 Linux.

use core::fmt;

use usercap::{CaptureError, DEFAULT_PROBE_LIMIT, errno};

use crate::guarded::{self, Backend, is_kernel_range};

/// The end of user memory for the facade: `MmUserProbeAddress`, the probe
/// limit of [`HostSpace::new`](crate::HostSpace::new). x86_64 Linux's
/// `TASK_SIZE_MAX` is 0x7FFF_FFFF_F000; every user address is below both.
pub const USER_LIMIT: usize = DEFAULT_PROBE_LIMIT;

/// The largest allocation `kmalloc` makes on x86_64 Linux
/// (`1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`, 4 MiB); [`memdup_user`] fails with
/// `ENOMEM` above it, as Linux's does.
pub const KMALLOC_MAX_SIZE: usize = 4 << 20;

/// A positive Linux error number, as the facade returns them (Linux returns
/// them negated).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// Bad address.
    pub const EFAULT: Errno = Errno(errno::EFAULT);
    /// Argument list too long: a non-zero tail, a size above a cap.
    pub const E2BIG: Errno = Errno(errno::E2BIG);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(errno::EINVAL);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(errno::ENOMEM);

    /// The symbolic name, for the errors usercap produces.
    #[must_use]
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            errno::E2BIG => Some("E2BIG"),
            errno::ENOMEM => Some("ENOMEM"),
            errno::EFAULT => Some("EFAULT"),
            errno::EINVAL => Some("EINVAL"),
            errno::ERANGE => Some("ERANGE"),
            errno::EOVERFLOW => Some("EOVERFLOW"),
            _ => None,
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<CaptureError> for Errno {
    fn from(error: CaptureError) -> Self {
        Errno(error.to_errno())
    }
}

/// `access_ok(addr, size)`: whether `[addr, addr + size)` is user memory.
///
/// Linux's rule, `size <= LIMIT && addr <= LIMIT - size`, with
/// `LIMIT` = [`USER_LIMIT`]; a zero size passes for any `addr <= LIMIT`. In
/// addition, a range that overlaps the model's system space (or, for size
/// 0, an `addr` inside it), where every [`KernelBuffer`](crate::KernelBuffer)
/// lives, fails. Low addresses pass, as on Linux (see the module docs).
#[must_use]
pub fn access_ok(addr: usize, size: usize) -> bool {
    size <= USER_LIMIT && addr <= USER_LIMIT - size && !is_kernel_range(addr, size)
}

/// `copy_from_user(to, from, to.len())`: returns the number of bytes not
/// copied (0 on success). The first `to.len() - ret` bytes of `to` are the
/// user's; the rest is zeroed, so the kernel never sees stale bytes.
#[must_use]
pub fn copy_from_user(to: &mut [u8], from: usize) -> usize {
    let n = to.len();
    let left = if access_ok(from, n) {
        guarded::copy_from(to, guarded::mask_user_range(from, n, USER_LIMIT))
    } else {
        n
    };
    if let Some(tail) = to.get_mut(n - left..) {
        tail.fill(0);
    }
    left
}

/// `copy_to_user(to, from, from.len())`: returns the number of bytes not
/// copied. User memory may be partly written.
#[must_use]
pub fn copy_to_user(to: usize, from: &[u8]) -> usize {
    if !access_ok(to, from.len()) {
        return from.len();
    }
    guarded::copy_to(guarded::mask_user_range(to, from.len(), USER_LIMIT), from)
}

/// `clear_user(to, n)`: zeroes user memory; returns the number of bytes not
/// cleared.
#[must_use]
pub fn clear_user(to: usize, n: usize) -> usize {
    if !access_ok(to, n) {
        return n;
    }
    guarded::clear(guarded::mask_user_range(to, n, USER_LIMIT), n)
}

/// `check_zeroed_user(from, size)`: whether every byte of the user range is
/// zero. A zero `size` is `Ok(true)` without touching memory.
///
/// It reads the range in chunks that end on 256-byte boundaries and stops at
/// the chunk holding the first non-zero byte. Chunks never extend outside the range and never
/// cross a page, so it reads nothing outside `[from, from + size)`, and a
/// fault can come only from a page of the range that the scan reached (Linux
/// reads aligned words for the same reason).
///
/// # Errors
/// `EFAULT` if `access_ok` fails, or the scan reaches a byte it cannot read
/// before it finds a non-zero one.
pub fn check_zeroed_user(from: usize, size: usize) -> Result<bool, Errno> {
    if size == 0 {
        return Ok(true);
    }
    if !access_ok(from, size) {
        return Err(Errno::EFAULT);
    }
    let from = guarded::mask_user_range(from, size, USER_LIMIT);
    let mut chunk = [0u8; ZERO_SCAN_CHUNK];
    let mut done = 0;
    while done < size {
        let at = from + done;
        let n = (ZERO_SCAN_CHUNK - at % ZERO_SCAN_CHUNK).min(size - done);
        let buf = chunk.get_mut(..n).ok_or(Errno::EFAULT)?;
        if guarded::copy_from(buf, at) != 0 {
            return Err(Errno::EFAULT);
        }
        if buf.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

/// `copy_struct_from_user(dst, dst.len(), src, usize_)`: the rule for
/// extensible, versioned structs. With `ksize = dst.len()`:
///
/// - `usize_ < ksize`: copies `usize_` bytes and zeroes the rest of `dst`;
/// - `usize_ > ksize`: requires the user bytes `[ksize, usize_)` to be zero
///   (`E2BIG` if not, `EFAULT` on a fault), then copies `ksize` bytes;
/// - equal: a plain copy.
///
/// Like Linux's, it has no floor and no cap: callers add them (`EINVAL`
/// below the first version, `E2BIG` above a page).
///
/// # Errors
/// `E2BIG` for a non-zero tail, `EFAULT` for a fault (tail first, then the
/// copy, as on Linux).
pub fn copy_struct_from_user(dst: &mut [u8], src: usize, usize_: usize) -> Result<(), Errno> {
    let ksize = dst.len();
    let size = ksize.min(usize_);
    if usize_ < ksize {
        if let Some(rest) = dst.get_mut(size..) {
            rest.fill(0);
        }
    } else if usize_ > ksize {
        let tail = src.checked_add(size).ok_or(Errno::EFAULT)?;
        if !check_zeroed_user(tail, usize_ - ksize)? {
            return Err(Errno::E2BIG);
        }
    }
    let head = dst.get_mut(..size).ok_or(Errno::EFAULT)?;
    if copy_from_user(head, src) != 0 {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// `strncpy_from_user(dst, src, dst.len())`: copies a NUL-terminated string.
///
/// Returns the string's length without the NUL, which is then at
/// `dst[len]`; if no NUL comes within `count = dst.len()` bytes, returns
/// `count` and `dst` is not terminated. A `count` of 0 returns 0 without
/// touching memory.
///
/// It reads in chunks ending on 64-byte boundaries (never crossing a page)
/// and stops at the chunk holding the NUL; bytes after the NUL in that chunk
/// are zeroed in `dst`, as Linux's word-at-a-time copy does.
///
/// # Errors
/// `EFAULT` if `src` is at or above the limit, if a chunk before the NUL
/// faults or overlaps a [`KernelBuffer`](crate::KernelBuffer) (`dst` may then
/// hold part of the string), or if the string runs into the limit before
/// `count` bytes without a NUL.
pub fn strncpy_from_user(dst: &mut [u8], src: usize) -> Result<usize, Errno> {
    let count = dst.len();
    if count == 0 {
        return Ok(0);
    }
    if src >= USER_LIMIT {
        return Err(Errno::EFAULT);
    }
    let bound = count.min(USER_LIMIT - src);
    let mut done = 0;
    while done < bound {
        let at = src + done;
        let n = chunk_len(at, bound - done);
        if is_kernel_range(at, n) {
            return Err(Errno::EFAULT);
        }
        let chunk = dst.get_mut(done..done + n).ok_or(Errno::EFAULT)?;
        let left = guarded::copy_from(chunk, guarded::mask_user_range(at, n, USER_LIMIT));
        let copied = chunk.get_mut(..n - left).unwrap_or(&mut []);
        if let Some(nul) = copied.iter().position(|&b| b == 0) {
            if let Some(after) = copied.get_mut(nul..) {
                after.fill(0);
            }
            return Ok(done + nul);
        }
        if left != 0 {
            return Err(Errno::EFAULT);
        }
        done += n;
    }
    if bound == count {
        Ok(count)
    } else {
        // Ran into the end of user memory before `count` bytes.
        Err(Errno::EFAULT)
    }
}

/// `memdup_user(src, len)`: allocates a kernel buffer and copies `len` user
/// bytes into it, the closest Linux twin of usercap's `CapturedBytes`. The
/// buffer is not zero-filled first: the copy writes it once
/// ([`guarded::copy_from_to_vec`]).
///
/// # Errors
/// `ENOMEM` if `len` is above [`KMALLOC_MAX_SIZE`] or the allocation fails
/// (nothing is read); `EFAULT` if the copy fails (the buffer is freed).
pub fn memdup_user(src: usize, len: usize) -> Result<Box<[u8]>, Errno> {
    if len > KMALLOC_MAX_SIZE {
        return Err(Errno::ENOMEM);
    }
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    if !access_ok(src, len) {
        return Err(Errno::EFAULT);
    }
    let src = guarded::mask_user_range(src, len, USER_LIMIT);
    if guarded::copy_from_to_vec(Backend::Guarded, &mut buffer, src, len) != 0 {
        return Err(Errno::EFAULT);
    }
    Ok(buffer.into_boxed_slice())
}

/// [`check_zeroed_user`]'s chunk size: chunks end on multiples of it, so a
/// chunk never crosses a page (pages are a multiple of 256 bytes).
const ZERO_SCAN_CHUNK: usize = 256;

/// [`strncpy_from_user`]'s chunk size: chunks end on multiples of it, so on real memory (pages
/// are a multiple of 64 bytes) a chunk never crosses a page.
const CHUNK: usize = 64;

/// The length of the chunk at `addr` with `remaining` bytes to go.
fn chunk_len(addr: usize, remaining: usize) -> usize {
    (CHUNK - addr % CHUNK).min(remaining)
}
