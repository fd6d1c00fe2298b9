//! The three guarded routines, in `global_asm!`, with their unwind data and
//! scope tables, and the scope filter they share.
//!
//! Each routine is one `.seh_proc` with a real prologue (three pushes of
//! nonvolatile registers, each described by `.seh_pushreg`), and its unwind
//! data names `__C_specific_handler`, the handler MSVC's `__try/__except`
//! uses. The scope table after the unwind info lists, for every group of
//! instructions that touches the untrusted range, `[begin, end)`, the
//! filter [`usercap_seh_filter`] and the jump target. When one of those
//! instructions faults, the handler calls the filter, which records the
//! exception code and address in the routine's [`Fault`] and accepts the
//! three memory-fault codes; the handler then unwinds to the routine's own
//! frame and resumes at the target, with `rsp` and the nonvolatile
//! registers as they were at the fault and every volatile register
//! undefined.
//!
//! Register roles (Windows x64 ABI; rsi, rdi and rbx are nonvolatile, which
//! is why they hold everything a jump target needs):
//!
//! - `rsi` = source cursor, `rdi` = destination cursor;
//! - `rbx` = end of the *untrusted* range (the source for `copy_from`, the
//!   destination for `copy_to` and `clear`);
//! - the first argument, the address of the call's [`Fault`] record, is
//!   kept in its home slot of the caller's shadow space, `[rsp + 32]` after
//!   the prologue, where the filter finds it from the establisher frame;
//! - `rcx` = bytes left in the fast paths only: a target recomputes it from
//!   `rbx` and the cursor.
//!
//! The size split (block classes, a 96- or 128-byte loop, a byte loop) and
//! the exactness argument are in the [module docs](super).

/// The routines' shape, checked against the unwind data by the tests: the
/// scope-table entries of each routine.
pub(crate) const SCOPES_PER_ROUTINE: u32 = 8;

/// STATUS_GUARD_PAGE_VIOLATION: the one exception code a target treats
/// differently (module docs, "Guard pages").
pub(crate) const GUARD_PAGE: u32 = 0x8000_0001;

/// Above this many bytes `copy_from`/`copy_to` copy 96-byte blocks in a
/// loop before the last block; `clear` stores 128-byte blocks above 128.
const COPY_LOOP_ABOVE: usize = 96;

