//! A model of the Windows I/O manager's `DeviceIoControl` path, with the
//! checks Driver Verifier makes, over any [`AddressSpace`].
//!
//! It is safe, portable code, so the same model runs on `SimSpace` (tests,
//! Miri, fuzzing) and on `usercap_host::HostSpace` (real memory, real
//! threads), which re-exports it as `usercap_host::IoManager`. It is behind
//! the `io-model` feature and never compiled into the driver.
//!
//! For METHOD_BUFFERED, as Windows does:
//! 1. allocate a SystemBuffer of max(in, out) bytes; the part past the input
//!    is filled with [`pool_poison`] bytes, standing in for stale pool;
//! 2. copy the input in under the probe; a bad input buffer fails the request
//!    with `STATUS_ACCESS_VIOLATION` before the driver sees it;
//! 3. dispatch;
//! 4. unless the status is an error, copy `Information` bytes back to the
//!    caller's output buffer.
//!
//! For METHOD_NEITHER the raw addresses go to the driver untouched.
//!
//! Then, as Verifier would, it reports a [`Violation`] if the request was
//! completed other than once, if `Information` exceeds the output length, or
//! if returned output holds stale pool.
//!
//! One difference from Windows: Windows probes a BUFFERED output buffer for
//! writing before dispatch (`ProbeForWrite`), so a read-only output fails
//! before the driver runs. This model finds it at copy-back, with the same
//! status, after the driver ran. A probe that reads the output first would
//! count as a fetch of user memory that the driver never made. Windows, too,
//! finds an output page that became unwritable after its probe only at
//! copy-back, after the driver ran: the driver's change then stands and the
//! request fails. The protocol's failure contract says so, and
//! [`contract`] checks it on any backend.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use usercap::{AddressSpace, NtStatus, UserSlice, UserWriter};
use usercap_protocol::Method;

use crate::{Buffers, Completion, Device, Request};

pub mod contract;

/// A run this long of [`pool_poison`] bytes in returned output is a leak. A
/// run rather than one byte, so that a reply which happens to hold one such
/// value is not flagged: a leak of stale pool is a run.
pub const POISON_RUN: usize = 4;

/// Requests the model has sent, for [`pool_poison`]'s per-request pattern.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The stale-pool byte at `offset` of the SystemBuffer of request number
/// `request`: what the model fills bytes past the input with. Such bytes
/// must never reach the caller.
///
/// The pattern changes with the offset and from request to request. A
/// constant would be matched by replies a caller chooses: a name of U+BDBD
/// U+BDBD returned by GET_NAME was flagged as stale pool with the constant
/// `0xBD` (found by the `dispatch` fuzz target). No caller can choose a reply
/// in advance that matches a run of this pattern.
#[must_use]
pub fn pool_poison(request: u64, offset: usize) -> u8 {
    poison_word(request, offset / 8).to_le_bytes()[offset % 8]
}

/// Eight stale-pool bytes at once: [`pool_poison`] for offsets `8 * index`
/// to `8 * index + 7`.
fn poison_word(request: u64, index: usize) -> u64 {
    // splitmix64 of the pair: every bit of both inputs moves every output bit.
    let mut x = request.rotate_left(32) ^ (index as u64);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The I/O request packet a driver completes.
#[derive(Debug, Default)]
pub struct Irp {
    completions: u32,
    completion: Option<Completion>,
}

impl Irp {
    /// Completes the request (`WdfRequestCompleteWithInformation`).
    pub fn complete(&mut self, completion: Completion) {
        self.completions = self.completions.saturating_add(1);
        self.completion = Some(completion);
    }
}

/// A driver the model can send requests to.
pub trait Driver {
    /// Handles a request and completes `irp`, exactly once.
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp);
}

impl<R: lock_api::RawMutex> Driver for Device<R> {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        irp.complete(self.dispatch(space, request));
    }
}

/// One `DeviceIoControl` call, as the user makes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ioctl {
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

/// What Driver Verifier would stop the machine for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The driver completed the request `times` times, not once.
    CompletedTimes {
        /// How many times.
        times: u32,
    },
    /// `Information` exceeds the output buffer's length.
    InformationTooLarge {
        /// The reported `Information`.
        information: usize,
        /// The output buffer's length.
        output_len: usize,
    },
    /// Returned output holds stale pool at this offset.
    PoisonReturned {
        /// The offset of the first poisoned byte of the run.
        offset: usize,
    },
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CompletedTimes { times } => write!(f, "request completed {times} times"),
            Self::InformationTooLarge {
                information,
                output_len,
            } => write!(
                f,
                "Information {information} exceeds the output length {output_len}"
            ),
            Self::PoisonReturned { offset } => {
                write!(
                    f,
                    "stale pool returned to the caller at output offset {offset}"
                )
            }
        }
    }
}

/// The I/O manager model over one driver.
#[derive(Debug)]
pub struct IoManager<'d, D> {
    driver: &'d D,
}

