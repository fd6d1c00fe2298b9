//! `usercap`: the command-line tool for the usercap device.
//!
//! The same commands, demo, attack suite and bench run against the real
//! driver on Windows (`--transport windows`, the default there) and against
//! the simulated device (`--transport sim`: on Linux, the default, over
//! `HostSpace`; on Windows over `SehSpace`, before any driver is
//! installed). See `usercap --help`.

pub mod attack;
pub mod bench;
pub mod cli;
pub mod demo;
pub mod ops;
pub mod output;
#[cfg(any(unix, all(windows, target_arch = "x86_64")))]
pub mod sim;
pub mod transport;
#[cfg(windows)]
pub mod windows;

pub use cli::{Cli, Command, TransportKind, run};
