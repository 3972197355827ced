"""Build step for this service; sandpit runs `python3 build.py` in this directory.

1. Runs the unit tests (tests/). Any failure fails the build: exit 1, no dist/.
2. Copies the runtime files into dist/ and writes dist/build_info.json.
sandpit then packages dist/ (`output = "dist"`) as <component>-<sha>.zip.

The build environment is scrubbed (PATH, HOME, LANG, SANDPIT_COMPONENT,
SANDPIT_SHA only), so nothing here may depend on other variables or network.
build_info.json holds no timestamp: the same commit builds the same bytes
(build time is in sandpit's provenance record).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"
# The project's shared library; sandpit.toml lists it in this service's `inputs`, so a change
# there rebuilds the service too.
LIB = HERE.parent.parent / "lib"
LIB_FILES = ["httpkit.py", "pgwire.py"]
DEFAULT_COMPONENT = "assay-ingest"
RUNTIME_FILES = ["server.py", "app.py", "storage.py", "validation.py", "reference_codes.py"]


def main():
    if DIST.exists():
        shutil.rmtree(DIST)  # never leave a stale dist/ behind a failed build
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(LIB))
    for suite in (HERE / "tests", LIB / "tests"):
        tests = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", str(suite), "-q"], cwd=HERE, env=env)
        if tests.returncode != 0:
            break
    if tests.returncode != 0:
        print("build failed: unit tests failed (see above); dist/ not produced", file=sys.stderr)
        return 1
    DIST.mkdir()
    for name in RUNTIME_FILES:
        shutil.copyfile(HERE / name, DIST / name)
    for name in LIB_FILES:
        shutil.copyfile(LIB / name, DIST / name)
    info = {
        "component": os.environ.get("SANDPIT_COMPONENT") or DEFAULT_COMPONENT,
        "sha": os.environ.get("SANDPIT_SHA") or "unknown",
        "files": RUNTIME_FILES + LIB_FILES,
    }
    (DIST / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"built {info['component']} at {info['sha']} into {DIST.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
