//! Every race row of the attack suite can fail: against a device with one
//! deliberately double-fetching handler, the row for that handler's race
//! reports a failure (not a pass, not an inconclusive run).
//!
//! Each broken device below is the usercap device with one handler replaced
//! by the classic bug for that row's race: validate one fetch of a user
//! value, use another. `race-sum-count` is shown with `usercap_host::naive`
//! in `cli.rs`; the others use handlers written here. The bugs only bite
//! when the racing writer lands between the two fetches, so each test keeps
//! running its row (bounded) until it fails.
#![cfg(any(unix, all(windows, target_arch = "x86_64")))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use usercap::zerocopy::IntoBytes;
use usercap::{
    AddressSpace, DEFAULT_PROBE_LIMIT, NtStatus, UserSlice, UserWriter, check_user_range,
};
use usercap_client::attack::{INCONCLUSIVE, Options, run_suite};
use usercap_client::sim::PlatformSpace;
use usercap_client::sim::SimDevice;
use usercap_client::transport::{Call, Error, Outcome, Transport};
use usercap_device::io::{Driver, Irp};
use usercap_device::{Buffers, Completion, Request};
#[cfg(unix)]
use usercap_host::UserMemory;
use usercap_host::{IoManager, Ioctl};
use usercap_protocol::{
    BatchReply, BatchRequest, Checksum, IOCTL_BATCH, IOCTL_CONFIGURE, IOCTL_SET_NAME, IOCTL_SUM,
    MAX_BATCH_BYTES, MAX_NAME_BYTES, Segment, SetNameRequest, SumReply, SumRequest,
    WireUnicodeString,
};
#[cfg(windows)]
use usercap_seh::UserMemory;

/// How long each test may race before it gives up on catching the bug.
const DEADLINE: Duration = Duration::from_secs(120);

/// A broken handler for one IOCTL in front of the usercap device, reached
/// through the I/O manager model over real memory. The transport tells the
/// handler the caller's input address, which a METHOD_BUFFERED handler
/// could read as Windows' `Type3InputBuffer` (the bug of reading user
/// memory behind the I/O manager's back).
struct Broken<H> {
    device: SimDevice,
    handler: H,
    space: PlatformSpace,
    user_input: AtomicUsize,
}

/// One replaced handler: `Some(completion)` if it handled the request.
trait Handler: Send + Sync {
    fn handle<'r, S: AddressSpace + ?Sized>(
        &self,
        device: &SimDevice,
        space: &S,
        user_input: usize,
        request: Request<'r>,
    ) -> Result<Completion, Request<'r>>;
}

impl<H: Handler> Driver for Broken<H> {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        let input = self.user_input.load(Ordering::SeqCst);
        match self.handler.handle(&self.device, space, input, request) {
            Ok(completion) => irp.complete(completion),
            Err(request) => irp.complete(self.device.dispatch(space, request)),
        }
    }
}

impl<H: Handler> Transport for Broken<H> {
    fn name(&self) -> &'static str {
        "sim with a broken handler"
    }

    fn call(&self, call: &Call) -> Result<Outcome, Error> {
        self.user_input.store(call.input, Ordering::SeqCst);
        let ioctl = Ioctl {
            code: call.code,
            input: call.input,
            input_len: call.input_len,
            output: call.output,
            output_len: call.output_len,
        };
        IoManager::new(self)
            .device_io_control(&self.space, &ioctl)
            .map(|c| Outcome {
                status: c.status,
                information: c.information,
            })
            .map_err(|v| Error::Verifier(v.to_string()))
    }
}

fn broken<H>(handler: H) -> Broken<H> {
    Broken {
        device: SimDevice::new(),
        handler,
        space: PlatformSpace::new(),
        user_input: AtomicUsize::new(0),
    }
}

fn complete(result: Result<usize, NtStatus>) -> Completion {
    match result {
        Ok(information) => Completion {
            status: NtStatus::STATUS_SUCCESS,
            information,
        },
        Err(status) => Completion::failed(status),
    }
}

