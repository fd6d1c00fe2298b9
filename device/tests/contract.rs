//! The protocol's failure contract on `SimSpace`: every failure a caller
//! can cause writes nothing and changes nothing, except a reply that
//! straddles into a read-only page (see `usercap_device::io::contract`).
//! The same check runs on `HostSpace` in the client's tests.

use usercap::sim::{Perm, SimSpace};
use usercap::{AddressSpace, CaptureError, Mode, NtStatus, UserSlice, UserWriter};
use usercap_device::io::contract::{self, Backend, PageAccess, Stateful};
use usercap_device::io::{Driver, Irp};
use usercap_device::{Buffers, Completion, Device, DeviceState, Request};
use usercap_protocol::{IOCTL_STATS, IOCTL_SUM, MAX_SUM_VALUES, Stats, SumReply, SumRequest};

/// `SimSpace` as a contract backend: regions of 4 KiB at consecutive
/// addresses stand for pages.
struct Sim {
    space: SimSpace,
    next: usize,
}

/// The lab's page: 4 KiB, or 1 KiB under Miri, where every poke of a page
/// of canary bytes is interpreted (the lab needs two pages of at least
/// 0x410 bytes of inputs).
const PAGE: usize = if cfg!(miri) { 0x400 } else { 0x1000 };

fn map_pages(
    space: &SimSpace,
    next: &mut usize,
    pages: &[(PageAccess, u8)],
) -> Result<usize, String> {
    let base = *next;
    for (i, &(access, fill)) in pages.iter().enumerate() {
        let perm = match access {
            PageAccess::ReadWrite => Perm::READ_WRITE,
            PageAccess::ReadOnly => Perm::READ,
            PageAccess::NoAccess => Perm::NONE,
        };
        space
            .map(base + i * PAGE, &[fill; PAGE], perm)
            .map_err(|e| format!("{e:?}"))?;
    }
    *next = base + (pages.len() + 1) * PAGE;
    Ok(base)
}

fn poke(space: &SimSpace, addr: usize, bytes: &[u8]) -> Result<(), String> {
    if space.poke(addr, bytes) {
        Ok(())
    } else {
        Err(format!("poke of {} bytes at {addr:#x}", bytes.len()))
    }
}

fn peek(space: &SimSpace, addr: usize, len: usize) -> Result<Vec<u8>, String> {
    space
        .peek(addr, len)
        .ok_or_else(|| format!("peek of {len} bytes at {addr:#x}"))
}

impl Backend for Sim {
    type Space = SimSpace;

    fn space(&self) -> &SimSpace {
        &self.space
    }

    fn page_size(&self) -> usize {
        PAGE
    }

    fn map(&mut self, pages: &[(PageAccess, u8)]) -> Result<usize, String> {
        map_pages(&self.space, &mut self.next, pages)
    }

    fn poke(&self, addr: usize, bytes: &[u8]) -> Result<(), String> {
        poke(&self.space, addr, bytes)
    }

    fn peek(&self, addr: usize, len: usize) -> Result<Vec<u8>, String> {
        peek(&self.space, addr, len)
    }
}

#[test]
fn failed_requests_keep_the_failure_contract_on_sim_space() {
    let device = Device::<Spin>::new();
    let checked = contract::check(&mut sim(), &device).unwrap();
    assert!(checked.clean_failures >= 20, "{checked:?}");
    assert_eq!(checked.straddles, 2 + 3 + 16 + 2, "{checked:?}");
    // SimSpace writes up to the first unwritable byte, as the guarded copy
    // and copy_to_user do: every straddle with writable bytes left them.
    assert_eq!(checked.prefixes_seen, 1 + 2 + 15, "{checked:?}");
}

// ------------------------------------------------- the check can fail

type Spin = spin::mutex::SpinMutex<()>;

fn sim() -> Sim {
    Sim {
        space: SimSpace::new(),
        next: 0x40_0000,
    }
}

/// A device that, when a request fails, sends itself a STATS: a failed
/// request then changes the counters.
#[derive(Default)]
struct CountsFailures(Device<Spin>);

impl Driver for CountsFailures {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        let completion = self.0.dispatch(space, request);
        if !completion.status.is_success() {
            let mut system_buffer = [0u8; size_of::<Stats>()];
            let _ = self.0.dispatch(
                space,
                Request {
                    code: IOCTL_STATS,
                    buffers: Buffers::Buffered {
                        system_buffer: &mut system_buffer,
                        input_len: 0,
                        output_len: size_of::<Stats>(),
                    },
                },
            );
        }
        irp.complete(completion);
    }
}

