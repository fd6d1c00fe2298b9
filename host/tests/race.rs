//! Real races on real memory: a user thread flips a count between a small
//! and a huge value while the kernel model reads it.
//!
//! - Captured: every capture sees one of the two values, and a parse never
//!   goes past the captured bytes (it cannot fail, whatever the timing).
//! - The real device's SUM: always the small count or a clean rejection.
//! - The naive SUM: the double fetch is caught in the act (it can fail, and
//!   does within a bounded number of rounds).
//!
//! The flipper writes the whole 8-byte header with one write: the guarded
//! copy moves 8 to 31 bytes as aligned qwords, so each write and each 8-byte
//! read is a single access and the values never tear.
#![cfg(unix)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use usercap::{CaptureError, NtStatus, UserPtr, UserSlice};
use usercap_device::Device;
use usercap_host::naive::NaiveSum;
use usercap_host::{HostSpace, IoManager, Ioctl, UserMemory};
use usercap_protocol::{IOCTL_SUM, MAX_SUM_VALUES, Message, SumReply};
use zerocopy::FromBytes;

type Raw = spin::mutex::SpinMutex<()>;

/// The races run one at a time, so that each gets both cores when the
/// machine has them.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const SMALL: u32 = 4;
const HUGE: u32 = u32::MAX;

fn header(kind: u32, count: u32) -> [u8; 8] {
    let mut h = [0; 8];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h[4..].copy_from_slice(&count.to_le_bytes());
    h
}

