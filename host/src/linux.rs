//! The Linux uaccess vocabulary over the host model's primitives.
//!
//! Each function has the name, the arguments, the return convention *and
//! the behaviour* of its Linux twin: what it writes into the destination in
//! every case (bytes Linux does not promise included), what a zero length
//! does at any address, and the exact return value. The same test cases then
//! run against Linux's model and against usercap's capture API on the same
//! real memory (see `tests/comparison.rs`). It is built from the pieces
//! [`HostSpace`](crate::HostSpace) is built from: a range check, the
//! branch-free address mask of 64-bit x86 Linux since 6.12
//! ([`guarded::mask_user_range`], its `mask_user_address`) and the
//! fault-guarded copy, which like x86_64's `copy_user_generic` stops at the
//! first byte it cannot access.
//!
//! The reference is the architecture-independent code: `access_ok` of
//! `include/asm-generic/access_ok.h`, `copy_from_user`/`copy_to_user` of
//! `include/linux/uaccess.h` and `lib/usercopy.c` (the path with
//! `access_ok`, not x86's masked path), `check_zeroed_user` of
//! `lib/usercopy.c`, `copy_struct_from_user` of `include/linux/uaccess.h`,
//! `strncpy_from_user` of `lib/strncpy_from_user.c` with
//! `CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS` (x86_64: always word at a time
//! first), `memdup_user` of `mm/util.c`, `clear_user` of x86_64's
//! `uaccess_64.h`. Each function's docs list its rules, and
//! `tests/linux_facade.rs` has one test per rule, named after it.
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
//! Kernel sizes are slice lengths (`ksize = dst.len()`, `count = dst.len()`,
//! `n = to.len()`), so the checks Linux makes of a kernel object's size
//! against `__builtin_object_size` have nothing to check, and a `count` can
//! never be negative.
//!
//! # Where the model is not a Linux kernel, and the one place usercap differs
//!
//! - **`LIMIT` is [`USER_LIMIT`]** (`MmUserProbeAddress`, 0x7FFF_FFFF_0000),
//!   where x86_64 Linux has `TASK_SIZE_MAX` (0x7FFF_FFFF_F000). Every user
//!   address of this process is below both.
//! - **Kernel memory sits below the limit.** The model's system space, where
//!   every [`KernelBuffer`](crate::KernelBuffer) lives, is a range of this
//!   process, so it lies inside `[0, LIMIT)`. The facade treats it as Linux
//!   treats the memory above `TASK_SIZE_MAX`: `access_ok` fails for a range
//!   that overlaps it (as for a range that crosses the limit), and
//!   `strncpy_from_user` stops at its start (as at the limit). That gives
//!   the answers Linux gives for kernel memory; no other answer changes.
//! - **Low addresses pass `access_ok`, as on Linux**, and then fault in the
//!   copy (the first 64 KiB are never mapped, `vm.mmap_min_addr`). Only
//!   usercap's own probe refuses them up front; the facade keeps Linux's
//!   behaviour.
//! - **x86_64's own `access_ok`** checks only that the end of the range
//!   stays in the lower half, and its masked `copy_from_user` skips
//!   `access_ok`, relying on the unmapped page below `TASK_SIZE_MAX` and on
//!   non-canonical faults. It differs from the generic rule only for a range
//!   that starts in readable user memory and crosses the limit: x86_64
//!   copies the part below the limit, the generic code nothing. The facade
//!   follows the generic code.
//! - **The one deliberate difference: writes go only to
//!   [`UserMemory`](crate::UserMemory)** (see [`guarded`] for why).
//!   [`copy_to_user`] and [`clear_user`] refuse a destination that is not
//!   entirely inside one region whole, as if its first byte faulted, where
//!   Linux writes up to the first bad page. A safe function that wrote to
//!   any address could corrupt memory Rust code references.

use core::fmt;

use usercap::{CaptureError, DEFAULT_PROBE_LIMIT, errno};

use crate::guarded::{self, Backend, is_kernel_range, system_space};

/// The end of user memory for the facade: `MmUserProbeAddress`, the probe
/// limit of [`HostSpace::new`](crate::HostSpace::new). x86_64 Linux's
/// `TASK_SIZE_MAX` is 0x7FFF_FFFF_F000; every user address is below both.
pub const USER_LIMIT: usize = DEFAULT_PROBE_LIMIT;

