//! What a capture costs on real memory, against the copies it is built from
//! and the ones it replaces. `cargo bench -p usercap-host`; the results and
//! the targets are in docs/performance.md.
//!
//! For each size (8 B to 1 MiB), all from the same source, valid (no
//! faults), one row after the other, so that the rows a target compares are
//! measured back to back. The source is a [`UserMemory`] region, since a
//! user-mode `HostSpace` reads nothing outside the user range; the rows
//! that copy with plain Rust read it through a shared slice over the same
//! pages, which nothing writes while the bench runs:
//!
//! - `copy_nonoverlapping`: `copy_from_slice`, i.e. `ptr::copy_nonoverlapping`
//!   after a length check, into a preallocated buffer (plain memcpy);
//! - `UserPtr::capture`: `UserPtr::<[u8; N]>::capture` on a user-mode
//!   `HostSpace` (probe, user-range check, address mask, then up to 256
//!   bytes guarded loads inlined into registers, which the compiler stores
//!   straight into the returned `Result<Captured<_>, _>`; above, the
//!   guarded routine's copy into an uninitialised value, which is then
//!   moved);
//! - `UserPtr::capture_into`: the same into a reused `CaptureSlot`, in
//!   place (above 256 bytes the routine copies into the slot, no move);
//! - `alloc+copy`: `Vec::with_capacity` + `extend_from_slice`, the
//!   allocate-and-copy shape of `memdup_user`;
//! - `UserSlice::capture`: `UserSlice::<u8>::capture` (limit and budget
//!   checks, probe, mask, and a fallible pool allocation the copy writes
//!   once);
//! - `memdup_user`: the facade's `memdup_user` (fallible allocation,
//!   `access_ok`, the address mask, then the guarded copy straight into the
//!   uninitialised allocation);
//! - `guarded`: the raw guarded copy into a preallocated buffer;
//! - `HostSpace::read`: the backend alone, into a preallocated buffer (probe,
//!   user-range check, address mask, guarded copy);
//! - `process_vm_readv`: the fallback backend, one syscall per copy;
//! - `lfence`: a serialising speculation barrier alone (once, not per size),
//!   the price of the barrier the address mask replaces;
//! - `mask`: probe rule 5 as `HostSpace` does it, `guarded::mask_to_user_range`
//!   alone (once, not per size).
//!
//! Four kernel buffers are alive throughout, so system space is reserved (as
//! the facade's `memdup_user` checks it), and the source keeps the user
//! range reserved, so the probe and the mask compare against real bounds.

#[cfg(unix)]
mod bench {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::measurement::WallTime;
    use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
    use usercap::{AddressSpace, CaptureSlot, UserPtr, UserSlice};
    use usercap_host::guarded::{self, Backend};
    use usercap_host::{HostSpace, KernelBuffer, UserMemory, linux};

