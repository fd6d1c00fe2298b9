//! The unwind data in the built image is what `routines.rs` says: read back
//! at run time with `RtlLookupFunctionEntry`, the function the dispatcher
//! itself uses, and decoded by hand (`UNWIND_INFO`, "x64 exception
//! handling" in Microsoft's documentation).

use super::routines::{self, SCOPES_PER_ROUTINE};

use windows_sys::Win32::System::Diagnostics::Debug::RtlLookupFunctionEntry;

// SAFETY: `__C_specific_handler` is the handler the routines name; its
// address is taken, never called, here.
unsafe extern "C" {
    fn __C_specific_handler();
}

/// `UNW_FLAG_EHANDLER`: the handler is called during dispatch.
const UNW_FLAG_EHANDLER: u8 = 1;
/// `UWOP_PUSH_NONVOL` with the register numbers of rbx, rsi, rdi.
const UWOP_PUSH_NONVOL: u8 = 0;
const RBX: u8 = 3;
const RSI: u8 = 6;
const RDI: u8 = 7;

/// One routine's unwind data, decoded.
#[derive(Debug)]
struct Decoded {
    begin: usize,
    end: usize,
    version: u8,
    flags: u8,
    prolog: u8,
    frame_register: u8,
    codes: Vec<(u8, u8, u8)>,
    handler: usize,
    scopes: Vec<[usize; 4]>,
}

/// `len` bytes of the image at `addr`.
fn image_bytes(addr: usize, len: usize) -> &'static [u8] {
    // SAFETY: the callers pass ranges inside this image's `.pdata`/`.xdata`
    // (an address that `RtlLookupFunctionEntry` returned, plus offsets the
    // unwind format defines within the record it points at): mapped
    // read-only for the life of the process, never written.
    unsafe { core::slice::from_raw_parts(core::ptr::with_exposed_provenance(addr), len) }
}

fn u32_at(addr: usize) -> usize {
    let b = image_bytes(addr, 4);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

fn decode(routine: usize) -> Decoded {
    let mut base = 0_u64;
    // SAFETY: a query of the loader's function tables for an address of
    // this image; `base` is a valid out location and no history table is
    // passed.
    let entry =
        unsafe { RtlLookupFunctionEntry(routine as u64, &raw mut base, core::ptr::null_mut()) };
    assert!(!entry.is_null(), "no RUNTIME_FUNCTION for {routine:#x}");
    let base = usize::try_from(base).unwrap();
    let entry = entry.addr();
    let begin = base + u32_at(entry);
    let end = base + u32_at(entry + 4);
    let info = base + u32_at(entry + 8);
    let head = image_bytes(info, 4);
    let count = usize::from(head[2]);
    let raw = image_bytes(info + 4, 2 * count);
    let codes = raw
        .chunks(2)
        .map(|c| (c[0], c[1] & 0xF, c[1] >> 4))
        .collect();
    // The codes array has an even number of slots.
    let after = info + 4 + 2 * count.next_multiple_of(2);
    let handler = base + u32_at(after);
    let n = u32_at(after + 4);
    let scopes = (0..n)
        .map(|i| {
            let at = after + 8 + 16 * i;
            [u32_at(at), u32_at(at + 4), u32_at(at + 8), u32_at(at + 12)].map(|rva| base + rva)
        })
        .collect();
    Decoded {
        begin,
        end,
        version: head[0] & 7,
        flags: head[0] >> 3,
        prolog: head[1],
        frame_register: head[3] & 0xF,
        codes,
        handler,
        scopes,
    }
}

#[test]
fn the_unwind_data_is_what_the_source_says() {
    let handler = __C_specific_handler as *const () as usize;
    let filter = routines::usercap_seh_filter as *const () as usize;
    for (name, routine) in [
        (
            "copy_from",
            routines::usercap_seh_copy_from as *const () as usize,
        ),
        (
            "copy_to",
            routines::usercap_seh_copy_to as *const () as usize,
        ),
        ("clear", routines::usercap_seh_clear as *const () as usize),
    ] {
        let d = decode(routine);
        eprintln!("{name}: {d:x?}");
        assert_eq!(d.begin, routine, "{name}: the entry starts at the routine");
        assert_eq!(d.version, 1, "{name}");
        assert_eq!(
            d.flags, UNW_FLAG_EHANDLER,
            "{name}: an exception handler only"
        );
        assert_eq!(d.frame_register, 0, "{name}: no frame register");
        // push rsi; push rdi; push rbx: one byte each, described in
        // reverse order, as the unwinder undoes them.
        assert_eq!(d.prolog, 3, "{name}: prologue size");
        assert_eq!(
            d.codes,
            [
                (3, UWOP_PUSH_NONVOL, RBX),
                (2, UWOP_PUSH_NONVOL, RDI),
                (1, UWOP_PUSH_NONVOL, RSI)
            ],
            "{name}: prologue codes"
        );
        assert_eq!(
            d.handler, handler,
            "{name}: the handler is __C_specific_handler"
        );
        assert_eq!(
            d.scopes.len(),
            SCOPES_PER_ROUTINE as usize,
            "{name}: scopes"
        );
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for [begin, end, scope_filter, target] in &d.scopes {
            assert!(begin < end, "{name}: empty scope");
            assert!(
                *begin >= d.begin + usize::from(d.prolog) && *end <= d.end,
                "{name}: a scope outside the body"
            );
            assert_eq!(*scope_filter, filter, "{name}: every scope uses the filter");
            assert!(
                (d.begin..d.end).contains(target) && !(begin..end).contains(&target),
                "{name}: a target outside the routine, or inside its own scope"
            );
            assert!(
                ranges.iter().all(|&(b, e)| end <= &b || begin >= &e),
                "{name}: overlapping scopes"
            );
            ranges.push((*begin, *end));
        }
    }
}
