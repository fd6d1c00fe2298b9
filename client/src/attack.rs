//! `usercap attack`: the hostile-input and race suite.
//!
//! Every scenario runs on real memory: user pages with a no-access guard
//! page and a read-only page, and real racing threads. It checks the status
//! the device returns against the statuses the scenario accepts, and that
//! nothing was written to the output past `Information`. The same suite
//! runs on the simulated device and on usercap.sys, so a Linux laptop and a
//! Windows VM under Driver Verifier print the same table.
//!
//! A race row passes only if it shows its race happened: it counts the
//! calls during which the racing thread wrote, keeps calling until
//! `--iterations` calls were raced and every outcome the row allows was
//! seen, and otherwise ends INCONCLUSIVE, which fails the suite like a FAIL
//! (see `Race`). `client/tests/race_rows.rs` shows each row failing against
//! a device with that row's double fetch.

use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use usercap::NtStatus;
use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap_protocol::{
    BatchReply, BatchRequest, Config, ConfigV3, FILE_DEVICE_USERCAP, FILE_READ_ACCESS,
    GET_NAME_MAX_OUTPUT, IOCTL_BATCH, IOCTL_CONFIGURE, IOCTL_ECHO, IOCTL_GET_NAME, IOCTL_MESSAGE,
    IOCTL_SET_NAME, IOCTL_STATS, IOCTL_SUM, MAX_BATCH_BYTES, MAX_BATCH_SEGMENTS, MAX_ECHO_BYTES,
    MAX_LEVEL, MAX_NAME_BYTES, MAX_SUM_VALUES, Method, Segment, SetNameRequest, SumReply,
    SumRequest, WireUnicodeString, checksum, ctl_code,
};

use crate::ops::{Client, OpError};
use crate::transport::{Access, Call, KernelMemory, Outcome, Pages, Transport};

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds of each race scenario.
    pub iterations: u32,
    /// Threads in the concurrency scenario.
    pub threads: u32,
    /// Repeat the suite until this much time has passed.
    pub duration: Option<Duration>,
    /// Only scenarios whose name contains this.
    pub filter: Option<String>,
    /// JSON output.
    pub json: bool,
    /// The device runs under fault injection (Driver Verifier's Low
    /// Resources Simulation): see [`accepts`].
    pub fault_injection: bool,
    /// How long a race row may take to show its race ([`RACE_DEADLINE`]
    /// unless a test shortens it).
    pub race_deadline: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            iterations: 500,
            threads: 4,
            duration: None,
            filter: None,
            json: false,
            fault_injection: false,
            race_deadline: RACE_DEADLINE,
        }
    }
}

/// Whether a status scenario that accepts `accept` passes with `status`.
///
/// Under fault injection (`--fault-injection`) a valid request, one whose
/// scenario accepts `STATUS_SUCCESS`, may also fail with
/// `STATUS_INSUFFICIENT_RESOURCES`: an injected pool failure (a capture's
/// copy, the framework's MDL or mapping) is then the right answer. Invalid
/// requests keep their exact statuses, and without the option nothing is
/// relaxed.
#[must_use]
pub fn accepts(accept: &[NtStatus], status: NtStatus, fault_injection: bool) -> bool {
    accept.contains(&status)
        || (fault_injection
            && status == NtStatus::STATUS_INSUFFICIENT_RESOURCES
            && accept.contains(&NtStatus::STATUS_SUCCESS))
}

/// A kernel address: the start of system space on x64.
pub const KERNEL: usize = 0xFFFF_8000_0000_0000;
/// `MmUserProbeAddress` on x64.
const PROBE_LIMIT: usize = 0x7FFF_FFFF_0000;
const CANARY: u8 = 0xEE;

/// A scenario's lab: fresh user pages laid out as
/// `[0, 2) read-write | 2 guard | 3 read-only | [4, 8) output, read-write`.
pub struct Lab<'t> {
    transport: &'t dyn Transport,
    pages: Pages,
    page: usize,
}

const RW: usize = 0;
const GUARD: usize = 2;
const READ_ONLY: usize = 3;
const OUT: usize = 4;

impl<'t> Lab<'t> {
    fn new(transport: &'t dyn Transport) -> Result<Self, String> {
        let page = Pages::page_size();
        let pages = Pages::new(8 * page).map_err(|e| e.to_string())?;
        pages
            .protect(GUARD * page, page, Access::None)
            .map_err(|e| e.to_string())?;
        pages
            .protect(READ_ONLY * page, page, Access::Read)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            transport,
            pages,
            page,
        })
    }

    /// The address of `offset` bytes into page `page`.
    fn at(&self, page: usize, offset: usize) -> usize {
        self.pages.addr() + page * self.page + offset
    }

    /// Writes bytes into the read-write pages.
    fn put(&self, offset: usize, bytes: &[u8]) -> Result<usize, String> {
        self.pages
            .write(RW * self.page + offset, bytes)
            .map_err(|e| e.to_string())?;
        Ok(self.at(RW, offset))
    }

    fn out(&self) -> usize {
        self.at(OUT, 0)
    }

    /// Sends a call after filling the output pages with the canary, and
    /// checks nothing past `Information` changed there.
    fn call(&self, call: &Call) -> Result<(Outcome, Vec<u8>), String> {
        let out_len = 4 * self.page;
        self.pages
            .write(OUT * self.page, &vec![CANARY; out_len])
            .map_err(|e| e.to_string())?;
        let outcome = self.transport.call(call).map_err(|e| e.to_string())?;
        let out = self
            .pages
            .read(OUT * self.page, out_len)
            .map_err(|e| e.to_string())?;
        let info = outcome.information;
        if info > call.output_len {
            return Err(format!(
                "Information {info} exceeds the output length {}",
                call.output_len
            ));
        }
        if call.output == self.out() {
            if let Some(i) = out
                .get(info..)
                .and_then(|rest| rest.iter().position(|&b| b != CANARY))
            {
                return Err(format!(
                    "output byte {} past Information {info} was written",
                    info + i
                ));
            }
            if !outcome.status.is_success() && info != 0 {
                return Err(format!("a failed request reported Information {info}"));
            }
        }
        Ok((outcome, out))
    }

    fn call_status(&self, call: &Call) -> Result<NtStatus, String> {
        self.call(call).map(|(o, _)| o.status)
    }
}

