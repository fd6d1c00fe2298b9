//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses its own subset")]

use usercap_seh::{Prot, UserMemory, page_size};

/// What the fence pages hold (visible once a guard fence is opened).
pub const FENCE_BYTE: u8 = 0xEE;

/// How the pages around an accessible range are made inaccessible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// `PAGE_NOACCESS`: committed, no access.
    NoAccess,
    /// Decommitted: reserved address space with nothing behind it.
    Reserved,
    /// `PAGE_GUARD`: faults once, then reads and writes like the page
    /// behind it. Re-armed with [`Fenced::rearm`].
    Guard,
}

/// `pages` accessible read-write pages between two fence pages, in a
/// [`UserMemory`], so that any access running off either end faults.
pub struct Fenced {
    mem: UserMemory,
    pages: usize,
    fence: Fence,
}

impl Fenced {
    /// Maps `pages + 2` pages and fences the first and the last.
    pub fn new(pages: usize, fence: Fence) -> Self {
        let page = page_size();
        let mem = UserMemory::new((pages + 2) * page).expect("VirtualAlloc");
        for offset in [0, (pages + 1) * page] {
            mem.fill_at(offset, page, FENCE_BYTE)
                .expect("fill the fence");
        }
        let fenced = Self { mem, pages, fence };
        fenced.rearm();
        fenced
    }

    /// Puts both fences (back) in place: a guard page is one-shot.
    pub fn rearm(&self) {
        let page = page_size();
        for offset in [0, (self.pages + 1) * page] {
            match self.fence {
                Fence::NoAccess => self.mem.protect(offset, page, Prot::None),
                Fence::Reserved => self.mem.decommit(offset, page),
                Fence::Guard => self.mem.protect(offset, page, Prot::Guard),
            }
            .expect("fence");
        }
    }

    /// Makes the guard fence pages read-write again (guard fences only;
    /// used to see what a copy left there).
    pub fn open_guards(&self) {
        assert_eq!(self.fence, Fence::Guard);
        let page = page_size();
        for offset in [0, (self.pages + 1) * page] {
            self.mem
                .protect(offset, page, Prot::ReadWrite)
                .expect("open");
        }
    }

    /// Address of the first accessible byte.
    pub fn addr(&self) -> usize {
        self.mem.addr() + page_size()
    }

    /// Bytes accessible.
    pub fn len(&self) -> usize {
        self.pages * page_size()
    }

    /// Address one past the last accessible byte.
    pub fn end(&self) -> usize {
        self.addr() + self.len()
    }

    /// The whole region.
    pub fn memory(&self) -> &UserMemory {
        &self.mem
    }

    /// Writes `data` at `offset` of the accessible range.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len());
        self.mem
            .write_at(page_size() + offset, data)
            .expect("write");
    }

    /// Reads `len` bytes at `offset` of the accessible range.
    pub fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.mem
            .read_at(page_size() + offset, &mut out)
            .expect("read");
        out
    }
}

/// A byte pattern that is never 0xFF (a canary value in the sweeps).
pub fn pattern(i: usize) -> u8 {
    u8::try_from(i * 7 % 251).unwrap()
}
