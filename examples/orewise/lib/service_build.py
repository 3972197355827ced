"""The build step both services share; each service's build.py calls `build`.

1. Runs the service's unit tests (tests/) and the library's (lib/tests/). Any failure fails
   the build: exit 1, no dist/.
2. Copies the service's runtime files and the library's modules into dist/ and writes
   dist/build_info.json. sandpit then packages dist/ (`output = "dist"`) as
   <component>-<sha>.zip.

The build environment is scrubbed (PATH, HOME, LANG, SANDPIT_COMPONENT, SANDPIT_SHA only), so
nothing here may depend on other variables or network. build_info.json holds no timestamp: the
same commit builds the same bytes (build time is in sandpit's provenance record). Each service
lists `lib` in its `inputs` in sandpit.toml, so a change here rebuilds both.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parent
LIB_FILES = ["httpkit.py", "pgwire.py"]


def build(here, default_component, runtime_files):
    """Tests, then copies `runtime_files` (from `here`) and the library into `here`/dist."""
    dist = here / "dist"
    if dist.exists():
        shutil.rmtree(dist)  # never leave a stale dist/ behind a failed build
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(LIB))
    for suite in (here / "tests", LIB / "tests"):
        tests = subprocess.run([sys.executable, "-m", "unittest", "discover", "-s", str(suite), "-q"], cwd=here, env=env)
        if tests.returncode != 0:
            break
    if tests.returncode != 0:
        print("build failed: unit tests failed (see above); dist/ not produced", file=sys.stderr)
        return 1
    dist.mkdir()
    for name in runtime_files:
        shutil.copyfile(here / name, dist / name)
    for name in LIB_FILES:
        shutil.copyfile(LIB / name, dist / name)
    info = {
        "component": os.environ.get("SANDPIT_COMPONENT") or default_component,
        "sha": os.environ.get("SANDPIT_SHA") or "unknown",
        "files": runtime_files + LIB_FILES,
    }
    (dist / "build_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"built {info['component']} at {info['sha']} into {dist.name}/")
    return 0
