"""Export a subnet of the supernet, with its weights, to ONNX or TFLite.

* ONNX: ``torch.onnx.export(dynamo=False)`` of the extracted :class:`~ofa_model.supernet.MobileNetV3Subnet`
  (input ``input`` NCHW float32, output ``logits``; batch axis dynamic; the spec, classes and weights' sha256 in
  the model's metadata).
* TFLite: the project's own flatbuffer writer (:func:`ofa_profile.tflite.write_tflite`), which works on modules
  built from :mod:`ofa_profile.blocks`, as the extracted subnet is.  The TFLite model takes NHWC input.

Every file is written atomically and, with ``check=True``, run once by its runtime (onnxruntime /
ai_edge_litert) on a seeded input and compared with torch.

``precision="int8"`` writes the model quantized (:mod:`ofa_profile.quantize`: ONNX QDQ with float input and
output; TFLite with int8 input and output, their scale and zero point in the tensors' quantization parameters),
calibrated on ``calibration`` (float32 NCHW arrays: seeded training images for a supernet's subnet, seeded
random inputs for ``--random-weights``).  The check then reports the int8 model's difference from fp32 torch
(quantization error, not a bug).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ofa_profile import tflite
from ofa_profile.atomic import atomic_path
from ofa_profile.errors import OfaProfileError
from ofa_profile.quantize import (CALIBRATION_SAMPLES, calibration_inputs, dequantize_output, int8_recipe,
                                  quantize_input, quantize_onnx, quantize_tflite)
from ofa_profile.runtimes import torch_to_onnx
from ofa_profile.space import DEFAULT_SPACE, SubnetSpec

from .data import INT8_CALIB_IMAGES, int8_calibration_images, train_batch
from .evaldata import default_data, supernet_caches

__all__ = ["FORMATS", "ExportResult", "extract_subnet", "export_onnx", "export_tflite", "export_random",
           "export_subnet", "example_input", "export_arch"]

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class ExportResult:
    path: str
    format: str
    arch: str                      # spec.short()
    input_shape: tuple[int, ...]   # as the exported model takes it (NCHW for ONNX, NHWC for TFLite)
    max_abs_diff: float | None     # vs torch on a seeded input (None: not checked)
    max_rel_diff: float | None     # max_abs_diff / max |torch logits|
    recalibrated_on: int           # BN recalibration images (0: the supernet's running statistics)
    precision: str = "fp32"
    int8: Mapping[str, Any] | None = None   # int8: the quantization recipe (quantizer, calibration inputs)


def example_input(spec: SubnetSpec, seed: int = 0, batch: int = 1):
    import torch
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, spec.r, spec.r, generator=g)


def extract_subnet(model, spec: SubnetSpec, calib: Iterable | None = None, n_calib: int = 2000):
    """The static subnet of ``spec`` (eval mode, copied weights); BN statistics re-estimated from ``calib``
    (batches at ``spec.r``) when given.  Returns ``(subnet, images used for recalibration)``."""
    from .supernet import recalibrate_bn
    model.set_active_subnet(spec)
    sub = model.get_active_subnet().cpu().eval()
    n = recalibrate_bn(sub, calib, n_calib) if calib is not None else 0
    return sub.eval(), n


def _check_out_folder(out: Path) -> None:
    if not out.parent.exists():
        raise OfaProfileError(f"output folder {out.parent} does not exist; create it or choose another --out")


def _diffs(ref, got, what: str = "exported model") -> tuple[float, float]:
    """``(max |ref - got|, that / max |ref|)``.  A comparison that is not a finite number (NaN or infinite
    logits on either side: NaN weights, an overflow) is a failure, never a pass: :class:`OfaProfileError`."""
    import numpy as np
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        raise OfaProfileError(f"exported model returns shape {got.shape}, torch {ref.shape} (a bug: report it)")
    bad = [name for name, a in (("torch", ref), (what, got)) if not np.isfinite(a).all()]
    if bad or ref.size == 0:
        raise OfaProfileError(f"the check of the {what} against torch is undefined: "
                              + (f"{' and '.join(bad)} returned non-finite logits (NaN/Inf weights or an overflow)"
                                 if bad else "no logits") + "; nothing written")
    d = float(np.abs(ref - got).max())
    rd = d / max(1e-12, float(np.abs(ref).max()))
    if not (math.isfinite(d) and math.isfinite(rd)):
        raise OfaProfileError(f"the check of the {what} against torch is undefined (max |diff| {d}); nothing written")
    return d, rd


def onnx_export(sub, x, target, opset: int = 17) -> None:
    """A subnet as this module writes it (input ``input`` NCHW, output ``logits``, batch axis dynamic) to
    ``target``: a path or a binary file object; the project's one exporter (:func:`ofa_profile.runtimes.torch_to_onnx`)."""
    torch_to_onnx(sub, x, target, opset=opset, output_name="logits", dynamic_batch=True)


