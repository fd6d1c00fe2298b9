//! Shared pieces of the usercap fuzz targets: an arbitrary `SimSpace`
//! layout, addresses biased into it, and the oracle's view of which ranges
//! are readable and writable under the probe rules.
//!
//! Everything here is deterministic: a fuzz input fully describes the address
//! space, the device (always fresh) and the requests, so every crash replays.

use arbitrary::Arbitrary;
use usercap::sim::{Perm, SimSpace};
use usercap::{DEFAULT_PROBE_LIMIT, LOWEST_USER_ADDRESS, Mode, check_user_range};

/// Where the tests' user arena lives; most regions and requests go here.
pub const ARENA: usize = 0x10_0000;
/// A kernel address (device memory, in the tests' harness).
pub const KERNEL: usize = 0xFFFF_8000_0000_0000;
/// The largest region built from fuzz bytes.
pub const MAX_REGION_BYTES: usize = 4096;
/// The size of the one big zeroed region an input may ask for: one more
/// 64-byte chunk than the per-capture cap, so the limits themselves are
/// reachable (ECHO of exactly 1 MiB, SUM of exactly 2^18 values).
pub const BIG_REGION_BYTES: usize = (1 << 20) + 64;
/// At most this many regions.
pub const MAX_REGIONS: usize = 6;

/// The interesting places of a 64-bit Windows address space. A region or an
/// address is placed 4 KiB below the anchor plus a 16-bit offset, so it can
/// straddle the anchor.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// The user arena, `0x10_0000`.
    Arena,
    /// The lowest user address, 64 KiB: below it everything is refused.
    Low,
    /// `MmUserProbeAddress`, `0x7FFF_FFFF_0000`.
    ProbeLimit,
    /// Kernel space, `0xFFFF_8000_0000_0000`.
    Kernel,
    /// The top of the address space, where `addr + len` wraps.
    Top,
}

impl Base {
    /// The anchor address.
    #[must_use]
    pub const fn anchor(self) -> usize {
        match self {
            Self::Arena => ARENA,
            Self::Low => LOWEST_USER_ADDRESS,
            Self::ProbeLimit => DEFAULT_PROBE_LIMIT,
            Self::Kernel => KERNEL,
            Self::Top => 0,
        }
    }

    /// `anchor - 4 KiB + offset`, wrapping (for `Top`: the last 4 KiB of the
    /// address space, then the first 60 KiB).
    #[must_use]
    pub const fn at(self, offset: u16) -> usize {
        self.anchor()
            .wrapping_sub(0x1000)
            .wrapping_add(offset as usize)
    }
}

/// The contents of a region.
#[derive(Arbitrary, Clone, Debug)]
pub enum Data {
    /// These bytes (cut at [`MAX_REGION_BYTES`]).
    Bytes(Vec<u8>),
    /// `len` copies of `byte` (up to [`MAX_FILLED_BYTES`]).
    Filled {
        /// The byte.
        byte: u8,
        /// How many.
        len: u16,
    },
    /// [`BIG_REGION_BYTES`] zero bytes, if `key` is [`BIG_KEY`] and the
    /// target allows big regions; otherwise one zero byte. The key keeps the
    /// (slow) big region rare: libFuzzer finds it through its comparison
    /// tracing when it leads somewhere new.
    Big {
        /// Must be [`BIG_KEY`].
        key: u8,
    },
}

/// See [`Data::Big`].
pub const BIG_KEY: u8 = 0xB1;
/// The longest [`Data::Filled`] region.
pub const MAX_FILLED_BYTES: usize = 8192;

impl Data {
    fn bytes(&self, allow_big: bool) -> Vec<u8> {
        match self {
            Self::Bytes(bytes) => bytes.iter().copied().take(MAX_REGION_BYTES).collect(),
            Self::Filled { byte, len } => vec![*byte; usize::from(*len) % (MAX_FILLED_BYTES + 1)],
            Self::Big { key } if allow_big && *key == BIG_KEY => vec![0; BIG_REGION_BYTES],
            Self::Big { .. } => vec![0],
        }
    }
}

