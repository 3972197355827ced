"""Client for sandpit's model endpoint, found through SANDPIT_MODELS_URL.

sandpit gives every service of a biome
    SANDPIT_MODELS_URL=http://127.0.0.1:<port>/biomes/<biome>
under which the Open Inference Protocol (KServe v2) REST API answers with
plain model names: the biome's own version of a model if it has one, else the
environment's base version. So this code is the same in every biome.

One call, `ModelClient.infer(features)`:

    POST {SANDPIT_MODELS_URL}/v2/models/recovery/infer
    {"inputs": [{"name": "features", "shape": [1, 5], "datatype": "FP32",
                 "data": [au_gpt, cu_pct, throughput_tph, bwi_kwh_t, sulphide_frac]}]}
    → {"model_name": "recovery", "model_version": "...",
       "outputs": [{"name": "variable", "shape": [1, 1], "datatype": "FP32", "data": [85.76]}]}

`variable` is the name skl2onnx gives a regressor's output (see
models/recovery/model_card.json); the client reads `outputs[0].data[0]`.
Problems raise ModelServiceError with the HTTP status grade-api should answer:
503 when SANDPIT_MODELS_URL is not set, 502 for anything the endpoint does wrong.
"""

import json
import math
import urllib.error
import urllib.request

MODEL_NAME = "recovery"
INPUT_NAME = "features"
FEATURE_ORDER = ("au_gpt", "cu_pct", "throughput_tph", "bwi_kwh_t", "sulphide_frac")


class ModelServiceError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class ModelClient:
    def __init__(self, base_url, model=MODEL_NAME, timeout=5.0):
        self.base_url = (base_url or "").rstrip("/")
        self.model = model
        self.timeout = timeout

    @property
    def infer_url(self):
        return f"{self.base_url}/v2/models/{self.model}/infer"

    def request_body(self, features):
        return {"inputs": [{"name": INPUT_NAME, "shape": [1, len(features)], "datatype": "FP32",
                            "data": [float(v) for v in features]}]}

    def infer(self, features):
        """{"value": float, "output": name, "model_name", "model_version"} for one row of features."""
        if not self.base_url:
            raise ModelServiceError(
                503, "model endpoint not configured: SANDPIT_MODELS_URL is not set "
                     "(sandpit sets it for every service; by hand, point it at a KServe v2 server)")
        url = self.infer_url
        data = json.dumps(self.request_body(features)).encode()
        req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            raise ModelServiceError(502, f"model endpoint at {url} answered HTTP {err.code}{_detail(err)}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ModelServiceError(502, f"model endpoint unreachable at {url}: {reason}") from None
        except ValueError:
            raise ModelServiceError(502, f"model endpoint at {url} did not answer JSON") from None
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
            raise ModelServiceError(502, f"model endpoint at {url} answered without an 'outputs' list")
        first = outputs[0]
        values = first.get("data")
        if not isinstance(values, list) or not values:
            raise ModelServiceError(502, f"model endpoint at {url}: output {first.get('name')!r} has no data")
        value = values[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ModelServiceError(502, f"model endpoint at {url}: output {first.get('name')!r} is not a number: {value!r}")
        return {
            "value": float(value),
            "output": first.get("name"),
            "model_name": body.get("model_name", self.model),
            "model_version": body.get("model_version"),
        }


def _detail(err):
    """': <the endpoint's error message>' when it sent one (KServe v2 errors are {"error": "..."})."""
    try:
        body = json.load(err)
    except (ValueError, OSError):
        return ""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f": {body['error'][:300]}"
    return ""
