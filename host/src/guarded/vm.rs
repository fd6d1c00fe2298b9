//! The `process_vm_readv`/`process_vm_writev` fallback: the kernel's own
//! fault-safe copy, one syscall per transfer, on our own pid.

#[cfg(target_os = "linux")]
pub(super) use linux::{clear, read, write};
#[cfg(not(target_os = "linux"))]
pub(super) use none::{clear, read, write};

#[cfg(target_os = "linux")]
mod linux {
    use std::io;

    fn own_pid() -> libc::pid_t {
        // Not cached: a forked child has another pid.
        std::process::id().cast_signed()
    }

    /// Runs one transfer step until `len` bytes are done or it fails; returns
    /// the bytes not transferred. `step(done)` transfers from offset `done`.
    fn drive(len: usize, mut step: impl FnMut(usize) -> isize) -> usize {
        let mut done = 0_usize;
        while done < len {
            match usize::try_from(step(done)) {
                Ok(0) => break,
                Ok(n) => done = done.saturating_add(n).min(len),
                Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        len - done
    }

    /// The kernel stops at the first page it cannot pin and returns what it
    /// copied before it, so the count is exact to the byte (accessibility is
    /// page-granular). The retry after a short count covers `MAX_RW_COUNT`
    /// truncation and costs one failing syscall on the error path.
    ///
    /// # Safety
    /// `base` must be valid for `len` writes and not aliased by any
    /// reference for the duration of the call (it may be uninitialised).
    pub(crate) unsafe fn read(base: *mut u8, len: usize, src: usize) -> usize {
        drive(len, |done| {
            let local = libc::iovec {
                iov_base: base.wrapping_add(done).cast(),
                iov_len: len - done,
            };
            let remote = libc::iovec {
                iov_base: std::ptr::without_provenance_mut(src.wrapping_add(done)),
                iov_len: len - done,
            };
            // SAFETY: `local` describes the still-unwritten tail of the
            // destination, valid for writes by our contract (`done < len`);
            // `remote` is only read by the kernel, which validates it and
            // fails cleanly on bad pages. Both iovec arrays have exactly one
            // element.
            unsafe {
                libc::process_vm_readv(own_pid(), &raw const local, 1, &raw const remote, 1, 0)
            }
        })
    }

    /// `dst` has been checked to be user memory by the caller.
    pub(crate) fn write(dst: usize, src: &[u8]) -> usize {
        let len = src.len();
        drive(len, |done| {
            let rest = src.get(done..).unwrap_or(&[]);
            let local = libc::iovec {
                // The kernel only reads the local side of process_vm_writev.
                iov_base: rest.as_ptr().cast_mut().cast(),
                iov_len: rest.len(),
            };
            let remote = libc::iovec {
                iov_base: std::ptr::without_provenance_mut(dst.wrapping_add(done)),
                iov_len: rest.len(),
            };
            // SAFETY: `local` points into `src`, which the kernel only reads;
            // `remote` is validated by the kernel, which fails cleanly on bad
            // pages. Both iovec arrays have exactly one element.
            unsafe {
                libc::process_vm_writev(own_pid(), &raw const local, 1, &raw const remote, 1, 0)
            }
        })
    }

    /// `dst` has been checked to be user memory by the caller.
    pub(crate) fn clear(dst: usize, len: usize) -> usize {
        static ZEROS: [u8; 4096] = [0; 4096];
        let mut left = len;
        while left > 0 {
            let chunk = left.min(ZEROS.len());
            let not = write(
                dst.wrapping_add(len - left),
                ZEROS.get(..chunk).unwrap_or(&[]),
            );
            left -= chunk - not;
            if not != 0 {
                break;
            }
        }
        left
    }
}

/// No fault-safe fallback outside Linux: report that nothing was copied.
#[cfg(not(target_os = "linux"))]
mod none {
    pub(crate) unsafe fn read(_base: *mut u8, len: usize, _src: usize) -> usize {
        len
    }
    pub(crate) fn write(_dst: usize, src: &[u8]) -> usize {
        src.len()
    }
    pub(crate) fn clear(_dst: usize, len: usize) -> usize {
        len
    }
}
