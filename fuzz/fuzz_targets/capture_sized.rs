//! `UserPtr::<Config>::capture_sized` against an oracle of the
//! `copy_struct_from_user` rules, and `CapturedBytes::read_sized` (the
//! METHOD_BUFFERED form) against the same rules.
//!
//! Config: `MIN_SIZE` 8 (ConfigV1), `size_of` 16, `MAX_SIZE` 512.
//!
//! The oracle, in the documented order (docs/design.md, "Versioned
//! structs"):
//! 1. `user_size < 8` is `Invalid`, `> 512` is `TooLarge`, nothing fetched;
//! 2. the known prefix, `min(user_size, 16)` bytes, is probed with 8-byte
//!    alignment and copied: probe errors, then `AccessViolation` if unmapped;
//! 3. the tail is scanned in chunks that end on 64-byte address boundaries;
//!    a chunk that is not all readable is `AccessViolation`, one with a
//!    non-zero byte is `NonZeroTail`;
//! 4. otherwise the value is the prefix, zero-extended.
//!
//! Every byte is fetched at most once; on a size error, none is.
#![no_main]

use std::mem::size_of;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use usercap::sim::SimSpace;
use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap::{
    CaptureError, Captured, CapturedBytes, DEFAULT_PROBE_LIMIT, Extensible, Mode, UserPtr,
    check_user_range,
};
use usercap_fuzz::{Addr, Layout, RegionSpec};
use usercap_protocol::Config;

#[derive(Arbitrary, Debug)]
enum Size {
    /// Around the interesting sizes 8, 16, 64, 512.
    Small(u16),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    kernel_mode: bool,
    regions: Vec<RegionSpec>,
    addr: Addr,
    size: Size,
    /// Fault injection: fail this access.
    fault: Option<u8>,
}

const CHUNK: usize = 64;

/// The oracle: the documented rules, access by access, including the
/// simulator's fault injection (the n-th access that passes the probe fails).
fn expected(
    space: &SimSpace,
    layout: &Layout,
    mode: Mode,
    addr: usize,
    user_size: usize,
    fault: Option<u8>,
) -> Result<[u8; 16], CaptureError> {
    if user_size < Config::MIN_SIZE {
        return Err(CaptureError::Invalid);
    }
    if user_size > Config::MAX_SIZE {
        return Err(CaptureError::TooLarge);
    }
    let copy = user_size.min(size_of::<Config>());
    let mut accesses = 0u64;
    let mut access = |at: usize, len: usize, align: usize| -> Result<Vec<u8>, CaptureError> {
        if mode == Mode::User {
            check_user_range(at, len, align, DEFAULT_PROBE_LIMIT)?;
        }
        accesses += 1;
        if fault.map(u64::from) == Some(accesses) {
            return Err(CaptureError::AccessViolation);
        }
        layout.read_ok(mode, at, len, align)?;
        space.peek(at, len).ok_or(CaptureError::AccessViolation)
    };
    let prefix = access(addr, copy, 8)?;
    let mut value = [0u8; 16];
    value[..copy].copy_from_slice(&prefix);
    let tail_start = addr
        .checked_add(copy)
        .ok_or(CaptureError::AccessViolation)?;
    let tail_len = user_size - copy;
    let mut done = 0;
    while done < tail_len {
        let at = tail_start
            .checked_add(done)
            .ok_or(CaptureError::AccessViolation)?;
        let n = (CHUNK - at % CHUNK).min(tail_len - done);
        if access(at, n, 1)?.iter().any(|&b| b != 0) {
            return Err(CaptureError::NonZeroTail);
        }
        done += n;
    }
    Ok(value)
}

fn run(data: Input) {
    let mode = if data.kernel_mode {
        Mode::Kernel
    } else {
        Mode::User
    };
    let (space, layout) = Layout::build(&data.regions, mode, false);
    let addr = layout.resolve(data.addr);
    let user_size = match data.size {
        Size::Small(n) => usize::from(n % 600),
        Size::Raw(n) => n as usize,
    };
    let want = expected(&space, &layout, mode, addr, user_size, data.fault);

    space.fail_access(data.fault.map(u64::from));
    space.reset_counters();
    let got = UserPtr::<Config>::new(addr).capture_sized(&space, user_size);
    assert!(
        space.max_fetches() <= 1,
        "double fetch at {:x?}",
        space.first_double_fetch()
    );
    if !(Config::MIN_SIZE..=Config::MAX_SIZE).contains(&user_size) {
        assert_eq!(space.fetched_bytes(), 0, "a size error fetched user memory");
    }
    space.fail_access(None);

    match (&got, &want) {
        (Ok(value), Ok(bytes)) => assert_eq!(value.as_bytes(), &bytes[..], "wrong value"),
        (Err(g), Err(w)) => assert_eq!(g, w, "addr {addr:#x}, size {user_size}"),
        (g, w) => panic!("capture_sized {g:?}, oracle {w:?} (addr {addr:#x}, size {user_size})"),
    }

    // The METHOD_BUFFERED form: the same bytes, already in the kernel, must
    // get the same verdict whenever memory itself was not the problem.
    if data.fault.is_none()
        && user_size <= 4096
        && let Some(bytes) = space.peek(addr, user_size)
    {
        let rs = check_read_sized(&bytes);
        if layout.read_ok(mode, addr, user_size, 8).is_ok() {
            match (&got, &rs) {
                (Ok(a), Ok(b)) => assert_eq!(a.as_bytes(), b.as_bytes()),
                (Err(a), Err(b)) => assert_eq!(a, b),
                (a, b) => panic!("capture_sized {a:?} but read_sized {b:?}"),
            }
        }
    }
}

/// `read_sized` on `bytes`, checked against the rules; returns its result.
fn check_read_sized(bytes: &[u8]) -> Result<Config, CaptureError> {
    let captured = CapturedBytes::from_system_buffer(bytes, &usercap::sim::SimSpace::new())
        .expect("small input");
    let got = captured.read_sized::<Config>().map(Captured::into_inner);
    let len = bytes.len();
    let want = if len < 8 {
        Err(CaptureError::Invalid)
    } else if len > 512 {
        Err(CaptureError::TooLarge)
    } else if bytes.iter().skip(16).any(|&b| b != 0) {
        Err(CaptureError::NonZeroTail)
    } else {
        let mut value = [0u8; 16];
        let n = len.min(16);
        value[..n].copy_from_slice(&bytes[..n]);
        Ok(Config::read_from_bytes(&value[..]).expect("16 bytes"))
    };
    assert_eq!(got, want, "read_sized on {len} bytes");
    got
}

fuzz_target!(|data: Input| run(data));
