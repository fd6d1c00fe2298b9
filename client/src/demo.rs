//! `usercap demo`: the guided tour, the first thing a newcomer runs.
//!
//! Part 1 sends every IOCTL once and says what hazard it shows. Part 2 sends
//! a few hostile requests. Part 3 is the point of the project: the same
//! racing thread against a SUM handler written the classic way (validate the
//! count, fetch it again to use it) and against usercap's `Captured` SUM.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use usercap::NtStatus;
use usercap::zerocopy::{FromBytes, IntoBytes};
use usercap_protocol::{Config, IOCTL_SUM, MAX_SUM_VALUES, SumReply, SumRequest, checksum};

use crate::ops::{Client, OpError};
use crate::transport::{Call, Pages, Transport};

/// When a side of the race has been run long enough to mean something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaceGoal {
    /// Rounds during which the flipping thread wrote: a round that no flip
    /// overlapped tested nothing, however many of them ran.
    pub raced: u32,
    /// Keep going until one round read past its validated bound (the naive
    /// handler: its window is a few nanoseconds wide).
    pub until_past_bound: bool,
    /// Stop here whatever was shown; the tally then says the goal was missed.
    pub deadline: Duration,
}

/// How long the demo races each handler at most. A quiet machine needs well
/// under a second; a loaded one, or Wine, can need many.
pub const RACE_DEADLINE: Duration = Duration::from_secs(30);

/// What one side of the race saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaceTally {
    /// Rounds completed.
    pub rounds: u32,
    /// Rounds during which the flipping thread wrote the count.
    pub raced: u32,
    /// Rounds accepted with the count the handler validated (4).
    pub consistent: u32,
    /// Rounds refused cleanly (the count was over the limit when captured).
    pub refused: u32,
    /// Rounds where the handler acted on a count other than the one it
    /// validated: it read past its validated bound.
    pub past_bound: u32,
    /// Whether the [`RaceGoal`] was met before its deadline: enough raced
    /// rounds, both the accepted and the refused outcome seen (a handler
    /// that only ever saw one count was not raced), and a read past the
    /// bound if the goal asked for one.
    pub shown: bool,
}

impl RaceTally {
    fn met(&self, goal: &RaceGoal) -> bool {
        self.raced >= goal.raced
            && self.consistent > 0
            && self.refused > 0
            && (!goal.until_past_bound || self.past_bound > 0)
    }
}

