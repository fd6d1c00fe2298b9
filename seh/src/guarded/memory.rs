//! [`UserMemory`]: the user-mode model's user memory, and the registry that
//! `SehSpace`'s writes consult (feature `user`).
//!
//! In the kernel, a user address is never Rust memory: it lies below
//! `MmUserProbeAddress`, in the requesting process's half of the address
//! space, and no kernel object lives there. In user mode (tests, the
//! client's `sim` transport) the "user" and the "kernel" share one process,
//! and the Rust heap is as much below `MmUserProbeAddress` as any user
//! buffer. So the model keeps its user memory apart, as `usercap-host`
//! does:
//!
//! - the first use reserves [`USER_SPACE_LEN`] bytes of address space
//!   (`VirtualAlloc(MEM_RESERVE, PAGE_NOACCESS)`: no memory behind it), the
//!   model's user space, whose bounds [`user_space`] returns;
//! - a [`UserMemory`] commits read-write pages inside it, with one reserved,
//!   never committed page after it, so two regions never touch;
//! - `SehSpace::new()` probes against those bounds, so the model's kernel
//!   objects (the device, SystemBuffers, pool copies, stacks) are kernel
//!   memory to it by construction, two comparisons like the real probe;
//! - writes go only into a live region, checked under the registry's read
//!   lock for the check *and* the write; dropping a region takes the write
//!   lock to unregister and decommit it, so it cannot vanish, and its pages
//!   be reused by something Rust references, between the check and the
//!   write. Decommitted pages stay reserved: a stale address faults, like
//!   freed pool.

use std::io;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::vec::Vec;

use usercap::CaptureError;
use windows_sys::Win32::System::Memory::{
    MEM_COMMIT, MEM_DECOMMIT, MEM_RESERVE, PAGE_GUARD, PAGE_NOACCESS, PAGE_PROTECTION_FLAGS,
    PAGE_READONLY, PAGE_READWRITE, VirtualAlloc, VirtualFree, VirtualProtect,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use super::Outcome;

/// The size of the model's user space: 16 GiB of address space, reserved,
/// not committed.
pub const USER_SPACE_LEN: usize = 16 << 30;

/// The system page size (4096 on x64 Windows).
#[must_use]
pub fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        let mut info = SYSTEM_INFO::default();
        // SAFETY: GetSystemInfo writes a SYSTEM_INFO into the valid,
        // writable local it is given, and has no other effect.
        unsafe { GetSystemInfo(&raw mut info) };
        usize::try_from(info.dwPageSize)
            .ok()
            .filter(|&p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// The bounds `[start, end)` of the model's user space, reserved on the
/// first call; `(0, 0)` if the reservation failed (then no address is user
/// memory, and every user-mode probe of `SehSpace::new()` fails).
#[must_use]
pub fn user_space() -> (usize, usize) {
    static SPACE: OnceLock<(usize, usize)> = OnceLock::new();
    *SPACE.get_or_init(|| {
        // SAFETY: a reservation at an address the system chooses (null):
        // it cannot replace or alias anything that exists, and reserves
        // address space only, with no access.
        let base = unsafe {
            VirtualAlloc(
                core::ptr::null(),
                USER_SPACE_LEN,
                MEM_RESERVE,
                PAGE_NOACCESS,
            )
        };
        if base.is_null() {
            (0, 0)
        } else {
            let start = base.expose_provenance();
            (start, start + USER_SPACE_LEN)
        }
    })
}

/// The registry: live regions as `(start, end)`, sorted by start, and the
/// slots they take (a region and the reserved page after it).
struct Registry {
    regions: Vec<(usize, usize)>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    regions: Vec::new(),
});

/// Runs `write` while `[addr, addr + len)` is known to lie inside one live
/// [`UserMemory`]; otherwise returns `None` without running it.
fn while_user_memory<R>(addr: usize, len: usize, write: impl FnOnce() -> R) -> Option<R> {
    let end = addr.checked_add(len)?;
    let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
    registry
        .regions
        .iter()
        .any(|&(start, stop)| start <= addr && end <= stop)
        .then(write)
}

/// [`super::copy_to_outcome`] into a live [`UserMemory`] only: any other
/// destination is refused whole (nothing written, `src.len()` left).
pub(crate) fn copy_to_user_memory(dst: usize, src: &[u8]) -> Outcome {
    if src.is_empty() {
        return Outcome::DONE;
    }
    while_user_memory(dst, src.len(), || {
        // SAFETY: the destination lies inside a live UserMemory, which no
        // Rust reference covers (it hands out addresses and copies only),
        // and it stays mapped while we hold the registry's read lock.
        unsafe { super::copy_to_outcome(dst, src) }
    })
    .unwrap_or(Outcome::refused(src.len()))
}

/// [`super::clear_outcome`] in a live [`UserMemory`] only.
pub(crate) fn clear_user_memory(dst: usize, len: usize) -> Outcome {
    if len == 0 {
        return Outcome::DONE;
    }
    while_user_memory(dst, len, || {
        // SAFETY: as in `copy_to_user_memory`.
        unsafe { super::clear_outcome(dst, len) }
    })
    .unwrap_or(Outcome::refused(len))
}

/// Page protection for [`UserMemory::protect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prot {
    /// `PAGE_NOACCESS`: every access faults with an access violation.
    None,
    /// `PAGE_READONLY`: writes fault.
    Read,
    /// `PAGE_READWRITE` (the initial protection).
    ReadWrite,
    /// `PAGE_READWRITE | PAGE_GUARD`: the first access faults with
    /// `STATUS_GUARD_PAGE_VIOLATION` and clears the guard.
    Guard,
}

