//! The driver crate's manifest and build script keep it buildable on Linux
//! and packageable on Windows, and every check can fail.

use std::path::PathBuf;

use usercap_tests::{Rule, check_driver_manifest};

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
    for module in ["context", "io", "lock", "space"] {
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
