//! The `windows` transport: the real usercap.sys.
//!
//! Written against Microsoft's documentation for `CreateFileW`,
//! `CM_Get_Device_Interface_ListW` and `NtDeviceIoControlFile`, and
//! type-checked for `x86_64-pc-windows-msvc` on Linux. It has not been run
//! on Windows by this project yet; docs/windows.md says how to.

use windows_sys::Wdk::System::IO::NtDeviceIoControlFile;
use windows_sys::Win32::Devices::DeviceAndDriverInstallation::{
    CM_GET_DEVICE_INTERFACE_LIST_PRESENT, CM_Get_Device_Interface_List_SizeW,
    CM_Get_Device_Interface_ListW, CR_SUCCESS,
};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, GENERIC_READ, GENERIC_WRITE, HANDLE,
    INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;
use windows_sys::core::GUID;

use usercap::NtStatus;
use usercap_protocol::{INTERFACE_GUID, USER_DEVICE_PATH};

use crate::transport::{Call, Error, Outcome, Transport};

/// An open handle to usercap.sys.
pub struct WindowsDevice {
    handle: HANDLE,
}

// SAFETY: a file HANDLE may be used from any thread; NtDeviceIoControlFile on
// a synchronous handle serialises as the I/O manager defines.
unsafe impl Send for WindowsDevice {}
// SAFETY: as above; the handle is never mutated after opening.
unsafe impl Sync for WindowsDevice {}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn open_path(path: &[u16]) -> Result<HANDLE, u32> {
    // SAFETY: `path` is NUL-terminated UTF-16 that outlives the call; the
    // other arguments are plain values or null as documented.
    let handle = unsafe {
        CreateFileW(
            path.as_ptr(),
            GENERIC_READ | GENERIC_WRITE,
            FILE_SHARE_READ | FILE_SHARE_WRITE,
            core::ptr::null(),
            OPEN_EXISTING,
            0,
            core::ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .map_or(0, i32::cast_unsigned))
    } else {
        Ok(handle)
    }
}

/// The first present device interface of usercap's class, as a
/// NUL-terminated path.
fn interface_path() -> Option<Vec<u16>> {
    let (data1, data2, data3, data4) = INTERFACE_GUID;
    let guid = GUID {
        data1,
        data2,
        data3,
        data4,
    };
    let mut len = 0u32;
    // SAFETY: `len` and `guid` are valid for the call; a null device ID
    // means all devices.
    let cr = unsafe {
        CM_Get_Device_Interface_List_SizeW(
            &raw mut len,
            &raw const guid,
            core::ptr::null(),
            CM_GET_DEVICE_INTERFACE_LIST_PRESENT,
        )
    };
    if cr != CR_SUCCESS || len <= 1 {
        return None;
    }
    let mut list = vec![0u16; usize::try_from(len).ok()?];
    // SAFETY: `list` holds `len` UTF-16 units, as the size call reported.
    let cr = unsafe {
        CM_Get_Device_Interface_ListW(
            &raw const guid,
            core::ptr::null(),
            list.as_mut_ptr(),
            len,
            CM_GET_DEVICE_INTERFACE_LIST_PRESENT,
        )
    };
    if cr != CR_SUCCESS {
        return None;
    }
    let first: Vec<u16> = list
        .iter()
        .copied()
        .take_while(|&c| c != 0)
        .chain(Some(0))
        .collect();
    (first.len() > 1).then_some(first)
}

impl WindowsDevice {
    /// Opens `\\.\UserCap`, or else the first usercap device interface.
    ///
    /// # Errors
    /// [`Error::Open`] with advice: not installed, or not an administrator.
    pub fn open() -> Result<Self, Error> {
        let first = open_path(&wide(USER_DEVICE_PATH));
        let result = match first {
            Ok(handle) => Ok(handle),
            Err(code) => match interface_path() {
                Some(path) => open_path(&path),
                None => Err(code),
            },
        };
        result.map(|handle| Self { handle }).map_err(|code| {
            Error::Open(match code {
                ERROR_FILE_NOT_FOUND => format!(
                    "{USER_DEVICE_PATH} does not exist: is usercap.sys installed and started? \
                     See docs/windows.md, \"Install\""
                ),
                ERROR_ACCESS_DENIED => "access denied: the device admits only SYSTEM and \
                     Administrators; run from an elevated prompt"
                    .to_owned(),
                other => format!("CreateFileW failed with Win32 error {other}"),
            })
        })
    }
}

impl Drop for WindowsDevice {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `open` and is closed once, here.
        unsafe { CloseHandle(self.handle) };
    }
}

impl Transport for WindowsDevice {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn call(&self, call: &Call) -> Result<Outcome, Error> {
        let too_long = |_| Error::Memory("buffer length above 4 GiB".to_owned());
        let input_len = u32::try_from(call.input_len).map_err(too_long)?;
        let output_len = u32::try_from(call.output_len).map_err(too_long)?;
        let mut iosb = IO_STATUS_BLOCK::default();
        // SAFETY: the handle is open. The buffers are raw addresses by design:
        // the kernel probes them, and a bad one is the point of an attack
        // scenario; they are never dereferenced here.
        let status = unsafe {
            NtDeviceIoControlFile(
                self.handle,
                core::ptr::null_mut(),
                None,
                core::ptr::null(),
                &raw mut iosb,
                call.code,
                call.input as *const core::ffi::c_void,
                input_len,
                call.output as *mut core::ffi::c_void,
                output_len,
            )
        };
        Ok(Outcome {
            status: NtStatus(status),
            information: iosb.Information,
        })
    }
}
