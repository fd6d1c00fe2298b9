//! Each IOCTL's happy path and every error path, named by the status
//! expected, through the I/O manager model on `SimSpace`. Every call also
//! checks that each user byte was fetched at most once and that a failure
//! changed no device state.

// Test inputs are small; their casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

mod support;

use support::{Harness, KERNEL, OUT, Reply};
use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap::{NtStatus, WireUnicodeString};
use usercap_device::io::Ioctl;
use usercap_protocol::*;

const SUCCESS: NtStatus = NtStatus::STATUS_SUCCESS;

/// Sends `input` and checks the invariants every request keeps.
fn send(h: &mut Harness, code: u32, input: &[u8], output_len: usize) -> Reply {
    let before = h.state();
    let reply = h.call(code, input, output_len);
    check(h, &before, &reply);
    reply
}

fn check(h: &Harness, before: &usercap_device::DeviceState, reply: &Reply) {
    assert!(
        h.space.max_fetches() <= 1,
        "double fetch at {:?}",
        h.space.first_double_fetch()
    );
    Harness::<support::TestDevice>::assert_nothing_past(reply);
    if !reply.completion.status.is_success() {
        assert_eq!(reply.completion.information, 0);
        assert_eq!(
            &h.state(),
            before,
            "a failed request changed the device state"
        );
    }
}

