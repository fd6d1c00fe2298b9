//! usercap.sys: the KMDF shell around `usercap-device`.
//!
//! Everything the driver decides lives in the portable crates (`usercap`,
//! `usercap-protocol`, `usercap-device`), which are tested on Linux and under
//! Miri. This crate is the thin Windows layer that connects them to the
//! framework:
//!
//! - this file: `DriverEntry` (`WdfDriverCreate`), `EvtDriverDeviceAdd`
//!   (device type, characteristics, in-caller-context callback, remove lock
//!   for I/O, device object with its context, wait lock, device interface,
//!   symbolic link), `EvtDriverUnload`, and the global allocator;
//! - `io`: `EvtIoInCallerContext`, which shapes each DEVICE_CONTROL request
//!   for `Device::dispatch` and completes it;
//! - `space`: `KmdfSpace`, the `AddressSpace` of a request; its user-mode
//!   accesses go through `space::seh` (`usercap-seh`'s `SehSpace`: the
//!   probe rules, the address mask, one SEH-guarded copy), or with the
//!   `probe-and-lock` feature through `space::probe_and_lock`
//!   (`WdfRequestProbeAndLockUserBufferForRead/ForWrite`);
//! - `lock`: `WaitLock`, a `lock_api::RawMutex` over a `WDFWAITLOCK`;
//! - `context`: the WDFDEVICE context that holds the `Device`;
//! - `trace`: `DbgPrintEx` of the events `plan::trace` chooses;
//! - `plan`: the shell's integer decisions, portable and unit-tested on
//!   every host.
//!
//! # One device or several
//!
//! Each `Root\UserCap` devnode gets its own WDFDEVICE, context and lock.
//! The fixed name `\DosDevices\UserCap` can belong to one of them only: the
//! first device creates it; a second one's `WdfDeviceCreateSymbolicLink`
//! fails with `STATUS_OBJECT_NAME_COLLISION`, and that device carries on
//! without the link, reachable through its device interface instance
//! (`plan::link_failure`). The install script creates one devnode.
//!
//! # Test builds
//!
//! `cargo test -p usercap-driver` on Windows links the unit tests against
//! wdk-sys's `test-stubs` (a dev-dependency), which export their own
//! `DriverEntry` and link no WDK library. So every item that would clash
//! with or need them is `not(test)`: the `DriverEntry` export name, the
//! panic handler (`wdk_panic`) and the global allocator (`ExAllocatePool2`).
//! Nothing else should reach ntoskrnl from a test binary: the tests
//! exercise `plan` only, and rustc generates no code for shell functions
//! that no test and no exported symbol reaches. (windows-drivers-rs's
//! sample KMDF driver relies on the same; not yet linked by this project.)
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
#[cfg(target_os = "windows")]
mod trace;

#[cfg(all(target_os = "windows", not(test)))]
extern crate wdk_panic;

/// Every Rust heap allocation of the driver (the captures' pool copies) goes
/// through wdk-alloc, `ExAllocatePool2(POOL_FLAG_NON_PAGED, ..)`, behind
/// `pool::PoolAllocator`'s alignment check.
#[cfg(all(target_os = "windows", not(test)))]
#[global_allocator]
static GLOBAL_ALLOCATOR: pool::PoolAllocator = pool::PoolAllocator;

/// The global allocator: wdk-alloc, refusing alignments it cannot give.
#[cfg(all(target_os = "windows", not(test)))]
mod pool {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr;

    use wdk_alloc::WdkAllocator;

    use crate::plan;

    /// wdk-alloc ignores `Layout::align()` (its own FIXME) and returns what
    /// `ExAllocatePool2` returns: 16-aligned blocks on x64. The types the
    /// driver allocates are checked against that at compile time
    /// (`plan::fits_pool`); this wrapper turns any other over-aligned
    /// request into a failed allocation (null), which a fallible allocation
    /// reports as `NoMemory`, instead of a misaligned block.
    pub(crate) struct PoolAllocator;

