//! A test harness: a `Device` behind the I/O manager model, on a `SimSpace`
//! with a user arena, an output area pre-filled with a canary, and a kernel
//! region standing for device memory.

#![allow(dead_code)]

use usercap::sim::{Perm, SimSpace};
use usercap::zerocopy::{Immutable, IntoBytes};
use usercap_device::io::{Driver, IoManager, Ioctl, Violation};
use usercap_device::{Completion, Device, DeviceState};

/// The raw lock the tests use: a spin lock (the device is generic).
pub type Raw = spin::mutex::SpinMutex<()>;
pub type TestDevice = Device<Raw>;

/// User memory the test writes requests into.
pub const ARENA: usize = 0x10_0000;
pub const ARENA_LEN: usize = 0x1_0000;
/// Where replies go; re-filled with `CANARY` before every call.
pub const OUT: usize = 0x80_0000;
pub const OUT_LEN: usize = 0x1000;
pub const CANARY: u8 = 0xEE;
/// Device memory: what a kernel-pointer injection points at.
pub const KERNEL: usize = 0xFFFF_8000_0010_0000;

pub struct Harness<D: Driver = TestDevice> {
    pub space: SimSpace,
    pub driver: D,
    next: usize,
}

pub struct Reply {
    pub completion: Completion,
    /// The whole output area after the call.
    pub out: Vec<u8>,
}

impl Reply {
    pub fn status(&self) -> u32 {
        self.completion.status.as_u32()
    }
    /// The bytes the device returned.
    pub fn data(&self) -> &[u8] {
        &self.out[..self.completion.information]
    }
}

impl Harness<TestDevice> {
    pub fn new() -> Self {
        Self::with_driver(TestDevice::new())
    }
    pub fn state(&self) -> DeviceState {
        self.driver.state()
    }
}

impl<D: Driver> Harness<D> {
    pub fn with_driver(driver: D) -> Self {
        let space = SimSpace::new();
        space
            .map_zeroed(ARENA, ARENA_LEN, Perm::READ_WRITE)
            .unwrap();
        space.map_zeroed(OUT, OUT_LEN, Perm::READ_WRITE).unwrap();
        space
            .map(KERNEL, &[0x5A; 0x1000], Perm::READ_WRITE)
            .unwrap();
        Self {
            space,
            driver,
            next: ARENA,
        }
    }

    /// Places bytes in the arena (16-aligned) and returns their address.
    pub fn put(&mut self, bytes: &[u8]) -> usize {
        let addr = self.next;
        assert!(addr + bytes.len() <= ARENA + ARENA_LEN, "arena full");
        assert!(self.space.poke(addr, bytes));
        self.next = (addr + bytes.len() + 15) & !15;
        addr
    }

    pub fn put_value<T: IntoBytes + Immutable>(&mut self, value: &T) -> usize {
        self.put(value.as_bytes())
    }

    /// Sends an IOCTL whose input is already at `input`, with the output
    /// area as output; counters are reset first so they cover this request.
    pub fn call_at(
        &self,
        code: u32,
        input: usize,
        input_len: usize,
        output_len: usize,
    ) -> Result<Reply, Violation> {
        self.call_raw(&Ioctl {
            code,
            input,
            input_len,
            output: OUT,
            output_len,
        })
    }

    pub fn call_raw(&self, ioctl: &Ioctl) -> Result<Reply, Violation> {
        assert!(self.space.poke(OUT, &[CANARY; OUT_LEN]));
        self.space.reset_counters();
        let completion = IoManager::new(&self.driver).device_io_control(&self.space, ioctl)?;
        let out = self.space.peek(OUT, OUT_LEN).unwrap();
        Ok(Reply { completion, out })
    }

    /// Places `input` and sends it.
    pub fn call(&mut self, code: u32, input: &[u8], output_len: usize) -> Reply {
        let addr = self.put(input);
        self.call_at(code, addr, input.len(), output_len)
            .expect("no Verifier violation")
    }

    /// Asserts the reply wrote nothing past `information` into the output area.
    pub fn assert_nothing_past(reply: &Reply) {
        assert!(
            reply.out[reply.completion.information..]
                .iter()
                .all(|&b| b == CANARY),
            "bytes past Information were written"
        );
    }
}
