#!/usr/bin/env bash
# Type-checks and lints usercap-driver's Windows code for
# x86_64-pc-windows-msvc against .ci/wdk-model (README there), with and
# without the probe-and-lock feature: a scratch copy of the tracked files,
# with [patch.crates-io] pointing the wdk crates at the model. The real
# workspace is not touched.
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
scratch="${DRIVER_MODEL_DIR:-$root/target/driver-model}"
rm -rf "$scratch/ws" "$scratch/model"
mkdir -p "$scratch/ws" "$scratch/model"
(cd "$root" && git ls-files -z | tar --null -cf - -T -) | tar -xf - -C "$scratch/ws"
cp -r "$root/.ci/wdk-model/wdk-sys" "$root/.ci/wdk-model/wdk-alloc" \
  "$root/.ci/wdk-model/wdk-panic" "$scratch/model/"
cat >> "$scratch/ws/Cargo.toml" <<PATCH

[patch.crates-io]
wdk-sys = { path = "$scratch/model/wdk-sys" }
wdk-alloc = { path = "$scratch/model/wdk-alloc" }
wdk-panic = { path = "$scratch/model/wdk-panic" }
PATCH
cd "$scratch/ws"
export CARGO_TARGET_DIR="$scratch/target"
for features in "" "--features probe-and-lock"; do
  echo "driver model check: clippy -p usercap-driver --all-targets ${features:-(default)}"
  # shellcheck disable=SC2086
  cargo clippy -q --target x86_64-pc-windows-msvc -p usercap-driver --all-targets $features -- -D warnings
done
echo "driver model check: clean, with and without probe-and-lock"