core::arch::global_asm!(
    r#"
    // One scope-table entry: [begin, end) -> target, through the filter
    // `usercap_seh_filter` (module docs).
    .macro scope begin, end, target
    .rva \begin
    .rva \end
    .rva usercap_seh_filter
    .rva \target
    .endm

    // The start of a routine: symbol, prologue, unwind data header.
    .macro routine name
    .def \name
    .scl 2
    .type 32
    .endef
    .globl \name
    .p2align 4
\name:
    .seh_proc \name
    .seh_handler __C_specific_handler, @except
    push rsi
    .seh_pushreg rsi
    push rdi
    .seh_pushreg rdi
    push rbx
    .seh_pushreg rbx
    .seh_endprologue
    .endm

    .macro epilogue
    pop rbx
    pop rdi
    pop rsi
    ret
    .endm

    // One block of 16-byte moves through the volatile xmm0 to xmm5: xmm0
    // to xmm\hi from the head of the range ([rsi + 16 * r]) and xmm\lo to
    // xmm\top from its tail (the last one ending at rsi + rcx), all loads
    // before any store. Labels: \name\()_\tag\()_lb/_le around the loads,
    // _sb/_se around the stores.
    .macro vblock name, tag, hi, lo, top
\name\()_\tag\()_lb:
    .irp r, 0, 1, 2, 3, 4, 5
    .if \r <= \hi
    movups xmm\r, xmmword ptr [rsi + 16 * \r]
    .elseif \r >= \lo && \r <= \top
    movups xmm\r, xmmword ptr [rsi + rcx - 16 * (\top + 1 - \r)]
    .endif
    .endr
\name\()_\tag\()_le:
\name\()_\tag\()_sb:
    .irp r, 0, 1, 2, 3, 4, 5
    .if \r <= \hi
    movups xmmword ptr [rdi + 16 * \r], xmm\r
    .elseif \r >= \lo && \r <= \top
    movups xmmword ptr [rdi + rcx - 16 * (\top + 1 - \r)], xmm\r
    .endif
    .endr
\name\()_\tag\()_se:
    .endm

    // Two general-register moves of \w bytes (\a, \b are the registers of
    // that width): the first and the last \w bytes of the range.
    .macro gblock name, tag, a, b, w, ptr
\name\()_\tag\()_lb:
    mov \a, \ptr ptr [rsi]
    mov \b, \ptr ptr [rsi + rcx - \w]
\name\()_\tag\()_le:
\name\()_\tag\()_sb:
    mov \ptr ptr [rdi], \a
    mov \ptr ptr [rdi + rcx - \w], \b
\name\()_\tag\()_se:
    .endm

    // usercap_seh_copy_from / _to(rcx = code, rdx = dst, r8 = src,
    // r9 = len) -> rax = bytes not copied. \cur is the untrusted cursor
    // (rsi for copy_from, rdi for copy_to) and \u the label suffix of the
    // untrusted accesses (l = loads, s = stores).
    .macro copy name, cur, u
    routine \name
    mov qword ptr [rsp + 32], rcx
    mov rdi, rdx
    mov rsi, r8
    mov rcx, r9
    lea rbx, [\cur + rcx]
    test rcx, rcx
    jz .L\name\()_done
.L\name\()_dispatch:
    cmp rcx, 16
    jb .L\name\()_lt16
    cmp rcx, 32
    ja .L\name\()_gt32
    vblock \name, c16, 0, 1, 1
    jmp .L\name\()_done
.L\name\()_gt32:
    cmp rcx, 64
    ja .L\name\()_gt64
    vblock \name, c32, 1, 2, 3
    jmp .L\name\()_done
.L\name\()_gt64:
    cmp rcx, {loop_above}
    ja .L\name\()_loop
    vblock \name, c64, 2, 3, 5
    jmp .L\name\()_done
.L\name\()_loop:
    vblock \name, blk, 5, 6, 5
    add rsi, 96
    add rdi, 96
    sub rcx, 96
    cmp rcx, {loop_above}
    ja .L\name\()_loop
    jmp .L\name\()_dispatch
.L\name\()_lt16:
    cmp rcx, 8
    jb .L\name\()_lt8
    gblock \name, c8, rax, rdx, 8, qword
    jmp .L\name\()_done
.L\name\()_lt8:
    cmp rcx, 4
    jb .L\name\()_bytes
    gblock \name, c4, eax, edx, 4, dword
    jmp .L\name\()_done

    // A block faulted; the filter recorded the code and the address.
    // The cursors are at the block's start, where nothing of the block was
    // stored (copy_from) or where the stores that landed form a prefix
    // (copy_to).
.L\name\()_retry:
    mov rcx, qword ptr [rsp + 32]
    cmp dword ptr [rcx], {guard}
    jne .L\name\()_bytes
    // A guard page, now cleared: copy up to its first byte (no lower than
    // the cursor, no higher than the end), then fail there.
    mov rcx, qword ptr [rcx + 8]
    and rcx, -4096
    cmp rcx, \cur
    cmovb rcx, \cur
    cmp rcx, rbx
    cmova rcx, rbx
    sub rcx, \cur
    jz .L\name\()_fail
.L\name\()_gbyte:
\name\()_gbyte_lb:
    movzx eax, byte ptr [rsi]
\name\()_gbyte_le:
\name\()_gbyte_sb:
    mov byte ptr [rdi], al
\name\()_gbyte_se:
    inc rsi
    inc rdi
    dec rcx
    jnz .L\name\()_gbyte
    jmp .L\name\()_fail

    // Byte by byte from the cursor to the end: exact on any CPU, since a
    // fault here is at the cursor.
.L\name\()_bytes:
    mov rcx, rbx
    sub rcx, \cur
    jz .L\name\()_done
.L\name\()_byte:
\name\()_byte_lb:
    movzx eax, byte ptr [rsi]
\name\()_byte_le:
\name\()_byte_sb:
    mov byte ptr [rdi], al
\name\()_byte_se:
    inc rsi
    inc rdi
    dec rcx
    jnz .L\name\()_byte
.L\name\()_done:
    xor eax, eax
    epilogue

    // A fault at the cursor, or a guard page there: the filter recorded
    // the code; return the bytes from the cursor to the end.
.L\name\()_fail:
    mov rax, rbx
    sub rax, \cur
    epilogue

    .seh_handlerdata
    .long {scopes}
    scope \name\()_c4_\u\()b, \name\()_c4_\u\()e, .L\name\()_retry
    scope \name\()_c8_\u\()b, \name\()_c8_\u\()e, .L\name\()_retry
    scope \name\()_c16_\u\()b, \name\()_c16_\u\()e, .L\name\()_retry
    scope \name\()_c32_\u\()b, \name\()_c32_\u\()e, .L\name\()_retry
    scope \name\()_c64_\u\()b, \name\()_c64_\u\()e, .L\name\()_retry
    scope \name\()_blk_\u\()b, \name\()_blk_\u\()e, .L\name\()_retry
    scope \name\()_byte_\u\()b, \name\()_byte_\u\()e, .L\name\()_fail
    scope \name\()_gbyte_\u\()b, \name\()_gbyte_\u\()e, .L\name\()_fail
    .text
    .seh_endproc
    .endm

    .text
    copy usercap_seh_copy_from, rsi, l
    copy usercap_seh_copy_to, rdi, s

    // usercap_seh_clear(rcx = code, rdx = dst, r8 = len) -> rax = bytes not
    // zeroed. Stores only; rsi is saved for the common frame and unused.
    routine usercap_seh_clear
    mov qword ptr [rsp + 32], rcx
    mov rdi, rdx
    mov rcx, r8
    lea rbx, [rdi + rcx]
    test rcx, rcx
    jz .Lclear_done
    xorps xmm0, xmm0
    xor edx, edx
.Lclear_dispatch:
    cmp rcx, 16
    jb .Lclear_lt16
    cmp rcx, 32
    ja .Lclear_gt32
usercap_seh_clear_c16_b:
    movups xmmword ptr [rdi], xmm0
    movups xmmword ptr [rdi + rcx - 16], xmm0
usercap_seh_clear_c16_e:
    jmp .Lclear_done
.Lclear_gt32:
    cmp rcx, 64
    ja .Lclear_gt64
usercap_seh_clear_c32_b:
    movups xmmword ptr [rdi], xmm0
    movups xmmword ptr [rdi + 16], xmm0
    movups xmmword ptr [rdi + rcx - 32], xmm0
    movups xmmword ptr [rdi + rcx - 16], xmm0
usercap_seh_clear_c32_e:
    jmp .Lclear_done
.Lclear_gt64:
    cmp rcx, 128
    ja .Lclear_loop
usercap_seh_clear_c64_b:
    .irp r, 0, 1, 2, 3
    movups xmmword ptr [rdi + 16 * \r], xmm0
    .endr
    .irp r, 4, 3, 2, 1
    movups xmmword ptr [rdi + rcx - 16 * \r], xmm0
    .endr
usercap_seh_clear_c64_e:
    jmp .Lclear_done
.Lclear_loop:
usercap_seh_clear_blk_b:
    .irp r, 0, 1, 2, 3, 4, 5, 6, 7
    movups xmmword ptr [rdi + 16 * \r], xmm0
    .endr
usercap_seh_clear_blk_e:
    add rdi, 128
    sub rcx, 128
    cmp rcx, 128
    ja .Lclear_loop
    jmp .Lclear_dispatch
.Lclear_lt16:
    cmp rcx, 8
    jb .Lclear_lt8
usercap_seh_clear_c8_b:
    mov qword ptr [rdi], rdx
    mov qword ptr [rdi + rcx - 8], rdx
usercap_seh_clear_c8_e:
    jmp .Lclear_done
.Lclear_lt8:
    cmp rcx, 4
    jb .Lclear_bytes
usercap_seh_clear_c4_b:
    mov dword ptr [rdi], edx
    mov dword ptr [rdi + rcx - 4], edx
usercap_seh_clear_c4_e:
    jmp .Lclear_done

.Lclear_retry:
    mov rcx, qword ptr [rsp + 32]
    cmp dword ptr [rcx], {guard}
    jne .Lclear_bytes
    mov rcx, qword ptr [rcx + 8]
    and rcx, -4096
    cmp rcx, rdi
    cmovb rcx, rdi
    cmp rcx, rbx
    cmova rcx, rbx
    sub rcx, rdi
    jz .Lclear_fail
.Lclear_gbyte:
usercap_seh_clear_gbyte_b:
    mov byte ptr [rdi], 0
usercap_seh_clear_gbyte_e:
    inc rdi
    dec rcx
    jnz .Lclear_gbyte
    jmp .Lclear_fail

.Lclear_bytes:
    mov rcx, rbx
    sub rcx, rdi
    jz .Lclear_done
.Lclear_byte:
usercap_seh_clear_byte_b:
    mov byte ptr [rdi], 0
usercap_seh_clear_byte_e:
    inc rdi
    dec rcx
    jnz .Lclear_byte
.Lclear_done:
    xor eax, eax
    epilogue
.Lclear_fail:
    mov rax, rbx
    sub rax, rdi
    epilogue

    .seh_handlerdata
    .long {scopes}
    scope usercap_seh_clear_c4_b, usercap_seh_clear_c4_e, .Lclear_retry
    scope usercap_seh_clear_c8_b, usercap_seh_clear_c8_e, .Lclear_retry
    scope usercap_seh_clear_c16_b, usercap_seh_clear_c16_e, .Lclear_retry
    scope usercap_seh_clear_c32_b, usercap_seh_clear_c32_e, .Lclear_retry
    scope usercap_seh_clear_c64_b, usercap_seh_clear_c64_e, .Lclear_retry
    scope usercap_seh_clear_blk_b, usercap_seh_clear_blk_e, .Lclear_retry
    scope usercap_seh_clear_byte_b, usercap_seh_clear_byte_e, .Lclear_fail
    scope usercap_seh_clear_gbyte_b, usercap_seh_clear_gbyte_e, .Lclear_fail
    .text
    .seh_endproc

    .purgem scope
    .purgem routine
    .purgem epilogue
    .purgem vblock
    .purgem gblock
    .purgem copy
    "#,
    loop_above = const COPY_LOOP_ABOVE,
    guard = const GUARD_PAGE,
    scopes = const SCOPES_PER_ROUTINE,
);

