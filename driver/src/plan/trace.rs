//! What the driver traces, at which level, in which words.
//!
//! The shell prints with `DbgPrintEx(DPFLTR_IHVDRIVER_ID, level, "%s",
//! message)` (driver/src/trace.rs). Everything that can be decided without
//! Windows is here and unit-tested: the component, the level of each event,
//! and the message text, formatted into a fixed NUL-terminated buffer.
//!
//! # Why `DbgPrintEx`, and why "%s"
//!
//! - `DbgPrintEx` with `DPFLTR_IHVDRIVER_ID` is filtered per component and
//!   level by the kernel (the `Debug Print Filter` registry key's `IHVDRIVER`
//!   value, or `nt!Kd_IHVDRIVER_Mask` in a debugger), so a user chooses how
//!   much to see. `wdk::println!` goes through `DbgPrint`, which is
//!   `DbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, ..)`: one switch for
//!   every driver on the machine that uses it.
//! - The binding is variadic, which Rust calls without trouble. The only
//!   risk of a variadic is a format that does not match its arguments, so
//!   the format is always the literal "%s" with exactly one argument, this
//!   module's NUL-terminated buffer; the text is formatted here, in Rust,
//!   where the tests can see it. `%s` is legal at any IRQL up to DIRQL
//!   (only the wide `%wZ`/`%ws` conversions need PASSIVE_LEVEL).
//! - TraceLogging/WPP would need a provider registration and a decoder on
//!   the test machine; DebugView or a kernel debugger is all `DbgPrintEx`
//!   needs.
//!
//! # Levels
//!
//! | level | mask bit | events |
//! |---|---|---|
//! | `DPFLTR_ERROR_LEVEL` (0) | 0x1 | the driver or a device could not be set up |
//! | `DPFLTR_WARNING_LEVEL` (1) | 0x2 | a request refused for lack of resources; a second device without `\\.\UserCap` |
//! | `DPFLTR_TRACE_LEVEL` (2) | 0x4 | every other failed request: IOCTL code and status |
//! | `DPFLTR_INFO_LEVEL` (3) | 0x8 | driver loaded, device added, driver unloading |
//!
//! Error-level messages are shown by default (the system-wide `WIN2000`
//! mask is 1); the rest need the `IHVDRIVER` mask (docs/windows.md).
//! Successful requests print nothing.

use core::fmt::{self, Write};

use usercap::NtStatus;

use super::is_out_of_resources;

/// `DPFLTR_IHVDRIVER_ID` in dpfilter.h (77): "any other type of driver", the
/// component of third-party drivers that are not video, audio, network,
/// streaming or bus drivers. The shell checks it against the bindings at
/// compile time.
pub(crate) const COMPONENT_ID: u32 = 77;

/// The `Level` argument of `DbgPrintEx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// `DPFLTR_ERROR_LEVEL`.
    Error,
    /// `DPFLTR_WARNING_LEVEL`.
    Warning,
    /// `DPFLTR_TRACE_LEVEL`.
    Trace,
    /// `DPFLTR_INFO_LEVEL`.
    Info,
}

impl Level {
    /// The value `DbgPrintEx` takes (0 to 3).
    pub(crate) const fn dpfltr(self) -> u32 {
        match self {
            Self::Error => 0,
            Self::Warning => 1,
            Self::Trace => 2,
            Self::Info => 3,
        }
    }

    /// The bit of a component filter mask that lets this level through: a
    /// level of 0 to 31 is a bit shift (`1 << Level`). (docs/windows.md's
    /// table; the driver itself never needs it.)
    #[cfg(test)]
    pub(crate) const fn mask_bit(self) -> u32 {
        1 << self.dpfltr()
    }
}

/// The step of EvtDriverDeviceAdd that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `WdfDeviceCreate`.
    DeviceCreate,
    /// `WdfWaitLockCreate`.
    WaitLockCreate,
    /// `WdfObjectGetTypedContextWorker` returned no usable context.
    Context,
    /// `WdfDeviceCreateDeviceInterface`.
    Interface,
    /// `WdfDeviceCreateSymbolicLink`, with a status other than a name
    /// collision.
    SymbolicLink,
}

