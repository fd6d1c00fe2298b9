//! `SimSpace`: a deterministic, simulated user address space.
//!
//! It is how this project proves its safety properties without a kernel:
//!
//! - **Separate address spaces.** Regions live at integer addresses that are
//!   not pointers into this process, so code that tried to dereference a user
//!   address could not even be written against it (the model that PaX UDEREF
//!   and SMAP enforce in hardware).
//! - **Per-byte fetch counters**, as Bochspwn logged every kernel read of user
//!   memory: [`SimSpace::max_fetches`] above 1 is a double fetch.
//! - **Fault injection**: [`SimSpace::fail_access`] makes the n-th access
//!   fault, to drive every error path.
//! - **A deterministic racing attacker**: [`SimSpace::on_fetch`] and
//!   [`SimSpace::after_access`] run a hook that rewrites memory right after a
//!   chosen fetch, the worst moment a real racing thread could pick.
//! - **Kernel mode**, where nothing is probed.
//!
//! It has no `unsafe`, no threads and no clock, so it runs under Miri and in
//! the fuzzer, and every run is the same.
//!
//! Regions have byte granularity, finer than real pages. A read that runs
//! off a region faults there, after fetching (and counting) the bytes before
//! the fault, as a `rep movsb` would.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::sync::atomic::{Ordering, compiler_fence};

use crate::{AddressSpace, CaptureError, DEFAULT_PROBE_LIMIT, Limits, Mode, check_user_range};

/// Access rights of a simulated region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// Reads are allowed.
    pub read: bool,
    /// Writes are allowed.
    pub write: bool,
}

impl Perm {
    /// A no-access guard region (`PAGE_NOACCESS`, `PROT_NONE`).
    pub const NONE: Perm = Perm {
        read: false,
        write: false,
    };
    /// Read-only.
    pub const READ: Perm = Perm {
        read: true,
        write: false,
    };
    /// Read and write.
    pub const READ_WRITE: Perm = Perm {
        read: true,
        write: true,
    };
}

/// Why a region could not be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The region would overlap one already mapped.
    Overlap,
    /// `addr + len` wraps past the top of the address space, or `len` is 0.
    BadRange,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Overlap => "region overlaps a mapped region",
            Self::BadRange => "region is empty or wraps the address space",
        })
    }
}

#[derive(Debug)]
struct Region {
    base: usize,
    data: Vec<u8>,
    fetches: Vec<u32>,
    perm: Perm,
}

impl Region {
    fn end(&self) -> usize {
        self.base + self.data.len()
    }
}

/// The memory of a [`SimSpace`], as its hooks see it.
#[derive(Debug, Default)]
pub struct SimMemory {
    /// Sorted by `base`, non-overlapping.
    regions: Vec<Region>,
}

impl SimMemory {
    fn region_index(&self, addr: usize) -> Option<usize> {
        let after = self.regions.partition_point(|r| r.base <= addr);
        let i = after.checked_sub(1)?;
        let region = self.regions.get(i)?;
        (addr < region.end()).then_some(i)
    }

    fn map(&mut self, addr: usize, data: Vec<u8>, perm: Perm) -> Result<(), MapError> {
        let len = data.len();
        let end = addr.checked_add(len).ok_or(MapError::BadRange)?;
        if len == 0 {
            return Err(MapError::BadRange);
        }
        let at = self.regions.partition_point(|r| r.base < addr);
        let overlaps_prev = at
            .checked_sub(1)
            .and_then(|i| self.regions.get(i))
            .is_some_and(|r| r.end() > addr);
        let overlaps_next = self.regions.get(at).is_some_and(|r| r.base < end);
        if overlaps_prev || overlaps_next {
            return Err(MapError::Overlap);
        }
        self.regions.insert(
            at,
            Region {
                base: addr,
                fetches: vec![0; len],
                data,
                perm,
            },
        );
        Ok(())
    }

