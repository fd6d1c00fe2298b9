//! STATS is one snapshot, under real threads.
//!
//! One thread sends SET_NAMEs whose name length follows the request number
//! (the n-th sets `n % 8` characters), another sends ECHOs of a fixed size,
//! and a third samples STATS as fast as it can. Every snapshot must be the
//! state after some number of whole requests:
//!
//! - **name/count**: the name it shows is the one its `set_name` count
//!   counts up to: `name_bytes == 2 * (set_name % 8)`;
//! - **bytes/counters**: `bytes_captured` is what exactly the counted
//!   requests captured: `set_name` SET_NAMEs of known sizes plus `echo`
//!   ECHOs of [`ECHO_BYTES`].
//!
//! With the counters in atomics, bumped after the state lock was released
//! (the device before "one lock, one snapshot"), both failed: a name its
//! counters did not count yet, and bytes that no counter counted. The test
//! also proves the race ran: it counts the STATS requests that started and
//! ended while one SET_NAME (or one ECHO) was in flight, and runs until it
//! has [`INTERLEAVED`] of each, or fails as inconclusive after [`DEADLINE`].
//! It never passes on a run where the threads did not overlap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use usercap::sim::{Perm, SimSpace};
use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap_device::Device;
use usercap_device::io::{IoManager, Ioctl};
use usercap_protocol::{
    IOCTL_ECHO, IOCTL_SET_NAME, IOCTL_STATS, SetNameRequest, Stats, WireUnicodeString,
};

/// The shells' kind of lock: a parking mutex, as the client's sim device
/// uses (a spin lock whose holder is preempted stalls the samplers).
type StatsDevice = Device<parking_lot::RawMutex>;

const ARENA: usize = 0x10_0000;
const NAME_TEXT: usize = ARENA + 0x100;
const OUT: usize = 0x20_0000;
/// The bytes each ECHO sends (and captures).
const ECHO_BYTES: usize = 24;
/// STATS requests that must have run inside one writer's request, per
/// writer, before the test may pass.
const INTERLEAVED: u64 = 2_000;
/// Snapshots the test takes at least.
const MIN_SAMPLES: u64 = 100_000;
/// After this long without enough interleavings the test fails.
const DEADLINE: Duration = Duration::from_secs(120);

/// A user address space for one thread (a `SimSpace` is not shared).
fn space() -> SimSpace {
    let space = SimSpace::new();
    space.map_zeroed(ARENA, 0x1000, Perm::READ_WRITE).unwrap();
    space.map_zeroed(OUT, 0x1000, Perm::READ_WRITE).unwrap();
    assert!(space.poke(NAME_TEXT, &[b'A', 0].repeat(8)));
    space
}

/// The name length, in UTF-16 units, of the `n`-th SET_NAME.
fn name_chars(n: u64) -> u64 {
    n % 8
}

/// What `n` SET_NAMEs add to `bytes_captured`: each its name. (The request
/// struct is captured by value, inline, and is not charged to the request's
/// budget, which counts pool captures.)
fn set_name_bytes(n: u64) -> u64 {
    let per_cycle: u64 = (0..8).sum::<u64>();
    let r = n % 8;
    2 * (per_cycle * (n / 8) + r * (r + 1) / 2)
}

/// Sends the `n`-th SET_NAME from `space`.
fn set_name(device: &StatsDevice, space: &SimSpace, n: u64) {
    let length = u16::try_from(2 * name_chars(n)).unwrap();
    let request = SetNameRequest {
        name: WireUnicodeString {
            length,
            maximum_length: 16,
            reserved: 0,
            buffer: NAME_TEXT as u64,
        },
    };
    assert!(space.poke(ARENA, request.as_bytes()));
    let ioctl = Ioctl {
        code: IOCTL_SET_NAME,
        input: ARENA,
        input_len: 16,
        output: 0,
        output_len: 0,
    };
    let completion = IoManager::new(device)
        .device_io_control(space, &ioctl)
        .unwrap();
    assert!(completion.status.is_success(), "{completion:?}");
}

fn echo(device: &StatsDevice, space: &SimSpace) {
    let ioctl = Ioctl {
        code: IOCTL_ECHO,
        input: ARENA,
        input_len: ECHO_BYTES,
        output: OUT,
        output_len: ECHO_BYTES,
    };
    let completion = IoManager::new(device)
        .device_io_control(space, &ioctl)
        .unwrap();
    assert!(completion.status.is_success(), "{completion:?}");
}

