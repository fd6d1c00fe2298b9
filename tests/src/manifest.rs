//! Rules for the driver crate's `Cargo.toml`.

use toml::{Table, Value};

use crate::{Problem, Rule, problem};

/// What the driver manifest says about the build output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverManifest {
    /// `package.name`.
    pub package: String,
    /// `target-kmdf-version-minor`.
    pub kmdf_minor: u32,
}

/// The crates of microsoft/windows-drivers-rs: they do not build on a
/// non-Windows host, so they must only ever be Windows-target dependencies.
const WDK_CRATES: [&str; 5] = ["wdk", "wdk-sys", "wdk-build", "wdk-alloc", "wdk-panic"];

/// The `cfg` spellings that select Windows targets.
const WINDOWS_CFGS: [&str; 2] = ["cfg(windows)", "cfg(target_os = \"windows\")"];

fn get<'a>(table: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = table.get(*first)?;
    for key in rest {
        value = value.as_table()?.get(*key)?;
    }
    Some(value)
}

/// Checks the driver crate's manifest: KMDF 1.33 metadata, a `cdylib` whose
/// name is the package's (the packaging tools ignore `[lib] name`), the WDK
/// crates only under Windows-target tables, wdk-build as a Windows
/// build-dependency.
///
/// # Errors
/// Every broken rule, as [`Problem`]s with [`Rule::Manifest`] (or
/// [`Rule::Syntax`] if the text is not TOML).
pub fn check_driver_manifest(text: &str) -> Result<DriverManifest, Vec<Problem>> {
    let table: Table = match text.parse() {
        Ok(table) => table,
        Err(e) => return Err(vec![problem(Rule::Syntax, e.to_string())]),
    };
    let mut out = Vec::new();
    let bad = |out: &mut Vec<Problem>, detail: String| out.push(problem(Rule::Manifest, detail));

    let package = get(&table, &["package", "name"])
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if package.is_empty() {
        bad(&mut out, "package.name missing".into());
    }

    let model = ["package", "metadata", "wdk", "driver-model"];
    let field = |key: &str| get(&table, &[model[0], model[1], model[2], model[3], key]);
    if field("driver-type").and_then(Value::as_str) != Some("KMDF") {
        bad(
            &mut out,
            format!(
                "driver-type = {:?}, expected \"KMDF\"",
                field("driver-type")
            ),
        );
    }
    if field("kmdf-version-major").and_then(Value::as_integer) != Some(1) {
        bad(
            &mut out,
            format!(
                "kmdf-version-major = {:?}, expected 1",
                field("kmdf-version-major")
            ),
        );
    }
    if field("target-kmdf-version-minor").and_then(Value::as_integer) != Some(33) {
        bad(
            &mut out,
            format!(
                "target-kmdf-version-minor = {:?}, expected 33",
                field("target-kmdf-version-minor")
            ),
        );
    }

    let crate_types: Vec<&str> = get(&table, &["lib", "crate-type"])
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if crate_types != ["cdylib"] {
        bad(
            &mut out,
            format!("lib.crate-type = {crate_types:?}, expected [\"cdylib\"]"),
        );
    }
    if let Some(name) = get(&table, &["lib", "name"]).and_then(Value::as_str)
        && name != package.replace('-', "_")
    {
        bad(
            &mut out,
            format!(
                "lib.name = {name:?}: cargo-make and cargo-wdk look for the package name's binary"
            ),
        );
    }

    check_wdk_dependencies(&table, &mut out);

    if out.is_empty() {
        let kmdf_minor = field("target-kmdf-version-minor")
            .and_then(Value::as_integer)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or_default();
        Ok(DriverManifest {
            package,
            kmdf_minor,
        })
    } else {
        Err(out)
    }
}

/// The WDK crates appear only in Windows-target tables, and all of them that
/// the driver needs are there.
fn check_wdk_dependencies(table: &Table, out: &mut Vec<Problem>) {
    let bad = |out: &mut Vec<Problem>, detail: String| out.push(problem(Rule::Manifest, detail));
    for kind in ["dependencies", "build-dependencies", "dev-dependencies"] {
        if let Some(deps) = table.get(kind).and_then(Value::as_table) {
            for name in WDK_CRATES.iter().filter(|c| deps.contains_key(**c)) {
                bad(
                    out,
                    format!("{name} in [{kind}]: it must be under a cfg(windows) target table"),
                );
            }
        }
    }
    let targets = table.get("target").and_then(Value::as_table);
    for (cfg, target) in targets.into_iter().flatten() {
        let Some(target) = target.as_table() else {
            continue;
        };
        for (kind, deps) in target {
            let Some(deps) = deps.as_table() else {
                continue;
            };
            let wdk: Vec<&str> = WDK_CRATES
                .iter()
                .copied()
                .filter(|c| deps.contains_key(*c))
                .collect();
            if !wdk.is_empty() && !WINDOWS_CFGS.contains(&cfg.as_str()) {
                bad(
                    out,
                    format!("{wdk:?} in [target.'{cfg}'.{kind}]: not a Windows-only table"),
                );
            }
        }
    }
    let windows_has = |kind: &str, name: &str| {
        WINDOWS_CFGS
            .iter()
            .any(|cfg| get(table, &["target", cfg, kind, name]).is_some())
    };
    // The crates the driver's code uses. Not `wdk`: the driver traces with
    // wdk-sys's DbgPrintEx, and wdk-panic depends on wdk itself
    // (tests/tests/driver.rs checks every declared WDK crate is used).
    for name in ["wdk-sys", "wdk-alloc", "wdk-panic"] {
        if !windows_has("dependencies", name) {
            bad(out, format!("{name} is not a cfg(windows) dependency"));
        }
    }
    if !windows_has("build-dependencies", "wdk-build") {
        bad(
            out,
            "wdk-build is not a cfg(windows) build-dependency".into(),
        );
    }
}