def export_onnx(sub, spec: SubnetSpec, out: str | os.PathLike, *, metadata: Mapping[str, str] | None = None,
                opset: int = 17, check: bool = True, seed: int = 0,
                calibration: Sequence | None = None) -> tuple[Path, float | None, float | None]:
    """Write ``sub`` as ONNX (int8 where ``calibration`` inputs are given); returns ``(path, max_abs_diff,
    max_rel_diff)`` (None when not checked)."""
    import onnx
    import torch
    out = Path(out)
    _check_out_folder(out)
    x = example_input(spec, seed)
    with atomic_path(out) as tmp:
        onnx_export(sub, x, str(tmp), opset)
        if calibration is not None:
            quantize_onnx(tmp, tmp, calibration)
        m = onnx.load(str(tmp))
        for k, v in (metadata or {}).items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
        onnx.save(m, str(tmp))
        diff = (None, None)
        if check:
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.log_severity_level = 3
            sess = ort.InferenceSession(str(tmp), so, providers=["CPUExecutionProvider"])
            got = sess.run(None, {"input": x.numpy()})[0]
            with torch.no_grad():
                diff = _diffs(sub(x).numpy(), got, "int8 ONNX model" if calibration is not None else "ONNX model")
    return out, diff[0], diff[1]


def export_tflite(sub, spec: SubnetSpec, out: str | os.PathLike, *, check: bool = True,
                  seed: int = 0, calibration: Sequence | None = None) -> tuple[Path, float | None, float | None]:
    """Write ``sub`` (built from the layer library: an extracted subnet or :func:`ofa_profile.blocks.subnet_module`)
    as TFLite (NHWC input) through :func:`ofa_profile.tflite.write_tflite`; int8 (ai-edge-quantizer) where
    ``calibration`` inputs (NCHW) are given."""
    import torch
    out = Path(out)
    _check_out_folder(out)
    x = example_input(spec, seed)
    with atomic_path(out) as tmp:
        if calibration is not None:
            with torch.no_grad():
                quantize_tflite(tflite.tflite_bytes(sub, x), tmp, [c.transpose(0, 2, 3, 1) for c in calibration])
        else:
            tflite.write_tflite(sub, x, tmp)
        diff = (None, None)
        if check:
            got = _run_tflite(tmp, x)
            with torch.no_grad():
                diff = _diffs(sub(x).numpy(), got, "int8 TFLite model" if calibration is not None else "TFLite model")
    return out, diff[0], diff[1]


def _run_tflite(path: Path, x_nchw):
    """Run a .tflite on an NCHW torch input (transposed to NHWC, as the writer's models take it)."""
    import numpy as np
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise OfaProfileError("checking a TFLite export needs ai-edge-litert (pip install ai-edge-litert); "
                              "or pass --no-check") from None
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.ascontiguousarray(x_nchw.numpy().transpose(0, 2, 3, 1), dtype=np.float32)   # the writer's NHWC
    if tuple(inp["shape"]) != tuple(x.shape):
        raise OfaProfileError(f"the TFLite model takes {tuple(inp['shape'])}, expected NHWC {x.shape} (a bug)")
    it.set_tensor(inp["index"], quantize_input(x, inp))      # an int8 model: quantized by its input's parameters
    it.invoke()
    out = it.get_output_details()[0]
    return dequantize_output(it.get_tensor(out["index"]), out)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise OfaProfileError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _write(sub, spec: SubnetSpec, fmt: str, out: str | os.PathLike, *, metadata: Mapping[str, Any], check: bool,
           seed: int, n_recalibrated: int, calibration: Sequence | None = None,
           int8: Mapping[str, Any] | None = None) -> ExportResult:
    """Write ``sub`` in ``fmt`` (ONNX with ``metadata`` and the arch; TFLite) and describe the file; int8 where
    ``calibration`` inputs are given (``int8``: the recipe, written in the ONNX metadata too)."""
    meta = {"ofa_profile.arch": json.dumps({"space": spec.space, **spec.to_ofa()}),
            **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}}
    if calibration is not None:
        meta["ofa_profile.precision"] = "int8"
        meta["ofa_profile.int8"] = json.dumps(dict(int8 or {}))
    if fmt == "onnx":
        p, d, rd = export_onnx(sub, spec, out, metadata=meta, check=check, seed=seed, calibration=calibration)
        shape = (1, 3, spec.r, spec.r)
    else:
        p, d, rd = export_tflite(sub, spec, out, check=check, seed=seed, calibration=calibration)
        shape = (1, spec.r, spec.r, 3)
    return ExportResult(str(p), fmt, spec.short(), shape, d, rd, n_recalibrated,
                        "int8" if calibration is not None else "fp32", dict(int8) if int8 else None)


def _int8_recipe(fmt: str, inputs: str) -> dict[str, Any]:
    return int8_recipe("onnxruntime" if fmt == "onnx" else "litert", inputs)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise OfaProfileError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")


