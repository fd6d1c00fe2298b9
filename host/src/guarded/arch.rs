//! The exception-table routines, the inline load blocks and the signal
//! handler (`x86_64` Linux).

use std::ffi::c_void;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// Above this many bytes the routines use `rep movsb`/`rep stosb`.
const REP_THRESHOLD: usize = 2048;
/// Side of an entry: the fault must be in `[rsi, rsi + rcx)`.
const SIDE_SRC: u32 = 0;
/// Side of an entry: the fault must be in `[rdi, rdi + rcx)`.
const SIDE_DST: u32 = 1;
/// Number of the routines' exception-table entries (checked by the
/// assembler); the inline load blocks add theirs to the same section.
const EXTABLE_LEN: usize = 93;
/// The `SI_KERNEL` `si_code` (`#GP`, e.g. a non-canonical address).
const SI_KERNEL: i32 = 0x80;
/// End of the lower canonical half with 4-level paging.
const LOWER_HALF_END: usize = 1 << 47;

/// The exception table's section, with the version of its entry format
/// (`Entry`, the `ext` macro, `inline_entry!`, and the register roles the
/// handler reads). Every copy of this crate in one program adds its entries
/// to the section of its format and reads all of that section: copies that
/// share a format share one table and interpret each other's entries alike;
/// a copy with another format never sees them. Change the format, change
/// the version.
macro_rules! extable {
    () => {
        "usercap_extable_v1"
    };
}

/// The global name of one of the routines: `usercap_host_<major>_<minor>_`
/// and `name`, so that two semver-incompatible copies of this crate in one
/// program (which cargo builds as two crates) link side by side instead of
/// colliding on the same symbols. Every label `flabel` makes inside a
/// routine is derived from it.
macro_rules! routine {
    ($name:literal) => {
        concat!(
            "usercap_host_",
            env!("CARGO_PKG_VERSION_MAJOR"),
            "_",
            env!("CARGO_PKG_VERSION_MINOR"),
            "_",
            $name
        )
    };
}