type Build = fn(&Lab<'_>) -> Result<Call, String>;
type Custom = fn(&Lab<'_>, &Options) -> Result<String, String>;

enum Check {
    /// The call's status must be one of these.
    Status(Build, &'static [NtStatus]),
    /// A scenario with its own checks; `Ok` carries a detail line.
    Custom(Custom, &'static str),
}

/// One named scenario.
pub struct Scenario {
    /// Its name.
    pub name: &'static str,
    /// Its group.
    pub group: &'static str,
    check: Check,
}

impl Scenario {
    /// What it accepts, in words.
    #[must_use]
    pub fn expects(&self) -> String {
        match &self.check {
            Check::Status(_, accept) => accept
                .iter()
                .map(|s| s.name().unwrap_or("?").trim_start_matches("STATUS_"))
                .collect::<Vec<_>>()
                .join(" | "),
            Check::Custom(_, what) => (*what).to_owned(),
        }
    }
}

const AV: &[NtStatus] = &[NtStatus::STATUS_ACCESS_VIOLATION];
const OK: &[NtStatus] = &[NtStatus::STATUS_SUCCESS];
const INVALID: &[NtStatus] = &[NtStatus::STATUS_INVALID_PARAMETER];
const TOO_SMALL: &[NtStatus] = &[NtStatus::STATUS_BUFFER_TOO_SMALL];
const TOO_BIG: &[NtStatus] = &[NtStatus::STATUS_INVALID_BUFFER_SIZE];
const OVERFLOW: &[NtStatus] = &[NtStatus::STATUS_INTEGER_OVERFLOW];
const MISALIGNED: &[NtStatus] = &[NtStatus::STATUS_DATATYPE_MISALIGNMENT];
const UNKNOWN: &[NtStatus] = &[NtStatus::STATUS_INVALID_DEVICE_REQUEST];

fn echo(lab: &Lab<'_>, input: usize, input_len: usize) -> Call {
    Call {
        code: IOCTL_ECHO,
        input,
        input_len,
        output: lab.out(),
        output_len: input_len.max(8),
    }
}

/// A SUM request at RW offset 0 whose values (1, 2, 3, 4 and zeros after)
/// are at RW offset 0x100, unless `values` says otherwise.
fn sum(lab: &Lab<'_>, count: u64, values: Option<usize>) -> Result<Call, String> {
    let data = lab.put(0x100, [1u32, 2, 3, 4].as_bytes())?;
    let input = lab.put(
        0,
        SumRequest {
            count,
            values: values.unwrap_or(data) as u64,
        }
        .as_bytes(),
    )?;
    Ok(Call {
        code: IOCTL_SUM,
        input,
        input_len: 16,
        output: lab.out(),
        output_len: 16,
    })
}

fn set_name(
    lab: &Lab<'_>,
    length: u16,
    maximum_length: u16,
    buffer: Option<usize>,
) -> Result<Call, String> {
    let text = lab.put(
        0x200,
        &"A".repeat(0x180)
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>(),
    )?;
    let wire = WireUnicodeString {
        length,
        maximum_length,
        reserved: 0,
        buffer: buffer.unwrap_or(text) as u64,
    };
    let input = lab.put(0, SetNameRequest { name: wire }.as_bytes())?;
    Ok(Call {
        code: IOCTL_SET_NAME,
        input,
        input_len: 16,
        output: 0,
        output_len: 0,
    })
}

fn batch(lab: &Lab<'_>, segments: &[Segment], table: Option<usize>) -> Result<Call, String> {
    let at = lab.put(0x400, segments.as_bytes())?;
    let count = u32::try_from(segments.len()).map_err(|e| e.to_string())?;
    let input = lab.put(
        0,
        BatchRequest {
            count,
            reserved: 0,
            segments: table.unwrap_or(at) as u64,
        }
        .as_bytes(),
    )?;
    Ok(Call {
        code: IOCTL_BATCH,
        input,
        input_len: 16,
        output: lab.out(),
        output_len: 24,
    })
}

fn data_segment(lab: &Lab<'_>) -> Result<Segment, String> {
    Ok(Segment {
        addr: lab.put(0x300, b"segment!")? as u64,
        len: 8,
    })
}

fn message(lab: &Lab<'_>, count: u32, items: u32) -> Result<Call, String> {
    let mut bytes = 1u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend((0..items).flat_map(u32::to_le_bytes));
    let input = lab.put(0, &bytes)?;
    Ok(Call {
        code: IOCTL_MESSAGE,
        input,
        input_len: bytes.len(),
        output: lab.out(),
        output_len: 16,
    })
}

fn configure(lab: &Lab<'_>, bytes: &[u8], output_len: usize) -> Result<Call, String> {
    let input = lab.put(0, bytes)?;
    Ok(Call {
        code: IOCTL_CONFIGURE,
        input,
        input_len: bytes.len(),
        output: lab.out(),
        output_len,
    })
}

macro_rules! scenarios {
    ($($group:literal $name:literal => $check:expr;)*) => {
        /// Every scenario, in order.
        #[must_use]
        pub fn scenarios() -> Vec<Scenario> {
            vec![$(Scenario { name: $name, group: $group, check: $check }),*]
        }
    };
}

scenarios! {
    // ---------------------------------------------------------- bad pointers
    "pointer" "echo-null-input" => Check::Status(|l| Ok(echo(l, 0, 8)), AV);
    "pointer" "echo-below-64k-input" => Check::Status(|l| Ok(echo(l, 0xFFF0, 8)), AV);
    "pointer" "echo-kernel-input" => Check::Status(|l| Ok(echo(l, KERNEL, 8)), AV);
    "pointer" "echo-straddles-probe-limit" => Check::Status(|l| Ok(echo(l, PROBE_LIMIT - 4, 8)), AV);
    "pointer" "echo-wraps-past-top" => Check::Status(|l| Ok(echo(l, usize::MAX - 3, 16)), AV);
    "pointer" "echo-guard-page-input" => Check::Status(|l| Ok(echo(l, l.at(GUARD, 0), 8)), AV);
    "pointer" "echo-straddles-guard-page" => Check::Status(|l| Ok(echo(l, l.at(GUARD, 0) - 4, 8)), AV);
    "pointer" "echo-zero-length-bogus-pointer" => Check::Status(|l| Ok(echo(l, 0xDEAD_0000, 0)), OK);
    "pointer" "echo-read-only-output" => Check::Status(|l| {
        let input = l.put(0, b"12345678")?;
        Ok(Call { code: IOCTL_ECHO, input, input_len: 8, output: l.at(READ_ONLY, 0), output_len: 8 })
    }, AV);
    "pointer" "echo-kernel-output" => Check::Status(|l| {
        let input = l.put(0, b"12345678")?;
        Ok(Call { code: IOCTL_ECHO, input, input_len: 8, output: KERNEL, output_len: 8 })
    }, AV);
    "pointer" "echo-huge-length" => Check::Custom(echo_huge_length, "INVALID_BUFFER_SIZE | INSUFFICIENT_RESOURCES");
    "pointer" "sum-null-values" => Check::Status(|l| sum(l, 4, Some(0)), AV);
    "pointer" "sum-below-64k-values" => Check::Status(|l| sum(l, 4, Some(0x1000)), AV);
    "pointer" "sum-kernel-values" => Check::Status(|l| sum(l, 4, Some(KERNEL)), AV);
    "pointer" "sum-guard-page-values" => Check::Status(|l| sum(l, 4, Some(l.at(GUARD, 0))), AV);
    "pointer" "sum-values-run-into-guard-page" => Check::Status(|l| sum(l, 4, Some(l.at(GUARD, 0) - 8)), AV);
    "pointer" "sum-misaligned-values" => Check::Status(|l| sum(l, 4, Some(l.at(RW, 0x102))), MISALIGNED);
    "pointer" "sum-misaligned-header" => Check::Status(|l| {
        let input = l.put(0x14, SumRequest { count: 0, values: 0 }.as_bytes())?;
        Ok(Call { code: IOCTL_SUM, input, input_len: 16, output: l.out(), output_len: 16 })
    }, MISALIGNED);
    "pointer" "sum-kernel-header" => Check::Status(|l| Ok(Call { code: IOCTL_SUM, input: KERNEL, input_len: 16, output: l.out(), output_len: 16 }), AV);
    "pointer" "sum-zero-count-bogus-pointer" => Check::Status(|l| sum(l, 0, Some(0xDEAD)), OK);
    "pointer" "sum-huge-count" => Check::Status(|l| sum(l, MAX_SUM_VALUES + 1, None), TOO_BIG);
    "pointer" "sum-count-overflows" => Check::Status(|l| sum(l, 1 << 62, None), OVERFLOW);
    "pointer" "sum-read-only-output" => Check::Status(|l| Ok(Call { output: l.at(READ_ONLY, 0), ..sum(l, 4, None)? }), AV);
    "pointer" "sum-kernel-output" => Check::Status(|l| Ok(Call { output: KERNEL, ..sum(l, 4, None)? }), AV);
    "pointer" "set-name-kernel-buffer" => Check::Status(|l| set_name(l, 8, 8, Some(KERNEL)), AV);
    "pointer" "batch-kernel-table" => Check::Status(|l| batch(l, &[data_segment(l)?], Some(KERNEL)), AV);
    "pointer" "batch-kernel-segment" => Check::Status(|l| batch(l, &[data_segment(l)?, Segment { addr: KERNEL as u64, len: 8 }], None), AV);
    "pointer" "batch-guard-page-segment" => Check::Status(|l| batch(l, &[Segment { addr: l.at(GUARD, 0) as u64, len: 8 }], None), AV);
    "pointer" "echo-from-device-object" => Check::Custom(echo_from_device_object, "ACCESS_VIOLATION, the device's name not in the reply");
    "pointer" "echo-from-own-system-buffer" => Check::Custom(echo_from_own_system_buffer, "ACCESS_VIOLATION");
    "pointer" "sum-values-at-other-requests-pool-copy" => Check::Custom(sum_values_at_other_requests_pool_copy, "ACCESS_VIOLATION while the pool copy is live");
    // ---------------------------------------------------------- protocol abuse
    "protocol" "unknown-code" => Check::Status(|l| Ok(Call { code: 0x1234_5678, ..echo(l, l.at(RW, 0), 8) }), UNKNOWN);
    "protocol" "known-function-wrong-method" => Check::Status(|l| Ok(Call {
        code: ctl_code(FILE_DEVICE_USERCAP, 0x801, Method::Buffered, FILE_READ_ACCESS), ..echo(l, l.at(RW, 0), 8)
    }), UNKNOWN);
    "protocol" "sum-short-input" => Check::Status(|l| Ok(Call { input_len: 15, ..sum(l, 4, None)? }), INVALID);
    "protocol" "sum-short-output" => Check::Status(|l| Ok(Call { output_len: 15, ..sum(l, 4, None)? }), TOO_SMALL);
    "protocol" "message-count-beyond-bytes" => Check::Status(|l| message(l, 5, 4), INVALID);
    "protocol" "message-huge-count" => Check::Status(|l| message(l, u32::MAX, 4), INVALID);
    "protocol" "message-short-header" => Check::Status(|l| Ok(Call { input_len: 6, ..message(l, 0, 0)? }), INVALID);
    "protocol" "unicode-odd-length" => Check::Status(|l| set_name(l, 7, 8, None), INVALID);
    "protocol" "unicode-length-above-maximum" => Check::Status(|l| set_name(l, 10, 8, None), INVALID);
    "protocol" "unicode-length-over-cap" => Check::Status(|l| set_name(l, MAX_NAME_BYTES + 2, MAX_NAME_BYTES + 2, None), TOO_BIG);
    "protocol" "config-non-zero-tail" => Check::Status(|l| configure(l, ConfigV3 { level: 1, reserved_v3: 1, ..ConfigV3::default() }.as_bytes(), 16), &[NtStatus::STATUS_NOT_SUPPORTED]);
    "protocol" "config-shorter-than-v1" => Check::Status(|l| configure(l, &[0; 7], 16), INVALID);
    "protocol" "config-level-too-high" => Check::Status(|l| configure(l, Config { level: 99, ..Config::default() }.as_bytes(), 16), INVALID);
    "protocol" "config-short-output" => Check::Status(|l| configure(l, Config::default().as_bytes(), 8), TOO_SMALL);
    "protocol" "batch-over-budget" => Check::Status(|l| {
        let s = data_segment(l)?;
        batch(l, &[Segment { len: MAX_BATCH_BYTES, ..s }, s], None)
    }, TOO_BIG);
    "protocol" "batch-length-sum-overflows" => Check::Status(|l| {
        let s = data_segment(l)?;
        batch(l, &[Segment { len: u64::MAX, ..s }, s], None)
    }, OVERFLOW);
    "protocol" "batch-too-many-segments" => Check::Status(|l| batch(l, &vec![data_segment(l)?; MAX_BATCH_SEGMENTS as usize + 1], None), TOO_BIG);
    "protocol" "get-name-short-output" => Check::Status(|l| Ok(Call { code: IOCTL_GET_NAME, input: 0, input_len: 0, output: l.out(), output_len: 4 }), TOO_SMALL);
    "protocol" "stats-short-output" => Check::Status(|l| Ok(Call { code: IOCTL_STATS, input: 0, input_len: 0, output: l.out(), output_len: 79 }), TOO_SMALL);
    // ---------------------------------------------------------- races
    "race" "race-sum-count" => Check::Custom(race_sum_count, "raced; both: SUCCESS count 4 sum 10, INVALID_BUFFER_SIZE");
    "race" "race-sum-values-pointer" => Check::Custom(race_sum_pointer, "raced; all: SUCCESS sum 10, ACCESS_VIOLATION, MISALIGNMENT");
    "race" "race-unicode-length" => Check::Custom(race_unicode_length, "raced; both: SUCCESS 4-char name, INVALID_PARAMETER");
    "race" "race-config-tail" => Check::Custom(race_config_tail, "raced; both: SUCCESS sent config, NOT_SUPPORTED level kept");
    "race" "race-batch-segment-length" => Check::Custom(race_batch_length, "raced; both: SUCCESS 8-byte checksum, INVALID_BUFFER_SIZE");
    // ---------------------------------------------------------- leaks
    "leak" "leak-every-ioctl-every-output-length" => Check::Custom(leak_every_ioctl, "no byte past Information, Information <= reply");
    // ---------------------------------------------------------- concurrency
    "concurrency" "concurrent-ioctls-stats-agree" => Check::Custom(concurrency, "STATS deltas equal the requests made");
}

// ---------------------------------------------------------------- huge lengths

/// ECHO of one byte over the capture cap, from real readable memory: the
/// driver must refuse it by size (or, on Windows, the I/O manager may fail
/// to allocate the SystemBuffer first).
fn echo_huge_length(lab: &Lab<'_>, _: &Options) -> Result<String, String> {
    let pages = Pages::new(MAX_ECHO_BYTES + 1).map_err(|e| e.to_string())?;
    let call = Call {
        code: IOCTL_ECHO,
        input: pages.addr(),
        input_len: MAX_ECHO_BYTES + 1,
        output: lab.out(),
        output_len: 0,
    };
    match lab.call_status(&call)? {
        s @ (NtStatus::STATUS_INVALID_BUFFER_SIZE | NtStatus::STATUS_INSUFFICIENT_RESOURCES) => {
            Ok(s.name()
                .unwrap_or("?")
                .trim_start_matches("STATUS_")
                .to_owned())
        }
        other => Err(format!("got {other}")),
    }
}

// ---------------------------------------------------------------- races

/// How long a race row may take to prove its race before it is
/// inconclusive ([`Options::race_deadline`]). Generous: the machine may be
/// loaded, and a row normally proves itself in well under a second.
pub const RACE_DEADLINE: Duration = Duration::from_secs(60);

/// The prefix of a failure that is not a verdict on the device: the row
/// could not show that its race happened. The suite counts it as failed.
pub const INCONCLUSIVE: &str = "inconclusive: ";

/// A race row: a call sent over and over while another thread rewrites
/// user memory the call reads.
///
/// A row passes only when it has shown the race happened and every
/// outcome it allows happened too:
///
/// - the racing writer counts each write twice, before and after it, so a
///   call during which that count moved ran while a write was in progress
///   or between two writes that both touched its window: a *raced* call;
/// - the row keeps calling until `options.iterations` calls were raced and
///   each outcome in `outcomes` was seen at least once (a correct device
///   sees every snapshot the writer produces, so a row that only ever sees
///   one outcome tested nothing);
/// - after [`Options::race_deadline`] without that, it fails as
///   inconclusive;
/// - under `--fault-injection`, a call that fails with
///   `STATUS_INSUFFICIENT_RESOURCES` is counted apart ("out of resources"):
///   it is neither an outcome nor a raced call, and it is not judged. Every
///   race row's request is one the device may have to refuse for want of
///   pool (the capture's copy, the framework's MDL) whatever its contents.
struct Race<'a> {
    /// Each outcome the row allows, in words; `check` returns an index.
    outcomes: &'a [&'a str],
    /// The writes the racing thread repeats in order: `(RW offset, bytes)`.
    writes: &'a [(usize, &'a [u8])],
}