    /// Walks `len` bytes from `addr` region by region, calling `f` with each
    /// region and the offsets of the piece in it and in the walk. Stops with
    /// `Err(done)` at the first byte that is unmapped or lacks `need`.
    fn walk(
        &mut self,
        addr: usize,
        len: usize,
        need: impl Fn(Perm) -> bool,
        mut f: impl FnMut(&mut Region, usize, usize, usize),
    ) -> Result<(), usize> {
        let mut done = 0;
        while done < len {
            let at = addr.checked_add(done).ok_or(done)?;
            let i = self.region_index(at).ok_or(done)?;
            let region = self.regions.get_mut(i).ok_or(done)?;
            if !need(region.perm) {
                return Err(done);
            }
            let offset = at - region.base;
            let n = (region.data.len() - offset).min(len - done);
            f(region, offset, done, n);
            done += n;
        }
        Ok(())
    }

    /// Reads memory without counting a fetch or checking permissions: what
    /// the test (or the attacker) sees, not the kernel. `None` if any byte is
    /// unmapped.
    #[must_use]
    pub fn peek(&self, addr: usize, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let mut at = addr;
        while out.len() < len {
            let region = self.regions.get(self.region_index(at)?)?;
            let offset = at - region.base;
            let n = (region.data.len() - offset).min(len - out.len());
            out.extend_from_slice(region.data.get(offset..offset + n)?);
            at = at.checked_add(n)?;
        }
        Some(out)
    }

    /// Writes memory without permission checks, as another user thread (or
    /// the test) would. Returns false, writing nothing, if any byte is unmapped.
    pub fn poke(&mut self, addr: usize, bytes: &[u8]) -> bool {
        if self.peek(addr, bytes.len()).is_none() {
            return false;
        }
        self.walk(
            addr,
            bytes.len(),
            |_| true,
            |region, offset, done, n| {
                if let (Some(dst), Some(src)) = (
                    region.data.get_mut(offset..offset + n),
                    bytes.get(done..done + n),
                ) {
                    dst.copy_from_slice(src);
                }
            },
        )
        .is_ok()
    }
}

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// Once, right after the n-th access (read or write) since the last reset.
    AfterAccess(u64),
    /// After every read that fetched this address.
    AfterFetchOf(usize),
}

type HookFn = Box<dyn FnMut(&mut SimMemory)>;

struct Hook {
    trigger: Trigger,
    action: HookFn,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook")
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    memory: SimMemory,
    /// The largest per-byte fetch count since the last reset, kept as
    /// fetches happen so that checking it costs nothing (it is checked after
    /// every request, under Miri too).
    max_fetches: u32,
    accesses: u64,
    fail_at: Option<u64>,
    hooks: Vec<Hook>,
}

/// A deterministic simulated address space; see the [module docs](self).
#[derive(Debug)]
pub struct SimSpace {
    state: RefCell<State>,
    mode: Cell<Mode>,
    probe_limit: usize,
    limits: Limits,
}

