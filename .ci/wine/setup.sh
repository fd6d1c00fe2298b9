#!/usr/bin/env bash
# Sets up the Windows-ABI lane: Wine and mingw (Debian packages), the
# x86_64-pc-windows-gnu target, a fresh Wine prefix, and the ProcessPrng
# stand-in. Sourced by .ci/run; also usable by hand:
#   source .ci/wine/setup.sh && cargo test --target x86_64-pc-windows-gnu -p usercap-seh
# It exports WINEPREFIX, WINEDEBUG and the cargo runner. Wine's `err`
# channel stays on: with WINEDEBUG=-all a missing DLL is silent and cargo
# reports only "exit status: 53".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v wine >/dev/null || ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    wine wine64 gcc-mingw-w64-x86-64 >/dev/null
fi
rustup target add x86_64-pc-windows-gnu >/dev/null

export WINEPREFIX="$root/target/wine-prefix"
export WINEDEBUG="fixme-all,err-winediag,err-systray"
export WINEDLLOVERRIDES="mscoree,mshtml="
# Debian's `wine` wrapper nags about wine32 on every start; the 64-bit
# loader behind it runs the same binaries without that.
if [ -x /usr/lib/wine/wine64 ]; then
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64
else
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
fi
rm -rf "$WINEPREFIX"
mkdir -p "$root/target"
wineboot -i >/dev/null 2>&1
# No winedbg on an unhandled exception: the process ends with the
# exception code, which the foreign-fault tests check, and nothing waits.
wine reg delete 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' \
  /v Debugger /f >/dev/null 2>&1 || true
wineserver -w

dll="$root/target/wine-bcryptprimitives.dll"
x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" \
  "$here/bcryptprimitives.c" "$here/bcryptprimitives.def" -lbcrypt
cp "$dll" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
wine --version
