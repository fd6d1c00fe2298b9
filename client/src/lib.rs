//! `usercap`: the command-line tool for the usercap device.
//!
//! The same commands, demo, attack suite and bench run against the real
//! driver on Windows (`--transport windows`) and against the simulated
//! device on any Linux machine (`--transport sim`, the default there). See
//! `usercap --help`.

pub mod attack;
pub mod bench;
pub mod cli;
pub mod demo;
pub mod ops;
pub mod output;
#[cfg(unix)]
pub mod sim;
pub mod transport;
#[cfg(windows)]
pub mod windows;

pub use cli::{Cli, Command, TransportKind, run};