impl Default for SimSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl SimSpace {
    /// An empty user-mode space with the x64 probe limit and default limits.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: RefCell::new(State::default()),
            mode: Cell::new(Mode::User),
            probe_limit: DEFAULT_PROBE_LIMIT,
            limits: Limits::DEFAULT,
        }
    }

    /// An empty kernel-mode space: nothing is probed, as for a `KernelMode`
    /// requestor. Unmapped addresses still fault (a real kernel would crash).
    #[must_use]
    pub fn kernel() -> Self {
        let space = Self::new();
        space.mode.set(Mode::Kernel);
        space
    }

    /// Sets the probe limit (`MmUserProbeAddress`).
    #[must_use]
    pub fn with_probe_limit(mut self, probe_limit: usize) -> Self {
        self.probe_limit = probe_limit;
        self
    }

    /// Sets the capture limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Switches the requestor mode.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.set(mode);
    }

    /// The probe limit in force.
    #[must_use]
    pub fn probe_limit(&self) -> usize {
        self.probe_limit
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        // Hooks receive `&mut SimMemory`, never the space, so this borrow is
        // never re-entered; `None` only keeps the path free of panics.
        self.state
            .try_borrow_mut()
            .ok()
            .map(|mut state| f(&mut state))
    }

    /// Maps `bytes` at `addr` with `perm`.
    ///
    /// # Errors
    /// [`MapError`] for an empty, wrapping or overlapping region.
    pub fn map(&self, addr: usize, bytes: &[u8], perm: Perm) -> Result<(), MapError> {
        self.with_state(|s| s.memory.map(addr, bytes.to_vec(), perm))
            .unwrap_or(Err(MapError::Overlap))
    }

    /// Maps `len` zero bytes at `addr` with `perm`.
    ///
    /// # Errors
    /// As [`map`](Self::map).
    pub fn map_zeroed(&self, addr: usize, len: usize, perm: Perm) -> Result<(), MapError> {
        self.with_state(|s| s.memory.map(addr, vec![0; len], perm))
            .unwrap_or(Err(MapError::Overlap))
    }

    /// Reads memory without counting fetches; see [`SimMemory::peek`].
    #[must_use]
    pub fn peek(&self, addr: usize, len: usize) -> Option<Vec<u8>> {
        self.with_state(|s| s.memory.peek(addr, len)).flatten()
    }

    /// Writes memory without counting or checking; see [`SimMemory::poke`].
    pub fn poke(&self, addr: usize, bytes: &[u8]) -> bool {
        self.with_state(|s| s.memory.poke(addr, bytes))
            .unwrap_or(false)
    }

    /// Makes the `n`-th access (read or write, counted from 1 since the last
    /// [`reset_counters`](Self::reset_counters)) fault before touching
    /// anything. `None` disables injection.
    pub fn fail_access(&self, n: Option<u64>) {
        self.with_state(|s| s.fail_at = n);
    }

    /// Runs `hook` once, right after the `n`-th access since the last reset.
    pub fn after_access(&self, n: u64, hook: impl FnMut(&mut SimMemory) + 'static) {
        self.add_hook(Trigger::AfterAccess(n), Box::new(hook));
    }

    /// Runs `hook` after every read that fetched the byte at `addr`: a racing
    /// thread that rewrites the value the instant the kernel has read it.
    pub fn on_fetch(&self, addr: usize, hook: impl FnMut(&mut SimMemory) + 'static) {
        self.add_hook(Trigger::AfterFetchOf(addr), Box::new(hook));
    }

    fn add_hook(&self, trigger: Trigger, action: HookFn) {
        self.with_state(|s| s.hooks.push(Hook { trigger, action }));
    }

    /// Removes every hook.
    pub fn clear_hooks(&self) {
        self.with_state(|s| s.hooks.clear());
    }

    /// Starts a new request: zeroes the fetch counters and the access count.
    /// Hooks and fault injection stay.
    pub fn reset_counters(&self) {
        self.with_state(|s| {
            s.accesses = 0;
            s.max_fetches = 0;
            for region in &mut s.memory.regions {
                region.fetches.fill(0);
            }
        });
    }

    /// How many times the byte at `addr` was fetched since the last reset.
    #[must_use]
    pub fn fetches(&self, addr: usize) -> u32 {
        self.with_state(|s| {
            let i = s.memory.region_index(addr)?;
            let region = s.memory.regions.get(i)?;
            region.fetches.get(addr - region.base).copied()
        })
        .flatten()
        .unwrap_or(0)
    }

    /// The largest fetch count of any byte since the last reset: above 1 is
    /// a double fetch.
    #[must_use]
    pub fn max_fetches(&self) -> u32 {
        self.with_state(|s| s.max_fetches).unwrap_or(0)
    }

    /// The lowest address fetched more than once since the last reset.
    #[must_use]
    pub fn first_double_fetch(&self) -> Option<usize> {
        self.with_state(|s| {
            s.memory.regions.iter().find_map(|r| {
                r.fetches
                    .iter()
                    .position(|&n| n > 1)
                    .map(|offset| r.base + offset)
            })
        })
        .flatten()
    }

    /// Total bytes fetched since the last reset.
    #[must_use]
    pub fn fetched_bytes(&self) -> u64 {
        self.with_state(|s| {
            s.memory
                .regions
                .iter()
                .flat_map(|r| r.fetches.iter())
                .map(|&n| u64::from(n))
                .sum()
        })
        .unwrap_or(0)
    }

    /// Accesses (reads and writes that reached memory) since the last reset.
    #[must_use]
    pub fn accesses(&self) -> u64 {
        self.with_state(|s| s.accesses).unwrap_or(0)
    }

    /// Rules 2 to 5 of the probe, then the access count and fault injection.
    fn begin_access(
        &self,
        state: &mut State,
        addr: usize,
        len: usize,
        align: usize,
    ) -> Result<u64, CaptureError> {
        if self.mode.get() == Mode::User {
            check_user_range(addr, len, align, self.probe_limit)?;
            // Stands in for the backend's speculation barrier: a simulation
            // does not speculate, but the ordering of the steps stays visible.
            compiler_fence(Ordering::SeqCst);
        }
        state.accesses = state.accesses.saturating_add(1);
        let n = state.accesses;
        if state.fail_at == Some(n) {
            return Err(CaptureError::AccessViolation);
        }
        Ok(n)
    }

    fn run_hooks(state: &mut State, access: u64, fetched: core::ops::Range<usize>) {
        let State { memory, hooks, .. } = state;
        for hook in hooks.iter_mut() {
            let fire = match hook.trigger {
                Trigger::AfterAccess(n) => n == access,
                Trigger::AfterFetchOf(addr) => fetched.contains(&addr),
            };
            if fire {
                (hook.action)(memory);
            }
        }
    }
}

