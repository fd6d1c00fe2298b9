//! The whole request path: an arbitrary simulated address space and a short
//! sequence of arbitrary `DeviceIoControl` calls, through the I/O manager
//! model, into a fresh `Device`.
//!
//! Invariants checked on every call (docs/fuzzing.md):
//! 1. no panic anywhere (implicit), and no Verifier `Violation` from the
//!    I/O manager model: completed exactly once, `Information` within the
//!    output length, no stale pool returned;
//! 2. every user byte fetched at most once, unless the request itself names
//!    the byte in several of its ranges (a user may alias SUM's values with
//!    its header, or two BATCH segments): then at most once per naming;
//! 3. `Information <= OutputBufferLength`;
//! 4. an error status has `Information == 0` and leaves the device state
//!    exactly as it was; the one exception is the model's documented
//!    deviation, a BUFFERED request that succeeded in the driver and then
//!    failed to copy back to an unwritable output (`STATUS_ACCESS_VIOLATION`);
//! 5. nothing outside the output buffer is written, and on success nothing
//!    past `Information`;
//! 6. ECHO returns exactly its input.
#![no_main]

use std::cell::Cell;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use usercap::sim::SimSpace;
use usercap::{AddressSpace, Mode, NtStatus};
use usercap_device::io::{Driver, IoManager, Ioctl, Irp};
use usercap_device::{Completion, Device, Request};
use usercap_fuzz::{Addr, Layout, RegionSpec, Snapshot};
use usercap_protocol::{IOCTL_BATCH, IOCTL_ECHO, IOCTL_SET_NAME, IOCTL_SUM, IOCTLS, Method};

type Raw = spin::mutex::SpinMutex<()>;

/// The largest BUFFERED length the fuzzer sends, so the model's SystemBuffer
/// stays small; lengths above `isize::MAX` are sent as they are (the model's
/// fallible allocation refuses them without calling the allocator).
const MAX_BUFFERED_LEN: usize = 2 << 20;

#[derive(Arbitrary, Debug)]
enum Code {
    /// One of the eight IOCTLs.
    Known(u8),
    /// One of the eight with another transfer method.
    OtherMethod(u8, u8),
    /// Anything.
    Raw(u32),
}

impl Code {
    fn value(&self) -> u32 {
        match *self {
            Self::Known(i) => IOCTLS[usize::from(i) % IOCTLS.len()].1,
            Self::OtherMethod(i, m) => {
                (IOCTLS[usize::from(i) % IOCTLS.len()].1 & !3) | u32::from(m & 3)
            }
            Self::Raw(code) => code,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Zero,
    Small(u8),
    Medium(u16),
    Raw(u64),
}

impl Len {
    fn value(self, buffered: bool) -> usize {
        match self {
            Self::Zero => 0,
            Self::Small(n) => usize::from(n),
            Self::Medium(n) => usize::from(n),
            Self::Raw(n) => {
                let n = n as usize;
                if buffered && n > MAX_BUFFERED_LEN && n <= isize::MAX as usize {
                    n % (MAX_BUFFERED_LEN + 1)
                } else {
                    n
                }
            }
        }
    }
}

/// A value written into a region before the requests, so that embedded
/// pointers can point into the layout.
#[derive(Arbitrary, Debug)]
enum PatchValue {
    Addr(Addr),
    U64(u64),
    U32(u32),
    U16(u16),
}

#[derive(Arbitrary, Debug)]
struct Patch {
    at: Addr,
    value: PatchValue,
}

/// A racing user thread: after the kernel's `after`-th access in the
/// request, it writes `bytes` at `at`.
#[derive(Arbitrary, Debug)]
struct Race {
    after: u8,
    at: Addr,
    bytes: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Call {
    code: Code,
    input: Addr,
    input_len: Len,
    output: Addr,
    output_len: Len,
    /// Fail this access of the request (fault injection).
    fault: Option<u8>,
    race: Option<Race>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    kernel_mode: bool,
    regions: Vec<RegionSpec>,
    patches: Vec<Patch>,
    calls: Vec<Call>,
}

const MAX_PATCHES: usize = 16;
const MAX_CALLS: usize = 4;
const MAX_RACE_BYTES: usize = 16;

/// Records what the device itself completed with, before the model's
/// copy-back.
struct Recorder<'d> {
    device: &'d Device<Raw>,
    completed: Cell<Option<Completion>>,
}

impl Driver for Recorder<'_> {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        let completion = self.device.dispatch(space, request);
        self.completed.set(Some(completion));
        irp.complete(completion);
    }
}

