//! Static checks of the Windows scripts and the Windows workflow.
//!
//! Neither PowerShell nor a Windows runner is available where these tests
//! run, so each rule below is one that was broken once and can be read off
//! the text. The checks are line-based and written for the files' own
//! style; the tests feed them broken copies of the real files.
//!
//! - install.ps1 ([`check_install`]): every `pnputil.exe` call accepts 3010
//!   (ERROR_SUCCESS_REBOOT_REQUIRED, a success); `pnputil /add-driver ..
//!   /install` either runs after devgen has created the device or accepts
//!   259 (ERROR_NO_MORE_ITEMS, "no matching device").
//! - verifier.ps1 ([`check_verifier`]): Driver Verifier is configured by
//!   exactly one `/driver` command (a second one replaces the first's
//!   settings); its result is read back with `/querysettings`;
//!   `DbgBreakOnError` is written only inside `if ($DebuggerAttached)`.
//! - every script ([`check_native_redirection`]): a native command whose
//!   stderr is merged with `2>&1` runs while `$ErrorActionPreference` is
//!   `'Continue'` (under `'Stop'`, Windows PowerShell 5.1 makes its first
//!   stderr line a terminating error).
//! - windows.yml ([`check_workflow`]): `WindowsSdkBinPath` is exported from
//!   the SDK package (wdk-build adds signtool to PATH only through it); a
//!   `cargo make` step overrides `RUSTFLAGS` without `-D warnings`, keeping
//!   the static CRT; the driver is linted with `-D warnings` with and
//!   without `--features probe-and-lock`, and its unit tests run.

use crate::{Problem, Rule, problem};

/// The lines of a PowerShell script that are code: `<# .. #>` blocks and
/// `#` line comments removed (`#Requires` kept), each with its 1-based line
/// number.
#[must_use]
pub fn code_lines(script: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for (index, line) in script.lines().enumerate() {
        let trimmed = line.trim_start();
        if in_block {
            if trimmed.contains("#>") {
                in_block = false;
            }
            continue;
        }
        if trimmed.starts_with("<#") {
            in_block = !trimmed.contains("#>");
            continue;
        }
        if trimmed.starts_with('#') && !trimmed.starts_with("#Requires") {
            continue;
        }
        out.push((index + 1, line));
    }
    out
}

/// install.ps1's rules (see the module docs).
#[must_use]
pub fn check_install(script: &str) -> Vec<Problem> {
    let lines = code_lines(script);
    let mut out = Vec::new();
    let pnputil: Vec<&(usize, &str)> = lines
        .iter()
        .filter(|(_, l)| l.contains("'pnputil.exe'"))
        .collect();
    if pnputil.is_empty() {
        out.push(problem(Rule::Script, "install.ps1 never runs pnputil.exe"));
    }
    for (number, line) in &pnputil {
        let accepts_reboot = line.contains("-Success")
            && (line.contains("3010") || line.contains("$ErrorSuccessRebootRequired"));
        if !accepts_reboot {
            out.push(problem(
                Rule::Script,
                format!(
                    "install.ps1:{number}: pnputil must accept 3010 \
                     (ERROR_SUCCESS_REBOOT_REQUIRED) as success"
                ),
            ));
        }
    }
    let install = lines
        .iter()
        .find(|(_, l)| l.contains("'/add-driver'") && l.contains("'/install'"));
    let devgen = lines
        .iter()
        .find(|(_, l)| l.contains("Invoke-Native $DevGen"));
    match install {
        None => out.push(problem(
            Rule::Script,
            "install.ps1 never runs pnputil /add-driver .. /install",
        )),
        Some((number, line)) => {
            let device_first = devgen.is_some_and(|(d, _)| d < number);
            let accepts_no_device = line.contains("259") || line.contains("$ErrorNoMoreItems");
            if !device_first && !accepts_no_device {
                out.push(problem(
                    Rule::Script,
                    format!(
                        "install.ps1:{number}: /add-driver /install before devgen creates the \
                         device returns 259 (no matching device): create the device first or \
                         accept 259"
                    ),
                ));
            }
        }
    }
    out
}

/// The 1-based line ranges (inclusive) of the bodies of `if (<condition>) {`
/// blocks, found by brace counting.
fn if_blocks(lines: &[(usize, &str)], condition: &str) -> Vec<(usize, usize)> {
    let header = format!("if ({condition}) {{");
    let mut blocks = Vec::new();
    for (index, (first, text)) in lines.iter().enumerate() {
        let Some(at) = text.find(&header) else {
            continue;
        };
        let mut depth = 0i64;
        for (last, body) in &lines[index..] {
            // On the header's line, count from the header on.
            let counted = if last == first { &text[at..] } else { body };
            for c in counted.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && c == '}' {
                    break;
                }
            }
            if depth <= 0 {
                blocks.push((*first, *last));
                break;
            }
        }
    }
    blocks
}

