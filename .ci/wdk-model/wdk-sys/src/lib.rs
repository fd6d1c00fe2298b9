//! A hand model of wdk-sys 0.5.2's bindings, for the names usercap-driver
//! uses, written from the KMDF 1.33 headers and wdk-build 0.6.0's bindgen
//! configuration (size_t -> usize, ULONG_PTR -> u64, enums as module consts).
#![no_std]
#![allow(missing_docs, clippy::all)]
use core::ffi::{c_char, c_int, c_long, c_longlong, c_uchar, c_ulong, c_ulonglong, c_ushort, c_void};

pub type ULONG = c_ulong;
pub type USHORT = c_ushort;
pub type UCHAR = c_uchar;
pub type BOOLEAN = UCHAR;
pub type CHAR = c_char;
pub type CCHAR = c_char;
pub type KPROCESSOR_MODE = CCHAR;
pub type KIRQL = UCHAR;
pub type LONG = c_long;
pub type NTSTATUS = LONG;
pub type LONGLONG = c_longlong;
pub type PLONGLONG = *mut LONGLONG;
pub type ULONG_PTR = c_ulonglong;
pub type SIZE_T = ULONG_PTR;
pub type ULONG64 = c_ulonglong;
pub type POOL_FLAGS = ULONG64;
pub type PVOID = *mut c_void;
pub type PCSTR = *const CHAR;
pub type LPCSTR = *const CHAR;
pub type WCHAR = c_ushort;
pub type PWCH = *mut WCHAR;
pub type DEVICE_TYPE = ULONG;

macro_rules! handle {
    ($($h:ident $s:ident;)*) => { $(
        #[repr(C)] #[derive(Debug, Copy, Clone)] pub struct $s { pub unused: c_int }
        pub type $h = *mut $s;
    )* };
}
handle! {
    WDFDEVICE WDFDEVICE__;
    WDFDRIVER WDFDRIVER__;
    WDFREQUEST WDFREQUEST__;
    WDFMEMORY WDFMEMORY__;
    WDFWAITLOCK WDFWAITLOCK__;
    WDFOBJECT WDFOBJECT__;
}
#[repr(C)] #[derive(Debug, Copy, Clone)] pub struct WDFDEVICE_INIT { _unused: [u8; 0] }
pub type PWDFDEVICE_INIT = *mut WDFDEVICE_INIT;
#[repr(C)] #[derive(Debug, Copy, Clone)] pub struct _DRIVER_OBJECT { pub Type: c_ushort }
pub type DRIVER_OBJECT = _DRIVER_OBJECT;
pub type PDRIVER_OBJECT = *mut _DRIVER_OBJECT;

#[repr(C)] #[derive(Debug, Copy, Clone)]
pub struct _UNICODE_STRING { pub Length: USHORT, pub MaximumLength: USHORT, pub Buffer: PWCH }
pub type UNICODE_STRING = _UNICODE_STRING;
pub type PCUNICODE_STRING = *const UNICODE_STRING;

#[repr(C)] #[derive(Debug, Default, Copy, Clone)]
pub struct _GUID { pub Data1: c_ulong, pub Data2: c_ushort, pub Data3: c_ushort, pub Data4: [c_uchar; 8] }
pub type GUID = _GUID;

pub type PFN_WDF_DRIVER_DEVICE_ADD = Option<unsafe extern "C" fn(Driver: WDFDRIVER, DeviceInit: PWDFDEVICE_INIT) -> NTSTATUS>;
pub type PFN_WDF_DRIVER_UNLOAD = Option<unsafe extern "C" fn(Driver: WDFDRIVER)>;
pub type PFN_WDF_IO_IN_CALLER_CONTEXT = Option<unsafe extern "C" fn(Device: WDFDEVICE, Request: WDFREQUEST)>;
pub type PFN_WDF_OBJECT_CONTEXT_CLEANUP = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
pub type PFN_WDF_OBJECT_CONTEXT_DESTROY = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
pub type PFN_GET_UNIQUE_CONTEXT_TYPE = Option<unsafe extern "C" fn() -> PCWDF_OBJECT_CONTEXT_TYPE_INFO>;

