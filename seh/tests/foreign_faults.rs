//! Faults that are not ours must behave as if the scope tables were not
//! there: the process dies with the exception code, as without usercap.
//! Each scenario re-runs this test binary with `SEH_SCENARIO` set, so the
//! child dies alone; the parent checks how it died. The same scenarios as
//! `usercap-host`'s `host/tests/subprocess.rs`, on the Windows mechanism.
#![cfg(all(windows, target_arch = "x86_64"))]

use std::process::{Command, Output};

mod common;

use common::{Fence, Fenced};
use usercap_seh::STATUS_ACCESS_VIOLATION;

const VAR: &str = "SEH_SCENARIO";
/// STATUS_ILLEGAL_INSTRUCTION, what `ud2` raises.
const STATUS_ILLEGAL_INSTRUCTION: u32 = 0xC000_001D;

// Two routines with the same handler and filter as the crate's: each has
// one scope, and an access just outside it.
//
// usercap_test_outside(rcx = good, rdx = bad): the scope covers only the
// load from rcx; the load from rdx is the instruction at the scope's end
// (EndAddress is exclusive).
// usercap_test_refused(): the scope covers a `ud2`, which raises
// STATUS_ILLEGAL_INSTRUCTION, a code the filter refuses.
core::arch::global_asm!(
    r#"
    .text
    .def usercap_test_outside
    .scl 2
    .type 32
    .endef
    .globl usercap_test_outside
    .p2align 4
usercap_test_outside:
    .seh_proc usercap_test_outside
    .seh_handler __C_specific_handler, @except
    push rsi
    .seh_pushreg rsi
    .seh_endprologue
.Loutside_begin:
    movzx eax, byte ptr [rcx]
.Loutside_end:
    movzx eax, byte ptr [rdx]
    pop rsi
    ret
.Loutside_target:
    mov eax, 0xDEAD
    pop rsi
    ret
    .seh_handlerdata
    .long 1
    .rva .Loutside_begin
    .rva .Loutside_end
    .rva usercap_seh_filter
    .rva .Loutside_target
    .text
    .seh_endproc

    .def usercap_test_refused
    .scl 2
    .type 32
    .endef
    .globl usercap_test_refused
    .p2align 4
usercap_test_refused:
    .seh_proc usercap_test_refused
    .seh_handler __C_specific_handler, @except
    push rsi
    .seh_pushreg rsi
    .seh_endprologue
.Lrefused_begin:
    ud2
.Lrefused_end:
    pop rsi
    ret
.Lrefused_target:
    mov eax, 0xDEAD
    pop rsi
    ret
    .seh_handlerdata
    .long 1
    .rva .Lrefused_begin
    .rva .Lrefused_end
    .rva usercap_seh_filter
    .rva .Lrefused_target
    .text
    .seh_endproc
    "#
);

