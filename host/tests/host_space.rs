//! `HostSpace`: the probe rules in order and at their boundaries (the
//! shared table of `usercap_tests::probe`), kernel
//! buffers, the write restriction, non-canonical addresses and SIGBUS, on
//! real memory.
#![cfg(unix)]

mod common;

use common::GuardedPage;
use usercap::{
    AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, Limits, Mode, UserPtr, UserSlice, UserWriter,
};
use usercap_host::guarded::page_size;
use usercap_host::{
    Backend, HostSpace, KernelBuffer, MAX_KERNEL_BUFFER_LEN, Prot, UserMemory, is_kernel_range,
};
use usercap_tests::probe::{Layout, PAGE, run_probe_cases};

const AV: CaptureError = CaptureError::AccessViolation;
const BACKENDS: [Backend; 2] = [Backend::Guarded, Backend::ProcessVmReadv];

fn spaces() -> impl Iterator<Item = HostSpace> {
    BACKENDS
        .into_iter()
        .map(|backend| HostSpace::new().with_backend(backend))
}

fn read(space: &HostSpace, addr: usize, len: usize, align: usize) -> Result<Vec<u8>, CaptureError> {
    let mut buf = vec![0; len];
    space.read(addr, &mut buf, align).map(|()| buf)
}

#[test]
fn is_send_sync_copy_and_configurable() {
    fn shared<T: Send + Sync + Copy + 'static>() {}
    shared::<HostSpace>();
    let space = HostSpace::default();
    assert_eq!(space, HostSpace::new());
    assert_eq!(space.mode(), Mode::User);
    assert_eq!(space.probe_limit(), DEFAULT_PROBE_LIMIT);
    assert_eq!(space.backend(), Backend::Guarded);
    assert_eq!(space.limits(), Limits::DEFAULT);
    assert_eq!(HostSpace::kernel().mode(), Mode::Kernel);
    let custom = HostSpace::new()
        .with_probe_limit(0x1234_0000)
        .with_backend(Backend::ProcessVmReadv)
        .with_limits(Limits {
            max_capture: 16,
            max_request: 32,
        });
    assert_eq!(custom.probe_limit(), 0x1234_0000);
    assert_eq!(custom.backend(), Backend::ProcessVmReadv);
    assert_eq!(custom.limits().max_capture, 16);
}

