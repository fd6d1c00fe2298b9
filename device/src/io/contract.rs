//! The failure contract of `usercap_protocol`, as a check any backend can
//! run: what a failed request may write, and what it may change.
//!
//! The protocol's promise (its crate docs, "Statuses") is what every
//! backend does, not what one of them could do:
//!
//! 1. A failed request completes with `Information` 0.
//! 2. It writes nothing to the caller's output buffer, **except** when the
//!    failure is the write of the reply itself (the output is not writable,
//!    or stops being writable): then the bytes of the reply before the first
//!    byte that could not be written may be there. That is the driver's own
//!    write for METHOD_NEITHER and the I/O manager's copy-back for
//!    METHOD_BUFFERED; Linux's `copy_to_user` leaves the same prefix, and no
//!    backend can promise less without writing twice.
//! 3. It leaves the device state unchanged (name, configuration, counters),
//!    **except** a METHOD_BUFFERED request whose handler succeeded and whose
//!    reply the I/O manager then could not copy back: the handler has acted,
//!    so its change and its count stand, and the request fails with
//!    `STATUS_ACCESS_VIOLATION`. (Windows finds a read-only output in its
//!    probe before dispatch, but not a page that becomes unwritable between
//!    that probe and the copy-back; this model finds both at copy-back.)
//!
//! [`check`] sends requests that fail for every reason a caller can cause,
//! and requests whose reply straddles into a read-only page, through the
//! [`IoManager`] over a backend's address space, and checks each outcome
//! against those three rules, comparing [`Device::state`] before and after.
//! A backend plugs in by implementing [`Backend`]: how to map user pages
//! with given access, and how the user side reads and writes them.
//! `usercap-device`'s tests run it on `SimSpace`; the client's tests on
//! `HostSpace` (real pages, real faults); a Windows backend runs it the same
//! way.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::mem::size_of;

use lock_api::RawMutex;
use usercap::{AddressSpace, NtStatus};
use usercap_protocol::{
    BatchReply, BatchRequest, Config, ConfigV3, IOCTL_BATCH, IOCTL_CONFIGURE, IOCTL_ECHO,
    IOCTL_GET_NAME, IOCTL_MESSAGE, IOCTL_SET_NAME, IOCTL_STATS, IOCTL_SUM, MAX_BATCH_BYTES,
    MAX_SUM_VALUES, NameReply, SetNameRequest, Stats, SumReply, SumRequest, WireUnicodeString,
    checksum,
};
use zerocopy::IntoBytes;

use super::{Driver, IoManager, Ioctl};
use crate::{Device, DeviceState};

/// A driver whose state the contract can compare before and after a
/// request: the usercap [`Device`], or a deliberately broken one that a
/// test shows [`check`] catching.
pub trait Stateful: Driver {
    /// A consistent snapshot of the state a failed request must not change.
    fn state(&self) -> DeviceState;
}

impl<R: RawMutex> Stateful for Device<R> {
    fn state(&self) -> DeviceState {
        Device::state(self)
    }
}

/// The access of one page a [`Backend`] maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageAccess {
    /// Readable and writable.
    ReadWrite,
    /// Readable only.
    ReadOnly,
    /// Neither: a guard page.
    NoAccess,
}

/// A backend under test: an address space the device runs requests from,
/// and the user side's view of its memory.
pub trait Backend {
    /// The requester's address space.
    type Space: AddressSpace + ?Sized;

    /// The address space requests come from (user mode).
    fn space(&self) -> &Self::Space;

    /// The granularity of protections: the page size.
    fn page_size(&self) -> usize;

    /// Maps `pages.len()` contiguous pages of [`page_size`](Self::page_size)
    /// bytes, each filled with its byte and then given its access; returns
    /// the address of the first.
    ///
    /// # Errors
    /// If the backend cannot map them.
    fn map(&mut self, pages: &[(PageAccess, u8)]) -> Result<usize, String>;

