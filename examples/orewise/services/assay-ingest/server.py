"""assay-ingest: receives lab assay results for drill samples.

Run by sandpit as `python3 server.py` inside the extracted artifact (dist/).
Environment: PORT, SANDPIT_DATA_DIR (required); SANDPIT_ENV, SANDPIT_BIOME,
SANDPIT_SHA (informational).
"""

import json
import os
import sys

from app import make_handler
from httpkit import port_from_env, serve
from storage import JsonLinesAssayStore

COMPONENT = "assay-ingest"


def build_sha():
    """SANDPIT_SHA at run time, else the sha recorded by build.py, else 'dev'."""
    if os.environ.get("SANDPIT_SHA"):
        return os.environ["SANDPIT_SHA"]
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_info.json")) as f:
            return json.load(f).get("sha") or "dev"
    except (OSError, ValueError):
        return "dev"


def main():
    port = port_from_env()
    data_dir = os.environ.get("SANDPIT_DATA_DIR", "")
    if not data_dir:
        sys.exit("error: SANDPIT_DATA_DIR is not set (sandpit sets it; by hand: SANDPIT_DATA_DIR=/tmp/orewise)")
    # The data directory is shared by all the biome's components: keep ours in a subdirectory.
    store_path = os.path.join(data_dir, COMPONENT, "assays.jsonl")
    try:
        store = JsonLinesAssayStore(store_path)
    except OSError as err:
        sys.exit(f"error: cannot open assay store {store_path}: {err.strerror or err}")
    info = {
        "service": COMPONENT,
        "biome": os.environ.get("SANDPIT_BIOME", ""),
        "env": os.environ.get("SANDPIT_ENV", ""),
        "sha": build_sha(),
    }
    handler = make_handler(store, info)
    serve(
        handler,
        port,
        f"{COMPONENT} listening on http://127.0.0.1:{port} "
        f"(env={info['env'] or '-'} biome={info['biome'] or '-'} sha={info['sha']}) "
        f"store={store_path} assays={store.count()}",
    )


if __name__ == "__main__":
    main()
