//! System space: one reserved range of this process's address space that the
//! model treats as kernel addresses, and the pages [`KernelBuffer`]s live in.
//!
//! On Windows, system space is one contiguous range above
//! `MmUserProbeAddress`, so "is this a kernel address?" is one comparison,
//! and a branch-free mask can make a mispredicted answer harmless (probe
//! rule 5, [`mask_user_range`](super::mask_user_range)). The host model keeps
//! that shape: the first [`KernelBuffer`] reserves [`SYSTEM_SPACE_LEN`] bytes
//! of `PROT_NONE` address space (no memory behind it), cut into
//! [`MAX_KERNEL_BUFFERS`] slots. A buffer maps read-write pages at the start
//! of a free slot; the rest of the slot stays a guard. Dropping the buffer
//! maps `PROT_NONE` over its pages again, so its old address faults, like
//! freed pool, and stays a kernel address.
//!
//! The reservation is made once and never released: its bounds are two
//! atomics that change once, from `(0, 0)` (nothing is kernel) to the range.
//!
//! [`KernelBuffer`]: crate::KernelBuffer

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use usercap::CaptureError;

use super::page_size;

/// How many kernel buffers can be alive at once: the number of slots.
pub const MAX_KERNEL_BUFFERS: usize = 256;

/// The address space of one slot.
const SLOT_LEN: usize = 16 << 20;

/// The guard at the end of every slot, never mapped.
const SLOT_GUARD: usize = 64 << 10;

/// The largest [`KernelBuffer`](crate::KernelBuffer): a slot less its guard.
pub const MAX_KERNEL_BUFFER_LEN: usize = SLOT_LEN - SLOT_GUARD;

/// The size of system space: 4 GiB of address space, reserved, not
/// committed.
pub const SYSTEM_SPACE_LEN: usize = MAX_KERNEL_BUFFERS * SLOT_LEN;

/// Start of system space, 0 until reserved.
static START: AtomicUsize = AtomicUsize::new(0);
/// End of system space, 0 until reserved.
static END: AtomicUsize = AtomicUsize::new(0);

/// The reservation's base (0 until made) and which slots are taken.
struct Slots {
    base: usize,
    taken: [bool; MAX_KERNEL_BUFFERS],
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    base: 0,
    taken: [false; MAX_KERNEL_BUFFERS],
});

/// The bounds `[start, end)` of system space, `(0, 0)` before the first
/// [`KernelBuffer`](crate::KernelBuffer) reserved it.
#[inline]
#[must_use]
pub fn system_space() -> (usize, usize) {
    (START.load(Ordering::Acquire), END.load(Ordering::Acquire))
}

/// Whether `[addr, addr + len)` overlaps system space. An empty range
/// overlaps it when `addr` lies inside it.
#[inline]
#[must_use]
pub fn is_kernel_range(addr: usize, len: usize) -> bool {
    is_kernel_range_in(addr, len, system_space())
}

/// [`is_kernel_range`] against bounds the caller loaded.
#[inline]
#[must_use]
pub(crate) fn is_kernel_range_in(addr: usize, len: usize, (start, end): (usize, usize)) -> bool {
    addr < end && start < addr.saturating_add(len.max(1))
}

/// Read-write pages at the start of one slot of system space, owned.
#[derive(Debug)]
pub(crate) struct SystemPages {
    base: usize,
    len: usize,
    /// The mapped length: `len` rounded up to whole pages.
    mapped: usize,
    slot: usize,
}

impl SystemPages {
    /// `len` zeroed bytes in a free slot (an empty buffer takes a slot too,
    /// so that its address is a kernel address).
    ///
    /// # Errors
    /// `NoMemory` above [`MAX_KERNEL_BUFFER_LEN`], when every slot is taken,
    /// or when the reservation or the mapping fails.
    pub(crate) fn new(len: usize) -> Result<Self, CaptureError> {
        if len > MAX_KERNEL_BUFFER_LEN {
            return Err(CaptureError::NoMemory);
        }
        let mapped = len
            .checked_next_multiple_of(page_size())
            .ok_or(CaptureError::NoMemory)?;
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.base == 0 {
            slots.base = reserve()?;
            START.store(slots.base, Ordering::Release);
            END.store(slots.base + SYSTEM_SPACE_LEN, Ordering::Release);
        }
        let slot = slots
            .taken
            .iter()
            .position(|&taken| !taken)
            .ok_or(CaptureError::NoMemory)?;
        let base = slots.base + slot * SLOT_LEN;
        if mapped > 0 {
            remap(base, mapped, libc::PROT_READ | libc::PROT_WRITE)?;
        }
        if let Some(taken) = slots.taken.get_mut(slot) {
            *taken = true;
        }
        Ok(Self {
            base,
            len,
            mapped,
            slot,
        })
    }

    /// The address of the first byte.
    pub(crate) const fn addr(&self) -> usize {
        self.base
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `[base, base + len)` lies in pages this value mapped
        // read-write in `new` and unmaps only in `drop`, so it is valid for
        // reads for as long as `&self` lives. The mapping is fresh anonymous
        // memory (initialised, zero or written since). Mutation goes only
        // through `as_mut_slice`, which needs `&mut self`; the guarded copy
        // never writes outside `UserMemory` (see the module docs of
        // `guarded`), and its reads do not create references.
        unsafe {
            std::slice::from_raw_parts(std::ptr::with_exposed_provenance(self.base), self.len)
        }
    }

    /// The bytes, for kernel code to change.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as for `as_slice`; `&mut self` makes this the only
        // reference into the pages for its lifetime.
        unsafe {
            std::slice::from_raw_parts_mut(
                std::ptr::with_exposed_provenance_mut(self.base),
                self.len,
            )
        }
    }
}

impl Drop for SystemPages {
    fn drop(&mut self) {
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        // Back to a guard: the old address faults and reads nothing. If
        // the remap fails the slot stays taken, so its pages are never
        // handed out again with old content in them.
        if self.mapped > 0 && remap(self.base, self.mapped, libc::PROT_NONE).is_err() {
            return;
        }
        if let Some(taken) = slots.taken.get_mut(self.slot) {
            *taken = false;
        }
    }
}

/// Reserves system space: `PROT_NONE`, nothing committed.
fn reserve() -> Result<usize, CaptureError> {
    // SAFETY: without MAP_FIXED the kernel picks an unused range, so the
    // reservation cannot replace or alias existing memory. PROT_NONE: no
    // byte of it is accessible until a slot is remapped.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SYSTEM_SPACE_LEN,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(CaptureError::NoMemory)
    } else {
        Ok(ptr.expose_provenance())
    }
}

#[cfg(target_os = "linux")]
const NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(not(target_os = "linux"))]
const NORESERVE: libc::c_int = 0;

/// Replaces `[addr, addr + len)` of system space with fresh zeroed
/// anonymous pages of protection `prot`.
fn remap(addr: usize, len: usize, prot: libc::c_int) -> Result<(), CaptureError> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
    let flags = if prot == libc::PROT_NONE {
        flags | NORESERVE
    } else {
        flags
    };
    // SAFETY: callers pass a page-aligned range inside one slot of the
    // reservation (`SLOTS` holds its base; slots never overlap and a
    // mapping never reaches the slot's guard), which this module owns, so
    // MAP_FIXED replaces only our own pages. The pages replaced are either
    // PROT_NONE (never referenced) or those of a `SystemPages` being
    // dropped, whose references ended with it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::with_exposed_provenance_mut(addr),
            len,
            prot,
            flags,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(CaptureError::NoMemory)
    } else {
        Ok(())
    }
}
