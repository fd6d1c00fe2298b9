//! [`UserMemory`]: the memory the model owns as user memory, in one
//! reserved range of the address space, the model's user range; and the
//! registry that placement and safe writes consult (see the
//! [module docs](super)).
//!
//! # The user range
//!
//! On Windows, user space is one range below `MmUserProbeAddress` and
//! everything above it is the kernel's, so "is this a user address?" is one
//! comparison. In this process, kernel and user memory share one address
//! space: the device object, the I/O model's SystemBuffers and the pool
//! copies of captures are all ordinary heap. The model makes user space
//! explicit instead: the first [`UserMemory`] reserves [`USER_RANGE_LEN`]
//! bytes of `PROT_NONE` address space (see [`reservation`](super::reservation)),
//! and every `UserMemory` is mapped inside it. A user-mode `HostSpace`
//! accepts only ranges inside the user range, so everything else (heap,
//! stacks, statics, system space) is kernel memory by construction, as it is
//! above `MmUserProbeAddress` on Windows.
//!
//! The reservation is 64 GiB. It costs no memory: `PROT_NONE` and
//! `MAP_NORESERVE` commit nothing and are not charged to overcommit, only
//! the pages of live regions are (as they were when each region was its own
//! `mmap`). 64 GiB is 1/2048 of the 128 TiB of x86_64 Linux's 47-bit user
//! half, and 16 times the largest region the project's tests and client
//! ask for at once. It can fail where address space is limited
//! (`RLIMIT_AS`, `ulimit -v`): then every `UserMemory::new` fails with the
//! reason, and nothing else changes. The range's start is published in one
//! atomic word and its end derived from the constant length, so a probe
//! racing the reservation sees no user range or all of it.
//!
//! # Placement
//!
//! Regions are placed next-fit: from where the previous one ended, each
//! followed by one unmapped guard page, wrapping to the start of the range
//! when nothing fits above. So a freed region's addresses are not handed out
//! again until the allocator has gone round 64 GiB of address space, and a
//! pointer kept past `drop` faults (the pages are mapped `PROT_NONE` again)
//! instead of reading a newer region. When no gap is large enough,
//! `UserMemory::new` fails with `OutOfMemory` ("the user range has no free
//! gap"); regions dropped since make room again.

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::{PoisonError, RwLock};

use usercap::CaptureError;

use super::page_size;
use super::reservation::{Backing, Published, map_fixed, reserve};

/// The size of the user range: 64 GiB of address space, reserved, not
/// committed. Every [`UserMemory`] lies inside it.
pub const USER_RANGE_LEN: usize = 64 << 30;

/// The bounds of the user range, published once.
static USER_RANGE: Published<USER_RANGE_LEN> = Published::new();

/// The bounds `[start, end)` of the user range, `(0, 0)` before the first
/// [`UserMemory`] reserved it. One atomic load: the end is the start plus
/// [`USER_RANGE_LEN`].
#[inline]
#[must_use]
pub fn user_range() -> (usize, usize) {
    USER_RANGE.bounds()
}

/// Whether `[addr, addr + len)` lies inside the user range: the addresses a
/// user-mode `HostSpace` may touch (whether they are mapped is another
/// matter; the guarded copy finds out). False for every range before the
/// user range is reserved.
#[inline]
#[must_use]
pub fn is_user_range(addr: usize, len: usize) -> bool {
    let bounds = user_range();
    bounds.0 != 0 && is_user_range_in(addr, len, bounds)
}

/// [`is_user_range`] against bounds the caller loaded: two comparisons.
/// With unreserved bounds `(0, 0)` only the empty range at 0 passes, which
/// the probe has rejected before (rules 1 and 2).
#[inline]
#[must_use]
pub(crate) fn is_user_range_in(addr: usize, len: usize, (start, end): (usize, usize)) -> bool {
    start <= addr && addr.checked_add(len).is_some_and(|stop| stop <= end)
}

/// The user range and its regions.
struct Registry {
    /// The reservation's base, exposed; 0 until reserved.
    base: usize,
    /// The regions, as offsets into the range.
    ranges: Ranges,
}

/// The registry: placement takes the write lock, and so does dropping a
/// region (to unregister *and* unmap it); safe writes take the read lock for
/// the check *and* the write.
static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    base: 0,
    ranges: Ranges::new(USER_RANGE_LEN),
});

