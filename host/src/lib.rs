//! usercap's kernel model on a Linux host: the capture API over this
//! process's real memory, with real faults.
//!
//! The driver runs on Windows, where a bad user pointer raises an exception
//! that the framework's probe-and-lock turns into `STATUS_ACCESS_VIOLATION`.
//! This crate gives the same contract on Linux, inside one ordinary process,
//! so the same handlers, attacks and races run on a laptop:
//!
//! - [`guarded`]: the fault-guarded copy, Linux's exception-table technique
//!   in user space (a listed copy instruction that faults resumes at a
//!   fixup that returns the bytes not copied), with a `process_vm_readv`
//!   fallback ([`Backend`]). It is the only module with `unsafe` code; the
//!   crate denies `unsafe_code` everywhere else.
//! - [`UserMemory`]: regions that the model owns as *user memory*, all in
//!   one reserved range of the address space, the model's user range
//!   ([`user_range`]). A user-mode [`HostSpace`] touches nothing outside it,
//!   so everything else in the process (the device object, the I/O model's
//!   SystemBuffers, the pool copies of captures, stacks, statics) is kernel
//!   memory, as everything above `MmUserProbeAddress` is on Windows. Reads
//!   through the guarded copy may target any address, but **writes only a
//!   `UserMemory`**: a safe write to an arbitrary address could corrupt
//!   memory Rust code references. [`Prot`] makes guard pages.
//! - [`KernelBuffer`]: pool-like kernel memory, in another reserved range
//!   (the model's system space): each buffer has a guard, and a freed
//!   buffer's address stays a kernel address and faults.
//! - [`HostSpace`]: `usercap::AddressSpace` over all of this, with the
//!   probe rules in order: range check, user-range check, the branch-free
//!   address mask (Linux's `mask_user_address`), guarded copy.
//!   `Send + Sync`, so racing threads can share it.
//! - [`linux`]: the Linux uaccess facade (`copy_from_user`,
//!   `copy_struct_from_user`, `strncpy_from_user`, …) with Linux's names
//!   and return conventions, so the same cases run against both models.
//! - [`naive`]: the anti-pattern, clearly labelled: SUM with a double fetch
//!   of its count. Host model only; never in the driver.
//! - The I/O manager model of `usercap-device`, re-exported: [`IoManager`],
//!   [`Ioctl`], [`Driver`], [`Irp`], [`Violation`], [`pool_poison`].
//!
//! # Example
//!
//! ```
//! # #[cfg(unix)] {
//! use usercap::{AddressSpace, CaptureError, UserPtr};
//! use usercap_host::{HostSpace, KernelBuffer, Prot, UserMemory};
//!
//! let user = UserMemory::new(2 * usercap_host::guarded::page_size())?;
//! user.write_at(0, &7u32.to_le_bytes())?;
//! let space = HostSpace::new();
//! assert_eq!(*UserPtr::<u32>::new(user.addr()).capture(&space)?, 7);
//!
//! // A guard page is a clean error, not a crash.
//! user.protect(0, usercap_host::guarded::page_size(), Prot::None)?;
//! let fault = UserPtr::<u32>::new(user.addr()).capture(&space);
//! assert_eq!(fault.unwrap_err(), CaptureError::AccessViolation);
//!
//! // Kernel memory is rejected by the user-mode probe: anything outside the
//! // user range, the heap included.
//! let heap = Box::new(7u32);
//! let probe = UserPtr::<u32>::new(std::ptr::from_ref(&*heap).addr()).capture(&space);
//! assert_eq!(probe.unwrap_err(), CaptureError::AccessViolation);
//! let secret = KernelBuffer::from_bytes(&[0x5A; 16])?;
//! let probe = UserPtr::<[u8; 16]>::new(secret.addr()).capture(&space);
//! assert_eq!(probe.unwrap_err(), CaptureError::AccessViolation);
//! assert_eq!(*UserPtr::<[u8; 16]>::new(secret.addr()).capture(&HostSpace::kernel())?, [0x5A; 16]);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platforms
//!
//! The guarded routines exist on x86_64 Linux; other Linux targets use
//! `process_vm_readv` for everything. On non-Unix targets (the driver's
//! `x86_64-pc-windows-msvc`) the crate compiles to the portable parts only
//! (the I/O manager re-exports and [`naive`]), so
//! `cargo check --workspace` works for every target.
#![deny(unsafe_code)]

#[cfg(unix)]
pub mod guarded;
#[cfg(unix)]
mod kernel;
#[cfg(unix)]
pub mod linux;
pub mod naive;
#[cfg(unix)]
mod space;

#[cfg(unix)]
pub use guarded::{
    Backend, MAX_KERNEL_BUFFER_LEN, MAX_KERNEL_BUFFERS, Prot, USER_RANGE_LEN, UserMemory,
    is_kernel_range, is_user_range, user_range,
};
#[cfg(unix)]
pub use kernel::KernelBuffer;
#[cfg(unix)]
pub use space::HostSpace;
pub use usercap_device::io::{Driver, IoManager, Ioctl, Irp, Violation, pool_poison};
pub use usercap_device::{Buffers, Completion, Request};
