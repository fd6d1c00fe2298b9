//! Cross-crate checks that need no Windows: the driver package's INF and the
//! driver crate's manifest, checked against `usercap-protocol`.
//!
//! The driver itself cannot be compiled on Linux (wdk-build refuses
//! non-Windows hosts), but the files that decide how it is installed and
//! built can be read here. Each check reports a [`Problem`] rather than
//! panicking, so the tests can feed a deliberately broken file to a checker
//! and assert that it notices, which proves every check can fail.
//!
//! - [`inf`]: a small INF parser (sections, `key = value` lines, `;`
//!   comments outside quotes, `%token%` substitution from `[Strings]`).
//! - [`check_inf`]: the install rules of usercap's INF.
//! - [`check_inf_os_version`]: the INF installs only where the driver's
//!   KMDF version runs.
//! - [`check_driver_manifest`]: the driver crate's `Cargo.toml` rules.
//! - [`shell`]: the driver shell's Rust source, which cannot be compiled
//!   here: raw-pointer arguments, the `ULONG_PTR` conversion, the test-build
//!   `DriverEntry`, the documented call table.
//! - [`scripts`]: the install, Verifier and soak scripts and the Windows
//!   workflow.
//! - [`docs`]: every test, scenario and line the reviewer documents cite
//!   exists.
//! - [`probe`]: the probe rules as one table of cases that every backend's
//!   tests run (`SimSpace` here, `HostSpace` and `SehSpace` in theirs).

pub mod docs;
pub mod inf;
mod manifest;
pub mod probe;
pub mod scripts;
pub mod shell;

use core::fmt;

pub use manifest::{DriverManifest, check_driver_manifest};

use inf::{Inf, fields};

/// The System setup class GUID (`Class = System`), from
/// learn.microsoft.com "System-Defined Device Setup Classes Available to
/// Vendors".
pub const SYSTEM_CLASS_GUID: &str = "{4d36e97d-e325-11ce-bfc1-08002be10318}";

/// One broken rule, with enough text to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Which rule.
    pub rule: Rule,
    /// What was found.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.rule, self.detail)
    }
}

/// The rules the checkers enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The file does not parse.
    Syntax,
    /// A required section is missing.
    MissingSection,
    /// A `%token%` has no entry in `[Strings]`.
    UnresolvedToken,
    /// `[Version] PnpLockdown` is not 1.
    PnpLockdown,
    /// `Class`/`ClassGuid` are not the System class, or a `[ClassInstall32]`
    /// is present (not allowed for a Microsoft-defined class).
    Class,
    /// A required `[Version]` entry (Provider, CatalogFile, DriverVer,
    /// Signature) is missing.
    VersionEntry,
    /// The models section does not list exactly the protocol's hardware ID.
    HardwareId,
    /// `AddService` or `KmdfService` does not name the protocol's service.
    ServiceName,
    /// The service's type, start type or error control is not a
    /// demand-start kernel driver with normal error control.
    ServiceConfig,
    /// The driver binary named by the INF is not the one the build produces,
    /// or is not copied to / run from the driver store (DIRID 13).
    Binary,
    /// The `.HW` section's `Security` value is not the protocol's SDDL, or
    /// FILE_DEVICE_SECURE_OPEN is not set.
    Security,
    /// The KMDF section does not ask for `$KMDFVERSION$`.
    Kmdf,
    /// A rule of the driver crate's `Cargo.toml`.
    Manifest,
    /// The models decoration lets the INF install on a Windows build the
    /// driver's KMDF version does not run on.
    OsVersion,
    /// A rule of the driver shell's Rust source ([`shell`]).
    ShellSource,
    /// A rule of a PowerShell script under scripts/windows ([`scripts`]).
    Script,
    /// A rule of .github/workflows/windows.yml ([`scripts`]).
    Workflow,
}

/// What the INF must agree with.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// `usercap_protocol::HARDWARE_ID`.
    pub hardware_id: &'a str,
    /// `usercap_protocol::SERVICE_NAME`.
    pub service_name: &'a str,
    /// `usercap_protocol::DEVICE_SDDL`.
    pub sddl: &'a str,
    /// The driver binary the build produces (`usercap_driver.sys`).
    pub binary: &'a str,
}

/// Checks usercap's INF (the `.inx` before stampinf) against `expected`.
///
/// Returns every problem found; an empty list means the INF passes.
#[must_use]
pub fn check_inf(text: &str, expected: &Expected<'_>) -> Vec<Problem> {
    let inf = match Inf::parse(text) {
        Ok(inf) => inf,
        Err(e) => return vec![problem(Rule::Syntax, e.to_string())],
    };
    let mut out = Vec::new();
    check_tokens(&inf, &mut out);
    check_version(&inf, &mut out);
    let Some(install) = check_models(&inf, expected, &mut out) else {
        return out;
    };
    check_install(&inf, &install, expected, &mut out);
    out
}

