//! usercap's guarded copy for Windows x64: a real `__try/__except` written in
//! Rust, with no C.
//!
//! A Windows driver that touches a user address directly must do it under
//! structured exception handling: the access may fault, and the fault must
//! become a status, not a bugcheck. Rust has no `__try`. This crate gives it
//! the one thing it needs, the way Linux's `copy_from_user` gets it from its
//! exception table: three copy routines, written in `global_asm!`, whose x64
//! unwind data names `__C_specific_handler` (the handler behind MSVC's
//! `__try/__except`) and whose scope tables list exactly the instructions that
//! touch the untrusted range. A fault in one of them resumes at a jump target
//! in the same routine that returns the bytes not done. The [`guarded`]
//! module has the mechanism and the reasoning; it is the crate's only
//! `unsafe` code.
//!
//! - [`copy_from`], [`copy_to`], [`clear`]: the raw guarded routines. Each
//!   returns the bytes **not** done (0 on success); the bytes done are a
//!   prefix, exact to the byte. Their `_outcome` forms also return the
//!   exception code of the fault that ended them ([`Outcome`]). They apply
//!   no address policy.
//! - [`SehSpace`]: `usercap::AddressSpace` over them: the shared probe rules
//!   (`usercap::check_user_range`) with a configurable limit
//!   (`MmUserProbeAddress` by default), a branch-free address mask as the
//!   speculation barrier, then one guarded copy. In usercap.sys it is built
//!   with the unsafe [`SehSpace::for_request`]; in user mode, with feature
//!   `user`, [`SehSpace::new`] models a user-mode requester over
//!   [`UserMemory`].
//! - [`UserMemory`] and [`Prot`] (feature `user`): regions of one reserved
//!   user range of this process, committed with `VirtualAlloc`, with
//!   no-access, read-only, guard and decommitted (reserved) pages, so that
//!   safe code and tests can make the memory a user would hand a driver.
//!
//! # What runs where
//!
//! The routines and `SehSpace` are the same code in usercap.sys and in user
//! mode. In user mode they run under Wine on Linux (the Windows ABI, with
//! Wine's `__C_specific_handler` and exception dispatch), which is how this
//! project tests them in CI; see docs/windows.md. In the kernel they run
//! only on a Windows machine, with ntoskrnl's `__C_specific_handler`, and
//! nothing of that has been run by this project.
//!
//! # Platforms
//!
//! Everything is `cfg(all(windows, target_arch = "x86_64"))`: on any other
//! target the crate is empty, as `usercap-host`'s Linux parts are on
//! Windows. It is `no_std` (with `alloc` for pool copies), so usercap.sys
//! can use it; feature `user` adds `std` for [`UserMemory`].
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

#[cfg(all(windows, target_arch = "x86_64"))]
extern crate alloc;
#[cfg(all(windows, target_arch = "x86_64", feature = "user", not(test)))]
extern crate std;

#[cfg(all(windows, target_arch = "x86_64"))]
pub mod guarded;
#[cfg(all(windows, target_arch = "x86_64"))]
mod space;

#[cfg(all(windows, target_arch = "x86_64"))]
pub use guarded::{
    Outcome, STATUS_ACCESS_VIOLATION, STATUS_GUARD_PAGE_VIOLATION, STATUS_IN_PAGE_ERROR, clear,
    clear_outcome, copy_from, copy_from_outcome, copy_to, copy_to_outcome,
};
#[cfg(all(windows, target_arch = "x86_64", feature = "user"))]
pub use guarded::{Prot, USER_SPACE_LEN, UserMemory, page_size, user_space};
#[cfg(all(windows, target_arch = "x86_64"))]
pub use space::SehSpace;