/// The largest allocation `kmalloc` makes on x86_64 Linux
/// (`1 << (MAX_PAGE_ORDER + PAGE_SHIFT)`, 4 MiB); [`memdup_user`] fails with
/// `ENOMEM` above it, as Linux's does.
pub const KMALLOC_MAX_SIZE: usize = 4 << 20;

/// `INT_MAX`: `check_copy_size` refuses copies of more bytes
/// (`WARN_ON_ONCE(bytes > INT_MAX)`), and [`copy_from_user`] and
/// [`copy_to_user`] then return `n` without touching either side.
pub const INT_MAX: usize = i32::MAX as usize;

/// The word `check_zeroed_user` and `strncpy_from_user` read at a time:
/// `sizeof(unsigned long)`.
const WORD: usize = size_of::<u64>();

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
/// Rules (`include/asm-generic/access_ok.h`):
/// - the range passes if `size <= LIMIT && addr <= LIMIT - size`, with
///   `LIMIT` = [`USER_LIMIT`]: it does not wrap and ends at or below the
///   limit;
/// - so a zero size passes for any `addr <= LIMIT`, and low addresses, null
///   included, pass (the copy then faults);
/// - the model's system space counts as the memory above the limit: a range
///   that overlaps it fails, and a zero size at an `addr` inside it fails
///   (see the module docs).
#[must_use]
pub fn access_ok(addr: usize, size: usize) -> bool {
    size <= USER_LIMIT && addr <= USER_LIMIT - size && !is_kernel_range(addr, size)
}

