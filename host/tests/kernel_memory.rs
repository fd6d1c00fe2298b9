//! Kernel memory is everything that is not user memory.
//!
//! On Windows the device object, the SystemBuffers and the pool copies of
//! captures all live above `MmUserProbeAddress`, so a user-mode probe
//! refuses a pointer at any of them. The host model has them in this
//! process's heap; they are kernel memory because a user-mode `HostSpace`
//! accepts only addresses inside the model's user range, where every
//! [`UserMemory`] lives. These tests aim user-mode requests at each of them,
//! through the I/O manager model and the real device, and check the probe
//! refuses them before a byte is read.
//!
//! Each test also shows it aimed where it says: the device object holds the
//! name the test set, the SystemBuffer is the one the request got (a space
//! that substitutes its address stands for an exact prediction of it, so
//! that no allocator's habits matter), and the pool copy is alive and holds
//! the other request's bytes when the pointer at it is sent.
#![cfg(unix)]

use std::cell::Cell;

use usercap::{AddressSpace, CaptureError, Limits, Mode, NtStatus, PoolBlock};
use usercap_device::Device;
use usercap_host::{Driver, HostSpace, IoManager, Ioctl, UserMemory};
use usercap_protocol::{
    IOCTL_ECHO, IOCTL_SET_NAME, IOCTL_SUM, SetNameRequest, SumRequest, WireUnicodeString,
};
use zerocopy::{FromBytes, IntoBytes};

type SimDevice = Device<spin::mutex::SpinMutex<()>>;

const NAME: &str = "kernel-secret-name";

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Sets the device's name with a real user-mode SET_NAME.
fn set_name<D: Driver>(driver: &D, name: &str) {
    let mem = UserMemory::new(4096).unwrap();
    let chars = utf16(name);
    mem.write_at(64, &chars).unwrap();
    let length = u16::try_from(chars.len()).unwrap();
    let request = SetNameRequest {
        name: WireUnicodeString {
            length,
            maximum_length: length,
            reserved: 0,
            buffer: (mem.addr() + 64) as u64,
        },
    };
    mem.write_at(0, request.as_bytes()).unwrap();
    let completion = IoManager::new(driver)
        .device_io_control(
            &HostSpace::new(),
            &Ioctl {
                code: IOCTL_SET_NAME,
                input: mem.addr(),
                input_len: size_of::<SetNameRequest>(),
                output: 0,
                output_len: 0,
            },
        )
        .unwrap();
    assert_eq!(completion.status, NtStatus::STATUS_SUCCESS);
}

/// A user-mode ECHO of `len` bytes from `input`, with its output in fresh
/// user memory: the status and the bytes that came back.
fn echo_from<D: Driver>(driver: &D, input: usize, len: usize) -> (NtStatus, Vec<u8>) {
    let out = UserMemory::new(len.max(1)).unwrap();
    let completion = IoManager::new(driver)
        .device_io_control(
            &HostSpace::new(),
            &Ioctl {
                code: IOCTL_ECHO,
                input,
                input_len: len,
                output: out.addr(),
                output_len: len,
            },
        )
        .unwrap();
    let mut reply = vec![0; completion.information];
    out.read_at(0, &mut reply).unwrap();
    (completion.status, reply)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The reproduction of the review: a user-mode ECHO whose input pointer is
/// the address of the `Device` object returned the device's name.
#[test]
fn echo_from_the_device_object_is_refused() {
    let device = SimDevice::new();
    set_name(&device, NAME);
    let addr = std::ptr::from_ref(&device).addr();
    let len = size_of::<SimDevice>();
    // The target: the device object holds the name (read as the kernel
    // reads its own memory).
    let mut image = vec![0; len];
    HostSpace::kernel().read(addr, &mut image, 1).unwrap();
    assert!(contains(&image, &utf16(NAME)), "the name is in the device");

    let (status, reply) = echo_from(&device, addr, len);
    assert!(
        !contains(&reply, &utf16(NAME)),
        "ECHO from the Device object: {status} info {} -> name found in reply",
        reply.len()
    );
    assert_eq!(status, NtStatus::STATUS_ACCESS_VIOLATION);
}

/// The requester's space, handing the I/O manager's copy-in the address of
/// the very buffer it copies into whenever the input pointer is `marker`: a
/// requester who predicted its request's SystemBuffer address exactly,
/// whatever the allocator does. It records the address it aimed at.
struct AimsAtItsSystemBuffer {
    space: HostSpace,
    marker: usize,
    aimed: Cell<Option<usize>>,
}

impl AddressSpace for AimsAtItsSystemBuffer {
    fn mode(&self) -> Mode {
        self.space.mode()
    }
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        let src = if src == self.marker {
            let own = dst.as_ptr().addr();
            self.aimed.set(Some(own));
            own
        } else {
            src
        };
        self.space.read(src, dst, align)
    }
    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        self.space.write(dst, src, align)
    }
    fn limits(&self) -> Limits {
        self.space.limits()
    }
}

