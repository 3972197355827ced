"""Build step for assay-ingest; sandpit runs `python3 build.py` in this directory.

The steps are shared with the other service: see lib/service_build.py.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, str(HERE.parent.parent / "lib"))

import service_build  # noqa: E402  (found through the path above)

RUNTIME_FILES = ["server.py", "app.py", "storage.py", "validation.py", "reference_codes.py"]

if __name__ == "__main__":
    sys.exit(service_build.build(HERE, "assay-ingest", RUNTIME_FILES))