    /// Writes bytes into read-write pages, as a user thread would.
    ///
    /// # Errors
    /// If the range is not mapped read-write.
    fn poke(&self, addr: usize, bytes: &[u8]) -> Result<(), String>;

    /// Reads bytes of readable pages, as a user thread would.
    ///
    /// # Errors
    /// If the range is not mapped readable.
    fn peek(&self, addr: usize, len: usize) -> Result<Vec<u8>, String>;
}

/// What [`check`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Failed requests that wrote nothing and changed nothing.
    pub clean_failures: usize,
    /// Failed replies that straddled into a read-only page: at most a
    /// prefix written, state as the contract says.
    pub straddles: usize,
    /// Of those, how many left a non-empty prefix of the reply (the
    /// backend wrote up to the fault rather than nothing).
    pub prefixes_seen: usize,
}

/// The byte every output buffer is filled with before a request.
const CANARY: u8 = 0xEE;

// The lab: page 0-1 inputs (read-write), 2 read-only, 3 output
// (read-write), 4 read-only (the other side of a straddle), 5 a guard page.
const INPUT: usize = 0;
const OUTPUT: usize = 3;
const READ_ONLY_OUTPUT: usize = 4;
const GUARD: usize = 5;
const LAB: [(PageAccess, u8); 6] = [
    (PageAccess::ReadWrite, 0),
    (PageAccess::ReadWrite, 0),
    (PageAccess::ReadOnly, 0x11),
    (PageAccess::ReadWrite, CANARY),
    (PageAccess::ReadOnly, CANARY),
    (PageAccess::NoAccess, 0),
];

struct Lab<'b, B: Backend, D: Stateful> {
    backend: &'b B,
    device: &'b D,
    base: usize,
    page: usize,
}

impl<B: Backend, D: Stateful> Lab<'_, B, D> {
    fn at(&self, page: usize, offset: usize) -> usize {
        self.base + page * self.page + offset
    }

    /// Puts bytes into the input pages and returns their address.
    fn put(&self, offset: usize, bytes: &[u8]) -> Result<usize, String> {
        let addr = self.at(INPUT, offset);
        self.backend.poke(addr, bytes)?;
        Ok(addr)
    }

    fn send(&self, ioctl: &Ioctl) -> Result<crate::Completion, String> {
        self.backend
            .poke(self.at(OUTPUT, 0), &vec![CANARY; self.page])?;
        IoManager::new(self.device)
            .device_io_control(self.backend.space(), ioctl)
            .map_err(|v| format!("{v}"))
    }

    /// Both output pages: the read-write one and the read-only one after it.
    fn outputs(&self) -> Result<Vec<u8>, String> {
        self.backend.peek(self.at(OUTPUT, 0), 2 * self.page)
    }

    fn ok(&self, ioctl: &Ioctl) -> Result<(), String> {
        let completion = self.send(ioctl)?;
        if completion.status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "setup request {:#x} failed: {}",
                ioctl.code, completion.status
            ))
        }
    }

    fn sum(&self, count: u64, values: Option<usize>, output: usize) -> Result<Ioctl, String> {
        let data = self.put(0x100, [1u32, 2, 3, 4].as_bytes())?;
        let input = self.put(
            0,
            SumRequest {
                count,
                values: values.unwrap_or(data) as u64,
            }
            .as_bytes(),
        )?;
        Ok(Ioctl {
            code: IOCTL_SUM,
            input,
            input_len: size_of::<SumRequest>(),
            output,
            output_len: size_of::<SumReply>(),
        })
    }

    fn set_name(&self, length: u16, maximum: u16, buffer: Option<usize>) -> Result<Ioctl, String> {
        let text = self.put(0x200, &[b'Z', 0].repeat(64))?;
        let request = SetNameRequest {
            name: WireUnicodeString {
                length,
                maximum_length: maximum,
                reserved: 0,
                buffer: buffer.unwrap_or(text) as u64,
            },
        };
        Ok(Ioctl {
            code: IOCTL_SET_NAME,
            input: self.put(0, request.as_bytes())?,
            input_len: size_of::<SetNameRequest>(),
            output: 0,
            output_len: 0,
        })
    }

    fn batch(&self, len: u64, addr: Option<usize>, output: usize) -> Result<Ioctl, String> {
        let data = self.put(0x300, b"segment!")?;
        let table = self.put(
            0x400,
            usercap_protocol::Segment {
                addr: addr.unwrap_or(data) as u64,
                len,
            }
            .as_bytes(),
        )?;
        let input = self.put(
            0,
            BatchRequest {
                count: 1,
                reserved: 0,
                segments: table as u64,
            }
            .as_bytes(),
        )?;
        Ok(Ioctl {
            code: IOCTL_BATCH,
            input,
            input_len: size_of::<BatchRequest>(),
            output,
            output_len: size_of::<BatchReply>(),
        })
    }

    fn buffered(
        &self,
        code: u32,
        input: &[u8],
        output: usize,
        output_len: usize,
    ) -> Result<Ioctl, String> {
        let addr = if input.is_empty() {
            0
        } else {
            self.put(0, input)?
        };
        Ok(Ioctl {
            code,
            input: addr,
            input_len: input.len(),
            output,
            output_len,
        })
    }

    /// Gives the device a name, a configuration and counters that are not
    /// zero, so that "unchanged" means something.
    fn prime(&self) -> Result<(), String> {
        self.ok(&self.set_name(6, 64, None)?)?;
        let config = Config {
            flags: 1,
            level: 3,
            quota: 9,
        };
        self.ok(&self.buffered(IOCTL_CONFIGURE, config.as_bytes(), self.at(OUTPUT, 0), 16)?)?;
        self.ok(&self.sum(4, None, self.at(OUTPUT, 0))?)?;
        self.ok(&self.buffered(IOCTL_ECHO, b"prime", self.at(OUTPUT, 0), 5)?)
    }
}

