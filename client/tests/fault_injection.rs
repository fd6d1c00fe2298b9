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
