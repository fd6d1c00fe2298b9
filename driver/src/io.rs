//! `EvtIoInCallerContext`: every request, in the requesting thread.
//!
//! The framework calls this for IRP_MJ_READ, IRP_MJ_WRITE,
//! IRP_MJ_DEVICE_CONTROL and IRP_MJ_INTERNAL_DEVICE_CONTROL (create and close
//! are completed by the framework itself, with success, since the driver
//! registers no file-object callbacks). The driver creates no I/O queue:
//! every request is completed right here, which the callback's contract
//! allows ("must either queue it ... or complete it"). That is the Linux
//! shape: capture, work and copy out, all in the caller's context.
//!
//! For DEVICE_CONTROL:
//! 1. refuse anything above PASSIVE_LEVEL (only kernel callers can be there;
//!    the probe and the wait lock need PASSIVE_LEVEL);
//! 2. read the parameters and the requestor mode;
//! 3. build a `KmdfSpace`;
//! 4. shape the buffers as the method defines them: the SystemBuffer for
//!    METHOD_BUFFERED, the raw addresses for METHOD_NEITHER; direct-I/O codes
//!    are refused (no usercap IOCTL uses them);
//! 5. `Device::dispatch`;
//! 6. `WdfRequestCompleteWithInformation(status, information)`.
//!
//! Everything else is completed with `STATUS_INVALID_DEVICE_REQUEST` and
//! `Information = 0`. Every failed completion is traced (`plan::trace`:
//! IOCTL code and status, at DPFLTR_TRACE_LEVEL, or DPFLTR_WARNING_LEVEL
//! when the driver ran out of resources).
//!
//! The framework holds the device's remove lock from delivery to completion
//! (`WDF_REMOVE_LOCK_OPTION_ACQUIRE_FOR_IO`, set in EvtDriverDeviceAdd), so
//! the device and its context outlive every call of this callback.

use core::mem::size_of;
use core::ptr;

use usercap::{CaptureError, NtStatus, UserSlice, UserWriter};
use usercap_device::{Buffers, Completion, Request};
use wdk_sys::{
    _WDF_REQUEST_TYPE, NT_SUCCESS, PVOID, USHORT, WDF_REQUEST_PARAMETERS, WDFDEVICE, WDFREQUEST,
    call_unsafe_wdf_function_binding, ntddk::KeGetCurrentIrql,
};

use crate::context;
use crate::plan::trace::Event;
use crate::plan::{self, Shape};
use crate::space::KmdfSpace;
use crate::trace;

/// `sizeof(WDF_REQUEST_PARAMETERS)` as the USHORT its `Size` holds
/// (`WDF_REQUEST_PARAMETERS_INIT` is not in the bindings).
const REQUEST_PARAMETERS_SIZE: USHORT = match plan::ushort(size_of::<WDF_REQUEST_PARAMETERS>()) {
    Some(size) => size,
    None => panic!("WDF_REQUEST_PARAMETERS does not fit its USHORT Size"),
};

/// The driver's `EvtIoInCallerContext` callback (registered with
/// `WdfDeviceInitSetIoInCallerContextCallback`). Completes every request it
/// is given, exactly once.
pub(crate) extern "C" fn evt_io_in_caller_context(device: WDFDEVICE, request: WDFREQUEST) {
    let Handled { code, completion } = handle(device, request);
    trace::emit(&Event::Completed {
        code,
        status: completion.status.0,
    });
    complete(request, completion);
}

/// What `handle` decided: the completion, and the IOCTL code it was for
/// (`None` when the request was refused before a DEVICE_CONTROL code was
/// read), for the trace.
struct Handled {
    code: Option<u32>,
    completion: Completion,
}

/// Completes `request` with the device's verdict.
fn complete(request: WDFREQUEST, completion: Completion) {
    // SAFETY: (1) `request` is the live request the framework handed to
    // EvtIoInCallerContext, owned by the driver and not yet completed: this
    // is the one completion on every path (evt_io_in_caller_context calls it
    // exactly once); (2) nothing derived from the request (SystemBuffer
    // slice, KmdfSpace, locked MDLs' mappings) is used after this call: they
    // all lived inside `handle`, which has returned; (3) Information is 0 on
    // failure and, on success, the bytes the device wrote into an output of
    // OutputBufferLength bytes, never more (usercap's UserWriter), which is
    // what KMDF Verifier checks; (4) IRQL <= DISPATCH_LEVEL, as documented;
    // (5) Information is a ULONG_PTR (u64 in the bindings), converted
    // losslessly by plan::information.
    unsafe {
        call_unsafe_wdf_function_binding!(
            WdfRequestCompleteWithInformation,
            request,
            completion.status.0,
            plan::information(completion.information)
        );
    }
}

