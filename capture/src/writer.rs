//! `UserWriter`: the output side.

use core::mem::align_of;

use zerocopy::{Immutable, IntoBytes};

use crate::{AddressSpace, CaptureError};

/// Where a [`UserWriter`] writes.
#[derive(Debug)]
enum Target<'b> {
    /// A user range, written through the address space (METHOD_NEITHER).
    User { addr: usize, len: usize },
    /// The request's SystemBuffer, kernel memory (METHOD_BUFFERED).
    SystemBuffer(&'b mut [u8]),
}

/// A consuming cursor over an output range.
///
/// Everything a handler returns goes through a `UserWriter`, and the number
/// it reports as `IoStatus.Information` is [`written`](Self::written) (or
/// what [`finish`](Self::finish) returns): the bytes it really wrote, never
/// more. Output values must be [`IntoBytes`], types with no padding, so no
/// uninitialised kernel byte can be among them (the Bochspwn Reloaded class
/// of disclosures is ruled out at compile time).
#[derive(Debug)]
pub struct UserWriter<'b> {
    target: Target<'b>,
    written: usize,
}

impl UserWriter<'static> {
    /// A writer over `len` bytes at user address `addr`. Each write probes
    /// its own range, so a bad address fails the first write that needs it.
    #[must_use]
    pub const fn user(addr: usize, len: usize) -> Self {
        Self {
            target: Target::User { addr, len },
            written: 0,
        }
    }
}

impl<'b> UserWriter<'b> {
    /// A writer over the output part of a SystemBuffer: pass the buffer cut
    /// to the output length. Capture the input first (see
    /// [`CapturedBytes::from_system_buffer`](crate::CapturedBytes::from_system_buffer)).
    #[must_use]
    pub fn system_buffer(buffer: &'b mut [u8]) -> Self {
        Self {
            target: Target::SystemBuffer(buffer),
            written: 0,
        }
    }

    /// The size of the output range.
    #[must_use]
    pub fn capacity(&self) -> usize {
        match &self.target {
            Target::User { len, .. } => *len,
            Target::SystemBuffer(buffer) => buffer.len(),
        }
    }

    /// Bytes written so far: the request's `Information`.
    #[must_use]
    pub fn written(&self) -> usize {
        self.written
    }

    /// Bytes still free.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.capacity().saturating_sub(self.written)
    }

    /// Writes one value at the cursor. For a user range the address is
    /// probed with `align_of::<T>()`.
    ///
    /// # Errors
    /// `BufferTooSmall` if the value does not fit (nothing is written), and
    /// the probe's and copy's errors for a user range.
    pub fn write<T: IntoBytes + Immutable, S: AddressSpace + ?Sized>(
        &mut self,
        space: &S,
        value: &T,
    ) -> Result<(), CaptureError> {
        self.put(space, value.as_bytes(), align_of::<T>())
    }

    /// Writes raw bytes at the cursor.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn write_bytes<S: AddressSpace + ?Sized>(
        &mut self,
        space: &S,
        bytes: &[u8],
    ) -> Result<(), CaptureError> {
        self.put(space, bytes, 1)
    }

    /// Ends the output and returns the byte count for `Information`.
    #[must_use]
    pub fn finish(self) -> usize {
        self.written
    }

    fn put<S: AddressSpace + ?Sized>(
        &mut self,
        space: &S,
        bytes: &[u8],
        align: usize,
    ) -> Result<(), CaptureError> {
        if bytes.len() > self.remaining() {
            return Err(CaptureError::BufferTooSmall);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let end = self.written + bytes.len();
        match &mut self.target {
            Target::User { addr, .. } => {
                let at = addr
                    .checked_add(self.written)
                    .ok_or(CaptureError::AccessViolation)?;
                space.write(at, bytes, align)?;
            }
            Target::SystemBuffer(buffer) => buffer
                .get_mut(self.written..end)
                .ok_or(CaptureError::BufferTooSmall)?
                .copy_from_slice(bytes),
        }
        self.written = end;
        Ok(())
    }
}