/// Builds one failing request in the lab (putting its input there).
type Build<B, D> = fn(&Lab<'_, B, D>) -> Result<Ioctl, String>;

/// A failure a caller can cause that is found before any reply is written:
/// what it is, the status it must get, and how to build it.
struct Case<B: Backend, D: Stateful> {
    what: &'static str,
    status: NtStatus,
    build: Build<B, D>,
}

fn message_bytes(count: u32, items: u32) -> Vec<u8> {
    let mut bytes = 1u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend((0..items).flat_map(u32::to_le_bytes));
    bytes
}

/// Every failure of that kind, per IOCTL.
#[allow(
    clippy::too_many_lines,
    reason = "one flat table of cases reads better than helpers that hide which request is which"
)]
fn failures<B: Backend, D: Stateful>() -> Vec<Case<B, D>> {
    use NtStatus as S;
    fn case<B: Backend, D: Stateful>(
        what: &'static str,
        status: NtStatus,
        build: Build<B, D>,
    ) -> Case<B, D> {
        Case {
            what,
            status,
            build,
        }
    }
    vec![
        case("ECHO from a guard page", S::STATUS_ACCESS_VIOLATION, |l| {
            Ok(Ioctl {
                code: IOCTL_ECHO,
                input: l.at(GUARD, 0),
                input_len: 8,
                output: l.at(OUTPUT, 0),
                output_len: 8,
            })
        }),
        case(
            "ECHO with a short output",
            S::STATUS_BUFFER_TOO_SMALL,
            |l| l.buffered(IOCTL_ECHO, b"12345678", l.at(OUTPUT, 0), 4),
        ),
        case(
            "SUM with its header in a guard page",
            S::STATUS_ACCESS_VIOLATION,
            |l| {
                Ok(Ioctl {
                    input: l.at(GUARD, 0),
                    ..l.sum(4, None, l.at(OUTPUT, 0))?
                })
            },
        ),
        case(
            "SUM with its values in a guard page",
            S::STATUS_ACCESS_VIOLATION,
            |l| l.sum(4, Some(l.at(GUARD, 0)), l.at(OUTPUT, 0)),
        ),
        case(
            "SUM with misaligned values",
            S::STATUS_DATATYPE_MISALIGNMENT,
            |l| l.sum(4, Some(l.at(INPUT, 0x102)), l.at(OUTPUT, 0)),
        ),
        case(
            "SUM over its count limit",
            S::STATUS_INVALID_BUFFER_SIZE,
            |l| l.sum(MAX_SUM_VALUES + 1, None, l.at(OUTPUT, 0)),
        ),
        case("SUM with a short output", S::STATUS_BUFFER_TOO_SMALL, |l| {
            Ok(Ioctl {
                output_len: 15,
                ..l.sum(4, None, l.at(OUTPUT, 0))?
            })
        }),
        case(
            "MESSAGE with a count beyond its bytes",
            S::STATUS_INVALID_PARAMETER,
            |l| l.buffered(IOCTL_MESSAGE, &message_bytes(5, 4), l.at(OUTPUT, 0), 16),
        ),
        case(
            "MESSAGE with a short output",
            S::STATUS_BUFFER_TOO_SMALL,
            |l| l.buffered(IOCTL_MESSAGE, &message_bytes(2, 2), l.at(OUTPUT, 0), 15),
        ),
        case(
            "SET_NAME with an odd length",
            S::STATUS_INVALID_PARAMETER,
            |l| l.set_name(7, 8, None),
        ),
        case(
            "SET_NAME with its length above its maximum",
            S::STATUS_INVALID_PARAMETER,
            |l| l.set_name(10, 8, None),
        ),
        case(
            "SET_NAME with its text running into a guard page",
            S::STATUS_ACCESS_VIOLATION,
            |l| l.set_name(8, 8, Some(l.at(GUARD, 0) - 4)),
        ),
        case(
            "GET_NAME with a short output",
            S::STATUS_BUFFER_TOO_SMALL,
            |l| l.buffered(IOCTL_GET_NAME, &[], l.at(OUTPUT, 0), size_of::<NameReply>()),
        ),
        case(
            "CONFIGURE with a level too high",
            S::STATUS_INVALID_PARAMETER,
            |l| {
                let config = Config {
                    level: 99,
                    ..Config::default()
                };
                l.buffered(IOCTL_CONFIGURE, config.as_bytes(), l.at(OUTPUT, 0), 16)
            },
        ),
        case(
            "CONFIGURE with a non-zero tail",
            S::STATUS_NOT_SUPPORTED,
            |l| {
                let v3 = ConfigV3 {
                    level: 1,
                    reserved_v3: 1,
                    ..ConfigV3::default()
                };
                l.buffered(IOCTL_CONFIGURE, v3.as_bytes(), l.at(OUTPUT, 0), 16)
            },
        ),
        case(
            "CONFIGURE with a short output",
            S::STATUS_BUFFER_TOO_SMALL,
            |l| {
                let config = Config {
                    level: 2,
                    ..Config::default()
                };
                l.buffered(IOCTL_CONFIGURE, config.as_bytes(), l.at(OUTPUT, 0), 8)
            },
        ),
        case(
            "BATCH with a segment in a guard page",
            S::STATUS_ACCESS_VIOLATION,
            |l| l.batch(8, Some(l.at(GUARD, 0)), l.at(OUTPUT, 0)),
        ),
        case(
            "BATCH over its byte budget",
            S::STATUS_INVALID_BUFFER_SIZE,
            |l| l.batch(MAX_BATCH_BYTES + 1, None, l.at(OUTPUT, 0)),
        ),
        case(
            "STATS with a short output",
            S::STATUS_BUFFER_TOO_SMALL,
            |l| l.buffered(IOCTL_STATS, &[], l.at(OUTPUT, 0), size_of::<Stats>() - 1),
        ),
        case("an unknown code", S::STATUS_INVALID_DEVICE_REQUEST, |l| {
            Ok(Ioctl {
                code: 0x1234_5678,
                ..l.buffered(IOCTL_ECHO, b"1234", l.at(OUTPUT, 0), 4)?
            })
        }),
    ]
}