impl AddressSpace for SimSpace {
    fn mode(&self) -> Mode {
        self.mode.get()
    }

    fn read(&self, src: usize, dst: &mut [u8], align: usize) -> Result<(), CaptureError> {
        if dst.is_empty() {
            return Ok(());
        }
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return Err(CaptureError::AccessViolation);
        };
        let access = self.begin_access(&mut state, src, dst.len(), align)?;
        let len = dst.len();
        let mut most = 0;
        let walked = state.memory.walk(
            src,
            len,
            |perm| perm.read,
            |region, offset, done, n| {
                if let (Some(to), Some(from), Some(counts)) = (
                    dst.get_mut(done..done + n),
                    region.data.get(offset..offset + n),
                    region.fetches.get_mut(offset..offset + n),
                ) {
                    to.copy_from_slice(from);
                    for count in counts.iter_mut() {
                        *count = count.saturating_add(1);
                        most = most.max(*count);
                    }
                }
            },
        );
        state.max_fetches = state.max_fetches.max(most);
        let fetched = match walked {
            Ok(()) => len,
            Err(done) => done,
        };
        Self::run_hooks(&mut state, access, src..src.saturating_add(fetched));
        walked.map_err(|_| CaptureError::AccessViolation)
    }

    fn write(&self, dst: usize, src: &[u8], align: usize) -> Result<(), CaptureError> {
        if src.is_empty() {
            return Ok(());
        }
        let Ok(mut state) = self.state.try_borrow_mut() else {
            return Err(CaptureError::AccessViolation);
        };
        let access = self.begin_access(&mut state, dst, src.len(), align)?;
        let walked = state.memory.walk(
            dst,
            src.len(),
            |perm| perm.write,
            |region, offset, done, n| {
                if let (Some(to), Some(from)) = (
                    region.data.get_mut(offset..offset + n),
                    src.get(done..done + n),
                ) {
                    to.copy_from_slice(from);
                }
            },
        );
        Self::run_hooks(&mut state, access, 0..0);
        walked.map_err(|_| CaptureError::AccessViolation)
    }

    fn limits(&self) -> Limits {
        self.limits
    }
}