// The routines follow the SysV ABI and only touch caller-saved registers
// (rax, rcx, rdx, rsi, rdi, xmm0 to xmm15). Register roles are fixed across all
// of them, which is what the handler relies on: rsi = source cursor,
// rdi = destination cursor, rcx = bytes left. Every labelled instruction
// that touches the untrusted side has a table entry (`ext`, emitted at the
// end of its routine), whose fixup is either `.L<name>_bytes` (finish byte
// by byte, so the count is exact) or `.L<name>_fail` (return rcx).
core::arch::global_asm!(
    concat!(
        r#"
    .set .Lusercap_ext_count, 0

    .macro ext insn, fixup, side
    .pushsection "#,
        extable!(),
        r#", "aR"
    .balign 4
    .long \insn - .
    .long \fixup - .
    .long \side
    .popsection
    .set .Lusercap_ext_count, .Lusercap_ext_count + 1
    .endm

    .macro flabel name
    .globl \name
    .hidden \name
\name:
    .endm

    // One block of 16-byte moves through xmm registers: xmm0 to xmm\hi
    // from the head of the range ([rsi + 16 * r]) and xmm\lo to xmm\top
    // from its tail (the last one ending at rsi + rcx), all loads before any
    // store, each access labelled `<name>_<tag>l<r>` or `<name>_<tag>s<r>`.
    .macro vblock name, tag, hi, lo, top
    .irp r, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .if \r <= \hi
    flabel \name\()_\tag\()l\r
    movups xmm\r, xmmword ptr [rsi + 16 * \r]
    .elseif \r >= \lo && \r <= \top
    flabel \name\()_\tag\()l\r
    movups xmm\r, xmmword ptr [rsi + rcx - 16 * (\top + 1 - \r)]
    .endif
    .endr
    .irp r, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .if \r <= \hi
    flabel \name\()_\tag\()s\r
    movups xmmword ptr [rdi + 16 * \r], xmm\r
    .elseif \r >= \lo && \r <= \top
    flabel \name\()_\tag\()s\r
    movups xmmword ptr [rdi + rcx - 16 * (\top + 1 - \r)], xmm\r
    .endif
    .endr
    .endm

    // The table entries of a `vblock`'s loads (`kind` = l) or stores (s).
    .macro vblock_ext name, tag, hi, lo, top, kind, side
    .irp r, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .if \r <= \hi || (\r >= \lo && \r <= \top)
    ext \name\()_\tag\()\kind\()\r, .L\name\()_bytes, \side
    .endif
    .endr
    .endm

    // usercap_copy_from/_to(rdi = dst, rsi = src, rdx = len) -> rax = left.
    // side = SIDE_SRC lists the loads (copy_from), SIDE_DST the stores
    // (copy_to).
    //
    // Up to 256 bytes, one block by size class, glibc-style: the first and
    // the last 4, 8, 16, 2 x 16, 4 x 16 or 8 x 16 bytes of the range, which
    // overlap in the middle. Every load of a block comes before its first store, and rsi,
    // rdi and rcx do not move within a block, so a fault anywhere in it
    // resumes in the byte loop at the block's start, which copies up to the
    // exact first bad byte (for copy_to, rewriting what the block's earlier
    // stores wrote, with the same bytes). Every access lies inside
    // [rsi, rsi + rcx), the range the handler's side check expects.
    // Above 256 bytes, 128-byte blocks advance the cursors until 129 to 256
    // bytes are left, which go as one block; above {rep}, `rep movsb`.
    .macro copy name, side
    .p2align 4
    .globl \name
    .hidden \name
    .type \name, @function
\name:
    mov rcx, rdx
    cmp rcx, 64
    ja .L\name\()_big
.L\name\()_upto64:
    cmp rcx, 16
    jb .L\name\()_lt16
    cmp rcx, 32
    ja .L\name\()_upto64_33
    vblock \name, c16, 0, 1, 1
    xor eax, eax
    ret
.L\name\()_upto64_33:
    vblock \name, c32, 1, 2, 3
    xor eax, eax
    ret
.L\name\()_lt16:
    cmp rcx, 8
    jb .L\name\()_lt8
    flabel \name\()_ldqa
    mov rax, qword ptr [rsi]
    flabel \name\()_ldqb
    mov rdx, qword ptr [rsi + rcx - 8]
    flabel \name\()_stqa
    mov qword ptr [rdi], rax
    flabel \name\()_stqb
    mov qword ptr [rdi + rcx - 8], rdx
    xor eax, eax
    ret
.L\name\()_lt8:
    cmp rcx, 4
    jb .L\name\()_bytes
    flabel \name\()_ldda
    mov eax, dword ptr [rsi]
    flabel \name\()_lddb
    mov edx, dword ptr [rsi + rcx - 4]
    flabel \name\()_stda
    mov dword ptr [rdi], eax
    flabel \name\()_stdb
    mov dword ptr [rdi + rcx - 4], edx
    xor eax, eax
    ret
.L\name\()_big:
    cmp rcx, {rep}
    ja .L\name\()_rep
    cmp rcx, 128
    jbe .L\name\()_upto128
    cmp rcx, 256
    jbe .L\name\()_upto256
.L\name\()_block:
    vblock \name, blk, 7, 16, 15
    add rsi, 128
    add rdi, 128
    sub rcx, 128
    cmp rcx, 256
    ja .L\name\()_block
    // 129 to 256 bytes are left.
.L\name\()_upto256:
    vblock \name, c128, 7, 8, 15
    xor eax, eax
    ret
.L\name\()_upto128:
    vblock \name, c64, 3, 4, 7
    xor eax, eax
    ret
.L\name\()_bytes:
    test rcx, rcx
    jz .L\name\()_done
.L\name\()_byte:
    flabel \name\()_ldb
    movzx eax, byte ptr [rsi]
    flabel \name\()_stb
    mov byte ptr [rdi], al
    inc rsi
    inc rdi
    dec rcx
    jnz .L\name\()_byte
.L\name\()_done:
    xor eax, eax
    ret
.L\name\()_rep:
    flabel \name\()_rep
    rep movsb
    xor eax, eax
    ret
.L\name\()_fail:
    mov rax, rcx
    ret
    .size \name, . - \name
    .if \side == {src}
    .irp insn, ldqa, ldqb, ldda, lddb, rep
    ext \name\()_\insn, .L\name\()_bytes, {src}
    .endr
    vblock_ext \name, c16, 0, 1, 1, l, {src}
    vblock_ext \name, c32, 1, 2, 3, l, {src}
    vblock_ext \name, c64, 3, 4, 7, l, {src}
    vblock_ext \name, c128, 7, 8, 15, l, {src}
    vblock_ext \name, blk, 7, 16, 15, l, {src}
    ext \name\()_ldb, .L\name\()_fail, {src}
    .else
    .irp insn, stqa, stqb, stda, stdb, rep
    ext \name\()_\insn, .L\name\()_bytes, {dst}
    .endr
    vblock_ext \name, c16, 0, 1, 1, s, {dst}
    vblock_ext \name, c32, 1, 2, 3, s, {dst}
    vblock_ext \name, c64, 3, 4, 7, s, {dst}
    vblock_ext \name, c128, 7, 8, 15, s, {dst}
    vblock_ext \name, blk, 7, 16, 15, s, {dst}
    ext \name\()_stb, .L\name\()_fail, {dst}
    .endif
    .endm

    // clear name: the routine `name`(rdi = dst, rsi = len) -> rax = left.
    .macro clear name
    .p2align 4
    .globl \name
    .hidden \name
    .type \name, @function
\name:
    mov rcx, rsi
    xor eax, eax
    cmp rcx, 32
    jb .L\name\()_small
    cmp rcx, {rep}
    ja .L\name\()_rep
    xorps xmm0, xmm0
.L\name\()_chunk:
    flabel \name\()_st0
    movups xmmword ptr [rdi], xmm0
    flabel \name\()_st1
    movups xmmword ptr [rdi + 16], xmm0
    add rdi, 32
    sub rcx, 32
    cmp rcx, 32
    jae .L\name\()_chunk
.L\name\()_small:
    cmp rcx, 8
    jb .L\name\()_bytes
.L\name\()_qword:
    flabel \name\()_stq
    mov qword ptr [rdi], rax
    add rdi, 8
    sub rcx, 8
    cmp rcx, 8
    jae .L\name\()_qword
.L\name\()_bytes:
    test rcx, rcx
    jz .L\name\()_done
.L\name\()_byte:
    flabel \name\()_stb
    mov byte ptr [rdi], al
    inc rdi
    dec rcx
    jnz .L\name\()_byte
.L\name\()_done:
    ret
.L\name\()_rep:
    flabel \name\()_rep
    rep stosb
    ret
.L\name\()_fail:
    mov rax, rcx
    ret
    .size \name, . - \name
    ext \name\()_st0, .L\name\()_bytes, {dst}
    ext \name\()_st1, .L\name\()_bytes, {dst}
    ext \name\()_stq, .L\name\()_bytes, {dst}
    ext \name\()_stb, .L\name\()_fail, {dst}
    ext \name\()_rep, .L\name\()_bytes, {dst}
    .endm
"#,
        r#"
    .pushsection .text.usercap_guarded, "ax", @progbits
    copy "#,
        routine!("copy_from"),
        r#", {src}
    copy "#,
        routine!("copy_to"),
        r#", {dst}
    clear "#,
        routine!("clear"),
        r#"
    // The end of the three routines (for the table's test).
    flabel "#,
        routine!("routines_end"),
        r#"
    .popsection

    // A count, not a label difference: the latter is not an absolute
    // expression for LLVM's assembler in optimised builds.
    .if .Lusercap_ext_count != {len}
    .error "usercap: EXTABLE_LEN does not match the exception table"
    .endif
    .purgem ext
    .purgem flabel
    .purgem vblock
    .purgem vblock_ext
    .purgem copy
    .purgem clear
    "#
    ),
    rep = const REP_THRESHOLD,
    src = const SIDE_SRC,
    dst = const SIDE_DST,
    len = const EXTABLE_LEN,
);

