"""KServe's Python model server (PyPI `kserve`) serving one ONNX file through onnxruntime.

Usage: python kserve_server.py MODEL_NAME ONNX_PATH PORT

The baseline the sandpit benchmark drives with the same Open Inference Protocol (v2 REST)
requests as sandpit's own endpoint: a minimal `kserve.Model` subclass that wraps an
`onnxruntime.InferenceSession`, served by `kserve.ModelServer` (uvicorn, one worker, no gRPC).
"""

import logging
import sys

model_name, onnx_path, port = sys.argv[1], sys.argv[2], sys.argv[3]
# kserve parses its own flags from sys.argv when imported.
sys.argv = [sys.argv[0], "--http_port", port, "--enable_grpc", "false"]

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import uvicorn  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402

NUMPY_TO_V2 = {np.dtype("float32"): "FP32", np.dtype("float64"): "FP64",
               np.dtype("int32"): "INT32", np.dtype("int64"): "INT64", np.dtype("bool"): "BOOL"}

# KServe binds 0.0.0.0 with no option to change it; the benchmark stays on loopback.
_uvicorn_config = uvicorn.Config
uvicorn.Config = lambda app, **kwargs: _uvicorn_config(app, **{**kwargs, "host": "127.0.0.1"})


class OnnxModel(Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ready = True

    def predict(self, payload: InferRequest, headers=None,
                response_headers=None) -> InferResponse:
        feeds = {tensor.name: tensor.as_numpy() for tensor in payload.inputs}
        names = [output.name for output in self.session.get_outputs()]
        results = self.session.run(names, feeds)
        outputs = [
            InferOutput(name=name, shape=list(value.shape), datatype=NUMPY_TO_V2[value.dtype],
                        data=value.flatten().tolist())
            for name, value in zip(names, results)
        ]
        return InferResponse(model_name=self.name, infer_outputs=outputs,
                             response_id=payload.id or "")


if __name__ == "__main__":
    server = ModelServer(http_port=int(port), workers=1, enable_grpc=False,
                         enable_latency_logging=False)
    # Per-request access and trace logs off: the benchmark measures serving, not logging.
    for logger in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    server.start([OnnxModel(model_name, onnx_path)])
