#!/usr/bin/env bash
# Benchmarks (figures and ratios against a baseline in the same run, never pass/fail).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --quiet --bin sandpit -p sandpit-cli
cargo run --release --quiet -p sandpit-bench -- "$PWD/target/release/sandpit" "$PWD/examples/orewise"