/// One exception-table entry, as emitted by the `ext` macro. The two
/// addresses are stored relative to the field holding them, like the
/// kernel's, so the table needs no relocation.
#[repr(C)]
struct Entry {
    insn: i32,
    fixup: i32,
    side: u32,
}

impl Entry {
    fn target(field: &i32) -> usize {
        std::ptr::from_ref(field)
            .addr()
            .wrapping_add_signed(*field as isize)
    }
}

// SAFETY: the three routines are defined in the `global_asm!` above with
// the SysV signatures declared here, under the names `routine!` gives. The
// two statics are the linker's bounds of the output section `extable!()`
// (GNU ld and lld define
// `__start_`/`__stop_` for every section whose name is a C identifier);
// only their addresses are used (see `table`). `usercap_routines_end` is a
// label, declared as a function only for its address: it is never called.
unsafe extern "C" {
    #[link_name = routine!("copy_from")]
    fn usercap_copy_from(dst: *mut u8, src: *const u8, len: usize) -> usize;
    #[link_name = routine!("copy_to")]
    fn usercap_copy_to(dst: *mut u8, src: *const u8, len: usize) -> usize;
    #[link_name = routine!("clear")]
    fn usercap_clear(dst: *mut u8, len: usize) -> usize;
    /// Not a function: the label after the routines, for its address.
    #[cfg(test)]
    #[link_name = routine!("routines_end")]
    fn usercap_routines_end();
    #[link_name = concat!("__start_", extable!())]
    safe static EXTABLE_START: [Entry; 0];
    #[link_name = concat!("__stop_", extable!())]
    safe static EXTABLE_STOP: [Entry; 0];
}

/// The whole exception table: the routines' entries and those of every
/// inline load block ([`read_small`]) linked into this program.
fn table() -> &'static [Entry] {
    let start = EXTABLE_START.as_ptr();
    let len = EXTABLE_STOP.as_ptr().addr().saturating_sub(start.addr()) / size_of::<Entry>();
    // SAFETY: the `extable!()` section holds nothing but `Entry` records (12
    // bytes, 4-aligned, emitted by the `ext` macro and by `load_block!`, every
    // one of them 4-aligned in a section of alignment 4, so the concatenated
    // input sections leave no padding), from `__start_` up to `__stop_`; it
    // is read-only ("a", never written) and lives as long as the program.
    // It is never empty: the routines' `EXTABLE_LEN` entries are in this
    // module's object, which defines the handler that reads them.
    unsafe { std::slice::from_raw_parts(start, len) }
}

/// A disposition our handler forwards to: what the kernel would have
/// delivered the signal to without us. Its three parts live in atomics
/// under a spin lock, so that the signal handler can read and replace it
/// without allocating or waiting on a futex (async-signal-safe).
///
/// No thread can deadlock on the lock: it is held only for three atomic
/// loads or stores, by the handler of its own signal (which that signal's
/// handler cannot interrupt on the same thread: the signal is blocked while
/// it runs, see `call`) or by `install` before our handler for the signal
/// exists.
struct Disposition {
    lock: AtomicBool,
    handler: AtomicUsize,
    flags: AtomicI32,
    /// Signals 1 to 64 blocked while the handler runs (bit `n - 1` for
    /// signal `n`; Linux has 64).
    mask: AtomicU64,
}

/// One [`Disposition`], read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Saved {
    handler: libc::sighandler_t,
    flags: libc::c_int,
    mask: u64,
}

impl Saved {
    const DEFAULT: Saved = Saved {
        handler: libc::SIG_DFL,
        flags: 0,
        mask: 0,
    };

    fn of(action: &libc::sigaction) -> Self {
        let mut mask = 0_u64;
        for sig in 1..=64 {
            // SAFETY: `sa_mask` is a valid sigset_t; sigismember only reads
            // it (and is async-signal-safe).
            if unsafe { libc::sigismember(&raw const action.sa_mask, sig) } == 1 {
                mask |= 1 << (sig - 1);
            }
        }
        Self {
            handler: action.sa_sigaction,
            flags: action.sa_flags,
            mask,
        }
    }

    /// The signals of `mask`, as a `sigset_t`.
    fn mask_set(&self) -> libc::sigset_t {
        signal_set(self.mask)
    }
}