impl Race<'_> {
    /// Runs the row. `call` builds the `n`-th call (most rows send the same
    /// one); `check` judges its outcome and returns the index of the
    /// outcome seen, or why it is not one the row allows.
    fn run(
        &self,
        lab: &Lab<'_>,
        options: &Options,
        mut call: impl FnMut(&Lab<'_>, u64) -> Result<Call, String>,
        mut check: impl FnMut(&Lab<'_>, Outcome, &[u8]) -> Result<usize, String>,
    ) -> Result<String, String> {
        let stop = AtomicBool::new(false);
        let writes_done = AtomicU64::new(0);
        let pages = &lab.pages;
        let wanted = u64::from(options.iterations.max(1));
        let mut seen = vec![0u64; self.outcomes.len()];
        let (mut calls, mut raced, mut injected) = (0u64, 0u64, 0u64);
        let started = Instant::now();
        let result = std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for &(offset, bytes) in self.writes {
                        writes_done.fetch_add(1, Ordering::SeqCst);
                        let _ = pages.write(RW * lab.page + offset, bytes);
                        writes_done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            let result = loop {
                if raced >= wanted && calls >= wanted && seen.iter().all(|&n| n > 0) {
                    break Ok(());
                }
                if started.elapsed() > options.race_deadline {
                    break Err(None);
                }
                let this = match call(lab, calls) {
                    Ok(c) => c,
                    Err(e) => break Err(Some(e)),
                };
                let before = writes_done.load(Ordering::SeqCst);
                let sent = lab.call(&this);
                let after = writes_done.load(Ordering::SeqCst);
                calls += 1;
                if options.fault_injection
                    && matches!(&sent, Ok((o, _)) if o.status == NtStatus::STATUS_INSUFFICIENT_RESOURCES)
                {
                    injected += 1;
                    continue;
                }
                raced += u64::from(after != before);
                match sent.and_then(|(outcome, out)| check(lab, outcome, &out)) {
                    Ok(i) => match seen.get_mut(i) {
                        Some(n) => *n += 1,
                        None => break Err(Some(format!("outcome {i} is not one of the row's"))),
                    },
                    Err(e) => break Err(Some(e)),
                }
            };
            stop.store(true, Ordering::Relaxed);
            let _ = writer.join();
            result
        });
        let writes = writes_done.load(Ordering::SeqCst) / 2;
        let tally = self
            .outcomes
            .iter()
            .zip(&seen)
            .map(|(what, n)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ");
        let injected = if options.fault_injection {
            format!(", {injected} out of resources")
        } else {
            String::new()
        };
        let summary =
            format!("{raced} of {calls} calls raced ({tally}), {writes} writes{injected}");
        match result {
            Ok(()) => Ok(summary),
            Err(Some(failure)) => Err(format!("{failure} (after {summary})")),
            Err(None) => Err(format!(
                "{INCONCLUSIVE}the race was not shown within {:?}: needed {wanted} raced calls \
                 and every outcome, got {summary}",
                options.race_deadline
            )),
        }
    }
}

/// How many times a follow-up call is retried under fault injection.
const FOLLOW_UP_TRIES: u32 = 1000;

/// A call a race row makes to judge an outcome (GET_NAME, STATS). Under
/// `--fault-injection` it may run out of resources like any request; it is
/// then sent again, a bounded number of times. Without the option, or with
/// any other error, the first answer stands.
fn follow_up<T>(
    options: &Options,
    mut call: impl FnMut() -> Result<T, OpError>,
) -> Result<T, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        match call() {
            Err(OpError::Status(NtStatus::STATUS_INSUFFICIENT_RESOURCES))
                if options.fault_injection && tries < FOLLOW_UP_TRIES => {}
            result => return result.map_err(|e| e.to_string()),
        }
    }
}

