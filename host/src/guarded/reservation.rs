//! Reserved ranges of this process's address space: the shape both of the
//! model's fixed ranges share, the user range ([`UserMemory`]) and system
//! space ([`KernelBuffer`]).
//!
//! A range is one `PROT_NONE` mapping, made once when it is first needed
//! and never released. `PROT_NONE` with `MAP_NORESERVE` commits nothing: it
//! costs address space and one kernel VMA, no memory, and it is not charged
//! to the overcommit accounting; only the pages later mapped read-write
//! inside it are. Pages are handed out inside it with `MAP_FIXED`, and given
//! back by mapping `PROT_NONE` over them again, so a freed address stays in
//! its range and faults, like freed memory on Windows.
//!
//! # Publishing the bounds
//!
//! A probe loads the bounds of a range on every user-mode access, with no
//! lock. They are published as **one** atomic word, the start, with the end
//! derived from the range's constant length: a reader sees either no range
//! (`(0, 0)`) or the whole one. With two words (the first version of this
//! module had a `START` and an `END`), a reader racing the reservation
//! could load the old start (0) and the new end, and take every address
//! below the end for part of that range. The test below replays exactly
//! that interleaving against both layouts.
//!
//! [`UserMemory`]: super::UserMemory
//! [`KernelBuffer`]: crate::KernelBuffer

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bounds of a range of constant length `LEN`, published once.
pub(crate) struct Published<const LEN: usize> {
    /// The start of the range, 0 until it is reserved.
    start: AtomicUsize,
}

impl<const LEN: usize> Published<LEN> {
    /// Bounds that are not published yet.
    pub(crate) const fn new() -> Self {
        Self {
            start: AtomicUsize::new(0),
        }
    }

    /// `[start, start + LEN)`, or `(0, 0)` before [`publish`](Self::publish):
    /// one load.
    #[inline]
    pub(crate) fn bounds(&self) -> (usize, usize) {
        self.bounds_then(|| ())
    }

    /// [`bounds`](Self::bounds), running `after_first_load` right after its
    /// first load of the published word: the point where a concurrent
    /// [`publish`](Self::publish) would split a reader that loads more than
    /// one word. For the test of that race; the probe passes a no-op.
    #[inline]
    fn bounds_then(&self, after_first_load: impl FnOnce()) -> (usize, usize) {
        let start = self.start.load(Ordering::Acquire);
        after_first_load();
        derive::<LEN>(start)
    }

    /// Publishes the range's start (not 0), once.
    pub(crate) fn publish(&self, start: usize) {
        self.start.store(start, Ordering::Release);
    }
}

/// The bounds a published start stands for.
#[inline]
const fn derive<const LEN: usize>(start: usize) -> (usize, usize) {
    if start == 0 {
        (0, 0)
    } else {
        // `start` came from a mapping of `LEN` bytes, which cannot wrap.
        (start, start.wrapping_add(LEN))
    }
}

/// Reserves `len` bytes of address space: `PROT_NONE`, nothing committed,
/// at an address the kernel chooses. The pointer is the mapping's own, with
/// its provenance.
///
/// # Errors
/// The error of `mmap` (`ENOMEM` when the address space or `RLIMIT_AS` has
/// no room for it).
pub(crate) fn reserve(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: without MAP_FIXED the kernel picks an unused range, so the
    // reservation cannot replace or alias existing memory. PROT_NONE: no
    // byte of it is accessible until part of it is mapped over.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast()).ok_or_else(|| io::ErrorKind::AddrNotAvailable.into())
}

/// How [`map_fixed`] maps a part of a reservation.
#[derive(Clone, Copy)]
pub(crate) enum Backing {
    /// Fresh zeroed anonymous pages, read-write.
    Anonymous,
    /// A shared mapping of this file from offset 0, read-write.
    #[cfg(target_os = "linux")]
    Shared(libc::c_int),
    /// `PROT_NONE` again, nothing committed: the pages are given back.
    Reserved,
}

