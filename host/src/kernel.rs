//! [`KernelBuffer`]: memory the model treats as kernel memory, and the
//! registry of kernel ranges that user-mode probes reject.
//!
//! On Windows, `ProbeForRead` rejects any range that reaches system space.
//! On the host, kernel and user memory share one address space, so the model
//! marks its kernel-side buffers (device state, SystemBuffers, anything a
//! test wants to protect) by registering their address ranges. A user-mode
//! [`HostSpace`](crate::HostSpace) access that overlaps one is
//! `AccessViolation`, and the Linux facade's `access_ok` fails for it.
//!
//! The registry is read on every user-mode access, so it is lock-free for
//! readers: a fixed table of atomic `(start, end)` slots behind a sequence
//! counter (a seqlock). Registering and unregistering are rare and take a
//! mutex among themselves. A probe that runs concurrently with the
//! registration of a new buffer may or may not see it, exactly as if it had
//! run just before or just after.

use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Mutex, PoisonError};

use usercap::CaptureError;
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// How many kernel buffers can be alive at once.
pub const MAX_KERNEL_BUFFERS: usize = 256;

struct Slot {
    start: AtomicUsize,
    /// 0 when the slot is free (a registered range is never empty).
    end: AtomicUsize,
}

static SLOTS: [Slot; MAX_KERNEL_BUFFERS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
    }
}; MAX_KERNEL_BUFFERS];
/// One past the highest slot in use: readers scan only this far.
static HIGH: AtomicUsize = AtomicUsize::new(0);
/// Even when the table is stable, odd while a writer changes it.
static SEQ: AtomicUsize = AtomicUsize::new(0);
/// Serialises writers.
static WRITER: Mutex<()> = Mutex::new(());

/// Changes one slot under the seqlock.
fn write_slot(slot: &Slot, start: usize, end: usize) {
    SEQ.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::Release);
    slot.start.store(start, Ordering::Relaxed);
    slot.end.store(end, Ordering::Relaxed);
    SEQ.fetch_add(1, Ordering::Release);
}

/// Registers `[start, end)` and returns its slot, or `None` if the table is
/// full.
fn register(start: usize, end: usize) -> Option<usize> {
    let _writer = WRITER.lock().unwrap_or_else(PoisonError::into_inner);
    let index = SLOTS
        .iter()
        .position(|slot| slot.end.load(Ordering::Relaxed) == 0)?;
    let slot = SLOTS.get(index)?;
    write_slot(slot, start, end);
    HIGH.fetch_max(index + 1, Ordering::Release);
    Some(index)
}

fn unregister(index: usize) {
    let _writer = WRITER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(slot) = SLOTS.get(index) {
        write_slot(slot, 0, 0);
    }
    // Shrink the scanned prefix past free slots at its end. A reader that
    // loaded the old bound scans free slots, which match nothing.
    let mut high = HIGH.load(Ordering::Relaxed);
    while high > 0
        && SLOTS
            .get(high - 1)
            .is_some_and(|slot| slot.end.load(Ordering::Relaxed) == 0)
    {
        high -= 1;
    }
    HIGH.store(high, Ordering::Release);
}

/// Whether `[addr, addr + len)` overlaps a live [`KernelBuffer`]. An empty
/// range overlaps a buffer when `addr` lies inside it.
#[must_use]
pub fn is_kernel_range(addr: usize, len: usize) -> bool {
    let high = HIGH.load(Ordering::Acquire).min(MAX_KERNEL_BUFFERS);
    if high == 0 {
        return false;
    }
    let end = addr.saturating_add(len.max(1));
    let slots = SLOTS.get(..high).unwrap_or(&[]);
    loop {
        let seq = SEQ.load(Ordering::Acquire);
        if seq % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        let hit = slots.iter().any(|slot| {
            let start = slot.start.load(Ordering::Relaxed);
            let stop = slot.end.load(Ordering::Relaxed);
            stop != 0 && start < end && addr < stop
        });
        fence(Ordering::Acquire);
        if SEQ.load(Ordering::Relaxed) == seq {
            return hit;
        }
    }
}

/// The storage unit: 16 bytes, 16-aligned, as pool allocations are on x64.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(16))]
struct Block([u8; 16]);

/// A buffer the model treats as kernel memory: device state, a SystemBuffer.
///
/// Its address range is registered as a kernel range while it lives, so a
/// user-mode [`HostSpace`](crate::HostSpace) rejects any access that
/// overlaps it with `AccessViolation`, as `ProbeForRead` rejects system
/// addresses, and the facade's `access_ok` fails for it. A kernel-mode
/// `HostSpace` may read it. No `HostSpace` may write it: writes go only to
/// [`UserMemory`](crate::UserMemory); kernel code writes a `KernelBuffer`
/// through [`as_mut_slice`](Self::as_mut_slice).
///
/// The storage is 16-byte aligned and zero-initialised.
pub struct KernelBuffer {
    storage: Box<[Block]>,
    len: usize,
    slot: Option<usize>,
}

impl KernelBuffer {
    /// A zeroed kernel buffer of `len` bytes, registered as a kernel range.
    /// An empty buffer registers nothing.
    ///
    /// # Errors
    /// `NoMemory` if the allocation fails or [`MAX_KERNEL_BUFFERS`] buffers
    /// are already alive.
    pub fn new(len: usize) -> Result<Self, CaptureError> {
        let blocks = len.div_ceil(size_of::<Block>());
        let storage =
            <[Block]>::new_box_zeroed_with_elems(blocks).map_err(|_| CaptureError::NoMemory)?;
        let mut buffer = Self {
            storage,
            len,
            slot: None,
        };
        if len > 0 {
            let start = buffer.addr();
            buffer.slot = Some(register(start, start + len).ok_or(CaptureError::NoMemory)?);
        }
        Ok(buffer)
    }

    /// A kernel buffer holding a copy of `bytes`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CaptureError> {
        let mut buffer = Self::new(bytes.len())?;
        buffer.as_mut_slice().copy_from_slice(bytes);
        Ok(buffer)
    }

    /// The address of the first byte.
    #[must_use]
    pub fn addr(&self) -> usize {
        self.storage.as_ptr().addr()
    }

    /// The length in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no bytes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        self.storage.as_bytes().get(..self.len).unwrap_or(&[])
    }

    /// The bytes, for kernel code to change.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        self.storage
            .as_mut_bytes()
            .get_mut(..len)
            .unwrap_or(&mut [])
    }
}

impl Drop for KernelBuffer {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            unregister(slot);
        }
    }
}

impl core::fmt::Debug for KernelBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelBuffer")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}