fn is_error(status: NtStatus) -> bool {
    status.as_u32() >> 30 == 3
}

fn range(addr: u64, len: u64) -> Option<(usize, usize)> {
    let addr = usize::try_from(addr).ok()?;
    let len = usize::try_from(len).ok()?;
    Some((addr, addr.checked_add(len)?))
}

/// What a range is in the request: the same role in two views of memory
/// is one naming, two roles over the same bytes are two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Input,
    Values,
    Chars,
    Table,
    Segment(u64),
}

/// The user ranges a correct driver may read for this call, as seen in one
/// view of memory: each is one "naming" of its bytes.
fn named_ranges(call: &Ioctl, view: &Snapshot, out: &mut Vec<(Role, usize, usize)>) {
    let input = call.input;
    let mut push = |role: Role, r: Option<(usize, usize)>| {
        out.extend(r.map(|(start, end)| (role, start, end)));
    };
    match Method::of(call.code) {
        Method::Neither => {
            push(
                Role::Input,
                range(input as u64, call.input_len.min(16) as u64),
            );
            match call.code {
                IOCTL_SUM => {
                    if let (Some(count), Some(values)) =
                        (view.u64_at(input), view.u64_at(input.wrapping_add(8)))
                    {
                        push(Role::Values, range(values, count.saturating_mul(4)));
                    }
                }
                IOCTL_SET_NAME => {
                    if let (Some(length), Some(buffer)) =
                        (view.u16_at(input), view.u64_at(input.wrapping_add(8)))
                    {
                        push(Role::Chars, range(buffer, u64::from(length)));
                    }
                }
                IOCTL_BATCH => {
                    if let (Some(count), Some(table)) =
                        (view.u32_at(input), view.u64_at(input.wrapping_add(8)))
                    {
                        let count = u64::from(count.min(64));
                        push(Role::Table, range(table, count * 16));
                        for i in 0..count {
                            let entry = table.wrapping_add(i * 16) as usize;
                            if let (Some(addr), Some(len)) =
                                (view.u64_at(entry), view.u64_at(entry.wrapping_add(8)))
                            {
                                push(Role::Segment(i), range(addr, len));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        _ => push(Role::Input, range(input as u64, call.input_len as u64)),
    }
}

/// `USERCAP_FUZZ_TRACE=1` prints each input and call, for triage:
/// `USERCAP_FUZZ_TRACE=1 cargo +nightly fuzz run dispatch <crash file>`.
fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("USERCAP_FUZZ_TRACE").is_some())
}

fn run(data: Input) {
    if tracing() {
        eprintln!("{data:#x?}");
    }
    let mode = if data.kernel_mode {
        Mode::Kernel
    } else {
        Mode::User
    };
    let (space, layout) = Layout::build(&data.regions, mode, true);
    if tracing() {
        eprintln!("mapped: {:x?}", layout.regions);
    }
    for patch in data.patches.iter().take(MAX_PATCHES) {
        let at = layout.resolve(patch.at);
        let _ = match patch.value {
            PatchValue::Addr(addr) => space.poke(at, &(layout.resolve(addr) as u64).to_le_bytes()),
            PatchValue::U64(v) => space.poke(at, &v.to_le_bytes()),
            PatchValue::U32(v) => space.poke(at, &v.to_le_bytes()),
            PatchValue::U16(v) => space.poke(at, &v.to_le_bytes()),
        };
    }

    let device = Device::<Raw>::new();
    let recorder = Recorder {
        device: &device,
        completed: Cell::new(None),
    };
    let io = IoManager::new(&recorder);

    for call in data.calls.iter().take(MAX_CALLS) {
        let code = call.code.value();
        let buffered = Method::of(code) != Method::Neither;
        let ioctl = Ioctl {
            code,
            input: layout.resolve(call.input),
            input_len: call.input_len.value(buffered),
            output: layout.resolve(call.output),
            output_len: call.output_len.value(buffered),
        };
        let mut race_range = None;
        if let Some(race) = &call.race {
            let at = layout.resolve(race.at);
            let bytes: Vec<u8> = race.bytes.iter().copied().take(MAX_RACE_BYTES).collect();
            race_range = Some((at, at.saturating_add(bytes.len())));
            space.after_access(u64::from(race.after), move |memory| {
                memory.poke(at, &bytes);
            });
        }
        space.fail_access(call.fault.map(u64::from));

        let before = layout.snapshot(&space);
        let state_before = device.state();
        space.reset_counters();
        recorder.completed.set(None);

        let completion = match io.device_io_control(&space, &ioctl) {
            Ok(completion) => completion,
            Err(violation) => panic!("Verifier violation: {violation} for {ioctl:x?}"),
        };

        if tracing() {
            eprintln!(
                "{ioctl:x?} -> {completion:?}, driver {:?}",
                recorder.completed.get()
            );
        }
        let max_fetches = space.max_fetches();
        space.fail_access(None);
        space.clear_hooks();
        let after = layout.snapshot(&space);
        let driver_completion = recorder.completed.take();

        // 3. Information within the output buffer.
        assert!(
            completion.information <= ioctl.output_len,
            "Information {} > output length {} for {ioctl:x?}",
            completion.information,
            ioctl.output_len
        );

        // 4. Errors write no Information and change no state.
        if is_error(completion.status) {
            assert_eq!(
                completion.information, 0,
                "error with Information: {completion:?} {ioctl:x?}"
            );
            match driver_completion {
                Some(driver) if !is_error(driver.status) => {
                    // The driver succeeded; only the model's copy-back can
                    // have failed, and only on an unwritable output.
                    assert!(
                        buffered,
                        "NEITHER status changed after dispatch: {driver:?} -> {completion:?}"
                    );
                    assert_eq!(completion.status, NtStatus::STATUS_ACCESS_VIOLATION);
                    assert!(
                        call.fault.is_some()
                            || layout
                                .write_ok(mode, ioctl.output, driver.information, 1)
                                .is_err(),
                        "copy-back failed on a writable output: {ioctl:x?} {driver:?}"
                    );
                }
                _ => {
                    let state_after = device.state();
                    assert_eq!(
                        state_before, state_after,
                        "failed request {ioctl:x?} -> {completion:?} changed the device state"
                    );
                }
            }
        } else if let Some(driver) = driver_completion {
            assert_eq!(
                driver, completion,
                "the model changed a successful completion"
            );
        } else {
            panic!("success without dispatch: {completion:?} {ioctl:x?}");
        }

        // 5. Writes stay in the output buffer, and on success within Information.
        let limit = if is_error(completion.status) {
            ioctl.output_len
        } else {
            completion.information
        };
        let allowed = |addr: usize| {
            let in_output = addr >= ioctl.output && addr - ioctl.output < limit;
            let raced = race_range.is_some_and(|(s, e)| s <= addr && addr < e);
            in_output || raced
        };
        if let Some(addr) = before.changed(&after).find(|&a| !allowed(a)) {
            panic!(
                "byte at {addr:#x} written outside the output (limit {limit}) by {ioctl:x?} -> {completion:?}"
            );
        }

        // 6. ECHO echoes.
        if code == IOCTL_ECHO
            && completion.status == NtStatus::STATUS_SUCCESS
            && race_range.is_none()
        {
            assert_eq!(completion.information, ioctl.input_len);
            if ioctl.input_len > 0 {
                let sent = before.read(ioctl.input, ioctl.input_len);
                let got = after.read(ioctl.output, ioctl.input_len);
                if let (Some(sent), Some(got)) = (sent, got) {
                    assert!(sent == got, "ECHO returned other bytes");
                }
            }
        }

        // 2. Single fetch, up to the user's own aliasing.
        if max_fetches > 1 {
            check_fetches(&space, &layout, &ioctl, &before, &after);
        }
    }
}

fn check_fetches(
    space: &SimSpace,
    layout: &Layout,
    ioctl: &Ioctl,
    before: &Snapshot,
    after: &Snapshot,
) {
    // Both views: a racing write may have changed a pointer or a count
    // between the kernel's fetches. A range with the same role in both
    // views is one naming; the same bytes in two roles (a BATCH table over
    // its own header) are two.
    let mut ranges = Vec::new();
    named_ranges(ioctl, before, &mut ranges);
    named_ranges(ioctl, after, &mut ranges);
    ranges.sort_unstable();
    ranges.dedup();
    for region in &layout.regions {
        for addr in region.addr..region.end() {
            let fetched = space.fetches(addr);
            if fetched <= 1 {
                continue;
            }
            let named = ranges
                .iter()
                .filter(|(_, s, e)| *s <= addr && addr < *e)
                .count();
            assert!(
                fetched as usize <= named,
                "double fetch: byte {addr:#x} fetched {fetched} times, named {named} times by {ioctl:x?}"
            );
        }
    }
}

fuzz_target!(|data: Input| run(data));
