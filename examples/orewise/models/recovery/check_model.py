"""Check recovery.onnx against model_card.json with onnxruntime (needs onnxruntime + numpy only).

    pip install onnxruntime numpy
    python3 check_model.py [DIR]      # DIR defaults to this directory

Checks, and exits 1 naming the first one that fails:
  * recovery.onnx's sha256 is the one model_card.json records (the card
    describes this very file);
  * onnxruntime loads it; its input is `features` (FP32, [N, 5]) and its
    output is the card's output name (FP32);
  * on the card's reference rows, onnxruntime's predictions match the
    scikit-learn predictions train.py recorded within 1e-3 (% recovery),
    one row at a time and as one batch.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def check(directory):
    directory = Path(directory)
    card = json.loads((directory / "model_card.json").read_text(encoding="utf-8"))
    data = (directory / card["onnx"]["file"]).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != card["onnx"]["sha256"]:
        return f"{card['onnx']['file']} sha256 {digest} is not the card's {card['onnx']['sha256']} (re-run train.py)"

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    n_features = len(card["features"])
    if [i.name for i in inputs] != [card["onnx"]["input"]["name"]]:
        return f"inputs are {[i.name for i in inputs]}, the card says {card['onnx']['input']['name']!r}"
    if inputs[0].type != "tensor(float)" or inputs[0].shape[1:] != [n_features]:
        return f"input {inputs[0].name} is {inputs[0].type} {inputs[0].shape}, expected tensor(float) [N, {n_features}]"
    if outputs[0].name != card["onnx"]["output"]["name"] or outputs[0].type != "tensor(float)":
        return f"first output is {outputs[0].name} {outputs[0].type}, the card says {card['onnx']['output']['name']} FP32"

    ref = card["reference_rows"]
    rows = np.array(ref["inputs"], dtype=np.float32)
    expected = np.array(ref["sklearn_predictions"], dtype=np.float64)
    tolerance = float(ref["tolerance"])
    batch = sess.run([outputs[0].name], {inputs[0].name: rows})[0]
    if batch.shape != (len(rows), 1):
        return f"output shape {batch.shape}, expected ({len(rows)}, 1)"
    single = np.array([sess.run([outputs[0].name], {inputs[0].name: rows[i:i + 1]})[0][0, 0] for i in range(len(rows))])
    worst = 0.0
    for name, got in (("batch", batch.ravel()), ("one row at a time", single)):
        diff = np.abs(got.astype(np.float64) - expected)
        worst = max(worst, float(diff.max()))
        if diff.max() >= tolerance:
            i = int(diff.argmax())
            return (f"{name}: row {ref['inputs'][i]} → onnxruntime {float(got[i]):.6f}, "
                    f"scikit-learn {expected[i]:.6f} (|diff| {diff[i]:.2e} ≥ {tolerance})")

    print(f"ok: {card['onnx']['file']} ({card['variant']}, {len(data)} bytes, sha256 {digest[:16]}…)")
    print(f"    input  {inputs[0].name} {inputs[0].type} {inputs[0].shape}")
    print(f"    output {outputs[0].name} {outputs[0].type} {outputs[0].shape}")
    for row, value in zip(ref["inputs"], batch.ravel()):
        print(f"    {row} → {float(value):.3f} %")
    print(f"    {len(rows)} reference rows, max |onnxruntime − scikit-learn| = {worst:.2e} (< {tolerance})")
    return None


def main(argv):
    problem = check(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent)
    if problem:
        print(f"check failed: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
