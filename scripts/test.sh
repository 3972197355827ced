#!/usr/bin/env bash
# Every test: formatting, lints, unit tests and the end-to-end suite (real git, real processes,
# real HTTP). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
mkdir -p target
cargo test --workspace 2>&1 | tee target/test-output.txt
# One summary line for the whole run, counted from every test binary.
python3 - <<'PY'
import re
passed = failed = ignored = 0
for line in open("target/test-output.txt", encoding="utf-8", errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m:
        passed += int(m.group(1)); failed += int(m.group(2)); ignored += int(m.group(3))
print(f"total: {passed} passed, {failed} failed, {ignored} skipped")
PY
