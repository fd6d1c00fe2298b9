//! Citation checks for the reviewer documents: every test, scenario and
//! quoted line that docs/threat-model.md and docs/linux-comparison.md cite
//! must exist in the repository.
//!
//! - `` `path/to/file.rs::function` `` names a test (or any function): the
//!   file must exist and define `fn function`.
//! - `` `attack:name` `` names an attack scenario: `client/src/attack.rs`
//!   must declare `"name" =>`.
//! - `<!-- quote: path -->` before a fenced code block: every non-empty line
//!   of the block must appear, trimmed, among the file's trimmed lines.

use std::path::Path;

/// One citation that does not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dangling {
    /// What the document cites.
    pub citation: String,
    /// Why it does not resolve.
    pub why: String,
}

/// What a document cites, found by [`citations`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Citations {
    /// `(file, function)` pairs.
    pub functions: Vec<(String, String)>,
    /// Attack scenario names.
    pub scenarios: Vec<String>,
    /// `(file, quoted lines)`.
    pub quotes: Vec<(String, Vec<String>)>,
}

/// The backtick-delimited spans of a text.
fn code_spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// Finds the citations in a Markdown document.
#[must_use]
pub fn citations(doc: &str) -> Citations {
    let mut found = Citations::default();
    for span in code_spans(doc) {
        if let Some(name) = span.strip_prefix("attack:") {
            found.scenarios.push(name.to_owned());
        } else if let Some((file, function)) = span.split_once(".rs::") {
            let is_ident = !function.is_empty()
                && function
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_ident && !file.contains(' ') {
                found
                    .functions
                    .push((format!("{file}.rs"), function.to_owned()));
            }
        }
    }
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- quote:")
            .and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let _fence = lines.next();
        let quoted = lines
            .by_ref()
            .take_while(|l| !l.trim_start().starts_with("```"))
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        found.quotes.push((path.trim().to_owned(), quoted));
    }
    found
}

/// Resolves citations against the repository at `root`.
#[must_use]
pub fn check(root: &Path, found: &Citations) -> Vec<Dangling> {
    let read = |file: &str| std::fs::read_to_string(root.join(file)).ok();
    let mut dangling = Vec::new();
    for (file, function) in &found.functions {
        let defined = read(file).is_some_and(|source| {
            source.lines().any(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix("pub ").unwrap_or(l);
                l.strip_prefix("fn ")
                    .and_then(|rest| rest.strip_prefix(function.as_str()))
                    .is_some_and(|rest| rest.starts_with('(') || rest.starts_with('<'))
            })
        });
        if !defined {
            dangling.push(Dangling {
                citation: format!("{file}::{function}"),
                why: "no such function".into(),
            });
        }
    }
    let attack = read("client/src/attack.rs").unwrap_or_default();
    for name in &found.scenarios {
        if !attack.contains(&format!("\"{name}\" =>")) {
            dangling.push(Dangling {
                citation: format!("attack:{name}"),
                why: "no such scenario".into(),
            });
        }
    }
    for (file, quoted) in &found.quotes {
        let Some(source) = read(file) else {
            dangling.push(Dangling {
                citation: file.clone(),
                why: "quoted file does not exist".into(),
            });
            continue;
        };
        let lines: Vec<&str> = source.lines().map(str::trim).collect();
        for q in quoted {
            if !lines.contains(&q.as_str()) {
                dangling.push(Dangling {
                    citation: format!("{file}: {q}"),
                    why: "quoted line not in the file".into(),
                });
            }
        }
    }
    dangling
}
