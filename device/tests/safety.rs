//! The safety properties, each shown together with a deliberately wrong
//! handler that the same check catches: single fetch (against a naive
//! double-fetching SUM), race immunity (deterministic attacker hooks), no
//! stale-pool leak (against a handler that over-reports Information), one
//! completion per request, METHOD_BUFFERED aliasing, and concurrency.

// Test inputs are small; their casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

mod support;

use std::cell::Cell;
use std::rc::Rc;

use proptest::prelude::*;
use support::{ARENA, Harness, KERNEL, OUT, TestDevice};
use usercap::sim::{Perm, SimSpace};
use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap::{AddressSpace, NtStatus, WireUnicodeString};
use usercap_device::io::{Driver, IoManager, Ioctl, Irp, Violation};
use usercap_device::{Buffers, Completion, Request};
use usercap_protocol::*;

// ------------------------------------------------------------ the naive SUM

/// ANTI-PATTERN, kept to prove the checks catch it: SUM the classic Windows
/// way. It probes, reads `count` from user memory to validate it, then reads
/// `count` again to use it. `used_count` records what the second read saw.
#[derive(Default)]
struct NaiveSum {
    used_count: Cell<u64>,
}

impl Driver for NaiveSum {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        let Buffers::Neither { input, .. } = request.buffers else {
            return irp.complete(Completion::failed(NtStatus::STATUS_INVALID_DEVICE_REQUEST));
        };
        let header = input.addr();
        let mut count = [0u8; 8];
        if space.read(header, &mut count, 8).is_err() || u64::from_le_bytes(count) > 4 {
            return irp.complete(Completion::failed(NtStatus::STATUS_INVALID_PARAMETER));
        }
        // ...validated; now "use" it, fetching it again.
        let _ = space.read(header, &mut count, 8);
        self.used_count.set(u64::from_le_bytes(count));
        irp.complete(Completion {
            status: NtStatus::STATUS_SUCCESS,
            information: 0,
        });
    }
}

fn sum_input(h: &mut Harness<impl Driver>, values: &[u32]) -> usize {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let addr = h.put(&bytes);
    h.put_value(&SumRequest {
        count: values.len() as u64,
        values: addr as u64,
    })
}

#[test]
fn the_fetch_counters_flag_the_naive_sum_and_pass_the_real_one() {
    let mut naive = Harness::with_driver(NaiveSum::default());
    let input = sum_input(&mut naive, &[1, 2, 3]);
    naive.call_at(IOCTL_SUM, input, 16, 16).unwrap();
    assert_eq!(naive.space.max_fetches(), 2);
    assert_eq!(naive.space.first_double_fetch(), Some(input));

    let mut real = Harness::new();
    let input = sum_input(&mut real, &[1, 2, 3]);
    real.call_at(IOCTL_SUM, input, 16, 16).unwrap();
    assert_eq!(real.space.max_fetches(), 1);
}

