"""assay-ingest: receives lab assay results for drill samples.

Run by sandpit as `python3 server.py` inside the extracted artifact (dist/).
Environment: PORT, SANDPIT_DATA_DIR (required); DATABASE_URL (the biome's
own database: assays go there; without it, into a JSON-lines file under
SANDPIT_DATA_DIR); SHARED_DATABASE_URL (read-only reference data: ore type
and method codes are checked against it); SANDPIT_ENV, SANDPIT_BIOME,
SANDPIT_SHA (informational). Passwords in the URLs are never printed.
"""

import json
import os
import sys

from app import make_handler
from httpkit import port_from_env, serve
from pgwire import redact_url
from reference_codes import SharedReferenceCodes
from storage import JsonLinesAssayStore, PostgresAssayStore, StoreUnavailable

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
    database_url = os.environ.get("DATABASE_URL", "")
    shared_url = os.environ.get("SHARED_DATABASE_URL", "")
    try:
        codes = SharedReferenceCodes(shared_url) if shared_url else None
        if database_url:
            store = PostgresAssayStore(database_url)
            store_name = redact_url(database_url)
        else:
            # The data directory is shared by all the biome's components: keep ours in a subdirectory.
            store_name = os.path.join(data_dir, COMPONENT, "assays.jsonl")
            store = JsonLinesAssayStore(store_name)
    except ValueError as err:  # a malformed URL; the message never contains the password
        sys.exit(f"error: DATABASE_URL / SHARED_DATABASE_URL: {err}")
    except OSError as err:
        sys.exit(f"error: cannot open assay store {store_name}: {err.strerror or err}")
    try:
        count = store.count()
    except StoreUnavailable as err:  # keep running: /healthz says 503 until the database answers
        print(f"{COMPONENT}: warning: {err}", file=sys.stderr, flush=True)
        count = "?"
    info = {
        "service": COMPONENT,
        "biome": os.environ.get("SANDPIT_BIOME", ""),
        "env": os.environ.get("SANDPIT_ENV", ""),
        "sha": build_sha(),
    }
    handler = make_handler(store, info, codes)
    serve(
        handler,
        port,
        f"{COMPONENT} listening on http://127.0.0.1:{port} "
        f"(env={info['env'] or '-'} biome={info['biome'] or '-'} sha={info['sha']}) "
        f"store={store_name} assays={count} "
        f"reference-codes={redact_url(shared_url) if shared_url else 'shape check only'}",
    )


if __name__ == "__main__":
    main()
