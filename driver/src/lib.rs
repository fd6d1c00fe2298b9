//! usercap.sys: the KMDF shell around `usercap-device`.
//!
//! Everything the driver decides lives in the portable crates (`usercap`,
//! `usercap-protocol`, `usercap-device`), which are tested on Linux and under
//! Miri. This crate is the thin Windows layer that connects them to the
//! framework:
//!
//! - this file: `DriverEntry` (`WdfDriverCreate`) and `EvtDriverDeviceAdd`
//!   (device type, characteristics, in-caller-context callback, device
//!   object with its context, wait lock, device interface, symbolic link);
//! - `io`: `EvtIoInCallerContext`, which shapes each DEVICE_CONTROL request
//!   for `Device::dispatch` and completes it;
//! - `space`: `KmdfSpace`, the `AddressSpace` over
//!   `WdfRequestProbeAndLockUserBufferForRead/ForWrite`;
//! - `lock`: `WaitLock`, a `lock_api::RawMutex` over a `WDFWAITLOCK`;
//! - `context`: the WDFDEVICE context that holds the `Device`;
//! - `plan`: the shell's integer decisions, portable and unit-tested on
//!   every host.
//!
//! All `unsafe` code of the driver is in this crate, one operation per block,
//! each with a numbered `// SAFETY:` proof.
//!
//! On any target but Windows the crate compiles to `plan` alone: wdk-build
//! refuses non-Windows hosts, so the WDK crates and every module that uses
//! them are `cfg(target_os = "windows")`. See docs/windows.md.
#![cfg_attr(all(target_os = "windows", not(test)), no_std)]

#[cfg(all(target_os = "windows", not(target_arch = "x86_64")))]
compile_error!("usercap-driver is written for x86_64 (lfence, rep movsb); see docs/windows.md");

// The pieces used only by the Windows modules are dead code elsewhere.
#[cfg_attr(not(target_os = "windows"), allow(dead_code))]
mod plan;

#[cfg(target_os = "windows")]
mod context;
#[cfg(target_os = "windows")]
mod io;
#[cfg(target_os = "windows")]
mod lock;
#[cfg(target_os = "windows")]
mod space;

#[cfg(all(target_os = "windows", not(test)))]
extern crate wdk_panic;

/// Every Rust heap allocation of the driver (the captures' pool copies) goes
/// through wdk-alloc: `ExAllocatePool2(POOL_FLAG_NON_PAGED, ..)`.
#[cfg(all(target_os = "windows", not(test)))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

#[cfg(target_os = "windows")]
pub use entry::driver_entry;

/// `DriverEntry` and `EvtDriverDeviceAdd`.
#[cfg(target_os = "windows")]
mod entry {
    use core::mem::size_of;
    use core::ptr;

    use usercap_device::Device;
    use usercap_protocol::{FILE_DEVICE_USERCAP, INTERFACE_GUID, SYMBOLIC_LINK_NAME};
    use wdk_sys::{
        BOOLEAN, DRIVER_OBJECT, FILE_DEVICE_SECURE_OPEN, GUID, NT_SUCCESS, NTSTATUS,
        PCUNICODE_STRING, PDRIVER_OBJECT, PWDFDEVICE_INIT, STATUS_INVALID_DEVICE_STATE,
        STATUS_SUCCESS, ULONG, UNICODE_STRING, WDF_DRIVER_CONFIG, WDF_NO_HANDLE,
        WDF_NO_OBJECT_ATTRIBUTES, WDFDEVICE, WDFDRIVER, WDFOBJECT,
        call_unsafe_wdf_function_binding,
    };

    use crate::context::{self, DeviceContext};
    use crate::io::evt_io_in_caller_context;
    use crate::lock::{WaitLock, object_attributes};
    use crate::plan;

    /// `sizeof(WDF_DRIVER_CONFIG)` as the ULONG its `Size` holds
    /// (`WDF_DRIVER_CONFIG_INIT` is not in the bindings).
    const DRIVER_CONFIG_SIZE: ULONG = {
        let size = size_of::<WDF_DRIVER_CONFIG>();
        assert!(size <= ULONG::MAX as usize);
        #[allow(clippy::cast_possible_truncation)] // asserted on the line above
        let size = size as ULONG;
        size
    };