/// A direct read of user memory, the way the classic code dereferences.
fn fetch<const N: usize, S: AddressSpace + ?Sized>(
    space: &S,
    addr: usize,
) -> Result<[u8; N], NtStatus> {
    let mut bytes = [0u8; N];
    space
        .read(addr, &mut bytes, 1)
        .map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
    Ok(bytes)
}

/// Runs `row` against `transport` until it fails, and returns its detail.
fn until_the_row_fails(transport: &dyn Transport, row: &str) -> String {
    let options = Options {
        iterations: 2_000,
        filter: Some(row.into()),
        ..Options::default()
    };
    let started = Instant::now();
    loop {
        let results = run_suite(transport, &options);
        assert_eq!(results.len(), 1, "{row} names one row");
        let result = &results[0];
        if !result.passed {
            assert!(
                !result.inconclusive && !result.detail.starts_with(INCONCLUSIVE),
                "{row} was inconclusive, not failed: {}",
                result.detail
            );
            return result.detail.clone();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{row} never caught the broken handler: last run {}",
            result.detail
        );
    }
}

// ------------------------------------------------ race-sum-values-pointer

/// SUM that probes the values pointer of one fetch of the header and reads
/// the values through another fetch of it.
struct SumPointerTwice;

impl SumPointerTwice {
    fn sum<S: AddressSpace + ?Sized>(
        space: &S,
        input: UserSlice<u8>,
        mut output: UserWriter<'static>,
    ) -> Result<usize, NtStatus> {
        let base = input.addr();
        let header = input.into_ptr::<SumRequest>()?.capture(space)?;
        let count = usize::try_from(header.count).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
        if count > 16 {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        let probed =
            usize::try_from(header.values).map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        // ProbeForRead(in->Values, ...): fetch 1 of the pointer.
        check_user_range(probed, count * 4, 4, DEFAULT_PROBE_LIMIT)
            .map_err(usercap::CaptureError::to_ntstatus)?;
        // THE BUG: in->Values is read again to be used.
        let used = usize::try_from(u64::from_le_bytes(fetch::<8, _>(space, base + 8)?))
            .map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        let mut values = vec![0u8; count * 4];
        space
            .read(used, &mut values, 1)
            .map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        let sum = values
            .chunks_exact(4)
            .map(|v| u64::from(u32::from_le_bytes(v.try_into().unwrap())))
            .sum();
        output.write(
            space,
            &SumReply {
                sum,
                count: header.count,
            },
        )?;
        Ok(output.finish())
    }
}

impl Handler for SumPointerTwice {
    fn handle<'r, S: AddressSpace + ?Sized>(
        &self,
        _: &SimDevice,
        space: &S,
        _: usize,
        request: Request<'r>,
    ) -> Result<Completion, Request<'r>> {
        match request {
            Request {
                code: IOCTL_SUM,
                buffers: Buffers::Neither { input, output },
            } => Ok(complete(Self::sum(space, input, output))),
            other => Err(other),
        }
    }
}

#[test]
fn race_sum_values_pointer_fails_against_a_sum_that_fetches_its_pointer_twice() {
    let detail = until_the_row_fails(&broken(SumPointerTwice), "race-sum-values-pointer");
    assert!(detail.contains("from a raced pointer"), "{detail}");
}

// ---------------------------------------------------- race-unicode-length

/// SET_NAME that validates the `UNICODE_STRING` of one fetch and copies the
/// `Length` of another. It forwards the name it copied to the usercap
/// device as a fresh request in its own user memory, so GET_NAME shows it.
struct NameLengthTwice {
    scratch: UserMemory,
}