/// Everything between receiving the request and completing it.
fn handle(device: WDFDEVICE, request: WDFREQUEST) -> Handled {
    let refused = |code| Handled {
        code,
        completion: Completion::failed(NtStatus::STATUS_INVALID_DEVICE_REQUEST),
    };

    // SAFETY: (1) KeGetCurrentIrql reads the current IRQL and has no
    // preconditions; (2) it may be called at any IRQL.
    let irql = unsafe { KeGetCurrentIrql() };
    if irql != plan::PASSIVE_LEVEL {
        return refused(None);
    }

    let mut params = WDF_REQUEST_PARAMETERS {
        Size: REQUEST_PARAMETERS_SIZE,
        ..WDF_REQUEST_PARAMETERS::default()
    };
    // SAFETY: (1) `request` is live and driver-owned (framework-created, in
    // EvtIoInCallerContext); (2) `params` is a valid, zeroed structure whose
    // Size is set, as WDF_REQUEST_PARAMETERS_INIT would; (3) IRQL is
    // PASSIVE_LEVEL, within the documented <= DISPATCH_LEVEL.
    unsafe {
        call_unsafe_wdf_function_binding!(WdfRequestGetParameters, request, &raw mut params);
    }
    if params.Type != _WDF_REQUEST_TYPE::WdfRequestTypeDeviceControl {
        return refused(None);
    }
    // SAFETY: (1) reading a union field: for a request whose Type is
    // WdfRequestTypeDeviceControl the framework fills the DeviceIoControl
    // member, checked just above; (2) the member is plain integers and a
    // pointer, valid for any bit pattern, and is copied out.
    let ioctl = unsafe { params.Parameters.DeviceIoControl };
    let code: u32 = ioctl.IoControlCode;
    let input_len: usize = ioctl.InputBufferLength;
    let output_len: usize = ioctl.OutputBufferLength;

    // SAFETY: (1) `request` is live and driver-owned; (2) IRQL is
    // PASSIVE_LEVEL, within the documented <= DISPATCH_LEVEL.
    let raw_mode =
        unsafe { call_unsafe_wdf_function_binding!(WdfRequestGetRequestorMode, request) };
    let mode = plan::requestor_mode(i32::from(raw_mode));

    let Some(device) = context::device(device) else {
        return refused(Some(code));
    };
    let space = KmdfSpace::new(request, mode);

    let completion = match plan::shape(code) {
        Shape::Refused => return refused(Some(code)),
        Shape::Neither => match neither_buffers(request, input_len, output_len) {
            Ok(buffers) => device.dispatch(&space, Request { code, buffers }),
            Err(status) => Completion::failed(status),
        },
        Shape::Buffered => with_system_buffer(request, input_len, output_len, |system_buffer| {
            let buffers = Buffers::Buffered {
                system_buffer,
                input_len,
                output_len,
            };
            device.dispatch(&space, Request { code, buffers })
        })
        .unwrap_or_else(Completion::failed),
    };
    Handled {
        code: Some(code),
        completion,
    }
}

