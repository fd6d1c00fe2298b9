//! The shared probe-rule table on `SimSpace`, and proof that the runner
//! catches a backend that gets the rules wrong.

use usercap::sim::{Perm, SimSpace};
use usercap::{AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, Mode};
use usercap_tests::probe::{Layout, PAGE, PROBE_CASES, run_probe_cases};

const USER: usize = 0x10_0000;

const LAYOUT: Layout = Layout {
    page: USER,
    page_len: PAGE,
    limit: DEFAULT_PROBE_LIMIT,
};

/// A fresh sim with one read-write page at `USER` and nothing around it.
fn sim(limit: Option<usize>) -> SimSpace {
    let space = match limit {
        None => SimSpace::new(),
        Some(limit) => SimSpace::new().with_probe_limit(limit),
    };
    space.map_zeroed(USER, PAGE, Perm::READ_WRITE).unwrap();
    space
}

#[test]
fn sim_space_follows_every_probe_case() {
    let failures = run_probe_cases(&LAYOUT, sim);
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(PROBE_CASES.len() >= 20);
}

/// A backend that checks the range before the alignment (rules 3 and 4
/// swapped), and one that lets the first 64 KiB through: the table
/// catches both.
#[test]
fn the_table_catches_a_backend_that_gets_the_order_or_a_rule_wrong() {
    struct Swapped(SimSpace);
    impl AddressSpace for Swapped {
        fn mode(&self) -> Mode {
            Mode::User
        }
        fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
            if src
                .checked_add(dst.len())
                .is_none_or(|e| e > DEFAULT_PROBE_LIMIT)
            {
                return Err(CaptureError::AccessViolation);
            }
            self.0.read(src, dst, align)
        }
        fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
            self.0.write(dst, src, align)
        }
    }
    struct NoLowGuard(SimSpace);
    impl AddressSpace for NoLowGuard {
        fn mode(&self) -> Mode {
            Mode::User
        }
        fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
            if src < 0x1_0000 && src.is_multiple_of(align) && src != 0 {
                return Ok(());
            }
            self.0.read(src, dst, align)
        }
        fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
            self.0.write(dst, src, align)
        }
    }
    let swapped = run_probe_cases(&LAYOUT, |limit| Swapped(sim(limit)));
    assert!(
        swapped.iter().any(|f| f.contains("rule 3 before rule 4")),
        "{swapped:#?}"
    );
    let low = run_probe_cases(&LAYOUT, |limit| NoLowGuard(sim(limit)));
    assert!(low.iter().any(|f| f.contains("rule 2")), "{low:#?}");
}
