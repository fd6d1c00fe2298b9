//! Transports: how the client reaches a usercap device, and the user memory
//! it builds requests in.
//!
//! Both transports take raw addresses in this process, exactly what
//! `DeviceIoControl` takes, so every scenario of the attack suite (null,
//! kernel, guard-page and racing pointers) runs unchanged on both:
//!
//! - `windows`: `\\.\UserCap` (or the device interface) and
//!   `NtDeviceIoControlFile`, the native call under `DeviceIoControl`, which
//!   returns the exact NTSTATUS and `Information`;
//! - `sim`: the in-process model: `IoManager` + `Device` on `HostSpace`
//!   (Linux) or `SehSpace` (Windows, and the Windows ABI under Wine), real
//!   memory with real faults.

use core::fmt;

use usercap::NtStatus;

/// One `DeviceIoControl` call with raw addresses in this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// `dwIoControlCode`.
    pub code: u32,
    /// `lpInBuffer`.
    pub input: usize,
    /// `nInBufferSize`.
    pub input_len: usize,
    /// `lpOutBuffer`.
    pub output: usize,
    /// `nOutBufferSize`.
    pub output_len: usize,
}

/// How the device completed a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The request's NTSTATUS.
    pub status: NtStatus,
    /// `IoStatus.Information`.
    pub information: usize,
}

/// Why a call did not even reach a completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The device could not be opened.
    Open(String),
    /// The simulated I/O manager caught the driver breaking a rule that
    /// Driver Verifier checks (it would have bugchecked).
    Verifier(String),
    /// User memory for the request could not be set up.
    Memory(String),
    /// The transport is not available on this platform.
    Unavailable(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(why) => write!(f, "cannot open the usercap device: {why}"),
            Self::Verifier(why) => write!(f, "Driver Verifier violation: {why}"),
            Self::Memory(why) => write!(f, "user memory: {why}"),
            Self::Unavailable(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for Error {}

/// A way to send IOCTLs to a usercap device.
pub trait Transport: Send + Sync {
    /// `"sim"` or `"windows"`.
    fn name(&self) -> &'static str;
    /// Sends one call.
    ///
    /// # Errors
    /// [`Error`] when no completion could be had.
    fn call(&self, call: &Call) -> Result<Outcome, Error>;
    /// Where a piece of the device's kernel memory is, for the attack
    /// suite to aim pointers at: what an attacker with a kernel address leak
    /// would know. `None` (the default) when the transport cannot know it:
    /// user mode learns no kernel address of usercap.sys.
    fn kernel_memory(&self, what: KernelMemory) -> Option<KernelRange> {
        let _ = what;
        None
    }
}

/// A range of a device's kernel memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRange {
    /// Its address.
    pub addr: usize,
    /// Its length in bytes.
    pub len: usize,
    /// Which one it is: the request it belongs to, so that two looks that
    /// see the same generation saw the same, still live, object.
    pub generation: u64,
}

/// The pieces of a device's kernel memory [`Transport::kernel_memory`]
/// can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelMemory {
    /// The device object: the driver's state (its name, its counters).
    Device,
    /// The SystemBuffer of the latest METHOD_BUFFERED request.
    LastSystemBuffer,
    /// The pool copy the latest capture made, while its request is still
    /// running (`None` once that request has completed).
    LivePoolCopy,
}

/// Access of user pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `PAGE_NOACCESS` / `PROT_NONE`: a guard page.
    None,
    /// Read-only.
    Read,
    /// Read and write.
    ReadWrite,
}

/// Page-granular user memory the client builds requests in, which other
/// threads may rewrite while a request runs.
pub struct Pages {
    inner: imp::Pages,
}

impl fmt::Debug for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("addr", &format_args!("{:#x}", self.addr()))
            .field("len", &self.len())
            .finish()
    }
}

impl Pages {
    /// At least `len` bytes of zeroed read-write memory, page-aligned.
    ///
    /// # Errors
    /// [`Error::Memory`] if the OS refuses.
    pub fn new(len: usize) -> Result<Self, Error> {
        imp::Pages::new(len.max(1)).map(|inner| Self { inner })
    }

    /// The start address.
    #[must_use]
    pub fn addr(&self) -> usize {
        self.inner.addr()
    }

    /// The size in bytes (whole pages).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Always false: pages are at least one page long.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The OS page size.
    #[must_use]
    pub fn page_size() -> usize {
        imp::page_size()
    }

    /// Writes bytes at `offset`. Safe to call while other threads (and the
    /// device) read or write the same pages.
    ///
    /// # Errors
    /// [`Error::Memory`] if the range is outside the pages or not writable.
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        self.check(offset, bytes.len())?;
        self.inner.write(offset, bytes)
    }

    /// Reads `len` bytes at `offset`.
    ///
    /// # Errors
    /// [`Error::Memory`] if the range is outside the pages or not readable.
    pub fn read(&self, offset: usize, len: usize) -> Result<Vec<u8>, Error> {
        self.check(offset, len)?;
        self.inner.read(offset, len)
    }

    /// Changes the access of whole pages covering `[offset, offset + len)`.
    ///
    /// # Errors
    /// [`Error::Memory`] if the OS refuses.
    pub fn protect(&self, offset: usize, len: usize, access: Access) -> Result<(), Error> {
        self.check(offset, len)?;
        self.inner.protect(offset, len, access)
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::Memory(format!(
                "range {offset:#x}+{len:#x} is outside {:#x} bytes of pages",
                self.len()
            ))),
        }
    }
}

/// The client's user pages: `usercap_host::UserMemory` on Unix,
/// `usercap_seh::UserMemory` on Windows. Both are regions of the model's
/// reserved user range that no Rust reference covers, read and written
/// through the guarded copy, so racing threads and the device touching the
/// same bytes is defined behaviour and a page the client made inaccessible
/// gives an error, not a crash. The same memory serves the `windows`
/// transport: `DeviceIoControl` takes its addresses like any other.
#[cfg(any(unix, all(windows, target_arch = "x86_64")))]
mod imp {
    #[cfg(unix)]
    use usercap_host::{Prot, UserMemory};
    #[cfg(windows)]
    use usercap_seh::{Prot, UserMemory};

    use super::{Access, Error};

    pub struct Pages(UserMemory);

    pub fn page_size() -> usize {
        #[cfg(unix)]
        return usercap_host::guarded::page_size();
        #[cfg(windows)]
        return usercap_seh::page_size();
    }

    impl Pages {
        pub fn new(len: usize) -> Result<Self, Error> {
            UserMemory::new(len)
                .map(Pages)
                .map_err(|e| Error::Memory(e.to_string()))
        }
        pub fn addr(&self) -> usize {
            self.0.addr()
        }
        pub fn len(&self) -> usize {
            self.0.len()
        }
        pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
            self.0
                .write_at(offset, bytes)
                .map_err(|e| Error::Memory(e.to_string()))
        }
        pub fn read(&self, offset: usize, len: usize) -> Result<Vec<u8>, Error> {
            let mut out = vec![0; len];
            self.0
                .read_at(offset, &mut out)
                .map_err(|e| Error::Memory(e.to_string()))?;
            Ok(out)
        }
        pub fn protect(&self, offset: usize, len: usize, access: Access) -> Result<(), Error> {
            let prot = match access {
                Access::None => Prot::None,
                Access::Read => Prot::Read,
                Access::ReadWrite => Prot::ReadWrite,
            };
            self.0
                .protect(offset, len, prot)
                .map_err(|e| Error::Memory(e.to_string()))
        }
    }
}
