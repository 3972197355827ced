"""grade-api: predicts gold recovery for an ore blend.

Run by sandpit as `python3 server.py` inside the extracted artifact (dist/).
Environment: PORT, SANDPIT_DATA_DIR (reference.json from prepare-data),
SANDPIT_URL_ASSAY_INGEST, RECOVERY_MODEL (from sandpit.toml `env`);
SHARED_DATABASE_URL (optional: reference data comes from the shared read-only
database instead of reference.json); DATABASE_URL (optional: each prediction
is logged into the biome's `blend_runs` table); SANDPIT_MODELS_URL (sandpit's
model endpoint for this biome; POST /predict-ml answers 503 without it);
SANDPIT_ENV, SANDPIT_BIOME, SANDPIT_SHA (informational). Passwords in the URLs are never printed.

/healthz answers 503 until the reference data has loaded. If it is not there
yet (e.g. the job has not run, or the database is still starting) the server
retries every second.
"""

import json
import os
import sys
import threading

from app import ModelHolder, make_handler
from assay_client import AssayClient
from httpkit import port_from_env, serve
from model_client import ModelClient
from pgwire import redact_url
from reference_db import PredictionLog, load_model_from_db

COMPONENT = "grade-api"
DEFAULT_MODEL = "recovery-curve-v1"


def build_sha():
    """SANDPIT_SHA at run time, else the sha recorded by build.py, else 'dev'."""
    if os.environ.get("SANDPIT_SHA"):
        return os.environ["SANDPIT_SHA"]
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_info.json")) as f:
            return json.load(f).get("sha") or "dev"
    except (OSError, ValueError):
        return "dev"


def keep_loading(holder, stop):
    last = None
    while not holder.try_load():
        if holder.problem != last:
            print(f"{COMPONENT}: waiting for reference data: {holder.problem}", file=sys.stderr, flush=True)
            last = holder.problem
        if stop.wait(1.0):
            return
    print(f"{COMPONENT}: reference data loaded (version {holder.model.reference_version}, "
          f"model {holder.model_name}, ore types {', '.join(holder.model.ore_types)})", flush=True)


def main():
    port = port_from_env()
    data_dir = os.environ.get("SANDPIT_DATA_DIR", "")
    if not data_dir:
        sys.exit("error: SANDPIT_DATA_DIR is not set (sandpit sets it; by hand: SANDPIT_DATA_DIR=/tmp/orewise)")
    model_name = os.environ.get("RECOVERY_MODEL") or DEFAULT_MODEL
    assay_url = os.environ.get("SANDPIT_URL_ASSAY_INGEST", "")
    if not assay_url:
        print(f"{COMPONENT}: warning: SANDPIT_URL_ASSAY_INGEST is not set; /blend-summary will answer 502",
              file=sys.stderr, flush=True)
    models_url = os.environ.get("SANDPIT_MODELS_URL", "")
    if not models_url:
        print(f"{COMPONENT}: warning: SANDPIT_MODELS_URL is not set; /predict-ml will answer 503 "
              "(/predict still works)", file=sys.stderr, flush=True)
    shared_url = os.environ.get("SHARED_DATABASE_URL", "")
    database_url = os.environ.get("DATABASE_URL", "")
    try:
        if shared_url:
            holder = ModelHolder(redact_url(shared_url), model_name,
                                 loader=lambda name: load_model_from_db(shared_url, name))
        else:
            holder = ModelHolder(os.path.join(data_dir, "reference.json"), model_name)
        prediction_log = PredictionLog(database_url) if database_url else None
    except ValueError as err:  # a malformed URL; the message never contains the password
        sys.exit(f"error: DATABASE_URL / SHARED_DATABASE_URL: {err}")
    info = {
        "service": COMPONENT,
        "biome": os.environ.get("SANDPIT_BIOME", ""),
        "env": os.environ.get("SANDPIT_ENV", ""),
        "sha": build_sha(),
    }
    stop_loading = threading.Event()
    threading.Thread(target=keep_loading, args=(holder, stop_loading), daemon=True).start()
    serve(
        make_handler(holder, AssayClient(assay_url), info, prediction_log, ModelClient(models_url)),
        port,
        f"{COMPONENT} listening on http://127.0.0.1:{port} "
        f"(env={info['env'] or '-'} biome={info['biome'] or '-'} sha={info['sha']}) "
        f"model={model_name} reference={holder.reference_path} assay-ingest={assay_url or '-'} "
        f"prediction-log={prediction_log.where if prediction_log else 'off'} models={models_url or '-'}",
    )
    stop_loading.set()


if __name__ == "__main__":
    main()
