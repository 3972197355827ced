"""HTTP routes of assay-ingest."""

from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote

from httpkit import HttpError, JsonHandler
from reference_codes import ReferenceUnavailable
from storage import DuplicateSample, StoreUnavailable
from validation import ValidationError, check_known_codes, is_code, validate_assay


class AssayHandler(JsonHandler):
    component = "assay-ingest"
    store = None  # set by make_handler
    info = None   # {"service", "biome", "env", "sha"}
    codes = None  # SharedReferenceCodes, or None: codes are checked for shape only

    def route(self, method, url):
        try:
            return self._route(method, url)
        except StoreUnavailable as err:
            raise HttpError(503, f"assay store unavailable: {err}") from None

    def _route(self, method, url):
        path = url.path.rstrip("/") or "/"
        if path == "/healthz":
            self._only(method, "GET")
            try:
                self.store.ping()
            except StoreUnavailable as err:
                return 503, {"status": "unavailable", "reason": str(err)}
            return 200, {"status": "ok"}
        if path == "/":
            self._only(method, "GET")
            return 200, dict(
                self.info,
                **self.store.describe(),
                reference_codes=self.codes.database if self.codes else None,
                assays=self.store.count(),
            )
        if path == "/assays":
            self._only(method, "GET", "POST")
            if method == "POST":
                return self._create()
            return self._list(parse_qs(url.query))
        if path.startswith("/assays/"):
            self._only(method, "GET")
            sample_id = unquote(path[len("/assays/"):])
            record = self.store.get(sample_id)
            if record is None:
                raise HttpError(404, f"no assay for sample_id {sample_id!r}", field="sample_id")
            return 200, record
        raise HttpError(404, f"no such endpoint: {url.path}")

    @staticmethod
    def _only(method, *allowed):
        if method not in allowed:
            raise HttpError(405, f"method {method} not allowed here; use {' or '.join(allowed)}")

    def _create(self):
        try:
            record = validate_assay(self.read_json())
            if self.codes is not None:
                check_known_codes(record, self.codes.known())
        except ReferenceUnavailable as err:
            raise HttpError(503, f"cannot check codes against the reference data: {err}") from None
        except ValidationError as err:
            raise HttpError(400, err.message, field=err.field) from None
        record["received_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self.store.add(record)
        except DuplicateSample:
            raise HttpError(
                409, f"sample_id {record['sample_id']!r} already has an assay", field="sample_id"
            ) from None
        return 201, record

    def _list(self, query):
        ore_type = query.get("ore_type", [None])[-1]
        if ore_type is not None and not is_code(ore_type):
            raise HttpError(400, "ore_type must be a lowercase code such as 'oxide'", field="ore_type")
        records = self.store.list(ore_type=ore_type)
        return 200, {"count": len(records), "assays": records}


def make_handler(store, info, codes=None):
    """A handler class bound to one store, one info dict and (optionally) the shared reference codes."""
    return type("BoundAssayHandler", (AssayHandler,), {"store": store, "info": dict(info), "codes": codes})
