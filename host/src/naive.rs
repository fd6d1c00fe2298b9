//! **ANTI-PATTERN. Do not copy this code.** SUM written the classic Windows
//! way, to show what usercap's `Captured` types prevent.
//!
//! This module exists only in the models (tests, `usercap demo`). It is
//! generic over [`AddressSpace`], so the same handler runs over `HostSpace`
//! on Linux and over `usercap-seh`'s `SehSpace` in the client's `sim`
//! transport on Windows (and under Wine): one anti-pattern on both
//! platforms, not two. It is never compiled into the driver, and no handler
//! in `usercap-device` looks like it.
//!
//! [`NaiveSum`] handles `IOCTL_SUM` (METHOD_NEITHER, [`SumRequest`] in,
//! [`SumReply`] out) the way countless drivers do:
//!
//! ```text
//! ProbeForRead(in, InputBufferLength, TYPE_ALIGNMENT(SUM_REQUEST));
//! if (in->Count > MAX_SUM_VALUES) return STATUS_INVALID_BUFFER_SIZE;   // fetch 1: validate
//! ProbeForRead(in->Values, in->Count * sizeof(ULONG), sizeof(ULONG));
//! for (i = 0; i < in->Count; i++) sum += in->Values[i];               // fetch 2: use
//! ```
//!
//! `in->Count` lives in user memory, and another user thread can change it
//! between the two fetches: the value validated is not the value used. Here
//! it is safe Rust: every fetch goes through [`AddressSpace::read`] (called
//! directly, bypassing `UserPtr`/`Captured`, which is the anti-pattern), so
//! nothing can crash. The damage is made observable instead:
//!
//! - [`SumReply::count`] is the count actually used;
//! - [`NaiveSum::overreads`] counts requests whose second fetch saw a larger
//!   count than the first one validated, i.e. requests that read more user
//!   values than were validated and probed. In a real driver each of those
//!   is an out-of-bounds read past the probed range, into kernel memory if
//!   the user aims it there.
//!
//! The handler also never reads more than [`SAFETY_CAP`] values. The cap
//! exists only so that the demo cannot make the host process read gigabytes;
//! it is not a fix (a real driver that had it would still over-read up to
//! it), and the overread counter is what the demo reports.
//!
//! The cure, in `usercap-device`: capture the header once (`UserPtr::capture`
//! into a `Captured<SumRequest>`), validate the count *on the copy*, and
//! capture the values with one `UserSlice` of the validated count.

use core::mem::size_of;
use core::sync::atomic::{AtomicU64, Ordering};

use usercap::{AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, Mode, NtStatus, check_user_range};
use usercap_device::io::{Driver, Irp};
use usercap_device::{Buffers, Completion, Request};
use usercap_protocol::{IOCTL_SUM, MAX_SUM_VALUES, SumReply, SumRequest};

/// The most values the naive handler reads in one request, whatever count
/// it fetched: 4 x [`MAX_SUM_VALUES`]. Only there to bound the demo's memory
/// traffic; see the module docs.
pub const SAFETY_CAP: u64 = MAX_SUM_VALUES * 4;

/// How many values the handler reads per `AddressSpace::read`.
const VALUES_PER_READ: usize = 256;

/// **ANTI-PATTERN.** A SUM handler that fetches the count twice (see the
/// module docs). It implements [`Driver`], so the
/// [`IoManager`](crate::IoManager) can send it requests; every other code is
/// `STATUS_INVALID_DEVICE_REQUEST`.
#[derive(Debug, Default)]
pub struct NaiveSum {
    requests: AtomicU64,
    overreads: AtomicU64,
    overread_values: AtomicU64,
}

impl NaiveSum {
    /// A handler with its counters at zero.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests that got as far as the second fetch of the count.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests whose used count was larger than the validated one: the
    /// double fetch, caught in the act.
    #[must_use]
    pub fn overreads(&self) -> u64 {
        self.overreads.load(Ordering::Relaxed)
    }

    /// How many values, over all requests, were used beyond the validated
    /// count (before the [`SAFETY_CAP`]).
    #[must_use]
    pub fn overread_values(&self) -> u64 {
        self.overread_values.load(Ordering::Relaxed)
    }