#[repr(C)] #[derive(Debug, Default, Copy, Clone)]
pub struct _WDF_DRIVER_CONFIG {
    pub Size: ULONG,
    pub EvtDriverDeviceAdd: PFN_WDF_DRIVER_DEVICE_ADD,
    pub EvtDriverUnload: PFN_WDF_DRIVER_UNLOAD,
    pub DriverInitFlags: ULONG,
    pub DriverPoolTag: ULONG,
}
pub type WDF_DRIVER_CONFIG = _WDF_DRIVER_CONFIG;
pub type PWDF_DRIVER_CONFIG = *mut WDF_DRIVER_CONFIG;

pub mod _WDF_EXECUTION_LEVEL {
    pub type Type = ::core::ffi::c_int;
    pub const WdfExecutionLevelInvalid: Type = 0;
    pub const WdfExecutionLevelInheritFromParent: Type = 1;
    pub const WdfExecutionLevelPassive: Type = 2;
    pub const WdfExecutionLevelDispatch: Type = 3;
}
pub use self::_WDF_EXECUTION_LEVEL::Type as WDF_EXECUTION_LEVEL;
pub mod _WDF_SYNCHRONIZATION_SCOPE {
    pub type Type = ::core::ffi::c_int;
    pub const WdfSynchronizationScopeInvalid: Type = 0;
    pub const WdfSynchronizationScopeInheritFromParent: Type = 1;
}
pub use self::_WDF_SYNCHRONIZATION_SCOPE::Type as WDF_SYNCHRONIZATION_SCOPE;
pub mod _WDF_REQUEST_TYPE {
    pub type Type = ::core::ffi::c_int;
    pub const WdfRequestTypeDeviceControl: Type = 14;
}
pub use self::_WDF_REQUEST_TYPE::Type as WDF_REQUEST_TYPE;
pub mod _DPFLTR_TYPE {
    pub type Type = ::core::ffi::c_int;
    pub const DPFLTR_IHVDRIVER_ID: Type = 77;
}
pub use self::_DPFLTR_TYPE::Type as DPFLTR_TYPE;
pub mod _WDF_REMOVE_LOCK_OPTIONS_FLAGS {
    pub type Type = ::core::ffi::c_int;
    pub const WDF_REMOVE_LOCK_OPTION_ACQUIRE_FOR_IO: Type = 1;
}

#[repr(C)] #[derive(Debug, Copy, Clone)]
pub struct _WDF_OBJECT_CONTEXT_TYPE_INFO {
    pub Size: ULONG,
    pub ContextName: LPCSTR,
    pub ContextSize: usize,
    pub UniqueType: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
    pub EvtDriverGetUniqueContextType: PFN_GET_UNIQUE_CONTEXT_TYPE,
}
pub type WDF_OBJECT_CONTEXT_TYPE_INFO = _WDF_OBJECT_CONTEXT_TYPE_INFO;
pub type PCWDF_OBJECT_CONTEXT_TYPE_INFO = *const _WDF_OBJECT_CONTEXT_TYPE_INFO;

#[repr(C)] #[derive(Debug, Copy, Clone)]
pub struct _WDF_OBJECT_ATTRIBUTES {
    pub Size: ULONG,
    pub EvtCleanupCallback: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    pub EvtDestroyCallback: PFN_WDF_OBJECT_CONTEXT_DESTROY,
    pub ExecutionLevel: WDF_EXECUTION_LEVEL,
    pub SynchronizationScope: WDF_SYNCHRONIZATION_SCOPE,
    pub ParentObject: WDFOBJECT,
    pub ContextSizeOverride: usize,
    pub ContextTypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
}
impl Default for _WDF_OBJECT_ATTRIBUTES {
    fn default() -> Self { unsafe { core::mem::zeroed() } }
}
pub type WDF_OBJECT_ATTRIBUTES = _WDF_OBJECT_ATTRIBUTES;
pub type PWDF_OBJECT_ATTRIBUTES = *mut WDF_OBJECT_ATTRIBUTES;

