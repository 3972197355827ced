"""grade-api's use of PostgreSQL: reference data in, prediction log out.

* load_model_from_db(): the recovery model from the environment's shared,
  read-only reference database (SHARED_DATABASE_URL, db/shared.sql), instead
  of $SANDPIT_DATA_DIR/reference.json.
* PredictionLog: one row in the biome's own `blend_runs` table
  (DATABASE_URL, db/migrations/002_blend_runs.sql) per /predict answer.
"""

import hashlib
import json
import sys
import threading

from pgwire import PgError, connect, redact_url
from recovery import COEFFICIENTS, RecoveryModel, ReferenceError


def load_model_from_db(url, model_name, connect=connect):
    """The named RecoveryModel from the shared database, or ReferenceError saying why."""
    where = redact_url(url)
    try:
        conn = connect(url)
        try:
            known = [r["code"] for r in conn.query("SELECT code FROM ore_types ORDER BY code")]
            rows = conn.query(
                f"SELECT ore_type, {', '.join(COEFFICIENTS)} FROM recovery_coefficients"
                " WHERE model = $1 ORDER BY ore_type",
                [model_name],
            )
            models = [r["model"] for r in conn.query("SELECT DISTINCT model FROM recovery_coefficients ORDER BY 1")]
        finally:
            conn.close()
    except PgError as err:
        raise ReferenceError(f"{where}: {err}") from None
    if not rows:
        raise ReferenceError(f"{where} has no recovery model {model_name!r} (available: {', '.join(models) or 'none'})")
    coefficients = {r.pop("ore_type"): r for r in rows}
    unknown = sorted(set(coefficients) - set(known))
    if unknown:
        raise ReferenceError(f"{where}: coefficients for ore types not in ore_types: {', '.join(unknown)}")
    # Like prepare-data's reference_version: derived from the content, so equal data, equal version.
    canonical = json.dumps({"model": model_name, "coefficients": coefficients}, sort_keys=True).encode()
    return RecoveryModel(model_name, coefficients, "db-" + hashlib.sha256(canonical).hexdigest()[:12])


class PredictionLog:
    """Appends predictions to blend_runs. Never fails a prediction: problems are logged to stderr."""

    def __init__(self, url, connect=connect):
        self.url = url
        self.where = redact_url(url)
        self._connect = connect
        self._conn = None
        self._lock = threading.Lock()

    def record(self, model, sha, ore_type, au_gpt, cu_pct, throughput_tph, recovery_pct):
        """The new row's id, or None if it could not be written."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect(self.url)
                rows = self._conn.query(
                    "INSERT INTO blend_runs (model, reference_version, sha, ore_type, au_gpt, cu_pct,"
                    " throughput_tph, recovery_pct) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    [model.name, model.reference_version, sha, ore_type, au_gpt, cu_pct, throughput_tph, recovery_pct],
                )
                return rows[0]["id"]
            except PgError as err:
                print(f"grade-api: warning: prediction not logged to {self.where}: {err}", file=sys.stderr, flush=True)
                if self._conn is not None and (self._conn.closed or err.connection_problem):
                    self._conn.close()
                    self._conn = None
                return None
