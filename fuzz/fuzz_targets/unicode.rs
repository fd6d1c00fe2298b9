//! `CapturedUnicode::capture` on an arbitrary wire `UNICODE_STRING` over an
//! arbitrary address space, against an oracle of its rules:
//!
//! 1. an odd `Length`, or `Length > MaximumLength`: `Invalid`;
//! 2. `Length > max_bytes`: `TooLarge`;
//! 3. `Length == 0`: an empty string, nothing fetched, whatever `Buffer` is;
//! 4. otherwise `Length` bytes at `Buffer`, probed with 2-byte alignment:
//!    the probe's error, or `AccessViolation` if not all readable;
//! 5. on success the characters are exactly the bytes in memory.
//!
//! Every byte is fetched at most once, and only on rule 4.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use usercap::{CaptureError, CapturedUnicode, Mode, WireUnicodeString};
use usercap_fuzz::{Addr, Layout, RegionSpec};

#[derive(Arbitrary, Debug)]
enum Cap {
    /// The device's cap, `MAX_NAME_BYTES`.
    Name,
    Small(u16),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    kernel_mode: bool,
    regions: Vec<RegionSpec>,
    length: u16,
    maximum_length: u16,
    reserved: u32,
    buffer: Addr,
    cap: Cap,
    fault: Option<u8>,
}

fn oracle(
    layout: &Layout,
    mode: Mode,
    wire: &WireUnicodeString,
    max_bytes: usize,
    fault: Option<u8>,
) -> Result<(), CaptureError> {
    if wire.length % 2 != 0 || wire.length > wire.maximum_length {
        return Err(CaptureError::Invalid);
    }
    let len = usize::from(wire.length);
    if len > max_bytes {
        return Err(CaptureError::TooLarge);
    }
    if len == 0 {
        return Ok(());
    }
    let addr = wire.buffer as usize;
    if mode == Mode::User {
        usercap::check_user_range(addr, len, 2, usercap::DEFAULT_PROBE_LIMIT)?;
    }
    if fault == Some(1) {
        return Err(CaptureError::AccessViolation);
    }
    layout.read_ok(mode, addr, len, 2)
}

fuzz_target!(|data: Input| {
    let mode = if data.kernel_mode {
        Mode::Kernel
    } else {
        Mode::User
    };
    let (space, layout) = Layout::build(&data.regions, mode, false);
    let wire = WireUnicodeString {
        length: data.length,
        maximum_length: data.maximum_length,
        reserved: data.reserved,
        buffer: layout.resolve(data.buffer) as u64,
    };
    let max_bytes = match data.cap {
        Cap::Name => usize::from(usercap_protocol::MAX_NAME_BYTES),
        Cap::Small(n) => usize::from(n),
        Cap::Raw(n) => n as usize,
    };
    let want = oracle(&layout, mode, &wire, max_bytes, data.fault);
    space.fail_access(data.fault.map(u64::from));
    space.reset_counters();
    let got = CapturedUnicode::capture(&wire, &space, max_bytes);
    assert!(
        space.max_fetches() <= 1,
        "double fetch at {:x?}",
        space.first_double_fetch()
    );
    let fetched = space.fetched_bytes();
    space.fail_access(None);
    match (got, want) {
        (Ok(chars), Ok(())) => {
            let len = usize::from(wire.length);
            assert_eq!(chars.byte_len(), len);
            assert_eq!(chars.len() * 2, len);
            assert_eq!(fetched, len as u64, "fetched other bytes than the string's");
            if len > 0 {
                let memory = space
                    .peek(wire.buffer as usize, len)
                    .expect("captured bytes are mapped");
                assert_eq!(
                    chars.as_bytes(),
                    &memory[..],
                    "characters differ from memory"
                );
                let units: Vec<u16> = memory
                    .as_chunks::<2>()
                    .0
                    .iter()
                    .map(|&c| u16::from_le_bytes(c))
                    .collect();
                assert_eq!(&*chars, &units[..]);
            }
        }
        (Err(g), Err(w)) => {
            assert_eq!(g, w, "wire {wire:x?}, cap {max_bytes}");
            if matches!(w, CaptureError::Invalid | CaptureError::TooLarge) {
                assert_eq!(fetched, 0, "a length error fetched user memory");
            }
        }
        (g, w) => panic!("capture {g:?}, oracle {w:?} for {wire:x?}, cap {max_bytes}"),
    }
});
