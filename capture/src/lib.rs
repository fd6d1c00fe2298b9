//! Probe-and-capture: the only way usercap's kernel code touches user memory.
//!
//! # The problem
//!
//! A Windows driver traditionally calls `ProbeForRead(p, len, align)` and then
//! dereferences `p` inside `__try/__except`. Three things go wrong with that
//! shape, again and again:
//!
//! - **The checks scatter.** Each access needs its own probe, each embedded
//!   pointer its own, and one forgotten probe lets a user point the kernel at
//!   kernel memory. A zero-length probe checks nothing at all, not even the
//!   alignment, so a length that later turns out non-zero bypasses it.
//! - **Double fetch.** User memory stays writable by the user's other
//!   threads. A driver that reads a length, validates it, and reads it again
//!   to use it has validated a different value from the one it uses. The
//!   compiler may add such second reads on its own, and nothing in the source
//!   shows them (Bochspwn found dozens in Windows, Wang et al. 90 in Linux).
//! - **Disclosure.** Output structs with padding, and `Information` larger
//!   than what was written, copy stale kernel bytes to the user.
//!
//! Linux answered with one interface: `copy_from_user` does a range check,
//! a speculation barrier and one fault-safe copy into a kernel buffer that
//! userland can no longer change. This crate brings that model to Windows,
//! and uses Rust's types to make the wrong shapes hard to write.
//!
//! # The model
//!
//! - [`UserPtr<T>`] and [`UserSlice<T>`] are user addresses with a type. They
//!   cannot be dereferenced, and they are not `Copy` or `Clone`: capturing
//!   consumes them. Fetching the same user memory twice therefore needs a
//!   second, visible `UserPtr::new` in the source, where a reviewer sees it.
//! - A capture applies the probe rules (see [`space`]) in one
//!   place, copies every byte exactly once under the backend's fault guard,
//!   and returns a kernel copy: [`Captured<T>`] inline (by value, or in place
//!   in a reused [`CaptureSlot`] with [`UserPtr::capture_into`]), or
//!   [`CapturedSlice<T>`] / [`CapturedBytes`] in a fallible pool allocation.
//!   Handlers validate and use only that copy; a racing thread changing user
//!   memory afterwards changes nothing the handler sees.
//! - Zero lengths return an empty copy without touching memory, so there is
//!   no zero-length probe to bypass.
//! - Embedded data is captured from kernel copies:
//!   [`CapturedBytes::parse`] checks a header's count against the bytes
//!   actually captured, and [`CapturedUnicode`] checks a `UNICODE_STRING`'s
//!   lengths on the captured struct before it captures the characters.
//! - On any error nothing partial is handed out. Linux's `copy_from_user`
//!   returns a partly filled buffer with a count; here a failed capture has no
//!   buffer at all, so no handler can act on half a copy.
//! - Output goes through [`UserWriter`], which takes only
//!   [`IntoBytes`](zerocopy::IntoBytes) values (no padding, so no
//!   uninitialised byte) and counts what it wrote: that count is the
//!   request's `Information`, never more.
//! - [`Limits`] cap every capture and every request, so a hostile length is
//!   [`CaptureError::TooLarge`], not pool exhaustion; running out of pool is
//!   [`CaptureError::NoMemory`], never a panic.
//!
//! The crate has no `unsafe`. Backends ([`AddressSpace`] implementations)
//! hold the little that is needed: the fault-guarded copy, the barrier.
//!
//! # Example
//!
//! ```
//! use usercap::sim::{Perm, SimSpace};
//! use usercap::{UserPtr, UserSlice};
//!
//! let user = SimSpace::new();
//! assert!(user.map(0x1_0000, &7u32.to_le_bytes(), Perm::READ).is_ok());
//! assert!(user.map(0x2_0000, &[1, 2, 3, 4], Perm::READ).is_ok());
//!
//! let count = UserPtr::<u32>::new(0x1_0000).capture(&user)?;
//! let bytes = UserSlice::<u8>::new(0x2_0000, 4)?.capture(&user)?;
//! assert_eq!(*count, 7);
//! assert_eq!(&*bytes, &[1, 2, 3, 4]);
//! assert_eq!(user.max_fetches(), 1); // every byte fetched exactly once
//! # Ok::<(), usercap::CaptureError>(())
//! ```
//!
//! The bug this prevents, which does not compile here:
//!
//! ```compile_fail
//! # use usercap::{sim::SimSpace, UserPtr};
//! # let user = SimSpace::new();
//! let len = UserPtr::<u32>::new(0x1_0000);
//! let checked = len.capture(&user)?;      // fetch 1: validate...
//! let used = len.capture(&user)?;         // fetch 2: ...then use. `len` was moved.
//! # Ok::<(), usercap::CaptureError>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(not(target_pointer_width = "64"))]
compile_error!("usercap models the 64-bit Windows address space only");

extern crate alloc;

mod error;
mod ptr;
#[cfg(feature = "sim")]
pub mod sim;
mod slice;
pub mod space;
mod unicode;
mod writer;

pub use error::{CaptureError, NtStatus, errno};
pub use ptr::{CaptureSlot, Captured, Extensible, UserPtr};
pub use slice::{CapturedBytes, CapturedCStr, CapturedSlice, CountedLayout, UserSlice};
pub use space::{
    AddressSpace, Budgeted, DEFAULT_PROBE_LIMIT, LOWEST_USER_ADDRESS, Limits, Mode, PoolBlock,
    check_user_range,
};
pub use unicode::{CapturedUnicode, WireUnicodeString};
pub use writer::UserWriter;
/// The byte-safety traits captured and written types implement.
pub use zerocopy;