    /// Every row of one size, back to back.
    fn size<const N: usize>(
        group: &mut BenchmarkGroup<'_, WallTime>,
        space: &HostSpace,
        src: &[u8],
    ) {
        let addr = src.as_ptr().addr();
        // A fresh destination per size, touched before it is measured. One
        // long-lived 1 MiB destination made every `rep movsb` row (4 KiB and
        // up) 10 to 25 times slower, depending on its distance from the
        // source (see docs/performance.md).
        let mut dst = vec![0x5A_u8; N];
        let dst = dst.as_mut_slice();
        group.throughput(Throughput::Bytes(N as u64));
        let id = |name: &str| BenchmarkId::new(name, N);
        group.bench_function(id("copy_nonoverlapping"), |b| {
            // `copy_from_slice` is `ptr::copy_nonoverlapping` after a length
            // check.
            b.iter(|| black_box(&mut dst[..N]).copy_from_slice(black_box(&src[..N])));
        });
        group.bench_function(id("UserPtr::capture"), |b| {
            b.iter(|| {
                let captured = UserPtr::<[u8; N]>::new(black_box(addr)).capture(space);
                black_box(&captured);
            });
        });
        let mut slot = CaptureSlot::<[u8; N]>::new();
        group.bench_function(id("UserPtr::capture_into"), |b| {
            b.iter(|| {
                let captured =
                    UserPtr::<[u8; N]>::new(black_box(addr)).capture_into(space, &mut slot);
                black_box(captured.is_ok());
            });
        });
        group.bench_function(id("alloc+copy"), |b| {
            b.iter(|| {
                let mut copy = Vec::with_capacity(N);
                copy.extend_from_slice(black_box(&src[..N]));
                black_box(copy)
            });
        });
        group.bench_function(id("UserSlice::capture"), |b| {
            b.iter(|| {
                let captured = UserSlice::<u8>::new(black_box(addr), N)
                    .unwrap()
                    .capture(space);
                black_box(&captured);
            });
        });
        group.bench_function(id("memdup_user"), |b| {
            b.iter(|| black_box(linux::memdup_user(black_box(addr), N)));
        });
        group.bench_function(id("guarded"), |b| {
            b.iter(|| {
                black_box(guarded::copy_from(
                    black_box(&mut dst[..N]),
                    black_box(addr),
                ))
            });
        });
        group.bench_function(id("HostSpace::read"), |b| {
            b.iter(|| black_box(space.read(black_box(addr), black_box(&mut dst[..N]), 1)));
        });
        group.bench_function(id("process_vm_readv"), |b| {
            b.iter(|| {
                black_box(guarded::copy_from_with(
                    Backend::ProcessVmReadv,
                    black_box(&mut dst[..N]),
                    black_box(addr),
                ))
            });
        });
    }

    /// The largest size.
    const MAX: usize = 1 << 20;

    /// Where the source starts in its first page.
    const SRC_OFFSET: usize = 16;

    pub fn capture(c: &mut Criterion) {
        guarded::install();
        let kernel: Vec<KernelBuffer> = (0..4).map(|_| KernelBuffer::new(4096).unwrap()).collect();
        let pattern: Vec<u8> = (0..MAX).map(|i| u8::try_from(i % 251).unwrap()).collect();
        // The source starts 16 bytes into a page, where the 1 MiB heap
        // buffer the earlier runs read started (after malloc's chunk
        // header): the page offset of the source moves the 64 and 256 B
        // rows by up to half, guarded and plain copies alike, so a change
        // of it would pass for a change of the code.
        let user = UserMemory::new(MAX + SRC_OFFSET).unwrap();
        user.write_at(SRC_OFFSET, &pattern).unwrap();
        drop(pattern);
        // SAFETY: `user` maps `MAX + SRC_OFFSET` read-write, initialised
        // bytes for as long as it lives, which outlasts `src`; nothing
        // writes the region from here on (the bench only reads it, through
        // `src` and the guarded copy), so a shared slice over it is sound.
        let src: &[u8] = unsafe {
            std::slice::from_raw_parts(
                std::ptr::with_exposed_provenance(user.addr() + SRC_OFFSET),
                MAX,
            )
        };
        let space = HostSpace::new();

        let mut group = c.benchmark_group("capture");
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30);

        group.bench_function("lfence", |b| b.iter(guarded::speculation_barrier));
        group.bench_function("mask", |b| {
            b.iter(|| {
                guarded::mask_to_user_range(
                    black_box(src.as_ptr().addr()),
                    black_box(64),
                    black_box(usercap::DEFAULT_PROBE_LIMIT),
                )
            });
        });
        size::<8>(&mut group, &space, src);
        size::<64>(&mut group, &space, src);
        size::<256>(&mut group, &space, src);
        size::<4096>(&mut group, &space, src);
        size::<65_536>(&mut group, &space, src);
        size::<MAX>(&mut group, &space, src);
        group.finish();
        drop(kernel);
        drop(user);
    }
}

#[cfg(unix)]
mod group {
    #![allow(
        missing_docs,
        reason = "criterion_group! defines an undocumented pub fn"
    )]
    criterion::criterion_group!(benches, super::bench::capture);
}
#[cfg(unix)]
criterion::criterion_main!(group::benches);

#[cfg(not(unix))]
fn main() {}