fn stats(device: &StatsDevice, space: &SimSpace) -> Stats {
    let ioctl = Ioctl {
        code: IOCTL_STATS,
        input: 0,
        input_len: 0,
        output: OUT,
        output_len: size_of::<Stats>(),
    };
    let completion = IoManager::new(device)
        .device_io_control(space, &ioctl)
        .unwrap();
    assert!(completion.status.is_success(), "{completion:?}");
    Stats::read_from_bytes(&space.peek(OUT, size_of::<Stats>()).unwrap()).unwrap()
}

/// What one snapshot got wrong, if anything.
#[derive(Default, Debug)]
struct Torn {
    name_count: u64,
    bytes_counters: u64,
    first: Option<Stats>,
}

impl Torn {
    fn check(&mut self, s: &Stats) {
        let name_ok = u64::from(s.name_bytes) == 2 * name_chars(s.set_name);
        let bytes_ok = s.bytes_captured == set_name_bytes(s.set_name) + s.echo * ECHO_BYTES as u64;
        self.name_count += u64::from(!name_ok);
        self.bytes_counters += u64::from(!bytes_ok);
        if !(name_ok && bytes_ok) && self.first.is_none() {
            self.first = Some(*s);
        }
    }
}

/// A writer's progress: odd while one of its requests is in flight.
struct Phase(AtomicU64);

impl Phase {
    fn around<T>(&self, request: impl FnOnce() -> T) -> T {
        self.0.fetch_add(1, Ordering::SeqCst);
        let value = request();
        self.0.fetch_add(1, Ordering::SeqCst);
        value
    }

    fn load(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether a STATS that saw `before` and `after` ran entirely inside one
/// request of the writer.
fn inside(before: u64, after: u64) -> bool {
    before == after && before % 2 == 1
}

#[test]
fn the_sizes_the_check_assumes_are_what_the_device_counts() {
    let device = StatsDevice::new();
    let space = space();
    for n in 1..=20 {
        set_name(&device, &space, n);
        let s = stats(&device, &space);
        assert_eq!(s.set_name, n);
        assert_eq!(u64::from(s.name_bytes), 2 * name_chars(n));
        assert_eq!(s.bytes_captured, set_name_bytes(n));
    }
    echo(&device, &space);
    let s = stats(&device, &space);
    assert_eq!(
        s.bytes_captured,
        set_name_bytes(20) + ECHO_BYTES as u64,
        "{s:?}"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs real threads until they have interleaved thousands of times"
)]
fn stats_under_racing_set_name_and_echo_is_one_snapshot() {
    let device = StatsDevice::new();
    let stop = AtomicBool::new(false);
    let set_name_phase = Phase(AtomicU64::new(0));
    let echo_phase = Phase(AtomicU64::new(0));
    let (torn, samples, inside_set_name, inside_echo, proven) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let space = space();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                set_name_phase.around(|| set_name(&device, &space, n));
            }
        });
        scope.spawn(|| {
            let space = space();
            while !stop.load(Ordering::Relaxed) {
                echo_phase.around(|| echo(&device, &space));
            }
        });
        let space = space();
        let started = Instant::now();
        let mut torn = Torn::default();
        let (mut samples, mut inside_set_name, mut inside_echo) = (0u64, 0u64, 0u64);
        let proven = loop {
            let (s0, e0) = (set_name_phase.load(), echo_phase.load());
            let snapshot = stats(&device, &space);
            let (s1, e1) = (set_name_phase.load(), echo_phase.load());
            torn.check(&snapshot);
            samples += 1;
            inside_set_name += u64::from(inside(s0, s1));
            inside_echo += u64::from(inside(e0, e1));
            if samples >= MIN_SAMPLES
                && inside_set_name >= INTERLEAVED
                && inside_echo >= INTERLEAVED
            {
                break true;
            }
            if started.elapsed() > DEADLINE {
                break false;
            }
        };
        stop.store(true, Ordering::Relaxed);
        (torn, samples, inside_set_name, inside_echo, proven)
    });
    let seen = format!(
        "{samples} snapshots, {inside_set_name} inside a SET_NAME, {inside_echo} inside an ECHO; \
         {} name/count and {} bytes/counters disagreements (first: {:?})",
        torn.name_count, torn.bytes_counters, torn.first
    );
    assert!(
        torn.name_count == 0 && torn.bytes_counters == 0,
        "torn snapshots: {seen}"
    );
    assert!(
        proven,
        "inconclusive: the threads did not interleave enough within {DEADLINE:?}: {seen}"
    );
    // The final state is consistent too, and counts what the threads did.
    let last = device.state().stats;
    let mut check = Torn::default();
    check.check(&last);
    assert_eq!((check.name_count, check.bytes_counters), (0, 0), "{last:?}");
    eprintln!("{seen}");
}
