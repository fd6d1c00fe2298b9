//! What the Windows guarded copy and a `SehSpace` capture cost, against the
//! copies they stand for. Runs on the Windows ABI; on Linux, under Wine:
//! `source .ci/wine/setup.sh && cargo bench -p usercap-seh --target
//! x86_64-pc-windows-gnu`. The results and the targets are in
//! docs/performance.md.
//!
//! Two layouts, one group each, because `rep movsb` (which memcpy may use)
//! is many times slower when the destination sits just after the source
//! modulo 4096:
//!
//! - `aligned`: source and destination page-aligned, (dst - src) mod 4096 = 0;
//! - `dist16`: the destination 16 bytes into its page, (dst - src) mod
//!   4096 = 16.
//!
//! For each size (8 B to 64 KiB), one row after the other:
//!
//! - `copy_from_slice`: from a heap copy of the source, with the same
//!   alignment, into the destination (memcpy);
//! - `seh::copy_from`: the guarded copy from user memory into the
//!   destination.
//!
//! And once per size, in the `capture` group (page-aligned source):
//!
//! - `copy_from_slice` again, into a page-aligned destination;
//! - `UserPtr::capture`: `UserPtr::<[u8; N]>::capture` on the user-mode
//!   model `SehSpace::new()` (probe, mask, guarded copy into an
//!   uninitialised value, then the move into the returned `Result`);
//! - `alloc+copy`: `Vec::with_capacity` + `extend_from_slice`, the
//!   allocate-and-copy shape of `memdup_user`;
//! - `UserSlice::capture`: `UserSlice::<u8>::capture` (limits, probe, mask,
//!   a fallible pool allocation the copy writes once).

#[cfg(all(windows, target_arch = "x86_64"))]
mod bench {
    use std::alloc::{Layout, alloc_zeroed};
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::measurement::WallTime;
    use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
    use usercap::{UserPtr, UserSlice};
    use usercap_seh::{SehSpace, UserMemory};

    /// The largest size.
    const MAX: usize = 64 << 10;
    const PAGE: usize = 4096;

    /// A page-aligned, zeroed heap buffer of `len` bytes, leaked for the
    /// run (the benchmark process ends right after).
    fn page_aligned(len: usize) -> &'static mut [u8] {
        let layout = Layout::from_size_align(len, PAGE).unwrap();
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        // SAFETY: `ptr` is a fresh, zeroed, exclusively owned allocation of
        // `len` bytes, never freed.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// The two copy rows of one size and layout, back to back.
    fn copies<const N: usize>(
        group: &mut BenchmarkGroup<'_, WallTime>,
        user: usize,
        heap_src: &[u8],
        dst: &mut [u8],
    ) {
        group.throughput(Throughput::Bytes(N as u64));
        let id = |name: &str| BenchmarkId::new(name, N);
        group.bench_function(id("copy_from_slice"), |b| {
            b.iter(|| black_box(&mut dst[..N]).copy_from_slice(black_box(&heap_src[..N])));
        });
        group.bench_function(id("seh::copy_from"), |b| {
            b.iter(|| {
                black_box(usercap_seh::copy_from(
                    black_box(&mut dst[..N]),
                    black_box(user),
                ))
            });
        });
    }

    /// The capture rows of one size, back to back.
    fn captures<const N: usize>(
        group: &mut BenchmarkGroup<'_, WallTime>,
        space: &SehSpace,
        user: usize,
        heap_src: &[u8],
        dst: &mut [u8],
    ) {
        group.throughput(Throughput::Bytes(N as u64));
        let id = |name: &str| BenchmarkId::new(name, N);
        group.bench_function(id("copy_from_slice"), |b| {
            b.iter(|| black_box(&mut dst[..N]).copy_from_slice(black_box(&heap_src[..N])));
        });
        group.bench_function(id("UserPtr::capture"), |b| {
            b.iter(|| {
                let captured = UserPtr::<[u8; N]>::new(black_box(user)).capture(space);
                black_box(captured.is_ok());
            });
        });
        group.bench_function(id("alloc+copy"), |b| {
            b.iter(|| {
                let mut copy = Vec::with_capacity(N);
                copy.extend_from_slice(black_box(&heap_src[..N]));
                black_box(copy)
            });
        });
        group.bench_function(id("UserSlice::capture"), |b| {
            b.iter(|| {
                let captured = UserSlice::<u8>::new(black_box(user), N)
                    .unwrap()
                    .capture(space);
                black_box(&captured);
            });
        });
    }

    pub fn copy(c: &mut Criterion) {
        let pattern: Vec<u8> = (0..MAX).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let mem = UserMemory::new(MAX).unwrap();
        mem.write_at(0, &pattern).unwrap();
        let user = mem.addr();
        let heap_src = page_aligned(MAX);
        heap_src.copy_from_slice(&pattern);
        let dst = page_aligned(MAX + PAGE);
        dst.fill(0x5A);
        let space = SehSpace::new();

        for (name, offset) in [("aligned", 0), ("dist16", 16)] {
            let mut group = c.benchmark_group(format!("seh/{name}"));
            group
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1))
                .sample_size(20);
            let dst = &mut dst[offset..offset + MAX];
            copies::<8>(&mut group, user, heap_src, dst);
            copies::<64>(&mut group, user, heap_src, dst);
            copies::<256>(&mut group, user, heap_src, dst);
            copies::<4096>(&mut group, user, heap_src, dst);
            copies::<MAX>(&mut group, user, heap_src, dst);
            group.finish();
        }

        let mut group = c.benchmark_group("seh/capture");
        group
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20);
        let dst = &mut dst[..MAX];
        captures::<8>(&mut group, &space, user, heap_src, dst);
        captures::<64>(&mut group, &space, user, heap_src, dst);
        captures::<256>(&mut group, &space, user, heap_src, dst);
        captures::<4096>(&mut group, &space, user, heap_src, dst);
        captures::<MAX>(&mut group, &space, user, heap_src, dst);
        group.finish();
    }
}

#[cfg(all(windows, target_arch = "x86_64"))]
mod group {
    #![allow(
        missing_docs,
        reason = "criterion_group! defines an undocumented pub fn"
    )]
    criterion::criterion_group!(benches, super::bench::copy);
}
#[cfg(all(windows, target_arch = "x86_64"))]
criterion::criterion_main!(group::benches);

/// Nothing to measure off x86_64 Windows.
#[cfg(not(all(windows, target_arch = "x86_64")))]
fn main() {}
