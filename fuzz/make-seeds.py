#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/seed-*.

The structured targets decode their input with `arbitrary` 1.x, whose
encoding is simple enough to write by hand:
- integers are little-endian, of their own size;
- bool is one byte, odd = true; Option<T> is a bool then T;
- an enum variant i of n is a u32 v with (v * n) >> 32 == i;
- Vec<T> is, per element, a byte 1 then the element, and a byte 0 at the end.

The seeds are the unit tests' valid requests (device/tests/ioctls.rs) plus
a few classic hostile ones. `USERCAP_FUZZ_TRACE=1 cargo +nightly fuzz run
dispatch corpus/dispatch/seed-...` prints what a seed decodes to.

Run from anywhere: python3 fuzz/make-seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

ARENA = 0x10_0000
KERNEL = 0xFFFF_8000_0000_0000


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def boolean(v): return b"\x01" if v else b"\x00"


def variant(i, n):
    v = ((2 * i + 1) << 32) // (2 * n)
    assert (v * n) >> 32 == i
    return u32(v)


def vec(items):
    return b"".join(b"\x01" + it for it in items) + b"\x00"


def option(x):
    return b"\x00" if x is None else b"\x01" + x


# ---- usercap_fuzz (src/lib.rs)
BASES = ["Arena", "Low", "ProbeLimit", "Kernel", "Top"]
def base(name): return variant(BASES.index(name), 5)

def data_bytes(bs): return variant(0, 3) + vec([u8(b) for b in bs])
def data_filled(byte, n): return variant(1, 3) + u8(byte) + u16(n)

PERMS = {"rw": 0, "r": 1, "none": 2}
def region(base_name, offset, perm, data):
    return base(base_name) + u16(offset) + variant(PERMS[perm], 3) + data

def addr_in(region_i, offset): return variant(0, 5) + u8(region_i) + u16(offset)
def addr_end(region_i, back): return variant(1, 5) + u8(region_i) + u8(back)
def addr_near(base_name, offset): return variant(2, 5) + base(base_name) + u16(offset)
def addr_null(): return variant(3, 5)
def addr_raw(v): return variant(4, 5) + u64(v)



def standard_layout(content, out_len=512):
    """Region 0: the request bytes at ARENA (0x10_0000); region 1: the output
    area at 0x10_8000 (0xEE canary); region 2: device memory at KERNEL."""
    assert len(content) <= 4096
    return [
        region("Arena", 0x1000, "rw", data_bytes(content)),
        region("Arena", 0x9000, "rw", data_filled(0xEE, out_len)),
        region("Kernel", 0x1000, "rw", data_filled(0x5A, 4096)),
    ]

OUT = ARENA + 0x8000


# ---- dispatch
IOCTL = ["ECHO", "SUM", "MESSAGE", "SET_NAME", "GET_NAME", "CONFIGURE", "BATCH", "STATS"]
def code_known(name): return variant(0, 3) + u8(IOCTL.index(name))
def code_raw(v): return variant(2, 3) + u32(v)

def len_zero(): return variant(0, 4)
def len_small(n): return variant(1, 4) + u8(n)
def len_medium(n): return variant(2, 4) + u16(n)
def len_raw(n): return variant(3, 4) + u64(n)

def race(after, at, bs): return u8(after) + at + vec([u8(b) for b in bs])

def call(code, inp, in_len, out, out_len, fault=None, race_=None):
    return (code + inp + in_len + out + out_len
            + option(None if fault is None else u8(fault)) + option(race_))


def patch_addr(at, to): return at + variant(0, 4) + to


def dispatch_input(regions, calls, patches=(), kernel=False):
    return boolean(kernel) + vec(regions) + vec(list(patches)) + vec(calls)


def pad(b, n):
    assert len(b) <= n
    return b + bytes(n - len(b))


def utf16(s): return s.encode("utf-16-le")


