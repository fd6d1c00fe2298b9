//! The Windows scripts and workflow keep the rules that were broken once,
//! and every check catches a broken copy of the real file.

use std::path::PathBuf;

use usercap_tests::scripts::{
    check_install, check_native_redirection, check_verifier, check_workflow,
};
use usercap_tests::{Problem, Rule};

fn read(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn install() -> String {
    read("scripts/windows/install.ps1")
}

fn verifier() -> String {
    read("scripts/windows/verifier.ps1")
}

fn soak() -> String {
    read("scripts/windows/soak.ps1")
}

fn workflow() -> String {
    read(".github/workflows/windows.yml")
}

/// `text` with every `from` replaced by `to`; `from` must occur.
fn mutate(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the file no longer contains {from:?}; update this test"
    );
    text.replace(from, to)
}

fn assert_caught(problems: &[Problem], rule: Rule, what: &str) {
    assert!(
        problems.iter().any(|p| p.rule == rule),
        "{what} should be reported as {rule:?}; got {problems:#?}"
    );
}

#[test]
fn the_scripts_and_the_workflow_pass() {
    assert_eq!(check_install(&install()), []);
    assert_eq!(check_verifier(&verifier()), []);
    for (name, script) in [
        ("install.ps1", install()),
        ("verifier.ps1", verifier()),
        ("soak.ps1", soak()),
    ] {
        assert_eq!(check_native_redirection(name, &script), [], "{name}");
    }
    assert_eq!(check_workflow(&workflow()), []);
}

#[test]
fn pnputil_must_accept_reboot_required() {
    let broken = mutate(&install(), "-Success 0, 3010 | Out-Null", "| Out-Null");
    assert_caught(
        &check_install(&broken),
        Rule::Script,
        "pnputil /remove-device refusing 3010",
    );
    let broken = mutate(
        &install(),
        "-Success 0, $ErrorSuccessRebootRequired, $ErrorNoMoreItems",
        "-Success 0, $ErrorNoMoreItems",
    );
    assert_caught(
        &check_install(&broken),
        Rule::Script,
        "pnputil /add-driver /install refusing 3010",
    );
}

#[test]
fn install_needs_the_device_first_or_must_accept_no_matching_device() {
    // Either half of the rule alone satisfies it...
    let without_259 = mutate(
        &install(),
        "$ErrorSuccessRebootRequired, $ErrorNoMoreItems",
        "$ErrorSuccessRebootRequired",
    );
    assert_eq!(check_install(&without_259), [], "devgen still runs first");
    // ...both broken is the original bug: pnputil /install before devgen,
    // refusing 259.
    let devgen_gone = mutate(&without_259, "Invoke-Native $DevGen", "& $DevGen");
    assert_caught(
        &check_install(&devgen_gone),
        Rule::Script,
        "/install before the device exists",
    );
}

#[test]
fn verifier_is_configured_once_and_read_back() {
    let second_command = mutate(
        &verifier(),
        "Invoke-Verifier @('/flags', $hex, '/driver', $Driver) | Out-Null",
        "Invoke-Verifier @('/standard', '/driver', $Driver) | Out-Null\n    \
         Invoke-Verifier @('/faults', '/driver', $Driver) | Out-Null",
    );
    assert_caught(
        &check_verifier(&second_command),
        Rule::Script,
        "/standard then /faults as two commands",
    );
    let unchecked = mutate(
        &verifier(),
        "$settings = Invoke-Verifier @('/querysettings')",
        "Invoke-Verifier @('/querysettings') | Out-Null",
    );
    assert_caught(
        &check_verifier(&unchecked),
        Rule::Script,
        "settings not read back",
    );
}