/// Runs `write` while `[addr, addr + len)` is known to lie inside one live
/// [`UserMemory`], or returns `None` without running it.
pub(super) fn while_user_memory<R>(
    addr: usize,
    len: usize,
    write: impl FnOnce() -> R,
) -> Option<R> {
    let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    let offset = addr
        .checked_sub(registry.base)
        .filter(|_| registry.base != 0)?;
    if registry.ranges.writable_contains(offset, len) {
        Some(write())
    } else {
        None
    }
}

/// One region of the user range, as offsets, and the unmapped guard after
/// it, which placement keeps free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Taken {
    start: usize,
    /// The end of the region's pages.
    end: usize,
    /// The end of its guard.
    stop: usize,
    /// False for a region whose pages could not be given back on drop: its
    /// addresses are never handed out again, and safe writes refuse them.
    live: bool,
}

/// Next-fit placement in a range of `len` bytes; no system calls, so it is
/// tested on its own.
#[derive(Debug)]
struct Ranges {
    len: usize,
    /// Where the next search starts: the end of the last placed region's
    /// guard.
    cursor: usize,
    /// The regions, sorted by start, not overlapping (guards included).
    taken: Vec<Taken>,
}

impl Ranges {
    const fn new(len: usize) -> Self {
        Self {
            len,
            cursor: 0,
            taken: Vec::new(),
        }
    }

    /// Where a region of `size` bytes followed by a `guard` would go: the
    /// first gap at or after the cursor, else the first from the start.
    fn find(&self, size: usize, guard: usize) -> Option<usize> {
        let need = size.checked_add(guard)?;
        self.find_from(self.cursor, need)
            .or_else(|| self.find_from(0, need))
    }

    fn find_from(&self, from: usize, need: usize) -> Option<usize> {
        let mut at = from;
        for taken in &self.taken {
            if taken.stop <= at {
                continue;
            }
            if taken.start >= at && taken.start - at >= need {
                return Some(at);
            }
            at = at.max(taken.stop);
        }
        (at <= self.len && self.len - at >= need).then_some(at)
    }

    /// Makes room for one more region, so that [`insert`](Self::insert)
    /// cannot fail after the pages are mapped.
    fn reserve_one(&mut self) -> io::Result<()> {
        self.taken
            .try_reserve(1)
            .map_err(|_| io::ErrorKind::OutOfMemory.into())
    }

    /// Records a region placed at `start` (a result of [`find`](Self::find)
    /// with this `size` and `guard`) and moves the cursor past its guard.
    fn insert(&mut self, start: usize, size: usize, guard: usize) {
        let at = self.taken.partition_point(|t| t.start < start);
        let stop = start + size + guard;
        self.taken.insert(
            at,
            Taken {
                start,
                end: start + size,
                stop,
                live: true,
            },
        );
        self.cursor = stop;
    }

    /// Forgets the region at `start`: its addresses may be placed again.
    fn remove(&mut self, start: usize) {
        self.taken.retain(|t| t.start != start);
    }

    /// Keeps the region at `start` placed for good, but no longer live.
    fn retire(&mut self, start: usize) {
        for taken in &mut self.taken {
            if taken.start == start {
                taken.live = false;
            }
        }
    }

    /// Whether `[offset, offset + len)` lies inside one live region.
    fn writable_contains(&self, offset: usize, len: usize) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        // The last region starting at or before `offset`.
        let at = self.taken.partition_point(|t| t.start <= offset);
        at.checked_sub(1)
            .and_then(|i| self.taken.get(i))
            .is_some_and(|t| t.live && end <= t.end)
    }
}

/// Page protection for [`UserMemory::protect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prot {
    /// No access: every read or write faults (a guard page).
    None,
    /// Read-only: writes fault.
    Read,
    /// Read and write (the initial protection).
    ReadWrite,
}