/// SUM's count raced between 4 and one over the limit.
fn race_sum_count(lab: &Lab<'_>, options: &Options) -> Result<String, String> {
    let call = sum(lab, 4, None)?;
    let race = Race {
        outcomes: &["accepted with count 4", "refused"],
        writes: &[
            (0, &4u64.to_le_bytes()),
            (0, &(MAX_SUM_VALUES + 1).to_le_bytes()),
        ],
    };
    race.run(
        lab,
        options,
        |_, _| Ok(call),
        |_, o, out| match o.status {
            NtStatus::STATUS_SUCCESS => {
                let reply = SumReply::read_from_prefix(out)
                    .map_err(|_| "short reply".to_owned())?
                    .0;
                if reply == (SumReply { sum: 10, count: 4 }) {
                    Ok(0)
                } else {
                    Err(format!(
                        "inconsistent reply {reply:?}: not one snapshot of the request"
                    ))
                }
            }
            NtStatus::STATUS_INVALID_BUFFER_SIZE => Ok(1),
            other => Err(format!("unexpected {other}")),
        },
    )
}

/// SUM's values pointer raced between the values and two pointers the
/// probe refuses: a kernel address and a misaligned user address. The
/// misaligned one is readable, so a driver that probes one fetch of the
/// pointer and reads through another sums the wrong bytes, on every
/// transport; a kernel pointer it reads through is a leak on Windows.
fn race_sum_pointer(lab: &Lab<'_>, options: &Options) -> Result<String, String> {
    let call = sum(lab, 4, None)?;
    let good = lab.at(RW, 0x100) as u64;
    let (good, kernel, misaligned) = (
        good.to_le_bytes(),
        (KERNEL as u64).to_le_bytes(),
        (good + 2).to_le_bytes(),
    );
    let race = Race {
        outcomes: &[
            "accepted with sum 10",
            "refused the kernel pointer",
            "refused the misaligned pointer",
        ],
        writes: &[(8, &good), (8, &kernel), (8, &good), (8, &misaligned)],
    };
    race.run(
        lab,
        options,
        |_, _| Ok(call),
        |_, o, out| match o.status {
            NtStatus::STATUS_SUCCESS => {
                let reply = SumReply::read_from_prefix(out)
                    .map_err(|_| "short reply".to_owned())?
                    .0;
                if reply.sum == 10 {
                    Ok(0)
                } else {
                    Err(format!("sum {} from a raced pointer", reply.sum))
                }
            }
            NtStatus::STATUS_ACCESS_VIOLATION => Ok(1),
            NtStatus::STATUS_DATATYPE_MISALIGNMENT => Ok(2),
            other => Err(format!("unexpected {other}")),
        },
    )
}

