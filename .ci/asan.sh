#!/usr/bin/env bash
# AddressSanitizer + LeakSanitizer over the tests of usercap, usercap-protocol,
# usercap-device (all features: SimSpace, the I/O manager model) and
# usercap-host (real memory: the guarded copy routines, their SIGSEGV handler,
# the subprocess scenarios). See docs/sanitizers.md for why each flag is here.
#
#   .ci/asan.sh            # std uninstrumented (the default, faster)
#   ASAN_BUILD_STD=1 .ci/asan.sh   # std rebuilt with ASan too (-Zbuild-std)
#
# Exits non-zero on any test failure or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
target=x86_64-unknown-linux-gnu

rustup toolchain install nightly --profile minimal --component rust-src >/dev/null
cargo +nightly --version

# A separate target directory: sanitizer builds never share artefacts with
# the normal ones. --target keeps RUSTFLAGS off build scripts and proc macros,
# which must not be instrumented.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/asan}"
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"

# handle_segv=0, handle_sigbus=0: ASan must not install its own SIGSEGV/SIGBUS
# handler. usercap-host's guarded copy hands faults that are not its own back
# to the previous disposition; with ASan's handler there, a wild fault becomes
# an ASan report and exit(1) instead of death by SIGSEGV, which the
# subprocess tests check. allow_user_segv_handler=1 (the default) lets the
# guarded copy install its handler at all.
asan_options="handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:detect_leaks=1"
export ASAN_OPTIONS="${asan_options}${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

# One intentional leak: the allocation-failure test proves its bookkeeping
# sees a leak by leaking 64 bytes with mem::forget.
supp="$(mktemp)"
trap 'rm -f "$supp"' EXIT
cat >"$supp" <<'EOF'
leak:alloc_failure::the_injection_can_catch_a_leak
EOF
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"

# With -Zbuild-std, std is rebuilt instrumented. The workspace profiles say
# panic = "abort" while libtest harnesses are built with unwind, and
# -Zbuild-std cannot build core for both in one graph ("duplicate lang item");
# the -Zbuild-std=std,panic_abort -Zpanic-abort-tests route runs each test in
# a child process, which breaks host's subprocess tests (the intermediate
# child turns a SIGSEGV death into exit 101). So this mode builds the test
# profile with unwind, as plain `cargo test` does anyway.
build_std=()
if [ "${ASAN_BUILD_STD:-0}" = 1 ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR%/}-std"
  build_std=(-Zbuild-std --config 'profile.dev.panic="unwind"')
fi

start=$(date +%s)
cargo +nightly test "${build_std[@]}" --target "$target" \
  -p usercap -p usercap-protocol -p usercap-device -p usercap-host --all-features
echo "asan: all tests passed in $(( $(date +%s) - start ))s"
