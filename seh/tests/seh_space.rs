//! `SehSpace`: the shared probe-rule cases, the model's user space, kernel
//! mode, the write restriction and typed captures at page edges, on the
//! Windows guarded copy. The same properties as `usercap-host`'s
//! `host/tests/host_space.rs`.
#![cfg(all(windows, target_arch = "x86_64"))]

mod common;

use common::{Fence, Fenced, pattern};
use usercap::{
    AddressSpace, CaptureError, CaptureSlot, DEFAULT_PROBE_LIMIT, LOWEST_USER_ADDRESS, Limits,
    Mode, UserPtr, UserSlice, UserWriter,
};
use usercap_seh::{SehSpace, USER_SPACE_LEN, UserMemory, page_size, user_space};
use usercap_tests::probe::{Layout, PAGE, PROBE_CASES, run_cases, run_probe_cases};

const AV: CaptureError = CaptureError::AccessViolation;

fn read(space: &SehSpace, addr: usize, len: usize, align: usize) -> Result<Vec<u8>, CaptureError> {
    let mut buf = vec![0; len];
    space.read(addr, &mut buf, align).map(|()| buf)
}

#[test]
fn is_send_sync_copy_and_configurable() {
    fn shared<T: Send + Sync + Copy + 'static>() {}
    shared::<SehSpace>();
    let space = SehSpace::default();
    assert_eq!(space, SehSpace::new());
    assert_eq!(space.mode(), Mode::User);
    assert_eq!(SehSpace::kernel().mode(), Mode::Kernel);
    let (start, end) = user_space();
    assert_eq!(end - start, USER_SPACE_LEN);
    assert_eq!(space.lowest_user_address(), start);
    assert_eq!(space.probe_limit(), end);
    assert!(end <= DEFAULT_PROBE_LIMIT);
    // A limit can only be lowered.
    assert_eq!(space.with_probe_limit(end + 4096).probe_limit(), end);
    assert_eq!(space.with_probe_limit(start + 64).probe_limit(), start + 64);
    let limits = Limits {
        max_capture: 16,
        max_request: 32,
    };
    assert_eq!(space.with_limits(limits).limits(), limits);
    assert_eq!(space.limits(), Limits::DEFAULT);
}

