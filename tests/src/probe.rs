//! The probe rules as one table of cases, run against every backend.
//!
//! `usercap::space` fixes the user-mode probe rules and their order; each
//! backend (`SimSpace`, `HostSpace`, `SehSpace`) must give the same answer
//! for the same range. Rather than each backend's tests spelling the cases
//! again, they all run [`PROBE_CASES`] with [`run_probe_cases`] over a
//! layout of their own memory ([`Layout`]): one accessible page fenced on
//! both sides by inaccessible memory, and the space's probe limit.
//!
//! Addresses are given relative to what every backend has ([`At`]), so the
//! table reads the same for simulated and real memory.

use usercap::{AddressSpace, CaptureError};

/// Where a case's range starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// An absolute address.
    Abs(usize),
    /// Relative to the space's probe limit.
    FromLimit(isize),
    /// Relative to the first byte of the accessible page.
    FromPage(isize),
    /// Relative to the end of the accessible page.
    FromPageEnd(isize),
}

/// What a case does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `AddressSpace::read` of `len` bytes.
    Read,
    /// `AddressSpace::write` of `len` bytes.
    Write,
}

/// One probe case.
#[derive(Clone, Copy, Debug)]
pub struct ProbeCase {
    /// Which rule it pins, and where.
    pub why: &'static str,
    /// The start of the range.
    pub at: At,
    /// Its length (never 0: zero lengths never reach a backend).
    pub len: usize,
    /// The alignment asked for.
    pub align: usize,
    /// A probe limit this many bytes past the page's start, for the cases
    /// that need the limit to fall on memory that is really there.
    pub limit_in_page: Option<usize>,
    /// Read or write.
    pub access: Access,
    /// The answer every backend must give.
    pub expect: Result<(), CaptureError>,
    /// The range passes the probe and the answer comes from the memory
    /// not being there (`AccessViolation` from the fault guard). A layout
    /// whose process has memory at such an address (Wine maps pages at
    /// 64 KiB and just below `MmUserProbeAddress`) skips these cases.
    pub faults_after_probe: bool,
}

const AV: Result<(), CaptureError> = Err(CaptureError::AccessViolation);
const MISALIGNED: Result<(), CaptureError> = Err(CaptureError::Misaligned);

const fn case(
    why: &'static str,
    at: At,
    len: usize,
    align: usize,
    expect: Result<(), CaptureError>,
) -> ProbeCase {
    ProbeCase {
        why,
        at,
        len,
        align,
        limit_in_page: None,
        access: Access::Read,
        expect,
        faults_after_probe: false,
    }
}

const fn after_probe(case: ProbeCase) -> ProbeCase {
    ProbeCase {
        faults_after_probe: true,
        ..case
    }
}

const fn limited(case: ProbeCase, limit: usize, access: Access) -> ProbeCase {
    ProbeCase {
        limit_in_page: Some(limit),
        access,
        ..case
    }
}

/// The page every layout provides, in bytes (the table's page-relative
/// cases assume at least this much).
pub const PAGE: usize = 4096;