fn status(s: NtStatus) -> u32 {
    s.as_u32()
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn message(kind: u32, count: u32, items: &[u32]) -> Vec<u8> {
    let mut bytes = kind.to_le_bytes().to_vec();
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend(u32s(items));
    bytes
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

// ------------------------------------------------------------------ ECHO

#[test]
fn echo_returns_exactly_the_input() {
    let mut h = Harness::new();
    let r = send(&mut h, IOCTL_ECHO, b"hello, kernel", 64);
    assert_eq!(r.completion.status, SUCCESS);
    assert_eq!(r.data(), b"hello, kernel");
    let empty = send(&mut h, IOCTL_ECHO, b"", 16);
    assert_eq!(
        (empty.completion.status, empty.completion.information),
        (SUCCESS, 0)
    );
    assert_eq!(h.state().stats.echo, 2);
}

#[test]
fn echo_with_a_short_output_is_buffer_too_small() {
    let mut h = Harness::new();
    let r = send(&mut h, IOCTL_ECHO, b"hello", 4);
    assert_eq!(r.status(), status(NtStatus::STATUS_BUFFER_TOO_SMALL));
}

#[test]
fn echo_with_a_bad_input_buffer_is_an_access_violation() {
    let h = Harness::new();
    for input in [0, 0x1000, KERNEL] {
        let r = h.call_at(IOCTL_ECHO, input, 8, 8).unwrap();
        assert_eq!(r.status(), status(NtStatus::STATUS_ACCESS_VIOLATION));
    }
    // Zero length with a bogus pointer is no access at all.
    let r = h.call_at(IOCTL_ECHO, 0xDEAD, 0, 8).unwrap();
    assert_eq!(r.completion.status, SUCCESS);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "copies 1 MiB through SimSpace: minutes under Miri; runs natively"
)]
fn echo_over_the_capture_cap_is_invalid_buffer_size() {
    let mut h = Harness::new();
    let big = vec![1u8; MAX_ECHO_BYTES + 1];
    h.space
        .map(0x200_0000, &big, usercap::sim::Perm::READ)
        .unwrap();
    let r = h.call_at(IOCTL_ECHO, 0x200_0000, big.len(), 0).unwrap();
    assert_eq!(r.status(), status(NtStatus::STATUS_INVALID_BUFFER_SIZE));
    let _ = &mut h;
}

// ------------------------------------------------------------------ SUM

fn sum_request(h: &mut Harness, values: &[u32]) -> Vec<u8> {
    let addr = h.put(&u32s(values));
    SumRequest {
        count: values.len() as u64,
        values: addr as u64,
    }
    .as_bytes()
    .to_vec()
}

#[test]
fn sum_adds_the_values() {
    let mut h = Harness::new();
    let req = sum_request(&mut h, &[1, 2, 3, u32::MAX]);
    let r = send(&mut h, IOCTL_SUM, &req, 16);
    assert_eq!(r.completion.status, SUCCESS);
    let reply = SumReply::read_from_bytes(r.data()).unwrap();
    assert_eq!(
        reply,
        SumReply {
            sum: 6 + u64::from(u32::MAX),
            count: 4
        }
    );
    // Zero values: the pointer is never touched.
    let none = SumRequest {
        count: 0,
        values: 0,
    }
    .as_bytes()
    .to_vec();
    let r = send(&mut h, IOCTL_SUM, &none, 16);
    assert_eq!(
        SumReply::read_from_bytes(r.data()).unwrap(),
        SumReply { sum: 0, count: 0 }
    );
}

#[test]
fn sum_error_paths() {
    let mut h = Harness::new();
    let req = sum_request(&mut h, &[1, 2]);
    let cases: Vec<(&str, Vec<u8>, usize, NtStatus)> = vec![
        (
            "short input",
            req[..15].to_vec(),
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "short output",
            req.clone(),
            15,
            NtStatus::STATUS_BUFFER_TOO_SMALL,
        ),
        (
            "count over the limit",
            SumRequest {
                count: MAX_SUM_VALUES + 1,
                values: 0x10_0000,
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "count whose byte size overflows",
            SumRequest {
                count: u64::MAX / 2,
                values: 0x10_0000,
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_INTEGER_OVERFLOW,
        ),
        (
            "kernel values pointer",
            SumRequest {
                count: 2,
                values: KERNEL as u64,
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_ACCESS_VIOLATION,
        ),
        (
            "unmapped values pointer",
            SumRequest {
                count: 2,
                values: 0x7000_0000,
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_ACCESS_VIOLATION,
        ),
        (
            "misaligned values pointer",
            SumRequest {
                count: 2,
                values: 0x10_0002,
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_DATATYPE_MISALIGNMENT,
        ),
    ];
    for (what, input, out_len, expected) in cases {
        let r = send(&mut h, IOCTL_SUM, &input, out_len);
        assert_eq!(r.completion.status, expected, "{what}");
    }
    assert_eq!(h.state().stats.sum, 0);
}

#[test]
fn sum_with_a_kernel_input_or_output_pointer_is_an_access_violation() {
    let mut h = Harness::new();
    let req = sum_request(&mut h, &[5]);
    let at = h.put(&req);
    let r = h.call_at(IOCTL_SUM, KERNEL, 16, 16).unwrap();
    assert_eq!(r.status(), status(NtStatus::STATUS_ACCESS_VIOLATION));
    let r = h
        .call_raw(&Ioctl {
            code: IOCTL_SUM,
            input: at,
            input_len: 16,
            output: KERNEL,
            output_len: 16,
        })
        .unwrap();
    assert_eq!(r.status(), status(NtStatus::STATUS_ACCESS_VIOLATION));
    // Device memory was not written.
    assert_eq!(h.space.peek(KERNEL, 16).unwrap(), [0x5A; 16]);
}

// ------------------------------------------------------------------ MESSAGE

#[test]
fn message_is_summarised() {
    let mut h = Harness::new();
    let r = send(&mut h, IOCTL_MESSAGE, &message(7, 3, &[10, 20, 30]), 16);
    assert_eq!(r.completion.status, SUCCESS);
    assert_eq!(
        MessageReply::read_from_bytes(r.data()).unwrap(),
        MessageReply {
            kind: 7,
            count: 3,
            sum: 60
        }
    );
}

#[test]
fn message_error_paths() {
    let mut h = Harness::new();
    let cases = [
        (
            "count beyond its bytes",
            message(1, 4, &[1, 2, 3]),
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "huge count",
            message(1, u32::MAX, &[1]),
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "short header",
            vec![1, 0, 0, 0, 1],
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "short output",
            message(1, 1, &[1]),
            15,
            NtStatus::STATUS_BUFFER_TOO_SMALL,
        ),
        (
            "count over the limit",
            message(
                1,
                MAX_MESSAGE_ITEMS + 1,
                &vec![0; MAX_MESSAGE_ITEMS as usize + 1],
            ),
            16,
            NtStatus::STATUS_INVALID_BUFFER_SIZE,
        ),
    ];
    for (what, input, out_len, expected) in cases {
        let r = send(&mut h, IOCTL_MESSAGE, &input, out_len);
        assert_eq!(r.completion.status, expected, "{what}");
    }
}

// ------------------------------------------------------------------ names

fn set_name_request(h: &mut Harness, text: &[u8], length: u16, maximum: u16) -> Vec<u8> {
    let buffer = h.put(text);
    SetNameRequest {
        name: WireUnicodeString {
            length,
            maximum_length: maximum,
            reserved: 0xFFFF_FFFF,
            buffer: buffer as u64,
        },
    }
    .as_bytes()
    .to_vec()
}

#[test]
fn set_name_then_get_name() {
    let mut h = Harness::new();
    let text = utf16("usercap");
    let req = set_name_request(&mut h, &text, 14, 16);
    let r = send(&mut h, IOCTL_SET_NAME, &req, 0);
    assert_eq!(
        (r.completion.status, r.completion.information),
        (SUCCESS, 0)
    );
    assert_eq!(String::from_utf16(h.state().name()).unwrap(), "usercap");
    let r = send(&mut h, IOCTL_GET_NAME, &[], GET_NAME_MAX_OUTPUT);
    assert_eq!(r.completion.status, SUCCESS);
    assert_eq!(r.completion.information, 8 + 14);
    let (header, chars) = NameReply::read_from_prefix(r.data()).unwrap();
    assert_eq!(
        header,
        NameReply {
            length: 14,
            reserved: 0
        }
    );
    assert_eq!(chars, &text[..]);
    assert_eq!(h.state().stats.name_bytes, 14);
    // An empty name clears it.
    let clear = set_name_request(&mut h, b"", 0, 0);
    assert_eq!(
        send(&mut h, IOCTL_SET_NAME, &clear, 0).completion.status,
        SUCCESS
    );
    assert!(h.state().name().is_empty());
}

#[test]
fn set_name_error_paths() {
    let mut h = Harness::new();
    let text = utf16("abcdefgh");
    let long = vec![0x41u8; usize::from(MAX_NAME_BYTES) + 2];
    let cases = [
        (
            "odd Length",
            set_name_request(&mut h, &text, 3, 16),
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "Length above MaximumLength",
            set_name_request(&mut h, &text, 16, 8),
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "Length over the cap",
            set_name_request(&mut h, &long, MAX_NAME_BYTES + 2, MAX_NAME_BYTES + 2),
            NtStatus::STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "short input",
            set_name_request(&mut h, &text, 8, 8)[..12].to_vec(),
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
    ];
    for (what, input, expected) in cases {
        let r = send(&mut h, IOCTL_SET_NAME, &input, 0);
        assert_eq!(r.completion.status, expected, "{what}");
    }
    let kernel = SetNameRequest {
        name: WireUnicodeString {
            length: 8,
            maximum_length: 8,
            reserved: 0,
            buffer: KERNEL as u64,
        },
    };
    let r = send(&mut h, IOCTL_SET_NAME, kernel.as_bytes(), 0);
    assert_eq!(
        r.completion.status,
        NtStatus::STATUS_ACCESS_VIOLATION,
        "kernel Buffer"
    );
    assert!(h.state().name().is_empty());
}

#[test]
fn get_name_too_small_writes_nothing_and_stats_give_the_size() {
    let mut h = Harness::new();
    let req = set_name_request(&mut h, &utf16("abc"), 6, 6);
    send(&mut h, IOCTL_SET_NAME, &req, 0);
    for out_len in 0..14 {
        let r = send(&mut h, IOCTL_GET_NAME, &[], out_len);
        assert_eq!(
            r.completion.status,
            NtStatus::STATUS_BUFFER_TOO_SMALL,
            "output {out_len}"
        );
    }
    let stats = send(&mut h, IOCTL_STATS, &[], 80);
    let required = 8 + Stats::read_from_bytes(stats.data()).unwrap().name_bytes as usize;
    assert_eq!(required, 14);
    assert_eq!(
        send(&mut h, IOCTL_GET_NAME, &[], required)
            .completion
            .status,
        SUCCESS
    );
}

// ------------------------------------------------------------------ CONFIGURE

#[test]
fn configure_accepts_every_version() {
    let mut h = Harness::new();
    let v1 = ConfigV1 {
        flags: CONFIG_FLAG_VERBOSE,
        level: 3,
    };
    let r = send(&mut h, IOCTL_CONFIGURE, v1.as_bytes(), 16);
    assert_eq!(r.completion.status, SUCCESS);
    assert_eq!(
        Config::read_from_bytes(r.data()).unwrap(),
        Config {
            flags: CONFIG_FLAG_VERBOSE,
            level: 3,
            quota: 0
        }
    );
    let v2 = Config {
        flags: CONFIG_FLAG_STRICT,
        level: 7,
        quota: 1 << 40,
    };
    let r = send(&mut h, IOCTL_CONFIGURE, v2.as_bytes(), 0);
    assert_eq!(
        (r.completion.status, r.completion.information),
        (SUCCESS, 0)
    );
    assert_eq!(h.state().config, v2);
    let v3 = ConfigV3 {
        flags: 0,
        level: 1,
        quota: 5,
        reserved_v3: 0,
    };
    let r = send(&mut h, IOCTL_CONFIGURE, v3.as_bytes(), 16);
    assert_eq!(
        Config::read_from_bytes(r.data()).unwrap(),
        Config {
            flags: 0,
            level: 1,
            quota: 5
        }
    );
}

#[test]
fn configure_error_paths() {
    let mut h = Harness::new();
    let v2 = Config {
        flags: 0,
        level: 1,
        quota: 0,
    };
    let cases = [
        (
            "non-zero tail",
            ConfigV3 {
                flags: 0,
                level: 1,
                quota: 0,
                reserved_v3: 1,
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_NOT_SUPPORTED,
        ),
        (
            "below version 1",
            v2.as_bytes()[..7].to_vec(),
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "over the cap",
            vec![0; MAX_CONFIG_BYTES + 1],
            16,
            NtStatus::STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "unknown flag",
            Config {
                flags: 1 << 7,
                ..v2
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "level too high",
            Config {
                level: MAX_LEVEL + 1,
                ..v2
            }
            .as_bytes()
            .to_vec(),
            16,
            NtStatus::STATUS_INVALID_PARAMETER,
        ),
        (
            "short output",
            v2.as_bytes().to_vec(),
            15,
            NtStatus::STATUS_BUFFER_TOO_SMALL,
        ),
    ];
    for (what, input, out_len, expected) in cases {
        let r = send(&mut h, IOCTL_CONFIGURE, &input, out_len);
        assert_eq!(r.completion.status, expected, "{what}");
    }
    assert_eq!(h.state().config, Config::default());
}

// ------------------------------------------------------------------ BATCH

fn batch_request(h: &mut Harness, segments: &[Segment]) -> Vec<u8> {
    let table = h.put(segments.as_bytes());
    BatchRequest {
        count: segments.len() as u32,
        reserved: 0,
        segments: table as u64,
    }
    .as_bytes()
    .to_vec()
}

fn segment(h: &mut Harness, bytes: &[u8]) -> Segment {
    Segment {
        addr: h.put(bytes) as u64,
        len: bytes.len() as u64,
    }
}

#[test]
fn batch_checksums_all_segments() {
    let mut h = Harness::new();
    let parts: [&[u8]; 3] = [b"two levels", b"", b" of pointers"];
    let segments: Vec<Segment> = parts.iter().map(|p| segment(&mut h, p)).collect();
    let req = batch_request(&mut h, &segments);
    let r = send(&mut h, IOCTL_BATCH, &req, 24);
    assert_eq!(r.completion.status, SUCCESS);
    let reply = BatchReply::read_from_bytes(r.data()).unwrap();
    assert_eq!(reply.segments, 3);
    assert_eq!(reply.total_bytes, 22);
    assert_eq!(reply.checksum, checksum(parts));
}

#[test]
fn batch_error_paths() {
    let mut h = Harness::new();
    let good = segment(&mut h, b"data");
    let cases = [
        (
            "too many segments",
            vec![good; MAX_BATCH_SEGMENTS as usize + 1],
            NtStatus::STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "total over the budget",
            vec![
                Segment {
                    addr: good.addr,
                    len: MAX_BATCH_BYTES / 2 + 1
                };
                2
            ],
            NtStatus::STATUS_INVALID_BUFFER_SIZE,
        ),
        (
            "length sum overflows u64",
            vec![
                Segment {
                    addr: good.addr,
                    len: u64::MAX,
                },
                Segment {
                    addr: good.addr,
                    len: 2,
                },
            ],
            NtStatus::STATUS_INTEGER_OVERFLOW,
        ),
        (
            "kernel segment",
            vec![
                good,
                Segment {
                    addr: KERNEL as u64,
                    len: 8,
                },
            ],
            NtStatus::STATUS_ACCESS_VIOLATION,
        ),
        (
            "unmapped segment",
            vec![Segment {
                addr: 0x7000_0000,
                len: 8,
            }],
            NtStatus::STATUS_ACCESS_VIOLATION,
        ),
    ];
    for (what, segments, expected) in cases {
        let req = batch_request(&mut h, &segments);
        let r = send(&mut h, IOCTL_BATCH, &req, 24);
        assert_eq!(r.completion.status, expected, "{what}");
    }
    let kernel_table = BatchRequest {
        count: 1,
        reserved: 0,
        segments: KERNEL as u64,
    };
    let r = send(&mut h, IOCTL_BATCH, kernel_table.as_bytes(), 24);
    assert_eq!(
        r.completion.status,
        NtStatus::STATUS_ACCESS_VIOLATION,
        "kernel table"
    );
    let req = batch_request(&mut h, &[good]);
    let r = send(&mut h, IOCTL_BATCH, &req, 23);
    assert_eq!(
        r.completion.status,
        NtStatus::STATUS_BUFFER_TOO_SMALL,
        "short output"
    );
    assert_eq!(h.state().stats.batch, 0);
}

// ------------------------------------------------------------------ STATS and unknown codes

#[test]
fn stats_count_successes_only() {
    let mut h = Harness::new();
    send(&mut h, IOCTL_ECHO, b"abc", 3);
    send(&mut h, IOCTL_ECHO, b"abc", 2); // fails
    send(&mut h, IOCTL_MESSAGE, &message(1, 1, &[1]), 16);
    let r = send(&mut h, IOCTL_STATS, &[], 80);
    let stats = Stats::read_from_bytes(r.data()).unwrap();
    assert_eq!((stats.echo, stats.message, stats.stats), (1, 1, 1));
    assert_eq!(stats.bytes_captured, 3 + 12);
    let r = send(&mut h, IOCTL_STATS, &[], 79);
    assert_eq!(r.completion.status, NtStatus::STATUS_BUFFER_TOO_SMALL);
}

#[test]
fn unknown_codes_and_wrong_methods_are_invalid_device_requests() {
    let mut h = Harness::new();
    let wrong_method = ctl_code(
        FILE_DEVICE_USERCAP,
        0x801,
        Method::Buffered,
        FILE_READ_ACCESS,
    );
    let direct = ctl_code(
        FILE_DEVICE_USERCAP,
        0x800,
        Method::InDirect,
        FILE_READ_ACCESS,
    );
    for code in [
        0,
        0x1234_5678,
        wrong_method,
        direct,
        IOCTL_ECHO ^ (1 << 14),
        u32::MAX,
    ] {
        let r = send(&mut h, code, b"12345678", 16);
        assert_eq!(
            r.completion.status,
            NtStatus::STATUS_INVALID_DEVICE_REQUEST,
            "code {code:#x}"
        );
    }
}

#[test]
fn a_read_only_output_buffer_is_an_access_violation() {
    let mut h = Harness::new();
    h.space
        .map_zeroed(0x300_0000, 64, usercap::sim::Perm::READ)
        .unwrap();
    let input = h.put(b"abcd");
    let r = h
        .call_raw(&Ioctl {
            code: IOCTL_ECHO,
            input,
            input_len: 4,
            output: 0x300_0000,
            output_len: 8,
        })
        .unwrap();
    assert_eq!(r.status(), status(NtStatus::STATUS_ACCESS_VIOLATION));
    let _ = OUT;
}
