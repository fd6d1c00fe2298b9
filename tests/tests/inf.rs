//! The driver's INF agrees with usercap-protocol and with what the build
//! produces, and every check can fail.

use std::path::PathBuf;

use usercap_protocol::{DEVICE_SDDL, HARDWARE_ID, SERVICE_NAME};
use usercap_tests::{
    Expected, Problem, Rule, check_driver_manifest, check_inf, check_inf_os_version,
    decoration_build, driver_binary, driver_inx, kmdf_min_build,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The driver package name, from driver/Cargo.toml.
fn package() -> String {
    match check_driver_manifest(&read("driver/Cargo.toml")) {
        Ok(manifest) => manifest.package,
        Err(problems) => panic!("driver/Cargo.toml: {problems:#?}"),
    }
}

/// The driver's target KMDF minor version, from driver/Cargo.toml.
fn kmdf_minor() -> u32 {
    match check_driver_manifest(&read("driver/Cargo.toml")) {
        Ok(manifest) => manifest.kmdf_minor,
        Err(problems) => panic!("driver/Cargo.toml: {problems:#?}"),
    }
}

/// The .inx the packaging tools pick up: `driver/<package_with_underscores>.inx`.
fn inx() -> String {
    read(&format!("driver/{}", driver_inx(&package())))
}

fn check(text: &str) -> Vec<Problem> {
    let binary = driver_binary(&package());
    let expected = Expected {
        hardware_id: HARDWARE_ID,
        service_name: SERVICE_NAME,
        sddl: DEVICE_SDDL,
        binary: &binary,
    };
    check_inf(text, &expected)
}

/// `text` with `from` replaced by `to`, which must occur.
fn mutate(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the INF no longer contains {from:?}; update this test"
    );
    text.replacen(from, to, 1)
}

/// Asserts the mutated INF breaks `rule`.
fn fails(rule: Rule, from: &str, to: &str) {
    let problems = check(&mutate(&inx(), from, to));
    assert!(
        problems.iter().any(|p| p.rule == rule),
        "replacing {from:?} by {to:?} should break {rule:?}; got {problems:#?}"
    );
}