/// Access rights, as the fuzzer picks them.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum PermSpec {
    /// Read and write.
    ReadWrite,
    /// Read only.
    Read,
    /// A guard region.
    None,
}

impl PermSpec {
    /// The simulator's permission.
    #[must_use]
    pub const fn perm(self) -> Perm {
        match self {
            Self::ReadWrite => Perm::READ_WRITE,
            Self::Read => Perm::READ,
            Self::None => Perm::NONE,
        }
    }
}

/// One region of the layout.
#[derive(Arbitrary, Clone, Debug)]
pub struct RegionSpec {
    /// Where.
    pub base: Base,
    /// Offset from `base.at(0)`.
    pub offset: u16,
    /// Rights.
    pub perm: PermSpec,
    /// Contents.
    pub data: Data,
}

/// An address: mostly inside or at the edge of a mapped region.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Addr {
    /// `offset` bytes into region `region` (modulo the mapped regions; the
    /// offset is taken modulo the region's length + 1, so one past the end
    /// is reachable).
    In {
        /// Which region.
        region: u8,
        /// How far in.
        offset: u16,
    },
    /// `back` bytes before the end of region `region`: ranges that run off it.
    End {
        /// Which region.
        region: u8,
        /// How far before the end.
        back: u8,
    },
    /// Near one of the interesting anchors, mapped or not.
    Near {
        /// The anchor.
        base: Base,
        /// Offset from `base.at(0)`.
        offset: u16,
    },
    /// Null.
    Null,
    /// Anything.
    Raw(u64),
}

/// A mapped region, as the oracle knows it.
#[derive(Clone, Debug)]
pub struct Mapped {
    /// First address.
    pub addr: usize,
    /// Length in bytes (> 0).
    pub len: usize,
    /// Rights.
    pub perm: Perm,
}

impl Mapped {
    /// One past the last address.
    #[must_use]
    pub fn end(&self) -> usize {
        self.addr + self.len
    }
}

/// The layout that was mapped: the regions that did map (overlapping or
/// wrapping specs are dropped), sorted by address.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// The regions.
    pub regions: Vec<Mapped>,
}

impl Layout {
    /// Maps `specs` (at most [`MAX_REGIONS`], at most one big region, and
    /// none unless `allow_big`) into a fresh space in `mode`.
    #[must_use]
    pub fn build(specs: &[RegionSpec], mode: Mode, allow_big: bool) -> (SimSpace, Layout) {
        let space = match mode {
            Mode::User => SimSpace::new(),
            Mode::Kernel => SimSpace::kernel(),
        };
        let mut layout = Layout::default();
        let mut big = false;
        for spec in specs.iter().take(MAX_REGIONS) {
            let bytes = spec.data.bytes(allow_big && !big);
            big |= bytes.len() == BIG_REGION_BYTES;
            let addr = spec.base.at(spec.offset);
            let perm = spec.perm.perm();
            if space.map(addr, &bytes, perm).is_ok() {
                layout.regions.push(Mapped {
                    addr,
                    len: bytes.len(),
                    perm,
                });
            }
        }
        layout.regions.sort_by_key(|r| r.addr);
        (space, layout)
    }

    /// The integer an [`Addr`] stands for in this layout.
    #[must_use]
    pub fn resolve(&self, addr: Addr) -> usize {
        let pick = |region: u8| {
            let n = self.regions.len();
            (n > 0).then(|| &self.regions[usize::from(region) % n])
        };
        match addr {
            Addr::In { region, offset } => {
                pick(region).map_or(ARENA, |r| r.addr + usize::from(offset) % (r.len + 1))
            }
            Addr::End { region, back } => pick(region).map_or(ARENA, |r| {
                r.end().saturating_sub(usize::from(back)).max(r.addr)
            }),
            Addr::Near { base, offset } => base.at(offset),
            Addr::Null => 0,
            Addr::Raw(raw) => raw as usize,
        }
    }