fn problem(rule: Rule, detail: impl Into<String>) -> Problem {
    Problem {
        rule,
        detail: detail.into(),
    }
}

fn check_tokens(inf: &Inf, out: &mut Vec<Problem>) {
    if inf.section("Strings").is_none() {
        out.push(problem(Rule::MissingSection, "[Strings]"));
    }
    for token in inf.unresolved_tokens() {
        out.push(problem(Rule::UnresolvedToken, format!("%{token}%")));
    }
}

fn check_version(inf: &Inf, out: &mut Vec<Problem>) {
    if inf.section("Version").is_none() {
        out.push(problem(Rule::MissingSection, "[Version]"));
        return;
    }
    let get = |key: &str| inf.value("Version", key);
    if get("PnpLockdown").as_deref() != Some("1") {
        out.push(problem(
            Rule::PnpLockdown,
            format!("PnpLockdown = {:?}", get("PnpLockdown")),
        ));
    }
    let class_ok = get("Class").is_some_and(|c| c.eq_ignore_ascii_case("System"));
    let guid_ok = get("ClassGuid").is_some_and(|g| g.eq_ignore_ascii_case(SYSTEM_CLASS_GUID));
    if !class_ok || !guid_ok {
        out.push(problem(
            Rule::Class,
            format!(
                "Class = {:?}, ClassGuid = {:?}",
                get("Class"),
                get("ClassGuid")
            ),
        ));
    }
    if inf.section("ClassInstall32").is_some() {
        out.push(problem(
            Rule::Class,
            "[ClassInstall32] with a Microsoft-defined class",
        ));
    }
    if get("Signature").as_deref() != Some("$WINDOWS NT$") {
        out.push(problem(
            Rule::VersionEntry,
            "Signature must be \"$WINDOWS NT$\"",
        ));
    }
    for key in ["Provider", "CatalogFile", "DriverVer"] {
        if !inf.has_key("Version", key) {
            out.push(problem(Rule::VersionEntry, format!("{key} missing")));
        }
    }
}

/// Finds the models section through `[Manufacturer]`, checks its one device
/// entry, and returns the DDInstall section's name.
fn check_models(inf: &Inf, expected: &Expected<'_>, out: &mut Vec<Problem>) -> Option<String> {
    let Some(manufacturer) = inf.section("Manufacturer") else {
        out.push(problem(Rule::MissingSection, "[Manufacturer]"));
        return None;
    };
    let Some(entry) = manufacturer.entries().next() else {
        out.push(problem(
            Rule::MissingSection,
            "[Manufacturer] has no models entry",
        ));
        return None;
    };
    let parts = fields(&entry.value);
    let Some((base, decorations)) = parts.split_first() else {
        out.push(problem(
            Rule::MissingSection,
            "[Manufacturer] entry has no models name",
        ));
        return None;
    };
    let models_name = match decorations.first() {
        Some(decoration) => format!("{base}.{decoration}"),
        None => base.clone(),
    };
    let Some(models) = inf.section(&models_name) else {
        out.push(problem(Rule::MissingSection, format!("[{models_name}]")));
        return None;
    };
    let devices: Vec<Vec<String>> = models.entries().map(|e| fields(&e.value)).collect();
    let [device] = devices.as_slice() else {
        out.push(problem(
            Rule::HardwareId,
            format!("{} device entries, expected 1", devices.len()),
        ));
        return None;
    };
    let hardware_id = device.get(1).map(String::as_str);
    if !hardware_id.is_some_and(|id| id.eq_ignore_ascii_case(expected.hardware_id)) {
        out.push(problem(
            Rule::HardwareId,
            format!(
                "hardware ID {hardware_id:?}, expected {:?}",
                expected.hardware_id
            ),
        ));
    }
    let install = device.first().cloned().unwrap_or_default();
    // DDInstall sections may carry a platform extension.
    let decorated = [
        format!("{install}.NT$ARCH$"),
        format!("{install}.NT"),
        install.clone(),
    ];
    let found = decorated
        .into_iter()
        .find(|name| inf.section(name).is_some());
    if found.is_none() {
        out.push(problem(
            Rule::MissingSection,
            format!("DDInstall [{install}.NT]"),
        ));
    }
    found
}

fn check_install(inf: &Inf, install: &str, expected: &Expected<'_>, out: &mut Vec<Problem>) {
    let services = format!("{install}.Services");
    let wdf = format!("{install}.Wdf");
    let hw = format!("{install}.HW");
    for name in [&services, &wdf, &hw] {
        if inf.section(name).is_none() {
            out.push(problem(Rule::MissingSection, format!("[{name}]")));
        }
    }
    check_binary(inf, install, expected, out);
    check_service(inf, &services, expected, out);
    check_kmdf(inf, &wdf, expected, out);
    check_security(inf, &hw, expected, out);
}

