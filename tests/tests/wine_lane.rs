//! `.ci/wine/run-tests.sh`, the Windows-ABI lane's judge, fails on every
//! kind of bad run: a failed test, a failed cargo, a binary that reports
//! nothing, too few tests. Each case runs the real script with a stand-in
//! `cargo` on `PATH` that prints what a run of that kind prints.
//!
//! The lane once passed with failing tests: a `|| true` on its pipeline
//! made the status it read that of `true`, so only the pass-count floor
//! was left. These cases keep that from coming back.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One result line of libtest.
fn result(ok: bool, passed: u32, failed: u32) -> String {
    format!(
        "test result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        if ok { "ok" } else { "FAILED" }
    )
}

/// Runs the lane script with MIN_TESTS = 10 against a `cargo` that prints
/// `lines` and exits with `exit`; the script's exit code and its output.
fn lane(name: &str, lines: &[String], exit: i32) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("usercap-wine-lane-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("cargo");
    let echoes = lines
        .iter()
        .map(|l| format!("echo '{l}'"))
        .collect::<Vec<_>>()
        .join("\n");
    let script = format!("#!/bin/sh\n{echoes}\nexit {exit}\n");
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("bash")
        .arg(root.join(".ci/wine/run-tests.sh"))
        .current_dir(Path::new(&root))
        .env("PATH", path)
        .env("MIN_TESTS", "10")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn running(name: &str) -> String {
    format!("     Running tests/{name}.rs (target/debug/deps/{name}.exe)")
}

#[test]
fn a_good_run_passes() {
    let (code, text) = lane(
        "good",
        &[
            running("a"),
            result(true, 8, 0),
            running("b"),
            result(true, 4, 0),
        ],
        0,
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("2 test binaries, 2 results, 12 tests passed"),
        "{text}"
    );
}

#[test]
fn a_failed_test_fails_the_lane_whatever_cargo_says() {
    let lines = [
        running("a"),
        result(true, 20, 0),
        running("b"),
        result(false, 5, 3),
    ];
    // As cargo reports it (101), and with the status lost (0): the pass
    // count (25) is over the floor either way.
    for exit in [101, 0] {
        let (code, text) = lane(&format!("failed-{exit}"), &lines, exit);
        assert_eq!(code, 1, "cargo exit {exit}: {text}");
    }
}

#[test]
fn a_failed_cargo_fails_the_lane() {
    // A build error, or Wine unable to start a binary: cargo fails with no
    // failed test to show.
    let (code, text) = lane(
        "cargo",
        &[
            running("a"),
            result(true, 20, 0),
            "error: test failed, to rerun pass `--test b`".into(),
        ],
        101,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cargo test failed (status 101)"), "{text}");
}

#[test]
fn a_binary_without_a_result_fails_the_lane() {
    let (code, text) = lane(
        "silent",
        &[running("a"), result(true, 20, 0), running("b")],
        0,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("did not report a result"), "{text}");
}

#[test]
fn too_few_tests_fail_the_lane() {
    for (name, lines) in [
        ("none", vec![]),
        ("few", vec![running("a"), result(true, 9, 0)]),
    ] {
        let (code, text) = lane(name, &lines, 0);
        assert_eq!(code, 1, "{name}: {text}");
    }
}