impl Step {
    const fn name(self) -> &'static str {
        match self {
            Self::DeviceCreate => "WdfDeviceCreate",
            Self::WaitLockCreate => "WdfWaitLockCreate",
            Self::Context => "WdfObjectGetTypedContextWorker",
            Self::Interface => "WdfDeviceCreateDeviceInterface",
            Self::SymbolicLink => "WdfDeviceCreateSymbolicLink",
        }
    }
}

/// Something the driver reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// `WdfDriverCreate` returned `status` in DriverEntry.
    DriverCreated {
        /// Its NTSTATUS.
        status: i32,
    },
    /// EvtDriverDeviceAdd succeeded; `link` says whether `\\.\UserCap` is
    /// this device's.
    DeviceAdded {
        /// The symbolic link was created for this device.
        link: bool,
    },
    /// EvtDriverDeviceAdd failed at `step` with `status`.
    DeviceAddFailed {
        /// Which call.
        step: Step,
        /// Its NTSTATUS.
        status: i32,
    },
    /// A request was completed with `status`; `code` is its IOCTL code, or
    /// `None` for a request that is not a DEVICE_CONTROL (or was refused
    /// before its parameters were read).
    Completed {
        /// The IOCTL code.
        code: Option<u32>,
        /// The completion status.
        status: i32,
    },
    /// EvtDriverUnload.
    Unloading,
}

/// The level `event` is printed at, or `None` if it is not printed (a
/// successful request).
pub(crate) const fn level(event: &Event) -> Option<Level> {
    match *event {
        Event::DriverCreated { status } if status < 0 => Some(Level::Error),
        Event::DeviceAddFailed { .. } => Some(Level::Error),
        Event::DeviceAdded { link: false } => Some(Level::Warning),
        Event::Completed { status, .. } if status >= 0 => None,
        Event::Completed { status, .. } if is_out_of_resources(status) => Some(Level::Warning),
        Event::Completed { .. } => Some(Level::Trace),
        Event::DriverCreated { .. } | Event::DeviceAdded { link: true } | Event::Unloading => {
            Some(Level::Info)
        }
    }
}

/// Bytes a message holds, its terminating NUL included. `DbgPrintEx`
/// transmits at most 512 bytes per call; the longest message here is about
/// 130.
pub(crate) const MESSAGE_CAPACITY: usize = 192;

/// One formatted message: ASCII text, always NUL-terminated, never more
/// than [`MESSAGE_CAPACITY`] bytes. Longer text is cut (the NUL stays);
/// NUL bytes in the text are replaced by `?`, since `%s` would stop there.
pub(crate) struct Message {
    bytes: [u8; MESSAGE_CAPACITY],
    /// Text bytes, excluding the NUL; always `< MESSAGE_CAPACITY`.
    len: usize,
}

impl Message {
    /// The message for `event`.
    pub(crate) fn of(event: &Event) -> Self {
        let mut message = Self::empty();
        // A message that does not fit is cut; the cut is all that an error
        // here can mean, so it is not an error for the caller.
        let _ = message.format(event);
        message
    }

    /// An empty message: just the NUL.
    const fn empty() -> Self {
        Self {
            bytes: [0; MESSAGE_CAPACITY],
            len: 0,
        }
    }

    fn format(&mut self, event: &Event) -> fmt::Result {
        self.write_str("usercap: ")?;
        match *event {
            Event::DriverCreated { status } if status < 0 => {
                write!(self, "WdfDriverCreate failed: {}", Status(status))?;
            }
            Event::DriverCreated { .. } => self.write_str("driver loaded")?,
            Event::DeviceAdded { link: true } => {
                self.write_str("device added, \\\\.\\UserCap and its interface")?;
            }
            Event::DeviceAdded { link: false } => self.write_str(
                "device added without \\\\.\\UserCap (another usercap device has it); \
                 reach it through its device interface",
            )?,
            Event::DeviceAddFailed { step, status } => write!(
                self,
                "EvtDriverDeviceAdd failed at {}: {}",
                step.name(),
                Status(status)
            )?,
            Event::Completed {
                code: Some(code),
                status,
            } => write!(self, "IOCTL {code:#010X} failed: {}", Status(status))?,
            Event::Completed { code: None, status } => {
                write!(self, "request refused: {}", Status(status))?;
            }
            Event::Unloading => self.write_str("driver unloading")?,
        }
        self.write_str("\n")
    }

