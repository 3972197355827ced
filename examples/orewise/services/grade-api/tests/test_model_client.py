"""model_client.py and POST /predict-ml against a stub KServe v2 endpoint (stdlib http.server in a thread)."""

import contextlib
import io
import json
import os
import socket
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app import ModelHolder, make_handler
from assay_client import AssayClient
from model_client import ModelClient, ModelServiceError

# What sandpit's endpoint answers for [1.8, 0.4, 450, 14, 0.2] with the committed base model.
CANNED = {
    "model_name": "recovery",
    "model_version": "f228cb27f619",
    "outputs": [{"name": "variable", "shape": [1, 1], "datatype": "FP32", "data": [85.76503]}],
}
ROW = {"au_gpt": 1.8, "cu_pct": 0.4, "throughput_tph": 450, "bwi_kwh_t": 14.0, "sulphide_frac": 0.2}


class StubEndpoint(BaseHTTPRequestHandler):
    """Checks each request is a well-formed KServe v2 infer call for `recovery`, then answers `reply`."""

    requests = None  # list of (path, content_type, body or problem), set per test
    reply = (200, CANNED)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = f"not JSON: {raw!r}"
        self.requests.append((self.path, self.headers.get("Content-Type"), body))
        status, payload = self.reply
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StubTestCase(unittest.TestCase):
    def setUp(self):
        self.servers = []
        self.requests = []

    def tearDown(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def serve(self, handler):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    def stub(self, reply=(200, CANNED)):
        """A stub endpoint's SANDPIT_MODELS_URL-style base (with a /biomes/<biome> prefix, as sandpit gives)."""
        handler = type("Stub", (StubEndpoint,), {"requests": self.requests, "reply": reply})
        return self.serve(handler) + "/biomes/alice"

    def assert_one_infer_request(self, data):
        self.assertEqual(len(self.requests), 1)
        path, content_type, body = self.requests[0]
        self.assertEqual(path, "/biomes/alice/v2/models/recovery/infer")
        self.assertEqual(content_type, "application/json")
        self.assertEqual(body, {"inputs": [{"name": "features", "shape": [1, 5], "datatype": "FP32", "data": data}]})
        self.assertTrue(all(type(v) is float for v in body["inputs"][0]["data"]))


class ModelClientTest(StubTestCase):
    def test_infer_sends_one_fp32_row_and_reads_the_first_output(self):
        client = ModelClient(self.stub() + "/", timeout=2)
        result = client.infer([1.8, 0.4, 450, 14, 0.2])
        self.assertEqual(result, {"value": 85.76503, "output": "variable",
                                  "model_name": "recovery", "model_version": "f228cb27f619"})
        self.assert_one_infer_request([1.8, 0.4, 450.0, 14.0, 0.2])

    def test_not_configured_is_503(self):
        with self.assertRaises(ModelServiceError) as ctx:
            ModelClient("").infer([1, 2, 3, 4, 0.5])
        self.assertEqual(ctx.exception.status, 503)
        self.assertIn("SANDPIT_MODELS_URL is not set", ctx.exception.message)

    def test_endpoint_errors_are_502_with_the_reason(self):
        cases = [
            ((404, {"error": "unknown model: recovery"}), "answered HTTP 404: unknown model: recovery"),
            ((500, b"boom"), "answered HTTP 500"),
            ((200, b"<html>"), "did not answer JSON"),
            ((200, {"outputs": []}), "without an 'outputs' list"),
            ((200, {"outputs": [{"name": "variable", "data": []}]}), "output 'variable' has no data"),
            ((200, {"outputs": [{"name": "variable", "data": ["x"]}]}), "is not a number"),
        ]
        for reply, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(ModelServiceError) as ctx:
                    ModelClient(self.stub(reply), timeout=2).infer([1, 2, 3, 4, 0.5])
                self.assertEqual(ctx.exception.status, 502)
                self.assertIn(message, ctx.exception.message)

    def test_unreachable_is_502(self):
        base = f"http://127.0.0.1:{unused_port()}/biomes/alice"
        with self.assertRaises(ModelServiceError) as ctx:
            ModelClient(base, timeout=2).infer([1, 2, 3, 4, 0.5])
        self.assertEqual(ctx.exception.status, 502)
        self.assertIn(f"model endpoint unreachable at {base}/v2/models/recovery/infer", ctx.exception.message)


class PredictMlTest(StubTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory()
        # No reference.json: /predict-ml does not need reference data.
        self.holder = ModelHolder(os.path.join(self.tmp.name, "reference.json"), "recovery-curve-v1")
        self.redirect = contextlib.redirect_stdout(io.StringIO())
        self.redirect.__enter__()

    def tearDown(self):
        self.redirect.__exit__(None, None, None)
        super().tearDown()
        self.tmp.cleanup()

    def grade_api(self, models_url):
        info = {"service": "grade-api", "biome": "alice", "env": "dev", "sha": "abc123"}
        return self.serve(make_handler(self.holder, AssayClient(""), info, None, ModelClient(models_url, timeout=2)))

    def call(self, base, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    def test_predict_ml(self):
        models_url = self.stub()
        base = self.grade_api(models_url)
        status, body = self.call(base, "POST", "/predict-ml", ROW)
        self.assertEqual(status, 200, body)
        self.assertEqual(
            body,
            {"recovery_pct": 85.77, "model": "recovery", "model_version": "f228cb27f619", "output": "variable",
             "inputs": {k: float(v) for k, v in ROW.items()}, "models_url": models_url,
             "biome": "alice", "sha": "abc123"},
        )
        self.assert_one_infer_request([1.8, 0.4, 450.0, 14.0, 0.2])
        self.assertEqual(self.call(base, "GET", "/")[1]["models_url"], models_url)

    def test_bad_input_is_400_and_never_reaches_the_endpoint(self):
        base = self.grade_api(self.stub())
        cases = [
            (dict(ROW, ore_type="oxide"), "ore_type"),
            ({k: v for k, v in ROW.items() if k != "bwi_kwh_t"}, "bwi_kwh_t"),
            (dict(ROW, sulphide_frac=1.5), "sulphide_frac"),
            (dict(ROW, au_gpt="1.8"), "au_gpt"),
        ]
        for body, field in cases:
            with self.subTest(field=field):
                status, answer = self.call(base, "POST", "/predict-ml", body)
                self.assertEqual((status, answer["field"]), (400, field))
        self.assertEqual(self.requests, [])
        self.assertEqual(self.call(base, "GET", "/predict-ml")[0], 405)

    def test_503_when_not_configured_and_502_when_the_endpoint_fails(self):
        status, body = self.call(self.grade_api(""), "POST", "/predict-ml", ROW)
        self.assertEqual(status, 503)
        self.assertIn("model endpoint not configured", body["error"])
        status, body = self.call(self.grade_api(self.stub((404, {"error": "model 'recovery' not found"}))),
                                 "POST", "/predict-ml", ROW)
        self.assertEqual(status, 502)
        self.assertIn("answered HTTP 404: model 'recovery' not found", body["error"])


if __name__ == "__main__":
    unittest.main()
