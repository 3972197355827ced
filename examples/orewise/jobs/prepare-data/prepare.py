"""prepare-data: turns the CSV files in data/ into $SANDPIT_DATA_DIR/reference.json.

sandpit runs this job (`python3 prepare.py`) in every environment and biome
before grade-api starts. It is idempotent: the output depends only on the CSV
files, and an identical reference.json is left untouched. The file is written
to a temporary name and renamed, so readers never see half a file.

Exit codes: 0 written or unchanged; 1 bad input data or I/O error;
2 SANDPIT_DATA_DIR not set.
"""

import csv
import hashlib
import json
import os
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
RECOVERY_MODELS = {
    # model name -> (CSV file, formula). grade-api's RECOVERY_MODEL picks one.
    "recovery-curve-v1": (
        "recovery_curve_v1.csv",
        "recovery_pct = clamp(r_max_pct * (1 - exp(-k_per_gpt * au_gpt))"
        " - tph_penalty_pct_per_100t * max(0, throughput_tph - nominal_tph) / 100"
        " - cu_penalty_pct_per_pct * cu_pct, 0, r_max_pct)",
    ),
}


class DataError(Exception):
    pass


def read_csv(name, numeric):
    """Rows of data/<name> as dicts; the `numeric` columns converted to float."""
    path = DATA / name
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        for column in numeric:
            try:
                row[column] = float(row[column])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}:{line}: column {column!r} must be a number, got {row.get(column)!r}") from None
    codes = [row.get("code") or row.get("ore_type") for row in rows]
    if len(set(codes)) != len(codes):
        raise DataError(f"{path}: duplicate codes in {codes}")
    return rows


def build_reference():
    ore_types = read_csv("ore_types.csv", ["typical_au_gpt", "typical_cu_pct"])
    methods = read_csv("assay_methods.csv", ["detection_limit"])
    known = {row["code"] for row in ore_types}
    models = {}
    for model, (name, formula) in RECOVERY_MODELS.items():
        rows = read_csv(
            name,
            ["r_max_pct", "k_per_gpt", "nominal_tph", "tph_penalty_pct_per_100t", "cu_penalty_pct_per_pct"],
        )
        coefficients = {row.pop("ore_type"): row for row in rows}
        if set(coefficients) != known:
            raise DataError(
                f"{DATA / name}: ore types {sorted(coefficients)} do not match ore_types.csv {sorted(known)}"
            )
        models[model] = {"formula": formula, "coefficients": coefficients}
    reference = {
        "schema_version": 1,
        "ore_types": [
            {
                "code": row["code"],
                "name": row["name"],
                "description": row["description"],
                "typical_head_grade": {"au_gpt": row["typical_au_gpt"], "cu_pct": row["typical_cu_pct"]},
            }
            for row in ore_types
        ],
        "assay_methods": methods,
        "recovery_models": models,
    }
    # A version derived from the content: the same data always gets the same version.
    canonical = json.dumps(reference, sort_keys=True).encode("utf-8")
    reference["reference_version"] = hashlib.sha256(canonical).hexdigest()[:12]
    return reference


def main():
    data_dir = os.environ.get("SANDPIT_DATA_DIR", "")
    if not data_dir:
        print(
            "prepare-data: error: SANDPIT_DATA_DIR is not set; it names the biome's data directory "
            "(sandpit sets it; by hand: SANDPIT_DATA_DIR=/tmp/orewise python3 prepare.py)",
            file=sys.stderr,
        )
        return 2
    try:
        reference = build_reference()
    except DataError as err:
        print(f"prepare-data: error: {err}", file=sys.stderr)
        return 1
    content = (json.dumps(reference, indent=2, sort_keys=True) + "\n").encode("utf-8")
    target = Path(data_dir) / "reference.json"
    version = reference["reference_version"]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == content:
            print(f"prepare-data: {target} is up to date (version {version})")
            return 0
        tmp = target.with_name(f".reference.json.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as err:
        print(f"prepare-data: error: cannot write {target}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(
        f"prepare-data: wrote {target} (version {version}: {len(reference['ore_types'])} ore types, "
        f"{len(reference['assay_methods'])} assay methods, models {', '.join(reference['recovery_models'])})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
