//! SUM written three ways over the same real memory, for
//! docs/linux-comparison.md, which quotes these functions:
//!
//! - [`naive_windows_sum`]: the classic Windows driver, through
//!   `usercap_host::naive::NaiveSum` (probe, fetch the count to validate it,
//!   fetch it again to use it);
//! - [`linux_sum`]: a Linux driver, through `usercap_host::linux`;
//! - the `Captured` SUM: `usercap-device`'s handler (`Device::dispatch`).
//!
//! Done right, the Linux shape and the `Captured` shape agree on every
//! input, and under a racing thread both act on one snapshot. The Linux
//! shape's hazards are in what the API lets a caller forget: ignoring
//! `copy_from_user`'s return value uses a zero-filled header, and nothing
//! stops a second `copy_from_user` of the same count.
#![cfg(unix)]

use std::sync::atomic::{AtomicBool, Ordering};

use usercap::NtStatus;
use usercap::zerocopy::{FromBytes, FromZeros, IntoBytes};
use usercap_device::Device;
use usercap_host::linux::{Errno, copy_from_user, copy_to_user, memdup_user};
use usercap_host::naive::NaiveSum;
use usercap_host::{Driver, HostSpace, IoManager, Ioctl, UserMemory};
use usercap_protocol::{IOCTL_SUM, MAX_SUM_VALUES, SumReply, SumRequest};

type TestDevice = Device<spin::mutex::SpinMutex<()>>;

/// SUM, the Linux way: one `copy_from_user` of the header into a kernel
/// struct, validation of that copy, `memdup_user` of the values, and one
/// `copy_to_user` of the reply.
fn linux_sum(input: usize, output: usize) -> Result<SumReply, Errno> {
    let mut header = SumRequest::new_zeroed();
    if copy_from_user(header.as_mut_bytes(), input) != 0 {
        return Err(Errno::EFAULT);
    }
    if header.count > MAX_SUM_VALUES {
        return Err(Errno::E2BIG);
    }
    // Bounded by the check above: no overflow.
    let len = usize::try_from(header.count).map_err(|_| Errno::EINVAL)? * 4;
    let values = memdup_user(
        usize::try_from(header.values).map_err(|_| Errno::EFAULT)?,
        len,
    )?;
    let sum = values
        .chunks_exact(4)
        .map(|v| u64::from(u32::from_le_bytes([v[0], v[1], v[2], v[3]])))
        .sum();
    let reply = SumReply {
        sum,
        count: header.count,
    };
    if copy_to_user(output, reply.as_bytes()) != 0 {
        return Err(Errno::EFAULT);
    }
    Ok(reply)
}

/// SUM through the I/O manager model, to whichever driver handles it.
fn sum_via<D: Driver>(driver: &D, input: usize, output: usize) -> (NtStatus, SumReply) {
    let space = HostSpace::new();
    let ioctl = Ioctl {
        code: IOCTL_SUM,
        input,
        input_len: 16,
        output,
        output_len: 16,
    };
    let completion = IoManager::new(driver)
        .device_io_control(&space, &ioctl)
        .expect("no Verifier violation");
    (completion.status, read_reply(output))
}

/// SUM, the classic Windows way (the anti-pattern).
fn naive_windows_sum(naive: &NaiveSum, input: usize, output: usize) -> (NtStatus, SumReply) {
    sum_via(naive, input, output)
}

/// SUM, usercap's way: `Device::dispatch`.
fn captured_sum(device: &TestDevice, input: usize, output: usize) -> (NtStatus, SumReply) {
    sum_via(device, input, output)
}

fn read_reply(output: usize) -> SumReply {
    let mut bytes = [0u8; 16];
    assert_eq!(copy_from_user(&mut bytes, output), 0);
    SumReply::read_from_bytes(&bytes).unwrap()
}

struct Setup {
    memory: UserMemory,
}

impl Setup {
    const VALUES: usize = 0x1000;
    const OUTPUT: usize = 0x100;

    fn new(values: &[u32]) -> Self {
        let memory =
            UserMemory::new(0x1000 + (usize::try_from(MAX_SUM_VALUES).unwrap() + 1) * 4).unwrap();
        memory.write_at(Self::VALUES, values.as_bytes()).unwrap();
        let header = SumRequest {
            count: values.len() as u64,
            values: (memory.addr() + Self::VALUES) as u64,
        };
        memory.write_at(0, header.as_bytes()).unwrap();
        Self { memory }
    }
    fn input(&self) -> usize {
        self.memory.addr()
    }
    fn output(&self) -> usize {
        self.memory.addr() + Self::OUTPUT
    }
}

