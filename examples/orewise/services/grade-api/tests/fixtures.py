"""A small reference.json like the one jobs/prepare-data writes (tests may not read outside this service)."""

import json
import os

REFERENCE = {
    "schema_version": 1,
    "reference_version": "test00000001",
    "ore_types": [{"code": "oxide"}, {"code": "sulphide"}],
    "assay_methods": [{"code": "fire-assay", "analyte": "au", "unit": "g/t"}],
    "recovery_models": {
        "recovery-curve-v1": {
            "coefficients": {
                "oxide": {"r_max_pct": 92.0, "k_per_gpt": 2.2, "nominal_tph": 450,
                          "tph_penalty_pct_per_100t": 1.5, "cu_penalty_pct_per_pct": 2.0},
                "sulphide": {"r_max_pct": 79.0, "k_per_gpt": 1.2, "nominal_tph": 400,
                             "tph_penalty_pct_per_100t": 2.5, "cu_penalty_pct_per_pct": 6.0},
            }
        }
    },
}


def write_reference(directory, reference=REFERENCE):
    path = os.path.join(directory, "reference.json")
    with open(path, "w") as f:
        json.dump(reference, f)
    return path