#[test]
fn the_inf_passes_every_check() {
    let problems = check(&inx());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_binary_is_named_after_the_package() {
    assert_eq!(package(), "usercap-driver");
    assert_eq!(driver_binary(&package()), "usercap_driver.sys");
    assert!(inx().contains("%13%\\usercap_driver.sys"));
}

#[test]
fn a_syntax_error_is_reported() {
    fails(Rule::Syntax, "[Version]", "[Version");
}

#[test]
fn missing_sections_are_reported() {
    fails(Rule::MissingSection, "[Manufacturer]", "[Manufacturers]");
    fails(
        Rule::MissingSection,
        "[UserCapModels.NT$ARCH$.10.0...20348]",
        "[OtherModels.NT$ARCH$.10.0...20348]",
    );
    fails(
        Rule::MissingSection,
        "[UserCap_Device.NT]",
        "[UserCap_Device.NTx86]",
    );
    fails(
        Rule::MissingSection,
        "[UserCap_Device.NT.Services]",
        "[UserCap_Device.NT.Service]",
    );
    fails(
        Rule::MissingSection,
        "[UserCap_Device.NT.Wdf]",
        "[UserCap_Device.NT.Wdfx]",
    );
    fails(
        Rule::MissingSection,
        "[UserCap_Device.NT.HW]",
        "[UserCap_Device.NT.HWx]",
    );
    fails(Rule::MissingSection, "[Strings]", "[Strings.0409]");
    fails(Rule::MissingSection, "[Version]", "[Versions]");
}

#[test]
fn every_token_must_resolve() {
    fails(
        Rule::UnresolvedToken,
        "%UserCap.DeviceDesc%",
        "%UserCap.DeviceDescription%",
    );
    fails(
        Rule::UnresolvedToken,
        "ProviderName           =",
        "ProviderNam            =",
    );
}

#[test]
fn pnp_lockdown_is_required() {
    fails(Rule::PnpLockdown, "PnpLockdown = 1", "PnpLockdown = 0");
    fails(Rule::PnpLockdown, "PnpLockdown = 1", "");
}

#[test]
fn the_class_is_system_without_class_install() {
    fails(Rule::Class, "Class       = System", "Class       = Sample");
    fails(
        Rule::Class,
        "{4d36e97d-e325-11ce-bfc1-08002be10318}",
        "{78A1C341-4539-11d3-B88D-00C04FAD5171}",
    );
    fails(
        Rule::Class,
        "[DestinationDirs]",
        "[ClassInstall32]\r\nAddReg = x\r\n\r\n[DestinationDirs]",
    );
}

#[test]
fn version_entries_are_required() {
    fails(Rule::VersionEntry, "CatalogFile = usercap_driver.cat", "");
    fails(Rule::VersionEntry, "DriverVer   = ; set by stampinf", "");
    fails(Rule::VersionEntry, "Provider    = %ProviderName%", "");
}

#[test]
fn the_hardware_id_is_the_protocols() {
    fails(
        Rule::HardwareId,
        "UserCap_Device, Root\\UserCap",
        "UserCap_Device, Root\\UserCapture",
    );
    fails(
        Rule::HardwareId,
        "UserCap_Device, Root\\UserCap",
        "UserCap_Device, Root\\UserCap\r\n%UserCap.DeviceDesc% = UserCap_Device, Root\\Other",
    );
}

#[test]
fn the_service_is_the_protocols() {
    fails(
        Rule::ServiceName,
        "AddService = usercap,",
        "AddService = usercap2,",
    );
    fails(
        Rule::ServiceName,
        "KmdfService = usercap,",
        "KmdfService = other,",
    );
}

#[test]
fn the_service_is_a_demand_start_kernel_driver() {
    fails(
        Rule::ServiceConfig,
        "StartType      = 3",
        "StartType      = 1",
    );
    fails(
        Rule::ServiceConfig,
        "ServiceType    = 1",
        "ServiceType    = 2",
    );
    fails(
        Rule::ServiceConfig,
        "ErrorControl   = 1",
        "ErrorControl   = 3",
    );
    fails(Rule::ServiceConfig, "%SPSVCINST_ASSOCSERVICE%", "0");
}

#[test]
fn the_binary_is_the_one_the_build_produces() {
    fails(
        Rule::Binary,
        "usercap_driver.sys = 1,,",
        "usercap.sys = 1,,",
    );
    fails(
        Rule::Binary,
        "[UserCap_CopyFiles]\r\nusercap_driver.sys",
        "[UserCap_CopyFiles]\r\nusercap.sys",
    );
    fails(
        Rule::Binary,
        "ServiceBinary  = %13%\\usercap_driver.sys",
        "ServiceBinary  = %12%\\usercap_driver.sys",
    );
    fails(Rule::Binary, "DefaultDestDir = 13", "DefaultDestDir = 12");
}

#[test]
fn the_security_is_the_protocols_sddl() {
    fails(
        Rule::Security,
        "(A;;GA;;;BA)\"",
        "(A;;GA;;;BA)(A;;GR;;;WD)\"",
    );
    fails(
        Rule::Security,
        "AddReg = UserCap_Security_AddReg",
        "AddReg = Nothing",
    );
    fails(
        Rule::Security,
        "HKR,,DeviceCharacteristics,0x10001,0x100",
        "HKR,,DeviceCharacteristics,0x10001,0x0",
    );
}

#[test]
fn kmdf_takes_the_stamped_version() {
    fails(
        Rule::Kmdf,
        "KmdfLibraryVersion = $KMDFVERSION$",
        "KmdfLibraryVersion = 1.15",
    );
    fails(
        Rule::Kmdf,
        "KmdfService = usercap, UserCap_WdfSection",
        "KmdfService = usercap, Missing",
    );
}

#[test]
fn the_inf_installs_only_where_its_kmdf_runs() {
    assert_eq!(kmdf_minor(), 33);
    assert_eq!(check_inf_os_version(&inx(), kmdf_minor()), []);
    // KMDF 1.31 (Windows 10 2004) runs on more builds; still fine.
    assert_eq!(check_inf_os_version(&inx(), 31), []);
    assert_eq!(decoration_build("NT$ARCH$.10.0...20348"), Some(20348));
    assert_eq!(decoration_build("NTamd64"), None);
    assert_eq!(kmdf_min_build(33), Some(20348));
}

#[test]
fn a_decoration_that_reaches_windows_10_is_caught() {
    // The decoration as it was: Windows 10 1709 and later, where KMDF 1.33
    // does not load.
    let windows_10 = inx().replace("10.0...20348", "10.0...16299");
    assert_ne!(
        windows_10,
        inx(),
        "the INF no longer has the 20348 decoration"
    );
    let problems = check_inf_os_version(&windows_10, kmdf_minor());
    assert!(
        problems.iter().any(|p| p.rule == Rule::OsVersion),
        "{problems:#?}"
    );
    // The rest of the INF still parses and passes with it: only this check
    // knows the KMDF version.
    assert_eq!(check(&windows_10), []);
    let undecorated = inx().replace("UserCapModels,NT$ARCH$.10.0...20348", "UserCapModels");
    assert!(
        check_inf_os_version(&undecorated, kmdf_minor())
            .iter()
            .any(|p| p.rule == Rule::OsVersion)
    );
    assert!(
        check_inf_os_version(&inx(), 29)
            .iter()
            .any(|p| p.rule == Rule::OsVersion),
        "an unknown KMDF version is reported, not passed"
    );
}