fn check_binary(inf: &Inf, install: &str, expected: &Expected<'_>, out: &mut Vec<Problem>) {
    let bin = expected.binary;
    let source_files: Vec<String> = inf
        .section("SourceDisksFiles")
        .map(|s| s.lines.iter().map(inf::Line::key_or_entry).collect())
        .unwrap_or_default();
    if source_files.len() != 1 || !source_files.iter().any(|f| f.eq_ignore_ascii_case(bin)) {
        out.push(problem(
            Rule::Binary,
            format!("[SourceDisksFiles] {source_files:?}, expected [{bin}]"),
        ));
    }
    if inf.value("DestinationDirs", "DefaultDestDir").as_deref() != Some("13") {
        out.push(problem(
            Rule::Binary,
            "DefaultDestDir must be 13 (driver store)",
        ));
    }
    let copy_sections: Vec<String> = inf
        .value(install, "CopyFiles")
        .map(|v| fields(&v))
        .unwrap_or_default();
    let copied: Vec<String> = copy_sections
        .iter()
        .filter_map(|name| inf.section(name))
        .flat_map(|s| s.lines.iter().map(inf::Line::key_or_entry))
        .collect();
    if copied.len() != 1 || !copied.iter().any(|f| f.eq_ignore_ascii_case(bin)) {
        out.push(problem(
            Rule::Binary,
            format!("CopyFiles copies {copied:?}, expected [{bin}]"),
        ));
    }
}

fn check_service(inf: &Inf, services: &str, expected: &Expected<'_>, out: &mut Vec<Problem>) {
    let Some(add) = inf.value(services, "AddService") else {
        out.push(problem(
            Rule::ServiceName,
            format!("no AddService in [{services}]"),
        ));
        return;
    };
    let add = fields(&add);
    if add.first().map(String::as_str) != Some(expected.service_name) {
        out.push(problem(
            Rule::ServiceName,
            format!(
                "AddService names {:?}, expected {:?}",
                add.first(),
                expected.service_name
            ),
        ));
    }
    // 0x2 = SPSVCINST_ASSOCSERVICE: this service is the device's function driver.
    if add
        .get(1)
        .map(|f| inf.expand(f))
        .and_then(Result::ok)
        .as_deref()
        != Some("0x00000002")
    {
        out.push(problem(
            Rule::ServiceConfig,
            "AddService flags must be SPSVCINST_ASSOCSERVICE",
        ));
    }
    let Some(section) = add.get(2) else {
        out.push(problem(
            Rule::ServiceConfig,
            "AddService names no service-install section",
        ));
        return;
    };
    let get = |key: &str| inf.value(section, key);
    for (key, want, what) in [
        ("ServiceType", "1", "SERVICE_KERNEL_DRIVER"),
        ("StartType", "3", "SERVICE_DEMAND_START"),
        ("ErrorControl", "1", "SERVICE_ERROR_NORMAL"),
    ] {
        if get(key).as_deref() != Some(want) {
            out.push(problem(
                Rule::ServiceConfig,
                format!("{key} = {:?}, expected {want} ({what})", get(key)),
            ));
        }
    }
    let want_binary = format!("%13%\\{}", expected.binary);
    if !get("ServiceBinary").is_some_and(|b| b.eq_ignore_ascii_case(&want_binary)) {
        out.push(problem(
            Rule::Binary,
            format!(
                "ServiceBinary = {:?}, expected {want_binary}",
                get("ServiceBinary")
            ),
        ));
    }
}

fn check_kmdf(inf: &Inf, wdf: &str, expected: &Expected<'_>, out: &mut Vec<Problem>) {
    let Some(kmdf) = inf.value(wdf, "KmdfService") else {
        out.push(problem(Rule::Kmdf, format!("no KmdfService in [{wdf}]")));
        return;
    };
    let kmdf = fields(&kmdf);
    if kmdf.first().map(String::as_str) != Some(expected.service_name) {
        out.push(problem(
            Rule::ServiceName,
            format!(
                "KmdfService names {:?}, expected {:?}",
                kmdf.first(),
                expected.service_name
            ),
        ));
    }
    let version = kmdf
        .get(1)
        .and_then(|section| inf.value(section, "KmdfLibraryVersion"));
    if version.as_deref() != Some("$KMDFVERSION$") {
        out.push(problem(
            Rule::Kmdf,
            format!("KmdfLibraryVersion = {version:?}, expected $KMDFVERSION$"),
        ));
    }
}