def export_random(spec: SubnetSpec, fmt: str, out: str | os.PathLike, *, check: bool = True, seed: int = 0,
                  weights_seed: int = 0, n_classes: int | None = None, precision: str = "fp32") -> ExportResult:
    """Write ``spec`` with seeded random weights (and BN statistics) from the layer library: the shapes a latency
    measurement needs, for a family without trained weights at hand.  Any registered space.  ``n_classes``: the
    classifier head's outputs (default: the space's).  int8: calibrated on
    :func:`ofa_profile.quantize.calibration_inputs` (seeded random images, ``weights_seed``)."""
    from ofa_profile import blocks
    _check_format(fmt)
    _check_precision(precision)
    sub = blocks.subnet_module(spec, seed=weights_seed, n_classes=n_classes)
    cal = recipe = None
    if precision == "int8":
        cal = calibration_inputs((1, 3, spec.r, spec.r), weights_seed)
        recipe = _int8_recipe(fmt, f"{CALIBRATION_SAMPLES} seeded standard-normal images (random weights: no "
                                   f"dataset; ofa_profile.quantize.calibration_inputs, seed {weights_seed})")
    return _write(sub, spec, fmt, out, metadata={"ofa_profile.weights": f"random (seed {weights_seed})"},
                  check=check, seed=seed, n_recalibrated=0, calibration=cal, int8=recipe)


def export_subnet(model, spec: SubnetSpec, fmt: str, out: str | os.PathLike, *, calib: Iterable | None = None,
                  n_calib: int = 2000, check: bool = True, metadata: Mapping[str, Any] | None = None,
                  seed: int = 0, int8_calibration: Sequence | None = None,
                  int8: Mapping[str, Any] | None = None) -> ExportResult:
    """Extract ``spec`` from supernet ``model`` (BN recalibrated on ``calib`` when given) and write it; int8
    where ``int8_calibration`` inputs (NCHW arrays) are given (``int8``: their recipe)."""
    _check_format(fmt)
    sub, n = extract_subnet(model, spec, calib, n_calib)
    return _write(sub, spec, fmt, out, metadata=metadata or {}, check=check, seed=seed, n_recalibrated=n,
                  calibration=int8_calibration, int8=int8)


def export_arch(arch: str | os.PathLike, fmt: str, out: str | os.PathLike, *, supernet: str | None = None,
                space: str | None = None, calib_data: str | None = None, n_calib: int = 2000,
                cache_dir: str | None = None, check: bool = True, random_weights: bool = False, weights_seed: int = 0,
                log: Any = None, precision: str = "fp32", n_int8_calib: int | None = None) -> dict[str, Any]:
    """``ofa-profile export``: write the subnet of the spec JSON or net.config ``arch`` and return the summary
    (:class:`ExportResult`'s fields, the supernet and its sha256).

    With the weights of ``supernet`` (the bundled ones by default; ``space``: of an arch file that names none),
    BN recalibrated on ``n_calib`` seeded images of ``calib_data`` when given (else the supernet's statistics are
    kept, which ``log(str)`` is told); with ``random_weights``, seeded random weights of any family
    (``supernet`` None, ``weights`` naming the seed).

    ``precision="int8"``: quantized, calibrated on ``n_int8_calib`` seeded images of the training set
    (``calib_data``, else the shared Imagenette's; :func:`ofa_model.data.int8_calibration_images`), or on
    seeded random images with ``random_weights``."""
    import dataclasses

    _check_precision(precision)
    if random_weights:
        spec = SubnetSpec.load(arch, space=space or DEFAULT_SPACE)
        res = export_random(spec, fmt, out, check=check, weights_seed=weights_seed, precision=precision)
        return {**dataclasses.asdict(res), "supernet": None, "weights": f"random (seed {weights_seed})",
                "space": spec.space}
    from .bundle import load_supernet

    model, info = load_supernet(supernet, space=space)
    spec = SubnetSpec.load(arch, space=space or info.space)
    calib = None
    int8_cal = recipe = None
    if precision == "int8":
        n8 = n_int8_calib or INT8_CALIB_IMAGES
        src = default_data("train", calib_data)
        tr8, _ = supernet_caches(info, src, None, cache_dir)
        int8_cal = int8_calibration_images(tr8, spec.r, n8)
        recipe = _int8_recipe(fmt, f"{n8} seeded images of {Path(src).name} (centre crop at r={spec.r}; "
                                   f"ofa_model.data.int8_calibration_images)")
    if calib_data:
        import numpy as np
        import torch

        tr, _ = supernet_caches(info, calib_data, None, cache_dir)
        order = np.random.default_rng(0).permutation(len(tr))[:max(1, n_calib)]
        gen = torch.Generator().manual_seed(0)
        calib = (train_batch(tr, np.sort(order[i:i + 100]), spec.r, gen)[0] for i in range(0, len(order), 100))
    elif log is not None:
        log("note: no --calib-data: the subnet keeps the supernet's BN statistics (lower accuracy); "
            "pass the training set to recalibrate them")
    res = export_subnet(model, spec, fmt, out, calib=calib, n_calib=n_calib, check=check,
                        metadata={"supernet_sha256": info.sha256, "classes": list(info.classes or [])},
                        int8_calibration=int8_cal, int8=recipe)
    return {**dataclasses.asdict(res), "supernet": info.path, "supernet_sha256": info.sha256}