#[test]
fn dbg_break_on_error_needs_a_debugger() {
    let always = mutate(
        &verifier(),
        "ForceLogsInMiniDump = 1 }",
        "ForceLogsInMiniDump = 1; DbgBreakOnError = 1 }",
    );
    assert_caught(
        &check_verifier(&always),
        Rule::Script,
        "DbgBreakOnError in the unconditional values",
    );
    let unguarded = mutate(&verifier(), "if ($DebuggerAttached) {", "if ($true) {");
    assert_caught(
        &check_verifier(&unguarded),
        Rule::Script,
        "DbgBreakOnError under another condition",
    );
}

#[test]
fn native_stderr_is_merged_only_under_continue() {
    for (name, script) in [("verifier.ps1", verifier()), ("soak.ps1", soak())] {
        let broken = mutate(
            &script,
            "$ErrorActionPreference = 'Continue'",
            "$ErrorActionPreference = 'Stop'",
        );
        assert_caught(
            &check_native_redirection(name, &broken),
            Rule::Script,
            "2>&1 under 'Stop'",
        );
    }
    // The soak script as it was: 'Stop' at the top, 2>&1 on usercap.exe.
    let old_soak = "$ErrorActionPreference = 'Stop'\n\
                    & $Usercap --transport windows attack 2>&1 | Tee-Object -FilePath x\n";
    assert_caught(
        &check_native_redirection("soak.ps1", old_soak),
        Rule::Script,
        "the old soak.ps1",
    );
}

#[test]
fn the_workflow_exports_the_sdk_bin_path() {
    let broken = mutate(
        &workflow(),
        "\"WindowsSdkBinPath=$sdkBin\" | Out-File $env:GITHUB_ENV -Append -Encoding utf8\n",
        "",
    );
    assert_caught(
        &check_workflow(&broken),
        Rule::Workflow,
        "no WindowsSdkBinPath",
    );
}

#[test]
fn cargo_make_runs_without_deny_warnings_but_with_the_static_crt() {
    let inherited = mutate(
        &workflow(),
        "        env:\n          RUSTFLAGS: -C target-feature=+crt-static\n        run: cargo make",
        "        run: cargo make",
    );
    assert_caught(
        &check_workflow(&inherited),
        Rule::Workflow,
        "cargo make under the job's -D warnings",
    );
    let denied = mutate(
        &workflow(),
        "RUSTFLAGS: -C target-feature=+crt-static\n        run: cargo make",
        "RUSTFLAGS: -D warnings -C target-feature=+crt-static\n        run: cargo make",
    );
    assert_caught(
        &check_workflow(&denied),
        Rule::Workflow,
        "-D warnings set again",
    );
    let no_crt = mutate(
        &workflow(),
        "RUSTFLAGS: -C target-feature=+crt-static\n        run: cargo make",
        "RUSTFLAGS: \"\"\n        run: cargo make",
    );
    assert_caught(
        &check_workflow(&no_crt),
        Rule::Workflow,
        "an empty RUSTFLAGS, which also drops config.toml's +crt-static",
    );
}

#[test]
fn the_driver_is_linted_and_tested_on_windows() {
    let unlinted = mutate(
        &workflow(),
        "run: cargo clippy -p usercap-driver --all-targets -- -D warnings",
        "run: cargo clippy -p usercap-driver --all-targets",
    );
    assert_caught(
        &check_workflow(&unlinted),
        Rule::Workflow,
        "driver clippy without -D warnings",
    );
    let one_backend = mutate(
        &workflow(),
        "run: cargo clippy -p usercap-driver --all-targets --features probe-and-lock -- -D warnings",
        "run: cargo clippy -p usercap-driver --all-targets --features probe-and-lock",
    );
    assert_caught(
        &check_workflow(&one_backend),
        Rule::Workflow,
        "the probe-and-lock build not linted",
    );
    let untested = mutate(
        &workflow(),
        "run: cargo test -p usercap-driver",
        "run: cargo build -p usercap-driver",
    );
    assert_caught(
        &check_workflow(&untested),
        Rule::Workflow,
        "no driver unit tests",
    );
}