impl Prot {
    const fn flags(self) -> PAGE_PROTECTION_FLAGS {
        match self {
            Self::None => PAGE_NOACCESS,
            Self::Read => PAGE_READONLY,
            Self::ReadWrite => PAGE_READWRITE,
            Self::Guard => PAGE_READWRITE | PAGE_GUARD,
        }
    }
}

/// A region of the model's user space: committed, zeroed, read-write pages
/// that no Rust code references, with a reserved page after it.
///
/// It is the only memory `SehSpace::new()` reads from and the only memory
/// safe code can write to through the guarded copy. Its own accessors go
/// through the guarded copy, so a page made inaccessible with
/// [`protect`](Self::protect) or [`decommit`](Self::decommit) gives an
/// error, not a crash. It hands out addresses and copies, never a
/// reference. Dropping it unregisters and decommits it.
#[derive(Debug)]
pub struct UserMemory {
    base: usize,
    len: usize,
}

impl UserMemory {
    /// Commits at least `len` bytes (whole pages) of zeroed read-write
    /// memory in the model's user space, and registers them.
    ///
    /// # Errors
    /// `InvalidInput` for `len == 0` or a length that overflows when
    /// rounded; `OutOfMemory` if the user space is not reserved or has no
    /// free range that large; the error of `VirtualAlloc`.
    pub fn new(len: usize) -> io::Result<Self> {
        let page = page_size();
        let len = len
            .checked_next_multiple_of(page)
            .filter(|&l| l > 0)
            .ok_or(io::ErrorKind::InvalidInput)?;
        let (start, end) = user_space();
        if start == 0 {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
        // First fit over the gaps between slots (a region plus its
        // trailing reserved page), leaving the space's first page reserved
        // too, so every region has a reserved page on both sides.
        let slot = len.checked_add(page).ok_or(io::ErrorKind::InvalidInput)?;
        let mut candidate = start + page;
        let mut at = registry.regions.len();
        for (i, &(base, stop)) in registry.regions.iter().enumerate() {
            if candidate.checked_add(slot).is_some_and(|e| e <= base) {
                at = i;
                break;
            }
            candidate = stop + page;
        }
        if candidate.checked_add(slot).is_none_or(|e| e > end) {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        registry
            .regions
            .try_reserve(1)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: `[candidate, candidate + len)` lies in our reservation and
        // in no live region (the first-fit search above, under the
        // registry's write lock): committing it cannot alias memory anyone
        // uses.
        let committed = unsafe {
            VirtualAlloc(
                core::ptr::with_exposed_provenance(candidate),
                len,
                MEM_COMMIT,
                PAGE_READWRITE,
            )
        };
        if committed.is_null() {
            return Err(io::Error::last_os_error());
        }
        registry.regions.insert(at, (candidate, candidate + len));
        drop(registry);
        Ok(Self {
            base: candidate,
            len,
        })
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

    /// The address one past the last byte (the first byte of the reserved
    /// page after the region).
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
    /// `VirtualProtect`: [`Prot::None`] makes no-access pages,
    /// [`Prot::Guard`] guard pages. Accesses through the guarded copy to
    /// such pages fail cleanly.
    ///
    /// # Errors
    /// `InvalidInput` if `offset` or `len` is not a multiple of the page size
    /// or the range is not inside the region, and the error of
    /// `VirtualProtect` (decommitted pages cannot be protected).
    pub fn protect(&self, offset: usize, len: usize, prot: Prot) -> io::Result<()> {
        let start = self.pages(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let mut old: PAGE_PROTECTION_FLAGS = 0;
        // SAFETY: `[start, start + len)` is a page-aligned range of this
        // region's committed pages (checked); no Rust reference into the
        // region exists, and every access to it goes through the guarded
        // copy, which turns a fault caused by the new protection into a
        // short count. `old` is a valid, writable local.
        let ok = unsafe {
            VirtualProtect(
                core::ptr::with_exposed_provenance(start),
                len,
                prot.flags(),
                &raw mut old,
            )
        };
        if ok == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Decommits the pages `[offset, offset + len)`: they stay reserved,
    /// and any access faults with an access violation, as on an address
    /// that is reserved but was never committed.
    ///
    /// # Errors
    /// As [`protect`](Self::protect), and the error of `VirtualFree`.
    pub fn decommit(&self, offset: usize, len: usize) -> io::Result<()> {
        let start = self.pages(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: as in `protect`: pages of this region, which nothing
        // references; decommitting keeps the range reserved, so no other
        // allocation can take its addresses.
        let ok = unsafe {
            VirtualFree(
                core::ptr::with_exposed_provenance_mut(start),
                len,
                MEM_DECOMMIT,
            )
        };
        if ok == 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The address of page-aligned `[offset, offset + len)` inside the
    /// region.
    fn pages(&self, offset: usize, len: usize) -> io::Result<usize> {
        let page = page_size();
        if !offset.is_multiple_of(page) || !len.is_multiple_of(page) || !self.in_bounds(offset, len)
        {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        Ok(self.base + offset)
    }

    /// Copies `dst.len()` bytes at `offset` into `dst`, through the guarded
    /// copy.
    ///
    /// # Errors
    /// `Invalid` if the range is not inside the region, and the fault's
    /// error if a page of it is not readable (the content of `dst` is then
    /// unspecified).
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), CaptureError> {
        if !self.in_bounds(offset, dst.len()) {
            return Err(CaptureError::Invalid);
        }
        super::copy_from_outcome(dst, self.base + offset).result()
    }

    /// Copies `src` to `offset`, through the guarded copy.
    ///
    /// # Errors
    /// `Invalid` if the range is not inside the region, and the fault's
    /// error if a page of it is not writable (a prefix may be written).
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<(), CaptureError> {
        if !self.in_bounds(offset, src.len()) {
            return Err(CaptureError::Invalid);
        }
        copy_to_user_memory(self.base + offset, src).result()
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
            return clear_user_memory(start, len).result();
        }
        let chunk = [byte; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            let part = chunk.get(..n).ok_or(CaptureError::Invalid)?;
            copy_to_user_memory(start + done, part).result()?;
            done += n;
        }
        Ok(())
    }

    /// Sets every byte of the region to `byte`.
    ///
    /// # Errors
    /// As [`write_at`](Self::write_at).
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
        let base = self.base;
        registry.regions.retain(|&(start, _)| start != base);
        // SAFETY: decommits exactly the pages this value committed and owns.
        // No Rust reference into them exists, and no guarded write can be
        // in flight or start: writes run under the registry's read lock,
        // and we hold its write lock until the pages are gone and
        // unregistered. Reads that race the decommit fault and fail
        // cleanly. The range stays reserved.
        unsafe {
            VirtualFree(
                core::ptr::with_exposed_provenance_mut(self.base),
                self.len,
                MEM_DECOMMIT,
            )
        };
        drop(registry);
    }
}
