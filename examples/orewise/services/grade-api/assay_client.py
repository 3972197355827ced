"""Client for assay-ingest, found through SANDPIT_URL_ASSAY_INGEST."""

import json
import urllib.error
import urllib.request


class AssayServiceError(Exception):
    pass


class AssayClient:
    def __init__(self, base_url, timeout=3.0):
        self.base_url = (base_url or "").rstrip("/")
        self.timeout = timeout

    def list_assays(self):
        """All assays as a list of dicts, or AssayServiceError saying what went wrong."""
        if not self.base_url:
            raise AssayServiceError("SANDPIT_URL_ASSAY_INGEST is not set, so assay-ingest cannot be reached")
        url = f"{self.base_url}/assays"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            raise AssayServiceError(f"assay-ingest at {url} answered HTTP {err.code}") from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise AssayServiceError(f"assay-ingest unreachable at {url}: {reason}") from None
        except ValueError:
            raise AssayServiceError(f"assay-ingest at {url} did not answer JSON") from None
        assays = body.get("assays") if isinstance(body, dict) else None
        if not isinstance(assays, list):
            raise AssayServiceError(f"assay-ingest at {url} answered without an 'assays' list")
        return assays