impl NameLengthTwice {
    fn set_name<S: AddressSpace + ?Sized>(
        &self,
        device: &SimDevice,
        space: &S,
        input: UserSlice<u8>,
    ) -> Result<usize, NtStatus> {
        let base = input.addr();
        let request = input.into_ptr::<SetNameRequest>()?.capture(space)?;
        let name = request.name;
        if name.length % 2 != 0 || name.length > name.maximum_length {
            return Err(NtStatus::STATUS_INVALID_PARAMETER);
        }
        if name.length > MAX_NAME_BYTES {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        // THE BUG: Length is read again to be used.
        let used = u16::from_le_bytes(fetch::<2, _>(space, base)?).min(MAX_NAME_BYTES) & !1;
        let forwarded = SetNameRequest {
            name: WireUnicodeString {
                length: used,
                maximum_length: MAX_NAME_BYTES,
                reserved: 0,
                buffer: name.buffer,
            },
        };
        self.scratch
            .write_at(0, forwarded.as_bytes())
            .map_err(|_| NtStatus::STATUS_INSUFFICIENT_RESOURCES)?;
        let input = UserSlice::new(self.scratch.addr(), size_of::<SetNameRequest>())?;
        let completion = device.dispatch(
            space,
            Request {
                code: IOCTL_SET_NAME,
                buffers: Buffers::Neither {
                    input,
                    output: UserWriter::user(0, 0),
                },
            },
        );
        if completion.status.is_success() {
            Ok(0)
        } else {
            Err(completion.status)
        }
    }
}

impl Handler for NameLengthTwice {
    fn handle<'r, S: AddressSpace + ?Sized>(
        &self,
        device: &SimDevice,
        space: &S,
        _: usize,
        request: Request<'r>,
    ) -> Result<Completion, Request<'r>> {
        match request {
            Request {
                code: IOCTL_SET_NAME,
                buffers: Buffers::Neither { input, .. },
            } => Ok(complete(self.set_name(device, space, input))),
            other => Err(other),
        }
    }
}

#[test]
fn race_unicode_length_fails_against_a_set_name_that_fetches_its_length_twice() {
    let handler = NameLengthTwice {
        scratch: UserMemory::new(4096).unwrap(),
    };
    let detail = until_the_row_fails(&broken(handler), "race-unicode-length");
    assert!(detail.contains("is no snapshot"), "{detail}");
}

// ------------------------------------------------------- race-config-tail

/// CONFIGURE that lets the usercap device apply the SystemBuffer's copy,
/// then checks the caller's tail again in user memory (through the input
/// address, as a METHOD_BUFFERED driver can through `Type3InputBuffer`)
/// and refuses a non-zero one: a refusal after the configuration changed.
struct ConfigTailTwice;

impl Handler for ConfigTailTwice {
    fn handle<'r, S: AddressSpace + ?Sized>(
        &self,
        device: &SimDevice,
        space: &S,
        user_input: usize,
        request: Request<'r>,
    ) -> Result<Completion, Request<'r>> {
        if request.code != IOCTL_CONFIGURE {
            return Err(request);
        }
        let input_len = match &request.buffers {
            Buffers::Buffered { input_len, .. } => *input_len,
            Buffers::Neither { .. } => 0,
        };
        let applied = device.dispatch(space, request);
        if !applied.status.is_success() || input_len <= 16 {
            return Ok(applied);
        }
        // THE BUG: the tail is fetched again, from user memory.
        Ok(match fetch::<8, _>(space, user_input + 16) {
            Ok(tail) if tail != [0; 8] => Completion::failed(NtStatus::STATUS_NOT_SUPPORTED),
            Ok(_) => applied,
            Err(status) => Completion::failed(status),
        })
    }
}

#[test]
fn race_config_tail_fails_against_a_configure_that_fetches_its_tail_twice() {
    let detail = until_the_row_fails(&broken(ConfigTailTwice), "race-config-tail");
    assert!(
        detail.contains("a refused CONFIGURE changed the level"),
        "{detail}"
    );
}

// ----------------------------------------------- race-batch-segment-length

/// BATCH that checks the budget on one fetch of the segment table and
/// reads each segment with a length fetched again.
struct BatchLengthTwice;