// SAFETY: the three routines are defined in the `global_asm!` above, with
// the Windows x64 calling convention (`extern "system"` is `extern "C"` on
// x86_64 Windows) and these signatures; each reads `len` bytes at `src`
// and/or writes `len` bytes at `dst`, and its filter writes `*fault` only
// on a fault. The callers' contracts are in `super`.
unsafe extern "system" {
    pub(crate) fn usercap_seh_copy_from(
        fault: *mut Fault,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> usize;
    pub(crate) fn usercap_seh_copy_to(
        fault: *mut Fault,
        dst: *mut u8,
        src: *const u8,
        len: usize,
    ) -> usize;
    pub(crate) fn usercap_seh_clear(fault: *mut Fault, dst: *mut u8, len: usize) -> usize;
}

/// What the filter records of the last fault of one routine call. The
/// routine's first argument points at it; the targets read `code` at
/// offset 0 and `address` at offset 8.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The exception code (0 until a fault).
    pub(crate) code: u32,
    /// The address the faulting access touched (`ExceptionInformation[1]`).
    pub(crate) address: usize,
}

const _: () = assert!(core::mem::offset_of!(Fault, code) == 0);
const _: () = assert!(core::mem::offset_of!(Fault, address) == 8);

/// `EXCEPTION_RECORD` (winnt.h), the fields the filter reads.
#[repr(C)]
pub(crate) struct ExceptionRecord {
    pub(crate) code: u32,
    pub(crate) flags: u32,
    pub(crate) record: *mut ExceptionRecord,
    pub(crate) address: *mut core::ffi::c_void,
    pub(crate) parameters: u32,
    pub(crate) information: [usize; 15],
}

