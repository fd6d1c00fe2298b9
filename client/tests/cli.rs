//! The command line, the output formats, and the attack suite's ability to
//! fail: against a device whose SUM double-fetches, it must report failures.
#![cfg(any(unix, all(windows, target_arch = "x86_64")))]

use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use usercap::NtStatus;
use usercap_client::attack::{Options, run_suite, scenarios};
use usercap_client::cli::NameAction;
use usercap_client::ops::OpError;
use usercap_client::sim::{SimTransport, WithNaiveSum};
use usercap_client::{Cli, Command, TransportKind, output, run};
use usercap_protocol::{Stats, SumReply};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("usercap").chain(args.iter().copied()))
}

/// What a missing device says: the transport is not built off Windows,
/// and on Windows (or under Wine) `\\.\UserCap` cannot be opened.
const NO_DEVICE: &str = if cfg!(windows) {
    "cannot open the usercap device"
} else {
    "needs Windows"
};

/// Runs a command line: its exit code, standard output and standard error.
/// Without `--transport` it runs on the simulated device, which is the
/// default off Windows and not on it.
fn run_streams(args: &[&str]) -> (u8, String, String) {
    let mut args = args.to_vec();
    if !args.contains(&"--transport") {
        args.splice(0..0, ["--transport", "sim"]);
    }
    let cli = parse(&args).expect("valid arguments");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&cli, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Runs a command line that must print nothing on standard error.
fn run_args(args: &[&str]) -> (u8, String) {
    let (code, out, err) = run_streams(args);
    assert_eq!(err, "", "{args:?} wrote to standard error");
    (code, out)
}

#[test]
fn arguments_parse_naturally() {
    let cli = parse(&["sum", "1", "2", "3"]).unwrap();
    assert!(matches!(cli.command, Command::Sum { ref values } if values == &[1, 2, 3]));
    assert_eq!(cli.transport, TransportKind::platform_default());
    assert_eq!(
        TransportKind::platform_default(),
        if cfg!(windows) {
            TransportKind::Windows
        } else {
            TransportKind::Sim
        }
    );
    assert!(!cli.json);
    let cli = parse(&["--json", "name", "set", "x"]).unwrap();
    assert!(cli.json);
    assert!(
        matches!(cli.command, Command::Name { action: NameAction::Set { ref name } } if name == "x")
    );
    let cli = parse(&["config", "--version", "1", "--level", "3"]).unwrap();
    assert!(matches!(
        cli.command,
        Command::Config {
            version: 1,
            level: 3,
            ..
        }
    ));
    let cli = parse(&[
        "attack",
        "--iterations",
        "5",
        "--threads",
        "2",
        "--duration",
        "1",
    ])
    .unwrap();
    assert!(matches!(
        cli.command,
        Command::Attack {
            iterations: 5,
            threads: 2,
            duration: Some(1),
            ..
        }
    ));
    let cli = parse(&["echo", "hi", "--transport", "windows"]).unwrap();
    assert_eq!(cli.transport, TransportKind::Windows);
}

#[test]
fn bad_arguments_are_usage_errors_not_panics() {
    for args in [
        &["sum", "x"][..],
        &["sum", "-1"],
        &["sum", "4294967296"],
        &["config", "--version", "4"],
        &["config", "--level", "many"],
        &["name"],
        &["frobnicate"],
        &[],
        &["batch"],
        &["--transport", "serial", "stats"],
    ] {
        let err = parse(args).expect_err(&format!("{args:?} should be refused"));
        assert!(
            err.exit_code() == 2
                || err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand,
            "{args:?}"
        );
    }
}

#[test]
fn human_and_json_output() {
    let report = output::sum(&SumReply { sum: 6, count: 3 });
    assert_eq!(report.human, "sum = 6 (3 values)");
    assert_eq!(report.json["sum"], 6);
    assert_eq!(report.json["ok"], true);
    let stats = output::stats(&Stats {
        echo: 2,
        name_bytes: 6,
        ..Stats::default()
    });
    assert!(
        stats
            .human
            .lines()
            .any(|l| l.split_whitespace().eq(["echo", "2"]))
    );
    assert_eq!(stats.json["name_bytes"], 6);
    let error = output::error(&OpError::Status(NtStatus::STATUS_BUFFER_TOO_SMALL));
    assert_eq!(
        error.human,
        "error: the device returned STATUS_BUFFER_TOO_SMALL (0xC0000023): the output buffer is too small for the reply"
    );
    assert_eq!(error.json["status"], "STATUS_BUFFER_TOO_SMALL");
    assert_eq!(error.json["code"], "0xC0000023");
    assert_eq!(error.json["ok"], false);
}

#[test]
fn every_status_has_a_name_and_a_description() {
    for &status in NtStatus::ALL {
        assert!(status.name().is_some());
        assert_ne!(
            usercap_client::ops::describe(status),
            "a status usercap does not document",
            "{status}"
        );
    }
}

#[test]
fn commands_run_on_the_simulated_device() {
    let (code, out) = run_args(&["echo", "hello"]);
    assert_eq!((code, out.lines().next()), (0, Some("hello")));
    let (code, out) = run_args(&["--json", "sum", "1", "2", "3"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (json["sum"].as_u64(), json["count"].as_u64()),
        (Some(6), Some(3))
    );
}

/// Every IOCTL command, once, succeeds on the simulated device, in text
/// and in JSON (on Linux over `HostSpace`, on Windows and under Wine over
/// `SehSpace`). Each command line is its own device, so GET_NAME finds no
/// name.
#[test]
fn every_ioctl_command_succeeds_on_the_simulated_device() {
    let segment = std::env::temp_dir().join(format!("usercap-cli-{}.txt", std::process::id()));
    std::fs::write(&segment, b"segment!").unwrap();
    let segment = segment.to_str().unwrap().to_owned();
    let commands: [(&[&str], &str); 8] = [
        (&["echo", "hello"], "hello"),
        (&["sum", "1", "2", "3"], "sum = 6 (3 values)"),
        (
            &["message", "--kind", "2", "7", "8"],
            "kind 2: 2 items, sum 15",
        ),
        (&["name", "set", "abc"], "abc"),
        (&["name", "get"], "no name set"),
        (&["config", "--version", "1", "--level", "3"], "level 3"),
        (&["batch", &segment], "8 bytes"),
        (&["stats"], "echo"),
    ];
    for (args, shows) in commands {
        let (code, out) = run_args(args);
        assert_eq!(code, 0, "{args:?}: {out}");
        assert!(out.contains(shows), "{args:?}: {out}");
        let json: Vec<&str> = std::iter::once("--json")
            .chain(args.iter().copied())
            .collect();
        let (code, out) = run_args(&json);
        assert_eq!(code, 0, "{json:?}: {out}");
        let value: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{json:?}: {e}: {out}"));
        assert_eq!(value["ok"], true, "{json:?}: {out}");
    }
    std::fs::remove_file(&segment).unwrap();
    let (code, out) = run_args(&["bench", "--millis", "1"]);
    assert_eq!(code, 0, "{out}");
    for ioctl in ["ECHO", "SUM", "BATCH"] {
        assert!(out.contains(ioctl), "bench: {out}");
    }
}

#[test]
fn errors_go_to_standard_error_in_text_and_json() {
    // A device error status: exit 1, nothing on standard output.
    let (code, out, err) = run_streams(&["config", "--version", "3", "--extra", "1"]);
    assert_eq!(
        (code, out.as_str()),
        (1, ""),
        "a device error status exits 1"
    );
    assert!(err.contains("STATUS_NOT_SUPPORTED (0xC00000BB)"), "{err}");
    let (code, out, err) = run_streams(&["--json", "config", "--level", "99"]);
    assert_eq!((code, out.as_str()), (1, ""));
    let json: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(json["status"], "STATUS_INVALID_PARAMETER");
    assert_eq!(json["ok"], false);
    // A request that cannot be built: exit 3.
    let (code, out, err) = run_streams(&["batch", "/nonexistent/file"]);
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(err.contains("cannot read /nonexistent/file"), "{err}");
    let (code, out, err) = run_streams(&["--json", "batch", "/nonexistent/file"]);
    assert_eq!((code, out.as_str()), (3, ""));
    let json: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("cannot read"),
        "{json}"
    );
    // No device: exit 3, in text and JSON.
    let (code, out, err) = run_streams(&["--transport", "windows", "stats"]);
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(err.contains(NO_DEVICE), "{err}");
    let (code, out, err) = run_streams(&["--json", "--transport", "windows", "stats"]);
    assert_eq!((code, out.as_str()), (3, ""));
    let json: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(json["ok"], false);
    for command in [&["demo"][..], &["bench", "--millis", "1"], &["attack"]] {
        let args: Vec<&str> = ["--transport", "windows"]
            .iter()
            .chain(command)
            .copied()
            .collect();
        let (code, out, err) = run_streams(&args);
        assert_eq!((code, out.as_str()), (3, ""), "{args:?}");
        assert!(err.contains(NO_DEVICE), "{args:?}: {err}");
    }
}

#[test]
fn attack_list_needs_no_device() {
    // The windows transport cannot be opened here, and --list does not try.
    let (code, out) = run_args(&["--transport", "windows", "attack", "--list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), scenarios().len());
    assert!(out.contains("race-sum-count"), "{out}");
}

#[test]
fn help_and_readme_document_the_exit_codes() {
    let help = Cli::command().render_help().to_string();
    for code in [
        "0  success",
        "1  the device answered",
        "2  usage error",
        "3  no answer",
    ] {
        assert!(help.contains(code), "--help lacks {code:?}:\n{help}");
    }
    assert!(help.contains(usercap_client::cli::EXIT_CODES), "{help}");
    // The README shows the same text, so the two cannot drift apart.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(usercap_client::cli::EXIT_CODES),
        "README.md must quote usercap_client::cli::EXIT_CODES verbatim"
    );
    // ...after the two commands a newcomer runs first.
    let first_block = readme.split("```").nth(1).unwrap();
    let commands: Vec<_> = first_block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -p usercap-client -- demo",
            "cargo test --workspace"
        ]
    );
}