/// The probe rules in order and at their boundaries. Each case names a
/// range that is unmapped or mapped, so the error shows which rule fired.
pub const PROBE_CASES: &[ProbeCase] = &[
    // Rule 2: below 64 KiB, null included; it wins over misalignment.
    case("rule 2: null", At::Abs(0), 1, 1, AV),
    case(
        "rule 2: the last byte below 64 KiB",
        At::Abs(0xFFFF),
        1,
        1,
        AV,
    ),
    case("rule 2 before rule 3", At::Abs(0xFFFD), 4, 4, AV),
    after_probe(case(
        "rule 2: 64 KiB itself passes, then is not user memory",
        At::Abs(0x1_0000),
        4,
        4,
        AV,
    )),
    // Rule 3: misaligned without touching memory, even on an unmapped
    // address and on a guard page.
    case(
        "rule 3 on an unmapped address",
        At::Abs(0x1_0001),
        4,
        4,
        MISALIGNED,
    ),
    case("rule 3 on the fence", At::FromPage(-6), 4, 4, MISALIGNED),
    case("rule 3 on mapped memory", At::FromPage(2), 8, 8, MISALIGNED),
    case(
        "a bad alignment is the caller's bug",
        At::FromPage(2),
        8,
        3,
        Err(CaptureError::Invalid),
    ),
    // Rule 4 at the space's limit: ending at it passes the probe (and then
    // finds no memory), one byte more does not; misalignment still wins.
    after_probe(case(
        "rule 4: ending at the limit",
        At::FromLimit(-8),
        8,
        8,
        AV,
    )),
    case(
        "rule 4: one byte past the limit",
        At::FromLimit(-7),
        8,
        1,
        AV,
    ),
    case("rule 3 before rule 4", At::FromLimit(-7), 8, 8, MISALIGNED),
    case("rule 4: wraps", At::Abs(usize::MAX - 3), 8, 1, AV),
    case("rule 4: wraps, aligned", At::Abs(usize::MAX - 1), 8, 2, AV),
    // Rule 4 on mapped memory: a probe limit 64 bytes into the page.
    limited(
        case(
            "rule 4: ends at a limit inside the page",
            At::FromPage(56),
            8,
            8,
            Ok(()),
        ),
        64,
        Access::Read,
    ),
    limited(
        case(
            "rule 4: mapped, but past the limit",
            At::FromPage(57),
            8,
            1,
            AV,
        ),
        64,
        Access::Read,
    ),
    limited(
        case("rule 4: starts at the limit", At::FromPage(64), 1, 1, AV),
        64,
        Access::Read,
    ),
    limited(
        case(
            "rule 3 before rule 4, mapped",
            At::FromPage(57),
            8,
            8,
            MISALIGNED,
        ),
        64,
        Access::Read,
    ),
    limited(
        case("rule 4 for writes", At::FromPage(60), 8, 1, AV),
        64,
        Access::Write,
    ),
    limited(
        case(
            "a write ending at the limit",
            At::FromPage(56),
            8,
            8,
            Ok(()),
        ),
        64,
        Access::Write,
    ),
    // Rule 6: inside the limit, the fault guard decides, exactly at the
    // page's edges.
    case("rule 6: the whole page", At::FromPage(0), PAGE, 1, Ok(())),
    case(
        "rule 6: one byte before the page",
        At::FromPage(-1),
        2,
        1,
        AV,
    ),
    case(
        "rule 6: one byte past the page",
        At::FromPageEnd(-1),
        2,
        1,
        AV,
    ),
    case(
        "rule 6: the last 8 bytes",
        At::FromPageEnd(-8),
        8,
        8,
        Ok(()),
    ),
    case(
        "rule 6: a write past the page",
        At::FromPageEnd(-4),
        8,
        1,
        AV,
    ),
];

/// Where a backend's memory lies, for [`run_probe_cases`].
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The first byte of one accessible, read-write page of at least
    /// [`PAGE`] bytes, with inaccessible memory on both sides.
    pub page: usize,
    /// Its length.
    pub page_len: usize,
    /// The probe limit of the spaces `space_for` builds with `None`.
    pub limit: usize,
}

impl ProbeCase {
    /// The case's start address in `layout`.
    #[must_use]
    pub fn address(&self, layout: &Layout) -> usize {
        match self.at {
            At::Abs(addr) => addr,
            At::FromLimit(d) => layout.limit.wrapping_add_signed(d),
            At::FromPage(d) => layout.page.wrapping_add_signed(d),
            At::FromPageEnd(d) => (layout.page + layout.page_len).wrapping_add_signed(d),
        }
    }
}

/// Runs every case of [`PROBE_CASES`] against the spaces `space_for`
/// builds: `space_for(None)` is the backend's user-mode space with its own
/// limit, `space_for(Some(limit))` the same with the probe limit lowered
/// to `limit`. Returns one line per case whose answer differs (empty when
/// the backend follows the rules).
pub fn run_probe_cases<S: AddressSpace>(
    layout: &Layout,
    space_for: impl Fn(Option<usize>) -> S,
) -> Vec<String> {
    run_cases(PROBE_CASES, layout, space_for)
}

/// [`run_probe_cases`] over any table (the tests use a doctored one).
pub fn run_cases<S: AddressSpace>(
    cases: &[ProbeCase],
    layout: &Layout,
    space_for: impl Fn(Option<usize>) -> S,
) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let addr = case.address(layout);
        let space = space_for(case.limit_in_page.map(|l| layout.page + l));
        let got = match case.access {
            Access::Read => {
                let mut buf = vec![0; case.len];
                space.read(addr, &mut buf, case.align)
            }
            Access::Write => space.write(addr, &vec![0x42; case.len], case.align),
        };
        if got != case.expect {
            failures.push(format!(
                "{}: {:?} of {} bytes at {addr:#x} (align {}): got {got:?}, want {:?}",
                case.why, case.access, case.len, case.align, case.expect
            ));
        }
    }
    failures
}
