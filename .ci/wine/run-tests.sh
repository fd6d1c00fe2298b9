#!/usr/bin/env bash
# Runs the given `cargo test` arguments for x86_64-pc-windows-gnu under
# Wine (set up by .ci/wine/setup.sh), prints each binary's count, and fails
# loudly if cargo failed or any test failed, unless every binary that cargo
# ran reported a result, or if fewer than MIN_TESTS tests passed in all. A
# lane that runs no test is a failure.
set -euo pipefail
min="${MIN_TESTS:?set MIN_TESTS}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# A test binary that hangs under Wine must not hold CI to its 90 minutes.
# The status is cargo's (through timeout), taken from PIPESTATUS before
# anything else runs: a `|| true` on the pipeline would report its own.
set +e
timeout "${LANE_TIMEOUT:-1200}" cargo test --no-fail-fast --target x86_64-pc-windows-gnu "$@" 2>&1 | tee "$log" \
  | grep -E '^\s+(Running|Doc-tests)|^test result:|^error'
status="${PIPESTATUS[0]}"
set -e
if [ "$status" != 0 ]; then
  echo "wine lane: cargo test failed (status $status); the failures:" >&2
  grep -E -A30 '^failures:|panicked at|^error' "$log" | head -n 200 >&2 || true
  exit 1
fi
binaries=$(grep -cE '^\s+(Running|Doc-tests) ' "$log" || true)
results=$(grep -cE '^test result: ' "$log" || true)
passed=$(grep -oE '^test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
echo "wine lane: $binaries test binaries, $results results, $passed tests passed"
# Edition-2024 doctests report twice (merged and standalone), so a binary
# may have more than one result, never fewer.
if [ "$binaries" = 0 ] || [ "$results" -lt "$binaries" ]; then
  echo "wine lane: a test binary did not report a result" >&2
  exit 1
fi
# Belt and braces: a failed test is a failed lane even if cargo's status
# were lost on the way.
failed=$(grep -E '^test result: ' "$log" | grep -oE '[0-9]+ failed' | awk '{s += $1} END {print s + 0}')
if [ "$failed" != 0 ] || grep -qE '^test result: FAILED' "$log"; then
  echo "wine lane: $failed tests failed" >&2
  grep -E -A30 '^failures:|panicked at' "$log" | head -n 200 >&2 || true
  exit 1
fi
if [ "$passed" -lt "$min" ]; then
  echo "wine lane: only $passed tests passed, expected at least $min" >&2
  exit 1
fi