/// The `sigset_t` holding the signals of `mask` (bit `n - 1` for signal `n`).
fn signal_set(mask: u64) -> libc::sigset_t {
    let mut set = DEFAULT_ACTION.sa_mask;
    // SAFETY: `set` is a valid, writable sigset_t; sigemptyset and
    // sigaddset only write it (and are async-signal-safe).
    unsafe { libc::sigemptyset(&raw mut set) };
    for sig in 1..=64 {
        if mask & (1 << (sig - 1)) != 0 {
            // SAFETY: as above; `sig` is a valid signal number.
            unsafe { libc::sigaddset(&raw mut set, sig) };
        }
    }
    set
}

impl Disposition {
    const fn new() -> Self {
        Self {
            lock: AtomicBool::new(false),
            handler: AtomicUsize::new(libc::SIG_DFL),
            flags: AtomicI32::new(0),
            mask: AtomicU64::new(0),
        }
    }

    fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        let result = f();
        self.lock.store(false, Ordering::Release);
        result
    }

    fn load(&self) -> Saved {
        self.locked(|| Saved {
            handler: self.handler.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
            mask: self.mask.load(Ordering::Relaxed),
        })
    }

    fn store(&self, saved: Saved) {
        self.locked(|| {
            self.handler.store(saved.handler, Ordering::Relaxed);
            self.flags.store(saved.flags, Ordering::Relaxed);
            self.mask.store(saved.mask, Ordering::Relaxed);
        });
    }
}

/// What `SIGSEGV` and `SIGBUS` were delivered to before ours was
/// installed, and since then what a forwarded-to handler changed them to.
static PREV: [Disposition; 2] = [Disposition::new(), Disposition::new()];
/// Whether our handler is installed. Set once; never cleared: the handler
/// never uninstalls itself (rule 4).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Signals the handler has passed on (rule 4), counted when done.
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

/// `SIG_DFL` with an empty mask and no flags.
// SAFETY: `sigaction` is plain data (integers, an integer array and an
// `Option<fn>`); all-zero is valid and means SIG_DFL, no flags, empty mask.
const DEFAULT_ACTION: libc::sigaction = unsafe { std::mem::zeroed() };

/// Our disposition: `handler`, `SA_SIGINFO | SA_ONSTACK`, empty mask.
fn our_action() -> libc::sigaction {
    let handler: unsafe extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) = handler;
    let mut ours = DEFAULT_ACTION;
    ours.sa_sigaction = handler as libc::sighandler_t;
    ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    ours
}

/// The slot of `PREV` for `sig`.
fn prev(sig: libc::c_int) -> Option<&'static Disposition> {
    match sig {
        libc::SIGSEGV => PREV.first(),
        libc::SIGBUS => PREV.get(1),
        _ => None,
    }
}

#[inline]
pub(super) fn active() -> bool {
    // The common case first: one load, no `Once` check on every copy.
    if ACTIVE.load(Ordering::Acquire) {
        return true;
    }
    install();
    ACTIVE.load(Ordering::Acquire)
}

pub(super) fn install() {
    INSTALL.call_once(|| {
        let ours = our_action();
        for sig in [libc::SIGSEGV, libc::SIGBUS] {
            let mut old = DEFAULT_ACTION;
            // SAFETY: query only (null new action); `old` is a valid,
            // writable sigaction.
            let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &raw mut old) };
            // Saved before ours goes live, so the handler always finds it.
            if let Some(slot) = prev(sig) {
                slot.store(if rc == 0 {
                    Saved::of(&old)
                } else {
                    Saved::DEFAULT
                });
            }
            // SAFETY: `ours` is a fully initialised sigaction whose
            // handler has the SA_SIGINFO signature and is
            // async-signal-safe (see `handler`).
            if unsafe { libc::sigaction(sig, &raw const ours, std::ptr::null_mut()) } != 0 {
                return;
            }
        }
        ACTIVE.store(true, Ordering::Release);
    });
}

/// # Safety
/// `dst` must be valid for `len` writes and not aliased by any reference
/// for the duration of the call (it may be uninitialised).
pub(super) unsafe fn copy_from(dst: *mut u8, len: usize, src: usize) -> usize {
    // SAFETY: `dst` is valid for `len` writes (our contract). `src` is only
    // read, by the listed load instructions; a fault there is claimed by the
    // (active) handler and becomes a short count. `src..src+len` does not
    // wrap (checked by the caller's `range_ok`). No Rust reference to `src`
    // exists.
    unsafe { usercap_copy_from(dst, std::ptr::with_exposed_provenance(src), len) }
}

pub(super) fn copy_to(dst: usize, src: &[u8]) -> usize {
    // SAFETY: `src` is valid for `src.len()` reads. `dst` is only written
    // by the listed store instructions, whose faults become a short
    // count; the range does not wrap. That `dst` is "user" memory is the
    // caller's contract (module docs).
    unsafe {
        usercap_copy_to(
            std::ptr::with_exposed_provenance_mut(dst),
            src.as_ptr(),
            src.len(),
        )
    }
}

pub(super) fn clear(dst: usize, len: usize) -> usize {
    // SAFETY: as for `copy_to`, without a source.
    unsafe { usercap_clear(std::ptr::with_exposed_provenance_mut(dst), len) }
}

// `read_small` has a block for every size up to 256 bytes and no more, and
// `inline_entry!` writes the source side as a literal 0.
const _: () = assert!(super::INLINE_VALUE_MAX == 256 && SIDE_SRC == 0);