    /// The pool tag of the framework's allocations for this driver, "UCap"
    /// as `!poolused` and Driver Verifier's pool tracking show it. (The
    /// captures' own pool copies carry wdk-alloc's tag, "rust".)
    const POOL_TAG: ULONG = u32::from_le_bytes(*b"UCap");

    /// `\DosDevices\UserCap` in UTF-16, for the symbolic link.
    const LINK_UNITS: usize = SYMBOLIC_LINK_NAME.len();
    static LINK_NAME: [u16; LINK_UNITS] = plan::ascii_utf16(SYMBOLIC_LINK_NAME);

    /// The device interface class, from the protocol crate.
    const INTERFACE: GUID = GUID {
        Data1: INTERFACE_GUID.0,
        Data2: INTERFACE_GUID.1,
        Data3: INTERFACE_GUID.2,
        Data4: INTERFACE_GUID.3,
    };

    /// `WdfDeviceInitSetCharacteristics`'s OrInValues: add to, do not replace,
    /// the characteristics the framework already set.
    const OR_IN_VALUES: BOOLEAN = 1;

    /// The driver's entry point, called by KMDF's `FxDriverEntry` stub (the
    /// image's real entry point, `/ENTRY:FxDriverEntry` from wdk-build) at
    /// PASSIVE_LEVEL.
    ///
    /// It only creates the WDFDRIVER. As a PnP driver with no unload work of
    /// its own it registers no EvtDriverUnload: the framework unloads it when
    /// its last device is removed.
    ///
    /// # Safety
    /// Called only by the system, with a valid driver object and registry
    /// path, once per load.
    // SAFETY: "DriverEntry" is the symbol KMDF's FxDriverEntry stub calls; no
    // other item of this image exports that name.
    #[unsafe(export_name = "DriverEntry")]
    pub unsafe extern "system" fn driver_entry(
        driver: &mut DRIVER_OBJECT,
        registry_path: PCUNICODE_STRING,
    ) -> NTSTATUS {
        let mut config = WDF_DRIVER_CONFIG {
            Size: DRIVER_CONFIG_SIZE,
            EvtDriverDeviceAdd: Some(evt_driver_device_add),
            DriverPoolTag: POOL_TAG,
            ..WDF_DRIVER_CONFIG::default()
        };
        // SAFETY: (1) `driver` and `registry_path` are the valid, non-null
        // arguments the system passed to DriverEntry (this function's
        // contract), forwarded unchanged; (2) no driver attributes are
        // needed, and WDF_NO_OBJECT_ATTRIBUTES (null) is allowed; (3)
        // `config` is a fully initialised WDF_DRIVER_CONFIG with Size set,
        // living across the call; (4) the WDFDRIVER out pointer may be
        // WDF_NO_HANDLE (null): we never need the handle; (5) DriverEntry
        // runs at PASSIVE_LEVEL, as documented for WdfDriverCreate.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDriverCreate,
                ptr::from_mut(driver) as PDRIVER_OBJECT,
                registry_path,
                WDF_NO_OBJECT_ATTRIBUTES,
                &mut config,
                WDF_NO_HANDLE.cast::<WDFDRIVER>()
            )
        }
    }

    /// `EvtDriverDeviceAdd`: creates the device for the `Root\UserCap`
    /// devnode, at PASSIVE_LEVEL.
    ///
    /// On failure the framework frees `device_init` itself (and deletes a
    /// device already created); the driver must not call WdfDeviceInitFree.
    extern "C" fn evt_driver_device_add(
        _driver: WDFDRIVER,
        mut device_init: PWDFDEVICE_INIT,
    ) -> NTSTATUS {
        // The device type of the FDO: the protocol's vendor type, the one its
        // IOCTL codes carry.
        // SAFETY: (1) `device_init` is the framework's WDFDEVICE_INIT for this
        // call, valid until WdfDeviceCreate; (2) called before
        // WdfDeviceCreate, as required; (3) IRQL <= DISPATCH_LEVEL (we are at
        // PASSIVE_LEVEL).
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceInitSetDeviceType,
                device_init,
                FILE_DEVICE_USERCAP
            );
        }
        // FILE_DEVICE_SECURE_OPEN: the device's security applies to opens of
        // any name below the device (`\\.\UserCap\anything`). The framework
        // documents that it always sets it; OR-ing it in states the intent and
        // costs nothing.
        // SAFETY: (1) valid `device_init`, before WdfDeviceCreate; (2) OrInValues
        // keeps what the framework set; (3) IRQL <= DISPATCH_LEVEL.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceInitSetCharacteristics,
                device_init,
                FILE_DEVICE_SECURE_OPEN,
                OR_IN_VALUES
            );
        }
        // SAFETY: (1) valid `device_init`, before WdfDeviceCreate, as
        // required; (2) the callback has the EVT_WDF_IO_IN_CALLER_CONTEXT
        // signature and lives as long as the image; (3) IRQL <= DISPATCH_LEVEL.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceInitSetIoInCallerContextCallback,
                device_init,
                Some(evt_io_in_caller_context)
            );
        }

        // No WdfDeviceInitAssignSDDLString: it needs a named FDO (else
        // WdfDeviceCreate fails with STATUS_INVALID_SECURITY_DESCR), and
        // Microsoft advises against naming FDOs. The INF's HW AddReg
        // `Security` value (SYSTEM and Administrators only) is applied by the
        // PnP manager to every device object of the stack, the PDO included,
        // which is what both the interface and \DosDevices\UserCap resolve to.
        let mut attributes = object_attributes(ptr::null_mut());
        attributes.ContextTypeInfo = context::type_info();
        let mut device: WDFDEVICE = ptr::null_mut();
        // SAFETY: (1) `device_init` is the framework's pointer, passed by
        // address as the DDI requires (it takes ownership and may null it);
        // (2) `attributes` is initialised as WDF_OBJECT_ATTRIBUTES_INIT plus
        // a context type, with a null ParentObject as a WDFDEVICE requires;
        // (3) `device` is a valid out location; (4) PASSIVE_LEVEL, as
        // documented.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceCreate,
                &mut device_init,
                &mut attributes,
                &mut device
            )
        };
        if !NT_SUCCESS(status) {
            return status;
        }
        let object: WDFOBJECT = device.cast();

        let lock = match WaitLock::create(object) {
            Ok(lock) => lock,
            Err(status) => return status,
        };
        let Some(slot) = context::raw(device) else {
            return STATUS_INVALID_DEVICE_STATE;
        };
        // SAFETY: (1) `slot` is the device's context memory for
        // DeviceContext: non-null, aligned (context::raw checked both), and
        // ContextSize = size_of::<DeviceContext>() bytes long; (2) it holds
        // no value yet (zeroed by the framework), so overwriting drops
        // nothing; (3) no request can use it concurrently: the device
        // receives I/O only after this callback returns.
        unsafe {
            ptr::write(
                slot,
                DeviceContext {
                    device: Device::with_raw_lock(lock),
                },
            );
        }

        // SAFETY: (1) `device` is the live WDFDEVICE just created; (2)
        // INTERFACE is a valid GUID with static lifetime; (3) no reference
        // string (null is allowed); (4) PASSIVE_LEVEL, as documented. Created
        // in EvtDriverDeviceAdd, the interface is enabled by the framework
        // when the device starts.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceCreateDeviceInterface,
                device,
                &INTERFACE,
                ptr::null()
            )
        };
        if !NT_SUCCESS(status) {
            return status;
        }

        let link = UNICODE_STRING {
            Length: plan::unicode_bytes(LINK_UNITS),
            MaximumLength: plan::unicode_bytes(LINK_UNITS),
            Buffer: LINK_NAME.as_ptr().cast_mut(),
        };
        // SAFETY: (1) `device` is the live WDFDEVICE; (2) `link` is a
        // UNICODE_STRING over the static LINK_NAME, Length and MaximumLength
        // in bytes, no terminator needed; the framework copies the name and
        // never writes through Buffer; (3) PASSIVE_LEVEL, as documented.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, &link)
        };
        if !NT_SUCCESS(status) {
            return status;
        }
        STATUS_SUCCESS
    }
}
