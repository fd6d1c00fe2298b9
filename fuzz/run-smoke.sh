#!/usr/bin/env bash
# Fuzz smoke run: every cargo-fuzz target for N seconds (default 20), one
# after the other, starting from the committed seeds in fuzz/corpus/<target>/.
# Fails on the first crash, leak, timeout or OOM, and leaves the input that
# caused it in fuzz/artifacts/<target>/.
#
#   fuzz/run-smoke.sh [SECONDS] [TARGET...]
#
# New corpus entries go to a temporary directory, so the committed seeds stay
# as they are. Needs the nightly toolchain (cargo-fuzz builds with
# -Zsanitizer=address); installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(dispatch capture_sized parse_message unicode)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz --version

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for target in "${targets[@]}"; do
  printf '\n==> fuzz %s for %ss\n' "$target" "$seconds"
  mkdir -p "$work/$target" "corpus/$target"
  log="$work/$target.log"
  # -timeout: one input taking over 10 s is a hang, not a slow input.
  # -rss_limit_mb: the targets cap every allocation well below this.
  if ! cargo +nightly fuzz run "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
done
echo
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each, no crash"