/// SET_NAME's `UNICODE_STRING` lengths raced between a valid 4-character
/// name and a `Length` of 6 characters above its `MaximumLength`: a driver
/// that validates one fetch of `Length` and copies with another sets a
/// longer name.
fn race_unicode_length(lab: &Lab<'_>, options: &Options) -> Result<String, String> {
    let call = set_name(lab, 8, 8, None)?;
    let client = Client::new(lab.transport).map_err(|e| e.to_string())?;
    let race = Race {
        outcomes: &["accepted as the 4-char name", "refused"],
        writes: &[(0, &[8, 0, 8, 0]), (0, &[12, 0, 8, 0])],
    };
    race.run(
        lab,
        options,
        |_, _| Ok(call),
        |_, o, _| match o.status {
            NtStatus::STATUS_SUCCESS => {
                let name = follow_up(options, || client.get_name())?;
                if name == "AAAA" {
                    Ok(0)
                } else {
                    Err(format!("name {name:?} is no snapshot"))
                }
            }
            NtStatus::STATUS_INVALID_PARAMETER => Ok(1),
            other => Err(format!("unexpected {other}")),
        },
    )
}

/// CONFIGURE's version-3 tail raced between zero and non-zero, with a new
/// level in each call's head. The head and the tail are disjoint, so no
/// snapshot mixes them into a wrong reply; what a double fetch of the tail
/// can break is the refusal: a refused CONFIGURE must leave the level the
/// last accepted one set (STATS shows it).
fn race_config_tail(lab: &Lab<'_>, options: &Options) -> Result<String, String> {
    let client = Client::new(lab.transport).map_err(|e| e.to_string())?;
    let sent = |n: u64| ConfigV3 {
        flags: 1,
        level: u32::try_from(n % u64::from(MAX_LEVEL)).unwrap_or(0) + 1,
        quota: 77,
        reserved_v3: 0,
    };
    let call = configure(lab, sent(0).as_bytes(), 16)?;
    let mut level = follow_up(options, || client.stats())?.level;
    let head = Cell::new(sent(0));
    let race = Race {
        outcomes: &[
            "accepted with the sent config",
            "refused with the level unchanged",
        ],
        writes: &[(16, &[0; 8]), (16, &[0xFF; 8])],
    };
    race.run(
        lab,
        options,
        |lab, n| {
            // Only the head: the tail is the racing thread's.
            let next = sent(n);
            head.set(next);
            let bytes = next.as_bytes();
            lab.put(0, bytes.get(..16).unwrap_or(bytes))?;
            Ok(call)
        },
        |_, o, out| match o.status {
            NtStatus::STATUS_SUCCESS => {
                let applied = Config::read_from_prefix(out)
                    .map_err(|_| "short reply".to_owned())?
                    .0;
                let head = head.get();
                let expected = Config {
                    flags: head.flags,
                    level: head.level,
                    quota: head.quota,
                };
                if applied == expected {
                    level = applied.level;
                    Ok(0)
                } else {
                    Err(format!("applied {applied:?}, sent {expected:?}"))
                }
            }
            NtStatus::STATUS_NOT_SUPPORTED => {
                let now = follow_up(options, || client.stats())?.level;
                if now == level {
                    Ok(1)
                } else {
                    Err(format!(
                        "a refused CONFIGURE changed the level from {level} to {now}"
                    ))
                }
            }
            other => Err(format!("unexpected {other}")),
        },
    )
}

