//! `usercap attack --fault-injection`: under Low Resources Simulation a
//! valid request may fail with STATUS_INSUFFICIENT_RESOURCES, and the suite
//! accepts that there, and only there.

use clap::Parser;
use usercap::NtStatus;
use usercap_client::attack::{Options, accepts, run_suite};
use usercap_client::transport::{Call, Error, Outcome, Transport};
use usercap_client::{Cli, Command};

/// A device whose every allocation fails: each request completes with
/// STATUS_INSUFFICIENT_RESOURCES and writes nothing.
struct OutOfPool;

impl Transport for OutOfPool {
    fn name(&self) -> &'static str {
        "out-of-pool"
    }

    fn call(&self, _: &Call) -> Result<Outcome, Error> {
        Ok(Outcome {
            status: NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            information: 0,
        })
    }
}

fn passes(scenario: &str, fault_injection: bool) -> bool {
    let results = run_suite(
        &OutOfPool,
        &Options {
            filter: Some(scenario.into()),
            fault_injection,
            ..Options::default()
        },
    );
    assert_eq!(results.len(), 1, "{scenario} names one scenario");
    results[0].passed
}

#[test]
fn the_acceptance_rule() {
    let ok = [NtStatus::STATUS_SUCCESS];
    let av = [NtStatus::STATUS_ACCESS_VIOLATION];
    let no_pool = NtStatus::STATUS_INSUFFICIENT_RESOURCES;
    assert!(accepts(&ok, NtStatus::STATUS_SUCCESS, false));
    assert!(!accepts(&ok, no_pool, false), "not without the option");
    assert!(
        accepts(&ok, no_pool, true),
        "a valid request, under the option"
    );
    assert!(
        !accepts(&av, no_pool, true),
        "an invalid request keeps its status"
    );
    assert!(
        !accepts(&ok, NtStatus::STATUS_ACCESS_VIOLATION, true),
        "only INSUFFICIENT_RESOURCES is relaxed"
    );
}

#[test]
fn a_valid_request_may_run_out_of_pool_only_under_fault_injection() {
    // Both scenarios send a valid request and expect STATUS_SUCCESS.
    for scenario in [
        "echo-zero-length-bogus-pointer",
        "sum-zero-count-bogus-pointer",
    ] {
        assert!(!passes(scenario, false), "{scenario} without the option");
        assert!(passes(scenario, true), "{scenario} under fault injection");
    }
}

#[test]
fn an_invalid_request_keeps_its_status_under_fault_injection() {
    for scenario in ["echo-null-input", "sum-short-input", "unknown-code"] {
        assert!(!passes(scenario, false), "{scenario}");
        assert!(!passes(scenario, true), "{scenario} under fault injection");
    }
}

#[test]
fn the_option_parses() {
    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("usercap").chain(args.iter().copied()))
            .expect("valid arguments")
    };
    assert!(matches!(
        parse(&["attack", "--fault-injection"]).command,
        Command::Attack {
            fault_injection: true,
            ..
        }
    ));
    assert!(matches!(
        parse(&["attack"]).command,
        Command::Attack {
            fault_injection: false,
            ..
        }
    ));
}

/// The simulated device behind a pool that fails every third request: the
/// request completes with STATUS_INSUFFICIENT_RESOURCES before the device
/// sees it, as KMDF completes an IRP whose WDFREQUEST it could not create.
#[cfg(any(unix, all(windows, target_arch = "x86_64")))]
struct EveryThirdOutOfPool {
    device: usercap_client::sim::SimTransport,
    calls: std::sync::atomic::AtomicU64,
}

#[cfg(any(unix, all(windows, target_arch = "x86_64")))]
impl Transport for EveryThirdOutOfPool {
    fn name(&self) -> &'static str {
        "sim, every third request out of pool"
    }

    fn call(&self, call: &Call) -> Result<Outcome, Error> {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 3 == 2 {
            OutOfPool.call(call)
        } else {
            self.device.call(call)
        }
    }
}

#[cfg(any(unix, all(windows, target_arch = "x86_64")))]
#[test]
fn race_rows_count_injected_failures_apart_only_under_fault_injection() {
    let device = EveryThirdOutOfPool {
        device: usercap_client::sim::SimTransport::new(),
        calls: std::sync::atomic::AtomicU64::new(0),
    };
    let race = |fault_injection| {
        run_suite(
            &device,
            &Options {
                filter: Some("race-".into()),
                iterations: 200,
                fault_injection,
                ..Options::default()
            },
        )
    };
    let strict = race(false);
    assert_eq!(strict.len(), 5, "five race rows");
    for row in &strict {
        assert!(!row.passed, "{}: {}", row.name, row.detail);
        assert!(
            row.detail.contains("STATUS_INSUFFICIENT_RESOURCES"),
            "{}: {}",
            row.name,
            row.detail
        );
    }
    // The rows that judge an outcome with a follow-up call (GET_NAME,
    // STATS) retry it, and every row still needs its raced calls and both
    // outcomes: the injected failures are counted, never judged.
    for row in race(true) {
        assert!(row.passed, "{}: {}", row.name, row.detail);
        let injected = row
            .detail
            .rsplit_once(", ")
            .and_then(|(_, tail)| tail.strip_suffix(" out of resources"))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(
            injected.is_some_and(|n| n > 0),
            "{}: {}",
            row.name,
            row.detail
        );
    }
}
