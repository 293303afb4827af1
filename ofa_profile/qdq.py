"""ONNX Runtime's static QDQ quantization done in memory: the model ``quantize_static`` writes, for less CPU.

``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights, uint8 activations, MinMax) spends
~53 ms of CPU on a LUT block here, more than the block's fp32 export: it writes and re-reads the model for shape
inference, builds and writes an augmented calibration model (a ReduceMin and a ReduceMax per tensor) and opens a
session on it, and computes every weight channel's scale and quantized values in a Python loop (one call per
output channel).  :func:`quantize_qdq` makes the same model from bytes to bytes:

* shape inference in memory (``onnx.shape_inference.infer_shapes``, the same inference as ``infer_shapes_path``);
* activation ranges from one session on the model with the calibrated tensors as extra outputs (same tensors:
  ORT's own ``select_tensors_to_calibrate``; same unoptimized session; each range the min and max over all
  calibration inputs, which is what ReduceMin/ReduceMax and ``np.nanmin``/``np.nanmax`` compute, exactly);
* the weights' per-channel scales and int8 values computed for all channels at once with the same float32 and
  float64 operations as ORT's per-channel functions (element-wise, so bit for bit the same);
* everything else is ORT's own ``QDQQuantizer``.

``tests/test_qdq.py`` holds that the bytes equal ``quantize_static``'s output for real LUT blocks.  Anything this
path does not cover (another ORT whose internals moved, float16 weights) raises :class:`FastPathUnavailable`, and
:func:`ofa_profile.quantize.quantize_onnx` then runs ``quantize_static`` itself.
"""
from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

__all__ = ["FastPathUnavailable", "quantize_qdq"]


class FastPathUnavailable(Exception):
    """The in-memory path cannot reproduce ``quantize_static`` here (its ORT internals differ)."""


def _ort_parts() -> SimpleNamespace:
    try:
        import onnxruntime.quantization.qdq_quantizer as qq
        from onnxruntime.quantization import CalibrationMethod, QuantType
        from onnxruntime.quantization.calibrate import CalibraterBase, TensorsData
        from onnxruntime.quantization.quant_utils import (TENSOR_NAME_QUANT_SUFFIX, add_infer_metadata, find_by_name,
                                                          get_qmin_qmax_for_qType,
                                                          tensor_proto_to_array, update_opset_version)
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
        return SimpleNamespace(qq=qq, CalibrationMethod=CalibrationMethod, QuantType=QuantType,
                               CalibraterBase=CalibraterBase, TensorsData=TensorsData,
                               add_infer_metadata=add_infer_metadata, find_by_name=find_by_name,
                               qmin_qmax=get_qmin_qmax_for_qType, to_array=tensor_proto_to_array,
                               update_opset_version=update_opset_version,
                               op_types=list(set(list(QLinearOpsRegistry.keys()) + list(QDQRegistry.keys()))),
                               QDQQuantizer=qq.QDQQuantizer, QuantizationParams=qq.QuantizationParams,
                               WEIGHT=qq.QDQQuantTensorType.WEIGHT, quant_suffix=TENSOR_NAME_QUANT_SUFFIX,
                               original_qinit=qq.quantize_onnx_initializer)
    except (ImportError, AttributeError) as exc:
        raise FastPathUnavailable(f"onnxruntime.quantization internals differ ({exc})") from None


