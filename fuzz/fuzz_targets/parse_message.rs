//! `CapturedBytes::from_system_buffer` then `parse::<Message>()` on
//! arbitrary bytes: the MESSAGE IOCTL's input, after the I/O manager copied
//! it into the SystemBuffer.
//!
//! Invariants: `parse` succeeds exactly when the 8-byte header was captured
//! and `8 + 4 * count <= len`; then `items.len() == count` and the items are
//! the bytes after the header, little-endian. A failure is `Invalid`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usercap::{CaptureError, CapturedBytes};
use usercap_protocol::{MESSAGE_HEADER_BYTES, Message};

fuzz_target!(|bytes: &[u8]| {
    let captured = CapturedBytes::from_system_buffer(bytes, &usercap::sim::SimSpace::new())
        .expect("libFuzzer inputs are small");
    assert_eq!(&*captured, bytes, "the kernel copy differs from the input");
    let len = bytes.len();
    let count = bytes
        .get(4..8)
        .map(|c| u64::from(u32::from_le_bytes(c.try_into().expect("4 bytes"))));
    let fits = count.is_some_and(|count| MESSAGE_HEADER_BYTES as u64 + 4 * count <= len as u64);
    match captured.parse::<Message>() {
        Ok(message) => {
            assert!(
                fits,
                "parsed {len} bytes whose count {count:?} does not fit"
            );
            let count = count.expect("header present");
            assert_eq!(u64::from(message.count), count);
            assert_eq!(message.items.len() as u64, count);
            assert_eq!(message.kind.to_le_bytes(), bytes[..4]);
            for (i, item) in message.items.iter().enumerate() {
                let at = MESSAGE_HEADER_BYTES + 4 * i;
                assert_eq!(item.to_le_bytes(), bytes[at..at + 4], "item {i}");
            }
        }
        Err(e) => {
            assert_eq!(e, CaptureError::Invalid);
            assert!(!fits, "refused {len} bytes whose count {count:?} fits");
        }
    }
});