/// An ECHO from the request's own SystemBuffer through `space` (user or
/// kernel mode): the status, and the address aimed at. The marker is real,
/// readable user memory, so an ECHO that was not aimed would succeed.
fn echo_from_own_system_buffer(space: HostSpace) -> (NtStatus, usize) {
    let device = SimDevice::new();
    let len = 0x1D8;
    let input = UserMemory::new(len).unwrap();
    input.fill(0x42).unwrap();
    let out = UserMemory::new(len).unwrap();
    let aiming = AimsAtItsSystemBuffer {
        space,
        marker: input.addr(),
        aimed: Cell::new(None),
    };
    let completion = IoManager::new(&device)
        .device_io_control(
            &aiming,
            &Ioctl {
                code: IOCTL_ECHO,
                input: input.addr(),
                input_len: len,
                output: out.addr(),
                output_len: len,
            },
        )
        .unwrap();
    let aimed = aiming.aimed.get().expect("the copy-in was aimed");
    (completion.status, aimed)
}

/// An ECHO whose input pointer is its own SystemBuffer: the I/O manager
/// would copy the input from the buffer it is filling, heap memory that its
/// `&mut` holds. In user mode it is not user memory.
#[test]
fn echo_from_its_own_system_buffer_is_refused() {
    let (status, aimed) = echo_from_own_system_buffer(HostSpace::new());
    assert!(!usercap_host::is_user_range(aimed, 1));
    assert_eq!(status, NtStatus::STATUS_ACCESS_VIOLATION);
}

/// The requester's space, which also runs `during` each time a capture
/// made a pool copy, while that copy is alive, with its address and length.
struct DuringPoolCopy<'f> {
    space: HostSpace,
    during: &'f dyn Fn(usize, usize),
}

impl AddressSpace for DuringPoolCopy<'_> {
    fn mode(&self) -> Mode {
        self.space.mode()
    }
    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        self.space.read(src, dst, align)
    }
    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        self.space.write(dst, src, align)
    }
    fn limits(&self) -> Limits {
        self.space.limits()
    }
    fn read_to_pool(
        &self,
        src: usize,
        len: usize,
        align: usize,
    ) -> Result<Vec<PoolBlock>, CaptureError> {
        let copy = self.space.read_to_pool(src, len, align)?;
        (self.during)(copy.as_ptr().addr(), len);
        Ok(copy)
    }
}

