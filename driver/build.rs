//! Build script of usercap-driver.
//!
//! On Windows it hands the build to `wdk_build`, which reads the
//! `[package.metadata.wdk.driver-model]` table, finds the WDK and emits the
//! kernel-driver linker arguments (`/DRIVER`, `/SUBSYSTEM:NATIVE`,
//! `/ENTRY:FxDriverEntry`, the KMDF libraries). It fails loudly, with a
//! `wdk_build::ConfigError`, if the static CRT is not enabled or no WDK is
//! found. Elsewhere there is nothing to configure: the crate compiles to its
//! portable part only.

#[cfg(windows)]
fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(windows))]
fn main() {}
