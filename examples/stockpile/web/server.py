"""Answers which bucket its infrastructure gave it (and whether it got a key)."""
import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            body = json.dumps({
                "bucket": os.environ.get("SANDPIT_TF_INFRA_BUCKET"),
                "deployed_sha": os.environ.get("SANDPIT_TF_INFRA_DEPLOYED_SHA"),
                "has_access_key": bool(os.environ.get("SANDPIT_TF_INFRA_ACCESS_KEY")),
            }).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