/// `copy_from_user(to, from, to.len())`: returns the number of bytes not
/// copied (0 on success).
///
/// Rules (`include/linux/uaccess.h`, `lib/usercopy.c`):
/// - more than [`INT_MAX`] bytes: returns `n` and writes nothing, not even
///   zeros (`check_copy_size`);
/// - a range that fails [`access_ok`]: returns `n` and zeroes all of `to`;
/// - otherwise the copy stops at the first byte it cannot read, and `ret`
///   is the bytes from there on: `to[..n - ret]` are the user's bytes and
///   `to[n - ret..]` is zeroed, so the kernel never sees stale bytes (Linux
///   allows an architecture to stop earlier; x86_64 stops there, as this
///   does);
/// - a zero `n` returns 0 and touches nothing, at any address.
#[must_use]
pub fn copy_from_user(to: &mut [u8], from: usize) -> usize {
    let n = to.len();
    if n > INT_MAX {
        return n;
    }
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
/// copied.
///
/// Rules (`include/linux/uaccess.h`, `lib/usercopy.c`):
/// - more than [`INT_MAX`] bytes: returns `n` and writes nothing;
/// - a range that fails [`access_ok`]: returns `n` and writes nothing;
/// - otherwise the copy stops at the first byte it cannot write: the bytes
///   before it are written, nothing after, and `ret` is the bytes from
///   there on;
/// - a zero `n` returns 0 and touches nothing, at any address.
///
/// **usercap differs here, deliberately:** the destination must lie
/// entirely inside one [`UserMemory`](crate::UserMemory) region, or it is
/// refused whole (`n` returned, nothing written), where Linux would write
/// up to the first unwritable byte. A safe function may not write to memory
/// Rust code references (see [`guarded`]).
#[must_use]
pub fn copy_to_user(to: usize, from: &[u8]) -> usize {
    let n = from.len();
    if n > INT_MAX || !access_ok(to, n) {
        return n;
    }
    guarded::copy_to(guarded::mask_user_range(to, n, USER_LIMIT), from)
}

/// `clear_user(to, n)`: zeroes user memory; returns the number of bytes not
/// cleared.
///
/// Rules (x86_64's `uaccess_64.h`, `__clear_user`):
/// - a range that fails [`access_ok`]: returns `n` and writes nothing;
/// - otherwise it zeroes up to the first byte it cannot write and returns
///   the bytes from there on (no `INT_MAX` limit);
/// - a zero `n` returns 0 and touches nothing, at any address.
///
/// **usercap differs here, deliberately,** as [`copy_to_user`] does: a
/// destination not entirely inside one [`UserMemory`](crate::UserMemory)
/// region is refused whole.
#[must_use]
pub fn clear_user(to: usize, n: usize) -> usize {
    if !access_ok(to, n) {
        return n;
    }
    guarded::clear(guarded::mask_user_range(to, n, USER_LIMIT), n)
}

/// `check_zeroed_user(from, size)`: whether every byte of the user range is
/// zero.
///
/// Rules (`lib/usercopy.c`), which read whole aligned words:
/// - a zero `size` is `Ok(true)` and reads nothing, at any address;
/// - the range is widened down to the word holding `from`
///   (`from - from % 8`, `size + from % 8`, modulo 2^64 as in C), and that
///   widened range must pass [`access_ok`], or `EFAULT`;
/// - the aligned words covering it are read in order; the bytes of the
///   first and last word outside `[from, from + size)` are ignored;
/// - the answer is `Ok(false)` as soon as a word holds a non-zero byte of
///   the range: later words are not read, so a fault after that word is
///   not seen;
/// - a word that cannot be read before then is `EFAULT`. A word never
///   crosses a page, so only the range's own pages are touched;
/// - if the widened size wraps (a `size` within 7 of 2^64 and a misaligned
///   `from`), Linux reads the one word at the aligned start, masks every
///   byte of it away, and answers `Ok(true)` (or `EFAULT` if that word
///   cannot be read); the facade does the same.
///
/// # Errors
/// `EFAULT` as above.
pub fn check_zeroed_user(from: usize, size: usize) -> Result<bool, Errno> {
    if size == 0 {
        return Ok(true);
    }
    let align = from % WORD;
    let start = from - align;
    let mut size = size.wrapping_add(align);
    if !access_ok(start, size) {
        return Err(Errno::EFAULT);
    }
    let mut at = guarded::mask_user_range(start, size, USER_LIMIT);
    let mut val = read_word(at).ok_or(Errno::EFAULT)?;
    if align != 0 {
        val &= !aligned_byte_mask(align);
    }
    while size > WORD {
        if val != 0 {
            return Ok(false);
        }
        at += WORD;
        size -= WORD;
        val = read_word(at).ok_or(Errno::EFAULT)?;
    }
    if size < WORD {
        val &= aligned_byte_mask(size);
    }
    Ok(val == 0)
}

/// `copy_struct_from_user(dst, dst.len(), src, usize_)`: the rule for
/// extensible, versioned structs, with `ksize = dst.len()`.
///
/// Rules (`include/linux/uaccess.h`):
/// - `usize_ < ksize`: `dst[usize_..]` is zeroed first, then `usize_`
///   bytes are copied with [`copy_from_user`]; on a fault, `EFAULT`, and
///   `dst` holds the copied prefix and zeros (every byte of `dst` is
///   written in every outcome);
/// - `usize_ > ksize`: first [`check_zeroed_user`] of the tail
///   `[src + ksize, src + usize_)` (the address computed modulo 2^64, as C
///   pointer arithmetic does): `E2BIG` if a byte is not zero, `EFAULT` if
///   it faults, and `dst` is untouched in both cases; then `ksize` bytes
///   are copied as below;
/// - equal: [`copy_from_user`] of `ksize` bytes; `EFAULT` on a fault, with
///   `dst` the copied prefix and zeros;
/// - so `usize_ == 0` zeroes `dst` and succeeds, at any `src`.
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
    let rest = ksize.max(usize_) - size;
    if usize_ < ksize {
        if let Some(tail) = dst.get_mut(size..) {
            tail.fill(0);
        }
    } else if usize_ > ksize && !check_zeroed_user(src.wrapping_add(size), rest)? {
        return Err(Errno::E2BIG);
    }
    let head = dst.get_mut(..size).ok_or(Errno::EFAULT)?;
    if copy_from_user(head, src) != 0 {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// `strncpy_from_user(dst, src, dst.len())`: copies a NUL-terminated string.
///
/// Rules (`lib/strncpy_from_user.c`, word at a time first, as on x86_64),
/// with `count = dst.len()`:
/// - `count == 0` returns 0 and touches nothing, at any address;
/// - `src` at or above the limit (or inside system space): `EFAULT`,
///   nothing written;
/// - it reads at most `max = min(count, limit - src)` bytes, where the
///   limit is [`USER_LIMIT`], or the start of system space for a `src`
///   below it (see the module docs);
/// - while at least 8 bytes remain it reads 8 at a time at `src + res`
///   (`res` a multiple of 8, whatever `src`'s alignment). A word holding a
///   NUL is stored with the NUL **and every byte after it in that word
///   zeroed**, and its length is returned; any other word is stored whole.
///   A word it cannot read sends it to the byte loop at that word;
/// - the byte loop copies one byte at a time and returns at the NUL, which
///   it stores; it writes nothing after the NUL. A byte it cannot read is
///   `EFAULT`, with `dst[..res]` the bytes read before it and nothing after
///   written;
/// - if the loops end without a NUL: `count` if `max` was `count` (then
///   `dst` is not terminated), else `EFAULT` (the string ran into the
///   limit).
///
/// So on success `dst[..=len]` is the string and its NUL, and the bytes
/// after the NUL up to the end of its 8-byte word are zero if the word loop
/// found it; `dst`'s other bytes are untouched.
///
/// # Errors
/// `EFAULT` as above.
pub fn strncpy_from_user(dst: &mut [u8], src: usize) -> Result<usize, Errno> {
    let count = dst.len();
    if count == 0 {
        return Ok(0);
    }
    let limit = string_limit(src).ok_or(Errno::EFAULT)?;
    let mut max = count.min(limit - src);
    let base = guarded::mask_user_range(src, max, USER_LIMIT);
    let mut res = 0;
    while max >= WORD {
        let Some(word) = read_word(base + res) else {
            break;
        };
        let bytes = word.to_le_bytes();
        let out = dst.get_mut(res..res + WORD).ok_or(Errno::EFAULT)?;
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            for (i, (o, &b)) in out.iter_mut().zip(&bytes).enumerate() {
                *o = if i < nul { b } else { 0 };
            }
            return Ok(res + nul);
        }
        out.copy_from_slice(&bytes);
        res += WORD;
        max -= WORD;
    }
    while max > 0 {
        let byte = read_byte(base + res).ok_or(Errno::EFAULT)?;
        *dst.get_mut(res).ok_or(Errno::EFAULT)? = byte;
        if byte == 0 {
            return Ok(res);
        }
        res += 1;
        max -= 1;
    }
    if res >= count {
        Ok(res)
    } else {
        // Ran into the limit before `count` bytes, without a NUL.
        Err(Errno::EFAULT)
    }
}

/// `memdup_user(src, len)`: allocates a kernel buffer and copies `len` user
/// bytes into it, the closest Linux twin of usercap's `CapturedBytes`. The
/// buffer is not zero-filled first: the copy writes it once
/// ([`guarded::copy_from_to_vec`]).
///
/// Rules (`mm/util.c`):
/// - the allocation comes first: `len` above [`KMALLOC_MAX_SIZE`], or an
///   allocation that fails, is `ENOMEM`, and nothing is read, whatever
///   `src`;
/// - then [`copy_from_user`]: if any byte is not copied, the buffer is
///   freed and the result is `EFAULT`;
/// - so a zero `len` succeeds with an empty buffer (`kmalloc(0)` is
///   `ZERO_SIZE_PTR`, not NULL), at any `src`.
///
/// # Errors
/// `ENOMEM` or `EFAULT` as above.
pub fn memdup_user(src: usize, len: usize) -> Result<Box<[u8]>, Errno> {
    if len > KMALLOC_MAX_SIZE {
        return Err(Errno::ENOMEM);
    }
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    let left = if access_ok(src, len) {
        let src = guarded::mask_user_range(src, len, USER_LIMIT);
        guarded::copy_from_to_vec(Backend::Guarded, &mut buffer, src, len)
    } else {
        len
    };
    if left != 0 {
        return Err(Errno::EFAULT);
    }
    Ok(buffer.into_boxed_slice())
}

/// `aligned_byte_mask(n)` on a little-endian machine: the low `n` bytes of
/// a word set (`n < 8`).
fn aligned_byte_mask(n: usize) -> u64 {
    (1u64 << (8 * n)) - 1
}

/// One 8-byte user word at `addr` (any alignment), or `None` if any byte of
/// it cannot be read: `unsafe_get_user` of an `unsigned long`.
fn read_word(addr: usize) -> Option<u64> {
    guarded::read_value::<[u8; WORD], _>(Backend::Guarded, addr, u64::from_le_bytes).ok()
}

/// One user byte, or `None` if it cannot be read.
fn read_byte(addr: usize) -> Option<u8> {
    guarded::read_value::<u8, _>(Backend::Guarded, addr, |b| b).ok()
}

/// Where a string at `src` must end: [`USER_LIMIT`], or the start of
/// system space for a `src` below it. `None` if `src` is at or past that
/// end, or inside system space.
fn string_limit(src: usize) -> Option<usize> {
    let (start, end) = system_space();
    if (start..end).contains(&src) {
        return None;
    }
    let limit = if src < start {
        start.min(USER_LIMIT)
    } else {
        USER_LIMIT
    };
    (src < limit).then_some(limit)
}
