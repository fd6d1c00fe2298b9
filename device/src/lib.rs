//! The usercap device: IOCTL handlers and device state, written once and run
//! everywhere (usercap.sys on Windows, the Linux host model, Miri, the
//! fuzzer).
//!
//! # Rules the handlers follow
//!
//! - A handler never sees a user address except as a `UserPtr`/`UserSlice`,
//!   and every user byte it acts on comes from a `Captured*` kernel copy.
//!   The crate has no `unsafe`, so it could not dereference a user address
//!   if it tried.
//! - Each request runs inside a [`Budgeted`] space, so all its captures
//!   together are bounded by [`Limits::max_request`](usercap::Limits).
//! - METHOD_BUFFERED handlers capture their input out of the SystemBuffer
//!   before they write any output there.
//! - Everything is validated before the device state changes, and the state
//!   changes in one step under the lock. A failed request changes nothing,
//!   counters included. No user memory is touched while the lock is held.
//! - Output goes through a `UserWriter`, and `Information` is what it wrote.
//!
//! # One lock, one snapshot
//!
//! The name, the configuration *and every counter* live under one lock.
//! A successful request ends with one [commit](Device::dispatch): it takes
//! the lock once, applies its change (SET_NAME's name, CONFIGURE's config),
//! counts itself and adds the bytes it captured, and releases the lock.
//! STATS and [`Device::state`] read everything under the same lock. So any
//! snapshot shows the state after some number of whole commits and before
//! the rest: the name it shows is the one its `set_name` count counts up
//! to, and `bytes_captured` is the sum over exactly the requests its
//! counters count. (Counters in atomics bumped after the lock was released
//! let a racing STATS see a name that its counters did not count yet, and
//! bytes that no counter counted: `tests/stats.rs` shows both torn
//! snapshots, and that they are gone.)
//!
//! The commit is the last step of a handler, after its reply is written:
//! SUM's and BATCH's replies go to user memory, so they are written before
//! the lock is taken, and a reply that faults fails the request uncounted.
//! GET_NAME and STATS write their replies into the SystemBuffer, kernel
//! memory, inside the commit, so the reply is the snapshot. The lock is
//! held for a copy of at most a name and a [`Stats`], never across a
//! capture.
//!
//! # Statuses
//!
//! | cause | NTSTATUS |
//! |---|---|
//! | unknown code, or buffers not of the code's method | `STATUS_INVALID_DEVICE_REQUEST` |
//! | input shorter than its struct; a count beyond its bytes; odd or inconsistent string lengths; an unknown flag or a level above the maximum; a versioned struct shorter than version 1; a SystemBuffer inconsistent with its lengths | `STATUS_INVALID_PARAMETER` |
//! | output shorter than the reply | `STATUS_BUFFER_TOO_SMALL` |
//! | a pointer (input, output, or embedded) outside user memory, or faulting | `STATUS_ACCESS_VIOLATION` |
//! | a pointer misaligned for its type | `STATUS_DATATYPE_MISALIGNMENT` |
//! | a count whose byte size, or a sum of lengths, overflows | `STATUS_INTEGER_OVERFLOW` |
//! | a count or length above a limit of `usercap_protocol`, or the request budget | `STATUS_INVALID_BUFFER_SIZE` |
//! | a newer struct version with non-zero fields this driver does not know | `STATUS_NOT_SUPPORTED` |
//! | pool allocation failed | `STATUS_INSUFFICIENT_RESOURCES` |
//!
//! GET_NAME's too-small output writes nothing; the size it needs is
//! `size_of::<NameReply>()` plus `Stats::name_bytes`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "io-model")]
extern crate alloc;

#[cfg(feature = "io-model")]
pub mod io;

use core::mem::size_of;

use lock_api::{Mutex, RawMutex};
use usercap::{
    AddressSpace, Budgeted, CapturedBytes, CapturedUnicode, NtStatus, UserSlice, UserWriter,
};
use usercap_protocol::{
    BatchReply, BatchRequest, CONFIG_FLAGS_KNOWN, Checksum, Config, IOCTL_BATCH, IOCTL_CONFIGURE,
    IOCTL_ECHO, IOCTL_GET_NAME, IOCTL_MESSAGE, IOCTL_SET_NAME, IOCTL_STATS, IOCTL_SUM,
    MAX_BATCH_BYTES, MAX_BATCH_SEGMENTS, MAX_LEVEL, MAX_MESSAGE_ITEMS, MAX_NAME_BYTES,
    MAX_SUM_VALUES, Message, MessageReply, Method, NameReply, Segment, SetNameRequest, Stats,
    SumReply, SumRequest,
};
use zerocopy::IntoBytes;