    /// The text, without the NUL.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// The text with its terminating NUL, as `%s` reads it.
    #[cfg(test)]
    pub(crate) fn with_nul(&self) -> &[u8] {
        self.bytes.get(..=self.len).unwrap_or(&[])
    }

    /// A pointer to the NUL-terminated text, for `DbgPrintEx`'s one `%s`
    /// argument. Valid while `self` lives.
    pub(crate) fn as_ptr(&self) -> *const core::ffi::c_char {
        self.bytes.as_ptr().cast()
    }
}

impl Write for Message {
    /// Appends what fits, keeping the byte after the text a NUL.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            // The last byte of the buffer is reserved for the terminator.
            if self.len + 1 >= MESSAGE_CAPACITY {
                return Err(fmt::Error);
            }
            let Some(slot) = self.bytes.get_mut(self.len) else {
                return Err(fmt::Error);
            };
            *slot = if byte == 0 { b'?' } else { byte };
            self.len += 1;
            if let Some(terminator) = self.bytes.get_mut(self.len) {
                *terminator = 0;
            }
        }
        Ok(())
    }
}

/// An NTSTATUS as `0xC0000005 STATUS_ACCESS_VIOLATION` (the name when the
/// project knows it).
struct Status(i32);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = NtStatus(self.0);
        write!(f, "{:#010X}", status.as_u32())?;
        match status.name() {
            Some(name) => write!(f, " {name}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(event: &Event) -> String {
        let message = Message::of(event);
        String::from_utf8(message.text().to_vec()).expect("ASCII")
    }

    const AV: i32 = NtStatus::STATUS_ACCESS_VIOLATION.0;
    const NO_POOL: i32 = NtStatus::STATUS_INSUFFICIENT_RESOURCES.0;

    #[test]
    fn levels_are_the_dpfilter_values_and_their_mask_bits() {
        let all = [Level::Error, Level::Warning, Level::Trace, Level::Info];
        assert_eq!(all.map(Level::dpfltr), [0, 1, 2, 3]);
        assert_eq!(all.map(Level::mask_bit), [0x1, 0x2, 0x4, 0x8]);
        assert_eq!(COMPONENT_ID, 77);
    }

    #[test]
    fn each_event_has_its_level_and_successes_print_nothing() {
        let table = [
            (Event::DriverCreated { status: 0 }, Some(Level::Info)),
            (Event::DriverCreated { status: NO_POOL }, Some(Level::Error)),
            (Event::DeviceAdded { link: true }, Some(Level::Info)),
            (Event::DeviceAdded { link: false }, Some(Level::Warning)),
            (
                Event::DeviceAddFailed {
                    step: Step::DeviceCreate,
                    status: NO_POOL,
                },
                Some(Level::Error),
            ),
            (
                Event::Completed {
                    code: Some(0x8337_E004),
                    status: 0,
                },
                None,
            ),
            (
                Event::Completed {
                    code: Some(0x8337_E004),
                    status: AV,
                },
                Some(Level::Trace),
            ),
            (
                Event::Completed {
                    code: Some(0x8337_E004),
                    status: NO_POOL,
                },
                Some(Level::Warning),
            ),
            (
                Event::Completed {
                    code: None,
                    status: NtStatus::STATUS_INVALID_DEVICE_REQUEST.0,
                },
                Some(Level::Trace),
            ),
            (Event::Unloading, Some(Level::Info)),
        ];
        for (event, expected) in table {
            assert_eq!(level(&event), expected, "{event:?}");
        }
        // A warning-severity status (the top bit set) is a failure too.
        let overflow = Event::Completed {
            code: Some(1),
            status: NtStatus::STATUS_BUFFER_OVERFLOW.0,
        };
        assert_eq!(level(&overflow), Some(Level::Trace));
    }

    #[test]
    fn messages_name_the_code_and_the_status() {
        assert_eq!(
            text(&Event::Completed {
                code: Some(0x8337_E004),
                status: AV
            }),
            "usercap: IOCTL 0x8337E004 failed: 0xC0000005 STATUS_ACCESS_VIOLATION\n"
        );
        assert_eq!(
            text(&Event::Completed {
                code: Some(0x10),
                status: 0xC000_00E8_u32.cast_signed()
            }),
            "usercap: IOCTL 0x00000010 failed: 0xC00000E8\n",
            "unknown statuses print as hex only"
        );
        assert_eq!(
            text(&Event::Completed {
                code: None,
                status: NtStatus::STATUS_INVALID_DEVICE_REQUEST.0
            }),
            "usercap: request refused: 0xC0000010 STATUS_INVALID_DEVICE_REQUEST\n"
        );
        assert_eq!(
            text(&Event::DeviceAddFailed {
                step: Step::Interface,
                status: NO_POOL
            }),
            "usercap: EvtDriverDeviceAdd failed at WdfDeviceCreateDeviceInterface: \
             0xC000009A STATUS_INSUFFICIENT_RESOURCES\n"
        );
        assert_eq!(
            text(&Event::DriverCreated { status: NO_POOL }),
            "usercap: WdfDriverCreate failed: 0xC000009A STATUS_INSUFFICIENT_RESOURCES\n"
        );
        assert_eq!(
            text(&Event::DriverCreated { status: 0 }),
            "usercap: driver loaded\n"
        );
        assert_eq!(text(&Event::Unloading), "usercap: driver unloading\n");
        assert!(text(&Event::DeviceAdded { link: false }).contains("device interface"));
        assert!(text(&Event::DeviceAdded { link: true }).contains("\\\\.\\UserCap"));
    }

    #[test]
    fn every_message_fits_and_is_nul_terminated() {
        let steps = [
            Step::DeviceCreate,
            Step::WaitLockCreate,
            Step::Context,
            Step::Interface,
            Step::SymbolicLink,
        ];
        let mut events = vec![
            Event::DriverCreated { status: 0 },
            Event::DriverCreated { status: i32::MIN },
            Event::DeviceAdded { link: true },
            Event::DeviceAdded { link: false },
            Event::Unloading,
            Event::Completed {
                code: Some(u32::MAX),
                status: i32::MIN,
            },
        ];
        events.extend(steps.map(|step| Event::DeviceAddFailed {
            step,
            status: NtStatus::STATUS_INVALID_BUFFER_SIZE.0,
        }));
        events.extend(NtStatus::ALL.iter().map(|s| Event::Completed {
            code: Some(u32::MAX),
            status: s.0,
        }));
        for event in events {
            let message = Message::of(&event);
            let with_nul = message.with_nul();
            assert_eq!(with_nul.last(), Some(&0), "{event:?}");
            assert!(!message.text().contains(&0), "{event:?}");
            assert!(message.text().ends_with(b"\n"), "not cut: {event:?}");
            assert!(with_nul.len() <= MESSAGE_CAPACITY);
        }
    }

    #[test]
    fn overlong_text_is_cut_and_stays_terminated() {
        // Garbage after the text must never show: the terminator is
        // rewritten after every byte.
        let mut message = Message {
            bytes: [0xAA; MESSAGE_CAPACITY],
            len: 0,
        };
        assert!(message.write_str("ab").is_ok());
        assert_eq!(message.with_nul(), b"ab\0");
        let long = "x".repeat(MESSAGE_CAPACITY * 2);
        assert!(message.write_str(&long).is_err());
        assert_eq!(message.text().len(), MESSAGE_CAPACITY - 1);
        assert!(message.text().starts_with(b"abx"));
        assert_eq!(message.with_nul().len(), MESSAGE_CAPACITY);
        assert_eq!(message.with_nul().last(), Some(&0));
        // Further writes change nothing.
        assert!(message.write_str("y").is_err());
        assert_eq!(message.text().len(), MESSAGE_CAPACITY - 1);
    }

    #[test]
    fn nul_bytes_cannot_end_the_text_early() {
        let mut message = Message::empty();
        assert!(message.write_str("a\0b").is_ok());
        assert_eq!(message.text(), b"a?b");
        assert_eq!(message.with_nul(), b"a?b\0");
    }
}