def dispatch_seeds():
    seeds = {}
    out = addr_in(1, 0)
    # ECHO
    seeds["echo"] = dispatch_input(
        standard_layout(b"hello, usercap"),
        [call(code_known("ECHO"), addr_in(0, 0), len_small(14), out, len_medium(512))])
    # SUM of [1, 2, 3], then the same with the values pointer at kernel memory.
    sum_req = pad(u64(3) + u64(ARENA + 0x40), 0x40) + u32(1) + u32(2) + u32(3)
    seeds["sum"] = dispatch_input(
        standard_layout(sum_req),
        [call(code_known("SUM"), addr_in(0, 0), len_small(16), out, len_small(16))])
    seeds["sum-kernel-pointer"] = dispatch_input(
        standard_layout(u64(3) + u64(KERNEL)),
        [call(code_known("SUM"), addr_in(0, 0), len_small(16), out, len_small(16))])
    # SUM raced: after the header's fetch (access 1) a user thread makes the
    # count huge. The captured count (3) must be the one used.
    seeds["sum-race"] = dispatch_input(
        standard_layout(sum_req),
        [call(code_known("SUM"), addr_in(0, 0), len_small(16), out, len_small(16),
              race_=race(1, addr_in(0, 0), u64(0xFFFF_FFFF)))])
    # MESSAGE kind 7, items 10, 20; then one whose count lies.
    msg = u32(7) + u32(2) + u32(10) + u32(20)
    seeds["message"] = dispatch_input(
        standard_layout(msg),
        [call(code_known("MESSAGE"), addr_in(0, 0), len_small(16), out, len_small(16)),
         call(code_known("MESSAGE"), addr_in(0, 0), len_small(12), out, len_small(16))])
    # SET_NAME "usercap", GET_NAME, STATS.
    name = utf16("usercap")
    set_name = pad(u16(len(name)) + u16(len(name)) + u32(0) + u64(ARENA + 0x40), 0x40) + name
    seeds["name"] = dispatch_input(
        standard_layout(set_name),
        [call(code_known("SET_NAME"), addr_in(0, 0), len_small(16), addr_null(), len_zero()),
         call(code_known("GET_NAME"), addr_null(), len_zero(), out, len_medium(264)),
         call(code_known("STATS"), addr_null(), len_zero(), out, len_small(80))])
    # A name of U+BDBD U+BDBD: GET_NAME returns 0xBD 0xBD 0xBD 0xBD, the
    # model's stale-pool pattern (docs/fuzzing.md, known model limitation).
    bd = bytes([0xBD] * 8)
    set_bd = pad(u16(8) + u16(8) + u32(0) + u64(ARENA + 0x40), 0x40) + bd
    seeds["name-poison-pattern"] = dispatch_input(
        standard_layout(set_bd),
        [call(code_known("SET_NAME"), addr_in(0, 0), len_small(16), addr_null(), len_zero()),
         call(code_known("GET_NAME"), addr_null(), len_zero(), out, len_medium(264))])
    # CONFIGURE v2 with reply, v1, v3 with a zero tail, then v3 with a
    # non-zero tail (STATUS_NOT_SUPPORTED).
    cfg = u32(1) + u32(3) + u64(100) + u64(0) + u32(1) + u32(5) + u64(0) + u64(1)
    seeds["configure"] = dispatch_input(
        standard_layout(cfg),
        [call(code_known("CONFIGURE"), addr_in(0, 0), len_small(16), out, len_small(16)),
         call(code_known("CONFIGURE"), addr_in(0, 0), len_small(8), addr_null(), len_zero()),
         call(code_known("CONFIGURE"), addr_in(0, 0), len_small(24), out, len_small(16)),
         call(code_known("CONFIGURE"), addr_in(0, 24), len_small(24), out, len_small(16))])
    # BATCH of two segments.
    batch = pad(u32(2) + u32(0) + u64(ARENA + 0x40), 0x40)
    batch += pad(u64(ARENA + 0x80) + u64(5) + u64(ARENA + 0x90) + u64(3), 0x40)
    batch += pad(b"hello", 0x10) + b"abc"
    seeds["batch"] = dispatch_input(
        standard_layout(batch),
        [call(code_known("BATCH"), addr_in(0, 0), len_small(16), out, len_small(24))])
    # BATCH whose second segment is kernel memory, and an unknown code.
    batch_k = pad(u32(2) + u32(0) + u64(ARENA + 0x40), 0x40)
    batch_k += pad(u64(ARENA + 0x80) + u64(5) + u64(KERNEL) + u64(3), 0x40) + b"hello"
    seeds["batch-kernel-segment"] = dispatch_input(
        standard_layout(batch_k),
        [call(code_known("BATCH"), addr_in(0, 0), len_small(16), out, len_small(24)),
         call(code_raw(0x8337_2003), addr_in(0, 0), len_small(16), out, len_small(24))])
    # STATS into a read-only output (the model's copy-back fails).
    layout = standard_layout(b"\0") + [region("Arena", 0xA000, "r", data_filled(0, 128))]
    seeds["stats-readonly-output"] = dispatch_input(
        layout,
        [call(code_known("STATS"), addr_null(), len_zero(), addr_in(2, 0), len_small(80))])
    return seeds