/// BATCH's segment length raced between 8 and one over the budget.
fn race_batch_length(lab: &Lab<'_>, options: &Options) -> Result<String, String> {
    let call = batch(lab, &[data_segment(lab)?], None)?;
    let expected = checksum([&b"segment!"[..]]);
    let race = Race {
        outcomes: &["accepted with the 8-byte checksum", "refused"],
        writes: &[
            (0x408, &8u64.to_le_bytes()),
            (0x408, &(MAX_BATCH_BYTES + 1).to_le_bytes()),
        ],
    };
    race.run(
        lab,
        options,
        |_, _| Ok(call),
        |_, o, out| match o.status {
            NtStatus::STATUS_SUCCESS => {
                let reply = BatchReply::read_from_prefix(out)
                    .map_err(|_| "short reply".to_owned())?
                    .0;
                if reply.total_bytes == 8 && reply.checksum == expected {
                    Ok(0)
                } else {
                    Err(format!("inconsistent reply {reply:?}"))
                }
            }
            NtStatus::STATUS_INVALID_BUFFER_SIZE => Ok(1),
            other => Err(format!("unexpected {other}")),
        },
    )
}

// ---------------------------------------------------------------- leaks

fn leak_every_ioctl(lab: &Lab<'_>, _: &Options) -> Result<String, String> {
    let echo_in = lab.put(0x800, b"0123456789")?;
    let calls = [
        (echo(lab, echo_in, 10), 10),
        (sum(lab, 4, None)?, 16),
        (message(lab, 2, 2)?, 16),
        (
            Call {
                code: IOCTL_GET_NAME,
                input: 0,
                input_len: 0,
                output: lab.out(),
                output_len: 0,
            },
            GET_NAME_MAX_OUTPUT,
        ),
        (configure(lab, Config::default().as_bytes(), 16)?, 16),
        (batch(lab, &[data_segment(lab)?], None)?, 24),
        (
            Call {
                code: IOCTL_STATS,
                input: 0,
                input_len: 0,
                output: lab.out(),
                output_len: 0,
            },
            80,
        ),
    ];
    let mut checked = 0;
    for (call, reply) in calls {
        for output_len in 0..=reply + 16 {
            // `Lab::call` checks every byte past Information and that
            // Information is within the output length.
            let (outcome, _) = lab.call(&Call { output_len, ..call })?;
            if outcome.information > reply {
                return Err(format!(
                    "{:#x} returned {} bytes, more than its reply",
                    call.code, outcome.information
                ));
            }
            checked += 1;
        }
    }
    Ok(format!("{checked} calls, no byte past Information"))
}

