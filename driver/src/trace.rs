//! Tracing: `DbgPrintEx(DPFLTR_IHVDRIVER_ID, level, "%s", message)`.
//!
//! What is printed, at which level and in which words is decided in
//! `plan::trace`, portable and unit-tested; this module only hands the
//! formatted message to the kernel. See `plan::trace` for why `DbgPrintEx`
//! (and not `wdk::println!` or TraceLogging), and docs/windows.md for the
//! `Debug Print Filter` value that shows each level.

use wdk_sys::ntddk::DbgPrintEx;

use crate::plan::trace::{self, COMPONENT_ID, Event, Level, Message};

// The portable constants are the header's values: checked against the
// bindings at compile time. `as i64` compares them whatever integer type
// bindgen chose (a C enum is `int`, a `#define` `u32`), losslessly.
#[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
const _: () = {
    assert!(wdk_sys::_DPFLTR_TYPE::DPFLTR_IHVDRIVER_ID as i64 == COMPONENT_ID as i64);
    assert!(wdk_sys::DPFLTR_ERROR_LEVEL as i64 == Level::Error.dpfltr() as i64);
    assert!(wdk_sys::DPFLTR_WARNING_LEVEL as i64 == Level::Warning.dpfltr() as i64);
    assert!(wdk_sys::DPFLTR_TRACE_LEVEL as i64 == Level::Trace.dpfltr() as i64);
    assert!(wdk_sys::DPFLTR_INFO_LEVEL as i64 == Level::Info.dpfltr() as i64);
};

/// Prints `event` if it is one that is traced (`plan::trace::level`).
///
/// Callable at IRQL <= DISPATCH_LEVEL, which covers every caller: DriverEntry,
/// EvtDriverDeviceAdd and EvtDriverUnload run at PASSIVE_LEVEL, request
/// completion at the caller's IRQL, at most DISPATCH_LEVEL.
pub(crate) fn emit(event: &Event) {
    let Some(level) = trace::level(event) else {
        return;
    };
    let message = Message::of(event);
    // SAFETY: (1) the format is the NUL-terminated literal "%s", which
    // consumes exactly one argument, a pointer to a NUL-terminated narrow
    // string, and exactly one is passed; (2) `message.as_ptr()` points at
    // `message`'s buffer, which always holds a NUL after its text (Message
    // invariant) and lives on this stack frame until after the call;
    // (3) ComponentId and Level are dpfilter.h's values (checked against the
    // bindings above); (4) DbgPrintEx may be called at IRQL <= DIRQL, and
    // "%s" is not one of the wide conversions restricted to PASSIVE_LEVEL.
    unsafe {
        DbgPrintEx(
            COMPONENT_ID,
            level.dpfltr(),
            c"%s".as_ptr(),
            message.as_ptr(),
        )
    };
}