    fn sum<S: AddressSpace + ?Sized>(
        &self,
        space: &S,
        request: Request<'_>,
    ) -> Result<usize, NtStatus> {
        let Request { code, buffers } = request;
        let (IOCTL_SUM, Buffers::Neither { input, mut output }) = (code, buffers) else {
            return Err(NtStatus::STATUS_INVALID_DEVICE_REQUEST);
        };
        let base = input.addr();
        if input.len() < size_of::<SumRequest>() {
            return Err(NtStatus::STATUS_INVALID_PARAMETER);
        }
        // ProbeForRead(in, InputBufferLength, TYPE_ALIGNMENT(SUM_REQUEST)).
        probe(space, base, input.len(), align_of::<SumRequest>())?;

        // Fetch 1: read in->Count to validate it.
        let validated = fetch_u64(space, base)?;
        if validated > MAX_SUM_VALUES {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        let values = fetch_u64(space, base + 8)?;
        let values = usize::try_from(values).map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        // ProbeForRead(in->Values, in->Count * sizeof(ULONG), sizeof(ULONG)),
        // with the validated count.
        let probed =
            usize::try_from(validated * 4).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
        probe(space, values, probed, 4)?;

        // Fetch 2: THE BUG. in->Count is read again to be used.
        let used = fetch_u64(space, base)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if used > validated {
            self.overreads.fetch_add(1, Ordering::Relaxed);
            self.overread_values
                .fetch_add(used - validated, Ordering::Relaxed);
        }
        let count = used.min(SAFETY_CAP);
        let sum = sum_values(space, values, count)?;
        output
            .write(space, &SumReply { sum, count })
            .map_err(CaptureError::to_ntstatus)?;
        Ok(output.finish())
    }
}

impl Driver for NaiveSum {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        irp.complete(match self.sum(space, request) {
            Ok(information) => Completion {
                status: NtStatus::STATUS_SUCCESS,
                information,
            },
            Err(status) => Completion::failed(status),
        });
    }
}

/// `ProbeForRead`: the range check alone, in user mode.
fn probe<S: AddressSpace + ?Sized>(
    space: &S,
    addr: usize,
    len: usize,
    align: usize,
) -> Result<(), NtStatus> {
    if space.mode() == Mode::User {
        check_user_range(addr, len, align, DEFAULT_PROBE_LIMIT)
            .map_err(CaptureError::to_ntstatus)?;
    }
    Ok(())
}

/// A direct read of a user `u64`, as `in->Count` dereferences the pointer.
fn fetch_u64<S: AddressSpace + ?Sized>(space: &S, addr: usize) -> Result<u64, NtStatus> {
    let mut bytes = [0u8; 8];
    space
        .read(addr, &mut bytes, 1)
        .map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
    Ok(u64::from_le_bytes(bytes))
}

/// `for (i = 0; i < count; i++) sum += values[i];`, a chunk at a time. A
/// fault is what `__except` turns into `STATUS_ACCESS_VIOLATION`.
fn sum_values<S: AddressSpace + ?Sized>(
    space: &S,
    values: usize,
    count: u64,
) -> Result<u64, NtStatus> {
    let count = usize::try_from(count).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
    let mut chunk = [0u8; VALUES_PER_READ * 4];
    let mut sum = 0u64;
    let mut done = 0;
    while done < count {
        let n = (count - done).min(VALUES_PER_READ);
        let at = done
            .checked_mul(4)
            .and_then(|offset| values.checked_add(offset))
            .ok_or(NtStatus::STATUS_ACCESS_VIOLATION)?;
        let bytes = chunk
            .get_mut(..n * 4)
            .ok_or(NtStatus::STATUS_ACCESS_VIOLATION)?;
        space
            .read(at, bytes, 1)
            .map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        sum = bytes
            .chunks_exact(4)
            .map(|v| <[u8; 4]>::try_from(v).map_or(0, |v| u64::from(u32::from_le_bytes(v))))
            .fold(sum, u64::wrapping_add);
        done += n;
    }
    Ok(sum)
}
