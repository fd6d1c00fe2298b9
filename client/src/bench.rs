//! `usercap bench`: round trips per second for each IOCTL.
//!
//! Each request is laid out once in user pages; only the round trip
//! (`DeviceIoControl` on Windows, the I/O manager model and device on the
//! simulated transport) is timed. Calls are timed in chunks, and the report
//! gives the median chunk's nanoseconds per call, from a warm run.

use std::io::Write;
use std::time::{Duration, Instant};

use usercap::NtStatus;
use usercap::zerocopy::IntoBytes;
use usercap_protocol::{
    BatchRequest, Config, GET_NAME_MAX_OUTPUT, IOCTL_BATCH, IOCTL_CONFIGURE, IOCTL_ECHO,
    IOCTL_GET_NAME, IOCTL_MESSAGE, IOCTL_SET_NAME, IOCTL_STATS, IOCTL_SUM, Segment, SetNameRequest,
    SumRequest, WireUnicodeString,
};

use crate::transport::{Call, Error, Pages, Transport};

/// One measured IOCTL.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// What was measured.
    pub name: String,
    /// Median nanoseconds per round trip.
    pub ns_per_call: f64,
    /// Round trips measured.
    pub calls: u64,
}

impl Measurement {
    /// Round trips per second at the median.
    #[must_use]
    pub fn per_second(&self) -> f64 {
        if self.ns_per_call > 0.0 {
            1e9 / self.ns_per_call
        } else {
            0.0
        }
    }
}

/// The requests to time, laid out in `pages`.
fn workloads(pages: &Pages) -> Result<Vec<(String, Call)>, Error> {
    let base = pages.addr();
    let out = base + (1 << 20);
    let out_len = 1 << 16;
    let at = |offset: usize| base + offset;
    pages.write(0, &[0x61; 4096])?;
    let values: Vec<u32> = (0..1024).collect();
    pages.write(0x2000, values.as_bytes())?;
    pages.write(
        0x3000,
        SumRequest {
            count: 1024,
            values: at(0x2000) as u64,
        }
        .as_bytes(),
    )?;
    let mut message = 1u32.to_le_bytes().to_vec();
    message.extend_from_slice(&64u32.to_le_bytes());
    message.extend((0..64u32).flat_map(u32::to_le_bytes));
    pages.write(0x4000, &message)?;
    let name: Vec<u8> = "bench-name-16chr"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    pages.write(0x5000, &name)?;
    let wire = WireUnicodeString {
        length: 32,
        maximum_length: 32,
        reserved: 0,
        buffer: at(0x5000) as u64,
    };
    pages.write(0x5100, SetNameRequest { name: wire }.as_bytes())?;
    pages.write(
        0x6000,
        Config {
            flags: 1,
            level: 2,
            quota: 3,
        }
        .as_bytes(),
    )?;
    let segments: Vec<Segment> = (0..4)
        .map(|i| Segment {
            addr: at(i * 256) as u64,
            len: 256,
        })
        .collect();
    pages.write(0x7000, segments.as_bytes())?;
    pages.write(
        0x7100,
        BatchRequest {
            count: 4,
            reserved: 0,
            segments: at(0x7000) as u64,
        }
        .as_bytes(),
    )?;
    let call = |code, input, input_len, output_len: usize| Call {
        code,
        input,
        input_len,
        output: out,
        output_len: output_len.min(out_len),
    };
    Ok(vec![
        ("ECHO 64 B".to_owned(), call(IOCTL_ECHO, at(0), 64, 64)),
        ("ECHO 4 KiB".to_owned(), call(IOCTL_ECHO, at(0), 4096, 4096)),
        (
            "SUM 1024 values".to_owned(),
            call(IOCTL_SUM, at(0x3000), 16, 16),
        ),
        (
            "MESSAGE 64 items".to_owned(),
            call(IOCTL_MESSAGE, at(0x4000), message.len(), 16),
        ),
        (
            "SET_NAME 16 chars".to_owned(),
            call(IOCTL_SET_NAME, at(0x5100), 16, 0),
        ),
        (
            "GET_NAME".to_owned(),
            call(IOCTL_GET_NAME, 0, 0, GET_NAME_MAX_OUTPUT),
        ),
        (
            "CONFIGURE v2".to_owned(),
            call(IOCTL_CONFIGURE, at(0x6000), 16, 16),
        ),
        (
            "BATCH 4 x 256 B".to_owned(),
            call(IOCTL_BATCH, at(0x7100), 16, 24),
        ),
        ("STATS".to_owned(), call(IOCTL_STATS, 0, 0, 80)),
    ])
}

