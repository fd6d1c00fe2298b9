//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses its own subset")]

use usercap_host::guarded::page_size;
use usercap_host::{Prot, UserMemory};

/// One read-write page between two `PROT_NONE` pages, in a [`UserMemory`],
/// so that any access running off either end faults.
pub struct GuardedPage {
    mem: UserMemory,
}

impl GuardedPage {
    /// Maps the three pages.
    pub fn new() -> Self {
        let page = page_size();
        let mem = UserMemory::new(3 * page).expect("mmap");
        mem.protect(0, page, Prot::None).expect("mprotect");
        mem.protect(2 * page, page, Prot::None).expect("mprotect");
        Self { mem }
    }

    /// Address of the first byte of the accessible page.
    pub fn addr(&self) -> usize {
        self.mem.addr() + page_size()
    }

    /// The whole mapping.
    pub fn memory(&self) -> &UserMemory {
        &self.mem
    }

    /// Sets every byte of the accessible page to `byte`.
    pub fn fill(&self, byte: u8) {
        self.mem
            .fill_at(page_size(), page_size(), byte)
            .expect("fill");
    }

    /// Writes `data` at `offset` in the accessible page.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= page_size());
        self.mem
            .write_at(page_size() + offset, data)
            .expect("write");
    }

    /// A copy of the accessible page.
    pub fn read(&self) -> Vec<u8> {
        let mut out = vec![0; page_size()];
        self.mem.read_at(page_size(), &mut out).expect("read");
        out
    }
}

/// A byte pattern that is never 0xFF (a canary value in the sweeps).
pub fn pattern(i: usize) -> u8 {
    u8::try_from(i * 7 % 251).unwrap()
}
