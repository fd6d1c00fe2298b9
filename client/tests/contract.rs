//! The protocol's failure contract on the platform's real backend,
//! `HostSpace` on Linux and `SehSpace` on Windows (run under Wine here):
//! the same check as `usercap-device`'s on `SimSpace`
//! (`usercap_device::io::contract`), on real pages with real protections
//! and real faults, with the device and the lock the client's `sim`
//! transport uses.
#![cfg(any(unix, all(windows, target_arch = "x86_64")))]

use usercap_client::sim::PlatformSpace;
use usercap_client::sim::SimDevice;
use usercap_device::io::contract::{self, Backend, PageAccess};
#[cfg(unix)]
use usercap_host::{Prot, UserMemory, guarded::page_size};
#[cfg(windows)]
use usercap_seh::{Prot, UserMemory, page_size};

/// The platform's space as a contract backend: one `UserMemory` region per
/// map.
struct Host {
    space: PlatformSpace,
    regions: Vec<UserMemory>,
}

impl Host {
    fn region(&self, addr: usize, len: usize) -> Result<&UserMemory, String> {
        self.regions
            .iter()
            .find(|r| r.contains(addr, len))
            .ok_or_else(|| format!("{len} bytes at {addr:#x} are not in a mapped region"))
    }
}

impl Backend for Host {
    type Space = PlatformSpace;

    fn space(&self) -> &PlatformSpace {
        &self.space
    }

    fn page_size(&self) -> usize {
        page_size()
    }

    fn map(&mut self, pages: &[(PageAccess, u8)]) -> Result<usize, String> {
        let page = self.page_size();
        let memory = UserMemory::new(pages.len() * page).map_err(|e| e.to_string())?;
        for (i, &(access, fill)) in pages.iter().enumerate() {
            memory
                .fill_at(i * page, page, fill)
                .map_err(|e| e.to_string())?;
            let prot = match access {
                PageAccess::ReadWrite => Prot::ReadWrite,
                PageAccess::ReadOnly => Prot::Read,
                PageAccess::NoAccess => Prot::None,
            };
            memory
                .protect(i * page, page, prot)
                .map_err(|e| e.to_string())?;
        }
        let base = memory.addr();
        self.regions.push(memory);
        Ok(base)
    }

    fn poke(&self, addr: usize, bytes: &[u8]) -> Result<(), String> {
        let region = self.region(addr, bytes.len())?;
        region
            .write_at(addr - region.addr(), bytes)
            .map_err(|e| e.to_string())
    }

    fn peek(&self, addr: usize, len: usize) -> Result<Vec<u8>, String> {
        let region = self.region(addr, len)?;
        let mut out = vec![0; len];
        region
            .read_at(addr - region.addr(), &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[test]
fn failed_requests_keep_the_failure_contract_on_the_platform_space() {
    let mut host = Host {
        space: PlatformSpace::new(),
        regions: Vec::new(),
    };
    let device = SimDevice::new();
    let checked = contract::check(&mut host, &device).unwrap();
    assert!(checked.clean_failures >= 20, "{checked:?}");
    assert_eq!(checked.straddles, 2 + 3 + 16 + 2, "{checked:?}");
    // The guarded copy writes up to the first unwritable byte, as
    // copy_to_user does, so every straddle with writable bytes left a
    // prefix: the contract's exception is exercised, not just allowed.
    assert_eq!(checked.prefixes_seen, 1 + 2 + 15, "{checked:?}");
}