impl Stateful for CountsFailures {
    fn state(&self) -> DeviceState {
        self.0.state()
    }
}

/// A device whose SUM writes its reply (with a provisional sum of 0) before
/// it captures the values: a SUM whose values then fault has written its
/// output.
#[derive(Default)]
struct WritesSumReplyEarly(Device<Spin>);

impl WritesSumReplyEarly {
    fn sum<S: AddressSpace + ?Sized>(
        space: &S,
        input: UserSlice<u8>,
        mut output: UserWriter<'static>,
    ) -> Result<usize, NtStatus> {
        let header = input.into_ptr::<SumRequest>()?.capture(space)?;
        if header.count > MAX_SUM_VALUES {
            return Err(NtStatus::STATUS_INVALID_BUFFER_SIZE);
        }
        // THE BUG: output before the last capture that can fail.
        output.write(
            space,
            &SumReply {
                sum: 0,
                count: header.count,
            },
        )?;
        let count = usize::try_from(header.count).map_err(|_| NtStatus::STATUS_INTEGER_OVERFLOW)?;
        let addr = usize::try_from(header.values).map_err(|_| NtStatus::STATUS_ACCESS_VIOLATION)?;
        UserSlice::<u32>::new(addr, count)?.capture(space)?;
        Ok(output.finish())
    }
}

impl Driver for WritesSumReplyEarly {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        match request {
            Request {
                code: IOCTL_SUM,
                buffers: Buffers::Neither { input, output },
            } => irp.complete(match Self::sum(space, input, output) {
                Ok(information) => Completion {
                    status: NtStatus::STATUS_SUCCESS,
                    information,
                },
                Err(status) => Completion::failed(status),
            }),
            request => self.0.handle(space, request, irp),
        }
    }
}

impl Stateful for WritesSumReplyEarly {
    fn state(&self) -> DeviceState {
        self.0.state()
    }
}

/// A `SimSpace` whose failed writes write everything anyway, past the first
/// unwritable byte: a backend that breaks the prefix rule.
struct WritesPastTheFault(SimSpace);

impl AddressSpace for WritesPastTheFault {
    fn mode(&self) -> Mode {
        self.0.mode()
    }
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        self.0.read(src, dst, align)
    }
    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        self.0.write(dst, src, align).inspect_err(|_| {
            let _ = self.0.poke(dst, src);
        })
    }
}

struct BrokenSim {
    space: WritesPastTheFault,
    next: usize,
}

impl Backend for BrokenSim {
    type Space = WritesPastTheFault;
    fn space(&self) -> &WritesPastTheFault {
        &self.space
    }
    fn page_size(&self) -> usize {
        PAGE
    }
    fn map(&mut self, pages: &[(PageAccess, u8)]) -> Result<usize, String> {
        map_pages(&self.space.0, &mut self.next, pages)
    }
    fn poke(&self, addr: usize, bytes: &[u8]) -> Result<(), String> {
        poke(&self.space.0, addr, bytes)
    }
    fn peek(&self, addr: usize, len: usize) -> Result<Vec<u8>, String> {
        peek(&self.space.0, addr, len)
    }
}

#[test]
fn the_contract_check_catches_a_failed_request_that_changes_the_state() {
    let breach = contract::check(&mut sim(), &CountsFailures::default()).unwrap_err();
    assert!(breach.contains("changed the device state"), "{breach}");
}

#[test]
fn the_contract_check_catches_a_reply_written_before_the_request_failed() {
    let breach = contract::check(&mut sim(), &WritesSumReplyEarly::default()).unwrap_err();
    assert!(
        breach.starts_with("SUM with its values in a guard page: wrote output byte 0"),
        "{breach}"
    );
}

#[test]
fn the_contract_check_catches_a_backend_that_writes_past_the_fault() {
    let mut broken = BrokenSim {
        space: WritesPastTheFault(SimSpace::new()),
        next: 0x40_0000,
    };
    let breach = contract::check(&mut broken, &Device::<Spin>::new()).unwrap_err();
    assert!(breach.contains("only a prefix of the reply"), "{breach}");
}
