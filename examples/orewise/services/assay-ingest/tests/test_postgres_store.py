"""PostgresAssayStore and SharedReferenceCodes against a fake connection (no server needed)."""

import unittest

from pgwire import PgError
from reference_codes import ReferenceUnavailable, SharedReferenceCodes
from storage import DuplicateSample, PostgresAssayStore, StoreUnavailable
from validation import ValidationError, check_known_codes

URL = "postgres://biome_alice:s3cret@127.0.0.1:5432/orewise_alice"
RECORD = {"sample_id": "DH-001-12.5", "ore_type": "oxide", "method": "fire-assay",
          "au_gpt": 1.82, "cu_pct": 0.41, "received_at": "2024-03-04T08:15:00Z"}


class FakeConnection:
    def __init__(self, results=None, fail=None):
        self.calls, self.results, self.fail, self.closed = [], list(results or []), fail, False

    def _call(self, sql, params=()):
        self.calls.append((sql, list(params)))
        if self.fail:
            if self.fail.connection_problem:
                self.closed = True
            raise self.fail
        return self.results.pop(0) if self.results else []

    query = execute = _call

    def close(self):
        self.closed = True


class PostgresAssayStoreTest(unittest.TestCase):
    def store(self, *connections):
        pending = list(connections)

        def connect(url):
            if not pending:
                raise PgError("08001", "cannot connect", "FATAL")
            return pending.pop(0)
        return PostgresAssayStore(URL, connect=connect)

    def test_values_travel_as_parameters(self):
        conn = FakeConnection(results=[1, [dict(RECORD)]])
        store = self.store(conn)
        store.add(dict(RECORD, sample_id="O'Brien-1"))
        self.assertEqual(store.get("O'Brien-1"), RECORD)
        (insert, insert_params), (select, select_params) = conn.calls
        self.assertNotIn("O'Brien", insert + select)
        self.assertEqual(insert_params[0], "O'Brien-1")
        self.assertEqual(select_params, ["O'Brien-1"])
        self.assertEqual(store.describe(), {"storage": "postgres", "database": "orewise_alice",
                                            "url": "postgres://biome_alice@127.0.0.1:5432/orewise_alice"})

    def test_unique_violation_is_duplicate_sample(self):
        store = self.store(FakeConnection(fail=PgError("23505", "duplicate key value")))
        with self.assertRaises(DuplicateSample):
            store.add(RECORD)

    def test_connection_problems_are_unavailable_then_reconnect(self):
        lost = FakeConnection(fail=PgError("08006", "connection lost", "FATAL"))
        good = FakeConnection(results=[[{"n": 6}]])
        store = self.store(lost, good)
        with self.assertRaises(StoreUnavailable) as ctx:
            store.count()
        self.assertNotIn("s3cret", str(ctx.exception))
        self.assertEqual(store.count(), 6)  # a new connection
        with self.assertRaises(StoreUnavailable):
            self.store().ping()  # cannot connect at all

    def test_sql_errors_are_not_hidden(self):
        store = self.store(FakeConnection(fail=PgError("42P01", 'relation "assays" does not exist')))
        with self.assertRaises(PgError):
            store.list()


class KnownCodesTest(unittest.TestCase):
    def test_check_known_codes_names_field_and_lists_codes(self):
        known = {"ore_type": ["oxide", "sulphide"], "method": ["fire-assay"]}
        check_known_codes(RECORD, known)
        with self.assertRaises(ValidationError) as ctx:
            check_known_codes(dict(RECORD, ore_type="laterite"), known)
        self.assertEqual(ctx.exception.field, "ore_type")
        self.assertIn("oxide, sulphide", ctx.exception.message)
        with self.assertRaises(ValidationError) as ctx:
            check_known_codes(dict(RECORD, method="xrf"), known)
        self.assertEqual(ctx.exception.field, "method")

    def test_codes_are_cached_and_kept_through_an_outage(self):
        now = [0.0]
        conns = [FakeConnection(results=[[{"code": "oxide"}], [{"code": "fire-assay"}]])]

        def connect(url):
            if not conns:
                raise PgError("08001", "cannot connect", "FATAL")
            return conns.pop(0)
        codes = SharedReferenceCodes(URL, connect=connect, clock=lambda: now[0])
        self.assertEqual(codes.known(), {"ore_type": ["oxide"], "method": ["fire-assay"]})
        now[0] = 1000.0  # stale, and the database is down: keep the last codes
        self.assertEqual(codes.known()["ore_type"], ["oxide"])
        with self.assertRaises(ReferenceUnavailable):
            SharedReferenceCodes(URL, connect=connect).known()


if __name__ == "__main__":
    unittest.main()