/// Rule 2 for a reply that straddles into a read-only page: `written` is
/// the output bytes from the reply's start; the first `writable` were
/// writable. Returns how many bytes of the reply are there.
fn prefix_only(written: &[u8], reply: &[u8], writable: usize) -> Result<usize, String> {
    let done = written
        .iter()
        .zip(reply)
        .take(writable)
        .take_while(|(w, r)| w == r)
        .count();
    match written
        .iter()
        .enumerate()
        .skip(done)
        .find(|(_, b)| **b != CANARY)
    {
        Some((at, _)) => Err(format!(
            "byte {at} of the output was written, but only a prefix of the reply up to the \
             first unwritable byte ({writable}) may be: {done} reply bytes then {written:02x?}"
        )),
        None => Ok(done),
    }
}

/// Runs the contract against `device` on `backend` (see the module docs).
///
/// # Errors
/// The first breach of the contract, in words.
pub fn check<B: Backend, D: Stateful>(backend: &mut B, device: &D) -> Result<Checked, String> {
    let page = backend.page_size();
    let base = backend.map(&LAB)?;
    let lab = Lab {
        backend: &*backend,
        device,
        base,
        page,
    };
    lab.prime()?;
    let mut checked = Checked::default();

    // Failures found before any reply is written: nothing written, nothing
    // changed. Each case puts its input right before it is sent (the cases
    // share the input pages).
    for case in failures::<B, D>() {
        let ioctl = (case.build)(&lab)?;
        let before = device.state();
        let completion = lab.send(&ioctl)?;
        let after = device.state();
        let outputs = lab.outputs()?;
        if completion.status != case.status || completion.information != 0 {
            return Err(format!(
                "{}: completed {} with Information {}, expected {} with 0",
                case.what, completion.status, completion.information, case.status
            ));
        }
        if let Some(at) = outputs.iter().position(|&b| b != CANARY) {
            return Err(format!("{}: wrote output byte {at}", case.what));
        }
        if after != before {
            return Err(format!(
                "{}: changed the device state from {before:?} to {after:?}",
                case.what
            ));
        }
        checked.clean_failures += 1;
    }

    // METHOD_NEITHER replies that straddle into the read-only page: the
    // driver's own write faults. At most a prefix written, nothing changed.
    let straddle = |writable: usize| lab.at(READ_ONLY_OUTPUT, 0) - writable;
    let sum_reply = SumReply { sum: 10, count: 4 };
    let batch_reply = BatchReply {
        segments: 1,
        reserved: 0,
        total_bytes: 8,
        checksum: checksum([&b"segment!"[..]]),
    };
    // Replies are 8-aligned, so the writable part is a multiple of 8.
    for writable in [0, 8] {
        let ioctl = lab.sum(4, None, straddle(writable))?;
        checked.prefixes_seen += neither_straddle(&lab, &ioctl, sum_reply.as_bytes(), writable)?;
        checked.straddles += 1;
    }
    for writable in [0, 8, 16] {
        let ioctl = lab.batch(8, None, straddle(writable))?;
        checked.prefixes_seen += neither_straddle(&lab, &ioctl, batch_reply.as_bytes(), writable)?;
        checked.straddles += 1;
    }

    // METHOD_BUFFERED replies the I/O manager cannot copy back: at most a
    // prefix written, and the handler's commit stands.
    let echoed = *b"0123456789abcdef";
    for writable in 0..echoed.len() {
        let ioctl = lab.buffered(IOCTL_ECHO, &echoed, straddle(writable), echoed.len())?;
        let expect = |mut s: DeviceState| {
            s.stats.echo += 1;
            s.stats.bytes_captured += echoed.len() as u64;
            s
        };
        checked.prefixes_seen += buffered_straddle(&lab, &ioctl, &echoed, writable, expect)?;
        checked.straddles += 1;
    }
    let config = Config {
        flags: 2,
        level: 6,
        quota: 1234,
    };
    let ioctl = lab.buffered(IOCTL_CONFIGURE, config.as_bytes(), straddle(0), 16)?;
    buffered_straddle(&lab, &ioctl, config.as_bytes(), 0, |mut s| {
        s.config = config;
        s.stats.level = config.level;
        s.stats.configure += 1;
        s.stats.bytes_captured += 16;
        s
    })?;
    checked.straddles += 1;
    let ioctl = lab.buffered(IOCTL_STATS, &[], straddle(0), size_of::<Stats>())?;
    buffered_straddle(&lab, &ioctl, &[], 0, |mut s| {
        s.stats.stats += 1;
        s
    })?;
    checked.straddles += 1;
    Ok(checked)
}

