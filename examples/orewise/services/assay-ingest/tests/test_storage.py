import contextlib
import io
import os
import tempfile
import unittest

from storage import DuplicateSample, JsonLinesAssayStore


def record(sample_id, ore_type="oxide"):
    return {"sample_id": sample_id, "ore_type": ore_type, "method": "fire-assay", "au_gpt": 1.0, "cu_pct": 0.1}


class JsonLinesAssayStoreTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "sub", "assays.jsonl")

    def tearDown(self):
        self.tmp.cleanup()

    def test_add_get_list_and_reload(self):
        store = JsonLinesAssayStore(self.path)
        store.add(record("A-1"))
        store.add(record("B-1", ore_type="sulphide"))
        self.assertEqual(store.get("A-1")["ore_type"], "oxide")
        self.assertIsNone(store.get("missing"))
        self.assertEqual([r["sample_id"] for r in store.list(ore_type="sulphide")], ["B-1"])
        reopened = JsonLinesAssayStore(self.path)
        self.assertEqual([r["sample_id"] for r in reopened.list()], ["A-1", "B-1"])

    def test_duplicate_sample_is_refused(self):
        store = JsonLinesAssayStore(self.path)
        store.add(record("A-1"))
        with self.assertRaises(DuplicateSample):
            store.add(record("A-1"))
        self.assertEqual(store.count(), 1)

    def test_torn_last_line_is_skipped_and_next_write_is_clean(self):
        JsonLinesAssayStore(self.path).add(record("A-1"))
        with open(self.path, "a") as f:
            f.write('{"sample_id": "tor')  # a crash mid-write
        warnings = io.StringIO()
        with contextlib.redirect_stderr(warnings):
            store = JsonLinesAssayStore(self.path)
        self.assertIn(":2: skipping unreadable record", warnings.getvalue())
        self.assertEqual(store.count(), 1)
        store.add(record("C-1"))
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(JsonLinesAssayStore(self.path).count(), 2)


if __name__ == "__main__":
    unittest.main()