/// The table entry of an inline load labelled `$label`: source side, fixup
/// at the block's label `9`.
macro_rules! inline_entry {
    ($label:expr) => {
        concat!(
            ".pushsection ",
            extable!(),
            ", \"aR\"\n",
            ".balign 4\n",
            ".long ",
            $label,
            "b - .\n",
            ".long 9b - .\n",
            ".long 0\n",
            ".popsection"
        )
    };
}

/// A zero `__m128i`.
// SAFETY: `__m128i` is 16 bytes of plain integer data; all zeroes is valid.
const ZERO_XMM: core::arch::x86_64::__m128i = unsafe { core::mem::zeroed() };

/// One inline block of 16-byte loads for a value of `$len` bytes (16 to
/// 256): load `i` of the head reads `[rsi + 16 * i]` into positional operand
/// `{i}` (label `2i`), and the tail load reads the last 16 bytes, which
/// overlap the head in the middle, as in the routines' size classes. On a
/// fault the handler resumes at label `9`, past the `dec`, so `eax` stays 1.
/// Then the registers are stored into `$out` (valid for `$len` writes).
macro_rules! xmm_block {
    ($src:expr, $len:expr, $out:expr; [$($head:literal)*] $tail:literal) => {{
        use core::arch::x86_64::__m128i;
        // The outputs' places (initialised, as places written by `asm!` must
        // be; the compiler drops the zeroing, which the loads overwrite).
        let mut regs = [ZERO_XMM; 16];
        let failed: u32;
        // SAFETY: loads only, from `[rsi, rsi + rcx)` = `[src, src + len)`,
        // a range that does not wrap (the caller's contract): head load `i`
        // reads `[16 * i, 16 * i + 16)` with `16 * i + 16 <= len - 16`
        // (`i < tail = ceil(len / 16) - 1`) and the tail load the last 16 of
        // `len >= 16` bytes. Each is listed in the exception table with the
        // source side and the fixup `9`: a fault is claimed by the handler
        // (active, per the contract) and resumes at `9` with `eax` = 1; no
        // other register or memory is written; the outputs are then simply
        // not used.
        unsafe {
            core::arch::asm!(
                $(concat!("2", $head, ": movups {", $head, "}, xmmword ptr [rsi + 16 * ", $head, "]"),)*
                concat!("2", $tail, ": movups {", $tail, "}, xmmword ptr [rsi + rcx - 16]"),
                "dec eax",
                "9:",
                $(inline_entry!(concat!("2", $head)),)*
                inline_entry!(concat!("2", $tail)),
                $(out(xmm_reg) regs[$head],)*
                out(xmm_reg) regs[$tail],
                in("rsi") $src,
                in("rcx") $len,
                inout("eax") 1_u32 => failed,
                options(nostack, readonly),
            );
        }
        if failed == 0 {
            $(
                // SAFETY: `16 * i + 16 <= len - 16`: inside `$out`'s `$len`
                // bytes; unaligned writes need no alignment.
                unsafe { $out.add(16 * $head).cast::<__m128i>().write_unaligned(regs[$head]) };
            )*
            // SAFETY: the last 16 of `$out`'s `$len >= 16` bytes.
            unsafe { $out.add($len - 16).cast::<__m128i>().write_unaligned(regs[$tail]) };
        }
        failed == 0
    }};
}

/// General-register loads of `$ty` for a value of `$len` bytes: one load
/// when `$len` is `size_of::<$ty>()`, else (up to twice that) two, the
/// first and the last `size_of::<$ty>()` bytes, which overlap in the middle.
/// The same fixup as [`xmm_block!`].
macro_rules! gpr_block {
    ($src:expr, $len:expr, $out:expr; $ty:ty, $load:literal) => {{
        let failed: u32;
        let value: u64;
        // SAFETY: as in `xmm_block!`: one listed load of `[src, src + len)`.
        unsafe {
            core::arch::asm!(
                concat!("20: ", $load),
                "dec eax",
                "9:",
                inline_entry!("20"),
                in("rsi") $src,
                in("rcx") $len,
                inout("eax") 1_u32 => failed,
                a = out(reg) value,
                options(nostack, readonly),
            );
        }
        if failed == 0 {
            // The load zero-extends; the truncation keeps what was loaded.
            #[allow(clippy::cast_possible_truncation, reason = "the load is `$ty` wide")]
            let value = value as $ty;
            // SAFETY: `$out` is valid for `$len` = `size_of::<$ty>()`
            // bytes; unaligned writes need no alignment.
            unsafe { $out.cast::<$ty>().write_unaligned(value) };
        }
        failed == 0
    }};
    ($src:expr, $len:expr, $out:expr; $ty:ty, $head:literal, $tail:literal) => {{
        let failed: u32;
        let head: u64;
        let tail: u64;
        // SAFETY: as in `xmm_block!`: two listed loads inside
        // `[src, src + len)`.
        unsafe {
            core::arch::asm!(
                concat!("20: ", $head),
                concat!("21: ", $tail),
                "dec eax",
                "9:",
                inline_entry!("20"),
                inline_entry!("21"),
                in("rsi") $src,
                in("rcx") $len,
                inout("eax") 1_u32 => failed,
                a = out(reg) head,
                b = out(reg) tail,
                options(nostack, readonly),
            );
        }
        if failed == 0 {
            let width = size_of::<$ty>();
            // The loads zero-extend; the truncation keeps what was loaded.
            #[allow(clippy::cast_possible_truncation, reason = "the loads are `$ty` wide")]
            let (head, tail) = (head as $ty, tail as $ty);
            // SAFETY: `width <= $len`: both writes lie inside `$out`'s
            // `$len` bytes; unaligned writes need no alignment.
            unsafe { $out.cast::<$ty>().write_unaligned(head) };
            // SAFETY: as above, the last `width` bytes.
            unsafe { $out.add($len - width).cast::<$ty>().write_unaligned(tail) };
        }
        failed == 0
    }};
}