#[test]
fn captured_count_is_one_of_two_and_parse_stays_inside() {
    let _serial = serial();
    let mem = UserMemory::new(4096).unwrap();
    let items: Vec<u8> = (1..=SMALL).flat_map(u32::to_le_bytes).collect();
    mem.write_at(8, &items).unwrap();
    mem.write_at(0, &header(7, SMALL)).unwrap();
    let addr = mem.addr();
    let space = HostSpace::new();
    let message_len = 8 + items.len();

    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (mut rounds, mut small, mut huge) = (0u64, 0u64, 0u64);
    let flips = std::thread::scope(|s| {
        let flipper = s.spawn(|| {
            let (a, b) = (header(7, SMALL), header(7, HUGE));
            let mut flips = 0u64;
            while !stop.load(Ordering::Relaxed) {
                mem.write_at(0, &a).unwrap();
                mem.write_at(0, &b).unwrap();
                flips += 2;
            }
            flips
        });
        while start.elapsed() < Duration::from_millis(2500)
            && (rounds < 20_000 || small == 0 || huge == 0)
        {
            rounds += 1;
            // A fixed-size capture: one of the two values, never a mix.
            let [kind, count] = UserPtr::<[u32; 2]>::new(addr)
                .capture(&space)
                .unwrap()
                .into_inner();
            assert_eq!(kind, 7);
            assert!(count == SMALL || count == HUGE, "torn count {count:#x}");
            // A header + trailing array: the count is checked against the
            // captured length, on the kernel copy.
            let bytes = UserSlice::<u8>::new(addr, message_len)
                .unwrap()
                .capture(&space)
                .unwrap();
            match bytes.parse::<Message>() {
                Ok(message) => {
                    assert_eq!(message.count, SMALL);
                    assert_eq!(message.items, [1, 2, 3, 4]);
                    assert!(size_of_val(message) <= bytes.len());
                    small += 1;
                }
                Err(error) => {
                    assert_eq!(error, CaptureError::Invalid);
                    let (header, _) = <[u32; 2]>::read_from_prefix(&bytes).unwrap();
                    assert_eq!(header[1], HUGE, "only the huge count is rejected");
                    huge += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap()
    });
    eprintln!(
        "{rounds} rounds in {:?}: {small} small, {huge} huge; {flips} flips",
        start.elapsed()
    );
    assert!(
        small > 0 && huge > 0,
        "the race did not happen: {small} small, {huge} huge"
    );
}

/// The user side of a SUM request in one region: the request at 0, the reply
/// at 64, `values` of 1 from one page on.
struct SumSetup {
    mem: UserMemory,
}

impl SumSetup {
    fn new(values: usize) -> Self {
        let page = usercap_host::guarded::page_size();
        let mem = UserMemory::new(page + values * 4).unwrap();
        let ones: Vec<u8> = std::iter::repeat_n(1u32.to_le_bytes(), values)
            .flatten()
            .collect();
        mem.write_at(page, &ones).unwrap();
        let values_addr = (mem.addr() + page) as u64;
        mem.write_at(8, &values_addr.to_le_bytes()).unwrap();
        mem.write_at(0, &u64::from(SMALL).to_le_bytes()).unwrap();
        Self { mem }
    }

    fn ioctl(&self) -> Ioctl {
        Ioctl {
            code: IOCTL_SUM,
            input: self.mem.addr(),
            input_len: 16,
            output: self.mem.addr() + 64,
            output_len: 16,
        }
    }

    fn reply(&self) -> SumReply {
        let mut bytes = [0; 16];
        self.mem.read_at(64, &mut bytes).unwrap();
        SumReply::read_from_bytes(&bytes).unwrap()
    }

    fn flip(&self, huge: u64) {
        let (a, b) = (u64::from(SMALL).to_le_bytes(), huge.to_le_bytes());
        self.mem.write_at(0, &a).unwrap();
        self.mem.write_at(0, &b).unwrap();
    }
}

#[test]
fn device_sum_uses_the_count_it_validated() {
    let _serial = serial();
    let setup = SumSetup::new(SMALL as usize);
    let device = Device::<Raw>::new();
    let io = IoManager::new(&device);
    let space = HostSpace::new();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (mut ok, mut rejected, mut rounds) = (0u64, 0u64, 0u64);
    std::thread::scope(|s| {
        let flipper = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                setup.flip(MAX_SUM_VALUES * 4);
            }
        });
        while start.elapsed() < Duration::from_millis(1500)
            && (rounds < 20_000 || ok == 0 || rejected == 0)
        {
            rounds += 1;
            let done = io.device_io_control(&space, &setup.ioctl()).unwrap();
            if done.status == NtStatus::STATUS_SUCCESS {
                assert_eq!(done.information, 16);
                assert_eq!(setup.reply(), SumReply { sum: 4, count: 4 });
                ok += 1;
            } else {
                assert_eq!(done.status, NtStatus::STATUS_INVALID_BUFFER_SIZE);
                rejected += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
    });
    eprintln!("device: {rounds} rounds, {ok} summed 4 values, {rejected} rejected");
    assert!(ok > 0 && rejected > 0, "the race did not happen");
}

#[test]
fn naive_sum_overreads_under_the_same_race() {
    let _serial = serial();
    // Enough values that the over-read succeeds and shows in the reply.
    let huge = MAX_SUM_VALUES * 4;
    let setup = SumSetup::new(usize::try_from(huge).unwrap());
    let naive = NaiveSum::new();
    let io = IoManager::new(&naive);
    let space = HostSpace::new();

    // Without a race, it is correct.
    let done = io.device_io_control(&space, &setup.ioctl()).unwrap();
    assert_eq!(done.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(setup.reply(), SumReply { sum: 4, count: 4 });
    assert_eq!(naive.overreads(), 0);

    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (mut rounds, mut exploited) = (0u64, 0u64);
    std::thread::scope(|s| {
        let flipper = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                setup.flip(huge);
            }
        });
        // Until the first overread; on two free cores that takes
        // milliseconds. The time bound is for a machine whose other core is
        // busy, where only preemption inside the window between the two
        // fetches can show the race.
        while naive.overreads() == 0 && start.elapsed() < Duration::from_secs(5) {
            rounds += 1;
            let done = io.device_io_control(&space, &setup.ioctl()).unwrap();
            if done.status == NtStatus::STATUS_SUCCESS && setup.reply().count > MAX_SUM_VALUES {
                exploited += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
    });
    eprintln!(
        "naive: {rounds} rounds in {:?}, {} requests, {} overreads ({} values past the validated count), {exploited} replies with count > MAX_SUM_VALUES",
        start.elapsed(),
        naive.requests(),
        naive.overreads(),
        naive.overread_values()
    );
    assert!(
        naive.overreads() > 0,
        "no double fetch observed in {rounds} rounds"
    );
    assert_eq!(
        exploited,
        naive.overreads(),
        "every overread summed past the bound"
    );
    assert!(naive.overread_values() >= naive.overreads() * (huge - u64::from(SMALL)));
}

#[test]
fn naive_sum_rejects_what_it_does_not_handle() {
    let setup = SumSetup::new(SMALL as usize);
    let naive = NaiveSum::new();
    let io = IoManager::new(&naive);
    let space = HostSpace::new();
    let mut call = setup.ioctl();
    call.code = usercap_protocol::IOCTL_ECHO;
    let done = io.device_io_control(&space, &call).unwrap();
    assert_eq!(done.status, NtStatus::STATUS_INVALID_DEVICE_REQUEST);
    let mut short = setup.ioctl();
    short.input_len = 15;
    let done = io.device_io_control(&space, &short).unwrap();
    assert_eq!(done.status, NtStatus::STATUS_INVALID_PARAMETER);
    let mut bad = setup.ioctl();
    bad.input = 0x10;
    let done = io.device_io_control(&space, &bad).unwrap();
    assert_eq!(done.status, NtStatus::STATUS_ACCESS_VIOLATION);
    setup
        .mem
        .write_at(0, &(MAX_SUM_VALUES + 1).to_le_bytes())
        .unwrap();
    let done = io.device_io_control(&space, &setup.ioctl()).unwrap();
    assert_eq!(done.status, NtStatus::STATUS_INVALID_BUFFER_SIZE);
    assert_eq!(naive.requests(), 0);
}
