//! The WDFDEVICE's object context: where the `usercap_device::Device` lives.
//!
//! KMDF drivers in C declare a context type with
//! `WDF_DECLARE_CONTEXT_TYPE_WITH_NAME`, a macro that wdk-sys does not
//! generate (windows-drivers-rs issues #330, #242 and #167: no context-type
//! helper yet). The macro only defines a static
//! `WDF_OBJECT_CONTEXT_TYPE_INFO` whose `UniqueType` points at itself, and an
//! accessor that calls `WdfObjectGetTypedContextWorker` with it. This module
//! writes those two things by hand.
//!
//! Why a context and not a global: the state belongs to the device object.
//! The framework allocates it with the device (zeroed), frees it with the
//! device, and a second devnode (someone running `devgen /add` twice) gets a
//! state of its own instead of sharing, and outliving, the first one's lock.
//! (That second device is reachable through its device interface only:
//! `\\.\UserCap` names the first; see lib.rs.)
//!
//! Lifecycle: EvtDriverDeviceAdd writes a `DeviceContext` into the zeroed
//! context right after `WdfDeviceCreate` and before it returns; no request
//! can reach the device before EvtDriverDeviceAdd returns (the framework
//! clears DO_DEVICE_INITIALIZING only afterwards, and the symbolic link and
//! interface are created last). The context is never dropped: `Device` needs
//! no drop (checked at compile time below), and the wait lock inside it is a
//! framework object the framework deletes with its parent device.

use core::mem::{needs_drop, size_of};

use usercap_device::Device;
use wdk_sys::{
    PCWDF_OBJECT_CONTEXT_TYPE_INFO, ULONG, WDF_OBJECT_CONTEXT_TYPE_INFO, WDFDEVICE, WDFOBJECT,
    call_unsafe_wdf_function_binding,
};

use crate::lock::WaitLock;
use crate::plan;

/// The device context: the portable device with its wait lock.
pub(crate) struct DeviceContext {
    /// The IOCTL handlers and state.
    pub(crate) device: Device<WaitLock>,
}

// The framework never runs Rust destructors on context memory.
const _: () = assert!(!needs_drop::<DeviceContext>());
// Context memory is pool memory: MEMORY_ALLOCATION_ALIGNMENT (16 on x64).
// context::raw also checks the pointer's alignment at run time.
const _: () = assert!(plan::fits_pool::<DeviceContext>());

/// `WDF_OBJECT_CONTEXT_TYPE_INFO` holds raw pointers, so it is not `Sync`;
/// this wrapper lets it be a `static`, as the C macro's global is.
#[repr(transparent)]
struct TypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO);

// SAFETY: (1) the value is immutable (a plain static, no interior
// mutability); (2) its pointers point at static, immutable data (a C string
// literal and the static itself); (3) the framework only reads it.
unsafe impl Sync for TypeInfo {}

/// `sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO)` as the ULONG `Size` holds.
const TYPE_INFO_SIZE: ULONG = match plan::ulong(size_of::<WDF_OBJECT_CONTEXT_TYPE_INFO>()) {
    Some(size) => size,
    None => panic!("WDF_OBJECT_CONTEXT_TYPE_INFO does not fit its ULONG Size"),
};

/// What `WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(DeviceContext, ...)` would emit.
///
/// The C macro places it in `.data`; the framework only reads it (nothing
/// in the KMDF sources writes a type info), so an immutable static, in
/// read-only memory, is enough.
static DEVICE_CONTEXT_TYPE: TypeInfo = TypeInfo(WDF_OBJECT_CONTEXT_TYPE_INFO {
    Size: TYPE_INFO_SIZE,
    // LPCSTR in KMDF 1.31 and later (PCHAR before): a `*const c_char`.
    ContextName: c"UserCapDeviceContext".as_ptr(),
    ContextSize: size_of::<DeviceContext>(),
    UniqueType: &raw const DEVICE_CONTEXT_TYPE.0,
    EvtDriverGetUniqueContextType: None,
});

/// The context type to put in `WDF_OBJECT_ATTRIBUTES::ContextTypeInfo`
/// (`WDF_OBJECT_ATTRIBUTES_SET_CONTEXT_TYPE` stores `UniqueType`, which is
/// this same pointer).
pub(crate) fn type_info() -> PCWDF_OBJECT_CONTEXT_TYPE_INFO {
    &raw const DEVICE_CONTEXT_TYPE.0
}

/// The raw context memory of `device`: zeroed until EvtDriverDeviceAdd
/// writes it, a `DeviceContext` afterwards. `None` if the framework has no
/// context of this type for the handle (impossible for our device) or the
/// memory is misaligned.
pub(crate) fn raw(device: WDFDEVICE) -> Option<*mut DeviceContext> {
    let object: WDFOBJECT = device.cast();
    // SAFETY: (1) `device` is a live WDFDEVICE handle (the callers are
    // EvtDriverDeviceAdd after WdfDeviceCreate succeeded, and
    // EvtIoInCallerContext, which the framework calls with the device's
    // handle); (2) `type_info()` points at a valid, static type info;
    // (3) the call is valid at any IRQL (WdfObjectGetTypedContext).
    let context = unsafe {
        call_unsafe_wdf_function_binding!(WdfObjectGetTypedContextWorker, object, type_info())
    };
    let context = context.cast::<DeviceContext>();
    (!context.is_null() && context.is_aligned()).then_some(context)
}

/// The device living in `device`'s context.
///
/// Only valid after EvtDriverDeviceAdd initialised the context, which is
/// every time the framework calls EvtIoInCallerContext (see module docs).
pub(crate) fn device<'d>(device: WDFDEVICE) -> Option<&'d Device<WaitLock>> {
    let context = raw(device)?;
    // SAFETY: (1) `context` is non-null, aligned, and points at the device's
    // context memory, which lives as long as the WDFDEVICE, i.e. longer than
    // the request being processed (the caller's 'd); (2) it holds an
    // initialised DeviceContext: EvtDriverDeviceAdd wrote it before any
    // request could arrive; (3) after that write it is only ever accessed
    // through shared references (Device's state is behind its own lock and
    // atomics).
    let context = unsafe { &*context };
    Some(&context.device)
}