/// The most UTF-16 units a name holds.
pub const MAX_NAME_CHARS: usize = MAX_NAME_BYTES as usize / 2;

/// How a request ended: what the shell completes the IRP with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The request's final status.
    pub status: NtStatus,
    /// `IoStatus.Information`: bytes written to the output, 0 on failure.
    pub information: usize,
}

impl Completion {
    /// A failure: nothing written.
    #[must_use]
    pub const fn failed(status: NtStatus) -> Self {
        Self {
            status,
            information: 0,
        }
    }
}

/// The buffers of a request, in the shape the I/O manager gives them.
#[derive(Debug)]
pub enum Buffers<'a> {
    /// METHOD_BUFFERED: one SystemBuffer of max(in, out) bytes holding the
    /// input at its start; the output is written over it.
    Buffered {
        /// The SystemBuffer (kernel memory).
        system_buffer: &'a mut [u8],
        /// `InputBufferLength`.
        input_len: usize,
        /// `OutputBufferLength`.
        output_len: usize,
    },
    /// METHOD_NEITHER: the caller's raw addresses.
    Neither {
        /// `Type3InputBuffer`, `InputBufferLength`.
        input: UserSlice<u8>,
        /// `UserBuffer`, `OutputBufferLength`.
        output: UserWriter<'static>,
    },
}

/// One DEVICE_CONTROL request.
#[derive(Debug)]
pub struct Request<'a> {
    /// `IoControlCode`.
    pub code: u32,
    /// The buffers, as the method defines them.
    pub buffers: Buffers<'a>,
}

/// The device's mutable state, as [`Device::state`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceState {
    name: [u16; MAX_NAME_CHARS],
    name_len: usize,
    /// The applied configuration.
    pub config: Config,
    /// The counters.
    pub stats: Stats,
}

impl DeviceState {
    /// The current name, UTF-16.
    #[must_use]
    pub fn name(&self) -> &[u16] {
        self.name.get(..self.name_len).unwrap_or(&[])
    }
}

/// Everything the device remembers, all under one lock (see the crate docs:
/// one lock, one snapshot).
#[derive(Clone, Copy)]
struct Locked {
    name: [u16; MAX_NAME_CHARS],
    name_len: usize,
    config: Config,
    counters: Counters,
}

/// Success counters, one per IOCTL, and the bytes captured by successful
/// requests. Plain integers: they change only under the device lock, in
/// the same commit as the state they count.
#[derive(Clone, Copy, Default)]
struct Counters {
    echo: u64,
    sum: u64,
    message: u64,
    set_name: u64,
    get_name: u64,
    configure: u64,
    batch: u64,
    stats: u64,
    bytes_captured: u64,
}

/// Which counter a successful request bumps.
#[derive(Clone, Copy)]
enum Counted {
    Echo,
    Sum,
    Message,
    SetName,
    GetName,
    Configure,
    Batch,
    Stats,
}

impl Counters {
    fn counter(&mut self, which: Counted) -> &mut u64 {
        match which {
            Counted::Echo => &mut self.echo,
            Counted::Sum => &mut self.sum,
            Counted::Message => &mut self.message,
            Counted::SetName => &mut self.set_name,
            Counted::GetName => &mut self.get_name,
            Counted::Configure => &mut self.configure,
            Counted::Batch => &mut self.batch,
            Counted::Stats => &mut self.stats,
        }
    }

    /// Counts one successful request of kind `which` that captured
    /// `captured` bytes. Wrapping, like the atomics it replaced: a counter
    /// that wraps after 2^64 requests is not an error worth a panic path.
    fn count(&mut self, which: Counted, captured: usize) {
        let counter = self.counter(which);
        *counter = counter.wrapping_add(1);
        self.bytes_captured = self.bytes_captured.wrapping_add(captured as u64);
    }
}