impl BatchLengthTwice {
    fn batch<S: AddressSpace + ?Sized>(
        space: &S,
        input: UserSlice<u8>,
        mut output: UserWriter<'static>,
    ) -> Result<usize, NtStatus> {
        let request = input.into_ptr::<BatchRequest>()?.capture(space)?;
        let table =
            usize::try_from(request.segments).map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        let count =
            usize::try_from(request.count).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
        let segments = UserSlice::<Segment>::new(table, count.min(64))?.capture(space)?;
        let total: u64 = segments.iter().map(|s| s.len).fold(0, u64::saturating_add);
        if total > MAX_BATCH_BYTES {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        let mut checksum = Checksum::new();
        let mut used_total = 0;
        for (i, segment) in segments.iter().enumerate() {
            // THE BUG: the segment's length is read again to be used.
            let len = u64::from_le_bytes(fetch::<8, _>(space, table + i * 16 + 8)?);
            let len = usize::try_from(len.min(2 * MAX_BATCH_BYTES))
                .map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
            let addr =
                usize::try_from(segment.addr).map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
            let mut bytes = vec![0u8; len];
            space
                .read(addr, &mut bytes, 1)
                .map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
            checksum = checksum.update(&bytes);
            used_total += len as u64;
        }
        output.write(
            space,
            &BatchReply {
                segments: request.count,
                reserved: 0,
                total_bytes: used_total,
                checksum: checksum.value(),
            },
        )?;
        Ok(output.finish())
    }
}

impl Handler for BatchLengthTwice {
    fn handle<'r, S: AddressSpace + ?Sized>(
        &self,
        _: &SimDevice,
        space: &S,
        _: usize,
        request: Request<'r>,
    ) -> Result<Completion, Request<'r>> {
        match request {
            Request {
                code: IOCTL_BATCH,
                buffers: Buffers::Neither { input, output },
            } => Ok(complete(Self::batch(space, input, output))),
            other => Err(other),
        }
    }
}

#[test]
fn race_batch_segment_length_fails_against_a_batch_that_fetches_its_lengths_twice() {
    let detail = until_the_row_fails(&broken(BatchLengthTwice), "race-batch-segment-length");
    // Reading a segment of the raced length runs into the lab's guard page.
    assert!(
        detail.contains("unexpected STATUS_ACCESS_VIOLATION"),
        "{detail}"
    );
}

// ---------------------------------------------------------- the proof

/// A SUM that refuses everything, whatever the racing writer wrote: the
/// race cannot show in its outcomes.
struct RefusesEverySum;

impl Handler for RefusesEverySum {
    fn handle<'r, S: AddressSpace + ?Sized>(
        &self,
        _: &SimDevice,
        _: &S,
        _: usize,
        request: Request<'r>,
    ) -> Result<Completion, Request<'r>> {
        if request.code == IOCTL_SUM {
            Ok(Completion::failed(NtStatus::STATUS_INVALID_BUFFER_SIZE))
        } else {
            Err(request)
        }
    }
}

#[test]
fn a_race_row_that_sees_one_outcome_is_inconclusive_not_a_pass() {
    let results = run_suite(
        &broken(RefusesEverySum),
        &Options {
            iterations: 50,
            filter: Some("race-sum-count".into()),
            race_deadline: Duration::from_secs(2),
            ..Options::default()
        },
    );
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert!(!r.passed && r.inconclusive, "{}", r.detail);
    assert!(r.detail.starts_with(INCONCLUSIVE), "{}", r.detail);
    assert!(r.detail.contains("0 accepted with count 4"), "{}", r.detail);
}

#[test]
fn each_passing_race_row_shows_its_raced_calls_and_every_outcome() {
    let transport = usercap_client::sim::SimTransport::new();
    let results = run_suite(
        &transport,
        &Options {
            iterations: 300,
            filter: Some("race-".into()),
            ..Options::default()
        },
    );
    assert_eq!(results.len(), 5);
    for r in &results {
        assert!(r.passed, "{}: {}", r.name, r.detail);
        // "N of M calls raced (a x, b y[, c z]), W writes", N >= 300, every
        // count non-zero.
        let raced: u64 = r.detail.split(' ').next().unwrap().parse().unwrap();
        assert!(raced >= 300, "{}: {}", r.name, r.detail);
        let tally = r
            .detail
            .split('(')
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        for part in tally.split(", ") {
            let n: u64 = part.split(' ').next().unwrap().parse().unwrap();
            assert!(n > 0, "{}: an outcome never seen: {}", r.name, r.detail);
        }
    }
}