def _ranges(ort_q: SimpleNamespace, model: Any, feeds: Sequence[dict]) -> Any:
    """ORT's MinMax ranges (a ``TensorsData``) of ``model``'s calibrated tensors over ``feeds``."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    tensors, value_infos = ort_q.CalibraterBase.select_tensors_to_calibrate(
        SimpleNamespace(op_types_to_calibrate=ort_q.op_types), model)
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    extra = sorted(t for t in tensors if t not in inputs and t not in outputs)
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    aug.graph.output.extend(value_infos[t] for t in extra)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL   # as ORT's calibration session
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    mins: dict[str, list] = {t: [] for t in tensors}
    maxs: dict[str, list] = {t: [] for t in tensors}
    for feed in feeds:
        values = dict(zip(names, sess.run(None, feed)))
        values.update(feed)
        for t in tensors:
            v = np.asarray(values[t])
            mins[t].append(v.min(keepdims=True).reshape(-1))
            maxs[t].append(v.max(keepdims=True).reshape(-1))
    pairs = {t: (np.nanmin(mins[t], axis=0), np.nanmax(maxs[t], axis=0)) for t in tensors}
    return ort_q.TensorsData(ort_q.CalibrationMethod.MinMax, pairs)


def _channel_params(ort_q: SimpleNamespace, data: Any, axis: int, quant_type: Any) -> tuple[Any, Any]:
    """(zero points, scales) of every output channel of ``data``: ORT's ``compute_data_quant_params`` +
    ``compute_scale_zp`` (symmetric, no reduced range, no minimum range) for all channels at once."""
    import numpy as np

    qmin, qmax = ort_q.qmin_qmax(quant_type, reduce_range=False, symmetric=True)
    w = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
    rmin = np.minimum(w.min(axis=1), np.array(0, dtype=data.dtype))
    rmax = np.maximum(w.max(axis=1), np.array(0, dtype=data.dtype))
    absmax = np.maximum(np.abs(rmin), np.abs(rmax))
    dr = absmax.astype(np.float64) - (-absmax).astype(np.float64)
    dq = np.array(qmax, dtype=np.float64) - np.array(qmin, dtype=np.float64)
    scale = dr / dq
    small = scale < np.finfo(data.dtype).tiny
    zp = np.full(len(scale), np.array(np.round((qmin + qmax) / np.array(2.0, dtype=np.float64)), dtype=qmin.dtype))
    zp[small] = 0
    return zp.astype(qmin.dtype), np.where(small, np.array(1.0, dtype=data.dtype), scale.astype(data.dtype))


def _channel_values(ort_q: SimpleNamespace, data: Any, axis: int, quant_type: Any, scale: Any, zp: Any) -> Any:
    """Every channel's quantized values: ORT's ``quantize_nparray`` per channel, for all channels at once."""
    import numpy as np

    qmin, qmax = ort_q.qmin_qmax(quant_type, reduce_range=False, symmetric=False)
    w = np.moveaxis(data, axis, 0)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = (w.astype(np.float32) / scale.reshape(shape)).round() + zp.reshape(shape)
    np.clip(q, qmin, qmax, out=q)
    return np.moveaxis(q.astype(qmin.dtype), 0, axis)


def _quantizer_class(ort_q: SimpleNamespace) -> type:
    class _Quantizer(ort_q.QDQQuantizer):  # type: ignore[misc, name-defined]
        """ORT's QDQQuantizer with the per-channel weight parameters computed for all channels at once."""

        def _fast(self, name: str, info: Any) -> bool:
            import numpy as np
            init = ort_q.find_by_name(name, self.model.initializer())
            return (init is not None and info.tensor_type is ort_q.WEIGHT and info.axis is not None
                    and not self.tensor_quant_overrides.get(name) and not self.block_size and not self.reduce_range
                    and self.min_real_range is None and self.weight_qType == ort_q.QuantType.QInt8.tensor_type
                    and ort_q.to_array(init).dtype == np.float32)

        def _calc_initializer_quant_params(self) -> dict:
            every = self.tensors_to_quantize
            fast = {n: i for n, i in every.items() if self._fast(n, i)}
            self.tensors_to_quantize = {n: i for n, i in every.items() if n not in fast}
            try:
                rest = super()._calc_initializer_quant_params()
            finally:
                self.tensors_to_quantize = every
            for n, info in fast.items():
                data = ort_q.to_array(ort_q.find_by_name(n, self.model.initializer()))
                axis = info.axis % data.ndim
                zp, scale = _channel_params(ort_q, data, axis, self.weight_qType)
                rest[n] = ort_q.QuantizationParams(zero_point=zp, scale=scale, quant_type=self.weight_qType, axis=axis)
            return {n: rest[n] for n in every if n in rest}      # ORT's order: the initializers are added in it

    return _Quantizer


@contextlib.contextmanager
def _vectorized_weights(ort_q: SimpleNamespace) -> Iterator[None]:
    """While quantizing: per-channel int8 weights quantized for all channels at once (other cases: ORT's own)."""
    import numpy as np
    from onnx import numpy_helper

    original = ort_q.original_qinit

    def quantize_onnx_initializer(weight, quant_type, zero_point, scale, axis=None, quant_weight_name=None,
                                  block_size=0):
        if axis is None or block_size or quant_type != ort_q.QuantType.QInt8.tensor_type:
            return original(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size)
        data = ort_q.to_array(weight)
        if data.dtype != np.float32:
            return original(weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size)
        q = _channel_values(ort_q, data, axis, quant_type, np.asarray(scale), np.asarray(zero_point))
        name = quant_weight_name or f"{weight.name}{ort_q.quant_suffix}"
        return numpy_helper.from_array(np.asarray(q, dtype=np.int8).reshape(weight.dims), name)

    ort_q.qq.quantize_onnx_initializer = quantize_onnx_initializer
    try:
        yield
    finally:
        ort_q.qq.quantize_onnx_initializer = original


def quantize_qdq(model_bytes: bytes, feeds: Sequence[dict]) -> bytes:
    """The serialized model ``quantize_static(model, ..., quant_format=QDQ, per_channel=True,
    weight_type=QInt8, activation_type=QUInt8, calibrate_method=MinMax)`` writes for the serialized float model
    ``model_bytes`` calibrated on ``feeds`` (input name -> float32 array), made in memory.  Raises
    :class:`FastPathUnavailable` where this ORT's quantization internals are not the ones it reproduces."""
    import onnx

    ort_q = _ort_parts()
    try:
        model = onnx.shape_inference.infer_shapes(onnx.load_from_string(model_bytes))
        ort_q.add_infer_metadata(model)
        model = ort_q.update_opset_version(model, ort_q.QuantType.QInt8, ort_q.QuantType.QUInt8)
        ranges = _ranges(ort_q, model, feeds)
        q = _quantizer_class(ort_q)(model, True, False, ort_q.QuantType.QInt8, ort_q.QuantType.QUInt8, ranges, [],
                                    [], ort_q.op_types, {})
        with _vectorized_weights(ort_q):
            q.quantize_model()
        q.model.topological_sort()
        for init in q.model.model.graph.initializer:
            q.model._check_init(init, "end")
        return q.model.model.SerializeToString()
    except (AttributeError, TypeError) as exc:       # an ORT whose quantizer internals moved
        raise FastPathUnavailable(f"onnxruntime.quantization internals differ ({type(exc).__name__}: {exc})") from None
