//! Static checks of the driver shell's Rust source.
//!
//! The shell (`driver/src`, Windows only) cannot be compiled or linted on
//! Linux: wdk-build refuses the host. These checks read its text for the
//! mistakes that the Windows build would reject and that a reader can miss:
//!
//! - [`check_wdf_calls`]: no argument of `call_unsafe_wdf_function_binding!`
//!   is a reference (`&x`, `&mut x`) where the DDI takes a raw pointer
//!   (clippy's `borrow_as_ptr`, denied under `-D warnings`): `&raw mut x` /
//!   `&raw const x` instead; and every `ULONG_PTR` parameter (a `u64` in the
//!   bindings) gets its value through the tested conversion
//!   (`plan::information`), never a `usize` as is (E0308).
//! - [`check_driver_entry`]: the `DriverEntry` export is `not(test)`, since
//!   wdk-sys's `test-stubs` export their own.
//! - [`check_documented_calls`]: docs/windows.md's appendix lists every
//!   WDF/WDK call the shell makes, and no WDF call it does not make.
//!
//! A parser this small can be fooled on purpose; it is written for the
//! shell's own style (one macro invocation per call, no commas inside string
//! literals), and the tests feed it broken copies of the real files.

use crate::{Problem, Rule, problem};

/// The macro through which the shell calls every WDF function.
const WDF_MACRO: &str = "call_unsafe_wdf_function_binding!(";

/// WDF functions with a `ULONG_PTR` parameter, by argument position (the
/// function name is argument 0), and the conversion its value must go
/// through.
const ULONG_PTR_PARAMETERS: [(&str, usize, &str); 1] =
    [("WdfRequestCompleteWithInformation", 3, "plan::information(")];

/// One `call_unsafe_wdf_function_binding!` invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WdfCall {
    /// The file it is in.
    pub file: String,
    /// Its 1-based line.
    pub line: usize,
    /// The WDF function (the macro's first argument).
    pub function: String,
    /// The arguments after the function, trimmed.
    pub args: Vec<String>,
}