/// The block [`read_small`] uses for a value of `len` bytes: 1 to 7 for
/// general-register loads (one load of exactly 1, 2, 4 or 8 bytes, two
/// overlapping loads of 2, 4 or 8 bytes for 3, 5 to 7 and 9 to 15 bytes),
/// 8 + k for k + 1 16-byte loads (16 to 256 bytes), 0 for none. A byte is
/// loaded twice only where two loads overlap, and the kernel copy takes it
/// from the later one, as the routines' blocks do.
const fn size_class(len: usize) -> usize {
    match len {
        1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        5..=7 => 5,
        8 => 6,
        9..=15 => 7,
        16..=256 => 8 + (len - 1) / 16,
        _ => 0,
    }
}

/// Reads one `T` of 1 to [`super::INLINE_VALUE_MAX`] bytes from the untrusted address
/// `src` into `out`, with the loads inlined in the caller: no call, no size
/// dispatch at run time (`size_of::<T>()` is a constant, so one block
/// remains), and the value passed through registers, so that the compiler
/// stores them straight into wherever the `T` ends up (a returned `Result`,
/// a capture slot): the only write of each byte. Every load is listed in the
/// exception table like the routines' (`inline_entry!`). A fault anywhere
/// returns false with nothing written to `out`: a capture wants all the
/// bytes or none, so there is no byte-exact count to compute.
///
/// # Safety
/// `[src, src + size_of::<T>())` must not wrap, the handler must be active
/// ([`active`]), and `out` must be valid for `size_of::<T>()` bytes of
/// writes (it may be uninitialised) and not aliased during the call.
#[inline(always)]
#[allow(clippy::inline_always, reason = "the point is to have no call")]
pub(super) unsafe fn read_small<T: zerocopy::FromBytes>(src: usize, out: *mut T) -> bool {
    let len = size_of::<T>();
    let out = out.cast::<u8>();
    // Matched on a constant, so that only one block is generated even
    // without optimisation (rustc does not emit the arms of a `match` on a
    // `const` block that monomorphisation rules out), and the exception
    // table holds the entries of blocks that exist.
    match const { size_class(size_of::<T>()) } {
        1 => gpr_block!(src, len, out; u8, "movzx {a:e}, byte ptr [rsi]"),
        2 => gpr_block!(src, len, out; u16, "movzx {a:e}, word ptr [rsi]"),
        3 => {
            gpr_block!(src, len, out; u16, "movzx {a:e}, word ptr [rsi]", "movzx {b:e}, word ptr [rsi + rcx - 2]")
        }
        4 => gpr_block!(src, len, out; u32, "mov {a:e}, dword ptr [rsi]"),
        5 => {
            gpr_block!(src, len, out; u32, "mov {a:e}, dword ptr [rsi]", "mov {b:e}, dword ptr [rsi + rcx - 4]")
        }
        6 => gpr_block!(src, len, out; u64, "mov {a}, qword ptr [rsi]"),
        7 => {
            gpr_block!(src, len, out; u64, "mov {a}, qword ptr [rsi]", "mov {b}, qword ptr [rsi + rcx - 8]")
        }
        8 => xmm_block!(src, len, out; [] 0),
        9 => xmm_block!(src, len, out; [0] 1),
        10 => xmm_block!(src, len, out; [0 1] 2),
        11 => xmm_block!(src, len, out; [0 1 2] 3),
        12 => xmm_block!(src, len, out; [0 1 2 3] 4),
        13 => xmm_block!(src, len, out; [0 1 2 3 4] 5),
        14 => xmm_block!(src, len, out; [0 1 2 3 4 5] 6),
        15 => xmm_block!(src, len, out; [0 1 2 3 4 5 6] 7),
        16 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7] 8),
        17 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8] 9),
        18 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8 9] 10),
        19 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8 9 10] 11),
        20 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8 9 10 11] 12),
        21 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8 9 10 11 12] 13),
        22 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8 9 10 11 12 13] 14),
        23 => xmm_block!(src, len, out; [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14] 15),
        _ => false,
    }
}

/// The entry for a faulting instruction pointer, as `(fixup, side)`.
fn lookup(rip: usize) -> Option<(usize, u32)> {
    table()
        .iter()
        .find(|e| Entry::target(&e.insn) == rip)
        .map(|e| (Entry::target(&e.fixup), e.side))
}

/// Whether a fault with `code`/`addr` is in the not-yet-copied part
/// `[base, base + left)` of the untrusted range.
pub(super) fn fault_is_ours(code: i32, addr: usize, base: usize, left: usize) -> bool {
    if code == SI_KERNEL && addr == 0 {
        // #GP: no address is reported. Only a non-canonical address
        // (above the 47-bit lower half) can raise it here.
        return base.saturating_add(left) > LOWER_HALF_END;
    }
    addr >= base && addr - base < left
}

/// The saved general registers of the interrupted thread.
type Gregs = [libc::greg_t; 23];

