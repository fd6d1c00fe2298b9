//! A transport that cannot say where the device's kernel memory is (the
//! `windows` transport: user mode learns no kernel address of usercap.sys)
//! does not run the scenarios that aim at it: they are SKIP, counted
//! apart, neither passed nor failed.
#![cfg(any(unix, all(windows, target_arch = "x86_64")))]

use usercap_client::attack::{self, Options};
use usercap_client::sim::SimTransport;
use usercap_client::transport::{Call, Error, Outcome, Transport};

/// The simulated device behind a transport that knows no kernel address.
struct Blind(SimTransport);

impl Transport for Blind {
    fn name(&self) -> &'static str {
        "blind"
    }
    fn call(&self, call: &Call) -> Result<Outcome, Error> {
        self.0.call(call)
    }
}

const AIMED: [&str; 3] = [
    "echo-from-device-object",
    "echo-from-own-system-buffer",
    "sum-values-at-other-requests-pool-copy",
];

#[test]
fn scenarios_a_transport_cannot_aim_are_skipped_not_passed() {
    let blind = Blind(SimTransport::new());
    let options = Options {
        filter: Some("-o".into()),
        ..Options::default()
    };
    let results = attack::run_suite(&blind, &options);
    for name in AIMED {
        let row = results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} ran"));
        assert!(row.not_run, "{name}: {}", row.detail);
    }
    let mut out = Vec::new();
    let code = attack::run(&blind, &options, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{text}");
    let skipped = text.lines().filter(|l| l.starts_with("SKIP")).count();
    assert_eq!(skipped, AIMED.len(), "{text}");
    assert!(text.contains("3 not run: the blind transport cannot aim them"));
    let summary = text.lines().last().unwrap();
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(passed + AIMED.len(), results.len(), "{summary}");
    assert!(summary.ends_with("passed, 0 failed"));

    // On the simulated device itself they run, and pass.
    let sim = SimTransport::new();
    for row in attack::run_suite(&sim, &options) {
        assert!(!row.not_run, "{}: {}", row.name, row.detail);
        if AIMED.contains(&row.name) {
            assert!(row.passed, "{}: {}", row.name, row.detail);
        }
    }
}
