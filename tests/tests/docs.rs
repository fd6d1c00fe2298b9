//! The reviewer documents cite only tests, scenarios and code that exist.

use std::path::{Path, PathBuf};

use usercap_tests::docs::{Citations, check, citations};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn checked(doc: &str, min_functions: usize, min_scenarios: usize, min_quotes: usize) {
    let text = std::fs::read_to_string(root().join("docs").join(doc)).expect("document exists");
    let found = citations(&text);
    assert!(
        found.functions.len() >= min_functions,
        "{doc} cites {} tests",
        found.functions.len()
    );
    assert!(
        found.scenarios.len() >= min_scenarios,
        "{doc} cites {} scenarios",
        found.scenarios.len()
    );
    assert!(
        found.quotes.len() >= min_quotes,
        "{doc} quotes {} blocks",
        found.quotes.len()
    );
    let dangling = check(&root(), &found);
    assert!(dangling.is_empty(), "{doc}: {dangling:#?}");
}

#[test]
fn the_threat_model_cites_only_what_exists() {
    checked("threat-model.md", 30, 20, 0);
}

#[test]
fn the_linux_comparison_cites_and_quotes_only_what_exists() {
    checked("linux-comparison.md", 8, 1, 3);
}

#[test]
fn the_adopting_guide_quotes_only_what_exists() {
    checked("adopting.md", 0, 0, 2);
}

#[test]
fn the_checker_catches_a_dangling_citation() {
    let doc = "See `device/tests/safety.rs::no_such_test`, `attack:no-such-scenario`, \
               `capture/tests/api.rs::too_large_at_cap_plus_one` and `attack:race-sum-count`.\n\
               <!-- quote: device/src/lib.rs -->\n```rust\nlet this_line = \"is not in the file\";\n```\n";
    let found = citations(doc);
    assert_eq!(found.functions.len(), 2);
    assert_eq!(found.scenarios.len(), 2);
    assert_eq!(
        found.quotes,
        vec![(
            "device/src/lib.rs".into(),
            vec!["let this_line = \"is not in the file\";".into()]
        )]
    );
    let dangling = check(&root(), &found);
    let cited: Vec<_> = dangling.iter().map(|d| d.citation.as_str()).collect();
    assert_eq!(
        cited,
        [
            "device/tests/safety.rs::no_such_test",
            "attack:no-such-scenario",
            "device/src/lib.rs: let this_line = \"is not in the file\";"
        ]
    );
    assert_eq!(check(&root(), &Citations::default()), vec![]);
}