/// The index of a `REG_*` constant into `gregs` (out of range if negative,
/// which no `REG_*` is).
fn index(r: libc::c_int) -> usize {
    usize::try_from(r).unwrap_or(usize::MAX)
}

/// Reads a general register from the saved context (0 for an index out of
/// range, which the `REG_*` constants never are).
///
/// # Safety
/// `gregs` must point to the saved registers of the signal being handled.
unsafe fn reg(gregs: *const Gregs, r: libc::c_int) -> usize {
    let i = index(r);
    if i >= size_of::<Gregs>() / size_of::<libc::greg_t>() {
        return 0;
    }
    let at = gregs.cast::<libc::greg_t>().wrapping_add(i);
    // SAFETY: `i` is in bounds of the array `gregs` points to, which is
    // valid for reads (our contract); no reference is formed.
    let value = unsafe { at.read() };
    // x86_64: a 64-bit register, reinterpreted as the unsigned address.
    usize::try_from(value.cast_unsigned()).unwrap_or(0)
}

/// Sets `RIP` in the saved context, so that the thread resumes at `to`.
///
/// # Safety
/// As [`reg`], and valid for writes: the thread resumes with these
/// registers when the handler returns.
unsafe fn set_rip(gregs: *mut Gregs, to: usize) -> bool {
    let i = index(libc::REG_RIP);
    let Ok(to) = u64::try_from(to) else {
        return false;
    };
    if i >= size_of::<Gregs>() / size_of::<libc::greg_t>() {
        return false;
    }
    let at = gregs.cast::<libc::greg_t>().wrapping_add(i);
    // SAFETY: as in `reg`, for a write of one in-bounds element.
    unsafe { at.write(to.cast_signed()) };
    true
}

/// The signal handler.
///
/// It touches the signal frame through raw pointers only, and reads what it
/// needs of `info` into locals before it looks at the registers: glibc's
/// `ucontext_t` (968 bytes) is longer than the kernel's (304), so a
/// `&mut ucontext_t` would cover the `siginfo` the kernel placed right
/// after it, and a reference to `*info` held across it would be invalid
/// (Stacked Borrows).
///
/// # Safety
/// Only to be called by the kernel as an `SA_SIGINFO` handler (or by a
/// handler that forwards to us, as we forward to ours): `info` and `ctx`
/// must point to the `siginfo_t` and `ucontext_t` of the signal being
/// delivered.
unsafe extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers;
    // this reads one field through the pointer, no reference outlives it.
    let code = unsafe { (*info).si_code };
    let addr = if code > 0 {
        // SAFETY: as above; a shared reference for the one call below, gone
        // before the registers are touched.
        let info = unsafe { &*info };
        // SAFETY: si_code > 0 means a kernel-generated fault signal
        // (SIGSEGV/SIGBUS), for which si_addr is the valid union member.
        unsafe { info.si_addr() }.addr()
    } else {
        0
    };
    if code > 0 {
        // SAFETY: `ctx` is the ucontext_t of the interrupted thread, ours
        // alone while the handler runs; a raw place projection to its
        // registers, no reference.
        let gregs = unsafe { &raw mut (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs };
        // SAFETY: `gregs` points to this signal's saved registers (so for
        // every `reg` call below).
        let rip = unsafe { reg(gregs, libc::REG_RIP) };
        if let Some((fixup, side)) = lookup(rip) {
            let cursor = if side == SIDE_SRC {
                libc::REG_RSI
            } else {
                libc::REG_RDI
            };
            // SAFETY: as above.
            let base = unsafe { reg(gregs, cursor) };
            // SAFETY: as above.
            let left = unsafe { reg(gregs, libc::REG_RCX) };
            // SAFETY: as above; the thread resumes at the fixup of the
            // listed instruction that faulted.
            if fault_is_ours(code, addr, base, left) && unsafe { set_rip(gregs, fixup) } {
                return;
            }
        }
    }
    forward(sig, code, info, ctx);
}

/// Delivers a signal that is not ours to the disposition the kernel would
/// have delivered it to without us, as if we had not been there (rule 4),
/// and stays installed:
///
/// - `SIG_IGN`: a sent signal is discarded. A fault is not: the kernel
///   never lets a fault be ignored (it resets the disposition to `SIG_DFL`
///   and delivers it), so a fault goes as under `SIG_DFL`;
/// - `SIG_DFL`: restored, then a fault repeats on return, and a sent signal
///   is raised again, so both take the default action (the process dies);
/// - a handler: called with its own convention (`SA_SIGINFO` or not) and
///   mask, with `SA_RESETHAND` and `SA_NODEFER` applied. If it changed the
///   disposition (std's does, to `SIG_DFL`, for a fault that is not a stack
///   overflow and for every sent signal), the new one is remembered and ours
///   put back, so that copies on other threads stay guarded. A fault then
///   repeats on return and reaches the new disposition through us.
fn forward(sig: libc::c_int, code: i32, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    match prev(sig) {
        None => take_default(sig, code),
        Some(slot) => {
            let saved = slot.load();
            match saved.handler {
                libc::SIG_IGN if code <= 0 => {}
                libc::SIG_DFL | libc::SIG_IGN => take_default(sig, code),
                _ => call(slot, sig, saved, info, ctx),
            }
        }
    }
    FORWARDED.fetch_add(1, Ordering::Relaxed);
}

/// How many signals the handler has passed on to the disposition before
/// it: sent signals, and faults that were not ours. Counted once each
/// forward is done (the handler it called has returned and ours is
/// installed again).
pub(super) fn forwarded() -> u64 {
    FORWARDED.load(Ordering::Relaxed)
}

