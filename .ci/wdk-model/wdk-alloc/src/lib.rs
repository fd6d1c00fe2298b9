#![no_std]
use core::alloc::{GlobalAlloc, Layout};
use wdk_sys::{POOL_FLAG_NON_PAGED, SIZE_T, ntddk::{ExAllocatePool2, ExFreePool}};
pub struct WdkAllocator;
unsafe impl GlobalAlloc for WdkAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, layout.size() as SIZE_T, 0).cast() }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) { unsafe { ExFreePool(ptr.cast()) } }
}