    // SAFETY: (1) `alloc` returns either null (a refusal, which GlobalAlloc
    // allows) or WdkAllocator's block for the same layout: at least
    // `layout.size()` bytes of non-paged pool, and aligned to
    // `layout.align()` because that was checked to be at most the pool's
    // 16-byte alignment first; (2) `dealloc` hands back to WdkAllocator
    // only blocks that came from it, with their layout; (3) neither
    // unwinds; (4) the default `realloc` and `alloc_zeroed` go through
    // these two, so they inherit both properties.
    unsafe impl GlobalAlloc for PoolAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !plan::pool_serves(layout.align()) {
                return ptr::null_mut();
            }
            // SAFETY: the caller's GlobalAlloc::alloc contract (a layout of
            // non-zero size) is forwarded unchanged.
            unsafe { WdkAllocator.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` was returned by `alloc` above for `layout`
            // (GlobalAlloc::dealloc contract), i.e. by WdkAllocator.
            unsafe { WdkAllocator.dealloc(ptr, layout) }
        }
    }
}

#[cfg(target_os = "windows")]
pub use entry::driver_entry;

/// `DriverEntry`, `EvtDriverDeviceAdd` and `EvtDriverUnload`.
#[cfg(target_os = "windows")]
mod entry {
    use core::mem::size_of;
    use core::ptr;

    use usercap_device::Device;
    use usercap_protocol::{FILE_DEVICE_USERCAP, INTERFACE_GUID, SYMBOLIC_LINK_NAME};
    use wdk_sys::{
        BOOLEAN, DRIVER_OBJECT, FILE_DEVICE_SECURE_OPEN, GUID, NT_SUCCESS, NTSTATUS,
        PCUNICODE_STRING, PDRIVER_OBJECT, PWDFDEVICE_INIT, STATUS_INVALID_DEVICE_STATE,
        STATUS_SUCCESS, ULONG, UNICODE_STRING, USHORT, WDF_DRIVER_CONFIG, WDF_NO_HANDLE,
        WDF_NO_OBJECT_ATTRIBUTES, WDF_REMOVE_LOCK_OPTIONS, WDFDEVICE, WDFDRIVER, WDFOBJECT,
        call_unsafe_wdf_function_binding,
    };

    use crate::context::{self, DeviceContext};
    use crate::io::evt_io_in_caller_context;
    use crate::lock::{WaitLock, object_attributes};
    use crate::plan::trace::{Event, Step};
    use crate::plan::{self, LinkFailure};
    use crate::trace;

    /// `sizeof(WDF_DRIVER_CONFIG)` as the ULONG its `Size` holds
    /// (`WDF_DRIVER_CONFIG_INIT` is not in the bindings).
    const DRIVER_CONFIG_SIZE: ULONG = match plan::ulong(size_of::<WDF_DRIVER_CONFIG>()) {
        Some(size) => size,
        None => panic!("WDF_DRIVER_CONFIG does not fit its ULONG Size"),
    };

    /// `sizeof(WDF_REMOVE_LOCK_OPTIONS)` as its ULONG `Size`
    /// (`WDF_REMOVE_LOCK_OPTIONS_INIT` is not in the bindings).
    const REMOVE_LOCK_OPTIONS_SIZE: ULONG = match plan::ulong(size_of::<WDF_REMOVE_LOCK_OPTIONS>())
    {
        Some(size) => size,
        None => panic!("WDF_REMOVE_LOCK_OPTIONS does not fit its ULONG Size"),
    };

    // The portable flag is the header's: checked against the bindings. `as
    // i64` compares whatever integer type bindgen gave the C enum.
    #[allow(clippy::cast_lossless, clippy::unnecessary_cast)]
    const _: () = assert!(
        wdk_sys::_WDF_REMOVE_LOCK_OPTIONS_FLAGS::WDF_REMOVE_LOCK_OPTION_ACQUIRE_FOR_IO as i64
            == plan::REMOVE_LOCK_ACQUIRE_FOR_IO as i64
    );

    /// The pool tag of the framework's allocations for this driver, "UCap"
    /// as `!poolused` and poolmon show it. (The captures' own pool copies
    /// carry wdk-alloc's tag, "rust".) Wdf01000.sys makes these allocations,
    /// so `verifier /query`'s counters for usercap_driver.sys do not count
    /// them (docs/windows.md).
    const POOL_TAG: ULONG = u32::from_le_bytes(*b"UCap");

    /// `\DosDevices\UserCap` in UTF-16, for the symbolic link.
    const LINK_UNITS: usize = SYMBOLIC_LINK_NAME.len();
    static LINK_NAME: [u16; LINK_UNITS] = plan::ascii_utf16(SYMBOLIC_LINK_NAME);
    /// Its `UNICODE_STRING` length in bytes.
    const LINK_BYTES: USHORT = match plan::unicode_bytes(LINK_UNITS) {
        Some(bytes) => bytes,
        None => panic!("the symbolic link name does not fit a UNICODE_STRING"),
    };

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
    /// It creates the WDFDRIVER with EvtDriverDeviceAdd and EvtDriverUnload
    /// (which only traces: the framework frees everything the driver made,
    /// and unloads the PnP driver when its last device is removed).
    ///
    /// # Safety
    /// Called only by the system, with a valid driver object and registry
    /// path, once per load.
    // SAFETY: "DriverEntry" is the symbol KMDF's FxDriverEntry stub calls; no
    // other item of this image exports that name. Test builds do not export
    // it: wdk-sys's test-stubs export their own DriverEntry there.
    #[cfg_attr(not(test), unsafe(export_name = "DriverEntry"))]
    pub unsafe extern "system" fn driver_entry(
        driver: &mut DRIVER_OBJECT,
        registry_path: PCUNICODE_STRING,
    ) -> NTSTATUS {
        let mut config = WDF_DRIVER_CONFIG {
            Size: DRIVER_CONFIG_SIZE,
            EvtDriverDeviceAdd: Some(evt_driver_device_add),
            EvtDriverUnload: Some(evt_driver_unload),
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
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDriverCreate,
                ptr::from_mut(driver) as PDRIVER_OBJECT,
                registry_path,
                WDF_NO_OBJECT_ATTRIBUTES,
                &raw mut config,
                WDF_NO_HANDLE.cast::<WDFDRIVER>()
            )
        };
        trace::emit(&Event::DriverCreated { status });
        status
    }