// ---------------------------------------------------------------- concurrency

fn concurrency(lab: &Lab<'_>, options: &Options) -> Result<String, String> {
    let client = Client::new(lab.transport).map_err(|e| e.to_string())?;
    let before = client.stats().map_err(|e| e.to_string())?;
    let rounds = u64::from(options.iterations.clamp(1, 500));
    let threads = u64::from(options.threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<(), String> {
                    let client = Client::new(lab.transport).map_err(|e| e.to_string())?;
                    for i in 0..rounds {
                        let bytes = [t.to_le_bytes()[0], i.to_le_bytes()[0]];
                        if client.echo(&bytes).map_err(|e| e.to_string())? != bytes {
                            return Err("echo mismatch".into());
                        }
                        let reply = client
                            .sum(&[u32::try_from(t).unwrap_or(0), 1])
                            .map_err(|e| e.to_string())?;
                        if reply.sum != t + 1 {
                            return Err("sum mismatch".into());
                        }
                        client.message(7, &[1]).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "worker panicked".to_owned())?)
    })?;
    let after = client.stats().map_err(|e| e.to_string())?;
    let expected = threads * rounds;
    let deltas = (
        after.echo - before.echo,
        after.sum - before.sum,
        after.message - before.message,
    );
    if deltas == (expected, expected, expected) {
        Ok(format!("{threads} threads x {rounds} rounds x 3 IOCTLs"))
    } else {
        Err(format!("STATS deltas {deltas:?}, expected {expected} each"))
    }
}

// ---------------------------------------------------------------- running

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Outcomes {
    /// Scenario name.
    pub name: &'static str,
    /// Pass or fail.
    pub passed: bool,
    /// Failed because the scenario could not show its race happened (a
    /// race row without enough raced calls or without every outcome); it
    /// counts as failed.
    pub inconclusive: bool,
    /// Not run: the transport cannot aim this scenario (the device's own
    /// kernel memory, whose address user mode never learns from
    /// usercap.sys). Neither passed nor failed; reported as SKIP and
    /// counted apart.
    pub not_run: bool,
    /// What was seen.
    pub detail: String,
}

/// How a scenario's detail starts when the transport could not run it.
const NOT_RUN: &str = "not run:";

fn run_one(transport: &dyn Transport, scenario: &Scenario, options: &Options) -> Outcomes {
    let result = Lab::new(transport).and_then(|lab| match &scenario.check {
        Check::Status(build, accept) => {
            let call = build(&lab)?;
            let status = lab.call_status(&call)?;
            let name = status
                .name()
                .unwrap_or("?")
                .trim_start_matches("STATUS_")
                .to_owned();
            if accepts(accept, status, options.fault_injection) {
                Ok(name)
            } else {
                Err(format!("got {status}"))
            }
        }
        Check::Custom(run, _) => run(&lab, options),
    });
    match result {
        Ok(detail) => Outcomes {
            name: scenario.name,
            passed: true,
            inconclusive: false,
            not_run: detail.starts_with(NOT_RUN),
            detail,
        },
        Err(detail) => Outcomes {
            name: scenario.name,
            passed: false,
            inconclusive: detail.starts_with(INCONCLUSIVE),
            not_run: false,
            detail,
        },
    }
}

/// Runs every selected scenario once.
#[must_use]
pub fn run_suite(transport: &dyn Transport, options: &Options) -> Vec<Outcomes> {
    scenarios()
        .iter()
        .filter(|s| {
            options
                .filter
                .as_ref()
                .is_none_or(|f| s.name.contains(f.as_str()))
        })
        .map(|s| run_one(transport, s, options))
        .collect()
}

/// `usercap attack --list`.
pub fn list(out: &mut dyn Write) -> u8 {
    for s in scenarios() {
        let _ = writeln!(out, "{:<12} {:<40} {}", s.group, s.name, s.expects());
    }
    0
}

/// `usercap attack`: runs the suite (repeatedly with `--duration`), prints
/// the table and `N passed, M failed`; returns 1 if anything failed.
pub fn run(transport: &dyn Transport, options: &Options, out: &mut dyn Write) -> u8 {
    let started = Instant::now();
    let mut passes = 0u64;
    let mut results = run_suite(transport, options);
    passes += 1;
    if let Some(duration) = options.duration {
        let bar = indicatif::ProgressBar::new(duration.as_secs().max(1));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "soak {elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        while started.elapsed() < duration {
            for (total, latest) in results.iter_mut().zip(run_suite(transport, options)) {
                if !latest.passed && total.passed {
                    *total = latest;
                }
            }
            passes += 1;
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!("{passes} passes"));
        }
        bar.finish_and_clear();
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let not_run = results.iter().filter(|r| r.not_run).count();
    let succeeded = results.len() - failed - not_run;
    if options.json {
        let rows: Vec<_> = results
            .iter()
            .map(|r| serde_json::json!({ "scenario": r.name, "passed": r.passed && !r.not_run, "inconclusive": r.inconclusive, "not_run": r.not_run, "detail": r.detail }))
            .collect();
        let summary = serde_json::json!({
            "transport": transport.name(), "passes": passes, "passed": succeeded, "failed": failed, "not_run": not_run,
            "results": rows,
        });
        let _ = writeln!(out, "{summary}");
    } else {
        let _ = writeln!(
            out,
            "usercap attack on the {} device ({passes} pass(es))",
            transport.name()
        );
        let expects: std::collections::HashMap<_, _> = scenarios()
            .into_iter()
            .map(|s| (s.name, s.expects()))
            .collect();
        for r in &results {
            let verdict = match (r.passed, r.inconclusive) {
                (true, _) if r.not_run => "SKIP",
                (true, _) => "PASS",
                (false, true) => "INCONCLUSIVE",
                (false, false) => "FAIL",
            };
            let expect = expects.get(r.name).map_or("", String::as_str);
            let _ = writeln!(
                out,
                "{verdict:<4}  {:<40} expects {:<45} got {}",
                r.name, expect, r.detail
            );
        }
    }
    if not_run > 0 && !options.json {
        let _ = writeln!(
            out,
            "{not_run} not run: the {} transport cannot aim them",
            transport.name()
        );
    }
    let _ = writeln!(out, "{succeeded} passed, {failed} failed");
    u8::from(failed > 0)
}