impl Prot {
    const fn bits(self) -> libc::c_int {
        match self {
            Self::None => libc::PROT_NONE,
            Self::Read => libc::PROT_READ,
            Self::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// A region of this process's memory that the model treats as user memory:
/// page-granular, mapped inside the user range ([`user_range`]), never
/// referenced by Rust code.
///
/// It is the only memory a user-mode `HostSpace` reads or writes (the
/// module docs explain the user range), and the only memory safe code can
/// write to through the guarded copy ([`copy_to`](super::copy_to),
/// `HostSpace::write`, the facade's `copy_to_user`/`clear_user`; the
/// [`guarded`](super) module docs explain why). Its own accessors go through
/// the guarded copy as well, so a page made inaccessible with
/// [`protect`](Self::protect) gives an error, not a crash. It hands out
/// addresses and copies only, never a reference.
///
/// Dropping it unregisters it and maps `PROT_NONE` over its pages: the
/// addresses stay in the user range and fault.
#[derive(Debug)]
pub struct UserMemory {
    base: usize,
    len: usize,
    /// The memfd behind a [`shared_file`](Self::shared_file) mapping.
    #[cfg(target_os = "linux")]
    file: Option<OwnedFd>,
}

impl UserMemory {
    /// Maps at least `len` bytes of zeroed, read-write anonymous memory
    /// (rounded up to whole pages) in the user range, and registers it as
    /// user memory. The first call reserves the user range.
    ///
    /// # Errors
    /// `InvalidInput` for `len == 0` or a length that overflows when rounded;
    /// the error of the reservation, with its reason, if the user range
    /// cannot be reserved; `OutOfMemory` if the user range has no free gap
    /// of that size (more than [`USER_RANGE_LEN`] bytes of regions alive);
    /// the error of `mmap` (typically `ENOMEM`).
    pub fn new(len: usize) -> io::Result<Self> {
        let len = round_to_pages(len)?;
        let base = place(len, Backing::Anonymous)?;
        Ok(Self {
            base,
            len,
            #[cfg(target_os = "linux")]
            file: None,
        })
    }

    /// Maps at least `len` bytes (whole pages) of a shared mapping of a new
    /// memfd of the same size, in the user range. Shrinking the file with
    /// [`set_file_len`](Self::set_file_len) makes the pages past its end
    /// raise `SIGBUS` on access, the other kind of fault a copy must survive.
    ///
    /// # Errors
    /// As [`new`](Self::new), and the errors of `memfd_create`/`ftruncate`.
    #[cfg(target_os = "linux")]
    pub fn shared_file(len: usize) -> io::Result<Self> {
        let len = round_to_pages(len)?;
        // SAFETY: memfd_create takes a valid NUL-terminated name and flags;
        // it creates a new file descriptor and touches no memory of ours.
        let fd = unsafe { libc::memfd_create(c"usercap-user-memory".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by
        // nothing else; the OwnedFd closes it exactly once.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        set_len(&file, len)?;
        let base = place(len, Backing::Shared(file.as_raw_fd()))?;
        Ok(Self {
            base,
            len,
            file: Some(file),
        })
    }

    /// Sets the length of the file behind a [`shared_file`](Self::shared_file)
    /// mapping. Pages of the mapping wholly past the new end raise `SIGBUS`
    /// when touched; growing the file again makes them accessible (and zero).
    ///
    /// # Errors
    /// `Unsupported` for an anonymous mapping, and the error of `ftruncate`.
    #[cfg(target_os = "linux")]
    pub fn set_file_len(&self, len: usize) -> io::Result<()> {
        match &self.file {
            Some(file) => set_len(file, len),
            None => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// The address of the first byte.
    #[must_use]
    pub const fn addr(&self) -> usize {
        self.base
    }

    /// The length in bytes: a whole number of pages.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one page.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address one past the last byte.
    #[must_use]
    pub const fn end(&self) -> usize {
        self.base + self.len
    }

    /// Whether `[addr, addr + len)` lies inside this region.
    #[must_use]
    pub const fn contains(&self, addr: usize, len: usize) -> bool {
        match addr.checked_add(len) {
            Some(end) => addr >= self.base && end <= self.base + self.len,
            None => false,
        }
    }

    /// Changes the protection of the pages `[offset, offset + len)` with
    /// `mprotect`: [`Prot::None`] makes guard pages, [`Prot::Read`]
    /// read-only pages. Accesses through the guarded copy to such pages fail
    /// cleanly.
    ///
    /// # Errors
    /// `InvalidInput` if `offset` or `len` is not a multiple of the page
    /// size or the range is not inside the region, and the error of
    /// `mprotect`.
    pub fn protect(&self, offset: usize, len: usize, prot: Prot) -> io::Result<()> {
        let page = page_size();
        if !offset.is_multiple_of(page) || !len.is_multiple_of(page) || !self.in_bounds(offset, len)
        {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        if len == 0 {
            return Ok(());
        }
        let start = std::ptr::with_exposed_provenance_mut::<libc::c_void>(self.base + offset);
        // SAFETY: `[start, start + len)` is a page-aligned range inside the
        // mapping this value owns (checked above). No Rust reference into the
        // mapping exists (only addresses and copies are handed out), and
        // every access to it goes through the guarded copy, which turns a
        // fault caused by the new protection into a short count.
        let rc = unsafe { libc::mprotect(start, len, prot.bits()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Copies `dst.len()` bytes at `offset` into `dst`, through the guarded
    /// copy.
    ///
    /// # Errors
    /// `Invalid` if the range is not inside the region, `AccessViolation` if
    /// a page of it is not readable (the content of `dst` is then
    /// unspecified).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), CaptureError> {
        if !self.in_bounds(offset, dst.len()) {
            return Err(CaptureError::Invalid);
        }
        match super::copy_from(dst, self.base + offset) {
            0 => Ok(()),
            _ => Err(CaptureError::AccessViolation),
        }
    }

    /// Copies `src` to `offset`, through the guarded copy.
    ///
    /// # Errors
    /// `Invalid` if the range is not inside the region, `AccessViolation` if
    /// a page of it is not writable (a prefix may have been written).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), CaptureError> {
        if !self.in_bounds(offset, src.len()) {
            return Err(CaptureError::Invalid);
        }
        match super::copy_to(self.base + offset, src) {
            0 => Ok(()),
            _ => Err(CaptureError::AccessViolation),
        }
    }

    /// Sets `len` bytes at `offset` to `byte`, through the guarded copy.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
    pub fn fill_at(&self, offset: usize, len: usize, byte: u8) -> Result<(), CaptureError> {
        if !self.in_bounds(offset, len) {
            return Err(CaptureError::Invalid);
        }
        let start = self.base + offset;
        if byte == 0 {
            return match super::clear(start, len) {
                0 => Ok(()),
                _ => Err(CaptureError::AccessViolation),
            };
        }
        let chunk = [byte; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            let part = chunk.get(..n).ok_or(CaptureError::Invalid)?;
            if super::copy_to(start + done, part) != 0 {
                return Err(CaptureError::AccessViolation);
            }
            done += n;
        }
        Ok(())
    }

    /// Sets every byte of the region to `byte`.
    ///
    /// # Errors
    /// `AccessViolation` if a page is not writable (a prefix may have been
    /// filled).
    pub fn fill(&self, byte: u8) -> Result<(), CaptureError> {
        self.fill_at(0, self.len, byte)
    }

    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }
}

impl Drop for UserMemory {
    fn drop(&mut self) {
        let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
        let offset = self.base - registry.base;
        let start = NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(self.base));
        // SAFETY: `[base, base + len)` is the region `place` mapped for this
        // value alone, inside the user range. No Rust reference into it
        // exists, and no guarded write can be in flight or start: writes run
        // under the registry's read lock, and we hold its write lock until
        // the pages are gone and unregistered. Reads that race this fault
        // and fail cleanly.
        let unmapped = start.map(|start| unsafe { map_fixed(start, self.len, Backing::Reserved) });
        if matches!(unmapped, Some(Ok(_))) {
            registry.ranges.remove(offset);
        } else {
            // The pages may still hold this region's bytes: never placed
            // again, never written again.
            registry.ranges.retire(offset);
        }
        drop(registry);
    }
}

/// Maps `len` bytes (whole pages) of `backing` in a free gap of the user
/// range, reserving the range first if need be, and registers them.
/// Returns their address.
fn place(len: usize, backing: Backing) -> io::Result<usize> {
    let guard = page_size();
    let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    if registry.base == 0 {
        let base = reserve(USER_RANGE_LEN).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot reserve the user range ({} GiB of address space): {error}",
                    USER_RANGE_LEN >> 30
                ),
            )
        })?;
        registry.base = base.as_ptr().expose_provenance();
        USER_RANGE.publish(registry.base);
    }
    let offset = registry.ranges.find(len, guard).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "the user range ({} GiB) has no free gap of {len} bytes",
                USER_RANGE_LEN >> 30
            ),
        )
    })?;
    registry.ranges.reserve_one()?;
    let start = std::ptr::with_exposed_provenance_mut::<u8>(registry.base + offset);
    let start = NonNull::new(start).ok_or(io::ErrorKind::AddrNotAvailable)?;
    // SAFETY: `[start, start + len)` is a page-aligned free gap of the user
    // range (the base and every offset are page multiples), found and
    // claimed under the registry's write lock: PROT_NONE, never referenced.
    let pages = unsafe { map_fixed(start, len, backing) }?;
    registry.ranges.insert(offset, len, guard);
    Ok(pages.as_ptr().addr())
}

