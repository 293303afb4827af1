"""Int8 models: post-training static quantization of the models the runtimes time and ``export`` writes.

========== ===========================================================================================
onnxruntime ``onnxruntime.quantization.quantize_static``: QDQ format, int8 weights per output channel
            (symmetric), uint8 activations (asymmetric), MinMax calibration.  The graph is the one
            :func:`ofa_profile.runtimes.torch_to_onnx` writes (BN already folded, HardSwish/HardSigmoid
            ops), quantized as it is: ORT's optional pre-processing costs 0.3 s a block and changes nothing
            in these graphs.  Input and output stay float32 (a QuantizeLinear at the input, a
            DequantizeLinear at the output).
litert      ``ai-edge-quantizer`` (recipe ``static_wi8_ai8``: int8 weights per output channel, int8
            activations, MinMax calibration) on the float ``.tflite`` of :func:`ofa_profile.tflite.write_tflite`.
            Its profiler-based calibration mode (the min/max tracked in LiteRT's C++ engine): the same
            statistics as its default mode, which keeps every tensor and reads each in Python (relative
            differences ~1e-7, float64 against float32 averaging), at a quarter of the CPU time.
            Input and output are int8: feed ``round(x / scale) + zero_point`` (the input tensor's
            quantization parameters) and read ``(y - zero_point) * scale``.
========== ===========================================================================================

Calibration inputs (the activation ranges): for a LUT block, :data:`CALIBRATION_SAMPLES` seeded
standard-normal tensors of the block's input shape, drawn like the timed input but from their own seeds
(:func:`calibration_inputs`); for a whole subnet (``export``/``evaluate --precision int8``) the caller passes
preprocessed training images.  :func:`int8_recipe` is the provenance record of both (written in a LUT's
provenance and beside an exported model).

The quantizers are imported inside the functions (heavy; ``ai-edge-quantizer`` is absent on some machines).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from .atomic import atomic_path, write_bytes_atomic
from .errors import OfaProfileError
from .qdq import FastPathUnavailable, quantize_qdq

__all__ = ["CALIBRATION_SAMPLES", "QuantizeError", "calibration_inputs", "quantize_onnx", "quantize_onnx_bytes",
           "quantize_tflite",
           "int8_recipe", "QUANTIZABLE_RUNTIMES", "quantize_input", "dequantize_output", "tflite_quantizer_available",
           "tflite_quantizer_versions"]

#: seeded inputs a block's activation ranges are calibrated on
CALIBRATION_SAMPLES = 8
#: the runtimes whose models this module quantizes (and so whose blocks can be timed in int8)
QUANTIZABLE_RUNTIMES = ("onnxruntime", "litert")
_LITERT_RECIPE = "static_wi8_ai8"
_SIGNATURE = "serving_default"


class QuantizeError(OfaProfileError):
    """A model that cannot be quantized here (a missing quantizer package, a quantizer failure): one line."""


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def int8_recipe(runtime: str, calibration: str | None = None, samples: int = CALIBRATION_SAMPLES) -> dict[str, Any]:
    """How ``runtime``'s int8 models are made: quantizer and version, formats, calibration method and inputs.
    ``calibration`` describes the inputs (default: the blocks' seeded standard-normal inputs)."""
    inputs = calibration or (f"{samples} seeded standard-normal inputs of each block's input shape "
                             f"(ofa_profile.quantize.calibration_inputs: the timed input's distribution, own seeds)")
    if runtime == "onnxruntime":
        return {"quantizer": f"onnxruntime.quantization.quantize_static {_dist_version('onnxruntime') or '?'}",
                "format": "QDQ", "weights": "int8, per output channel, symmetric",
                "activations": "uint8, per tensor, asymmetric", "calibration_method": "MinMax",
                "calibration_inputs": inputs, "io": "float32"}
    if runtime in ("litert", "tflite-benchmark"):
        return {"quantizer": f"ai-edge-quantizer {_dist_version('ai-edge-quantizer') or '?'} ({_LITERT_RECIPE})",
                "format": "TFLite int8", "weights": "int8, per output channel, symmetric",
                "activations": "int8, per tensor, asymmetric",
                "calibration_method": "MinMax (profiler-based calibration mode)", "calibration_inputs": inputs, "io": "int8 (input and output tensors' scale and zero point)"}
    raise QuantizeError(f"runtime {runtime} has no int8 models here; int8 is available for "
                        f"{', '.join(QUANTIZABLE_RUNTIMES)}")


def calibration_inputs(shape: Sequence[int], seed: int = 0, n: int = CALIBRATION_SAMPLES) -> list[Any]:
    """``n`` seeded float32 standard-normal NCHW arrays of ``shape``: a block's calibration inputs (the timed
    input's distribution, drawn from seeds of their own: ``seeded_generator("int8-calibration", seed, i)``)."""
    import torch

    from .blocks import seeded_generator
    return [torch.randn(tuple(int(d) for d in shape), generator=seeded_generator("int8-calibration", int(seed), i))
            .numpy() for i in range(int(n))]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantizers' own chatter (a pre-processing hint, progress bars, a size report) kept off the terminal."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:200]}" if msg else type(exc).__name__


def quantize_onnx_bytes(model: bytes, inputs: Sequence[Any], input_name: str = "input") -> bytes:
    """The float ONNX model ``model`` (serialized) quantized as described in the module docstring, calibrated on
    ``inputs`` (float32 NCHW arrays fed to ``input_name``), serialized.  Made in memory by
    :func:`ofa_profile.qdq.quantize_qdq` (the bytes ``quantize_static`` writes, for a quarter of its CPU time);
    where that path does not apply to this onnxruntime, by ``quantize_static`` itself."""
    if not inputs:
        raise QuantizeError("int8 calibration needs at least one input")
    try:
        from onnxruntime.quantization import quantize_static  # noqa: F401
    except Exception as exc:
        raise QuantizeError(f"onnxruntime.quantization does not import here ({_first_line(exc)}); install "
                            f"onnxruntime: pip install onnxruntime") from None
    import numpy as np

    feeds = [{input_name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs]
    try:
        with _quiet():
            return quantize_qdq(bytes(model), feeds)
    except FastPathUnavailable:
        pass
    except Exception as exc:
        raise QuantizeError(f"ONNX Runtime could not quantize the model to int8 ({_first_line(exc)})") from None
    import tempfile
    with tempfile.TemporaryDirectory(prefix="ofa-profile-int8-") as d:
        (Path(d) / "fp32.onnx").write_bytes(model)
        _quantize_static(Path(d) / "fp32.onnx", Path(d) / "int8.onnx", feeds)
        return (Path(d) / "int8.onnx").read_bytes()


def quantize_onnx(src: str | os.PathLike, dst: str | os.PathLike, inputs: Sequence[Any],
                  input_name: str = "input") -> Path:
    """Quantize the float ONNX model ``src`` into ``dst`` (atomically): :func:`quantize_onnx_bytes`."""
    return write_bytes_atomic(dst, quantize_onnx_bytes(Path(src).read_bytes(), inputs, input_name))


def _quantize_static(src: Path, dst: Path, feeds: list[dict]) -> Path:
    """``onnxruntime.quantization.quantize_static`` of ``src`` into ``dst`` (atomically) with this module's
    recipe, calibrated on ``feeds``: the reference :func:`ofa_profile.qdq.quantize_qdq` reproduces."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self._it, None)

    with atomic_path(dst) as tmp, _quiet():
        # the calibrator writes an augmented model beside its temp folder: keep it in dst's folder
        try:
            quantize_static(str(src), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as exc:
            raise QuantizeError(f"ONNX Runtime could not quantize {src} to int8 ({_first_line(exc)})") from None
    return dst


def quantize_tflite(src: str | os.PathLike | bytes, dst: str | os.PathLike, inputs: Sequence[Any]) -> Path:
    """Quantize the float ``.tflite`` model ``src`` (a path or its bytes; written by
    :func:`ofa_profile.tflite.write_tflite`, which names its signature ``serving_default``) into ``dst``
    (atomically) with ``ai-edge-quantizer``, calibrated on ``inputs`` (float32 NHWC arrays)."""
    if not inputs:
        raise QuantizeError("int8 calibration needs at least one input")
    try:
        with _quiet():
            from ai_edge_quantizer import calibrator, quantizer, recipe
    except Exception as exc:
        raise QuantizeError(f"ai-edge-quantizer does not import here ({_first_line(exc)}); install it: "
                            f"pip install 'ofa-profile[int8]' (or pip install ai-edge-quantizer)") from None
    import numpy as np

    model = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else str(src)
    cal = {_SIGNATURE: [{"input": np.ascontiguousarray(x, dtype=np.float32)} for x in inputs]}
    try:
        with _quiet():
            q = quantizer.Quantizer(model, getattr(recipe, _LITERT_RECIPE)())
            qsvs = q.calibrate(cal, num_threads=1, mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
            result = q.quantize(qsvs, enable_progress_report=False)
    except Exception as exc:
        raise QuantizeError(f"ai-edge-quantizer could not quantize the .tflite model to int8 "
                            f"({_first_line(exc)})") from None
    return write_bytes_atomic(dst, result.quantized_model)


def tflite_quantizer_available() -> tuple[bool, str]:
    """(does ``ai-edge-quantizer`` import here?, one-line reason): what int8 ``.tflite`` models need."""
    try:
        with _quiet():
            import ai_edge_quantizer.quantizer  # noqa: F401
    except Exception as exc:
        return False, (f"int8 .tflite models need ai-edge-quantizer, which does not import here ({_first_line(exc)}); "
                       f"install it: pip install ai-edge-quantizer")
    return True, f"ai-edge-quantizer {_dist_version('ai-edge-quantizer') or '?'}"


def tflite_quantizer_versions() -> dict[str, str]:
    v = _dist_version("ai-edge-quantizer")
    return {"ai-edge-quantizer": v} if v else {}


def quantize_input(x: Any, detail: dict) -> Any:
    """A float array as the (possibly int8) input tensor of ``detail`` (a LiteRT ``get_input_details()`` row)
    takes it: unchanged for a float tensor, else ``round(x / scale) + zero_point`` clipped to the type."""
    import numpy as np
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero, info.min, info.max).astype(dtype)


def dequantize_output(y: Any, detail: dict) -> Any:
    """A LiteRT output tensor as float32: ``(y - zero_point) * scale`` for an integer tensor."""
    import numpy as np
    if np.asarray(y).dtype.kind == "f":
        return np.asarray(y, np.float32)
    scale, zero = detail["quantization"]
    return ((np.asarray(y, np.float32) - zero) * scale).astype(np.float32)