impl Locked {
    /// STATS's view of this state.
    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            echo: c.echo,
            sum: c.sum,
            message: c.message,
            set_name: c.set_name,
            get_name: c.get_name,
            configure: c.configure,
            batch: c.batch,
            stats: c.stats,
            bytes_captured: c.bytes_captured,
            name_bytes: u32::try_from(self.name_len * 2).unwrap_or(u32::MAX),
            level: self.config.level,
        }
    }
}

/// The usercap device, generic over the raw lock its shell provides: a
/// `WDFWAITLOCK` in the driver (PASSIVE_LEVEL, movable handle), a std-backed
/// mutex on the host, a spin lock in tests.
pub struct Device<R: RawMutex> {
    locked: Mutex<R, Locked>,
}

impl<R: RawMutex> Default for Device<R> {
    fn default() -> Self {
        Self::with_raw_lock(R::INIT)
    }
}

impl<R: RawMutex> core::fmt::Debug for Device<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Device").finish_non_exhaustive()
    }
}

/// The result of a handler: `Information` on success.
type Handled = Result<usize, NtStatus>;

impl<R: RawMutex> Device<R> {
    /// A device in its initial state whose lock is `R::INIT`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A device in its initial state with a lock the shell made (for locks
    /// that need a runtime handle, like a `WDFWAITLOCK`).
    pub fn with_raw_lock(raw: R) -> Self {
        Self {
            locked: Mutex::from_raw(
                raw,
                Locked {
                    name: [0; MAX_NAME_CHARS],
                    name_len: 0,
                    config: Config::default(),
                    counters: Counters::default(),
                },
            ),
        }
    }

    /// A consistent copy of the device state: the name, the configuration
    /// and the counters as one snapshot, taken under the lock every
    /// request's commit takes (see the crate docs). For tests that check a
    /// failed request changed nothing, and for STATS's contract.
    pub fn state(&self) -> DeviceState {
        let locked = *self.locked.lock();
        DeviceState {
            name: locked.name,
            name_len: locked.name_len,
            config: locked.config,
            stats: locked.stats(),
        }
    }

    /// A successful request's last step: under the lock, `apply` makes the
    /// request's change to the state (it must change nothing when it
    /// fails), and then the request is counted with the bytes its captures
    /// charged to `space`. One lock, so a snapshot sees all of it or none.
    fn commit<S: AddressSpace + ?Sized, T>(
        &self,
        space: &Budgeted<'_, S>,
        counted: Counted,
        apply: impl FnOnce(&mut Locked) -> Result<T, NtStatus>,
    ) -> Result<T, NtStatus> {
        let mut locked = self.locked.lock();
        let value = apply(&mut locked)?;
        locked.counters.count(counted, space.used());
        Ok(value)
    }

    /// Handles one DEVICE_CONTROL request from `space`, the requester's
    /// address space, and says how to complete it.
    pub fn dispatch<S: AddressSpace + ?Sized>(
        &self,
        space: &S,
        request: Request<'_>,
    ) -> Completion {
        let request_space = Budgeted::new(space);
        let space = &request_space;
        let Request { code, buffers } = request;
        let method_matches = matches!(
            (Method::of(code), &buffers),
            (Method::Buffered, Buffers::Buffered { .. })
                | (Method::Neither, Buffers::Neither { .. })
        );
        let handled = if method_matches {
            match (code, buffers) {
                (
                    IOCTL_ECHO,
                    Buffers::Buffered {
                        system_buffer,
                        input_len,
                        output_len,
                    },
                ) => self.echo(space, system_buffer, input_len, output_len),
                (IOCTL_SUM, Buffers::Neither { input, output }) => self.sum(space, input, output),
                (
                    IOCTL_MESSAGE,
                    Buffers::Buffered {
                        system_buffer,
                        input_len,
                        output_len,
                    },
                ) => self.message(space, system_buffer, input_len, output_len),
                (IOCTL_SET_NAME, Buffers::Neither { input, .. }) => self.set_name(space, input),
                (
                    IOCTL_GET_NAME,
                    Buffers::Buffered {
                        system_buffer,
                        output_len,
                        ..
                    },
                ) => self.get_name(space, system_buffer, output_len),
                (
                    IOCTL_CONFIGURE,
                    Buffers::Buffered {
                        system_buffer,
                        input_len,
                        output_len,
                    },
                ) => self.configure(space, system_buffer, input_len, output_len),
                (IOCTL_BATCH, Buffers::Neither { input, output }) => {
                    self.batch(space, input, output)
                }
                (
                    IOCTL_STATS,
                    Buffers::Buffered {
                        system_buffer,
                        output_len,
                        ..
                    },
                ) => self.stats_request(space, system_buffer, output_len),
                _ => Err(NtStatus::STATUS_INVALID_DEVICE_REQUEST),
            }
        } else {
            Err(NtStatus::STATUS_INVALID_DEVICE_REQUEST)
        };
        match handled {
            Ok(information) => Completion {
                status: NtStatus::STATUS_SUCCESS,
                information,
            },
            Err(status) => Completion::failed(status),
        }
    }

