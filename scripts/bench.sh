#!/usr/bin/env bash
# Benchmarks (figures and ratios against a baseline in the same run, never pass/fail).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Optional argument: one section (up, promote, packaging, models, models-cold: only the model
# cold loads, database, pipeline, server [BIOMES]: the API under load and ls of 1,000 biomes by
# default, gateway: the gateway against nginx, sleep [BIOMES]: waking a sleeping biome through
# the gateway and ls of 500 sleeping biomes by default, terraform [RUNS]: `terraform apply` of
# examples/stockpile/infra through sandpit against a local backend, 10 rounds by default, needs
# terraform on PATH); all of them by default. The server section's 50 clients are tokio tasks.
section="${1:-all}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
# Baselines of the model endpoint's benchmark, only needed here (not by the tests): KServe's
# Python model server, and `onnx` to write models of a few sizes for cold-load timing.
if [[ "$section" == all || "$section" == models || "$section" == models-cold ]] &&
  ! "$SANDPIT_PYTHON" -c "import kserve, onnx" >/dev/null 2>&1; then
  echo "bench: installing kserve and onnx into $(dirname "$(dirname "$SANDPIT_PYTHON")")"
  "$SANDPIT_PYTHON" -m pip install --quiet --disable-pip-version-check kserve onnx ||
    echo "bench: could not install kserve/onnx; the model sections say what they could not measure" >&2
fi
# The gateway's baseline and load generator: Debian's nginx and wrk, installed only when missing.
if [[ "$section" == all || "$section" == gateway ]] &&
  { ! command -v nginx >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1; }; then
  echo "bench: installing nginx and wrk"
  { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx wrk >/dev/null; } ||
    echo "bench: could not install nginx/wrk; the gateway section says what it could not measure" >&2
fi
# The gateway section measures the library in-process: it needs no sandpit binary.
if [[ "$section" != gateway ]]; then
  cargo build --release --quiet --bin sandpit -p sandpit-cli
fi
cargo run --release --quiet -p sandpit-bench -- \
  "${CARGO_TARGET_DIR:-$PWD/target}/release/sandpit" "$PWD/examples/orewise" "$@"
