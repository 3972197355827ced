"""HTTP routes of grade-api."""

import math
import threading
from urllib.parse import parse_qs

from assay_client import AssayServiceError
from httpkit import HttpError, JsonHandler
from model_client import FEATURE_ORDER, ModelClient, ModelServiceError
from recovery import ReferenceError, UnknownOreType, load_model


class ModelHolder:
    """The recovery model once the reference data has loaded; the reason while it has not.

    `reference_path` names the source (reference.json, or the shared database
    URL without its password); `loader(model_name)` reads it, by default from
    the file.
    """

    def __init__(self, reference_path, model_name, loader=None):
        self.reference_path = reference_path
        self.model_name = model_name
        self.loader = loader or (lambda name: load_model(reference_path, name))
        self.model = None
        self.problem = "not loaded yet"
        self._lock = threading.Lock()

    def try_load(self):
        """Load once; True when loaded. Safe to call repeatedly (server.py retries)."""
        try:
            model = self.loader(self.model_name)
        except ReferenceError as err:
            with self._lock:
                self.problem = str(err)
            return False
        with self._lock:
            self.model, self.problem = model, None
        return True

    def get(self):
        with self._lock:
            return self.model, self.problem


class GradeHandler(JsonHandler):
    component = "grade-api"
    holder = None        # ModelHolder
    assay_client = None  # AssayClient
    info = None          # {"service", "biome", "env", "sha"}
    prediction_log = None  # reference_db.PredictionLog, or None: predictions are not logged
    model_client = None  # model_client.ModelClient (SANDPIT_MODELS_URL; empty: /predict-ml answers 503)

    def route(self, method, url):
        path = url.path.rstrip("/") or "/"
        if path == "/healthz":
            self._only(method, "GET")
            model, problem = self.holder.get()
            if model is None:
                return 503, {"status": "starting", "reason": problem}
            return 200, {"status": "ok", "reference_version": model.reference_version}
        if path == "/":
            self._only(method, "GET")
            model, problem = self.holder.get()
            return 200, dict(
                self.info,
                model=self.holder.model_name,
                reference=self.holder.reference_path,
                reference_version=model.reference_version if model else None,
                reference_problem=problem,
                assay_ingest_url=self.assay_client.base_url or None,
                prediction_log=self.prediction_log.where if self.prediction_log else None,
                models_url=self.model_client.base_url or None,
            )
        if path == "/predict":
            self._only(method, "POST")
            return self._predict(self._model(), self.read_json())
        if path == "/predict-ml":
            self._only(method, "POST")
            return self._predict_ml(self.read_json())
        if path == "/blend-summary":
            self._only(method, "GET")
            return self._blend_summary(self._model(), parse_qs(url.query))
        raise HttpError(404, f"no such endpoint: {url.path}")

    @staticmethod
    def _only(method, *allowed):
        if method not in allowed:
            raise HttpError(405, f"method {method} not allowed here; use {' or '.join(allowed)}")

    def _model(self):
        model, problem = self.holder.get()
        if model is None:
            raise HttpError(503, f"reference data not loaded: {problem}")
        return model

    def _response(self, model, **fields):
        return dict(fields, model=model.name, reference_version=model.reference_version, sha=self.info["sha"])

    def _predict(self, model, body):
        allowed = ("ore_type", "au_gpt", "cu_pct", "throughput_tph")
        for field in body:
            if field not in allowed:
                raise HttpError(400, f"unknown field {field!r}; expected {', '.join(allowed)}", field=field)
        ore_type = body.get("ore_type")
        if ore_type not in model.coefficients:
            raise HttpError(
                400, f"ore_type must be one of {', '.join(model.ore_types)}; got {ore_type!r}", field="ore_type"
            )
        au_gpt = _number(body, "au_gpt", 0, 1000, "g/t")
        cu_pct = _number(body, "cu_pct", 0, 100, "%")
        tph = _number(body, "throughput_tph", 1, 10000, "t/h") if "throughput_tph" in body else None
        recovery = model.predict(ore_type, au_gpt, cu_pct, tph)
        tph = tph if tph is not None else model.nominal_tph(ore_type)
        extra = {}
        if self.prediction_log is not None:
            extra["run_id"] = self.prediction_log.record(model, self.info["sha"], ore_type, au_gpt, cu_pct, tph, recovery)
        return 200, self._response(model, recovery_pct=recovery, ore_type=ore_type, throughput_tph=tph, **extra)

    def _predict_ml(self, body):
        """The ONNX recovery model on sandpit's model endpoint; needs no reference data."""
        for field in body:
            if field not in ML_FIELDS:
                raise HttpError(400, f"unknown field {field!r}; expected {', '.join(FEATURE_ORDER)}", field=field)
        inputs = {field: _number(body, field, *ML_FIELDS[field]) for field in FEATURE_ORDER}
        try:
            result = self.model_client.infer([inputs[field] for field in FEATURE_ORDER])
        except ModelServiceError as err:
            raise HttpError(err.status, err.message) from None
        return 200, dict(
            recovery_pct=round(result["value"], 2),
            model=result["model_name"],
            model_version=result["model_version"],
            output=result["output"],
            inputs=inputs,
            models_url=self.model_client.base_url,
            biome=self.info["biome"],
            sha=self.info["sha"],
        )

    def _blend_summary(self, model, query):
        tph = None
        if "throughput_tph" in query:
            try:
                tph = float(query["throughput_tph"][-1])
            except ValueError:
                tph = -1.0
            if not 1 <= tph <= 10000:
                raise HttpError(400, "throughput_tph must be a number between 1 and 10000 t/h", field="throughput_tph")
        try:
            assays = self.assay_client.list_assays()
        except AssayServiceError as err:
            raise HttpError(502, str(err)) from None
        groups = {}
        for assay in assays:
            groups.setdefault(assay.get("ore_type"), []).append(assay)
        summary = []
        for ore_type in sorted(groups, key=str):
            rows = groups[ore_type]
            au = round(sum(float(r.get("au_gpt", 0)) for r in rows) / len(rows), 3)
            cu = round(sum(float(r.get("cu_pct", 0)) for r in rows) / len(rows), 3)
            entry = {"ore_type": ore_type, "samples": len(rows), "avg_au_gpt": au, "avg_cu_pct": cu}
            try:
                entry["recovery_pct"] = model.predict(ore_type, au, cu, tph)
            except UnknownOreType:
                entry["recovery_pct"] = None
                entry["note"] = f"no {model.name} coefficients for ore type {ore_type!r}"
            summary.append(entry)
        return 200, self._response(
            model,
            source=self.assay_client.base_url,
            samples=len(assays),
            throughput_tph=tph if tph is not None else "nominal per ore type",
            ore_types=summary,
        )


# /predict-ml's fields, in the model's feature order: (low, high, unit).
ML_FIELDS = {
    "au_gpt": (0, 1000, "g/t"),
    "cu_pct": (0, 100, "%"),
    "throughput_tph": (1, 10000, "t/h"),
    "bwi_kwh_t": (1, 50, "kWh/t"),
    "sulphide_frac": (0, 1, "(fraction)"),
}
assert tuple(ML_FIELDS) == FEATURE_ORDER


def _number(body, field, low, high, unit):
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HttpError(400, f"{field} must be a number ({unit})", field=field)
    if not low <= value <= high:
        raise HttpError(400, f"{field} must be between {low} and {high} {unit}, got {value}", field=field)
    return float(value)


def make_handler(holder, assay_client, info, prediction_log=None, model_client=None):
    return type(
        "BoundGradeHandler",
        (GradeHandler,),
        {"holder": holder, "assay_client": assay_client, "info": dict(info), "prediction_log": prediction_log,
         "model_client": model_client or ModelClient("")},
    )