#[test]
fn the_attack_suite_has_forty_named_scenarios_and_passes() {
    let all = scenarios();
    assert!(all.len() >= 40, "{} scenarios", all.len());
    let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "names are unique");
    let transport = SimTransport::new();
    let results = run_suite(
        &transport,
        &Options {
            iterations: 200,
            ..Options::default()
        },
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| (r.name, &r.detail))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn the_attack_suite_fails_against_a_double_fetching_sum() {
    // The naive handler's window between its two fetches is a few
    // nanoseconds, so keep racing (bounded) until it is caught.
    let transport = SimTransport::with_driver(WithNaiveSum::default());
    let options = Options {
        iterations: 5_000,
        filter: Some("race-sum-count".into()),
        ..Options::default()
    };
    let started = Instant::now();
    let caught = loop {
        let results = run_suite(&transport, &options);
        assert_eq!(results.len(), 1);
        if !results[0].passed {
            assert!(!results[0].inconclusive, "{}", results[0].detail);
            break Some(results[0].detail.clone());
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
    };
    let detail = caught.expect("the suite never caught the double fetch");
    // Reading past its bound either returns a reply that is no snapshot of
    // the request or runs into the lab's guard page.
    assert!(
        detail.contains("inconsistent reply") || detail.contains("STATUS_ACCESS_VIOLATION"),
        "{detail}"
    );
    assert!(transport.driver().naive.overreads() > 0);
    // Scenarios that do not touch SUM still pass on that device.
    let others = run_suite(
        &transport,
        &Options {
            filter: Some("echo-".into()),
            ..Options::default()
        },
    );
    assert!(others.iter().all(|r| r.passed));
}

/// The numbers in a line of the demo's part 3, in order.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The one line of the demo's output that contains `text`.
fn demo_line<'a>(out: &'a str, text: &str) -> &'a str {
    let mut found = out.lines().filter(|l| l.contains(text));
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no line with {text:?} in {out}"));
    assert!(found.next().is_none(), "two lines with {text:?} in {out}");
    line
}