#[test]
fn zero_length_touches_nothing() {
    for space in spaces().chain([HostSpace::kernel()]) {
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

/// The probe rules in order and at their boundaries: the table every
/// backend runs (`usercap_tests::probe`, also run by `SimSpace` and
/// `SehSpace`), on both backends, over one read-write page fenced by
/// `PROT_NONE` pages.
#[test]
fn the_host_follows_every_probe_case() {
    let gp = GuardedPage::new();
    gp.fill(0x42);
    let layout = Layout {
        page: gp.addr(),
        page_len: PAGE,
        limit: DEFAULT_PROBE_LIMIT,
    };
    for backend in BACKENDS {
        let failures = run_probe_cases(&layout, |limit| {
            let space = HostSpace::new().with_backend(backend);
            match limit {
                None => space,
                Some(limit) => space.with_probe_limit(limit),
            }
        });
        assert!(failures.is_empty(), "{backend:?}: {failures:#?}");
    }
    // What the table's accepted reads return is the page's bytes.
    let m = gp.addr();
    for space in spaces() {
        assert_eq!(read(&space, m + page_size() - 8, 8, 8), Ok(vec![0x42; 8]));
        let limited = space.with_probe_limit(m + 64);
        assert_eq!(read(&limited, m + 56, 8, 8), Ok(vec![0x42; 8]));
    }
    assert!(usercap_host::guarded::is_guarded());
}

#[test]
fn kernel_mode_skips_the_probe_but_not_the_fault_guard() {
    let gp = GuardedPage::new();
    let m = gp.addr();
    gp.fill(7);
    for backend in BACKENDS {
        let kernel = HostSpace::kernel().with_backend(backend);
        // No alignment check, no limit.
        assert_eq!(read(&kernel, m + 1, 4, 4), Ok(vec![7; 4]));
        assert_eq!(read(&kernel, m + 1, 8, 3), Ok(vec![7; 8]));
        // Still fault-guarded.
        assert_eq!(read(&kernel, 0, 8, 1), Err(AV));
        assert_eq!(read(&kernel, 0x1000, 8, 1), Err(AV));
        assert_eq!(read(&kernel, m - 4, 8, 1), Err(AV));
        assert_eq!(kernel.write(m + page_size() - 4, &[1; 8], 1), Err(AV));
    }
}

#[test]
fn non_canonical_addresses() {
    let addrs = [
        1 << 47,
        0x1234_5678_9abc_def0,
        0x8000_0000_0000_0000,
        0xffff_8000_0000_0000,
        0xffff_ffff_ff60_0000,
    ];
    for addr in addrs {
        for space in spaces().chain(BACKENDS.map(|b| HostSpace::kernel().with_backend(b))) {
            assert_eq!(read(&space, addr, 8, 8), Err(AV), "{addr:#x} {space:?}");
            assert_eq!(read(&space, addr, 5000, 1), Err(AV), "{addr:#x} {space:?}");
            assert_eq!(space.write(addr, &[0; 8], 8), Err(AV));
        }
    }
    // A range that starts canonical and runs into the hole: kernel mode
    // copies up to the #GP and reports the fault.
    let kernel = HostSpace::kernel();
    assert_eq!(read(&kernel, (1 << 47) - 8, 16, 1), Err(AV));
}

#[test]
fn kernel_buffers_are_rejected_in_user_mode_and_readable_in_kernel_mode() {
    let secret: Vec<u8> = (0..48).map(|i| 0xA0 ^ i).collect();
    let mut kb = KernelBuffer::from_bytes(&secret).unwrap();
    let (k, len) = (kb.addr(), kb.len());
    assert_eq!(
        k % 4096,
        0,
        "page-aligned, so pool-like 16-byte alignment too"
    );
    assert_eq!(len, 48);
    assert_eq!(kb.as_slice(), &secret[..]);
    assert!(is_kernel_range(k, 1) && is_kernel_range(k + len - 1, 1) && is_kernel_range(k, 0));
    // Past the buffer is still system space: its slot's guard.
    assert!(is_kernel_range(k + len, 8));
    let (start, end) = usercap_host::guarded::system_space();
    assert!(start <= k && k + len <= end);
    assert_eq!(end - start, usercap_host::guarded::SYSTEM_SPACE_LEN);
    assert!(!is_kernel_range(start - 8, 8) && !is_kernel_range(end, 8));
    assert!(is_kernel_range(start - 8, 9) && is_kernel_range(end - 1, 8));
    for space in spaces() {
        assert_eq!(read(&space, k, len, 1), Err(AV));
        assert_eq!(read(&space, k + len - 1, 1, 1), Err(AV), "last byte");
        assert_eq!(read(&space, k - 8, 9, 1), Err(AV), "first byte, from below");
        assert_eq!(read(&space, k - 64, 1024, 1), Err(AV), "covers it");
        assert_eq!(read(&space, start - 8, 9, 1), Err(AV), "into system space");
        assert!(UserPtr::<[u8; 48]>::new(k).capture(&space).is_err());
        assert!(
            UserSlice::<u8>::new(k + 8, 8)
                .unwrap()
                .capture(&space)
                .is_err()
        );
        // Past the buffer, in its slot's guard: still a kernel address.
        assert_eq!(read(&space, k + len, 8, 8), Err(AV));
    }
    for backend in BACKENDS {
        let kernel = HostSpace::kernel().with_backend(backend);
        assert_eq!(read(&kernel, k, len, 1), Ok(secret.clone()));
        let captured = UserPtr::<[u8; 48]>::new(k).capture(&kernel).unwrap();
        assert_eq!(&captured[..], &secret[..]);
        // Kernel mode may read it, but no HostSpace writes it.
        assert_eq!(kernel.write(k, &[0; 8], 1), Err(AV));
        // The slot's guard faults even in kernel mode.
        assert_eq!(read(&kernel, k + MAX_KERNEL_BUFFER_LEN, 8, 1), Err(AV));
    }
    assert_eq!(kb.as_slice(), &secret[..]);
    kb.as_mut_slice()[0] = 0;
    assert_eq!(kb.as_slice()[0], 0);
    drop(kb);
    // Freed, the address stays a kernel address, and it no longer reads.
    assert!(is_kernel_range(k, len), "still system space after drop");
    assert_eq!(read(&HostSpace::new(), k, len, 1), Err(AV));
    assert_eq!(
        read(&HostSpace::kernel(), k, len, 1),
        Err(AV),
        "unmapped on drop"
    );

    let empty = KernelBuffer::new(0).unwrap();
    assert!(empty.is_empty() && empty.as_slice().is_empty());
    assert!(
        is_kernel_range(empty.addr(), 0),
        "an empty buffer has a kernel address"
    );
    assert!(format!("{empty:?}").contains("KernelBuffer"));
}

#[test]
fn many_kernel_buffers_live_in_system_space_apart() {
    let mut buffers: Vec<KernelBuffer> = (1..=100).map(|n| KernelBuffer::new(n).unwrap()).collect();
    for (i, b) in buffers.iter_mut().enumerate() {
        assert!(is_kernel_range(b.addr(), b.len()));
        assert_eq!(read(&HostSpace::new(), b.addr(), 1, 1), Err(AV));
        b.as_mut_slice().fill(u8::try_from(i).unwrap());
    }
    // Writing one never touched another, and each came zeroed.
    for (i, b) in buffers.iter().enumerate() {
        assert!(b.as_slice().iter().all(|&x| usize::from(x) == i));
    }
    let addrs: Vec<usize> = buffers.iter().map(KernelBuffer::addr).collect();
    drop(buffers);
    // Freed slots come round again (next-fit: after every other slot), and
    // are reused zeroed: nothing of a freed buffer leaks into a new one at
    // the same address.
    let mut reused = 0;
    for _ in 0..2 * usercap_host::MAX_KERNEL_BUFFERS {
        let b = KernelBuffer::new(64).unwrap();
        assert!(b.as_slice().iter().all(|&x| x == 0));
        reused += usize::from(addrs.contains(&b.addr()));
    }
    assert!(reused > 0, "no freed slot came round again");
}

#[test]
fn writes_go_to_user_memory_only() {
    let gp = GuardedPage::new();
    let m = gp.addr();
    let mut heap = vec![0x11_u8; 64];
    let heap_addr = heap.as_mut_ptr().addr();
    for space in spaces().chain([HostSpace::kernel()]) {
        assert_eq!(space.write(heap_addr, &[0xEE; 16], 1), Err(AV));
        assert_eq!(space.write(m, &[0xEE; 16], 1), Ok(()));
        assert_eq!(
            space.write(m + page_size() - 8, &[0xEE; 16], 1),
            Err(AV),
            "into the guard page"
        );
        let mut writer = UserWriter::user(m + 64, 16);
        writer.write(&space, &0x0102_0304_u32).unwrap();
        writer.write_bytes(&space, &[9; 12]).unwrap();
        assert_eq!(
            writer.write_bytes(&space, &[1]),
            Err(CaptureError::BufferTooSmall)
        );
        assert_eq!(writer.finish(), 16);
        let mut writer = UserWriter::user(heap_addr, 16);
        assert_eq!(writer.write(&space, &1u64), Err(AV));
    }
    assert!(heap.iter().all(|&b| b == 0x11), "heap untouched");
    heap.clear();
    let mut back = [0u8; 16];
    gp.memory().read_at(page_size() + 64, &mut back).unwrap();
    assert_eq!(&back[..4], &0x0102_0304_u32.to_le_bytes());
    assert_eq!(&back[4..], &[9; 12]);
}

#[test]
fn captures_from_user_memory() {
    let gp = GuardedPage::new();
    let m = gp.addr();
    let data: Vec<u8> = (0..page_size()).map(common::pattern).collect();
    gp.write(0, &data);
    for space in spaces() {
        let words = UserSlice::<u32>::new(m + 16, 10)
            .unwrap()
            .capture(&space)
            .unwrap();
        assert_eq!(words.as_bytes(), &data[16..56]);
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
}

#[cfg(target_os = "linux")]
#[test]
fn sigbus_through_host_space() {
    let page = page_size();
    let mem = UserMemory::shared_file(2 * page).unwrap();
    mem.fill(0x77).unwrap();
    mem.set_file_len(page).unwrap();
    let base = mem.addr();
    for space in spaces().chain([HostSpace::kernel()]) {
        let first = UserSlice::<u8>::new(base, page)
            .unwrap()
            .capture(&space)
            .unwrap();
        assert!(first.iter().all(|&b| b == 0x77));
        let both = UserSlice::<u8>::new(base, 2 * page)
            .unwrap()
            .capture(&space);
        assert_eq!(both.unwrap_err(), AV);
        assert_eq!(read(&space, base + page - 4, 8, 4), Err(AV));
        assert_eq!(space.write(base + page - 4, &[1; 8], 4), Err(AV));
        assert_eq!(space.write(base + page - 8, &[0x77; 8], 8), Ok(()));
    }
    assert!(usercap_host::guarded::is_guarded());
    let _ = Prot::ReadWrite;
}

#[test]
fn slice_captures_copy_straight_into_pool_exactly() {
    // HostSpace overrides read_to_pool to skip the zero-fill; the result
    // must still be exactly the user's bytes, at every length, and a range
    // that runs into a guard page must give nothing at all.
    let page = usercap_host::guarded::page_size();
    let memory = UserMemory::new(2 * page).unwrap();
    let bytes: Vec<u8> = (0..page).map(|i| (i * 31 + 7).to_le_bytes()[0]).collect();
    memory.write_at(0, &bytes).unwrap();
    memory
        .protect(page, page, usercap_host::Prot::None)
        .unwrap();
    let space = HostSpace::new();
    for len in [1, 15, 16, 17, 37, 255, 256, 4095, page] {
        let at = page - len;
        let copy = usercap::UserSlice::<u8>::new(memory.addr() + at, len)
            .unwrap()
            .capture(&space)
            .unwrap();
        assert_eq!(copy.as_bytes(), &bytes[at..], "length {len}");
    }
    let into_guard = usercap::UserSlice::<u8>::new(memory.addr() + page - 8, 9)
        .unwrap()
        .capture(&space);
    assert_eq!(
        into_guard.unwrap_err(),
        usercap::CaptureError::AccessViolation
    );
    let empty = usercap::UserSlice::<u8>::new(0xDEAD, 0)
        .unwrap()
        .capture(&space)
        .unwrap();
    assert!(empty.is_empty());
    // The kernel-mode and default paths agree with it.
    let kernel = HostSpace::kernel();
    let copy = usercap::UserSlice::<u32>::new(memory.addr(), 100)
        .unwrap()
        .capture(&kernel)
        .unwrap();
    assert_eq!(copy.as_bytes(), &bytes[..400]);
}

/// Both forms of a typed capture of `N` bytes at every start where the
/// value runs off either end of the page, and at a few inside it, against
/// what the page holds: the value when every byte is readable, else
/// `AccessViolation`. `HostSpace` copies `capture`'s value into
/// uninitialised memory; through `Budgeted` the same override is reached by
/// forwarding; `capture_into` reads into a slot that still holds the last
/// capture.
fn both_forms_at_the_page_edges<const N: usize>(page: &GuardedPage) {
    let base = page.addr();
    let size = page_size();
    let bytes = page.read();
    let mut slot = usercap::CaptureSlot::<[u8; N]>::new();
    let starts = (0..=N)
        .map(|k| base - k)
        .chain((0..=N).map(|k| base + size - k))
        .chain([base + 1, base + size / 2]);
    for space in spaces() {
        let budgeted = usercap::Budgeted::new(&space);
        for addr in starts.clone() {
            let expected = (addr >= base && addr + N <= base + size)
                .then(|| bytes[addr - base..addr - base + N].to_vec())
                .ok_or(AV);
            let by_value = UserPtr::<[u8; N]>::new(addr)
                .capture(&space)
                .map(|c| c.to_vec());
            assert_eq!(by_value, expected, "capture of {N} at {addr:#x}");
            let forwarded = UserPtr::<[u8; N]>::new(addr)
                .capture(&budgeted)
                .map(|c| c.to_vec());
            assert_eq!(forwarded, expected, "budgeted capture of {N} at {addr:#x}");
            let in_place = UserPtr::<[u8; N]>::new(addr)
                .capture_into(&space, &mut slot)
                .map(|c| c.to_vec());
            assert_eq!(in_place, expected, "capture_into of {N} at {addr:#x}");
        }
    }
}

/// Calls `$check::<N>(page)` for every `N` from 1 to 256.
macro_rules! every_size_to_256 {
    ($check:ident, $page:expr) => {
        every_size_to_256!(@high $check, $page; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
    (@high $check:ident, $page:expr; $($high:literal)*) => {
        $(every_size_to_256!(@low $check, $page, $high; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);)*
    };
    (@low $check:ident, $page:expr, $high:literal; $($low:literal)*) => {
        $($check::<{ $high * 16 + $low }>($page);)*
    };
}

/// Every value size up to 256 bytes, where `HostSpace` reads with inline
/// loads and every size class (and, within a class, every length) has a
/// block of its own; and two sizes above, where the routine copies.
#[test]
fn typed_captures_in_both_forms_are_exact_at_the_page_edges() {
    let page = GuardedPage::new();
    let data: Vec<u8> = (0..page_size()).map(common::pattern).collect();
    page.write(0, &data);
    every_size_to_256!(both_forms_at_the_page_edges, &page);
    both_forms_at_the_page_edges::<257>(&page);
    both_forms_at_the_page_edges::<4096>(&page);
}