/// `source` with `//` comments (doc comments included) blanked: kept as
/// spaces, so offsets and line numbers stay. String literals are left alone.
#[must_use]
pub fn without_line_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        match find_comment(line) {
            Some(at) => {
                out.push_str(&line[..at]);
                out.extend(
                    line[at..]
                        .chars()
                        .map(|c| if c == '\n' { '\n' } else { ' ' }),
                );
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The byte offset of a `//` comment in `line`, outside string literals.
fn find_comment(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits the text after an opening parenthesis into its top-level
/// arguments, up to the matching `)`; `None` if it is not closed.
fn split_args(text: &str) -> Option<Vec<String>> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut current = String::new();
    let mut args = Vec::new();
    for c in text.chars() {
        if in_string {
            current.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' if depth == 0 => {
                args.push(current.trim().to_owned());
                args.retain(|a| !a.is_empty());
                return Some(args);
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => args.push(core::mem::take(&mut current).trim().to_owned()),
            _ => current.push(c),
        }
    }
    None
}

/// Every `call_unsafe_wdf_function_binding!` invocation in `source`
/// (comments ignored).
#[must_use]
pub fn wdf_calls(file: &str, source: &str) -> Vec<WdfCall> {
    let code = without_line_comments(source);
    let mut calls = Vec::new();
    let mut rest = code.as_str();
    let mut offset = 0;
    while let Some(at) = rest.find(WDF_MACRO) {
        let start = offset + at;
        let after = start + WDF_MACRO.len();
        let line = code[..start].matches('\n').count() + 1;
        let args = split_args(&code[after..]).unwrap_or_default();
        if let Some((function, args)) = args.split_first() {
            calls.push(WdfCall {
                file: file.to_owned(),
                line,
                function: function.clone(),
                args: args.to_vec(),
            });
        }
        offset = after;
        rest = &code[after..];
    }
    calls
}

/// Whether an argument is a reference (`&x`, `&mut x`) rather than a raw
/// borrow. A reference to a `const` item (`&INTERFACE`) is allowed: a
/// constant is no place, `&raw const` cannot take it, and the reference is
/// to a promoted static.
fn is_reference(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('&') else {
        return false;
    };
    if rest.starts_with("raw ") {
        return false;
    }
    let is_constant = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    !is_constant
}

/// Checks every WDF call's arguments (see the module docs).
#[must_use]
pub fn check_wdf_calls(calls: &[WdfCall]) -> Vec<Problem> {
    let mut out = Vec::new();
    for call in calls {
        for arg in call.args.iter().filter(|a| is_reference(a)) {
            out.push(problem(
                Rule::ShellSource,
                format!(
                    "{}:{} {}: `{arg}` passes a reference where the DDI takes a raw pointer \
                     (clippy::borrow_as_ptr): use `&raw mut` / `&raw const`",
                    call.file, call.line, call.function
                ),
            ));
        }
        for (function, position, conversion) in ULONG_PTR_PARAMETERS {
            if call.function != function {
                continue;
            }
            let arg = call.args.get(position - 1).map_or("", String::as_str);
            if !arg.starts_with(conversion) {
                out.push(problem(
                    Rule::ShellSource,
                    format!(
                        "{}:{} {function}: argument {position} is a ULONG_PTR (u64 in the \
                         bindings); pass `{conversion}..)`, not `{arg}`",
                        call.file, call.line
                    ),
                ));
            }
        }
    }
    out
}

/// The names the shell imports from `wdk_sys::ntddk` (direct kernel
/// calls, as opposed to WDF calls through the function table).
#[must_use]
pub fn kernel_imports(source: &str) -> Vec<String> {
    let code = without_line_comments(source);
    let mut names = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("ntddk::") {
        rest = &rest[at + "ntddk::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            names.extend(
                group[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            );
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// The `DriverEntry` export must be `cfg_attr(not(test), ..)`: wdk-sys's
/// `test-stubs` (the driver's dev-dependency) export a `DriverEntry` of
/// their own, and the unit-test binary would not link with two.
#[must_use]
pub fn check_driver_entry(lib_rs: &str) -> Vec<Problem> {
    let code = without_line_comments(lib_rs);
    let gated = "#[cfg_attr(not(test), unsafe(export_name = \"DriverEntry\"))]";
    let exports = code.matches("export_name = \"DriverEntry\"").count();
    let gated_exports = code.matches(gated).count();
    let mut out = Vec::new();
    if exports != 1 || gated_exports != 1 {
        out.push(problem(
            Rule::ShellSource,
            format!(
                "{exports} DriverEntry export(s), {gated_exports} of them as `{gated}`: \
                 expected exactly one, gated"
            ),
        ));
    }
    out
}

/// The names in the first column of docs/windows.md's appendix table (the
/// section whose heading starts with "## Appendix").
#[must_use]
pub fn documented_calls(doc: &str) -> Vec<String> {
    let Some(start) = doc.find("\n## Appendix") else {
        return Vec::new();
    };
    let section = &doc[start + 1..];
    let end = section[1..].find("\n## ").map_or(section.len(), |e| e + 1);
    let mut names = Vec::new();
    for line in section[..end].lines() {
        let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) else {
            continue;
        };
        names.extend(
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
        );
    }
    names
}

/// Every call the shell makes (`called`: WDF functions and kernel imports)
/// has a row in the appendix, and every WDF function in the appendix is
/// called.
#[must_use]
pub fn check_documented_calls(called: &[String], doc: &str) -> Vec<Problem> {
    let documented = documented_calls(doc);
    let mut out = Vec::new();
    for name in called.iter().filter(|n| !documented.contains(n)) {
        out.push(problem(
            Rule::ShellSource,
            format!("the driver calls {name}, which docs/windows.md's appendix does not list"),
        ));
    }
    for name in documented
        .iter()
        .filter(|n| n.starts_with("Wdf") && !called.contains(n))
    {
        out.push(problem(
            Rule::ShellSource,
            format!("docs/windows.md's appendix lists {name}, which the driver does not call"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_at_top_level_commas_only() {
        let args = split_args("Wdf, f(a, b), [1, 2], \"x, y\", &raw mut z\n) rest").unwrap();
        assert_eq!(args, ["Wdf", "f(a, b)", "[1, 2]", "\"x, y\"", "&raw mut z"]);
        assert_eq!(split_args("never closed"), None);
    }

    #[test]
    fn comments_are_not_calls() {
        let source = "// call_unsafe_wdf_function_binding!(WdfX, &mut a)\n\
                      let s = \"//\"; call_unsafe_wdf_function_binding!(WdfY, b) // c\n";
        let calls = wdf_calls("f.rs", source);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function, "WdfY");
        assert_eq!(calls[0].line, 2);
        assert_eq!(calls[0].args, ["b"]);
    }

    #[test]
    fn references_and_constants() {
        assert!(is_reference("&mut x"));
        assert!(is_reference("&x"));
        assert!(is_reference("&self.handle"));
        assert!(!is_reference("&raw mut x"));
        assert!(!is_reference("&raw const x"));
        assert!(!is_reference("&INTERFACE"));
        assert!(!is_reference("x"));
    }

    #[test]
    fn kernel_imports_are_found_in_both_spellings() {
        let source = "use wdk_sys::{ntddk::KeGetCurrentIrql, NT_SUCCESS};\n\
                      use wdk_sys::ntddk::{DbgPrintEx, ExFreePool};\n\
                      // use wdk_sys::ntddk::Commented;\n";
        assert_eq!(
            kernel_imports(source),
            ["DbgPrintEx", "ExFreePool", "KeGetCurrentIrql"]
        );
    }
}
