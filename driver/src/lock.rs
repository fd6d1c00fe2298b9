//! `WaitLock`: the device's `lock_api::RawMutex`, a framework wait lock.
//!
//! # Why a `WDFWAITLOCK`
//!
//! The device holds its lock only for a few copies between its own kernel
//! buffers; it never touches user memory under it (a rule of
//! `usercap-device`). The choice of lock still matters, because it decides
//! the IRQL the locked code runs at:
//!
//! - A **WDF wait lock** (`WdfWaitLockAcquire` with a NULL timeout) enters a
//!   critical region (`KeEnterCriticalRegion`: normal kernel APCs off) and
//!   leaves the IRQL at PASSIVE_LEVEL. Everything the request path calls stays
//!   legal under it, `WdfRequestProbeAndLockUserBuffer*` included, and it
//!   sleeps instead of spinning when contended.
//! - A **FAST_MUTEX** (or guarded mutex) raises the IRQL to APC_LEVEL. Should a
//!   later change ever probe user memory while holding it, the framework's
//!   PASSIVE_LEVEL check (active under KMDF Verifier) fails the probe with
//!   `STATUS_INVALID_DEVICE_REQUEST`, and `MmProbeAndLockPages` may page-fault
//!   at APC_LEVEL. `ExInitializeFastMutex` is also a FORCEINLINE missing from
//!   wdk-sys.
//! - A **spin lock** raises to DISPATCH_LEVEL: nothing pageable, no waiting,
//!   no probing under it, and a contended user thread burns a CPU.
//!
//! # Thread affinity
//!
//! The critical region entered by `WdfWaitLockAcquire` belongs to the
//! acquiring thread, so the lock must be released on that thread:
//! `GuardMarker = GuardNoSend` makes lock_api enforce it.

use core::ptr;

use lock_api::{GuardNoSend, RawMutex};
use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_SYNCHRONIZATION_SCOPE, LONGLONG, NT_SUCCESS, NTSTATUS,
    STATUS_SUCCESS, ULONG, WDF_OBJECT_ATTRIBUTES, WDFOBJECT, WDFWAITLOCK,
    call_unsafe_wdf_function_binding,
};

use crate::plan;

/// A framework wait lock used as a raw mutex.
///
/// Invariant: `handle` is a wait lock created by [`WaitLock::create`] whose
/// parent object (the device) outlives every use of this value. The value
/// lives inside that device's context, so it cannot outlive its parent.
pub(crate) struct WaitLock {
    handle: WDFWAITLOCK,
}

// SAFETY: (1) a WDFWAITLOCK handle is an opaque framework handle that may be
// passed between threads; (2) the framework object it names is designed for
// concurrent use from any thread at PASSIVE_LEVEL; (3) `WaitLock` has no other
// state.
unsafe impl Send for WaitLock {}

// SAFETY: (1) every method takes `&self` and only passes the handle to the
// framework's thread-safe lock DDIs; (2) `WaitLock` has no interior state of
// its own that could race.
unsafe impl Sync for WaitLock {}

/// `sizeof(WDF_OBJECT_ATTRIBUTES)` as the ULONG the structure's `Size` holds.
const OBJECT_ATTRIBUTES_SIZE: ULONG =
    match plan::ulong(core::mem::size_of::<WDF_OBJECT_ATTRIBUTES>()) {
        Some(size) => size,
        None => panic!("WDF_OBJECT_ATTRIBUTES does not fit its ULONG Size"),
    };

/// `WDF_OBJECT_ATTRIBUTES_INIT` with `ParentObject` set: the `_INIT` macro is
/// not in the bindings, and `Default` would leave the execution level and
/// synchronization scope at their `Invalid` (0) values.
pub(crate) fn object_attributes(parent: WDFOBJECT) -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        Size: OBJECT_ATTRIBUTES_SIZE,
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ParentObject: parent,
        ..WDF_OBJECT_ATTRIBUTES::default()
    }
}

