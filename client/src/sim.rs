//! The `sim` transport: usercap's device in this process, behind the model
//! of the Windows I/O manager, over this process's real memory. User
//! buffers are real pages in the model's user range; bad pointers really
//! fault and are caught by the platform's guarded copy (the exception table
//! on Linux, SEH scope tables on Windows); racing threads are real threads.
//!
//! The device object, the SystemBuffers and the pool copies are this
//! process's heap, which the model treats as kernel memory: a user-mode
//! pointer at them is refused as usercap.sys refuses a pointer above
//! `MmUserProbeAddress`. So that the attack suite can aim at them, the
//! transport tells it where they are ([`Transport::kernel_memory`]), as a
//! kernel address leak would; it starts watching its requests the first
//! time it is asked, so that nothing else pays for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap::{AddressSpace, CaptureError, Limits, Mode, PoolBlock};
use usercap_device::io::{Driver, Irp};
use usercap_device::{Buffers, Device, Request};
use usercap_host::naive::NaiveSum;
use usercap_host::{IoManager, Ioctl};
use usercap_protocol::IOCTL_SUM;

use crate::transport::{Call, Error, KernelMemory, KernelRange, Outcome, Transport};

/// The simulated device.
pub type SimDevice = Device<parking_lot::RawMutex>;

/// The requester's address space of the simulated device: `HostSpace` on
/// Linux (exception-table fixups on signals), `SehSpace` on Windows (SEH
/// scope tables; under Wine on Linux too). Both probe against the model's
/// user range and write only into its `UserMemory`.
#[cfg(unix)]
pub type PlatformSpace = usercap_host::HostSpace;
/// The requester's address space of the simulated device: `HostSpace` on
/// Linux (exception-table fixups on signals), `SehSpace` on Windows (SEH
/// scope tables; under Wine on Linux too). Both probe against the model's
/// user range and write only into its `UserMemory`.
#[cfg(windows)]
pub type PlatformSpace = usercap_seh::SehSpace;

/// A driver behind the I/O manager model, and the requester's address space.
pub struct SimTransport<D: Driver = SimDevice> {
    driver: Watched<D>,
    space: PlatformSpace,
}

impl Default for SimTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl SimTransport {
    /// A fresh usercap device seen from a user-mode requester.
    #[must_use]
    pub fn new() -> Self {
        Self::with_driver(SimDevice::new())
    }
}

impl<D: Driver> SimTransport<D> {
    /// Any driver, for comparisons (the naive SUM).
    pub fn with_driver(driver: D) -> Self {
        Self {
            driver: Watched {
                driver,
                watching: AtomicBool::new(false),
                requests: AtomicU64::new(0),
                system_buffer: Mutex::new(None),
                pool_copy: Mutex::new(None),
            },
            space: PlatformSpace::new(),
        }
    }

    /// The driver, for checks of its state.
    pub fn driver(&self) -> &D {
        &self.driver.driver
    }
}

impl<D: Driver + Send + Sync> Transport for SimTransport<D> {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn call(&self, call: &Call) -> Result<Outcome, Error> {
        let ioctl = Ioctl {
            code: call.code,
            input: call.input,
            input_len: call.input_len,
            output: call.output,
            output_len: call.output_len,
        };
        IoManager::new(&self.driver)
            .device_io_control(&self.space, &ioctl)
            .map(|c| Outcome {
                status: c.status,
                information: c.information,
            })
            .map_err(|v| Error::Verifier(v.to_string()))
    }

    fn kernel_memory(&self, what: KernelMemory) -> Option<KernelRange> {
        let watched = &self.driver;
        watched.watching.store(true, Ordering::Relaxed);
        match what {
            KernelMemory::Device => Some(KernelRange {
                addr: std::ptr::from_ref(&watched.driver).addr(),
                len: size_of::<D>(),
                generation: 0,
            }),
            KernelMemory::LastSystemBuffer => *lock(&watched.system_buffer),
            KernelMemory::LivePoolCopy => *lock(&watched.pool_copy),
        }
    }
}

/// The driver, and what it has been seen to hold.
struct Watched<D> {
    driver: D,
    /// Set by the first [`Transport::kernel_memory`]: until then requests go
    /// straight to the driver.
    watching: AtomicBool,
    /// Requests seen, which numbers them.
    requests: AtomicU64,
    /// The latest METHOD_BUFFERED request's SystemBuffer.
    system_buffer: Mutex<Option<KernelRange>>,
    /// The latest pool copy, while its request runs.
    pool_copy: Mutex<Option<KernelRange>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<D: Driver> Driver for Watched<D> {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        if !self.watching.load(Ordering::Relaxed) {
            self.driver.handle(space, request, irp);
            return;
        }
        let generation = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if let Buffers::Buffered { system_buffer, .. } = &request.buffers {
            *lock(&self.system_buffer) = Some(KernelRange {
                addr: system_buffer.as_ptr().addr(),
                len: system_buffer.len(),
                generation,
            });
        }
        let space = Watch {
            space,
            pool_copy: &self.pool_copy,
            generation,
        };
        self.driver.handle(&space, request, irp);
        // The request's pool copies are freed: it no longer has a live one.
        let mut pool_copy = lock(&self.pool_copy);
        if pool_copy.is_some_and(|copy| copy.generation == generation) {
            *pool_copy = None;
        }
    }
}

/// The requester's space, recording where each capture's pool copy went.
struct Watch<'a, S: ?Sized> {
    space: &'a S,
    pool_copy: &'a Mutex<Option<KernelRange>>,
    generation: u64,
}

impl<S: AddressSpace + ?Sized> AddressSpace for Watch<'_, S> {
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
        if len > 0 {
            *lock(self.pool_copy) = Some(KernelRange {
                addr: copy.as_ptr().addr(),
                len,
                generation: self.generation,
            });
        }
        Ok(copy)
    }
    fn read_value<T: FromBytes + IntoBytes, R>(
        &self,
        src: usize,
        align: usize,
        wrap: impl FnOnce(T) -> R,
    ) -> Result<R, CaptureError> {
        self.space.read_value(src, align, wrap)
    }
    fn read_into<T: FromBytes + IntoBytes>(
        &self,
        src: usize,
        align: usize,
        dst: &mut T,
    ) -> Result<(), CaptureError> {
        self.space.read_into(src, align, dst)
    }
    fn charge(&self, bytes: usize) -> Result<(), CaptureError> {
        self.space.charge(bytes)
    }
}

/// ANTI-PATTERN, for the demo and the tests that show the attack suite can
/// fail: the usercap device with its SUM replaced by `usercap_host::naive`,
/// the classic double-fetching handler. Never a model of the driver.
#[derive(Default)]
pub struct WithNaiveSum {
    /// Every other IOCTL.
    pub device: SimDevice,
    /// SUM.
    pub naive: NaiveSum,
}

impl Driver for WithNaiveSum {
    fn handle<S: AddressSpace + ?Sized>(&self, space: &S, request: Request<'_>, irp: &mut Irp) {
        if request.code == IOCTL_SUM {
            self.naive.handle(space, request, irp);
        } else {
            self.device.handle(space, request, irp);
        }
    }
}
