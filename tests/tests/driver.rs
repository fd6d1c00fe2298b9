//! The driver crate's manifest and build script keep it buildable on Linux
//! and packageable on Windows; its Windows-only source passes the static
//! checks that stand in for the Windows compiler and clippy here; and every
//! check can fail.

use std::path::PathBuf;

use usercap_tests::shell::{
    WdfCall, check_documented_calls, check_driver_entry, check_wdf_calls, kernel_imports,
    wdf_calls, without_line_comments,
};
use usercap_tests::{Problem, Rule, check_driver_manifest};

fn read(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn manifest() -> String {
    read("driver/Cargo.toml")
}

fn mutate(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "driver/Cargo.toml no longer contains {from:?}; update this test"
    );
    text.replacen(from, to, 1)
}

fn fails(from: &str, to: &str) {
    let problems = match check_driver_manifest(&mutate(&manifest(), from, to)) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    };
    assert!(
        problems
            .iter()
            .any(|p| p.rule == Rule::Manifest || p.rule == Rule::Syntax),
        "replacing {from:?} by {to:?} should be reported"
    );
}

#[test]
fn the_manifest_passes() {
    let checked = check_driver_manifest(&manifest());
    assert!(checked.is_ok(), "{checked:#?}");
}

#[test]
fn kmdf_metadata_is_checked() {
    fails(
        "target-kmdf-version-minor = 33",
        "target-kmdf-version-minor = 31",
    );
    fails("driver-type = \"KMDF\"", "driver-type = \"WDM\"");
    fails("kmdf-version-major = 1", "kmdf-version-major = 2");
}

#[test]
fn the_library_is_a_cdylib_named_after_the_package() {
    fails("crate-type = [\"cdylib\"]", "crate-type = [\"rlib\"]");
    fails("[lib]\n", "[lib]\nname = \"usercap\"\n");
}

#[test]
fn wdk_crates_stay_behind_cfg_windows() {
    fails(
        "[dependencies]\n",
        "[dependencies]\nwdk-sys.workspace = true\n",
    );
    fails(
        "[target.'cfg(windows)'.dependencies]",
        "[target.'cfg(unix)'.dependencies]",
    );
    fails(
        "[target.'cfg(windows)'.build-dependencies]",
        "[build-dependencies]",
    );
    fails(
        "[target.'cfg(windows)'.dev-dependencies]",
        "[dev-dependencies]",
    );
}

#[test]
fn the_build_script_is_empty_off_windows() {
    let build = read("driver/build.rs");
    assert!(build.contains("#[cfg(windows)]\nfn main() -> Result<(), wdk_build::ConfigError>"));
    assert!(build.contains("wdk_build::configure_wdk_binary_build()"));
    assert!(build.contains("#[cfg(not(windows))]\nfn main() {}"));
}

#[test]
fn the_library_is_no_std_only_on_windows() {
    let lib = read("driver/src/lib.rs");
    assert!(lib.contains("#![cfg_attr(all(target_os = \"windows\", not(test)), no_std)]"));
    for module in ["context", "io", "lock", "space", "trace"] {
        assert!(
            lib.contains(&format!("#[cfg(target_os = \"windows\")]\nmod {module};")),
            "mod {module} must be Windows-only"
        );
    }
}

#[test]
fn static_crt_is_configured_for_windows_targets_only() {
    let config = read(".cargo/config.toml");
    let table: toml::Table = config.parse().expect(".cargo/config.toml parses");
    assert!(
        table.get("build").is_none(),
        "no [build] rustflags: they would apply to Linux builds"
    );
    let flags = table
        .get("target")
        .and_then(|t| t.get("cfg(target_os = \"windows\")"))
        .and_then(|t| t.get("rustflags"))
        .and_then(toml::Value::as_array)
        .expect("[target.'cfg(target_os = \"windows\")'] rustflags");
    let flags: Vec<&str> = flags.iter().filter_map(toml::Value::as_str).collect();
    assert_eq!(flags, ["-C", "target-feature=+crt-static"]);
}

/// Every Rust file of the driver crate, as (path relative to the root,
/// text), sorted.
fn driver_sources() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("driver/src is readable")
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                // `/`-separated on every OS (Windows displays `\`), as the
                // checks name the files.
                let name = path
                    .strip_prefix(root)
                    .expect("under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let text = std::fs::read_to_string(&path).expect("readable source");
                out.push((name, text));
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    walk(&root.join("driver/src"), &root, &mut out);
    out
}

fn all_calls(sources: &[(String, String)]) -> Vec<WdfCall> {
    sources
        .iter()
        .flat_map(|(name, text)| wdf_calls(name, text))
        .collect()
}

/// The functions the shell calls: WDF functions and direct kernel imports.
fn called(sources: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = all_calls(sources)
        .into_iter()
        .map(|c| c.function)
        .chain(sources.iter().flat_map(|(_, text)| kernel_imports(text)))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn with_file_replaced(file: &str, from: &str, to: &str) -> Vec<(String, String)> {
    let mut sources = driver_sources();
    let (_, text) = sources
        .iter_mut()
        .find(|(name, _)| name == file)
        .unwrap_or_else(|| panic!("no {file}"));
    assert!(text.contains(from), "{file} no longer contains {from:?}");
    *text = text.replacen(from, to, 1);
    sources
}

fn has_shell_problem(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.rule == Rule::ShellSource)
}

