"""Known ore type and assay method codes, from the shared reference database.

When SHARED_DATABASE_URL is set, sandpit gives this service read-only access to
the environment's `orewise_shared` database (db/shared.sql). New assays must
then use a code listed there; without it only the shape of codes is checked.

Codes are cached for CACHE_SECONDS, so a new ore type is accepted within a
minute and a short outage of the shared database does not stop ingestion
once the codes have been read.
"""

import threading
import time

from pgwire import PgError, connect, parse_url

CACHE_SECONDS = 60.0


class ReferenceUnavailable(Exception):
    pass


class SharedReferenceCodes:
    def __init__(self, url, connect=connect, clock=time.monotonic):
        self.url = url
        self.database = parse_url(url)["database"]
        self._connect, self._clock = connect, clock
        self._lock = threading.Lock()
        self._codes, self._loaded_at = None, None

    def _load(self):
        conn = self._connect(self.url)
        try:
            return {
                "ore_type": [r["code"] for r in conn.query("SELECT code FROM ore_types ORDER BY code")],
                "method": [r["code"] for r in conn.query("SELECT code FROM assay_methods ORDER BY code")],
            }
        finally:
            conn.close()

    def known(self):
        """{"ore_type": [codes], "method": [codes]}, or ReferenceUnavailable."""
        with self._lock:
            fresh = self._loaded_at is not None and self._clock() - self._loaded_at < CACHE_SECONDS
            if not fresh:
                try:
                    self._codes, self._loaded_at = self._load(), self._clock()
                except PgError as err:
                    if self._codes is None:  # never loaded: cannot check anything
                        raise ReferenceUnavailable(f"shared database {self.database}: {err}") from None
                    # keep the last known codes and try again on the next request
            return self._codes
