"""load_model_from_db and PredictionLog against a fake connection (no server needed)."""

import contextlib
import io
import unittest

from pgwire import PgError
from recovery import ReferenceError
from reference_db import PredictionLog, load_model_from_db

URL = "postgres://biome_alice:s3cret@127.0.0.1:5432/orewise_shared"
OXIDE = {"ore_type": "oxide", "r_max_pct": 92.0, "k_per_gpt": 2.8, "nominal_tph": 450.0,
         "tph_penalty_pct_per_100t": 1.5, "cu_penalty_pct_per_pct": 2.0}


class FakeConnection:
    def __init__(self, results=None, fail=None):
        self.calls, self.results, self.fail, self.closed = [], list(results or []), fail, False

    def query(self, sql, params=()):
        self.calls.append((sql, list(params)))
        if self.fail:
            raise self.fail
        return self.results.pop(0)

    def close(self):
        self.closed = True


class LoadModelFromDbTest(unittest.TestCase):
    def test_loads_coefficients(self):
        conn = FakeConnection([[{"code": "oxide"}], [dict(OXIDE)], [{"model": "recovery-curve-v1"}]])
        model = load_model_from_db(URL, "recovery-curve-v1", connect=lambda url: conn)
        self.assertEqual(model.ore_types, ["oxide"])
        self.assertEqual(model.predict("oxide", 1.8, 0.4, 450), 90.6)  # as in README
        self.assertTrue(model.reference_version.startswith("db-"))
        self.assertEqual(conn.calls[1][1], ["recovery-curve-v1"])
        self.assertTrue(conn.closed)

    def test_errors_say_why_without_the_password(self):
        conn = FakeConnection([[{"code": "oxide"}], [], [{"model": "recovery-curve-v1"}]])
        with self.assertRaisesRegex(ReferenceError, r"no recovery model 'v9' \(available: recovery-curve-v1\)"):
            load_model_from_db(URL, "v9", connect=lambda url: conn)

        def refuse(url):
            raise PgError("08001", "cannot connect to 127.0.0.1:5432: Connection refused", "FATAL")
        with self.assertRaises(ReferenceError) as ctx:
            load_model_from_db(URL, "recovery-curve-v1", connect=refuse)
        self.assertIn("postgres://biome_alice@127.0.0.1:5432/orewise_shared", str(ctx.exception))
        self.assertNotIn("s3cret", str(ctx.exception))


class PredictionLogTest(unittest.TestCase):
    class Model:
        name, reference_version = "recovery-curve-v1", "db-abc"

    def test_records_and_survives_failures(self):
        conn = FakeConnection([[{"id": 7}]])
        log = PredictionLog(URL, connect=lambda url: conn)
        self.assertEqual(log.record(self.Model, "abc123", "oxide", 1.8, 0.4, 450.0, 90.6), 7)
        self.assertEqual(conn.calls[0][1], ["recovery-curve-v1", "db-abc", "abc123", "oxide", 1.8, 0.4, 450.0, 90.6])
        conn.fail = PgError("08006", "connection lost", "FATAL")
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertIsNone(log.record(self.Model, "abc123", "oxide", 1.8, 0.4, 450.0, 90.6))
        self.assertIn("prediction not logged", err.getvalue())
        self.assertNotIn("s3cret", err.getvalue())


if __name__ == "__main__":
    unittest.main()
