//! A METHOD_NEITHER IOCTL handler the way a Rust KMDF driver writes it with
//! usercap: the shape docs/adopting.md walks through.
//!
//! The handler is generic over `AddressSpace`, so the same code runs in
//! usercap.sys on `SehSpace::for_request` and here, in user mode, on the
//! model `SehSpace::new()` over `UserMemory` (run it under Wine:
//! `source .ci/wine/setup.sh && cargo run -p usercap-seh --example
//! kmdf_request --target x86_64-pc-windows-gnu`).

#[cfg(all(windows, target_arch = "x86_64"))]
mod example {
    use usercap::zerocopy::IntoBytes;
    use usercap::{AddressSpace, CaptureError, Mode, NtStatus, UserPtr, UserSlice, UserWriter};
    use usercap_protocol::{MAX_SUM_VALUES, SumReply, SumRequest};
    use usercap_seh::SehSpace;

    /// `KernelMode` in wdm.h's `MODE`; `WdfRequestGetRequestorMode` returns
    /// a `KPROCESSOR_MODE` (a `CCHAR`).
    const KERNEL_MODE: i8 = 0;

    /// What EvtIoInCallerContext does for one METHOD_NEITHER request, at
    /// PASSIVE_LEVEL, in the requestor's thread. `requestor_mode` comes
    /// from `WdfRequestGetRequestorMode(Request)`; `input`/`output` are the
    /// addresses `WdfRequestRetrieveUnsafeUserInputBuffer`/`OutputBuffer`
    /// returned, as integers: they are never dereferenced here.
    #[allow(
        dead_code,
        reason = "the framework calls it in usercap.sys; in user mode only `sum` runs"
    )]
    pub fn evt_io_in_caller_context(
        requestor_mode: i8,
        input: usize,
        input_len: usize,
        output: usize,
        output_len: usize,
    ) -> (NtStatus, usize) {
        let mode = if requestor_mode == KERNEL_MODE {
            Mode::Kernel
        } else {
            Mode::User
        };
        // SAFETY: EvtIoInCallerContext runs in kernel mode, in the thread
        // that sent the request, at PASSIVE_LEVEL; the space is used only
        // here, before the request completes; a KernelMode requestor's
        // buffers are trusted, as every Windows driver trusts them.
        let space = unsafe { SehSpace::for_request(mode) };
        complete(sum(&space, input, input_len, output, output_len))
    }

    /// `WdfRequestCompleteWithInformation`'s two values.
    pub fn complete(result: Result<usize, CaptureError>) -> (NtStatus, usize) {
        match result {
            Ok(written) => (NtStatus::STATUS_SUCCESS, written),
            Err(error) => (error.to_ntstatus(), 0),
        }
    }

    /// SUM: a header with a count and an embedded pointer to `count` values.
    /// Each user byte is fetched once; the count is checked on the kernel
    /// copy, never re-read from user memory.
    pub fn sum<S: AddressSpace>(
        space: &S,
        input: usize,
        input_len: usize,
        output: usize,
        output_len: usize,
    ) -> Result<usize, CaptureError> {
        if input_len < size_of::<SumRequest>() {
            return Err(CaptureError::Invalid);
        }
        let header = UserPtr::<SumRequest>::new(input).capture(space)?;
        if header.count > MAX_SUM_VALUES {
            return Err(CaptureError::TooLarge);
        }
        let count = usize::try_from(header.count).map_err(|_| CaptureError::TooLarge)?;
        let values_at =
            usize::try_from(header.values).map_err(|_| CaptureError::AccessViolation)?;
        let values = UserSlice::<u32>::new(values_at, count)?.capture(space)?;
        let reply = SumReply {
            sum: values.iter().map(|&v| u64::from(v)).sum(),
            count: header.count,
        };
        let mut writer = UserWriter::user(output, output_len);
        writer.write(space, &reply)?;
        Ok(writer.finish())
    }

    /// The same handler in user mode, on the model: user memory the way a
    /// caller would hand it over, and one fault.
    pub fn main() {
        use usercap_seh::UserMemory;
        let user = UserMemory::new(4096).unwrap();
        let values = [1_u32, 2, 3, 4];
        user.write_at(64, values.as_bytes()).unwrap();
        let request = SumRequest {
            count: 4,
            values: (user.addr() + 64) as u64,
        };
        user.write_at(0, request.as_bytes()).unwrap();
        let space = SehSpace::new();
        let (output, len) = (user.addr() + 256, size_of::<SumReply>());
        let done = complete(sum(&space, user.addr(), 16, output, len));
        let mut reply = SumReply::default();
        user.read_at(256, reply.as_mut_bytes()).unwrap();
        println!("SUM -> {} information {} sum {}", done.0, done.1, reply.sum);
        assert_eq!((done, reply.sum), ((NtStatus::STATUS_SUCCESS, 16), 10));

        // An embedded pointer past the end of the user's memory: a status,
        // not a crash.
        let bad = SumRequest {
            count: 4,
            values: (user.end() - 8) as u64,
        };
        user.write_at(0, bad.as_bytes()).unwrap();
        let failed = complete(sum(&space, user.addr(), 16, output, len));
        println!("SUM past the end -> {} information {}", failed.0, failed.1);
        assert_eq!(failed, (NtStatus::STATUS_ACCESS_VIOLATION, 0));
        // A header at a kernel address: refused by the probe, untouched.
        let kernel = complete(sum(&space, 0xFFFF_8000_0000_0000, 16, output, len));
        println!("SUM from a kernel address -> {}", kernel.0);
        assert_eq!(kernel, (NtStatus::STATUS_ACCESS_VIOLATION, 0));
    }
}

fn main() {
    #[cfg(all(windows, target_arch = "x86_64"))]
    example::main();
}