/// Restores `SIG_DFL` for `sig`, and arranges for the default action to
/// happen: a fault repeats on return, a sent signal is raised again.
fn take_default(sig: libc::c_int, code: i32) {
    let default = DEFAULT_ACTION;
    // SAFETY: `default` is a valid sigaction; sigaction is
    // async-signal-safe.
    unsafe { libc::sigaction(sig, &raw const default, std::ptr::null_mut()) };
    if code <= 0 {
        // SAFETY: raise is async-signal-safe; `sig` is blocked while we
        // run (no SA_NODEFER), so it stays pending until we return and is
        // then delivered to the default action.
        unsafe { libc::raise(sig) };
    }
}

/// Calls the handler of `saved` for this signal as the kernel would have.
fn call(
    slot: &Disposition,
    sig: libc::c_int,
    saved: Saved,
    info: *mut libc::siginfo_t,
    ctx: *mut c_void,
) {
    if saved.flags & libc::SA_RESETHAND != 0 {
        // The kernel resets such a disposition when it delivers the signal.
        slot.store(Saved::DEFAULT);
    }
    // The mask the kernel would have set: the thread's (already holding
    // `sig`, ours has no SA_NODEFER) plus the handler's, without `sig`
    // under SA_NODEFER; restored after the call, so that the rest of this
    // handler runs with `sig` blocked again. Skipped when there is nothing
    // to change (std's handler: empty mask, no SA_NODEFER), which keeps
    // system calls out of the window below.
    let nodefer = saved.flags & libc::SA_NODEFER != 0;
    let masked = saved.mask != 0 || nodefer;
    let mut before = DEFAULT_ACTION.sa_mask;
    if masked {
        let during = saved.mask_set();
        // SAFETY: valid sigsets; pthread_sigmask is async-signal-safe.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const during, &raw mut before) };
    }
    if nodefer {
        let this = signal_set(1 << (sig - 1));
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &raw const this, std::ptr::null_mut()) };
    }
    let ours = our_action();
    let mut now = DEFAULT_ACTION;
    if saved.flags & libc::SA_SIGINFO != 0 {
        // SAFETY: `saved.handler` is neither SIG_DFL nor SIG_IGN (checked by
        // `forward`) but a handler the kernel accepted for `sig` with
        // SA_SIGINFO: a function of this signature. It gets this signal's
        // own `info` and `ctx`, as if the kernel had called it.
        let handler: unsafe extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { std::mem::transmute(saved.handler) };
        // SAFETY: as above; what it may do is what it may do when the
        // kernel calls it.
        unsafe { handler(sig, info, ctx) };
    } else {
        // SAFETY: as above, a handler without SA_SIGINFO, which the kernel
        // calls with the signal number alone.
        let handler: unsafe extern "C" fn(libc::c_int) =
            unsafe { std::mem::transmute(saved.handler) };
        // SAFETY: as above.
        unsafe { handler(sig) };
    }
    // Put ours back at once, and see in the same call what the handler
    // left. From a change the handler made (std's SIG_DFL) to this call,
    // the disposition is not ours: a guarded copy that faults on another
    // thread in that window meets the handler's disposition (for std's,
    // death). That window is the price of chaining in place; see the
    // module docs.
    // SAFETY: valid sigactions; sigaction is async-signal-safe.
    let swapped = unsafe { libc::sigaction(sig, &raw const ours, &raw mut now) } == 0;
    if masked {
        // SAFETY: `before` was filled by the first pthread_sigmask.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const before, std::ptr::null_mut())
        };
    }
    if swapped && now.sa_sigaction != ours.sa_sigaction {
        slot.store(Saved::of(&now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        let text = usercap_copy_from as *const () as usize;
        let end = usercap_routines_end as *const () as usize;
        let routines = table()
            .iter()
            .filter(|e| (text..end).contains(&Entry::target(&e.insn)))
            .count();
        // The routines' entries, and at least one inline block (this
        // test's own, below).
        assert_eq!(routines, EXTABLE_LEN);
        assert!(table().len() > EXTABLE_LEN);
        for e in table() {
            let (insn, fixup) = (Entry::target(&e.insn), Entry::target(&e.fixup));
            assert!(e.side == SIDE_SRC || e.side == SIDE_DST);
            // A fixup is near its instruction: in the same routine, or at
            // the end of the same inline block.
            assert!(fixup.abs_diff(insn) < 4096);
            assert_eq!(lookup(insn).map(|(_, side)| side), Some(e.side));
        }
        assert_eq!(lookup(text), None);
        install();
        let word = 0x1122_3344_5566_7788_u64;
        let mut read = 0_u64;
        // SAFETY: the address of a live local does not wrap; the handler
        // is installed; `read` is a local `u64` nothing else refers to.
        let ok = unsafe { read_small(std::ptr::from_ref(&word).addr(), &raw mut read) };
        assert!(ok);
        assert_eq!(read, word);
    }

    #[test]
    fn range_check() {
        assert!(fault_is_ours(1, 100, 100, 1));
        assert!(!fault_is_ours(1, 101, 100, 1));
        assert!(!fault_is_ours(1, 99, 100, 1));
        assert!(!fault_is_ours(2, 0, 100, 1));
        assert!(fault_is_ours(SI_KERNEL, 0, LOWER_HALF_END - 1, 2));
        assert!(!fault_is_ours(SI_KERNEL, 0, LOWER_HALF_END - 2, 2));
    }
}