/// METHOD_NEITHER: the caller's input (`Type3InputBuffer`) and output
/// (`UserBuffer`) addresses, as integers; nothing is dereferenced here. A
/// zero length is passed as address 0 without asking the framework.
fn neither_buffers(
    request: WDFREQUEST,
    input_len: usize,
    output_len: usize,
) -> Result<Buffers<'static>, NtStatus> {
    let input_addr = if input_len == 0 {
        0
    } else {
        let mut buffer: PVOID = ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: (1) `request` is live and driver-owned, and we are in
        // EvtIoInCallerContext, where the call must be made; (2) the request
        // is a METHOD_NEITHER DEVICE_CONTROL (plan::shape), the case the call
        // is for; (3) `buffer` and `len` are valid out locations; (4) IRQL is
        // PASSIVE_LEVEL, as documented.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveUnsafeUserInputBuffer,
                request,
                input_len,
                &raw mut buffer,
                &raw mut len
            )
        };
        if !NT_SUCCESS(status) || len != input_len {
            return Err(plan::retrieval_failure(status));
        }
        buffer.addr()
    };
    let output_addr = if output_len == 0 {
        0
    } else {
        let mut buffer: PVOID = ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: as for the input just above: (1) live request, in
        // EvtIoInCallerContext; (2) METHOD_NEITHER DEVICE_CONTROL; (3) valid
        // out locations; (4) PASSIVE_LEVEL.
        let status = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveUnsafeUserOutputBuffer,
                request,
                output_len,
                &raw mut buffer,
                &raw mut len
            )
        };
        if !NT_SUCCESS(status) || len != output_len {
            return Err(plan::retrieval_failure(status));
        }
        buffer.addr()
    };
    let input = UserSlice::new(input_addr, input_len).map_err(CaptureError::to_ntstatus)?;
    Ok(Buffers::Neither {
        input,
        output: UserWriter::user(output_addr, output_len),
    })
}

/// METHOD_BUFFERED: runs `f` over the request's SystemBuffer, all
/// max(in, out) bytes of it, and returns its result.
///
/// The bytes past the input are uninitialised pool. They are zeroed before
/// the slice is formed, so the slice is fully initialised (as
/// `slice::from_raw_parts_mut` requires) and no stale pool byte can reach the
/// caller even if a handler miscounted (it cannot: `Information` is what its
/// `UserWriter` wrote). The slice exists only during `f`, before completion.
fn with_system_buffer<R>(
    request: WDFREQUEST,
    input_len: usize,
    output_len: usize,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Result<R, NtStatus> {
    let Some(plan) = plan::system_buffer(input_len, output_len) else {
        return Ok(f(&mut []));
    };
    let mut buffer: PVOID = ptr::null_mut();
    let mut len: usize = 0;
    let status = if plan.via_input {
        // SAFETY: (1) `request` is live and driver-owned; (2) it is a
        // METHOD_BUFFERED DEVICE_CONTROL (plan::shape), so the framework
        // returns the SystemBuffer; MinimumRequiredSize is the input length,
        // which is non-zero here (plan.len > 0); (3) `buffer` and `len` are
        // valid out locations; (4) IRQL is PASSIVE_LEVEL, within
        // <= DISPATCH_LEVEL.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveInputBuffer,
                request,
                plan.len,
                &raw mut buffer,
                &raw mut len
            )
        }
    } else {
        // SAFETY: as for the input just above: (1) live request;
        // (2) METHOD_BUFFERED, MinimumRequiredSize = the non-zero output
        // length; (3) valid out locations; (4) PASSIVE_LEVEL.
        unsafe {
            call_unsafe_wdf_function_binding!(
                WdfRequestRetrieveOutputBuffer,
                request,
                plan.len,
                &raw mut buffer,
                &raw mut len
            )
        }
    };
    if !NT_SUCCESS(status) || buffer.is_null() || len < plan.len {
        return Err(plan::retrieval_failure(status));
    }
    let base = buffer.cast::<u8>();
    let tail = base.wrapping_add(input_len);
    // SAFETY: (1) `base` is the SystemBuffer, a non-paged allocation of
    // max(InputBufferLength, OutputBufferLength) = plan.len bytes that the
    // I/O manager owns until completion, so `[input_len, plan.len)` =
    // `plan.tail` bytes at `tail` are inside it and writable; (2) u8 needs no
    // alignment; (3) no Rust reference to the buffer exists yet.
    unsafe { ptr::write_bytes(tail, 0, plan.tail) };
    // SAFETY: (1) `base` is valid for reads and writes of `plan.len` bytes
    // (the allocation above, live until completion, which happens after `f`
    // returns and the slice is gone); (2) all `plan.len` bytes are
    // initialised: the input by the I/O manager, the rest zeroed just above;
    // (3) nothing else accesses the buffer while the slice lives: the I/O
    // manager touches it again only after completion, and the user process
    // cannot see it; (4) plan.len is a pool allocation size, far below
    // isize::MAX; (5) u8 has alignment 1.
    let system_buffer = unsafe { core::slice::from_raw_parts_mut(base, plan.len) };
    Ok(f(system_buffer))
}