fn neither_straddle<B: Backend, D: Stateful>(
    lab: &Lab<'_, B, D>,
    ioctl: &Ioctl,
    reply: &[u8],
    writable: usize,
) -> Result<usize, String> {
    let before = lab.device.state();
    let completion = lab.send(ioctl)?;
    let after = lab.device.state();
    let what = format!(
        "{:#x} with {writable} of its {} reply bytes writable",
        ioctl.code,
        reply.len()
    );
    if completion.status != NtStatus::STATUS_ACCESS_VIOLATION || completion.information != 0 {
        return Err(format!(
            "{what}: completed {} with Information {}",
            completion.status, completion.information
        ));
    }
    let outputs = lab.outputs()?;
    let start = lab.page - writable;
    if let Some(at) = outputs
        .get(..start)
        .and_then(|b| b.iter().position(|&b| b != CANARY))
    {
        return Err(format!("{what}: wrote output byte {at}, before the reply"));
    }
    let done = prefix_only(outputs.get(start..).unwrap_or(&[]), reply, writable)
        .map_err(|e| format!("{what}: {e}"))?;
    if after != before {
        return Err(format!(
            "{what}: changed the device state from {before:?} to {after:?}"
        ));
    }
    Ok(usize::from(done > 0))
}

fn buffered_straddle<B: Backend, D: Stateful>(
    lab: &Lab<'_, B, D>,
    ioctl: &Ioctl,
    reply: &[u8],
    writable: usize,
    committed: impl FnOnce(DeviceState) -> DeviceState,
) -> Result<usize, String> {
    let before = lab.device.state();
    let completion = lab.send(ioctl)?;
    let after = lab.device.state();
    let what = format!(
        "{:#x} whose reply the I/O manager copies back with {writable} bytes writable",
        ioctl.code
    );
    if completion.status != NtStatus::STATUS_ACCESS_VIOLATION || completion.information != 0 {
        return Err(format!(
            "{what}: completed {} with Information {}",
            completion.status, completion.information
        ));
    }
    let outputs = lab.outputs()?;
    let start = lab.page - writable;
    if let Some(at) = outputs
        .get(..start)
        .and_then(|b| b.iter().position(|&b| b != CANARY))
    {
        return Err(format!("{what}: wrote output byte {at}, before the reply"));
    }
    let done = if reply.is_empty() {
        // STATS: the reply is the snapshot; only check nothing but a prefix
        // of *some* reply was written, i.e. nothing on the read-only page.
        prefix_only(outputs.get(start..).unwrap_or(&[]), &[], 0)?
    } else {
        prefix_only(outputs.get(start..).unwrap_or(&[]), reply, writable)
            .map_err(|e| format!("{what}: {e}"))?
    };
    let expected = committed(before);
    if after != expected {
        return Err(format!(
            "{what}: state {after:?}, but the handler's commit should stand: {expected:?}"
        ));
    }
    Ok(usize::from(done > 0))
}
