#!/usr/bin/env bash
# The main job: build sandpit, bring up the orewise example's biome from this repository's
# commit, show that every service answers HTTP, and print the URLs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo build --quiet --bin sandpit
sandpit="$PWD/target/debug/sandpit"

# Builds come from commits; --allow-dirty lets a locally edited checkout demo its edits too.
"$sandpit" -C examples/orewise up demo --allow-dirty
echo
"$sandpit" -C examples/orewise status demo
echo
status_json=$("$sandpit" -C examples/orewise status demo --json)
python3 - "$status_json" <<'PY'
import json, sys, urllib.request
status = json.loads(sys.argv[1])
for component in status["components"]:
    if component["url"]:
        with urllib.request.urlopen(component["url"] + "/", timeout=5) as response:
            print(f"GET {component['url']}/ -> {response.status}: {response.read().decode()[:160]}")
grade = next(c for c in status["components"] if c["name"] == "grade-api")
body = json.dumps({"au_gpt": 1.8, "cu_pct": 0.4, "throughput_tph": 450, "bwi_kwh_t": 14, "sulphide_frac": 0.2}).encode()
request = urllib.request.Request(grade["url"] + "/predict-ml", data=body, headers={"content-type": "application/json"})
with urllib.request.urlopen(request, timeout=30) as response:
    print(f"POST {grade['url']}/predict-ml (the recovery model on the shared model endpoint) -> {response.status}: {response.read().decode()[:200]}")
PY
echo
echo "The biome keeps running under the sandpit daemon. Try:"
echo "  $sandpit -C examples/orewise logs demo grade-api -f"
echo "  $sandpit -C examples/orewise down demo"