impl WaitLock {
    /// Creates a wait lock parented to `parent` (the WDFDEVICE), so the
    /// framework deletes it with the device.
    ///
    /// `WdfWaitLockCreate`: IRQL <= DISPATCH_LEVEL; called from
    /// EvtDriverDeviceAdd at PASSIVE_LEVEL.
    ///
    /// # Errors
    /// The framework's status (`STATUS_INSUFFICIENT_RESOURCES`, ...).
    pub(crate) fn create(parent: WDFOBJECT) -> Result<Self, NTSTATUS> {
        let mut attributes = object_attributes(parent);
        let mut handle: WDFWAITLOCK = ptr::null_mut();
        // SAFETY: (1) `attributes` is a fully initialised
        // WDF_OBJECT_ATTRIBUTES with Size set and a valid parent handle, and
        // lives across the call; (2) `handle` is a valid location for the
        // framework to write the new handle to; (3) we run at PASSIVE_LEVEL
        // in EvtDriverDeviceAdd, within the documented IRQL <= DISPATCH_LEVEL.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfWaitLockCreate,
                &raw mut attributes,
                &raw mut handle
            )
        };
        if !NT_SUCCESS(status) {
            return Err(status);
        }
        if handle.is_null() {
            return Err(wdk_sys::STATUS_INSUFFICIENT_RESOURCES);
        }
        Ok(Self { handle })
    }
}

// SAFETY: (1) mutual exclusion: `lock` returns only once WdfWaitLockAcquire
// has acquired the framework wait lock, and `try_lock` returns true only when
// WdfWaitLockAcquire reported STATUS_SUCCESS, i.e. acquired it; the lock is
// held until `unlock` calls WdfWaitLockRelease; (2) `unlock` is only called by
// lock_api on the thread that holds the lock (GuardNoSend), as the critical
// region requires; (3) `INIT` cannot be used: any use is a compile error, so
// no unlocked-handle value exists.
unsafe impl RawMutex for WaitLock {
    /// A wait lock needs a framework handle made at run time, so there is no
    /// constant initial value: the driver builds its device with
    /// `Device::with_raw_lock(WaitLock::create(..)?)`. Anything that would use
    /// `INIT` (`Device::new`, `Device::default`, `Mutex::new`) fails to
    /// compile: the panic happens in const evaluation, never at run time.
    const INIT: Self = panic!("WaitLock has no const initialiser; use WaitLock::create");

    type GuardMarker = GuardNoSend;

    /// `WdfWaitLockAcquire(lock, NULL)`: waits until acquired. Documented
    /// IRQL: PASSIVE_LEVEL with a NULL timeout; the request path checks
    /// PASSIVE_LEVEL before it dispatches.
    fn lock(&self) {
        // SAFETY: (1) `self.handle` is a live wait lock (type invariant);
        // (2) a NULL timeout is allowed and means "wait until acquired";
        // (3) the only caller is the device on the request path, which runs
        // at PASSIVE_LEVEL (checked in io.rs before dispatch).
        let status = unsafe {
            call_unsafe_wdf_function_binding!(WdfWaitLockAcquire, self.handle, ptr::null_mut())
        };
        // With a NULL timeout the call returns only once the lock is held;
        // its status is always STATUS_SUCCESS (documented: no need to check).
        let _ = status;
    }

    /// `WdfWaitLockAcquire(lock, &0)`: try once, do not wait. Documented IRQL
    /// with a zero timeout: < DISPATCH_LEVEL.
    fn try_lock(&self) -> bool {
        let mut timeout: LONGLONG = 0;
        // SAFETY: (1) `self.handle` is a live wait lock (type invariant);
        // (2) `timeout` is a valid LONGLONG that outlives the call; zero means
        // "return at once"; (3) callers run at PASSIVE_LEVEL, below the
        // documented DISPATCH_LEVEL bound for a zero timeout.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(WdfWaitLockAcquire, self.handle, &raw mut timeout)
        };
        // STATUS_TIMEOUT (0x102) is a *success* code: NT_SUCCESS is true for
        // it, so compare with STATUS_SUCCESS exactly.
        status == STATUS_SUCCESS
    }

    /// `WdfWaitLockRelease(lock)`. Documented IRQL: <= DISPATCH_LEVEL.
    unsafe fn unlock(&self) {
        // SAFETY: (1) `self.handle` is a live wait lock (type invariant);
        // (2) the caller holds it, on this thread (RawMutex::unlock contract
        // plus GuardNoSend); (3) we are at PASSIVE_LEVEL, within the bound.
        unsafe { call_unsafe_wdf_function_binding!(WdfWaitLockRelease, self.handle) };
    }
}
