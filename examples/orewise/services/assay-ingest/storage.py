"""Assay storage.

Today: a JSON-lines file under $SANDPIT_DATA_DIR. Later: PostgreSQL via
DATABASE_URL. app.py only uses the four methods below, so the swap is a new
class with the same methods plus a change in server.py that picks it.
"""

import json
import os
import sys
import threading


class DuplicateSample(Exception):
    pass


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
