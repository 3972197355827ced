"""Assay storage.

Two stores with the same methods (add, get, list, count, ping, describe);
server.py picks one:
  * PostgresAssayStore when DATABASE_URL is set (sandpit gives every biome its
    own database, cloned from the migrated and seeded template: db/);
  * JsonLinesAssayStore under $SANDPIT_DATA_DIR otherwise, so the service
    also runs with no database at all.
"""

import json
import os
import sys
import threading


from pgwire import PgError, connect, parse_url, redact_url


class DuplicateSample(Exception):
    pass


class StoreUnavailable(Exception):
    """The store cannot be reached right now (app.py answers 503)."""


class JsonLinesAssayStore:
    """Append-only JSON-lines file, indexed in memory by sample_id.

    Each record is one line; a write is flushed and fsynced before add()
    returns. A torn last line (crash mid-write) is skipped with a warning.
    """

    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._by_id = {}  # sample_id -> record, in insertion order
        self._needs_newline = False
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._load()

    def _load(self):
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            data = f.read()
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._by_id[record["sample_id"]] = record
            except (ValueError, KeyError, TypeError):
                print(f"warning: {self.path}:{number}: skipping unreadable record", file=sys.stderr, flush=True)

    def add(self, record):
        """Store a new record; DuplicateSample if its sample_id is already stored."""
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            if record["sample_id"] in self._by_id:
                raise DuplicateSample(record["sample_id"])
            with open(self.path, "a", encoding="utf-8") as f:
                if self._needs_newline:
                    f.write("\n")
                    self._needs_newline = False
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._by_id[record["sample_id"]] = record
        return record

    def get(self, sample_id):
        with self._lock:
            return self._by_id.get(sample_id)

    def list(self, ore_type=None):
        with self._lock:
            records = list(self._by_id.values())
        if ore_type is not None:
            records = [r for r in records if r["ore_type"] == ore_type]
        return records

    def count(self):
        with self._lock:
            return len(self._by_id)

    def ping(self):
        """Raise StoreUnavailable if the store cannot serve requests (never, for a file)."""

    def describe(self):
        return {"storage": "jsonl", "database": None}


# received_at is returned exactly as JsonLinesAssayStore stores it: "2024-03-04T08:15:00Z".
_COLUMNS = (
    "sample_id, ore_type, method, au_gpt, cu_pct, "
    "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS received_at"
)


class PostgresAssayStore:
    """Assays in the `assays` table (db/migrations/001_assays.sql).

    One connection, used under a lock (the HTTP server is threaded) and opened
    lazily: if the database is down at start or the connection drops, the
    calls raise StoreUnavailable and the next call connects again. Values are
    always passed as query parameters, never put into the SQL text.
    """

    def __init__(self, url, connect=connect):
        self.url = url
        self.database = parse_url(url)["database"]  # also checks the URL early
        self._connect = connect
        self._conn = None
        self._lock = threading.Lock()

    def _run(self, method, sql, params=()):
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect(self.url)
                return getattr(self._conn, method)(sql, params)
            except PgError as err:
                if err.connection_problem or (self._conn is not None and self._conn.closed):
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    raise StoreUnavailable(f"database {self.database}: {err}") from None
                raise

    def add(self, record):
        try:
            self._run(
                "execute",
                "INSERT INTO assays (sample_id, ore_type, method, au_gpt, cu_pct, received_at)"
                " VALUES ($1, $2, $3, $4, $5, COALESCE($6::timestamptz, now()))",
                [record["sample_id"], record["ore_type"], record["method"],
                 record["au_gpt"], record["cu_pct"], record.get("received_at")],
            )
        except PgError as err:
            if err.code == "23505":  # unique_violation on the primary key
                raise DuplicateSample(record["sample_id"]) from None
            raise
        return record

    def get(self, sample_id):
        rows = self._run("query", f"SELECT {_COLUMNS} FROM assays WHERE sample_id = $1", [sample_id])
        return rows[0] if rows else None

    def list(self, ore_type=None):
        return self._run(
            "query",
            f"SELECT {_COLUMNS} FROM assays WHERE $1::text IS NULL OR ore_type = $1"
            " ORDER BY assays.received_at, sample_id",
            [ore_type],
        )

    def count(self):
        return self._run("query", "SELECT count(*) AS n FROM assays")[0]["n"]

    def ping(self):
        self._run("query", "SELECT 1")

    def describe(self):
        return {"storage": "postgres", "database": self.database, "url": redact_url(self.url)}