    /// Whether every byte of `[addr, addr + len)` is mapped with `need`.
    #[must_use]
    pub fn mapped(&self, addr: usize, len: usize, need: impl Fn(Perm) -> bool) -> bool {
        let mut at = addr;
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        while at < end {
            let Some(r) = self.regions.iter().find(|r| r.addr <= at && at < r.end()) else {
                return false;
            };
            if !need(r.perm) {
                return false;
            }
            at = r.end();
        }
        true
    }

    /// Whether a read of `len > 0` bytes at `addr` with `align` succeeds in
    /// `mode`, by the probe rules and the mapping: the oracle's answer.
    ///
    /// # Errors
    /// The error the capture should give.
    pub fn read_ok(
        &self,
        mode: Mode,
        addr: usize,
        len: usize,
        align: usize,
    ) -> Result<(), usercap::CaptureError> {
        self.access_ok(mode, addr, len, align, |p| p.read)
    }

    /// As [`read_ok`](Self::read_ok), for writes.
    ///
    /// # Errors
    /// The error the write should give.
    pub fn write_ok(
        &self,
        mode: Mode,
        addr: usize,
        len: usize,
        align: usize,
    ) -> Result<(), usercap::CaptureError> {
        self.access_ok(mode, addr, len, align, |p| p.write)
    }

    fn access_ok(
        &self,
        mode: Mode,
        addr: usize,
        len: usize,
        align: usize,
        need: impl Fn(Perm) -> bool,
    ) -> Result<(), usercap::CaptureError> {
        if len == 0 {
            return Ok(());
        }
        if mode == Mode::User {
            check_user_range(addr, len, align, DEFAULT_PROBE_LIMIT)?;
        }
        if self.mapped(addr, len, need) {
            Ok(())
        } else {
            Err(usercap::CaptureError::AccessViolation)
        }
    }

    /// A copy of every region's bytes, to compare memory before and after.
    #[must_use]
    pub fn snapshot(&self, space: &SimSpace) -> Snapshot {
        Snapshot {
            regions: self
                .regions
                .iter()
                .map(|r| (r.addr, space.peek(r.addr, r.len).unwrap_or_default()))
                .collect(),
        }
    }
}

/// The contents of a layout's regions at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `(address, bytes)` per region.
    pub regions: Vec<(usize, Vec<u8>)>,
}

impl Snapshot {
    /// `len` bytes at `addr`, if every one is mapped (across adjacent
    /// regions too).
    #[must_use]
    pub fn read(&self, addr: usize, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len.min(1 << 16));
        let mut at = addr;
        while out.len() < len {
            let (base, bytes) = self
                .regions
                .iter()
                .find(|(base, bytes)| *base <= at && at - *base < bytes.len())?;
            let offset = at - base;
            let n = (bytes.len() - offset).min(len - out.len());
            out.extend_from_slice(&bytes[offset..offset + n]);
            at = at.checked_add(n)?;
        }
        Some(out)
    }

    /// A little-endian `u64` at `addr`.
    #[must_use]
    pub fn u64_at(&self, addr: usize) -> Option<u64> {
        let bytes = self.read(addr, 8)?;
        Some(u64::from_le_bytes(bytes.as_slice().try_into().ok()?))
    }

    /// A little-endian `u32` at `addr`.
    #[must_use]
    pub fn u32_at(&self, addr: usize) -> Option<u32> {
        let bytes = self.read(addr, 4)?;
        Some(u32::from_le_bytes(bytes.as_slice().try_into().ok()?))
    }

    /// A little-endian `u16` at `addr`.
    #[must_use]
    pub fn u16_at(&self, addr: usize) -> Option<u16> {
        let bytes = self.read(addr, 2)?;
        Some(u16::from_le_bytes(bytes.as_slice().try_into().ok()?))
    }

    /// Every address whose byte differs between `self` and `other` (same
    /// layout).
    pub fn changed<'a>(&'a self, other: &'a Snapshot) -> impl Iterator<Item = usize> + 'a {
        self.regions
            .iter()
            .zip(&other.regions)
            .flat_map(|((base, a), (_, b))| {
                a.iter()
                    .zip(b)
                    .enumerate()
                    .filter(|(_, (x, y))| x != y)
                    .map(move |(i, _)| base + i)
            })
    }
}
