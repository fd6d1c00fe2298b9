//! The command line: arguments, transport choice, and exit codes.
//!
//! Output conventions: results go to standard output, errors to standard
//! error, both in JSON with `--json` (one object per line). The exit codes
//! are [`EXIT_CODES`], printed at the end of `usercap --help`:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: the request succeeded, every attack scenario passed, the demo's usercap handler held |
//! | 1 | the device answered with an error status (an IOCTL command, the demo's tour, a bench call); an attack scenario failed or was inconclusive; the demo's usercap handler read past its bound, or its race was not shown |
//! | 2 | usage error: the arguments do not parse (from clap) |
//! | 3 | no answer: the device could not be reached or opened, the simulated I/O manager caught a Verifier violation, the reply did not decode, or the request could not be built (an unreadable file, user memory that could not be allocated) |

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use usercap_protocol::Config;

use crate::ops::{Client, OpError};
use crate::output::{self, Report};
use crate::transport::{Error, Transport};

/// Which device to talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// The simulated device in this process (Linux, and Windows x64).
    Sim,
    /// usercap.sys through `\\.\UserCap` (Windows).
    Windows,
}

impl TransportKind {
    /// `windows` on Windows, `sim` elsewhere.
    #[must_use]
    pub const fn platform_default() -> Self {
        if cfg!(windows) {
            Self::Windows
        } else {
            Self::Sim
        }
    }
}

/// The exit codes, as `usercap --help` ends with them (and the README and
/// the module docs list them).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success: the request succeeded, every attack scenario passed, the demo's
     usercap handler held
  1  the device answered with an error status (an IOCTL command, the demo's
     tour, a bench call); an attack scenario failed or was inconclusive; the
     demo's usercap handler read past its bound, or its race was not shown
  2  usage error: the arguments do not parse
  3  no answer: the device could not be reached or opened, the simulated I/O
     manager caught a Verifier violation, the reply did not decode, or the
     request could not be built (an unreadable file, user memory)

Results go to standard output, errors to standard error (JSON with --json).";

/// The usercap tool: drive the usercap device, tour it, attack it, time it.
#[derive(Debug, Parser)]
#[command(name = "usercap", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// The device to talk to.
    #[arg(long, value_enum, global = true, default_value_t = TransportKind::platform_default())]
    pub transport: TransportKind,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// ECHO: send text and get it back.
    Echo {
        /// The text.
        text: String,
    },
    /// SUM: add unsigned 32-bit values.
    Sum {
        /// The values.
        values: Vec<u32>,
    },
    /// MESSAGE: send a header and inline items.
    Message {
        /// The message kind.
        #[arg(long, default_value_t = 0)]
        kind: u32,
        /// The items.
        items: Vec<u32>,
    },
    /// SET_NAME / GET_NAME.
    Name {
        /// set or get.
        #[command(subcommand)]
        action: NameAction,
    },
    /// CONFIGURE with a version-1, -2 or -3 struct.
    Config {
        /// Struct version to send: 1 (8 bytes), 2 (16, current), 3 (24, future).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
        version: u8,
        /// Flags (1 verbose, 2 strict).
        #[arg(long, default_value_t = 0)]
        flags: u32,
        /// Level, 0 to 7.
        #[arg(long, default_value_t = 0)]
        level: u32,
        /// Quota (version 2 and later).
        #[arg(long, default_value_t = 0)]
        quota: u64,
        /// The version-3 field this driver does not know; non-zero is refused.
        #[arg(long, default_value_t = 0)]
        extra: u64,
    },
    /// BATCH: checksum files as segments.
    Batch {
        /// Files, one segment each.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// STATS: the device's counters.
    Stats,
    /// The guided tour: every IOCTL, then the double-fetch race side by side.
    Demo {
        /// Raced rounds per handler: SUM calls that overlapped a write of
        /// the count.
        #[arg(long, default_value_t = 20_000)]
        rounds: u32,
    },
    /// The hostile-input and race suite.
    Attack {
        /// Rounds of each race scenario.
        #[arg(long, default_value_t = 2_000)]
        iterations: u32,
        /// Threads for the concurrency scenario (and racing threads per soak pass).
        #[arg(long, default_value_t = 4)]
        threads: u32,
        /// Keep repeating the suite for this many seconds (a soak under Verifier).
        #[arg(long)]
        duration: Option<u64>,
        /// Run only scenarios whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// List the scenarios and exit (needs no device).
        #[arg(long)]
        list: bool,
        /// The device runs under fault injection (Driver Verifier's low
        /// resources simulation): valid requests may also fail with
        /// STATUS_INSUFFICIENT_RESOURCES, and race rows count such calls
        /// apart.
        #[arg(long)]
        fault_injection: bool,
    },
    /// Round trips per second for each IOCTL.
    Bench {
        /// Milliseconds to measure each IOCTL.
        #[arg(long, default_value_t = 300)]
        millis: u64,
    },
}