/// The table every backend runs, on the user-mode model.
#[test]
fn the_model_follows_every_probe_case() {
    let fenced = Fenced::new(1, Fence::NoAccess);
    let layout = Layout {
        page: fenced.addr(),
        page_len: PAGE,
        limit: SehSpace::new().probe_limit(),
    };
    let failures = run_probe_cases(&layout, |limit| match limit {
        None => SehSpace::new(),
        Some(limit) => SehSpace::new().with_probe_limit(limit),
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The same table on the space usercap.sys builds: `[64 KiB,
/// MmUserProbeAddress)`. Wine maps pages at 64 KiB and just below
/// `MmUserProbeAddress`, so the two cases that rely on nothing being there
/// are left out: the probe lets them through, as it must, and the memory
/// answers.
#[test]
fn the_drivers_space_follows_every_probe_case() {
    let cases: Vec<_> = PROBE_CASES
        .iter()
        .copied()
        .filter(|c| !c.faults_after_probe)
        .collect();
    assert_eq!(cases.len() + 2, PROBE_CASES.len());
    let fenced = Fenced::new(1, Fence::NoAccess);
    let layout = Layout {
        page: fenced.addr(),
        page_len: PAGE,
        limit: DEFAULT_PROBE_LIMIT,
    };
    let failures = run_cases(&cases, &layout, |limit| {
        // SAFETY: not the kernel, but every range this table writes lies
        // in (or faults at the edge of) the UserMemory `fenced`, which no
        // Rust code references: the vouched writes cannot reach Rust memory.
        let space = unsafe { SehSpace::for_request(Mode::User) };
        match limit {
            None => space,
            Some(limit) => space.with_probe_limit(limit),
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
    // SAFETY: as above; only read through.
    let space = unsafe { SehSpace::for_request(Mode::User) };
    assert_eq!(space.lowest_user_address(), LOWEST_USER_ADDRESS);
    assert_eq!(space.probe_limit(), DEFAULT_PROBE_LIMIT);
}

/// In the model everything outside its user space is kernel memory: the
/// heap (where a `Device` and SystemBuffers live), the stack, statics.
#[test]
fn the_models_kernel_objects_are_not_user_memory() {
    static SECRET: [u8; 16] = [0x5A; 16];
    let heap = Box::new([0x11_u8; 64]);
    let stack = [0x22_u8; 64];
    let space = SehSpace::new();
    for addr in [
        heap.as_ptr().addr(),
        stack.as_ptr().addr(),
        SECRET.as_ptr().addr(),
    ] {
        assert_eq!(read(&space, addr, 16, 1), Err(AV), "{addr:#x}");
        assert!(UserPtr::<[u8; 16]>::new(addr).capture(&space).is_err());
    }
    // A kernel-mode requester may read them (no probe) ...
    let kernel = SehSpace::kernel();
    assert_eq!(
        read(&kernel, SECRET.as_ptr().addr(), 16, 1),
        Ok(vec![0x5A; 16])
    );
    // ... but writes reach only UserMemory, in either mode.
    let mut target = Box::new([0x33_u8; 16]);
    for space in [space, kernel] {
        assert_eq!(
            space.write(target.as_mut_ptr().addr(), &[0; 16], 1),
            Err(AV)
        );
    }
    assert!(target.iter().all(|&b| b == 0x33));
}

#[test]
fn zero_length_touches_nothing() {
    for space in [SehSpace::new(), SehSpace::kernel()] {
        for addr in [0, 1, 0xFFFF, usize::MAX, 1 << 47] {
            assert_eq!(space.read(addr, &mut [], 8), Ok(()));
            assert_eq!(space.write(addr, &[], 8), Ok(()));
            let empty = UserSlice::<u64>::new(addr, 0)
                .unwrap()
                .capture(&space)
                .unwrap();
            assert!(empty.is_empty());
        }
    }
}

#[test]
fn kernel_mode_skips_the_probe_but_not_the_fault_guard() {
    let fenced = Fenced::new(1, Fence::NoAccess);
    let m = fenced.addr();
    fenced
        .memory()
        .fill_at(page_size(), page_size(), 7)
        .unwrap();
    let kernel = SehSpace::kernel();
    // No alignment check, no limit.
    assert_eq!(read(&kernel, m + 1, 4, 4), Ok(vec![7; 4]));
    assert_eq!(read(&kernel, m + 1, 8, 3), Ok(vec![7; 8]));
    // Null and wrapping ranges are still refused, as usercap.sys does.
    assert_eq!(read(&kernel, 0, 8, 1), Err(AV));
    assert_eq!(read(&kernel, usize::MAX - 3, 8, 1), Err(AV));
    // Still fault-guarded.
    assert_eq!(read(&kernel, 0x1000, 8, 1), Err(AV));
    assert_eq!(read(&kernel, m - 4, 8, 1), Err(AV));
    assert_eq!(kernel.write(fenced.end() - 4, &[1; 8], 1), Err(AV));
}

#[test]
fn non_canonical_addresses() {
    for addr in [
        1 << 47,
        0x1234_5678_9abc_def0,
        0x8000_0000_0000_0000,
        0xffff_8000_0000_0000,
    ] {
        for space in [SehSpace::new(), SehSpace::kernel()] {
            assert_eq!(read(&space, addr, 8, 8), Err(AV), "{addr:#x} {space:?}");
            assert_eq!(read(&space, addr, 5000, 1), Err(AV), "{addr:#x} {space:?}");
            assert_eq!(space.write(addr, &[0; 8], 8), Err(AV));
        }
    }
    // A range that starts canonical and runs into the hole: kernel mode
    // copies up to the fault and reports it.
    assert_eq!(read(&SehSpace::kernel(), (1 << 47) - 8, 16, 1), Err(AV));
}

#[test]
fn writes_go_to_user_memory_only() {
    let fenced = Fenced::new(1, Fence::NoAccess);
    let m = fenced.addr();
    for space in [SehSpace::new(), SehSpace::kernel()] {
        assert_eq!(space.write(m, &[0xEE; 16], 1), Ok(()));
        assert_eq!(
            space.write(fenced.end() - 8, &[0xEE; 16], 1),
            Err(AV),
            "into the fence"
        );
        let mut writer = UserWriter::user(m + 64, 16);
        writer.write(&space, &0x0102_0304_u32).unwrap();
        writer.write_bytes(&space, &[9; 12]).unwrap();
        assert_eq!(
            writer.write_bytes(&space, &[1]),
            Err(CaptureError::BufferTooSmall)
        );
        assert_eq!(writer.finish(), 16);
    }
    let back = fenced.read(64, 16);
    assert_eq!(&back[..4], &0x0102_0304_u32.to_le_bytes());
    assert_eq!(&back[4..], &[9; 12]);
    // A dropped region is no longer user memory: writes are refused, reads
    // fault (its pages are decommitted, still reserved).
    let gone = UserMemory::new(page_size()).unwrap();
    let addr = gone.addr();
    drop(gone);
    assert_eq!(SehSpace::new().write(addr, &[1; 8], 1), Err(AV));
    assert_eq!(read(&SehSpace::new(), addr, 8, 1), Err(AV));
}

#[test]
fn captures_from_user_memory() {
    let fenced = Fenced::new(1, Fence::NoAccess);
    let m = fenced.addr();
    let data: Vec<u8> = (0..page_size()).map(pattern).collect();
    fenced.write(0, &data);
    let space = SehSpace::new();
    let words = UserSlice::<u32>::new(m + 16, 10)
        .unwrap()
        .capture(&space)
        .unwrap();
    assert_eq!(
        usercap::zerocopy::IntoBytes::as_bytes(&*words),
        &data[16..56]
    );
    let whole = UserSlice::<u8>::new(m, page_size())
        .unwrap()
        .capture(&space)
        .unwrap();
    assert_eq!(&whole[..], &data[..]);
    let fault = UserSlice::<u8>::new(m + 8, page_size())
        .unwrap()
        .capture(&space);
    assert_eq!(fault.unwrap_err(), AV);
    let limited = space.with_limits(Limits {
        max_capture: 16,
        max_request: 32,
    });
    let big = UserSlice::<u8>::new(m, 17).unwrap().capture(&limited);
    assert_eq!(big.unwrap_err(), CaptureError::TooLarge);
}

/// A guard page under a capture is an access violation, and is consumed.
#[test]
fn a_guard_page_fails_a_capture() {
    let fenced = Fenced::new(1, Fence::Guard);
    let space = SehSpace::new();
    let at = fenced.end() - 8;
    assert_eq!(
        UserPtr::<[u8; 16]>::new(at).capture(&space).unwrap_err(),
        AV
    );
    assert!(
        UserPtr::<[u8; 16]>::new(at).capture(&space).is_ok(),
        "consumed"
    );
}

/// Every size a typed capture can take to 256 bytes, at every start where
/// the value runs off either end of the page, by value and in place.
#[test]
fn typed_captures_in_both_forms_are_exact_at_the_page_edges() {
    macro_rules! sizes {
        ($($n:literal)*) => {$(check::<$n>();)*};
    }
    fn check<const N: usize>() {
        let fenced = Fenced::new(1, Fence::NoAccess);
        let (m, e) = (fenced.addr(), fenced.end());
        let data: Vec<u8> = (0..page_size()).map(pattern).collect();
        fenced.write(0, &data);
        let space = SehSpace::new();
        let mut slot = CaptureSlot::<[u8; N]>::new();
        for start in (m.saturating_sub(N)..=m + 8).chain(e - N - 8..=e) {
            let inside = start >= m && start + N <= e;
            let by_value = UserPtr::<[u8; N]>::new(start).capture(&space);
            let in_place = UserPtr::<[u8; N]>::new(start)
                .capture_into(&space, &mut slot)
                .map(|c| **c);
            if inside {
                let want = &data[start - m..start - m + N];
                assert_eq!(&by_value.unwrap()[..], want, "{N} bytes at {start:#x}");
                assert_eq!(&in_place.unwrap()[..], want, "{N} bytes at {start:#x}");
            } else {
                assert_eq!(by_value.unwrap_err(), AV, "{N} bytes at {start:#x}");
                assert_eq!(in_place.unwrap_err(), AV, "{N} bytes at {start:#x}");
            }
        }
    }
    sizes!(1 2 3 4 5 7 8 9 15 16 17 31 32 33 48 63 64 65 95 96 97 127 128 129 200 255 256 257 4096);
}
