#!/usr/bin/env bash
# Benchmarks (figures and ratios against a baseline in the same run, never pass/fail).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Baselines of the model endpoint's benchmark, only needed here (not by the tests): KServe's
# Python model server, and `onnx` to write models of a few sizes for cold-load timing.
if ! "$SANDPIT_PYTHON" -c "import kserve, onnx" >/dev/null 2>&1; then
  echo "bench: installing kserve and onnx into $(dirname "$(dirname "$SANDPIT_PYTHON")")"
  "$SANDPIT_PYTHON" -m pip install --quiet --disable-pip-version-check kserve onnx ||
    echo "bench: could not install kserve/onnx; the model sections say what they could not measure" >&2
fi
cargo build --release --quiet --bin sandpit -p sandpit-cli
# Optional argument: one section (up, promote, packaging, models, models-cold: only the model
# cold loads, database, pipeline, server [BIOMES]: the API under load and ls of 1,000 biomes by
# default, sleep [BIOMES]: waking a sleeping biome through the gateway and ls of 500 sleeping
# biomes by default); all of them by default. The server section's 50 clients are tokio tasks.
cargo run --release --quiet -p sandpit-bench -- \
  "${CARGO_TARGET_DIR:-$PWD/target}/release/sandpit" "$PWD/examples/orewise" "$@"
