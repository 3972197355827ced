import json
import os
import tempfile
import unittest

from fixtures import write_reference
from recovery import ReferenceError, UnknownOreType, load_model


class RecoveryModelTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.model = load_model(write_reference(self.tmp.name), "recovery-curve-v1")

    def tearDown(self):
        self.tmp.cleanup()

    def test_known_value(self):
        # 92 * (1 - e^(-2.2*1.8)) - 1.5 * (450-450)/100 - 2.0*0.4 = 89.45
        self.assertEqual(self.model.predict("oxide", 1.8, 0.4, 450), 89.45)

    def test_higher_grade_recovers_more_and_throughput_and_copper_cost(self):
        base = self.model.predict("oxide", 1.0, 0.1, 450)
        self.assertGreater(self.model.predict("oxide", 2.0, 0.1, 450), base)
        self.assertLess(self.model.predict("oxide", 1.0, 0.1, 650), base)
        self.assertLess(self.model.predict("oxide", 1.0, 1.0, 450), base)
        self.assertLess(self.model.predict("sulphide", 1.0, 0.1), base)

    def test_clamped_to_physical_range(self):
        self.assertEqual(self.model.predict("sulphide", 0.01, 20.0, 5000), 0.0)
        self.assertLessEqual(self.model.predict("oxide", 900, 0.0, 10), 92.0)

    def test_unknown_ore_type(self):
        with self.assertRaises(UnknownOreType):
            self.model.predict("laterite", 1.0, 0.1)

    def test_load_errors_say_what_is_wrong(self):
        with self.assertRaisesRegex(ReferenceError, "not found"):
            load_model(os.path.join(self.tmp.name, "missing.json"), "recovery-curve-v1")
        with self.assertRaisesRegex(ReferenceError, "no recovery model 'v9'"):
            load_model(os.path.join(self.tmp.name, "reference.json"), "v9")
        bad = os.path.join(self.tmp.name, "bad.json")
        with open(bad, "w") as f:
            json.dump({"recovery_models": {"m": {"coefficients": {"oxide": {"r_max_pct": "high"}}}}}, f)
        with self.assertRaisesRegex(ReferenceError, "m.oxide.r_max_pct must be a number"):
            load_model(bad, "m")


if __name__ == "__main__":
    unittest.main()