/// `len` rounded up to whole pages; `InvalidInput` for 0 or on overflow.
fn round_to_pages(len: usize) -> io::Result<usize> {
    let page = page_size();
    len.checked_next_multiple_of(page)
        .filter(|&l| l > 0)
        .ok_or_else(|| io::ErrorKind::InvalidInput.into())
}

#[cfg(target_os = "linux")]
fn set_len(file: &OwnedFd, len: usize) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: ftruncate on a file descriptor we own; it touches no memory of
    // ours (pages of a mapping past the new end fault on access, which the
    // guarded copy handles).
    let rc = unsafe { libc::ftruncate(file.as_raw_fd(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUARD: usize = 1;

    fn place(ranges: &mut Ranges, size: usize) -> Option<usize> {
        let at = ranges.find(size, GUARD)?;
        ranges.reserve_one().unwrap();
        ranges.insert(at, size, GUARD);
        Some(at)
    }

    #[test]
    fn regions_go_next_fit_each_with_a_guard() {
        let mut ranges = Ranges::new(100);
        assert_eq!(place(&mut ranges, 10), Some(0));
        assert_eq!(place(&mut ranges, 10), Some(11), "after the first's guard");
        ranges.remove(0);
        // The freed gap at 0 is not reused while there is room above.
        assert_eq!(place(&mut ranges, 10), Some(22));
        assert!(ranges.writable_contains(22, 10));
        assert!(!ranges.writable_contains(22, 11), "into the guard");
        assert!(!ranges.writable_contains(0, 1), "a freed region");
        assert!(!ranges.writable_contains(21, 2), "a guard, then a region");
    }

    #[test]
    fn placement_wraps_and_fails_cleanly_when_full() {
        let mut ranges = Ranges::new(100);
        assert_eq!(place(&mut ranges, 49), Some(0));
        assert_eq!(place(&mut ranges, 49), Some(50));
        // 100 bytes, all taken (a guard each): nothing fits, not even 1.
        assert_eq!(ranges.find(1, GUARD), None);
        ranges.remove(0);
        // Only the freed gap at the start is left: the search wraps to it.
        assert_eq!(ranges.find(50, GUARD), None, "49 + guard is all there is");
        assert_eq!(place(&mut ranges, 49), Some(0));
        // A request larger than the whole range, or one that overflows.
        assert_eq!(Ranges::new(100).find(100, GUARD), None);
        assert_eq!(Ranges::new(100).find(99, GUARD), Some(0));
        assert_eq!(Ranges::new(100).find(usize::MAX, GUARD), None);
    }

    #[test]
    fn a_retired_region_is_never_placed_nor_written_again() {
        let mut ranges = Ranges::new(30);
        assert_eq!(place(&mut ranges, 9), Some(0));
        assert_eq!(place(&mut ranges, 9), Some(10));
        ranges.retire(0);
        assert!(!ranges.writable_contains(0, 1));
        assert!(ranges.writable_contains(10, 9));
        ranges.remove(10);
        // 10..30 is free; 0..10 stays taken.
        assert_eq!(place(&mut ranges, 9), Some(20));
        assert_eq!(
            place(&mut ranges, 9),
            Some(10),
            "wrapped past the retired one"
        );
        assert_eq!(ranges.find(1, GUARD), None);
    }

    #[test]
    fn writes_need_one_live_region_for_the_whole_range() {
        let mut ranges = Ranges::new(100);
        place(&mut ranges, 10);
        place(&mut ranges, 10);
        assert!(ranges.writable_contains(0, 10));
        assert!(ranges.writable_contains(11, 10));
        assert!(ranges.writable_contains(5, 0));
        assert!(!ranges.writable_contains(5, 10), "across the guard");
        assert!(!ranges.writable_contains(50, 1), "no region");
        assert!(!ranges.writable_contains(5, usize::MAX), "wraps");
    }
}