// SAFETY: the two test routines above (Windows x64 ABI), and the crate's
// copy routine, called here with the signature it is defined with
// (`seh/src/guarded/routines.rs`).
unsafe extern "system" {
    fn usercap_test_outside(good: *const u8, bad: *const u8) -> u32;
    fn usercap_test_refused() -> u32;
    fn usercap_seh_copy_from(
        fault: *mut [u64; 2],
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> usize;
}

/// The child side: does nothing unless `SEH_SCENARIO` is set.
#[test]
fn scenario_child() {
    let Ok(scenario) = std::env::var(VAR) else {
        return;
    };
    let fenced = Fenced::new(1, Fence::NoAccess);
    prove_the_guard_works(&fenced);
    let bad = fenced.end();
    match scenario.as_str() {
        "caught" => caught(bad),
        "plain_read" => plain_read(bad),
        "outside_scope" => outside_scope(&fenced),
        "refused_code" => refused_code(),
        "trusted_side" => trusted_side(bad),
        other => panic!("unknown scenario {other}"),
    }
    eprintln!("SCENARIO RETURNED");
    std::process::exit(4);
}

/// A short copy first, so the mechanism is demonstrably there.
fn prove_the_guard_works(fenced: &Fenced) {
    let mut buf = [0; 64];
    assert_eq!(usercap_seh::copy_from(&mut buf, fenced.end() - 10), 54);
    eprintln!("GUARD WORKS");
}

/// The control: a fault inside a scope is caught, and the child returns.
fn caught(bad: usize) {
    let mut buf = [0; 8];
    let out = usercap_seh::copy_from_outcome(&mut buf, bad);
    assert_eq!(out.left, 8);
    assert_eq!(out.code, STATUS_ACCESS_VIOLATION);
    eprintln!("CAUGHT");
}

#[inline(never)]
fn plain_read(bad: usize) {
    eprintln!("ABOUT TO FAULT");
    let p = std::hint::black_box(std::ptr::with_exposed_provenance::<u8>(bad));
    // SAFETY: deliberately not safe: a genuine read of a no-access page,
    // outside the guarded routines, which must kill the process.
    let _ = unsafe { std::ptr::read_volatile(p) };
}

fn outside_scope(fenced: &Fenced) {
    let good = std::ptr::with_exposed_provenance::<u8>(fenced.addr());
    let bad = std::ptr::with_exposed_provenance::<u8>(fenced.end());
    eprintln!("ABOUT TO FAULT");
    // SAFETY: deliberately not safe: the second load reads a no-access
    // page one instruction past the scope, which must kill the process.
    let got = unsafe { usercap_test_outside(good, bad) };
    eprintln!("CLAIMED A FAULT OUTSIDE THE SCOPE: {got:#x}");
}

fn refused_code() {
    eprintln!("ABOUT TO FAULT");
    // SAFETY: deliberately not safe: `ud2` inside a scope, whose code the
    // filter must refuse, which must kill the process.
    let got = unsafe { usercap_test_refused() };
    eprintln!("CLAIMED A REFUSED CODE: {got:#x}");
}

/// `copy_from` whose *trusted* destination is a no-access page: a caller
/// bug, which must not become a short copy.
fn trusted_side(bad: usize) {
    let fenced = Fenced::new(1, Fence::NoAccess);
    let mut fault = [0_u64; 2];
    eprintln!("ABOUT TO FAULT");
    // SAFETY: deliberately not safe: the destination is a no-access page,
    // and the routine's store there must kill the process.
    let left = unsafe {
        usercap_seh_copy_from(
            &raw mut fault,
            std::ptr::with_exposed_provenance_mut(bad),
            std::ptr::with_exposed_provenance(fenced.addr()),
            64,
        )
    };
    eprintln!("CLAIMED A TRUSTED-SIDE FAULT: {left} left");
}

fn run(scenario: &str) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "scenario_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(VAR, scenario)
        .output()
        .unwrap();
    eprintln!(
        "[{scenario}] {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code of a process that died of an unhandled exception is the
/// exception code.
fn died_of(out: &Output, code: u32) {
    let err = stderr(out);
    assert!(err.contains("GUARD WORKS"), "the child did not get going");
    assert!(err.contains("ABOUT TO FAULT"));
    assert!(
        !err.contains("CLAIMED") && !err.contains("SCENARIO RETURNED"),
        "a foreign fault was swallowed"
    );
    assert_eq!(
        out.status.code().map(i32::cast_unsigned),
        Some(code),
        "expected death by {code:#x}"
    );
}

#[test]
fn a_fault_inside_a_scope_is_caught_in_a_child_too() {
    let out = run("caught");
    assert!(stderr(&out).contains("CAUGHT"));
    assert_eq!(out.status.code(), Some(4), "the child did not return");
}

#[test]
fn a_plain_read_of_a_no_access_page_still_kills() {
    died_of(&run("plain_read"), STATUS_ACCESS_VIOLATION);
}

#[test]
fn a_fault_one_instruction_past_a_scope_still_kills() {
    died_of(&run("outside_scope"), STATUS_ACCESS_VIOLATION);
}

#[test]
fn a_code_the_filter_refuses_still_kills() {
    died_of(&run("refused_code"), STATUS_ILLEGAL_INSTRUCTION);
}

#[test]
fn a_fault_on_the_trusted_side_still_kills() {
    died_of(&run("trusted_side"), STATUS_ACCESS_VIOLATION);
}