/// Races a thread flipping the SUM count between 4 and one over the limit
/// against SUM requests, until `goal` is met or its deadline passes.
///
/// A round counts as *raced* when the flipping thread's write counter moved
/// while the call ran (it counts before and after each write, as the attack
/// suite's race rows do). Without that count a fast transport can finish
/// every round before the other thread is even scheduled, and "0 rounds
/// read past the bound" would prove nothing.
///
/// # Errors
/// If memory cannot be set up or the transport fails.
pub fn race_sum(transport: &dyn Transport, goal: &RaceGoal) -> Result<RaceTally, String> {
    // Header, then room for every value a bad count could reach, all mapped,
    // so that a handler reading too far returns rather than faults.
    let values_len = (usize::try_from(MAX_SUM_VALUES).unwrap_or(0) + 2) * 4;
    let pages = Pages::new(0x1000 + values_len + 0x1000).map_err(|e| e.to_string())?;
    let header = pages.addr();
    let values = header + 0x1000;
    pages
        .write(0x1000, [1u32, 2, 3, 4].as_bytes())
        .map_err(|e| e.to_string())?;
    pages
        .write(
            0,
            SumRequest {
                count: 4,
                values: values as u64,
            }
            .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let out = Pages::new(16).map_err(|e| e.to_string())?;
    let call = Call {
        code: IOCTL_SUM,
        input: header,
        input_len: 16,
        output: out.addr(),
        output_len: 16,
    };
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let mut tally = RaceTally::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for count in [MAX_SUM_VALUES + 1, 4] {
                    writes.fetch_add(1, Ordering::SeqCst);
                    let _ = pages.write(0, &count.to_le_bytes());
                    writes.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let result = (|| -> Result<(), String> {
            while !tally.met(goal) && started.elapsed() < goal.deadline {
                let before = writes.load(Ordering::SeqCst);
                let outcome = transport.call(&call).map_err(|e| e.to_string())?;
                let after = writes.load(Ordering::SeqCst);
                tally.rounds = tally.rounds.saturating_add(1);
                if after != before {
                    tally.raced = tally.raced.saturating_add(1);
                }
                let seen = match outcome.status {
                    NtStatus::STATUS_SUCCESS => {
                        let bytes = out.read(0, 16).map_err(|e| e.to_string())?;
                        let reply = SumReply::read_from_bytes(&bytes).map_err(|_| "short reply")?;
                        if reply.count == 4 && reply.sum == 10 {
                            &mut tally.consistent
                        } else {
                            &mut tally.past_bound
                        }
                    }
                    NtStatus::STATUS_INVALID_BUFFER_SIZE | NtStatus::STATUS_INVALID_PARAMETER => {
                        &mut tally.refused
                    }
                    _ => &mut tally.past_bound,
                };
                *seen = seen.saturating_add(1);
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    tally.shown = tally.met(goal);
    Ok(tally)
}

fn line(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "{text}");
}

fn shown<T>(result: Result<T, OpError>) -> String {
    match result {
        Ok(_) => "accepted (unexpected)".to_owned(),
        Err(OpError::Status(s)) => s.to_string(),
        Err(e) => e.to_string(),
    }
}

fn tour(client: &Client<'_>, out: &mut dyn Write) -> Result<(), OpError> {
    line(out, "1. Every IOCTL once");
    let echoed = client.echo(b"hello, kernel")?;
    line(
        out,
        &format!(
            "   ECHO       BUFFERED  {:?} came back, {} bytes: the input is captured out of the\n              SystemBuffer before the reply is written over it, and Information is exactly\n              what was written, so no stale pool follows it.",
            String::from_utf8_lossy(&echoed),
            echoed.len()
        ),
    );
    let sum = client.sum(&(1..=10).collect::<Vec<u32>>())?;
    line(
        out,
        &format!(
            "   SUM        NEITHER   1 + ... + 10 = {}: the header (count + pointer) is captured once, the\n              count is checked on the kernel copy, then the {} values are captured once.",
            sum.sum, sum.count
        ),
    );
    let message = client.message(7, &[10, 20, 30])?;
    line(
        out,
        &format!(
            "   MESSAGE    BUFFERED  kind {}, {} items, sum {}: the count is checked against the bytes\n              actually captured, never against what the header claims.",
            message.kind, message.count, message.sum
        ),
    );
    client.set_name("usercap demo")?;
    let name = client.get_name()?;
    line(
        out,
        &format!(
            "   SET_NAME   NEITHER   a UNICODE_STRING with an embedded Buffer: its lengths are checked on\n   GET_NAME   BUFFERED  the captured struct, then Length bytes are captured: {name:?}."
        ),
    );
    let v1 = client.configure(
        1,
        Config {
            flags: 1,
            level: 3,
            quota: 0,
        },
        0,
    )?;
    let v3 = client.configure(
        3,
        Config {
            flags: 1,
            level: 4,
            quota: 9,
        },
        0,
    )?;
    line(
        out,
        &format!(
            "   CONFIGURE  BUFFERED  versioned structs: v1 (8 bytes) is zero-extended (quota {}), v3 with\n              a zero tail is accepted (level {}), v3 with a non-zero tail: {}.",
            v1.quota,
            v3.level,
            shown(client.configure(3, Config::default(), 1))
        ),
    );
    let segments = [b"two levels".to_vec(), b" of pointers".to_vec()];
    let batch = client.batch(&segments)?;
    let expected = checksum(segments.iter().map(Vec::as_slice));
    line(
        out,
        &format!(
            "   BATCH      NEITHER   {} segments, {} bytes, checksum {:#x} ({}): the table and each segment\n              are captured once, under one byte budget checked before any data.",
            batch.segments,
            batch.total_bytes,
            batch.checksum,
            if batch.checksum == expected {
                "matches"
            } else {
                "MISMATCH"
            }
        ),
    );
    let stats = client.stats()?;
    line(
        out,
        &format!(
            "   STATS      BUFFERED  {} requests succeeded so far; the reply type has no padding, so no\n              uninitialised kernel byte can be in it.",
            stats.echo
                + stats.sum
                + stats.message
                + stats.set_name
                + stats.get_name
                + stats.configure
                + stats.batch
                + stats.stats
        ),
    );
    Ok(())
}

fn hostile(client: &Client<'_>, out: &mut dyn Write) {
    line(out, "\n2. Hostile input gets a clean error, never a crash");
    let kernel = crate::attack::KERNEL;
    let cases: [(&str, Call); 4] = [
        (
            "null input pointer",
            Call {
                code: IOCTL_SUM,
                input: 0,
                input_len: 16,
                output: 0,
                output_len: 0,
            },
        ),
        (
            "kernel input pointer",
            Call {
                code: IOCTL_SUM,
                input: kernel,
                input_len: 16,
                output: 0,
                output_len: 0,
            },
        ),
        (
            "unknown IOCTL code",
            Call {
                code: 0x1234_5678,
                ..Call::default()
            },
        ),
        (
            "zero length, bogus pointer (ECHO)",
            Call {
                code: usercap_protocol::IOCTL_ECHO,
                input: 0xDEAD_0000,
                ..Call::default()
            },
        ),
    ];
    for (what, call) in cases {
        let result = client
            .raw(&call)
            .map_or_else(|e| e.to_string(), |o| o.status.to_string());
        line(out, &format!("   {what:<36} -> {result}"));
    }
    line(
        out,
        &format!(
            "   {:<36} -> {}",
            "SUM count whose byte size overflows",
            shown(overflowing_sum(client))
        ),
    );
}

fn overflowing_sum(client: &Client<'_>) -> Result<(), OpError> {
    let pages = Pages::new(64)?;
    pages.write(
        0,
        SumRequest {
            count: 1 << 62,
            values: pages.addr() as u64,
        }
        .as_bytes(),
    )?;
    let outcome = client.raw(&Call {
        code: IOCTL_SUM,
        input: pages.addr(),
        input_len: 16,
        output: pages.addr() + 32,
        output_len: 16,
    })?;
    if outcome.status.is_success() {
        Ok(())
    } else {
        Err(OpError::Status(outcome.status))
    }
}

/// Runs the tour on `out`, errors on `err`; returns the exit code.
pub fn run(transport: &dyn Transport, rounds: u32, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    run_with_deadline(transport, rounds, RACE_DEADLINE, out, err)
}

/// [`run`], with the race's deadline chosen by the caller (the tests show
/// what a race that was not shown prints).
pub fn run_with_deadline(
    transport: &dyn Transport,
    rounds: u32,
    deadline: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    line(
        out,
        &format!("usercap demo on the {} device\n", transport.name()),
    );
    let client = match Client::new(transport) {
        Ok(c) => c,
        Err(e) => {
            line(err, &format!("error: {e}"));
            return 3;
        }
    };
    if let Err(e) = tour(&client, out) {
        line(err, &format!("error: {e}"));
        return if matches!(e, OpError::Status(_)) {
            1
        } else {
            3
        };
    }
    hostile(&client, out);
    double_fetch(transport, rounds, deadline, out, err)
}

/// Part 3: the naive and the usercap SUM raced the same way; the exit code.
fn double_fetch(
    transport: &dyn Transport,
    rounds: u32,
    deadline: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let rounds = rounds.max(1);
    line(
        out,
        &format!(
            "\n3. The double fetch, side by side\n   A second thread flips the SUM count between 4 and {}. Each handler gets SUM\n   requests until {rounds} of them overlapped a write of the count (raced rounds) and\n   it has both accepted and refused a count.",
            MAX_SUM_VALUES + 1
        ),
    );
    let naive = naive_race(&RaceGoal {
        raced: rounds,
        until_past_bound: true,
        deadline,
    });
    match &naive {
        Some(Ok(t)) => {
            line(
                out,
                &side(
                    "naive handler (probe, read count, validate, read count again):",
                    t,
                ),
            );
            if t.past_bound == 0 {
                line(
                    out,
                    &format!(
                        "   (its window, between two reads of the count, was not hit within {}s this time)",
                        deadline.as_secs()
                    ),
                );
            }
        }
        Some(Err(e)) => line(out, &format!("   naive handler: error: {e}")),
        None => {}
    }
    let captured = match race_sum(
        transport,
        &RaceGoal {
            raced: rounds,
            until_past_bound: false,
            deadline,
        },
    ) {
        Ok(t) => t,
        Err(e) => {
            line(err, &format!("error: {e}"));
            return 3;
        }
    };
    line(
        out,
        &side(
            "usercap Captured handler (capture once, validate the copy):   ",
            &captured,
        ),
    );
    line(
        out,
        &format!(
            "   ({} rounds accepted with count 4, {} refused because the count captured was over the limit)",
            captured.consistent, captured.refused
        ),
    );
    if naive.is_none() {
        line(
            out,
            "   (the naive handler exists only in the simulated device, which runs on Linux and Windows x64)",
        );
    }
    let code = if captured.past_bound != 0 {
        1
    } else if !captured.shown {
        line(
            err,
            &format!(
                "error: the race was not shown within {}s: {} of {} rounds raced, {} accepted, {} refused; the result above proves nothing",
                deadline.as_secs(),
                captured.raced,
                captured.rounds,
                captured.consistent,
                captured.refused
            ),
        );
        1
    } else {
        0
    };
    line(
        out,
        "\nNext: `usercap attack` runs the whole hostile-input and race suite.",
    );
    code
}

/// One handler's line of part 3.
fn side(label: &str, t: &RaceTally) -> String {
    format!(
        "   {label} {:>6} of {} rounds read past the validated bound ({} raced a flip)",
        t.past_bound, t.rounds, t.raced
    )
}

#[cfg(any(unix, all(windows, target_arch = "x86_64")))]
#[allow(
    clippy::unnecessary_wraps,
    reason = "None on platforms without the simulated device"
)]
fn naive_race(goal: &RaceGoal) -> Option<Result<RaceTally, String>> {
    let naive = crate::sim::SimTransport::with_driver(crate::sim::WithNaiveSum::default());
    Some(race_sum(&naive, goal))
}

#[cfg(not(any(unix, all(windows, target_arch = "x86_64"))))]
fn naive_race(_: &RaceGoal) -> Option<Result<RaceTally, String>> {
    None
}