/// verifier.ps1's rules (see the module docs).
#[must_use]
pub fn check_verifier(script: &str) -> Vec<Problem> {
    let lines = code_lines(script);
    let mut out = Vec::new();
    let configure: Vec<usize> = lines
        .iter()
        .filter(|(_, l)| l.contains("'/driver'"))
        .map(|(n, _)| *n)
        .collect();
    if configure.len() != 1 {
        out.push(problem(
            Rule::Script,
            format!(
                "verifier.ps1 configures Driver Verifier with {} `/driver` commands (lines \
                 {configure:?}): each replaces the previous settings; use one",
                configure.len()
            ),
        ));
    }
    if !lines
        .iter()
        .any(|(_, l)| l.contains("= Invoke-Verifier @('/querysettings')"))
    {
        out.push(problem(
            Rule::Script,
            "verifier.ps1 does not read its settings back with /querysettings",
        ));
    }
    let guarded = if_blocks(&lines, "$DebuggerAttached");
    for (number, line) in &lines {
        let writes = line.contains("DbgBreakOnError")
            && (line.contains("New-ItemProperty")
                || line.contains("Set-ItemProperty")
                || line.contains("DbgBreakOnError ="));
        if writes && !guarded.iter().any(|(a, b)| a < number && number <= b) {
            out.push(problem(
                Rule::Script,
                format!(
                    "verifier.ps1:{number}: DbgBreakOnError set outside `if ($DebuggerAttached)`: \
                     without a kernel debugger its break is a 0x7E/0x1E bug check"
                ),
            ));
        }
    }
    out
}

/// Every `2>&1` runs while `$ErrorActionPreference` is `'Continue'`: the
/// last assignment to it on an earlier line must set `'Continue'`.
#[must_use]
pub fn check_native_redirection(name: &str, script: &str) -> Vec<Problem> {
    let mut preference = "unset".to_owned();
    let mut out = Vec::new();
    for (number, line) in code_lines(script) {
        if line.contains("2>&1") && preference != "'Continue'" {
            out.push(problem(
                Rule::Script,
                format!(
                    "{name}:{number}: 2>&1 on a native command while $ErrorActionPreference \
                     is {preference}: Windows PowerShell 5.1 makes its stderr fatal under 'Stop'"
                ),
            ));
        }
        if let Some((_, value)) = line.split_once("$ErrorActionPreference =") {
            value.trim().clone_into(&mut preference);
        }
    }
    out
}

/// The steps of a GitHub workflow: the text from each `- name:` or
/// `- uses:` item to the next, without `#` comment lines.
fn steps(workflow: &str) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    for line in workflow.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with("- name:") || trimmed.starts_with("- uses:") {
            steps.push(String::new());
        }
        if let Some(step) = steps.last_mut() {
            step.push_str(line);
            step.push('\n');
        }
    }
    steps
}

/// windows.yml's rules (see the module docs).
#[must_use]
pub fn check_workflow(workflow: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let exports_sdk_bin = workflow.contains("\"WindowsSdkBinPath=")
        && workflow.contains("Microsoft\\.Windows\\.SDK\\.CPP");
    if !exports_sdk_bin {
        out.push(problem(
            Rule::Workflow,
            "WindowsSdkBinPath is not exported from the Microsoft.Windows.SDK.CPP package: \
             wdk-build's setup_path then leaves signtool, makecert and certmgr off PATH",
        ));
    }
    let all = steps(workflow);
    let packaging: Vec<&String> = all.iter().filter(|s| s.contains("cargo make")).collect();
    if packaging.is_empty() {
        out.push(problem(Rule::Workflow, "no step runs cargo make"));
    }
    for step in packaging {
        let flags = step
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("RUSTFLAGS:"))
            .map(str::trim);
        match flags {
            Some(flags) if !flags.contains("-D warnings") && flags.contains("+crt-static") => {}
            other => out.push(problem(
                Rule::Workflow,
                format!(
                    "the cargo make step must set RUSTFLAGS without -D warnings and with \
                     +crt-static (windows-drivers-rs PR #629); it has {other:?}"
                ),
            )),
        }
    }
    let runs_line = |ok: &dyn Fn(&str) -> bool| all.iter().any(|s| s.lines().any(ok));
    let runs = |needles: &[&str]| runs_line(&|l: &str| needles.iter().all(|n| l.contains(n)));
    let lints = |l: &str| {
        l.contains("cargo clippy") && l.contains("-p usercap-driver") && l.contains("-D warnings")
    };
    // Both user-memory backends: the default (usercap-seh) and the
    // probe-and-lock feature, each a different set of lines.
    if !runs_line(&|l: &str| lints(l) && !l.contains("--features")) {
        out.push(problem(
            Rule::Workflow,
            "no step lints the driver's default build with cargo clippy -p usercap-driver .. -D warnings",
        ));
    }
    if !runs_line(&|l: &str| lints(l) && l.contains("--features probe-and-lock")) {
        out.push(problem(
            Rule::Workflow,
            "no step lints the driver's probe-and-lock build with -D warnings",
        ));
    }
    if !runs(&["cargo test", "-p usercap-driver"]) {
        out.push(problem(
            Rule::Workflow,
            "no step runs the driver's unit tests (cargo test -p usercap-driver)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_not_code() {
        let script =
            "<#\n pnputil.exe\n#>\n# '/driver'\n#Requires -Version 5.1\ncode\n<# one line #>\n";
        let lines: Vec<_> = code_lines(script).into_iter().map(|(_, l)| l).collect();
        assert_eq!(lines, ["#Requires -Version 5.1", "code"]);
    }

    #[test]
    fn if_blocks_span_nested_braces() {
        let script = "a\nif ($X) {\n  if ($Y) { b }\n  c\n}\nd\n";
        let lines = code_lines(script);
        assert_eq!(if_blocks(&lines, "$X"), [(2, 5)]);
        assert_eq!(if_blocks(&lines, "$Y"), [(3, 3)]);
        assert_eq!(if_blocks(&lines, "$Z"), []);
    }
}
