"""onnxruntime run directly from Python, no HTTP: the floor the endpoints are compared with.

Usage:
  python direct.py infer ONNX_PATH INPUT_NAME ROWS_JSON N
      times N single-row `session.run` calls (one thread, like the servers' sessions), cycling
      through ROWS_JSON (a JSON list of rows); prints one JSON object with per-call seconds.
  python direct.py load ONNX_PATH RUNS
      times `InferenceSession(...)` creation plus the first run on a zero input; prints JSON.
  python direct.py load-steps ONNX_PATH
      the same, one load per line read from stdin, each answered with a line of JSON
      (`{"create": s, "create_and_first_run": s}`): the caller interleaves them with its own
      loads, so both see the same machine.
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def infer(path, input_name, rows_json, n):
    sess = session(path)
    rows = [np.asarray([row], dtype=np.float32) for row in json.loads(rows_json)]
    for i in range(200):  # warm up
        sess.run(None, {input_name: rows[i % len(rows)]})
    samples = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        sess.run(None, {input_name: rows[i % len(rows)]})
        samples.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    print(json.dumps({"samples": samples, "total": total}))


def zero_feed(sess):
    feeds = {}
    for spec in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        feeds[spec.name] = np.zeros(shape, dtype=np.float32)
    return feeds


def load_once(path):
    t = time.perf_counter()
    sess = session(path)
    created = time.perf_counter()
    sess.run(None, zero_feed(sess))
    return created - t, time.perf_counter() - t


def load(path, runs):
    creates, firsts = [], []
    for _ in range(runs):
        create, first = load_once(path)
        creates.append(create)
        firsts.append(first)
    print(json.dumps({"create": creates, "create_and_first_run": firsts}))


def load_steps(path):
    for _ in sys.stdin:
        create, first = load_once(path)
        print(json.dumps({"create": create, "create_and_first_run": first}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "infer":
        infer(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == "load":
        load(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "load-steps":
        load_steps(sys.argv[2])
    else:
        sys.exit(__doc__)
