"""A model file a user deploys (``.onnx``, ``.tflite``): checked before any device is touched, and opened by a
runtime of this machine for timing.

:func:`check_model_file` reads the file once and describes it as a :class:`ModelFile` (format, size, sha256,
inputs, classes, graph flavour where the file says it), or raises :class:`ModelFileError` with one line: a
missing, empty, unreadable or truncated file, a suffix that is not a model format, a file that is not what its
suffix says, an input of unknown size.  :func:`open_model` returns a :class:`~ofa_profile.runtimes.Compiled` of
it on ONNX Runtime or LiteRT with the project's session settings (those a measured block runs with) and seeded
inputs of the shapes and types the model declares.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import OfaProfileError
from .jsonio import JsonInputError, loads_strict
from .runtimes import Compiled
from .space import SpaceError, SubnetSpec
from .tflite import load_schema

__all__ = ["FORMATS", "FORMAT_RUNTIMES", "ModelFile", "ModelFileError", "check_model_file", "open_model"]

#: model file formats by suffix
FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
#: the runtimes of this project that read each format
FORMAT_RUNTIMES = {"onnx": ("onnxruntime",), "tflite": ("litert", "tflite-benchmark")}
_TFLITE_ID = b"TFL3"
_MAX_BYTES = 4 << 30


class ModelFileError(OfaProfileError):
    """A model file that cannot be timed (one line naming the file and the fix)."""


@dataclass(frozen=True)
class TensorInfo:
    """One input of a model: name, shape (batch already fixed), element type (numpy name)."""
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ModelFile:
    """A model file checked for timing."""
    path: Path
    format: str                          # "onnx" | "tflite"
    size_bytes: int
    sha256: str
    inputs: tuple[TensorInfo, ...]
    classes: int | None                  # last dimension of the first output (None: not a vector)
    graph: str | None                    # "ofa-profile" where the file says it was written by ofa-profile, else None
    arch: str | None = None              # the subnet spec JSON `ofa-profile export` stores in an ONNX file's metadata
    precision: str = "fp32"              # "int8": quantized (ONNX Q/DQ or QLinear ops; TFLite int8 tensors)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.inputs],
                "classes": self.classes, "graph": self.graph, "precision": self.precision}


def _fail(path: Path, why: str, fix: str = "pass an .onnx or .tflite model file") -> ModelFileError:
    return ModelFileError(f"model file {path} {why}; {fix}")


def _read(path: Path) -> bytes:
    if not path.exists():
        raise _fail(path, "does not exist", "check the path")
    if path.is_dir():
        raise _fail(path, "is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise _fail(path, f"has suffix {path.suffix or '(none)'!r}, which is not a model format this command times",
                    "pass an .onnx or .tflite file (a subnet spec or net.config: --arch FILE)")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise _fail(path, f"is {size / 2**30:.1f} GiB, larger than any model this command times")
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})", "check its permissions") from None
    if not data:
        raise _fail(path, "is empty (an interrupted copy?)", "export or copy it again")
    return data


def _dim(d: Any, i: int, batch: int, path: Path, name: str) -> int:
    if i == 0 and (not isinstance(d, int) or d <= 0 or d == batch):
        return batch
    if isinstance(d, int) and d > 0:
        return d
    raise _fail(path, f"has input {name!r} of unknown size in dimension {i} ({d!r})",
                "export it with a fixed input resolution (only the batch dimension may be free)")


def _onnx_info(path: Path, data: bytes, batch: int
               ) -> tuple[tuple[TensorInfo, ...], int | None, str | None, str | None, str]:
    import onnx
    from onnx import helper

    try:
        m = onnx.load_model_from_string(data)
    except Exception as exc:  # google.protobuf DecodeError and friends
        raise _fail(path, f"is not an ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'no detail'})",
                    "pass a file written by torch.onnx.export or `ofa-profile export --format onnx`") from None
    g = m.graph
    if not g.node or not g.output:
        raise _fail(path, "is not an ONNX model (it holds no graph: nodes and outputs missing)",
                    "pass a file written by torch.onnx.export or `ofa-profile export --format onnx`")
    inits = {t.name for t in g.initializer}
    ins = []
    for vi in g.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
        shape = tuple(_dim(d, i, batch, path, vi.name) for i, d in enumerate(dims))
        try:
            dt = str(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except Exception:
            raise _fail(path, f"has input {vi.name!r} of element type {tt.elem_type}, which cannot be fed",
                        "pass a model with numeric inputs") from None
        ins.append(TensorInfo(vi.name, shape, dt))
    if not ins:
        raise _fail(path, "has no input to feed", "pass a model with an input tensor")
    od = g.output[0].type.tensor_type.shape.dim
    classes = od[-1].dim_value if len(od) == 2 and od[-1].HasField("dim_value") else None
    meta = {p.key: p.value for p in m.metadata_props}
    graph = "ofa-profile" if "ofa_profile.arch" in meta else None
    return tuple(ins), classes, graph, meta.get("ofa_profile.arch"), \
        "int8" if any(n.op_type in _ONNX_INT8_OPS for n in g.node) else "fp32"


#: ONNX ops of a quantized model (QDQ or QOperator format, integer convolutions and matmuls)
_ONNX_INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                            "QLinearMatMul", "ConvInteger", "MatMulInteger"})


def _tflite_info(path: Path, data: bytes, batch: int
                 ) -> tuple[tuple[TensorInfo, ...], int | None, str | None, str | None, str]:
    if len(data) < 8 or data[4:8] != _TFLITE_ID:
        raise _fail(path, "is not a TFLite model (no 'TFL3' flatbuffer identifier)",
                    "pass a file written by a TFLite converter or `ofa-profile export --format tflite`")
    ins, classes, desc, int8 = _read_tflite_io(path, data)
    out = []
    for name, shape, dt in ins:
        out.append(TensorInfo(name, tuple(_dim(d, i, batch, path, name) for i, d in enumerate(shape)), dt))
    graph = "ofa-profile" if desc.startswith("ofa-profile") else None
    return tuple(out), classes, graph, None, "int8" if int8 else "fp32"


_TFLITE_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
                 10: "float64", 15: "uint32", 16: "uint16", 12: "uint64"}


def _read_tflite_io(path: Path, data: bytes) -> tuple[list[tuple[str, tuple, str]], int | None, str, bool]:
    """``([(name, shape signature, dtype)] of the inputs, classes, description, quantized)`` of a TFLite
    flatbuffer, read with the schema ai-edge-litert ships (pure Python: a corrupt file raises, it cannot crash the
    process); quantized: some tensor is int8/uint8 with quantization scales (an int8 model)."""
    try:
        schema = load_schema()
        m = schema.Model.GetRootAs(data, 0)
        if m.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        g = m.Subgraphs(0)

        def tensor(i: int) -> tuple[str, tuple, int]:
            t = g.Tensors(int(i))
            sig = t.ShapeSignatureAsNumpy() if not t.ShapeSignatureIsNone() else t.ShapeAsNumpy()
            shape = tuple(int(d) for d in (sig if not isinstance(sig, int) else ()))
            return (t.Name() or b"").decode("utf-8", "replace"), shape, t.Type()
        ins = [tensor(i) for i in (g.InputsAsNumpy() if not g.InputsIsNone() else [])]
        outs = [tensor(i) for i in (g.OutputsAsNumpy() if not g.OutputsIsNone() else [])]
        desc = (m.Description() or b"").decode("utf-8", "replace")
        int8_types = (schema.TensorType.INT8, schema.TensorType.UINT8)
        quantized = any(g.Tensors(i).Type() in int8_types and g.Tensors(i).Quantization() is not None
                        and g.Tensors(i).Quantization().ScaleLength() > 0 for i in range(g.TensorsLength()))
    except Exception as exc:
        raise _fail(path, f"is not a readable TFLite model ({_first(exc)}; truncated or corrupt?)",
                    "convert or export it again") from None
    if not ins or not outs:
        raise _fail(path, "is not a TFLite model with inputs and outputs", "convert or export it again")
    res = []
    for name, shape, tt in ins:
        if tt not in _TFLITE_TYPES:
            raise _fail(path, f"has input {name!r} of TFLite type {tt}, which cannot be fed",
                        "pass a model with numeric inputs")
        res.append((name, tuple(d if d > 0 else None for d in shape), _TFLITE_TYPES[tt]))
    oshape = outs[0][1]
    classes = oshape[-1] if len(oshape) == 2 and oshape[-1] > 0 else None
    return res, classes, desc, quantized


def check_model_file(path: str | Path, batch: int = 1) -> ModelFile:
    """Read and check ``path`` (a ``.onnx`` or ``.tflite``): :class:`ModelFile`, or :class:`ModelFileError`."""
    p = Path(path)
    data = _read(p)
    fmt = FORMATS[p.suffix.lower()]
    ins, classes, graph, arch, precision = (_onnx_info if fmt == "onnx" else _tflite_info)(p, data, batch)
    return ModelFile(p, fmt, len(data), hashlib.sha256(data).hexdigest(), ins, classes, graph, arch, precision)


def exported_subnet(path: str | Path) -> tuple[SubnetSpec, int]:
    """``(SubnetSpec, classes)`` of an ONNX file written by ``ofa-profile export`` (its metadata names the
    subnet; its output, the head); :class:`ModelFileError` for any other file."""
    model = check_model_file(path)
    if model.arch is None or model.classes is None:
        raise _fail(model.path, "does not name the subnet it holds (only an .onnx written by `ofa-profile export` "
                                "does)", "pass the subnet's spec JSON or net.config as --arch")
    try:
        obj = loads_strict(model.arch)
        spec = SubnetSpec.from_ofa({k: v for k, v in obj.items() if k != "space"}, space=obj["space"])
    except (JsonInputError, SpaceError, KeyError, TypeError, AttributeError) as exc:
        raise _fail(model.path, f"holds a subnet description that does not read ({exc})",
                    "pass the subnet's spec JSON as --arch") from None
    return spec, model.classes


def _inputs(model: ModelFile, seed: int) -> list[Any]:
    import numpy as np
    rng = np.random.default_rng(seed)
    out = []
    for t in model.inputs:
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            out.append(rng.standard_normal(t.shape).astype(dt))
        elif dt.kind in "iu":
            info = np.iinfo(dt)
            out.append(rng.integers(max(info.min, -128), min(info.max, 255), size=t.shape, endpoint=True).astype(dt))
        elif dt.kind == "b":
            out.append(rng.integers(0, 1, size=t.shape, endpoint=True).astype(dt))
        else:
            raise _fail(model.path, f"has input {t.name!r} of type {t.dtype}, which cannot be fed",
                        "pass a model with numeric inputs")
    return out


class _OrtFile(Compiled):
    def __init__(self, model: ModelFile, num_threads: int, seed: int):
        import onnxruntime as ort

        so = ort.SessionOptions()                   # the settings a measured block runs with (runtimes._OrtCompiled)
        so.intra_op_num_threads = max(1, int(num_threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(model.path), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise _fail(model.path, f"is refused by ONNX Runtime ({_first(exc)})",
                        "check it with `python -m onnx.checker` or export it again") from None
        self._xs = _inputs(model, seed)
        self._vals = [ort.OrtValue.ortvalue_from_numpy(x) for x in self._xs]
        self._binding = self._sess.io_binding()
        for t, v in zip(model.inputs, self._vals):
            self._binding.bind_ortvalue_input(t.name, v)
        for o in self._sess.get_outputs():
            self._binding.bind_output(o.name, "cpu")
        self._run: Callable[[Any], Any] = self._sess.run_with_iobinding
        try:
            self._run(self._binding)
        except Exception as exc:
            raise _fail(model.path, f"fails to run on ONNX Runtime ({_first(exc)})",
                        "check its inputs and export it again") from None

    def run(self) -> None:
        self._run(self._binding)

    def output(self) -> Any:
        self.run()
        return self._binding.copy_outputs_to_cpu()[0]

    def close(self) -> None:
        self._sess = self._binding = self._vals = None


class _LiteRTFile(Compiled):
    def __init__(self, model: ModelFile, num_threads: int, seed: int):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._it = Interpreter(model_path=str(model.path), num_threads=max(1, int(num_threads)))
            details = self._it.get_input_details()
            for d, t in zip(details, model.inputs):
                if tuple(d["shape"]) != t.shape:          # a free batch dimension: fixed to the batch asked for
                    self._it.resize_tensor_input(d["index"], list(t.shape))
            self._it.allocate_tensors()
            details = self._it.get_input_details()
            for d, x in zip(details, _inputs(model, seed)):
                self._it.set_tensor(d["index"], x)
            self._it.invoke()
        except ModelFileError:
            raise
        except Exception as exc:
            raise _fail(model.path, f"is refused by LiteRT ({_first(exc)})", "convert or export it again") from None
        self._out = self._it.get_output_details()[0]["index"]
        self._run: Callable[[], Any] = self._it.invoke

    def run(self) -> None:
        self._run()

    def output(self) -> Any:
        self.run()
        return self._it.get_tensor(self._out).copy()

    def close(self) -> None:
        self._it = self._run = None


def _first(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def open_model(model: ModelFile, runtime: str, num_threads: int = 1, seed: int = 0) -> Compiled:
    """The model on ``runtime`` (``onnxruntime`` for ONNX, ``litert`` for TFLite), ready to time; run once."""
    if runtime not in FORMAT_RUNTIMES[model.format]:
        raise ModelFileError(f"runtime {runtime} does not run {model.format} files ({model.path}); time it on a "
                             f"device whose runtime is {' or '.join(FORMAT_RUNTIMES[model.format])}")
    return (_OrtFile if model.format == "onnx" else _LiteRTFile)(model, num_threads, seed)


def describe_inputs(model: ModelFile) -> str:
    """``input 1x3x160x160 float32`` for text output."""
    return ", ".join(f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" for t in model.inputs)


