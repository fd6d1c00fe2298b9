//! The `sim` transport: usercap's device in this process, behind the model
//! of the Windows I/O manager, over this process's real memory. User
//! buffers are real pages; bad pointers really fault and are caught by the
//! platform's guarded copy (the exception table on Linux, SEH scope tables
//! on Windows); racing threads are real threads.

use usercap::AddressSpace;
use usercap_device::io::{Driver, Irp};
use usercap_device::{Device, Request};
use usercap_host::naive::NaiveSum;
use usercap_host::{IoManager, Ioctl};
use usercap_protocol::IOCTL_SUM;

use crate::transport::{Call, Error, Outcome, Transport};

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
    driver: D,
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
            driver,
            space: PlatformSpace::new(),
        }
    }

    /// The driver, for checks of its state.
    pub fn driver(&self) -> &D {
        &self.driver
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