#[repr(C)] #[derive(Debug, Default, Copy, Clone)]
pub struct _WDF_REMOVE_LOCK_OPTIONS { pub Size: ULONG, pub Flags: ULONG }
pub type WDF_REMOVE_LOCK_OPTIONS = _WDF_REMOVE_LOCK_OPTIONS;
pub type PWDF_REMOVE_LOCK_OPTIONS = *mut WDF_REMOVE_LOCK_OPTIONS;

#[repr(C)] #[derive(Debug, Copy, Clone)]
pub struct _WDF_REQUEST_PARAMETERS__bindgen_ty_1__bindgen_ty_5 {
    pub OutputBufferLength: usize,
    pub InputBufferLength: usize,
    pub IoControlCode: ULONG,
    pub Type3InputBuffer: PVOID,
}
#[repr(C)] #[derive(Copy, Clone)]
pub union _WDF_REQUEST_PARAMETERS__bindgen_ty_1 {
    pub DeviceIoControl: _WDF_REQUEST_PARAMETERS__bindgen_ty_1__bindgen_ty_5,
    pub Others: [u64; 4],
}
#[repr(C)] #[derive(Copy, Clone)]
pub struct _WDF_REQUEST_PARAMETERS {
    pub Size: USHORT,
    pub MinorFunction: UCHAR,
    pub Type: WDF_REQUEST_TYPE,
    pub Parameters: _WDF_REQUEST_PARAMETERS__bindgen_ty_1,
}
impl Default for _WDF_REQUEST_PARAMETERS {
    fn default() -> Self { unsafe { core::mem::zeroed() } }
}
pub type WDF_REQUEST_PARAMETERS = _WDF_REQUEST_PARAMETERS;
pub type PWDF_REQUEST_PARAMETERS = *mut WDF_REQUEST_PARAMETERS;

pub const FILE_DEVICE_SECURE_OPEN: u32 = 256;
pub const DPFLTR_ERROR_LEVEL: u32 = 0;
pub const DPFLTR_WARNING_LEVEL: u32 = 1;
pub const DPFLTR_TRACE_LEVEL: u32 = 2;
pub const DPFLTR_INFO_LEVEL: u32 = 3;
pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = -1_073_741_670_i32;
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = -1_073_741_436_i32;
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x40;
pub const WDF_NO_OBJECT_ATTRIBUTES: PWDF_OBJECT_ATTRIBUTES = core::ptr::null_mut();
pub const WDF_NO_HANDLE: PVOID = core::ptr::null_mut();

#[must_use]
pub const fn NT_SUCCESS(nt_status: NTSTATUS) -> bool { nt_status >= 0 }

pub mod ntddk {
    use super::*;
    unsafe extern "C" {
        pub fn KeGetCurrentIrql() -> KIRQL;
        pub fn DbgPrintEx(ComponentId: ULONG, Level: ULONG, Format: PCSTR, ...) -> ULONG;
        pub fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
        pub fn ExFreePool(P: PVOID);
    }
}

