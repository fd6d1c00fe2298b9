#!/usr/bin/env bash
# The msvc target assembles usercap-seh's routines with the unwind data the
# source says: emits the crate's object for x86_64-pc-windows-msvc (nothing
# links here: there is no link.exe) and reads it back with llvm-readobj
# (rustup's llvm-tools, the LLVM that assembled it). The gnu build's unwind
# data is checked at run time, under Wine, by
# seh/src/guarded/unwind_tests.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add llvm-tools >/dev/null 2>&1
readobj="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-readobj"
out="target/seh-msvc-obj"
rm -rf "$out" && mkdir -p "$out"
cargo rustc -q -p usercap-seh --lib --target x86_64-pc-windows-msvc -- --emit=obj -o "$out/usercap_seh.o"
obj=$(ls "$out"/*.o | head -n 1)
unwind="$("$readobj" --unwind "$obj")"
relocs="$("$readobj" -r "$obj")"
fail=0
for routine in usercap_seh_copy_from usercap_seh_copy_to usercap_seh_clear; do
  block="$(printf '%s\n' "$unwind" | awk -v r="StartAddress: $routine " 'index($0, r) {p = 1} p {print} p && /^  }/ {exit}')"
  if [ -z "$block" ]; then
    echo "seh unwind: no RUNTIME_FUNCTION for $routine" >&2; fail=1; continue
  fi
  for want in "ExceptionHandler (0x1)" "PrologSize: 3" "UnwindCodeCount: 3" \
              "PUSH_NONVOL reg=RBX" "PUSH_NONVOL reg=RDI" "PUSH_NONVOL reg=RSI" \
              "Handler: __C_specific_handler"; do
    if ! printf '%s\n' "$block" | grep -qF "$want"; then
      echo "seh unwind: $routine lacks '$want'" >&2; fail=1
    fi
  done
done
# Eight scopes per routine, each naming the filter: 24 image-relative
# relocations against it in .xdata.
filters=$(printf '%s\n' "$relocs" | grep -c 'IMAGE_REL_AMD64_ADDR32NB usercap_seh_filter' || true)
if [ "$filters" != 24 ]; then
  echo "seh unwind: $filters scope entries name the filter, expected 24" >&2; fail=1
fi
[ "$fail" = 0 ] && echo "seh unwind (msvc object): 3 routines, __C_specific_handler, 3 pushes each, 24 scopes"
exit "$fail"
