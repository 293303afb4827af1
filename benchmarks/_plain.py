"""Shared by the fidelity benchmarks: a model file timed as a user times it, in a plain ONNX Runtime session."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def plain_session(path: Path, x: Any) -> tuple[Any, Callable[[], Any]]:
    """A user's plain session on ``path`` (1 thread, sequential, all graph optimisations) and the call they time:
    ``sess.run`` on the float32 NCHW array ``x``."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess, (lambda: sess.run(None, {name: x}))