    /// `EvtDriverUnload`, at PASSIVE_LEVEL, after the last device is gone.
    extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
        trace::emit(&Event::Unloading);
    }

    /// Traces a failed step of EvtDriverDeviceAdd and returns its status.
    fn add_failed(step: Step, status: NTSTATUS) -> NTSTATUS {
        trace::emit(&Event::DeviceAddFailed { step, status });
        status
    }

    /// `EvtDriverDeviceAdd`: creates the device for a `Root\UserCap`
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
        // With no I/O queue, nothing else tracks a request while
        // EvtIoInCallerContext runs: ask the framework to hold the device's
        // remove lock from delivery to completion of every IRP, so a
        // removal waits for requests in flight (KMDF's
        // FxDevice::_AcquireOptinRemoveLock, and IoReleaseRemoveLockAndWait
        // on removal). Without it only PnP, power and WMI IRPs hold it.
        let mut remove_lock = WDF_REMOVE_LOCK_OPTIONS {
            Size: REMOVE_LOCK_OPTIONS_SIZE,
            Flags: plan::REMOVE_LOCK_ACQUIRE_FOR_IO,
        };
        // SAFETY: (1) valid `device_init`, before WdfDeviceCreate, as
        // required; (2) `remove_lock` is what WDF_REMOVE_LOCK_OPTIONS_INIT
        // builds: Size = its sizeof, Flags = the one valid flag (anything
        // else is a framework verifier break); the framework copies the
        // flags and keeps no pointer; (3) this is a PnP FDO, not a control
        // device, which the DDI refuses; (4) IRQL <= DISPATCH_LEVEL.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceInitSetRemoveLockOptions,
                device_init,
                &raw mut remove_lock
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
                &raw mut device_init,
                &raw mut attributes,
                &raw mut device
            )
        };
        if !NT_SUCCESS(status) {
            return add_failed(Step::DeviceCreate, status);
        }
        let object: WDFOBJECT = device.cast();

        let lock = match WaitLock::create(object) {
            Ok(lock) => lock,
            Err(status) => return add_failed(Step::WaitLockCreate, status),
        };
        let Some(slot) = context::raw(device) else {
            return add_failed(Step::Context, STATUS_INVALID_DEVICE_STATE);
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
        // INTERFACE is a valid GUID with static lifetime (a promoted
        // constant); (3) no reference string (null is allowed); (4)
        // PASSIVE_LEVEL, as documented. Created in EvtDriverDeviceAdd, the
        // interface is enabled by the framework when the device starts.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfDeviceCreateDeviceInterface,
                device,
                &INTERFACE,
                ptr::null()
            )
        };
        if !NT_SUCCESS(status) {
            return add_failed(Step::Interface, status);
        }

        let link = UNICODE_STRING {
            Length: LINK_BYTES,
            MaximumLength: LINK_BYTES,
            Buffer: LINK_NAME.as_ptr().cast_mut(),
        };
        // SAFETY: (1) `device` is the live WDFDEVICE; (2) `link` is a
        // UNICODE_STRING over the static LINK_NAME, Length and MaximumLength
        // in bytes, no terminator needed; the framework copies the name and
        // never writes through Buffer; (3) PASSIVE_LEVEL, as documented.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(WdfDeviceCreateSymbolicLink, device, &raw const link)
        };
        // A second usercap device finds the fixed name taken and carries on
        // with its interface only (module docs, plan::link_failure).
        let linked = NT_SUCCESS(status);
        if !linked && plan::link_failure(status) == LinkFailure::Fail {
            return add_failed(Step::SymbolicLink, status);
        }
        trace::emit(&Event::DeviceAdded { link: linked });
        STATUS_SUCCESS
    }
}