/// Why a bench run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchError {
    /// A timed call completed with an error status (exit code 1).
    Status(String, NtStatus),
    /// The transport or the user memory failed (exit code 3).
    Setup(String),
}

impl core::fmt::Display for BenchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Status(name, status) => write!(f, "{name}: the device returned {status}"),
            Self::Setup(why) => f.write_str(why),
        }
    }
}

impl BenchError {
    /// The exit code `usercap bench` ends with (see `usercap --help`).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Status(..) => 1,
            Self::Setup(_) => 3,
        }
    }
}

/// Times one call for about `budget`, after a warm-up.
///
/// # Errors
/// A transport error, or a call that does not succeed.
pub fn measure(
    transport: &dyn Transport,
    name: &str,
    call: &Call,
    budget: Duration,
) -> Result<Measurement, BenchError> {
    const CHUNK: u32 = 64;
    let once = || -> Result<(), BenchError> {
        let outcome = transport
            .call(call)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        if outcome.status.is_success() {
            Ok(())
        } else {
            Err(BenchError::Status(name.to_owned(), outcome.status))
        }
    };
    for _ in 0..CHUNK {
        once()?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..CHUNK {
            once()?;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(CHUNK));
    }
    samples.sort_by(f64::total_cmp);
    Ok(Measurement {
        name: name.to_owned(),
        ns_per_call: samples[samples.len() / 2],
        calls: samples.len() as u64 * u64::from(CHUNK),
    })
}

/// Measures every workload.
///
/// # Errors
/// If memory cannot be set up or a call fails.
pub fn measure_all(
    transport: &dyn Transport,
    budget: Duration,
) -> Result<Vec<Measurement>, BenchError> {
    let pages = Pages::new(2 << 20).map_err(|e| BenchError::Setup(e.to_string()))?;
    workloads(&pages)
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .iter()
        .map(|(name, call)| measure(transport, name, call, budget))
        .collect()
}

/// `usercap bench`: the table (or JSON) on `out`, an error on `err`.
pub fn run(
    transport: &dyn Transport,
    budget: Duration,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    match measure_all(transport, budget) {
        Ok(rows) => {
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|m| serde_json::json!({ "ioctl": m.name, "ns_per_call": m.ns_per_call, "per_second": m.per_second(), "calls": m.calls }))
                    .collect();
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "transport": transport.name(), "results": rows })
                );
            } else {
                let _ = writeln!(
                    out,
                    "usercap bench on the {} device (median of chunks, warm)",
                    transport.name()
                );
                let _ = writeln!(out, "{:<20} {:>12} {:>14}", "IOCTL", "ns/call", "calls/s");
                for m in &rows {
                    let _ = writeln!(
                        out,
                        "{:<20} {:>12.1} {:>14.0}",
                        m.name,
                        m.ns_per_call,
                        m.per_second()
                    );
                }
            }
            0
        }
        Err(e) => {
            if json {
                let _ = writeln!(
                    err,
                    "{}",
                    serde_json::json!({ "ok": false, "error": e.to_string() })
                );
            } else {
                let _ = writeln!(err, "error: {e}");
            }
            e.exit_code()
        }
    }
}