/// The WDF functions, with the parameter types of the KMDF 1.33
/// PFN_WDF... typedefs after PWDF_DRIVER_GLOBALS.
pub mod wdf_fns {
    use super::*;
    #[must_use] pub unsafe fn WdfDriverCreate(DriverObject: PDRIVER_OBJECT, RegistryPath: PCUNICODE_STRING, DriverAttributes: PWDF_OBJECT_ATTRIBUTES, DriverConfig: PWDF_DRIVER_CONFIG, Driver: *mut WDFDRIVER) -> NTSTATUS { unimplemented!() }
    pub unsafe fn WdfDeviceInitSetDeviceType(DeviceInit: PWDFDEVICE_INIT, DeviceType: DEVICE_TYPE) { unimplemented!() }
    pub unsafe fn WdfDeviceInitSetCharacteristics(DeviceInit: PWDFDEVICE_INIT, DeviceCharacteristics: ULONG, OrInValues: BOOLEAN) { unimplemented!() }
    pub unsafe fn WdfDeviceInitSetIoInCallerContextCallback(DeviceInit: PWDFDEVICE_INIT, EvtIoInCallerContext: PFN_WDF_IO_IN_CALLER_CONTEXT) { unimplemented!() }
    pub unsafe fn WdfDeviceInitSetRemoveLockOptions(DeviceInit: PWDFDEVICE_INIT, Options: PWDF_REMOVE_LOCK_OPTIONS) { unimplemented!() }
    #[must_use] pub unsafe fn WdfDeviceCreate(DeviceInit: *mut PWDFDEVICE_INIT, DeviceAttributes: PWDF_OBJECT_ATTRIBUTES, Device: *mut WDFDEVICE) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfWaitLockCreate(LockAttributes: PWDF_OBJECT_ATTRIBUTES, Lock: *mut WDFWAITLOCK) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfObjectGetTypedContextWorker(Handle: WDFOBJECT, TypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO) -> PVOID { unimplemented!() }
    #[must_use] pub unsafe fn WdfDeviceCreateDeviceInterface(Device: WDFDEVICE, InterfaceClassGUID: *const GUID, ReferenceString: PCUNICODE_STRING) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfDeviceCreateSymbolicLink(Device: WDFDEVICE, SymbolicLinkName: PCUNICODE_STRING) -> NTSTATUS { unimplemented!() }
    pub unsafe fn WdfRequestGetParameters(Request: WDFREQUEST, Parameters: PWDF_REQUEST_PARAMETERS) { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestGetRequestorMode(Request: WDFREQUEST) -> KPROCESSOR_MODE { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestRetrieveUnsafeUserInputBuffer(Request: WDFREQUEST, MinimumRequiredLength: usize, InputBuffer: *mut PVOID, Length: *mut usize) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestRetrieveUnsafeUserOutputBuffer(Request: WDFREQUEST, MinimumRequiredLength: usize, OutputBuffer: *mut PVOID, Length: *mut usize) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestRetrieveInputBuffer(Request: WDFREQUEST, MinimumRequiredLength: usize, Buffer: *mut PVOID, Length: *mut usize) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestRetrieveOutputBuffer(Request: WDFREQUEST, MinimumRequiredSize: usize, Buffer: *mut PVOID, Length: *mut usize) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestProbeAndLockUserBufferForRead(Request: WDFREQUEST, Buffer: PVOID, Length: usize, MemoryObject: *mut WDFMEMORY) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfRequestProbeAndLockUserBufferForWrite(Request: WDFREQUEST, Buffer: PVOID, Length: usize, MemoryObject: *mut WDFMEMORY) -> NTSTATUS { unimplemented!() }
    #[must_use] pub unsafe fn WdfMemoryGetBuffer(Memory: WDFMEMORY, BufferSize: *mut usize) -> PVOID { unimplemented!() }
    #[must_use] pub unsafe fn WdfWaitLockAcquire(Lock: WDFWAITLOCK, Timeout: PLONGLONG) -> NTSTATUS { unimplemented!() }
    pub unsafe fn WdfWaitLockRelease(Lock: WDFWAITLOCK) { unimplemented!() }
    pub unsafe fn WdfRequestCompleteWithInformation(Request: WDFREQUEST, Status: NTSTATUS, Information: ULONG_PTR) { unimplemented!() }
}

#[macro_export]
macro_rules! call_unsafe_wdf_function_binding {
    ($name:ident $(, $arg:expr)* $(,)?) => {
        $crate::wdf_fns::$name($($arg),*)
    };
}