/// `name` actions.
#[derive(Debug, Subcommand)]
pub enum NameAction {
    /// Set the name.
    Set {
        /// The name, at most 128 UTF-16 units.
        name: String,
    },
    /// Print the name.
    Get,
}

/// Opens the chosen transport.
///
/// # Errors
/// If the transport cannot be opened here.
pub fn open(kind: TransportKind) -> Result<Box<dyn Transport>, Error> {
    match kind {
        #[cfg(any(unix, all(windows, target_arch = "x86_64")))]
        TransportKind::Sim => Ok(Box::new(crate::sim::SimTransport::new())),
        #[cfg(not(any(unix, all(windows, target_arch = "x86_64"))))]
        TransportKind::Sim => Err(Error::Unavailable(
            "the simulated device runs on Linux (it models faults with the host's signals); \
             use --transport windows",
        )),
        #[cfg(windows)]
        TransportKind::Windows => Ok(Box::new(crate::windows::WindowsDevice::open()?)),
        #[cfg(not(windows))]
        TransportKind::Windows => Err(Error::Unavailable(
            "the windows transport needs Windows and usercap.sys; use --transport sim, \
             and see docs/windows.md",
        )),
    }
}

/// Writes a report in the chosen form: a result to standard output, an
/// error (see [`output::error`]) to standard error.
fn print(out: &mut dyn Write, report: &Report, json: bool) {
    let text = if json {
        report.json.to_string()
    } else {
        report.human.clone()
    };
    let _ = writeln!(out, "{text}");
}

fn exit_code(error: &OpError) -> u8 {
    match error {
        OpError::Status(_) => 1,
        _ => 3,
    }
}

/// Runs a parsed command line, printing results to `out` and errors to
/// `err`; returns the exit code (see [`EXIT_CODES`]).
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    // Listing the scenarios needs no device.
    if let Command::Attack { list: true, .. } = cli.command {
        return crate::attack::list(out);
    }
    let transport = match open(cli.transport) {
        Ok(t) => t,
        Err(e) => {
            print(err, &output::error(&OpError::Transport(e)), cli.json);
            return 3;
        }
    };
    match &cli.command {
        Command::Demo { rounds } => {
            return crate::demo::run(transport.as_ref(), *rounds, out, err);
        }
        Command::Attack {
            iterations,
            threads,
            duration,
            filter,
            list: _,
            fault_injection,
        } => {
            let options = crate::attack::Options {
                iterations: *iterations,
                threads: (*threads).max(1),
                duration: duration.map(Duration::from_secs),
                filter: filter.clone(),
                json: cli.json,
                fault_injection: *fault_injection,
                ..crate::attack::Options::default()
            };
            return crate::attack::run(transport.as_ref(), &options, out);
        }
        Command::Bench { millis } => {
            return crate::bench::run(
                transport.as_ref(),
                Duration::from_millis(*millis),
                cli.json,
                out,
                err,
            );
        }
        _ => {}
    }
    let result = Client::new(transport.as_ref()).and_then(|client| command(&client, &cli.command));
    match result {
        Ok(report) => {
            print(out, &report, cli.json);
            0
        }
        Err(e) => {
            print(err, &output::error(&e), cli.json);
            exit_code(&e)
        }
    }
}

fn command(client: &Client<'_>, command: &Command) -> Result<Report, OpError> {
    Ok(match command {
        Command::Echo { text } => output::echo(&client.echo(text.as_bytes())?),
        Command::Sum { values } => output::sum(&client.sum(values)?),
        Command::Message { kind, items } => output::message(&client.message(*kind, items)?),
        Command::Name {
            action: NameAction::Set { name },
        } => {
            client.set_name(name)?;
            output::name_set(name)
        }
        Command::Name {
            action: NameAction::Get,
        } => output::name(&client.get_name()?),
        Command::Config {
            version,
            flags,
            level,
            quota,
            extra,
        } => {
            let applied = client.configure(
                *version,
                Config {
                    flags: *flags,
                    level: *level,
                    quota: *quota,
                },
                *extra,
            )?;
            output::config(*version, &applied)
        }
        Command::Batch { files } => {
            let mut segments = Vec::with_capacity(files.len());
            for file in files {
                let bytes = std::fs::read(file).map_err(|e| {
                    OpError::Argument(format!("cannot read {}: {e}", file.display()))
                })?;
                segments.push(bytes);
            }
            output::batch(&client.batch(&segments)?)
        }
        Command::Stats => output::stats(&client.stats()?),
        Command::Demo { .. } | Command::Attack { .. } | Command::Bench { .. } => {
            return Err(OpError::Argument("handled above".into()));
        }
    })
}