# ---- capture_sized: Input { kernel_mode, regions, addr, size, fault }
def size_small(n): return variant(0, 2) + u16(n)


def sized_input(content, size, offset=0):
    regions = [region("Arena", 0x1000, "rw", data_bytes(content))]
    return boolean(False) + vec(regions) + addr_in(0, offset) + size_small(size) + option(None)


def capture_sized_seeds():
    v3 = u32(1) + u32(2) + u64(3) + u64(0)
    v3_set = u32(1) + u32(2) + u64(3) + u64(9)
    return {
        "v1": sized_input(u32(1) + u32(2), 8),
        "v2": sized_input(u32(1) + u32(2) + u64(3), 16),
        "v3-zero-tail": sized_input(v3, 24),
        "v3-nonzero-tail": sized_input(v3_set, 24),
        "page-tail": sized_input(u32(1) + u32(2) + u64(3) + bytes(200), 216),
        "too-small": sized_input(u32(1), 4),
        "too-large": sized_input(bytes(600), 513),
    }


# ---- unicode: Input { kernel_mode, regions, length, maximum_length, reserved, buffer, cap, fault }
def unicode_input(chars, length, maximum, buffer=None, cap=variant(0, 3)):
    regions = [region("Arena", 0x1000, "rw", data_bytes(chars))]
    return (boolean(False) + vec(regions) + u16(length) + u16(maximum) + u32(0xCCCC_CCCC)
            + (buffer if buffer is not None else addr_in(0, 0)) + cap + option(None))


def unicode_seeds():
    name = utf16("usercap")
    return {
        "name": unicode_input(name, len(name), len(name) + 2),
        "empty-null": unicode_input(name, 0, 0, buffer=addr_null()),
        "odd": unicode_input(name, 5, 14),
        "inconsistent": unicode_input(name, 14, 12),
        "kernel-buffer": unicode_input(name, 14, 14, buffer=addr_near("Kernel", 0x1000)),
        "misaligned": unicode_input(name, 12, 14, buffer=addr_in(0, 1)),
    }


# ---- parse_message: raw bytes
def parse_message_seeds():
    return {
        "two-items": u32(7) + u32(2) + u32(10) + u32(20),
        "empty": u32(1) + u32(0),
        "count-lies": u32(7) + u32(3) + u32(10) + u32(20),
        "trailing": u32(7) + u32(1) + u32(10) + b"xyz",
    }


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("dispatch", dispatch_seeds())
    write("capture_sized", capture_sized_seeds())
    write("unicode", unicode_seeds())
    write("parse_message", parse_message_seeds())
