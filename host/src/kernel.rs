//! [`KernelBuffer`]: memory the model treats as kernel pool.
//!
//! For a user-mode [`HostSpace`](crate::HostSpace), kernel memory is
//! everything outside the model's user range
//! ([`guarded::user_range`](crate::guarded::user_range)): the device
//! object, the I/O model's SystemBuffers and the pool copies of captures are
//! ordinary heap, and the probe refuses them like any other address outside
//! it. A `KernelBuffer` adds what pool has on Windows and the heap does not:
//! it lives in its own slot of one reserved range, the model's system space
//! ([`guarded::system_space`](crate::guarded::system_space)), with a guard
//! after it, and when it is dropped its address stays in system space and
//! faults, as freed pool does. The Linux facade's `access_ok` fails for
//! system space ([`is_kernel_range`](crate::is_kernel_range)).

use usercap::CaptureError;

use crate::guarded::SystemPages;

/// A buffer the model treats as kernel memory: device state, a SystemBuffer.
///
/// It lives in its own slot of system space: read-write pages, then a guard
/// of at least 64 KiB that is never mapped. A user-mode
/// [`HostSpace`](crate::HostSpace) rejects any access that overlaps system
/// space with `AccessViolation`, as `ProbeForRead` rejects system
/// addresses, and the facade's `access_ok` fails for it. A kernel-mode
/// `HostSpace` may read it. No `HostSpace` may write it: writes go only to
/// [`UserMemory`](crate::UserMemory); kernel code writes a `KernelBuffer`
/// through [`as_mut_slice`](Self::as_mut_slice).
///
/// The storage is page-aligned and zero-initialised. Dropping the buffer
/// unmaps its pages: the address stays in system space and faults.
pub struct KernelBuffer {
    pages: SystemPages,
}

impl KernelBuffer {
    /// A zeroed kernel buffer of `len` bytes in system space. An empty buffer
    /// has an address in system space too.
    ///
    /// # Errors
    /// `NoMemory` above [`MAX_KERNEL_BUFFER_LEN`](crate::MAX_KERNEL_BUFFER_LEN),
    /// when [`MAX_KERNEL_BUFFERS`](crate::MAX_KERNEL_BUFFERS) buffers are
    /// already alive, or when mapping fails.
    pub fn new(len: usize) -> Result<Self, CaptureError> {
        Ok(Self {
            pages: SystemPages::new(len)?,
        })
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
        self.pages.addr()
    }

    /// The length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the buffer has no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        self.pages.as_slice()
    }

    /// The bytes, for kernel code to change.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.pages.as_mut_slice()
    }
}

impl core::fmt::Debug for KernelBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelBuffer")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
