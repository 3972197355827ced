"""Train orewise's recovery model and export it as ONNX.

    pip install scikit-learn skl2onnx onnx onnxruntime numpy
    python3 train.py                          # the base model  → recovery.onnx, model_card.json
    python3 train.py --variant conservative   # a slightly more pessimistic version of it
    python3 check_model.py                    # onnxruntime vs. scikit-learn on reference rows

What it does:
  1. Generates a synthetic but plausible ore data set (2,000 samples, fixed seed).
     Features, in this order (the ONNX input `features`, FP32, shape [N, 5]):
       au_gpt          head grade, gold                       g/t
       cu_pct          head grade, copper                     %
       throughput_tph  mill throughput                        t/h
       bwi_kwh_t       ore hardness, Bond ball-mill work index kWh/t
       sulphide_frac   fraction of the ore that is fresh sulphide (0..1)
     Target: metallurgical (CIL) gold recovery, %.
  2. Trains Pipeline([StandardScaler(), GradientBoostingRegressor(...)]) on 80 %
     and reports R² and MAE on the 20 % holdout.
  3. Converts it with skl2onnx (opsets: "" 15, "ai.onnx.ml" 3) and writes
     recovery.onnx (the ONNX output `variable`, FP32, shape [N, 1]: recovery %)
     and model_card.json (features, units, data summary, metrics, and a few
     reference rows with scikit-learn's predictions, which check_model.py
     compares against onnxruntime).

The data generator's "physics" (all of it simplified, none of it from a real plant):
  * recovery rises with gold grade and saturates: r_max·(1 − e^(−1.8·Au));
  * r_max falls with the sulphide fraction (gold locked in pyrite/arsenopyrite
    does not leach): 94 − 17·sulphide;
  * harder ore (higher Bond work index) pushed through faster grinds coarser,
    which liberates less gold: a penalty when tph·BWi is above the circuit's
    design point (450 t/h at 14 kWh/t);
  * cyanide-soluble copper consumes cyanide: −3.5 % per % Cu, more in sulphide ore;
  * Gaussian noise (σ = 1.2 %), clamped to [0, 99].

Variants (`--variant`), for showing two biomes with different model versions:
  * base (default): n_estimators=60, max_depth=3, learning_rate=0.1.
  * conservative: the metallurgist's "plant discount": targets are scaled by
    0.97 and lowered by 1 % (lab-to-plant losses), and the regressor is a
    little shallower (n_estimators=50, max_depth=2). Same features, same ONNX
    input and output names: a biome carrying it answers a few % lower.

Deterministic: fixed seeds everywhere, so re-running gives the same model and
(with the pinned library versions in model_card.json) the same ONNX bytes.
The build never runs this: sandpit packages the committed recovery.onnx as is.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import skl2onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
SEED = 20240611
N_SAMPLES = 2000
FEATURES = [
    {"name": "au_gpt", "unit": "g/t", "description": "gold head grade"},
    {"name": "cu_pct", "unit": "%", "description": "copper head grade (cyanide-soluble copper consumes cyanide)"},
    {"name": "throughput_tph", "unit": "t/h", "description": "mill throughput"},
    {"name": "bwi_kwh_t", "unit": "kWh/t", "description": "ore hardness: Bond ball-mill work index"},
    {"name": "sulphide_frac", "unit": "fraction 0..1", "description": "share of fresh sulphide ore in the blend"},
]
VARIANTS = {
    "base": {
        "regressor": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1},
        "target_scale": 1.0,
        "target_offset_pct": 0.0,
        "description": "base model",
    },
    "conservative": {
        "regressor": {"n_estimators": 50, "max_depth": 2, "learning_rate": 0.1},
        "target_scale": 0.97,
        "target_offset_pct": -1.0,
        "description": "conservative: lab-to-plant discount (0.97 × recovery − 1 %), shallower trees",
    },
}
# A few fixed, plausible blends (float32-exact values) for check_model.py.
REFERENCE_ROWS = [
    [1.8, 0.4, 450.0, 14.0, 0.2],
    [0.6, 0.1, 380.0, 11.5, 0.05],
    [3.2, 0.9, 520.0, 17.5, 0.7],
    [1.1, 0.55, 400.0, 15.0, 0.9],
    [5.0, 0.2, 600.0, 20.0, 0.4],
    [0.3, 0.05, 320.0, 9.0, 0.0],
]


def make_data(rng):
    """(X float32 [N, 5], y float64 [N]) of the synthetic ore data set."""
    n = N_SAMPLES
    sulphide = rng.beta(1.2, 2.0, n)
    au = np.clip(rng.lognormal(np.log(1.3), 0.6, n), 0.1, 12.0)
    cu = np.clip(rng.lognormal(np.log(0.12 + 0.45 * sulphide), 0.5), 0.01, 2.5)
    tph = rng.uniform(300.0, 600.0, n)
    bwi = np.clip(rng.normal(12.0 + 5.0 * sulphide, 2.0), 7.0, 24.0)

    r_max = 94.0 - 17.0 * sulphide
    grade = r_max * (1.0 - np.exp(-1.8 * au))
    grind = tph * bwi / (450.0 * 14.0)                 # 1.0 at the design point
    grind_penalty = 9.0 * np.maximum(0.0, grind - 1.0) + 1.5 * np.maximum(0.0, 0.8 - grind)
    cu_penalty = (3.5 + 3.0 * sulphide) * cu
    y = grade - grind_penalty - cu_penalty + rng.normal(0.0, 1.2, n)
    y = np.clip(y, 0.0, 99.0)
    X = np.column_stack([au, cu, tph, bwi, sulphide]).astype(np.float32)
    return X, y


def summary(X, y):
    def stats(v):
        v = np.asarray(v, dtype=np.float64)
        return {k: round(float(f(v)), 4) for k, f in
                (("min", np.min), ("p50", np.median), ("mean", np.mean), ("max", np.max))}

    out = {f["name"]: stats(X[:, i]) for i, f in enumerate(FEATURES)}
    out["recovery_pct"] = stats(y)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="base")
    parser.add_argument("--out", default=str(HERE), help="directory for recovery.onnx and model_card.json")
    args = parser.parse_args(argv)
    variant = VARIANTS[args.variant]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(SEED)
    X, y = make_data(rng)
    y = y * variant["target_scale"] + variant["target_offset_pct"]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED % 2**32)

    pipeline = Pipeline([
        ("scaler", StandardScaler()),
        ("gbr", GradientBoostingRegressor(random_state=0, **variant["regressor"])),
    ])
    pipeline.fit(X_train, y_train)
    pred = pipeline.predict(X_test)
    metrics = {
        "holdout_rows": int(len(y_test)),
        "r2": round(float(r2_score(y_test, pred)), 4),
        "mae_pct": round(float(mean_absolute_error(y_test, pred)), 4),
    }

    onx = convert_sklearn(
        pipeline,
        name="orewise-recovery",
        initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
        target_opset={"": 15, "ai.onnx.ml": 3},
    )
    # skl2onnx 1.20 lists the default domain twice in opset_import; keep one entry per domain.
    seen = {}
    for opset in onx.opset_import:
        seen.setdefault(opset.domain, opset.version)
    del onx.opset_import[:]
    for domain, version in seen.items():
        onx.opset_import.add(domain=domain, version=version)
    # No timestamps or paths in the file: the same inputs give the same bytes.
    onx.doc_string = f"orewise recovery model ({args.variant}): features {', '.join(f['name'] for f in FEATURES)} -> recovery %"
    onx.model_version = 2 if args.variant == "conservative" else 1
    onnx.checker.check_model(onx)
    data = onx.SerializeToString()
    (out / "recovery.onnx").write_bytes(data)

    ref = np.array(REFERENCE_ROWS, dtype=np.float32)
    card = {
        "model": "recovery",
        "variant": args.variant,
        "description": variant["description"],
        "predicts": "metallurgical (CIL) gold recovery, % — from a synthetic data set, for demonstration only",
        "onnx": {
            "file": "recovery.onnx",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "input": {"name": onx.graph.input[0].name, "datatype": "FP32", "shape": [-1, len(FEATURES)]},
            "output": {"name": onx.graph.output[0].name, "datatype": "FP32", "shape": [-1, 1], "unit": "%"},
            "opsets": {o.domain or "ai.onnx": o.version for o in onx.opset_import},
        },
        "features": FEATURES,
        "estimator": {
            "pipeline": "StandardScaler -> GradientBoostingRegressor",
            "params": dict(variant["regressor"], random_state=0),
            "target_scale": variant["target_scale"],
            "target_offset_pct": variant["target_offset_pct"],
        },
        "training_data": {
            "generator": "train.py make_data (synthetic)",
            "seed": SEED,
            "samples": N_SAMPLES,
            "train_rows": int(len(y_train)),
            "summary": summary(X, y),
        },
        "metrics": metrics,
        "reference_rows": {
            "inputs": REFERENCE_ROWS,
            "sklearn_predictions": [round(float(v), 6) for v in pipeline.predict(ref)],
            "tolerance": 1e-3,
        },
        "versions": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
        },
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    # The full holdout through onnxruntime too, if it is installed (check_model.py does the reference rows).
    try:
        import onnxruntime as ort
    except ImportError:
        ort_note = "onnxruntime not installed: skipped the holdout comparison"
    else:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"features": X_test})[0].ravel()
        diff = float(np.max(np.abs(got - pipeline.predict(X_test))))
        ort_note = f"onnxruntime vs scikit-learn on the holdout: max |diff| = {diff:.2e}"
        if diff >= 1e-3:
            print(f"error: {ort_note} (tolerance 1e-3)", file=sys.stderr)
            return 1

    print(f"variant {args.variant}: R² {metrics['r2']}, MAE {metrics['mae_pct']} % on {metrics['holdout_rows']} holdout rows")
    print(ort_note)
    print(f"wrote {out / 'recovery.onnx'} ({len(data)} bytes, sha256 {card['onnx']['sha256'][:16]}…) and model_card.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
