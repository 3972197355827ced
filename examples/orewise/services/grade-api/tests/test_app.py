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
from fixtures import write_reference

ASSAYS = [
    {"sample_id": "A-1", "ore_type": "oxide", "method": "fire-assay", "au_gpt": 1.0, "cu_pct": 0.2},
    {"sample_id": "A-2", "ore_type": "oxide", "method": "fire-assay", "au_gpt": 2.0, "cu_pct": 0.4},
    {"sample_id": "B-1", "ore_type": "laterite", "method": "fire-assay", "au_gpt": 0.5, "cu_pct": 0.1},
]


class FakeAssayIngest(BaseHTTPRequestHandler):
    def do_GET(self):
        data = json.dumps({"count": len(ASSAYS), "assays": ASSAYS}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def start(server):
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GradeApiTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.servers = []
        self.holder = ModelHolder(os.path.join(self.tmp.name, "reference.json"), "recovery-curve-v1")
        self.redirect = contextlib.redirect_stdout(io.StringIO())
        self.redirect.__enter__()

    def tearDown(self):
        self.redirect.__exit__(None, None, None)
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.tmp.cleanup()

    def serve(self, handler):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.servers.append(server)
        return start(server)

    def grade_api(self, assay_url):
        info = {"service": "grade-api", "biome": "alice", "env": "dev", "sha": "abc123"}
        return self.serve(make_handler(self.holder, AssayClient(assay_url, timeout=2), info))

    def call(self, base, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    def test_not_ready_until_reference_loads(self):
        base = self.grade_api("")
        status, body = self.call(base, "GET", "/healthz")
        self.assertEqual((status, body["status"]), (503, "starting"))
        self.assertFalse(self.holder.try_load())
        self.assertIn("not found", self.call(base, "GET", "/healthz")[1]["reason"])
        self.assertEqual(self.call(base, "POST", "/predict", {"ore_type": "oxide"})[0], 503)
        write_reference(self.tmp.name)
        self.assertTrue(self.holder.try_load())
        self.assertEqual(self.call(base, "GET", "/healthz"), (200, {"status": "ok", "reference_version": "test00000001"}))

    def test_info_and_predict(self):
        write_reference(self.tmp.name)
        self.holder.try_load()
        base = self.grade_api("http://127.0.0.1:1")
        status, info = self.call(base, "GET", "/")
        self.assertEqual((status, info["assay_ingest_url"], info["model"]), (200, "http://127.0.0.1:1", "recovery-curve-v1"))
        status, body = self.call(base, "POST", "/predict",
                                 {"ore_type": "oxide", "au_gpt": 1.8, "cu_pct": 0.4, "throughput_tph": 450})
        self.assertEqual(status, 200)
        self.assertEqual((body["recovery_pct"], body["model"], body["sha"]), (89.45, "recovery-curve-v1", "abc123"))
        status, body = self.call(base, "POST", "/predict", {"ore_type": "laterite", "au_gpt": 1, "cu_pct": 0})
        self.assertEqual((status, body["field"]), (400, "ore_type"))
        status, body = self.call(base, "POST", "/predict", {"ore_type": "oxide", "au_gpt": 1, "cu_pct": -1})
        self.assertEqual((status, body["field"]), (400, "cu_pct"))

    def test_blend_summary(self):
        write_reference(self.tmp.name)
        self.holder.try_load()
        base = self.grade_api(self.serve(FakeAssayIngest))
        status, body = self.call(base, "GET", "/blend-summary")
        self.assertEqual((status, body["samples"]), (200, 3))
        by_type = {row["ore_type"]: row for row in body["ore_types"]}
        self.assertEqual((by_type["oxide"]["samples"], by_type["oxide"]["avg_au_gpt"]), (2, 1.5))
        self.assertGreater(by_type["oxide"]["recovery_pct"], 0)
        self.assertIsNone(by_type["laterite"]["recovery_pct"])
        self.assertEqual(self.call(base, "GET", "/blend-summary?throughput_tph=abc")[0], 400)

    def test_blend_summary_502_when_assay_ingest_is_down(self):
        write_reference(self.tmp.name)
        self.holder.try_load()
        down = f"http://127.0.0.1:{unused_port()}"
        status, body = self.call(self.grade_api(down), "GET", "/blend-summary")
        self.assertEqual(status, 502)
        self.assertIn(f"assay-ingest unreachable at {down}/assays", body["error"])
        status, body = self.call(self.grade_api(""), "GET", "/blend-summary")
        self.assertEqual(status, 502)
        self.assertIn("SANDPIT_URL_ASSAY_INGEST is not set", body["error"])


if __name__ == "__main__":
    unittest.main()