#[test]
fn a_count_flipped_between_the_two_fetches_takes_the_naive_sum_past_its_bound() {
    let mut naive = Harness::with_driver(NaiveSum::default());
    let input = sum_input(&mut naive, &[1, 2, 3]);
    naive.space.on_fetch(input, move |memory| {
        memory.poke(input, &u64::MAX.to_le_bytes());
    });
    naive.call_at(IOCTL_SUM, input, 16, 16).unwrap();
    assert_eq!(
        naive.driver.used_count.get(),
        u64::MAX,
        "validated 3, used u64::MAX"
    );

    // The same attacker against the real handler: the count is captured once.
    let mut real = Harness::new();
    let input = sum_input(&mut real, &[1, 2, 3]);
    real.space.on_fetch(input, move |memory| {
        memory.poke(input, &u64::MAX.to_le_bytes());
    });
    let r = real.call_at(IOCTL_SUM, input, 16, 16).unwrap();
    assert_eq!(r.completion.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(
        SumReply::read_from_bytes(r.data()).unwrap(),
        SumReply { sum: 6, count: 3 }
    );
}

// ------------------------------------------------------------ deterministic races

/// Flips the bytes at `addr` between `a` and `b` every time they are fetched.
fn flip(space: &SimSpace, addr: usize, a: Vec<u8>, b: Vec<u8>) -> Rc<Cell<u32>> {
    let flips = Rc::new(Cell::new(0));
    let seen = flips.clone();
    space.on_fetch(addr, move |memory| {
        seen.set(seen.get() + 1);
        let next = if seen.get() % 2 == 1 { &b } else { &a };
        memory.poke(addr, next);
    });
    flips
}

#[test]
fn racing_the_sum_values_pointer_to_a_kernel_address_changes_nothing() {
    let mut h = Harness::new();
    let input = sum_input(&mut h, &[4, 5]);
    let good = h.space.peek(input + 8, 8).unwrap();
    let flips = flip(
        &h.space,
        input + 8,
        good,
        (KERNEL as u64).to_le_bytes().to_vec(),
    );
    let r = h.call_at(IOCTL_SUM, input, 16, 16).unwrap();
    assert_eq!(
        SumReply::read_from_bytes(r.data()).unwrap(),
        SumReply { sum: 9, count: 2 }
    );
    assert_eq!(flips.get(), 1, "the pointer was fetched once");
    // The next request sees the kernel pointer and is refused.
    let r = h.call_at(IOCTL_SUM, input, 16, 16).unwrap();
    assert_eq!(r.completion.status, NtStatus::STATUS_ACCESS_VIOLATION);
}

#[test]
fn racing_the_unicode_length_changes_nothing() {
    let mut h = Harness::new();
    let text: Vec<u8> = "abcd".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let buffer = h.put(&text);
    let wire = WireUnicodeString {
        length: 8,
        maximum_length: 8,
        reserved: 0,
        buffer: buffer as u64,
    };
    let input = h.put_value(&SetNameRequest { name: wire });
    // Length and MaximumLength become 0xFFFE right after the struct is fetched.
    flip(
        &h.space,
        input,
        vec![8, 0, 8, 0],
        vec![0xFE, 0xFF, 0xFE, 0xFF],
    );
    let r = h.call_at(IOCTL_SET_NAME, input, 16, 0).unwrap();
    assert_eq!(r.completion.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(String::from_utf16(h.state().name()).unwrap(), "abcd");
    assert_eq!(h.space.max_fetches(), 1);
}

#[test]
fn racing_batch_segment_lengths_and_the_table_pointer_changes_nothing() {
    let mut h = Harness::new();
    let a = h.put(b"first");
    let b = h.put(b"second!");
    let segments = [
        Segment {
            addr: a as u64,
            len: 5,
        },
        Segment {
            addr: b as u64,
            len: 7,
        },
    ];
    let table = h.put(segments.as_bytes());
    let input = h.put_value(&BatchRequest {
        count: 2,
        reserved: 0,
        segments: table as u64,
    });
    flip(
        &h.space,
        table + 8,
        5u64.to_le_bytes().to_vec(),
        u64::MAX.to_le_bytes().to_vec(),
    );
    flip(
        &h.space,
        table + 16,
        (b as u64).to_le_bytes().to_vec(),
        (KERNEL as u64).to_le_bytes().to_vec(),
    );
    flip(
        &h.space,
        input + 8,
        (table as u64).to_le_bytes().to_vec(),
        (KERNEL as u64).to_le_bytes().to_vec(),
    );
    let r = h.call_at(IOCTL_BATCH, input, 16, 24).unwrap();
    assert_eq!(r.completion.status, NtStatus::STATUS_SUCCESS);
    let reply = BatchReply::read_from_bytes(r.data()).unwrap();
    assert_eq!(reply.total_bytes, 12);
    assert_eq!(reply.checksum, checksum([&b"first"[..], &b"second!"[..]]));
    assert_eq!(h.space.max_fetches(), 1);
}

#[test]
fn racing_the_configure_input_after_the_io_manager_copied_it_changes_nothing() {
    let mut h = Harness::new();
    let v2 = Config {
        flags: 0,
        level: 2,
        quota: 9,
    };
    let input = h.put_value(&v2);
    // A thread rewriting the user's struct to an invalid level (and a
    // non-zero "v3" field right after it) once the I/O manager has copied it.
    h.space.on_fetch(input, move |memory| {
        memory.poke(input + 4, &99u32.to_le_bytes());
        memory.poke(input + 16, &[1; 8]);
    });
    let r = h.call_at(IOCTL_CONFIGURE, input, 16, 16).unwrap();
    assert_eq!(r.completion.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(h.state().config, v2);
}

#[test]
fn racing_a_message_count_after_capture_cannot_read_past_the_input() {
    let mut h = Harness::new();
    let mut bytes = 1u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&2u32.to_le_bytes());
    bytes.extend_from_slice(&[7, 0, 0, 0, 8, 0, 0, 0]);
    let input = h.put(&bytes);
    flip(
        &h.space,
        input + 4,
        2u32.to_le_bytes().to_vec(),
        u32::MAX.to_le_bytes().to_vec(),
    );
    let r = h.call_at(IOCTL_MESSAGE, input, 16, 16).unwrap();
    assert_eq!(
        MessageReply::read_from_bytes(r.data()).unwrap(),
        MessageReply {
            kind: 1,
            count: 2,
            sum: 15
        }
    );
}

// ------------------------------------------------------------ leaks and Information

/// The largest reply of each IOCTL, and a valid input for it.
fn every_ioctl(h: &mut Harness) -> Vec<(u32, usize, usize, usize)> {
    let name: Vec<u8> = "leak?".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let name_buf = h.put(&name);
    let set_name = h.put_value(&SetNameRequest {
        name: WireUnicodeString {
            length: 10,
            maximum_length: 10,
            reserved: 0,
            buffer: name_buf as u64,
        },
    });
    h.call_at(IOCTL_SET_NAME, set_name, 16, 0).unwrap();
    let sum = sum_input(h, &[1, 2, 3]);
    let mut msg = 9u32.to_le_bytes().to_vec();
    msg.extend_from_slice(&1u32.to_le_bytes());
    msg.extend_from_slice(&5u32.to_le_bytes());
    let message = h.put(&msg);
    let echo = h.put(b"0123456789");
    let config = h.put_value(&Config {
        flags: 1,
        level: 1,
        quota: 1,
    });
    let seg = h.put(b"segment");
    let table = h.put_value(&Segment {
        addr: seg as u64,
        len: 7,
    });
    let batch = h.put_value(&BatchRequest {
        count: 1,
        reserved: 0,
        segments: table as u64,
    });
    // (code, input, input length, reply size)
    vec![
        (IOCTL_ECHO, echo, 10, 10),
        (IOCTL_SUM, sum, 16, 16),
        (IOCTL_MESSAGE, message, 12, 16),
        (IOCTL_SET_NAME, set_name, 16, 0),
        (IOCTL_GET_NAME, ARENA, 0, 8 + 10),
        (IOCTL_CONFIGURE, config, 16, 16),
        (IOCTL_BATCH, batch, 16, 24),
        (IOCTL_STATS, ARENA, 0, 80),
    ]
}

#[test]
fn no_output_length_leaks_stale_pool_and_information_is_what_was_written() {
    let mut h = Harness::new();
    for (code, input, input_len, reply) in every_ioctl(&mut h) {
        // Every length natively; under Miri the boundaries (each call is slow there).
        let lengths: Vec<usize> = if cfg!(miri) {
            vec![0, reply.saturating_sub(1), reply, reply + 1, reply + 16]
        } else {
            (0..=reply + 16).collect()
        };
        for output_len in lengths {
            let r = h.call_at(code, input, input_len, output_len).unwrap();
            let info = r.completion.information;
            let name = ioctl_name(code).unwrap();
            if r.completion.status.is_success() {
                let expected = if code == IOCTL_CONFIGURE && output_len == 0 {
                    0
                } else {
                    reply
                };
                assert_eq!(info, expected, "{name} with output {output_len}");
            } else {
                assert_eq!(
                    r.completion.status,
                    NtStatus::STATUS_BUFFER_TOO_SMALL,
                    "{name} {output_len}"
                );
                assert!(
                    output_len < reply,
                    "{name} refused an output of {output_len}"
                );
                assert_eq!(info, 0);
            }
            Harness::<TestDevice>::assert_nothing_past(&r);
        }
    }
}

/// A handler that over-reports Information: it writes 4 bytes of a reply
/// and says it wrote `claim`.
///
/// The 4 bytes it writes are the complement of the stale-pool bytes they
/// replace, so none of them can equal the poison at its offset, whatever
/// the request's sequence number: the poisoned run starts exactly at 4.
/// (Fixed bytes such as `[1, 2, 3, 4]` matched the poison at offset 3 for
/// about one sequence number in 256, and the run then started at 3.)
struct OverReporting {
    claim: usize,
}

impl Driver for OverReporting {
    fn handle<S: AddressSpace + ?Sized>(&self, _: &S, request: Request<'_>, irp: &mut Irp) {
        if let Buffers::Buffered { system_buffer, .. } = request.buffers
            && let Some(head) = system_buffer.get_mut(..4)
        {
            for byte in head {
                *byte = !*byte;
            }
        }
        irp.complete(Completion {
            status: NtStatus::STATUS_SUCCESS,
            information: self.claim,
        });
    }
}

/// How many requests [`the_over_report_is_found_at_offset_4_for_every_sequence_number`]
/// sends: enough that every value of the poison byte at each of the offsets
/// 0 to 3 comes up many times (each is one of 256 values per request).
const SEQUENCE_SWEEP: usize = if cfg!(miri) { 64 } else { 20_000 };

#[test]
fn the_over_report_is_found_at_offset_4_for_every_sequence_number() {
    // Each request takes the next sequence number of the I/O model, so this
    // sweeps SEQUENCE_SWEEP consecutive ones, whatever ran before.
    let h = Harness::with_driver(OverReporting { claim: 16 });
    for request in 0..SEQUENCE_SWEEP {
        assert_eq!(
            h.call_at(IOCTL_STATS, ARENA, 0, 16).err(),
            Some(Violation::PoisonReturned { offset: 4 }),
            "request {request} of the sweep"
        );
    }
}

/// A handler that writes bytes equal to the stale pool it overwrites, so
/// its reply *is* a run of poison: the check must flag it from offset 0.
/// This is the other half of the sweep above: the check compares bytes with
/// the poison at their offset, so the handler's own bytes decide where the
/// run starts.
struct EchoesThePoison;

impl Driver for EchoesThePoison {
    fn handle<S: AddressSpace + ?Sized>(&self, _: &S, _: Request<'_>, irp: &mut Irp) {
        irp.complete(Completion {
            status: NtStatus::STATUS_SUCCESS,
            information: 16,
        });
    }
}

#[test]
fn untouched_stale_pool_is_found_from_offset_0() {
    let h = Harness::with_driver(EchoesThePoison);
    for _ in 0..SEQUENCE_SWEEP.min(1_000) {
        assert_eq!(
            h.call_at(IOCTL_STATS, ARENA, 0, 16).err(),
            Some(Violation::PoisonReturned { offset: 0 })
        );
    }
}

#[test]
fn the_io_manager_catches_a_handler_that_over_reports_information() {
    let h = Harness::with_driver(OverReporting { claim: 16 });
    assert_eq!(
        h.call_at(IOCTL_STATS, ARENA, 0, 16).err(),
        Some(Violation::PoisonReturned { offset: 4 })
    );
    assert_eq!(
        h.call_at(IOCTL_STATS, ARENA, 0, 8).err(),
        Some(Violation::InformationTooLarge {
            information: 16,
            output_len: 8
        })
    );
    // Nothing reached the caller.
    assert_eq!(h.space.peek(OUT, 16).unwrap(), [support::CANARY; 16]);
    let honest = Harness::with_driver(OverReporting { claim: 4 });
    assert!(honest.call_at(IOCTL_STATS, ARENA, 0, 16).is_ok());
}

/// Completes `times` times.
struct Completes {
    times: u32,
}

impl Driver for Completes {
    fn handle<S: AddressSpace + ?Sized>(&self, _: &S, _: Request<'_>, irp: &mut Irp) {
        for _ in 0..self.times {
            irp.complete(Completion::failed(NtStatus::STATUS_INVALID_DEVICE_REQUEST));
        }
    }
}

#[test]
fn the_io_manager_catches_requests_completed_other_than_once() {
    for times in [0, 2] {
        let h = Harness::with_driver(Completes { times });
        assert_eq!(
            h.call_at(IOCTL_ECHO, ARENA, 4, 4).err(),
            Some(Violation::CompletedTimes { times })
        );
    }
    assert!(
        Harness::with_driver(Completes { times: 1 })
            .call_at(IOCTL_ECHO, ARENA, 4, 4)
            .is_ok()
    );
}

// ------------------------------------------------------------ aliasing

#[test]
fn buffered_output_over_its_own_input_is_correct() {
    let mut h = Harness::new();
    // ECHO with output longer than input: exactly the input comes back.
    let echo = h.put(b"abc");
    let r = h.call_at(IOCTL_ECHO, echo, 3, 64).unwrap();
    assert_eq!((r.data(), r.completion.information), (&b"abc"[..], 3));
    // MESSAGE whose reply overwrites its input in the SystemBuffer, and
    // whose user input and output buffers are the same memory.
    let mut msg = 3u32.to_le_bytes().to_vec();
    msg.extend_from_slice(&3u32.to_le_bytes());
    for v in [100u32, 200, 300] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    let at = h.put(&msg);
    let r = h
        .call_raw(&Ioctl {
            code: IOCTL_MESSAGE,
            input: at,
            input_len: msg.len(),
            output: at,
            output_len: 16,
        })
        .unwrap();
    assert_eq!(r.completion.information, 16);
    let reply = MessageReply::read_from_bytes(&h.space.peek(at, 16).unwrap()).unwrap();
    assert_eq!(
        reply,
        MessageReply {
            kind: 3,
            count: 3,
            sum: 600
        }
    );
    // CONFIGURE in place, the same way.
    let cfg = h.put_value(&ConfigV1 { flags: 2, level: 6 });
    let r = h
        .call_raw(&Ioctl {
            code: IOCTL_CONFIGURE,
            input: cfg,
            input_len: 8,
            output: cfg,
            output_len: 16,
        })
        .unwrap();
    assert_eq!(r.completion.status, NtStatus::STATUS_SUCCESS);
    let applied = Config::read_from_bytes(&h.space.peek(cfg, 16).unwrap()).unwrap();
    assert_eq!(
        applied,
        Config {
            flags: 2,
            level: 6,
            quota: 0
        }
    );
}

// ------------------------------------------------------------ arbitrary input

/// (which IOCTL, input bytes, output length, extra user bytes at arena offsets)
type Call = (usize, Vec<u8>, usize, Vec<(usize, Vec<u8>)>);

fn arbitrary_call() -> impl Strategy<Value = Call> {
    (
        0usize..8,
        prop::collection::vec(any::<u8>(), 0..64),
        0usize..128,
        // Extra user bytes at arena offsets, which embedded pointers may hit.
        prop::collection::vec(
            (0usize..0x400, prop::collection::vec(any::<u8>(), 1..64)),
            0..4,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 16 } else { 800 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_requests_fetch_once_leak_nothing_and_fail_cleanly(
        (which, mut input, output_len, extra) in arbitrary_call(),
        pointer_kind in 0u8..4,
    ) {
        let mut h = Harness::new();
        for (offset, bytes) in &extra {
            h.space.poke(ARENA + 0x1000 + offset, bytes);
        }
        // Aim embedded pointers (at input offset 8, as in SUM and BATCH,
        // and SET_NAME's Buffer) somewhere interesting some of the time.
        if input.len() >= 16 {
            let target: u64 = match pointer_kind {
                0 => (ARENA + 0x1000) as u64,
                1 => KERNEL as u64,
                _ => u64::from_le_bytes(input[8..16].try_into().unwrap()),
            };
            input[8..16].copy_from_slice(&target.to_le_bytes());
        }
        let code = IOCTLS[which].1;
        let before = h.state();
        let at = h.put(&input);
        let r = h.call_at(code, at, input.len(), output_len);
        let r = r.map_err(|v| TestCaseError::fail(format!("Verifier violation: {v}")))?;
        prop_assert!(h.space.max_fetches() <= 1);
        prop_assert!(r.completion.information <= output_len);
        prop_assert!(r.out[r.completion.information..].iter().all(|&b| b == support::CANARY));
        if !r.completion.status.is_success() {
            prop_assert_eq!(r.completion.information, 0);
            prop_assert_eq!(h.state(), before);
            prop_assert!(NtStatus::ALL.contains(&r.completion.status));
        }
        // Device memory is never written by a user request.
        prop_assert_eq!(h.space.peek(KERNEL, 0x1000).unwrap(), vec![0x5A; 0x1000]);
    }
}

// ------------------------------------------------------------ concurrency

#[test]
fn concurrent_requests_add_up_in_stats() {
    const THREADS: usize = 4;
    const ROUNDS: u64 = if cfg!(miri) { 3 } else { 200 };
    let device = TestDevice::new();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let device = &device;
            scope.spawn(move || {
                // Each thread is its own user process with its own memory.
                let space = SimSpace::new();
                space.map_zeroed(ARENA, 0x1000, Perm::READ_WRITE).unwrap();
                space.map_zeroed(OUT, 0x1000, Perm::READ_WRITE).unwrap();
                space.poke(ARENA, &(t as u32).to_le_bytes());
                space.poke(
                    ARENA + 0x100,
                    SumRequest {
                        count: 1,
                        values: ARENA as u64,
                    }
                    .as_bytes(),
                );
                let io = IoManager::new(device);
                for _ in 0..ROUNDS {
                    let echo = Ioctl {
                        code: IOCTL_ECHO,
                        input: ARENA,
                        input_len: 4,
                        output: OUT,
                        output_len: 4,
                    };
                    let sum = Ioctl {
                        code: IOCTL_SUM,
                        input: ARENA + 0x100,
                        input_len: 16,
                        output: OUT,
                        output_len: 16,
                    };
                    assert!(
                        io.device_io_control(&space, &echo)
                            .unwrap()
                            .status
                            .is_success()
                    );
                    assert!(
                        io.device_io_control(&space, &sum)
                            .unwrap()
                            .status
                            .is_success()
                    );
                }
            });
        }
    });
    let stats = device.state().stats;
    assert_eq!(stats.echo, THREADS as u64 * ROUNDS);
    assert_eq!(stats.sum, THREADS as u64 * ROUNDS);
    assert_eq!(
        stats.bytes_captured,
        THREADS as u64 * ROUNDS * 4 + THREADS as u64 * ROUNDS * 4
    );
}

#[test]
fn a_reply_that_holds_the_old_constant_poison_is_not_a_leak() {
    // Found by the dispatch fuzz target: with a constant 0xBD poison, a
    // correct GET_NAME of the name U+BDBD U+BDBD was flagged as stale pool.
    let mut h = Harness::new();
    let buffer = h.put(&[0xBD; 8]);
    let set = h.put_value(&SetNameRequest {
        name: WireUnicodeString {
            length: 8,
            maximum_length: 8,
            reserved: 0,
            buffer: buffer as u64,
        },
    });
    assert!(
        h.call_at(IOCTL_SET_NAME, set, 16, 0)
            .unwrap()
            .completion
            .status
            .is_success()
    );
    let r = h
        .call_at(IOCTL_GET_NAME, ARENA, 0, GET_NAME_MAX_OUTPUT)
        .unwrap();
    assert_eq!(r.completion.information, 16);
    assert_eq!(&r.data()[8..], &[0xBD; 8]);
}