#[test]
fn the_three_shapes_agree_on_ordinary_input() {
    let setup = Setup::new(&[5, 6, 7, u32::MAX]);
    let expected = SumReply {
        sum: 18 + u64::from(u32::MAX),
        count: 4,
    };
    assert_eq!(linux_sum(setup.input(), setup.output()), Ok(expected));
    let device = TestDevice::new();
    assert_eq!(
        captured_sum(&device, setup.input(), setup.output()),
        (NtStatus::STATUS_SUCCESS, expected)
    );
    let naive = NaiveSum::new();
    assert_eq!(
        naive_windows_sum(&naive, setup.input(), setup.output()),
        (NtStatus::STATUS_SUCCESS, expected)
    );
}

#[test]
fn the_three_shapes_refuse_bad_pointers_and_counts() {
    let setup = Setup::new(&[1, 2]);
    let device = TestDevice::new();
    // A kernel values pointer.
    setup
        .memory
        .write_at(8, &0xFFFF_8000_0000_0000u64.to_le_bytes())
        .unwrap();
    assert_eq!(linux_sum(setup.input(), setup.output()), Err(Errno::EFAULT));
    assert_eq!(
        captured_sum(&device, setup.input(), setup.output()).0,
        NtStatus::STATUS_ACCESS_VIOLATION
    );
    // A count over the limit.
    let setup = Setup::new(&[1, 2]);
    setup
        .memory
        .write_at(0, &(MAX_SUM_VALUES + 1).to_le_bytes())
        .unwrap();
    assert_eq!(linux_sum(setup.input(), setup.output()), Err(Errno::E2BIG));
    assert_eq!(
        captured_sum(&device, setup.input(), setup.output()).0,
        NtStatus::STATUS_INVALID_BUFFER_SIZE
    );
}

/// Runs `rounds` of `sum` while a thread flips the count between 2 and one
/// over the limit; returns the replies that were accepted with a count
/// other than the validated 2 (reads past the validated bound).
fn race(setup: &Setup, rounds: u32, sum: impl Fn() -> Option<SumReply>) -> u32 {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = setup
                    .memory
                    .write_at(0, &(MAX_SUM_VALUES + 1).to_le_bytes());
                let _ = setup.memory.write_at(0, &2u64.to_le_bytes());
            }
        });
        let past_bound = (0..rounds)
            .filter(|_| sum().is_some_and(|r| r.count != 2 || r.sum != 3))
            .count();
        stop.store(true, Ordering::Relaxed);
        u32::try_from(past_bound).unwrap()
    })
}

#[test]
fn under_a_racing_count_linux_and_captured_act_on_one_snapshot() {
    let setup = Setup::new(&[1, 2]);
    let device = TestDevice::new();
    assert_eq!(
        race(&setup, 3000, || linux_sum(setup.input(), setup.output())
            .ok()),
        0
    );
    assert_eq!(
        race(&setup, 3000, || {
            let (status, reply) = captured_sum(&device, setup.input(), setup.output());
            status.is_success().then_some(reply)
        }),
        0
    );
}

#[test]
fn a_linux_driver_that_ignores_copy_from_user_uses_a_zero_filled_header() {
    // The header runs into a guard page after its first 4 bytes: the copy
    // is partial, and the uncopied tail is zero-filled, not stale.
    let memory = UserMemory::new(2 * usercap_host::guarded::page_size()).unwrap();
    let page = usercap_host::guarded::page_size();
    memory
        .protect(page, page, usercap_host::Prot::None)
        .unwrap();
    memory.write_at(page - 4, &7u32.to_le_bytes()).unwrap();
    let mut header = SumRequest::new_zeroed();
    let not_copied = copy_from_user(header.as_mut_bytes(), memory.addr() + page - 4);
    assert_eq!(not_copied, 12);
    assert_eq!(
        (header.count, header.values),
        (7, 0),
        "the forgetful driver sees count 7, values 0"
    );
    // usercap hands out nothing on a partial copy.
    let space = HostSpace::new();
    let captured = usercap::UserPtr::<[u8; 16]>::new(memory.addr() + page - 4).capture(&space);
    assert_eq!(
        captured.unwrap_err(),
        usercap::CaptureError::AccessViolation
    );
}