impl<'d, D: Driver> IoManager<'d, D> {
    /// A model that sends requests to `driver`.
    pub fn new(driver: &'d D) -> Self {
        Self { driver }
    }

    /// `DeviceIoControl` from the requester whose memory is `space`.
    ///
    /// # Errors
    /// A [`Violation`] if the driver broke a rule Verifier checks.
    pub fn device_io_control<S: AddressSpace + ?Sized>(
        &self,
        space: &S,
        call: &Ioctl,
    ) -> Result<Completion, Violation> {
        match Method::of(call.code) {
            Method::Neither => self.neither(space, call),
            // Direct methods buffer their input as BUFFERED does; usercap
            // defines none, so the driver sees them only as unknown codes.
            Method::Buffered | Method::InDirect | Method::OutDirect => self.buffered(space, call),
        }
    }

    fn neither<S: AddressSpace + ?Sized>(
        &self,
        space: &S,
        call: &Ioctl,
    ) -> Result<Completion, Violation> {
        let Ok(input) = UserSlice::<u8>::new(call.input, call.input_len) else {
            return Ok(Completion::failed(NtStatus::STATUS_INVALID_PARAMETER));
        };
        let request = Request {
            code: call.code,
            buffers: Buffers::Neither {
                input,
                output: UserWriter::user(call.output, call.output_len),
            },
        };
        let completion = self.run(space, request)?;
        check_information(&completion, call.output_len)?;
        Ok(completion)
    }

    fn buffered<S: AddressSpace + ?Sized>(
        &self,
        space: &S,
        call: &Ioctl,
    ) -> Result<Completion, Violation> {
        let size = call.input_len.max(call.output_len);
        let mut system_buffer = Vec::new();
        if system_buffer.try_reserve_exact(size).is_err() {
            return Ok(Completion::failed(NtStatus::STATUS_INSUFFICIENT_RESOURCES));
        }
        let sequence = REQUESTS.fetch_add(1, Ordering::Relaxed);
        system_buffer.resize(size, 0);
        for (index, chunk) in system_buffer.chunks_mut(8).enumerate() {
            let word = poison_word(sequence, index).to_le_bytes();
            chunk.copy_from_slice(word.get(..chunk.len()).unwrap_or(&[]));
        }
        if let Some(input) = system_buffer.get_mut(..call.input_len) {
            // The I/O manager's own probe and copy: ProbeForRead(in, len, 1).
            if space.read(call.input, input, 1).is_err() {
                return Ok(Completion::failed(NtStatus::STATUS_ACCESS_VIOLATION));
            }
        }
        let request = Request {
            code: call.code,
            buffers: Buffers::Buffered {
                system_buffer: &mut system_buffer,
                input_len: call.input_len,
                output_len: call.output_len,
            },
        };
        let completion = self.run(space, request)?;
        check_information(&completion, call.output_len)?;
        if is_error(completion.status) {
            return Ok(completion);
        }
        let returned = system_buffer.get(..completion.information).unwrap_or(&[]);
        if let Some(offset) = poison_run(returned, call.input_len, sequence) {
            return Err(Violation::PoisonReturned { offset });
        }
        if space.write(call.output, returned, 1).is_err() {
            return Ok(Completion::failed(NtStatus::STATUS_ACCESS_VIOLATION));
        }
        Ok(completion)
    }

    fn run<S: AddressSpace + ?Sized>(
        &self,
        space: &S,
        request: Request<'_>,
    ) -> Result<Completion, Violation> {
        let mut irp = Irp::default();
        self.driver.handle(space, request, &mut irp);
        match (irp.completions, irp.completion) {
            (1, Some(completion)) => Ok(completion),
            (times, _) => Err(Violation::CompletedTimes { times }),
        }
    }
}

/// `NT_ERROR`: severity bits `11`. Warnings (`STATUS_BUFFER_OVERFLOW`) still
/// copy their output back.
fn is_error(status: NtStatus) -> bool {
    status.as_u32() >> 30 == 3
}

fn check_information(completion: &Completion, output_len: usize) -> Result<(), Violation> {
    if completion.information > output_len {
        return Err(Violation::InformationTooLarge {
            information: completion.information,
            output_len,
        });
    }
    Ok(())
}

/// The first run of [`POISON_RUN`] stale-pool bytes in `returned` at or
/// after `from` (bytes before the input length held the caller's own input).
fn poison_run(returned: &[u8], from: usize, sequence: u64) -> Option<usize> {
    let mut run = 0;
    let mut word = (usize::MAX, [0u8; 8]);
    for (offset, &byte) in returned.iter().enumerate().skip(from) {
        let index = offset / 8;
        if word.0 != index {
            word = (index, poison_word(sequence, index).to_le_bytes());
        }
        run = if word.1.get(offset % 8) == Some(&byte) {
            run + 1
        } else {
            0
        };
        if run == POISON_RUN {
            return Some(offset + 1 - POISON_RUN);
        }
    }
    None
}