    // ------------------------------------------------------------ handlers

    fn echo<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        system_buffer: &mut [u8],
        input_len: usize,
        output_len: usize,
    ) -> Handled {
        let input = capture_system_input(space, system_buffer, input_len)?;
        let mut output = system_output(system_buffer, output_len)?;
        output.write_bytes(space, &input)?;
        self.commit(space, Counted::Echo, |_| Ok(()))?;
        Ok(output.finish())
    }

    fn sum<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        input: UserSlice<u8>,
        mut output: UserWriter<'static>,
    ) -> Handled {
        let header = input.into_ptr::<SumRequest>()?.capture(space)?;
        // Everything below uses the kernel copy: `header.count` cannot change.
        let count = usize::try_from(header.count).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
        let values_addr = user_address(header.values)?;
        let values = UserSlice::<u32>::new(values_addr, count)?;
        if header.count > MAX_SUM_VALUES {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        require_output::<SumReply>(&output)?;
        let values = values.capture(space)?;
        let sum = values.iter().map(|&v| u64::from(v)).sum();
        output.write(
            space,
            &SumReply {
                sum,
                count: header.count,
            },
        )?;
        self.commit(space, Counted::Sum, |_| Ok(()))?;
        Ok(output.finish())
    }

    fn message<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        system_buffer: &mut [u8],
        input_len: usize,
        output_len: usize,
    ) -> Handled {
        let input = capture_system_input(space, system_buffer, input_len)?;
        let message = input.parse::<Message>()?;
        if message.count > MAX_MESSAGE_ITEMS {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        let reply = MessageReply {
            kind: message.kind,
            count: message.count,
            sum: message.items.iter().map(|&v| u64::from(v)).sum(),
        };
        let mut output = system_output(system_buffer, output_len)?;
        output.write(space, &reply)?;
        self.commit(space, Counted::Message, |_| Ok(()))?;
        Ok(output.finish())
    }

    fn set_name<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        input: UserSlice<u8>,
    ) -> Handled {
        let request = input.into_ptr::<SetNameRequest>()?.capture(space)?;
        let name = CapturedUnicode::capture(&request.name, space, usize::from(MAX_NAME_BYTES))?;
        let mut chars = [0u16; MAX_NAME_CHARS];
        chars
            .get_mut(..name.len())
            .ok_or(NtStatus::STATUS_INVALID_BUFFER_SIZE)?
            .copy_from_slice(&name);
        self.commit(space, Counted::SetName, |locked| {
            locked.name = chars;
            locked.name_len = name.len();
            Ok(())
        })?;
        Ok(0)
    }

    fn get_name<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        system_buffer: &mut [u8],
        output_len: usize,
    ) -> Handled {
        let mut output = system_output(system_buffer, output_len)?;
        // The reply goes into the SystemBuffer (kernel memory) inside the
        // commit: the name returned is the one the counters count up to.
        self.commit(space, Counted::GetName, |locked| {
            let chars = locked
                .name
                .get(..locked.name_len)
                .ok_or(NtStatus::STATUS_INVALID_PARAMETER)?;
            let bytes = chars.as_bytes();
            // Check the whole reply fits before writing any of it.
            if output.remaining() < size_of::<NameReply>() + bytes.len() {
                return Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
            }
            let header = NameReply {
                length: u32::try_from(bytes.len())
                    .map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?,
                reserved: 0,
            };
            output.write(space, &header)?;
            output.write_bytes(space, bytes)?;
            Ok(())
        })?;
        Ok(output.finish())
    }

    fn configure<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        system_buffer: &mut [u8],
        input_len: usize,
        output_len: usize,
    ) -> Handled {
        let input = capture_system_input(space, system_buffer, input_len)?;
        // The input length is the caller's struct size (copy_struct_from_user).
        let config = input.read_sized::<Config>()?.into_inner();
        if config.flags & !CONFIG_FLAGS_KNOWN != 0 || config.level > MAX_LEVEL {
            return Err(NtStatus::STATUS_INVALID_PARAMETER);
        }
        let mut output = system_output(system_buffer, output_len)?;
        // The reply is optional, but a buffer too small for it is an error,
        // found before the configuration is applied.
        if output_len != 0 {
            require_output::<Config>(&output)?;
            output.write(space, &config)?;
        }
        self.commit(space, Counted::Configure, |locked| {
            locked.config = config;
            Ok(())
        })?;
        Ok(output.finish())
    }

    fn batch<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        input: UserSlice<u8>,
        mut output: UserWriter<'static>,
    ) -> Handled {
        let request = input.into_ptr::<BatchRequest>()?.capture(space)?;
        if request.count > MAX_BATCH_SEGMENTS {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        let table_addr = user_address(request.segments)?;
        let count =
            usize::try_from(request.count).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
        // Level one: the table, captured once.
        let table = UserSlice::<Segment>::new(table_addr, count)?.capture(space)?;
        // The budget is checked on the captured lengths, before any data.
        let mut total: u64 = 0;
        for segment in table.iter() {
            total = total
                .checked_add(segment.len)
                .ok_or(NtStatus::STATUS_INTEGER_OVERFLOW)?;
        }
        if total > MAX_BATCH_BYTES {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        require_output::<BatchReply>(&output)?;
        // Level two: each segment's bytes, captured once.
        let mut checksum = Checksum::new();
        for segment in table.iter() {
            let len =
                usize::try_from(segment.len).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
            let bytes = UserSlice::<u8>::new(user_address(segment.addr)?, len)?.capture(space)?;
            checksum = checksum.update(&bytes);
        }
        output.write(
            space,
            &BatchReply {
                segments: request.count,
                reserved: 0,
                total_bytes: total,
                checksum: checksum.value(),
            },
        )?;
        self.commit(space, Counted::Batch, |_| Ok(()))?;
        Ok(output.finish())
    }

    fn stats_request<S: AddressSpace + ?Sized>(
        &self,
        space: &Budgeted<'_, S>,
        system_buffer: &mut [u8],
        output_len: usize,
    ) -> Handled {
        let mut output = system_output(system_buffer, output_len)?;
        require_output::<Stats>(&output)?;
        // The snapshot counts this STATS ("this one included") and is
        // written into the SystemBuffer inside the commit, so the reply is
        // exactly the state the commit leaves. STATS captures nothing, so
        // its bytes_captured is already final.
        self.commit(space, Counted::Stats, |locked| {
            let mut stats = locked.stats();
            stats.stats = stats.stats.wrapping_add(1);
            output.write(space, &stats)?;
            Ok(())
        })?;
        Ok(output.finish())
    }
}

// ---------------------------------------------------------------- helpers

/// Captures `input_len` bytes of METHOD_BUFFERED input out of the
/// SystemBuffer, charged to the request's budget.
fn capture_system_input<S: AddressSpace + ?Sized>(
    space: &S,
    system_buffer: &[u8],
    input_len: usize,
) -> Result<CapturedBytes, NtStatus> {
    let input = system_buffer
        .get(..input_len)
        .ok_or(NtStatus::STATUS_INVALID_PARAMETER)?;
    Ok(CapturedBytes::from_system_buffer(input, space)?)
}

/// A writer over the output part of a SystemBuffer.
fn system_output(system_buffer: &mut [u8], output_len: usize) -> Result<UserWriter<'_>, NtStatus> {
    let output = system_buffer
        .get_mut(..output_len)
        .ok_or(NtStatus::STATUS_INVALID_PARAMETER)?;
    Ok(UserWriter::system_buffer(output))
}

/// `STATUS_BUFFER_TOO_SMALL` unless a whole `T` fits.
fn require_output<T>(output: &UserWriter<'_>) -> Result<(), NtStatus> {
    if output.remaining() < size_of::<T>() {
        Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
    } else {
        Ok(())
    }
}

/// A wire pointer as an address; one that does not fit is not user memory.
fn user_address(wire: u64) -> Result<usize, NtStatus> {
    usize::try_from(wire).map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)
}
