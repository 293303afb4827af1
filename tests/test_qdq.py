"""The in-memory QDQ quantization makes, byte for byte, the model onnxruntime's quantize_static writes: the int8
blocks a LUT times are the same models, only made for less CPU."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_profile.blocks import op_input, op_module
from ofa_profile.ops import ops_at_resolution
from ofa_profile.quantize import _quantize_static, calibration_inputs, quantize_onnx_bytes
from ofa_profile.runtimes import torch_to_onnx

pytest.importorskip("onnxruntime.quantization")


def _block_types():
    """One block of each kind at r=128 and r=224 (stem, MBConv k3/k5/k7, stride 1/2, SE, h-swish, skip, head)."""
    seen, out = set(), []
    for r in (128, 224):
        for op in ops_at_resolution("ofa-mbv3-w1.0", r):
            kind = (r, op.kind, getattr(op, "kernel", 0), getattr(op, "stride", 0), getattr(op, "se", 0),
                    getattr(op, "hs", 0), getattr(op, "idskip", 0))
            if kind not in seen:
                seen.add(kind)
                out.append(op)
    return out


def _reference(model: bytes, feeds, tmp: Path) -> bytes:
    (tmp / "f.onnx").write_bytes(model)
    return _quantize_static(tmp / "f.onnx", tmp / "q.onnx", feeds).read_bytes()


def test_lut_blocks_quantize_to_quantize_statics_bytes(tmp_path):
    import onnxruntime.quantization.qdq_quantizer as qq
    original = qq.quantize_onnx_initializer
    ops = _block_types()
    assert len(ops) >= 20
    for op in ops:
        m, x = op_module(op, seed=0), op_input(op, seed=0)
        buf = io.BytesIO()
        torch_to_onnx(m, x, buf)
        cal = calibration_inputs(tuple(x.shape))
        got = quantize_onnx_bytes(buf.getvalue(), cal)
        assert got == _reference(buf.getvalue(), [{"input": c} for c in cal], tmp_path), op.key
    assert qq.quantize_onnx_initializer is original          # ORT's own function is back after each call


def test_a_whole_subnet_with_batched_calibration_is_the_same_model(tmp_path):
    from ofa_model.export import onnx_export
    from ofa_model.supernet import OFAMobileNetV3
    from ofa_profile.space import get_space
    torch.manual_seed(0)
    model = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10).eval()
    spec = get_space("ofa-mbv3-w1.0").sample(2, resolution=128)
    model.set_active_subnet(spec)
    buf = io.BytesIO()
    onnx_export(model.get_active_subnet().eval(), torch.zeros(1, 3, 128, 128), buf)
    g = torch.Generator().manual_seed(1)
    cal = [torch.randn(4, 3, 128, 128, generator=g).numpy() for _ in range(3)]
    assert quantize_onnx_bytes(buf.getvalue(), cal) == _reference(buf.getvalue(), [{"input": c} for c in cal],
                                                                  tmp_path)


def test_where_the_fast_path_does_not_apply_quantize_static_runs(tmp_path, monkeypatch):
    """An onnxruntime whose quantizer internals moved: the in-memory path says so and quantize_static makes the
    model (the same bytes)."""
    import ofa_profile.qdq as qdq
    op = ops_at_resolution("ofa-mbv3-w1.0", 128)[3]
    m, x = op_module(op, seed=0), op_input(op, seed=0)
    buf = io.BytesIO()
    torch_to_onnx(m, x, buf)
    cal = calibration_inputs(tuple(x.shape))
    fast = quantize_onnx_bytes(buf.getvalue(), cal)
    monkeypatch.setattr(qdq, "_ort_parts", lambda: (_ for _ in ()).throw(qdq.FastPathUnavailable("moved")))
    assert quantize_onnx_bytes(buf.getvalue(), cal) == fast


def test_vectorized_channel_params_match_orts_per_channel_function():
    """Per-channel scales and zero points of awkward weights (a zero channel, a positive-only channel, tiny and
    huge values) equal ORT's per-channel computation, channel by channel."""
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_data_quant_params, quantize_nparray

    from ofa_profile.qdq import _channel_params, _channel_values, _ort_parts
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    w[1] = 0
    w[2] = np.abs(w[2])
    w[3] *= 1e-30
    w[4] *= 1e30
    parts = _ort_parts()
    zp, scale = _channel_params(parts, w, 0, TensorProto.INT8)
    q = _channel_values(parts, w, 0, TensorProto.INT8, scale, zp)
    for i in range(6):
        z, s = compute_data_quant_params(w[i].ravel(), TensorProto.INT8, True)
        assert zp[i] == z and scale[i].tobytes() == np.asarray(s, np.float32).tobytes(), i
        assert np.array_equal(q[i].ravel(), quantize_nparray(TensorProto.INT8, w[i].ravel(), scale[i], zp[i])), i
