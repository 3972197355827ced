import unittest

from validation import ValidationError, validate_assay

GOOD = {"sample_id": "DH-001-12.5", "ore_type": "oxide", "method": "fire-assay", "au_gpt": 1.82, "cu_pct": 0.41}


class ValidateAssayTest(unittest.TestCase):
    def assert_rejects(self, field, **changes):
        body = dict(GOOD, **changes)
        with self.assertRaises(ValidationError) as ctx:
            validate_assay(body)
        self.assertEqual(ctx.exception.field, field)

    def test_accepts_a_good_assay(self):
        self.assertEqual(validate_assay(GOOD), GOOD)

    def test_integers_become_floats(self):
        self.assertEqual(validate_assay(dict(GOOD, au_gpt=2))["au_gpt"], 2.0)

    def test_names_the_missing_field(self):
        body = dict(GOOD)
        del body["method"]
        with self.assertRaises(ValidationError) as ctx:
            validate_assay(body)
        self.assertEqual(ctx.exception.field, "method")

    def test_rejects_bad_values(self):
        self.assert_rejects("sample_id", sample_id="DH 001/12")
        self.assert_rejects("sample_id", sample_id="")
        self.assert_rejects("ore_type", ore_type="Oxide")
        self.assert_rejects("method", method=3)
        self.assert_rejects("au_gpt", au_gpt="1.8")
        self.assert_rejects("au_gpt", au_gpt=-0.1)
        self.assert_rejects("au_gpt", au_gpt=True)
        self.assert_rejects("cu_pct", cu_pct=101)

    def test_rejects_unknown_fields(self):
        self.assert_rejects("grade", grade=1)


if __name__ == "__main__":
    unittest.main()