/// Maps `[at, at + len)` of a reservation over again, as `backing` says.
/// Returns the new mapping's pointer (the provenance of its pages) with its
/// address exposed, since the guarded copy reaches these pages through
/// addresses.
///
/// # Safety
/// `[at, at + len)` must be page-aligned and lie inside a reservation of
/// [`reserve`], in a part that the caller alone owns. No Rust reference
/// into the pages being replaced may be alive: `MAP_FIXED` throws them away.
///
/// # Errors
/// The error of `mmap`.
pub(crate) unsafe fn map_fixed(
    at: NonNull<u8>,
    len: usize,
    backing: Backing,
) -> io::Result<NonNull<u8>> {
    let fixed = libc::MAP_FIXED;
    let (prot, flags, fd) = match backing {
        Backing::Anonymous => (
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | fixed,
            -1,
        ),
        #[cfg(target_os = "linux")]
        Backing::Shared(fd) => (
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | fixed,
            fd,
        ),
        Backing::Reserved => (
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | NORESERVE | fixed,
            -1,
        ),
    };
    // SAFETY: the caller owns `[at, at + len)`, a page-aligned part of one
    // of our reservations, and holds no reference into it, so MAP_FIXED
    // replaces only pages nothing else uses; the flags and fd are valid.
    let ptr = unsafe { libc::mmap(at.as_ptr().cast(), len, prot, flags, fd, 0) };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(io::ErrorKind::AddrNotAvailable)?;
    let _ = ptr.as_ptr().expose_provenance();
    Ok(ptr)
}

#[cfg(target_os = "linux")]
const NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(not(target_os = "linux"))]
const NORESERVE: libc::c_int = 0;

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds a reader loads while a writer publishes them.
    trait Bounds {
        /// The bounds, with `after_first_load` run after the first load.
        fn read(&self, after_first_load: &dyn Fn()) -> (usize, usize);
        /// Publishes `[start, start + LEN)`.
        fn publish(&self, start: usize);
    }

    const LEN: usize = 1 << 20;
    const START: usize = 0x7000_0000;

    impl Bounds for Published<LEN> {
        fn read(&self, after_first_load: &dyn Fn()) -> (usize, usize) {
            self.bounds_then(after_first_load)
        }
        fn publish(&self, start: usize) {
            Published::publish(self, start);
        }
    }

    /// The layout this module had first, deliberately kept wrong here: two
    /// words, stored and loaded one after the other.
    struct TwoWords {
        start: AtomicUsize,
        end: AtomicUsize,
    }

    impl Bounds for TwoWords {
        fn read(&self, after_first_load: &dyn Fn()) -> (usize, usize) {
            let start = self.start.load(Ordering::Acquire);
            after_first_load();
            (start, self.end.load(Ordering::Acquire))
        }
        fn publish(&self, start: usize) {
            self.start.store(start, Ordering::Release);
            self.end.store(start + LEN, Ordering::Release);
        }
    }

    /// The bounds a reader saw when the publish landed right after its
    /// first load, if they are neither "no range" nor the whole range.
    fn torn(bounds: &dyn Bounds) -> Option<(usize, usize)> {
        let seen = bounds.read(&|| bounds.publish(START));
        let whole = (START, START + LEN);
        // The publish did happen, whole.
        assert_eq!(bounds.read(&|| ()), whole);
        (seen != (0, 0) && seen != whole).then_some(seen)
    }

    #[test]
    fn a_reader_racing_the_publish_sees_no_range_or_the_whole_range() {
        assert_eq!(torn(&Published::<LEN>::new()), None);
    }

    #[test]
    fn the_check_catches_the_two_word_layout() {
        let two = TwoWords {
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        };
        // Start 0 with the new end: every address below the end would have
        // counted as inside the range.
        assert_eq!(torn(&two), Some((0, START + LEN)));
    }

    #[test]
    fn bounds_before_and_after_the_publish() {
        let bounds = Published::<LEN>::new();
        assert_eq!(bounds.bounds(), (0, 0));
        bounds.publish(START);
        assert_eq!(bounds.bounds(), (START, START + LEN));
    }
}