/// `EXCEPTION_POINTERS` (winnt.h).
#[repr(C)]
pub(crate) struct ExceptionPointers {
    pub(crate) record: *mut ExceptionRecord,
    pub(crate) context: *mut core::ffi::c_void,
}

/// `EXCEPTION_EXECUTE_HANDLER`: the scope takes the exception.
const EXECUTE_HANDLER: i32 = 1;
/// `EXCEPTION_CONTINUE_SEARCH`: not ours; the search goes on.
const CONTINUE_SEARCH: i32 = 0;

/// Offset of the first argument's home slot from the establisher frame:
/// the routine's body `rsp`, after its three pushes (the slot is at `rsp +
/// 8` on entry).
const FAULT_SLOT: usize = 32;

/// The scope filter of every routine, called by `__C_specific_handler`
/// during dispatch, before anything is unwound, when an instruction inside
/// one of the routines' scopes raised an exception.
///
/// It takes exactly the memory faults a scoped access can raise
/// (`STATUS_ACCESS_VIOLATION`, `STATUS_IN_PAGE_ERROR`,
/// `STATUS_GUARD_PAGE_VIOLATION`) and records the code and the address in
/// the call's [`Fault`]; anything else (a breakpoint, an illegal
/// instruction) is refused and goes on to the next handler, as if the
/// scope were not there. It only reads the exception record and writes the
/// record: it cannot fault, take a lock or panic.
///
/// # Safety
/// Only `__C_specific_handler` calls it, for a fault inside a scope of one
/// of the three routines: `pointers` is the dispatcher's valid
/// `EXCEPTION_POINTERS` and `frame` that routine's establisher frame, whose
/// slot `frame + 32` holds the `*mut Fault` the routine was called with.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "system" fn usercap_seh_filter(
    pointers: *const ExceptionPointers,
    frame: usize,
) -> i32 {
    // SAFETY: `pointers` is null or the dispatcher's EXCEPTION_POINTERS,
    // valid for the duration of the call (our contract).
    let Some(pointers) = (unsafe { pointers.as_ref() }) else {
        return CONTINUE_SEARCH;
    };
    // SAFETY: the dispatcher's EXCEPTION_RECORD, likewise.
    let Some(record) = (unsafe { pointers.record.as_ref() }) else {
        return CONTINUE_SEARCH;
    };
    if !matches!(
        record.code,
        super::STATUS_ACCESS_VIOLATION | super::STATUS_IN_PAGE_ERROR | GUARD_PAGE
    ) {
        return CONTINUE_SEARCH;
    }
    // For these codes ExceptionInformation[1] is the address touched.
    let address = if record.parameters >= 2 {
        record.information[1]
    } else {
        0
    };
    let slot: *const *mut Fault = core::ptr::with_exposed_provenance(frame + FAULT_SLOT);
    // SAFETY: `frame + 32` is the home slot in which the routine stored its
    // first argument (our contract): aligned and readable, on the stack of
    // the thread this filter runs on.
    let fault = unsafe { slot.read() };
    // SAFETY: the routine's first argument is the address of a live, aligned
    // `Fault` that its caller owns for the call, and nothing else accesses it
    // until the routine returns.
    unsafe {
        fault.write(Fault {
            code: record.code,
            address,
        });
    };
    EXECUTE_HANDLER
}

/// The filter's address taken in Rust: with `-C control-flow-guard` the
/// compiler then lists it in the image's CFG table, so that kernel CFG lets
/// `__C_specific_handler` call it (the scope tables name it only in
/// assembly, which the compiler does not see).
#[used]
static FILTER: unsafe extern "system" fn(*const ExceptionPointers, usize) -> i32 =
    usercap_seh_filter;