/// While one request holds a pool copy of the user's bytes (SET_NAME's
/// captured name), another request's pointers aim at it: an ECHO input and
/// SUM's embedded values pointer. Both are refused.
#[test]
fn pointers_at_another_requests_pool_copy_are_refused() {
    let device = SimDevice::new();
    let other = UserMemory::new(4096).unwrap();
    let attempts = Cell::new(0);
    let during = |pool: usize, len: usize| {
        attempts.set(attempts.get() + 1);
        // The target: alive, holding the first request's bytes.
        let mut held = vec![0; len];
        HostSpace::kernel().read(pool, &mut held, 1).unwrap();
        assert_eq!(held, utf16(NAME), "the pool copy holds the name");

        let (status, reply) = echo_from(&device, pool, len);
        assert!(
            !contains(&reply, &utf16(NAME)),
            "ECHO from another request's pool copy: {status}, name in reply"
        );
        assert_eq!(status, NtStatus::STATUS_ACCESS_VIOLATION);

        let request = SumRequest {
            count: (len / 4) as u64,
            values: pool as u64,
        };
        other.write_at(0, request.as_bytes()).unwrap();
        let completion = IoManager::new(&device)
            .device_io_control(
                &HostSpace::new(),
                &Ioctl {
                    code: IOCTL_SUM,
                    input: other.addr(),
                    input_len: size_of::<SumRequest>(),
                    output: other.addr() + 64,
                    output_len: 16,
                },
            )
            .unwrap();
        let mut reply = [0_u8; 16];
        other.read_at(64, &mut reply).unwrap();
        assert_eq!(
            completion.status,
            NtStatus::STATUS_ACCESS_VIOLATION,
            "SUM over another request's pool copy: reply {:?}",
            <[u64; 2]>::read_from_bytes(&reply)
        );
    };
    let space = DuringPoolCopy {
        space: HostSpace::new(),
        during: &during,
    };
    // SET_NAME through the space that watches its captures.
    let mem = UserMemory::new(4096).unwrap();
    let chars = utf16(NAME);
    mem.write_at(64, &chars).unwrap();
    let length = u16::try_from(chars.len()).unwrap();
    let request = SetNameRequest {
        name: WireUnicodeString {
            length,
            maximum_length: length,
            reserved: 0,
            buffer: (mem.addr() + 64) as u64,
        },
    };
    mem.write_at(0, request.as_bytes()).unwrap();
    let completion = IoManager::new(&device)
        .device_io_control(
            &space,
            &Ioctl {
                code: IOCTL_SET_NAME,
                input: mem.addr(),
                input_len: size_of::<SetNameRequest>(),
                output: 0,
                output_len: 0,
            },
        )
        .unwrap();
    assert_eq!(completion.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(attempts.get(), 1, "SET_NAME made one pool copy");
}

/// In kernel mode nothing is probed, as on Windows, but a read whose source
/// overlaps its own destination (a kernel-mode request whose input pointer
/// is its own SystemBuffer) would read memory a live `&mut` holds: the
/// kernel-mode `HostSpace` refuses it whole. A source next to the
/// destination, not overlapping, is read.
#[test]
fn a_read_of_its_own_destination_is_refused_in_kernel_mode() {
    let space = HostSpace::kernel();
    let mut buffer = [7_u8; 64];
    let addr = buffer.as_ptr().addr();
    assert_eq!(
        space.read(addr, &mut buffer, 1),
        Err(CaptureError::AccessViolation)
    );
    assert_eq!(
        space.read(addr + 63, &mut buffer, 1),
        Err(CaptureError::AccessViolation)
    );
    let (head, tail) = buffer.split_at_mut(32);
    assert_eq!(
        space.read(tail.as_ptr().addr() - 31, head, 1),
        Err(CaptureError::AccessViolation)
    );
    tail.fill(9);
    assert_eq!(
        space.read(tail.as_ptr().addr(), head, 1),
        Ok(()),
        "adjacent"
    );
    assert_eq!(head, &[9; 32]);
    let slow = space.with_backend(usercap_host::Backend::ProcessVmReadv);
    assert_eq!(
        slow.read(addr + 8, &mut buffer[..16], 1),
        Err(CaptureError::AccessViolation)
    );
    // `read_into` (the inline loads) checks it too.
    let mut value = [0_u64; 4];
    let at = value.as_ptr().addr();
    assert_eq!(
        space.read_into(at + 8, 8, &mut value),
        Err(CaptureError::AccessViolation)
    );
    // And the I/O manager's copy-in, for a kernel-mode ECHO from its own
    // SystemBuffer.
    let (status, _) = echo_from_own_system_buffer(HostSpace::kernel());
    assert_eq!(status, NtStatus::STATUS_ACCESS_VIOLATION);
}