#[test]
fn the_demo_shows_the_race_it_reports_on_both_handlers() {
    let (code, out) = run_args(&["demo", "--rounds", "2000"]);
    assert_eq!(code, 0, "{out}");
    // "usercap Captured handler (...): 0 of R rounds read past the
    // validated bound (N raced a flip)": nothing past the bound, and at
    // least the 2,000 raced rounds asked for.
    let captured = numbers(demo_line(&out, "usercap Captured handler"));
    let [past, rounds, raced] = captured[..] else {
        panic!("{captured:?}");
    };
    assert_eq!(past, 0, "{out}");
    assert!(raced >= 2000 && rounds >= raced, "{out}");
    // Both counts were captured: the flips reached the handler.
    let outcomes = numbers(demo_line(&out, "rounds accepted with count 4"));
    let [accepted, _, refused] = outcomes[..] else {
        panic!("{outcomes:?}");
    };
    assert!(accepted > 0 && refused > 0, "{out}");
    assert_eq!(accepted + refused, rounds, "{out}");
    // The naive handler, raced the same way, was caught reading past the
    // bound it validated.
    let naive = numbers(demo_line(&out, "naive handler"));
    let [past, rounds, raced] = naive[..] else {
        panic!("{naive:?}");
    };
    assert!(past > 0 && raced >= 2000 && rounds >= raced, "{out}");
}

#[test]
fn a_demo_race_that_was_not_shown_fails_instead_of_passing() {
    // With no time to race, no round overlaps a flip: "0 of 0 read past the
    // bound" must not read as the handler holding.
    let transport = SimTransport::new();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = usercap_client::demo::run_with_deadline(
        &transport,
        2000,
        Duration::ZERO,
        &mut out,
        &mut err,
    );
    let (out, err) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("the race was not shown"), "{err}");
    assert!(out.contains("was not hit"), "{out}");
}
