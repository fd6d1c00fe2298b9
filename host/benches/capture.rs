//! What a capture costs on real memory, against the copies it is built from
//! and the ones it replaces. `cargo bench -p usercap-host`; the results and
//! the targets are in docs/performance.md.
//!
//! For each size (8 B to 1 MiB), all from the same heap source, valid (no
//! faults):
//!
//! - `UserPtr::capture`: `UserPtr::<[u8; N]>::capture` on a user-mode
//!   `HostSpace` (probe, system-space check, address mask, guarded copy
//!   into an inline `Captured`);
//! - `UserSlice::capture`: `UserSlice::<u8>::capture` (the same, plus the
//!   limit and budget checks and a fallible pool allocation the copy writes
//!   once);
//! - `HostSpace::read`: the backend alone, into a preallocated buffer (probe,
//!   system-space check, address mask, guarded copy);
//! - `guarded`: the raw guarded copy into a preallocated buffer;
//! - `copy_nonoverlapping`: `copy_from_slice`, i.e. `ptr::copy_nonoverlapping`
//!   after a length check, into a preallocated buffer (plain memcpy);
//! - `alloc+copy`: `Vec::with_capacity` + `extend_from_slice`, the
//!   allocate-and-copy shape of `memdup_user`;
//! - `memdup_user`: the facade's `memdup_user` (fallible allocation,
//!   `access_ok`, the address mask, then the guarded copy straight into the
//!   uninitialised allocation);
//! - `process_vm_readv`: the fallback backend, one syscall per copy;
//! - `lfence`: a serialising speculation barrier alone (once, not per size),
//!   the price of the barrier the address mask replaces;
//! - `mask`: probe rule 5 as `HostSpace` does it, `guarded::mask_user_range`
//!   alone (once, not per size).
//!
//! Four kernel buffers are alive throughout, so system space is reserved and
//! the system-space check and the mask compare against real bounds.

#[cfg(unix)]
mod bench {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::measurement::WallTime;
    use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
    use usercap::{AddressSpace, UserPtr, UserSlice};
    use usercap_host::guarded::{self, Backend};
    use usercap_host::{HostSpace, KernelBuffer, linux};

    const SIZES: [usize; 6] = [8, 64, 256, 4096, 65_536, 1 << 20];

    fn user_ptr<const N: usize>(
        group: &mut BenchmarkGroup<'_, WallTime>,
        space: &HostSpace,
        addr: usize,
    ) {
        group.throughput(Throughput::Bytes(N as u64));
        group.bench_with_input(BenchmarkId::new("UserPtr::capture", N), &N, |b, _| {
            b.iter(|| {
                let captured = UserPtr::<[u8; N]>::new(black_box(addr)).capture(space);
                black_box(&captured);
            });
        });
    }

    pub fn capture(c: &mut Criterion) {
        guarded::install();
        let kernel: Vec<KernelBuffer> = (0..4).map(|_| KernelBuffer::new(4096).unwrap()).collect();
        let max = SIZES[SIZES.len() - 1];
        let src: Vec<u8> = (0..max).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let addr = src.as_ptr().addr();
        let space = HostSpace::new();

        let mut group = c.benchmark_group("capture");
        group
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20);

        group.bench_function("lfence", |b| b.iter(guarded::speculation_barrier));
        group.bench_function("mask", |b| {
            b.iter(|| {
                guarded::mask_user_range(
                    black_box(addr),
                    black_box(64),
                    black_box(usercap::DEFAULT_PROBE_LIMIT),
                )
            });
        });
        user_ptr::<8>(&mut group, &space, addr);
        user_ptr::<64>(&mut group, &space, addr);
        user_ptr::<256>(&mut group, &space, addr);
        user_ptr::<4096>(&mut group, &space, addr);
        user_ptr::<65_536>(&mut group, &space, addr);
        user_ptr::<{ 1 << 20 }>(&mut group, &space, addr);

        for n in SIZES {
            // A fresh destination per size, touched before it is measured.
            let mut dst = vec![0x5A_u8; n];
            group.throughput(Throughput::Bytes(n as u64));
            group.bench_with_input(BenchmarkId::new("UserSlice::capture", n), &n, |b, &n| {
                b.iter(|| {
                    let captured = UserSlice::<u8>::new(black_box(addr), n)
                        .unwrap()
                        .capture(&space);
                    black_box(&captured);
                });
            });
            group.bench_with_input(BenchmarkId::new("HostSpace::read", n), &n, |b, &n| {
                b.iter(|| black_box(space.read(black_box(addr), black_box(&mut dst[..n]), 1)));
            });
            group.bench_with_input(BenchmarkId::new("guarded", n), &n, |b, &n| {
                b.iter(|| {
                    black_box(guarded::copy_from(
                        black_box(&mut dst[..n]),
                        black_box(addr),
                    ))
                });
            });
            // `copy_from_slice` is `ptr::copy_nonoverlapping` after a length check.
            group.bench_with_input(BenchmarkId::new("copy_nonoverlapping", n), &n, |b, &n| {
                b.iter(|| black_box(&mut dst[..n]).copy_from_slice(black_box(&src[..n])));
            });
            group.bench_with_input(BenchmarkId::new("alloc+copy", n), &n, |b, &n| {
                b.iter(|| {
                    let mut copy = Vec::with_capacity(n);
                    copy.extend_from_slice(black_box(&src[..n]));
                    black_box(copy)
                });
            });
            group.bench_with_input(BenchmarkId::new("memdup_user", n), &n, |b, &n| {
                b.iter(|| black_box(linux::memdup_user(black_box(addr), n)));
            });
            group.bench_with_input(BenchmarkId::new("process_vm_readv", n), &n, |b, &n| {
                b.iter(|| {
                    black_box(guarded::copy_from_with(
                        Backend::ProcessVmReadv,
                        black_box(&mut dst[..n]),
                        black_box(addr),
                    ))
                });
            });
        }
        group.finish();
        drop(kernel);
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
