//! [`UserMemory`]: the memory the model owns as user memory, and the
//! registry that safe writes consult (see the [module docs](super)).

use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{PoisonError, RwLock};

use usercap::CaptureError;

use super::page_size;

/// Live user regions, as `(start, end)`. Writers take the read lock for the
/// check *and* the write; a region is unregistered and unmapped under the
/// write lock.
static REGIONS: RwLock<Vec<(usize, usize)>> = RwLock::new(Vec::new());

/// Runs `write` while `[addr, addr + len)` is known to lie inside one live
/// [`UserMemory`], or returns `None` without running it.
pub(super) fn while_user_memory<R>(
    addr: usize,
    len: usize,
    write: impl FnOnce() -> R,
) -> Option<R> {
    let end = addr.checked_add(len)?;
    let regions = REGIONS.read().unwrap_or_else(PoisonError::into_inner);
    if regions
        .iter()
        .any(|&(start, stop)| start <= addr && end <= stop)
    {
        Some(write())
    } else {
        None
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
/// page-granular, mapped with `mmap`, never referenced by Rust code.
///
/// It is the only memory safe code can write to through the guarded copy
/// ([`copy_to`](super::copy_to), `HostSpace::write`, the facade's
/// `copy_to_user`/`clear_user`): the module docs explain why. Its own
/// accessors go through the guarded copy as well, so a page made
/// inaccessible with [`protect`](Self::protect) gives an error, not a crash.
/// It hands out addresses and copies only, never a reference.
///
/// Dropping it unregisters and unmaps the region.
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
    /// (rounded up to whole pages) at an address the kernel chooses, and
    /// registers it as user memory.
    ///
    /// # Errors
    /// `InvalidInput` for `len == 0` or a length that overflows when rounded,
    /// and the error of `mmap` (typically `ENOMEM`).
    pub fn new(len: usize) -> io::Result<Self> {
        let len = round_to_pages(len)?;
        let base = map(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)?;
        Self::register(Self {
            base,
            len,
            #[cfg(target_os = "linux")]
            file: None,
        })
    }

    /// Maps at least `len` bytes (whole pages) of a shared mapping of a new
    /// memfd of the same size. Shrinking the file with
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
        let base = map(len, libc::MAP_SHARED, file.as_raw_fd())?;
        Self::register(Self {
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

    fn register(self) -> io::Result<Self> {
        let mut regions = REGIONS.write().unwrap_or_else(PoisonError::into_inner);
        if regions.try_reserve(1).is_err() {
            drop(regions);
            // `self` is dropped here: it unregisters nothing and unmaps.
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        regions.push((self.base, self.base + self.len));
        drop(regions);
        Ok(self)
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
        let mut regions = REGIONS.write().unwrap_or_else(PoisonError::into_inner);
        let base = self.base;
        regions.retain(|&(start, _)| start != base);
        let start = std::ptr::with_exposed_provenance_mut::<libc::c_void>(self.base);
        // SAFETY: unmaps exactly the mapping this value created and owns. No
        // Rust reference into it exists, and no guarded write can be in
        // flight or start: writes run under the registry's read lock, and we
        // hold its write lock until the mapping is gone and unregistered.
        // Reads that race the unmap fault and fail cleanly.
        unsafe { libc::munmap(start, self.len) };
        drop(regions);
    }
}

/// `len` rounded up to whole pages; `InvalidInput` for 0 or on overflow.
fn round_to_pages(len: usize) -> io::Result<usize> {
    let page = page_size();
    len.checked_next_multiple_of(page)
        .filter(|&l| l > 0)
        .ok_or_else(|| io::ErrorKind::InvalidInput.into())
}

/// A read-write mapping of `len` bytes at an address the kernel chooses.
fn map(len: usize, flags: libc::c_int, fd: libc::c_int) -> io::Result<usize> {
    // SAFETY: without MAP_FIXED the kernel picks an unused range, so the
    // new mapping cannot replace or alias memory that exists; the length is
    // non-zero and the flags and fd are valid for mmap.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(ptr.expose_provenance())
    }
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