#[test]
fn the_shell_makes_the_calls_it_is_known_for() {
    let calls = all_calls(&driver_sources());
    let names: Vec<&str> = calls.iter().map(|c| c.function.as_str()).collect();
    // The scanner finds the calls of every module (a scanner that found
    // none would pass every check below).
    for expected in [
        "WdfDriverCreate",
        "WdfDeviceInitSetRemoveLockOptions",
        "WdfDeviceCreate",
        "WdfRequestCompleteWithInformation",
        "WdfRequestProbeAndLockUserBufferForRead",
        "WdfWaitLockAcquire",
        "WdfObjectGetTypedContextWorker",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} not found in {names:?}"
        );
    }
    assert!(calls.len() >= 20, "{} calls", calls.len());
    let imports = called(&driver_sources());
    assert!(imports.contains(&"KeGetCurrentIrql".to_owned()));
    assert!(imports.contains(&"DbgPrintEx".to_owned()));
}

#[test]
fn wdf_calls_take_raw_pointers_and_the_ulong_ptr_conversion() {
    let problems = check_wdf_calls(&all_calls(&driver_sources()));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_reference_where_a_ddi_takes_a_pointer_is_caught() {
    for (file, from, to) in [
        ("driver/src/lib.rs", "&raw mut config", "&mut config"),
        ("driver/src/lib.rs", "&raw const link", "&link"),
        ("driver/src/io.rs", "&raw mut params", "&mut params"),
        ("driver/src/lock.rs", "&raw mut timeout", "&mut timeout"),
        (
            "driver/src/space/probe_and_lock.rs",
            "&raw mut mapped_len",
            "&mut mapped_len",
        ),
    ] {
        let sources = with_file_replaced(file, from, to);
        assert!(
            has_shell_problem(&check_wdf_calls(&all_calls(&sources))),
            "{file}: {to} should be caught"
        );
    }
}

#[test]
fn information_must_go_through_the_ulong_ptr_conversion() {
    let sources = with_file_replaced(
        "driver/src/io.rs",
        "plan::information(completion.information)",
        "completion.information",
    );
    assert!(has_shell_problem(&check_wdf_calls(&all_calls(&sources))));
}

#[test]
fn driver_entry_is_not_exported_in_test_builds() {
    let lib = read("driver/src/lib.rs");
    assert_eq!(check_driver_entry(&lib), []);
    let ungated = lib.replacen(
        "#[cfg_attr(not(test), unsafe(export_name = \"DriverEntry\"))]",
        "#[unsafe(export_name = \"DriverEntry\")]",
        1,
    );
    assert_ne!(ungated, lib, "lib.rs no longer has the gated export");
    assert!(has_shell_problem(&check_driver_entry(&ungated)));
    let twice = format!("{lib}\n#[unsafe(export_name = \"DriverEntry\")]\nfn other() {{}}\n");
    assert!(has_shell_problem(&check_driver_entry(&twice)));
}

#[test]
fn the_appendix_lists_every_call_and_nothing_else() {
    let doc = read("docs/windows.md");
    let calls = called(&driver_sources());
    let problems = check_documented_calls(&calls, &doc);
    assert!(problems.is_empty(), "{problems:#?}");
    // A call the table lacks, and a row for a call the driver does not make.
    let mut more = calls.clone();
    more.push("WdfDeviceInitSetPnpPowerEventCallbacks".to_owned());
    assert!(has_shell_problem(&check_documented_calls(&more, &doc)));
    let fewer: Vec<String> = calls
        .iter()
        .filter(|c| *c != "WdfDeviceInitSetRemoveLockOptions")
        .cloned()
        .collect();
    assert!(has_shell_problem(&check_documented_calls(&fewer, &doc)));
}

/// The `wdk*` crates declared under `[target.'cfg(windows)'.dependencies]`.
fn windows_dependencies(manifest: &str) -> Vec<String> {
    let table: toml::Table = manifest.parse().expect("driver/Cargo.toml parses");
    let deps = table
        .get("target")
        .and_then(|t| t.get("cfg(windows)"))
        .and_then(|t| t.get("dependencies"))
        .and_then(toml::Value::as_table)
        .expect("[target.'cfg(windows)'.dependencies]");
    deps.keys()
        .filter(|k| k.starts_with("wdk"))
        .cloned()
        .collect()
}

/// Declared WDK crates the driver's code (comments aside) never names.
fn unused(manifest: &str, sources: &[(String, String)]) -> Vec<String> {
    let code: Vec<String> = sources
        .iter()
        .map(|(_, text)| without_line_comments(text))
        .collect();
    windows_dependencies(manifest)
        .into_iter()
        .filter(|name| {
            let crate_name = name.replace('-', "_");
            let path = format!("{crate_name}::");
            let extern_crate = format!("extern crate {crate_name};");
            !code
                .iter()
                .any(|text| text.contains(&path) || text.contains(&extern_crate))
        })
        .collect()
}

#[test]
fn every_declared_wdk_crate_is_used() {
    assert_eq!(unused(&manifest(), &driver_sources()), Vec::<String>::new());
    let with_wdk = mutate(
        &manifest(),
        "[target.'cfg(windows)'.dependencies]\n",
        "[target.'cfg(windows)'.dependencies]\nwdk.workspace = true\n",
    );
    assert_eq!(unused(&with_wdk, &driver_sources()), ["wdk"]);
}
