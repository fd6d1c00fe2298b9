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
//! of a free slot (next-fit: the first free one after the slot handed out
//! last); the rest of the slot stays a guard. Dropping the buffer maps
//! `PROT_NONE` over its pages again, so its old address faults, like freed
//! pool, and stays a kernel address until the slot comes round again.
//!
//! The reservation is made once and never released (see [`reservation`]):
//! its start is published in one atomic word, and its end is derived from
//! the constant [`SYSTEM_SPACE_LEN`], so a probe racing the first
//! `KernelBuffer::new` sees either no system space or all of it.
//!
//! Since the user range came in (see [`UserMemory`](super::UserMemory)),
//! system space is not what makes a `KernelBuffer` kernel memory for
//! `HostSpace`: a user-mode probe accepts only the user range, and system
//! space lies outside it like every other mapping of the process. System
//! space stays because it keeps the shape of Windows' pool: a freed buffer's
//! address stays a kernel address and faults, every buffer has a guard, and
//! [`is_kernel_range`] answers "is this pool?" in two comparisons, which the
//! Linux facade's `access_ok` uses.
//!
//! [`KernelBuffer`]: crate::KernelBuffer
//! [`reservation`]: super::reservation

use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use usercap::CaptureError;

use super::page_size;
use super::reservation::{Backing, Published, map_fixed, reserve};

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

/// The bounds of system space, published once.
static SYSTEM_SPACE: Published<SYSTEM_SPACE_LEN> = Published::new();

/// The reservation's base (0 until made, exposed), which slots are taken,
/// and where the search for a free one starts.
struct Slots {
    base: usize,
    taken: [bool; MAX_KERNEL_BUFFERS],
    /// The slot after the one handed out last: slots are handed out
    /// next-fit, so a freed buffer's address keeps faulting until every
    /// other slot has been used since, rather than being mapped again by
    /// the next buffer (another thread's, say) at once.
    next: usize,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    base: 0,
    taken: [false; MAX_KERNEL_BUFFERS],
    next: 0,
});

/// The bounds `[start, end)` of system space, `(0, 0)` before the first
/// [`KernelBuffer`](crate::KernelBuffer) reserved it. One atomic load: the
/// end is the start plus [`SYSTEM_SPACE_LEN`].
#[inline]
#[must_use]
pub fn system_space() -> (usize, usize) {
    SYSTEM_SPACE.bounds()
}

/// Whether `[addr, addr + len)` overlaps system space. An empty range
/// overlaps it when `addr` lies inside it.
///
/// This is the question "is this pool?", not "is this kernel memory?": for
/// `HostSpace`, kernel memory is everything outside the user range
/// ([`is_user_range`](super::is_user_range)), the heap included.
#[inline]
#[must_use]
pub fn is_kernel_range(addr: usize, len: usize) -> bool {
    is_kernel_range_in(addr, len, system_space())
}

/// [`is_kernel_range`] against bounds the caller loaded.
#[inline]
#[must_use]
fn is_kernel_range_in(addr: usize, len: usize, (start, end): (usize, usize)) -> bool {
    addr < end && start < addr.saturating_add(len.max(1))
}

/// Read-write pages at the start of one slot of system space, owned.
#[derive(Debug)]
pub(crate) struct SystemPages {
    /// The pointer `mmap` returned for the pages: the slices are derived
    /// from it, with its provenance.
    ptr: NonNull<u8>,
    len: usize,
    /// The mapped length: `len` rounded up to whole pages.
    mapped: usize,
    slot: usize,
}

// SAFETY: `SystemPages` owns its pages as a `Box<[u8]>` owns its heap block:
// nothing else maps, unmaps or references them, `&self` gives shared
// read-only access and `&mut self` exclusive access. The raw pointer is
// what makes the type not `Send`/`Sync` automatically, not any thread
// affinity of the memory.
unsafe impl Send for SystemPages {}
// SAFETY: as above; there is no interior mutability behind `&self`.
unsafe impl Sync for SystemPages {}

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
            let base = reserve(SYSTEM_SPACE_LEN).map_err(|_| CaptureError::NoMemory)?;
            slots.base = base.as_ptr().expose_provenance();
            SYSTEM_SPACE.publish(slots.base);
        }
        let slot = (0..MAX_KERNEL_BUFFERS)
            .map(|i| (slots.next + i) % MAX_KERNEL_BUFFERS)
            .find(|&slot| slots.taken.get(slot) == Some(&false))
            .ok_or(CaptureError::NoMemory)?;
        let start = std::ptr::with_exposed_provenance_mut::<u8>(slots.base + slot * SLOT_LEN);
        let start = NonNull::new(start).ok_or(CaptureError::NoMemory)?;
        let ptr = if mapped > 0 {
            // SAFETY: `[start, start + mapped)` is the page-aligned start of
            // a free slot of our reservation (`mapped <= SLOT_LEN -
            // SLOT_GUARD`), owned by this function under the `SLOTS` lock;
            // a free slot is PROT_NONE, never referenced.
            unsafe { map_fixed(start, mapped, Backing::Anonymous) }
                .map_err(|_| CaptureError::NoMemory)?
        } else {
            start
        };
        if let Some(taken) = slots.taken.get_mut(slot) {
            *taken = true;
        }
        slots.next = (slot + 1) % MAX_KERNEL_BUFFERS;
        Ok(Self {
            ptr,
            len,
            mapped,
            slot,
        })
    }

    /// The address of the first byte.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is the mapping `new` made of `mapped >= len`
        // read-write bytes, which only `drop` unmaps, so it is valid for
        // reads of `len` bytes for as long as `&self` lives, and its
        // provenance is that mapping's. The mapping is fresh anonymous
        // memory (initialised, zero or written since). Mutation goes only
        // through `as_mut_slice`, which needs `&mut self`; the guarded copy
        // never writes outside `UserMemory` (see the module docs of
        // `guarded`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for kernel code to change.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as for `as_slice`; `&mut self` makes this the only
        // reference into the pages for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SystemPages {
    fn drop(&mut self) {
        let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
        // Back to a guard: the old address faults and reads nothing. If
        // the remap fails the slot stays taken, so its pages are never
        // handed out again with old content in them.
        if self.mapped > 0 {
            // SAFETY: `[ptr, ptr + mapped)` are this value's own pages in
            // its slot; the references `as_slice`/`as_mut_slice` handed out
            // borrowed `self` and so have ended.
            if unsafe { map_fixed(self.ptr, self.mapped, Backing::Reserved) }.is_err() {
                return;
            }
        }
        if let Some(taken) = slots.taken.get_mut(self.slot) {
            *taken = false;
        }
    }
}
