import contextlib
import io
import json
import os
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

from app import make_handler
from storage import JsonLinesAssayStore

GOOD = {"sample_id": "DH-001-12.5", "ore_type": "oxide", "method": "fire-assay", "au_gpt": 1.82, "cu_pct": 0.41}


class AssayApiTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        store = JsonLinesAssayStore(os.path.join(self.tmp.name, "assays.jsonl"))
        handler = make_handler(store, {"service": "assay-ingest", "biome": "alice", "env": "dev", "sha": "abc123"})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.log = io.StringIO()  # keep request log lines out of the test output
        self.redirect = contextlib.redirect_stdout(self.log)
        self.redirect.__enter__()

    def tearDown(self):
        self.redirect.__exit__(None, None, None)
        self.server.shutdown()
        self.server.server_close()
        self.tmp.cleanup()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    def test_health_and_info(self):
        self.assertEqual(self.call("GET", "/healthz"), (200, {"status": "ok"}))
        status, info = self.call("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual((info["service"], info["biome"], info["env"], info["sha"]), ("assay-ingest", "alice", "dev", "abc123"))

    def test_post_then_get_and_list(self):
        status, stored = self.call("POST", "/assays", GOOD)
        self.assertEqual(status, 201)
        self.assertEqual(stored["sample_id"], "DH-001-12.5")
        self.assertIn("received_at", stored)
        self.assertEqual(self.call("GET", "/assays/DH-001-12.5"), (200, stored))
        self.call("POST", "/assays", dict(GOOD, sample_id="DH-002-3.0", ore_type="sulphide"))
        status, listing = self.call("GET", "/assays")
        self.assertEqual((status, listing["count"]), (200, 2))
        status, listing = self.call("GET", "/assays?ore_type=sulphide")
        self.assertEqual([a["sample_id"] for a in listing["assays"]], ["DH-002-3.0"])
        self.assertIn("POST /assays 201", self.log.getvalue())

    def test_errors(self):
        status, body = self.call("POST", "/assays", dict(GOOD, au_gpt="lots"))
        self.assertEqual((status, body["field"]), (400, "au_gpt"))
        status, body = self.call("POST", "/assays", ["not", "an", "object"])
        self.assertEqual(status, 400)
        self.call("POST", "/assays", GOOD)
        status, body = self.call("POST", "/assays", GOOD)
        self.assertEqual((status, body["field"]), (409, "sample_id"))
        status, body = self.call("GET", "/assays/NOPE-1")
        self.assertEqual(status, 404)
        self.assertIn("NOPE-1", body["error"])
        self.assertEqual(self.call("GET", "/assays?ore_type=Bad!")[0], 400)
        self.assertEqual(self.call("DELETE", "/assays")[0], 405)
        self.assertEqual(self.call("GET", "/nope")[0], 404)


if __name__ == "__main__":
    unittest.main()