fn check_security(inf: &Inf, hw: &str, expected: &Expected<'_>, out: &mut Vec<Problem>) {
    let add_reg: Vec<String> = inf
        .value(hw, "AddReg")
        .map(|v| fields(&v))
        .unwrap_or_default();
    let lines: Vec<Vec<String>> = add_reg
        .iter()
        .filter_map(|name| inf.section(name))
        .flat_map(|s| s.lines.iter().map(|l| fields(&l.raw)))
        .collect();
    let value_of = |name: &str| {
        lines.iter().find_map(|f| match f.as_slice() {
            [root, subkey, value, flags, data, ..]
                if root.eq_ignore_ascii_case("HKR")
                    && subkey.is_empty()
                    && value.eq_ignore_ascii_case(name) =>
            {
                Some((flags.clone(), data.clone()))
            }
            _ => None,
        })
    };
    match value_of("Security") {
        Some((flags, sddl)) if flags.is_empty() && sddl == expected.sddl => {}
        other => out.push(problem(
            Rule::Security,
            format!(
                "HKR,,Security = {other:?}, expected REG_SZ {:?}",
                expected.sddl
            ),
        )),
    }
    // REG_DWORD (0x10001) with FILE_DEVICE_SECURE_OPEN (0x100) set.
    let secure_open = value_of("DeviceCharacteristics").is_some_and(|(flags, value)| {
        flags.eq_ignore_ascii_case("0x10001") && parse_u32(&value).is_some_and(|v| v & 0x100 != 0)
    });
    if !secure_open {
        out.push(problem(
            Rule::Security,
            "HKR,,DeviceCharacteristics must be REG_DWORD with 0x100",
        ));
    }
}

fn parse_u32(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The driver binary the packaging tools produce for a driver package
/// called `package`: cargo-make's rust-driver-makefile.toml and cargo-wdk
/// both use the package name with `-` replaced by `_`, plus `.sys`.
#[must_use]
pub fn driver_binary(package: &str) -> String {
    format!("{}.sys", package.replace('-', "_"))
}

/// The `.inx` file name the packaging tools look for in the package's
/// directory.
#[must_use]
pub fn driver_inx(package: &str) -> String {
    format!("{}.inx", package.replace('-', "_"))
}

/// The first Windows build that runs drivers built for KMDF 1.`minor`
/// (learn.microsoft.com, "KMDF version history", column "Drivers using this
/// KMDF version run on"), for the versions this project can target.
#[must_use]
pub const fn kmdf_min_build(minor: u32) -> Option<u32> {
    match minor {
        // Windows 10, version 2004.
        31 => Some(19041),
        // Windows Server 2022 (20348) and Windows 11 21H2 (22000) and later.
        33 => Some(20348),
        _ => None,
    }
}

/// The build number of a TargetOSVersion decoration
/// (`NT$ARCH$.10.0...20348`: architecture, major, minor, product type,
/// suite mask, build), if it has one.
#[must_use]
pub fn decoration_build(decoration: &str) -> Option<u32> {
    let parts: Vec<&str> = decoration.split('.').collect();
    match parts.as_slice() {
        [_, _, _, _, _, build] => build.parse().ok(),
        _ => None,
    }
}

/// The INF's models decoration must carry a build number no lower than the
/// first build that runs KMDF 1.`kmdf_minor`: otherwise Windows installs the
/// driver where the framework refuses to load it, instead of finding no
/// matching model.
#[must_use]
pub fn check_inf_os_version(text: &str, kmdf_minor: u32) -> Vec<Problem> {
    let inf = match Inf::parse(text) {
        Ok(inf) => inf,
        Err(e) => return vec![problem(Rule::Syntax, e.to_string())],
    };
    let Some(minimum) = kmdf_min_build(kmdf_minor) else {
        return vec![problem(
            Rule::OsVersion,
            format!("no known minimum Windows build for KMDF 1.{kmdf_minor}"),
        )];
    };
    let decorations: Vec<String> = inf
        .section("Manufacturer")
        .and_then(|m| m.entries().next().map(|e| fields(&e.value)))
        .map(|parts| parts.into_iter().skip(1).collect())
        .unwrap_or_default();
    if decorations.is_empty() {
        return vec![problem(
            Rule::OsVersion,
            "[Manufacturer] has no TargetOSVersion decoration",
        )];
    }
    decorations
        .iter()
        .filter(|d| decoration_build(d).is_none_or(|build| build < minimum))
        .map(|d| {
            problem(
                Rule::OsVersion,
                format!(
                    "decoration {d} installs below build {minimum}, the first that runs \
                     KMDF 1.{kmdf_minor}"
                ),
            )
        })
        .collect()
}