// ---------------------------------------------------------------- the device's own memory

/// The detail of a kernel-memory scenario on a transport that cannot say
/// where the device's memory is (usercap.sys: user mode learns no kernel
/// address of it). The generic kernel-address scenarios above cover it.
fn not_run(lab: &Lab<'_>, what: &str) -> String {
    format!(
        "not run: the {} transport knows no address of {what}",
        lab.transport.name()
    )
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A user-mode ECHO whose input pointer is the device object, after a
/// SET_NAME put a name in it: the driver's own state must not come back.
/// (Before the host model had a user range, this returned the name.)
fn echo_from_device_object(lab: &Lab<'_>, _: &Options) -> Result<String, String> {
    let Some(device) = lab.transport.kernel_memory(KernelMemory::Device) else {
        return Ok(not_run(lab, "the device object"));
    };
    let name = "attack-device-secret";
    Client::new(lab.transport)
        .and_then(|c| c.set_name(name))
        .map_err(|e| e.to_string())?;
    let len = device.len.clamp(1, 4 * lab.page);
    let (outcome, out) = lab.call(&echo(lab, device.addr, len))?;
    let reply = out.get(..outcome.information).unwrap_or(&[]);
    let secret = utf16(name);
    if reply.windows(secret.len()).any(|w| w == secret) {
        return Err(format!(
            "{} info {}: the device's name is in the reply",
            outcome.status, outcome.information
        ));
    }
    match outcome.status {
        NtStatus::STATUS_ACCESS_VIOLATION => Ok("ACCESS_VIOLATION".into()),
        other => Err(format!("got {other}")),
    }
}

/// An ECHO whose input pointer is the SystemBuffer the I/O manager gives
/// that very request. The address is predicted from the previous request
/// of the same size (the allocator hands the same block to same-sized
/// requests in a row); the scenario checks the prediction held.
fn echo_from_own_system_buffer(lab: &Lab<'_>, _: &Options) -> Result<String, String> {
    // An odd size, so that no other allocation of the client takes the
    // block between the two requests.
    let len = 0x1D8;
    let input = lab.put(0, &[0x42; 0x1D8])?;
    for _ in 0..8 {
        lab.call(&echo(lab, input, len))?;
        let Some(target) = lab.transport.kernel_memory(KernelMemory::LastSystemBuffer) else {
            return Ok(not_run(lab, "its SystemBuffers"));
        };
        let (outcome, _) = lab.call(&echo(lab, target.addr, len))?;
        let got = lab.transport.kernel_memory(KernelMemory::LastSystemBuffer);
        if got.map(|b| b.addr) != Some(target.addr) {
            continue; // the buffer landed elsewhere: not the scenario; again
        }
        return match outcome.status {
            NtStatus::STATUS_ACCESS_VIOLATION => Ok("ACCESS_VIOLATION".into()),
            other => Err(format!(
                "{other} info {} from its own SystemBuffer",
                outcome.information
            )),
        };
    }
    Err("could not aim at the request's own SystemBuffer in 8 tries".into())
}

/// One thread keeps a SUM of 64 Ki values running, whose values' pool copy
/// is alive while the device adds them up; another sends SUMs whose values
/// pointer is that live pool copy. Each such SUM must be refused. A SUM
/// counts as aimed at a live copy when the copy was the same one, still
/// live, before and after it; at least one must be.
fn sum_values_at_other_requests_pool_copy(
    lab: &Lab<'_>,
    options: &Options,
) -> Result<String, String> {
    if lab
        .transport
        .kernel_memory(KernelMemory::LivePoolCopy)
        .is_none()
        && lab.transport.kernel_memory(KernelMemory::Device).is_none()
    {
        return Ok(not_run(lab, "its pool copies"));
    }
    let values = 1_usize << 16;
    let big = Pages::new(values * 4 + lab.page).map_err(|e| e.to_string())?;
    big.write(0, &vec![1; values * 4])
        .map_err(|e| e.to_string())?;
    let header = big.len() - lab.page;
    big.write(
        header,
        SumRequest {
            count: values as u64,
            values: big.addr() as u64,
        }
        .as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let holder = Call {
        code: IOCTL_SUM,
        input: big.addr() + header,
        input_len: 16,
        output: big.addr() + header + 64,
        output_len: 16,
    };
    let stop = AtomicBool::new(false);
    let rounds = options.iterations.max(1) * 4;
    std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            let mut sums = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match lab.transport.call(&holder) {
                    Ok(o) if o.status.is_success() => sums += 1,
                    Ok(o) => return Err(format!("the holding SUM failed: {}", o.status)),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(sums)
        });
        let (mut aimed, mut tries) = (0u32, 0u32);
        let mut failure = None;
        while tries < rounds && failure.is_none() {
            let Some(before) = lab.transport.kernel_memory(KernelMemory::LivePoolCopy) else {
                std::thread::yield_now();
                continue;
            };
            tries += 1;
            let call = match sum(lab, 4, Some(before.addr)) {
                Ok(call) => call,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            match lab.call_status(&call) {
                Ok(NtStatus::STATUS_ACCESS_VIOLATION) => {}
                Ok(other) => {
                    failure = Some(format!("{other} from another request's pool copy"));
                }
                Err(e) => failure = Some(e),
            }
            if lab.transport.kernel_memory(KernelMemory::LivePoolCopy) == Some(before) {
                aimed += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let sums = running
            .join()
            .map_err(|_| "the holding thread panicked".to_owned())??;
        match failure {
            Some(e) => Err(e),
            None if aimed == 0 => Err(format!(
                "no SUM hit a live pool copy in {tries} tries ({sums} holding SUMs)"
            )),
            None => Ok(format!(
                "{aimed} of {tries} SUMs aimed at a live pool copy, all refused"
            )),
        }
    })
}
