"""CPU runtimes behind one interface: PyTorch eager, ONNX Runtime, LiteRT (XNNPACK).

Usage::

    rt = get_runtime("onnxruntime")
    ok, why = rt.check()                      # available here? (why not, in one line)
    c = rt.compile(module, example, num_threads=1)   # precision="int8": quantized first
    c.run()                                   # one inference: the timed call
    y = c.output(); c.close()                 # numpy, NCHW / (N, classes) as torch returns

``module`` / ``example`` come from :mod:`ofa_profile.blocks` (``op_module``/``op_input`` or
``subnet_module``/``subnet_input``); ``example`` is NCHW.  ``precision="int8"`` (ONNX Runtime and LiteRT:
:attr:`Runtime.precisions`) quantizes the exported model first (:mod:`ofa_profile.quantize`), calibrated on
``calibration`` (float32 NCHW arrays; default: :func:`ofa_profile.quantize.calibration_inputs` of the example's
shape); the timed call and :meth:`Compiled.output` stay float in, float out.

========== ======================================================================================
torch      eager PyTorch, ``torch.set_num_threads``, ``torch.inference_mode``; BN not folded (eager
           does not fold)
onnxruntime legacy TorchScript exporter (``dynamo=False``, opset 17), ``CPUExecutionProvider``,
           intra-op threads = ``num_threads``, inter-op 1, sequential, all graph optimisations
           (BN folded); input and output pre-bound with IOBinding so :meth:`Compiled.run` is one call
           into ORT
litert     :func:`ofa_profile.tflite.write_tflite` (NHWC, BN folded, no TensorFlow) +
           ``ai_edge_litert.interpreter.Interpreter`` (XNNPACK on by default), ``num_threads``;
           input set once, :meth:`Compiled.run` = ``invoke()``
torch-cuda :class:`ofa_profile.cuda.CudaRuntime` (via :func:`get_runtime` only)
========== ======================================================================================

A registry (:func:`register_runtime`, :func:`list_runtimes`, :func:`runtime_info`) names every runtime a device
spec may use, with its factory and the transports that run it; :func:`get_runtime` is a lookup in it.  Adding a
runtime is one module with its :class:`Runtime` subclass, one :func:`register_runtime` call at the end of this
module (a factory that imports that module on first use, as ``torch-cuda``'s does, and the
:class:`~ofa_profile.options.Option` records of the options it takes: a spec's ``runtime_options`` are checked
against them on load and passed to the factory), its name in the device schema's ``runtime`` enum (a test
compares the two), a spec file and tests.

Heavy packages are imported inside the methods, so this module imports where some are missing
(no ai-edge-litert on the GPU machine); :meth:`Runtime.check` says so truthfully.
"""
from __future__ import annotations

import functools
import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from .atomic import atomic_path, write_bytes_atomic
from .cuda import CudaRuntime
from .errors import OfaProfileError
from .options import Option
from .plugins import load_plugins
from .quantize import calibration_inputs, dequantize_output, quantize_input, quantize_onnx_bytes, quantize_tflite
from .tflite import WRITER_VERSION, tflite_bytes, write_tflite

__all__ = ["Runtime", "Compiled", "TorchRuntime", "OnnxRuntime", "LiteRTRuntime", "RUNTIMES", "get_runtime",
           "RuntimeInfo", "register_runtime", "list_runtimes", "runtime_info", "RuntimeUnavailable", "ONNX_OPSET"]

ONNX_OPSET = 17


class RuntimeUnavailable(OfaProfileError):
    """A runtime whose packages are missing or broken on this machine."""


def _first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0]}" if msg else type(exc).__name__


@functools.lru_cache(maxsize=None)
def _dist_version(dist: str) -> str | None:
    """Installed version of a distribution (cached: reading package metadata takes ~3 ms, and compile()
    checks its runtime before every block)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class Compiled:
    """One module ready to run on a fixed example input."""

    def run(self) -> None:
        """One inference on the example input (the timed call; minimal overhead)."""
        raise NotImplementedError

    def output(self) -> Any:
        """The output on the example input as a float32 numpy array, laid out as torch returns it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the session/interpreter and delete model files this object wrote."""

    def __enter__(self) -> "Compiled":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Runtime:
    """Base class: ``name``, :meth:`check`, :meth:`versions`, :meth:`compile`."""

    name: str = ""
    #: (import name, pip distribution) of every package compile() needs
    requires: tuple[tuple[str, str], ...] = ()
    #: the precisions compile() builds ("fp32", and "int8" where this runtime's models are quantized here)
    precisions: tuple[str, ...] = ("fp32",)
    #: further packages compile() needs for int8 (import name, pip distribution)
    int8_requires: tuple[tuple[str, str], ...] = ()

    def check(self) -> tuple[bool, str]:
        """(available here?, one-line reason / description)."""
        import importlib
        found = []
        for mod, dist in self.requires:
            try:
                importlib.import_module(mod)
            except Exception as exc:  # ImportError, or e.g. a numpy ABI mismatch at import
                return False, f"runtime {self.name} needs {dist}, which does not import here ({_first_line(exc)}); " \
                              f"install it: pip install {dist}"
            found.append(f"{dist} {_dist_version(dist) or '?'}")
        return True, f"runtime {self.name}: " + ", ".join(found)

    def _require(self) -> None:
        ok, why = self.check()
        if not ok:
            raise RuntimeUnavailable(why)

    def versions(self) -> dict[str, str]:
        """Versions of the packages that produce this runtime's numbers."""
        out = {}
        for _, dist in self.requires + (("numpy", "numpy"),):
            v = _dist_version(dist)
            if v is not None:
                out[dist] = v
        return out

    def check_precision(self, precision: str) -> tuple[bool, str]:
        """(can this runtime build ``precision`` models here?, one-line reason)."""
        if precision not in self.precisions:
            return False, (f"runtime {self.name} times {', '.join(self.precisions)} only, not {precision}; "
                           f"int8 is timed on onnxruntime and litert devices")
        if precision == "int8":
            import importlib
            for mod, dist in self.int8_requires:
                try:
                    importlib.import_module(mod)
                except Exception as exc:
                    return False, (f"int8 on runtime {self.name} needs {dist}, which does not import here "
                                   f"({_first_line(exc)}); install it: pip install {dist}")
        return True, f"runtime {self.name}: {precision}"

    def _require_precision(self, precision: str) -> None:
        ok, why = self.check_precision(precision)
        if not ok:
            raise RuntimeUnavailable(why)

    def int8_versions(self) -> dict[str, str]:
        """Versions of the packages that make this runtime's int8 models (a LUT's fingerprint records them)."""
        return {dist: v for _, dist in self.int8_requires if (v := _dist_version(dist)) is not None}

    def compile(self, module: Any, example: Any, num_threads: int = 1, workdir: str | os.PathLike | None = None,
                precision: str = "fp32", calibration: Sequence[Any] | None = None) -> Compiled:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _workfile(workdir: str | os.PathLike | None, suffix: str) -> tuple[Path, Path | None]:
    """A fresh file path in ``workdir`` (or in a new temp dir, returned second so close() removes it)."""
    own = None
    if workdir is None:
        own = Path(tempfile.mkdtemp(prefix="ofa-profile-rt-"))
        workdir = own
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="model-", suffix=suffix, dir=d)
    os.close(fd)
    return Path(name), own


def _cleanup(path: Path | None, own_dir: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    if own_dir is not None:
        shutil.rmtree(own_dir, ignore_errors=True)


# -- torch eager ----------------------------------------------------------------------------------

class _TorchCompiled(Compiled):
    def __init__(self, module: Any, example: Any):
        import torch
        self._torch = torch
        self._module = module.eval()
        self._x = example.contiguous()
        self._mode = torch.inference_mode

    def run(self) -> None:
        with self._mode():
            self._module(self._x)

    def output(self) -> Any:
        with self._mode():
            return self._module(self._x).detach().float().cpu().numpy()

    def close(self) -> None:
        self._module = self._x = None


class TorchRuntime(Runtime):
    """PyTorch eager on the CPU (BN not folded)."""

    name = "torch"
    requires = (("torch", "torch"),)

    def compile(self, module: Any, example: Any, num_threads: int = 1, workdir: Any = None,
                precision: str = "fp32", calibration: Sequence[Any] | None = None) -> Compiled:
        self._require()
        self._require_precision(precision)
        import torch
        torch.set_num_threads(max(1, int(num_threads)))
        for p in module.parameters():
            p.requires_grad_(False)
        return _TorchCompiled(module, example)


# -- ONNX Runtime ---------------------------------------------------------------------------------

def torch_to_onnx(module: Any, example: Any, target: Any, *, opset: int = ONNX_OPSET, output_name: str = "output",
                  dynamic_batch: bool = False) -> None:
    """The project's one ONNX exporter: the legacy TorchScript exporter (``dynamo=False``: 0.03-0.45 s, no
    onnxscript), input ``input`` (NCHW), output ``output_name``, static shapes unless ``dynamic_batch``.
    ``target`` is a path or a binary file object (in-memory evaluation writes to a BytesIO)."""
    import torch

    axes = {"input": {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), target, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=[output_name], dynamic_axes=axes,
                          do_constant_folding=True)


def export_onnx(module: Any, example: Any, path: str | os.PathLike, opset: int = ONNX_OPSET) -> Path:
    """:func:`torch_to_onnx` to ``path``, written atomically (the profiler's block and subnet models)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch_to_onnx(module, example, str(tmp), opset=opset)
    return path


class _OrtCompiled(Compiled):
    def __init__(self, path: Path, own_dir: Path | None, example: Any, num_threads: int):
        import numpy as np
        import onnxruntime as ort

        self._path, self._own_dir = path, own_dir
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(num_threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self._sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        x = np.ascontiguousarray(example.detach().cpu().float().numpy())
        meta = self._sess.get_outputs()[0]
        out = np.empty([int(d) for d in meta.shape], dtype=np.float32)
        self._x_val = ort.OrtValue.ortvalue_from_numpy(x)
        self._y_val = ort.OrtValue.ortvalue_from_numpy(out)
        self._x, self._y = x, out  # keep the memory the OrtValues point to alive
        self._binding = self._sess.io_binding()
        self._binding.bind_ortvalue_input(self._sess.get_inputs()[0].name, self._x_val)
        self._binding.bind_ortvalue_output(meta.name, self._y_val)
        self._run: Callable[[Any], Any] = self._sess.run_with_iobinding

    def run(self) -> None:
        self._run(self._binding)

    def output(self) -> Any:
        self.run()
        return self._y.copy()

    def close(self) -> None:
        self._sess = self._binding = self._x_val = self._y_val = None
        _cleanup(self._path, self._own_dir)
        self._path = self._own_dir = None


class OnnxRuntime(Runtime):
    """ONNX Runtime CPU execution provider, exported by torch's legacy exporter."""

    name = "onnxruntime"
    requires = (("torch", "torch"), ("onnxruntime", "onnxruntime"))
    precisions = ("fp32", "int8")

    def check(self) -> tuple[bool, str]:
        ok, why = super().check()
        if not ok:
            return ok, why
        import onnxruntime as ort
        if "CPUExecutionProvider" not in ort.get_available_providers():  # pragma: no cover
            return False, "onnxruntime has no CPUExecutionProvider here; reinstall it: pip install onnxruntime"
        return ok, why

    def versions(self) -> dict[str, str]:
        v = super().versions()
        if "onnxruntime" not in v:  # onnxruntime-gpu and friends
            try:
                import onnxruntime as ort
                v["onnxruntime"] = ort.__version__
            except Exception:
                pass
        onnx = _dist_version("onnx")
        if onnx:
            v["onnx"] = onnx
        v["onnx_opset"] = str(ONNX_OPSET)
        return v

    def compile(self, module: Any, example: Any, num_threads: int = 1, workdir: Any = None,
                precision: str = "fp32", calibration: Sequence[Any] | None = None) -> Compiled:
        self._require()
        self._require_precision(precision)
        path, own = _workfile(workdir, ".onnx")
        try:
            if precision == "int8":     # exported, quantized in memory, written once
                buf = io.BytesIO()
                torch_to_onnx(module, example, buf)
                write_bytes_atomic(path, quantize_onnx_bytes(buf.getvalue(), _calibration(calibration, example)))
            else:
                export_onnx(module, example, path)
            return _OrtCompiled(path, own, example, num_threads)
        except BaseException:
            _cleanup(path, own)
            raise


def _calibration(calibration: Sequence[Any] | None, example: Any) -> list[Any]:
    """The int8 calibration inputs as float32 NCHW numpy arrays: ``calibration`` (tensors or arrays), else the
    seeded block inputs of the example's shape (:func:`ofa_profile.quantize.calibration_inputs`)."""
    if calibration is None:
        return calibration_inputs(tuple(example.shape))
    return [c.detach().cpu().float().numpy() if hasattr(c, "detach") else c for c in calibration]


# -- LiteRT ---------------------------------------------------------------------------------------

class _LiteRTCompiled(Compiled):
    def __init__(self, path: Path, own_dir: Path | None, example: Any, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._path, self._own_dir = path, own_dir
        self._it = Interpreter(model_path=str(path), num_threads=max(1, int(num_threads)))
        self._it.allocate_tensors()
        x = example.detach().cpu().float()
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)  # the writer's models take NHWC
        inp = self._it.get_input_details()[0]
        self._it.set_tensor(inp["index"], quantize_input(x.numpy(), inp))   # int8 models: quantized once here
        self._out = self._it.get_output_details()[0]
        self._out_index = self._out["index"]
        self._run: Callable[[], Any] = self._it.invoke

    def run(self) -> None:
        self._run()

    def output(self) -> Any:
        self.run()
        y = dequantize_output(self._it.get_tensor(self._out_index), self._out)
        return (y.transpose(0, 3, 1, 2) if y.ndim == 4 else y).copy()

    def close(self) -> None:
        self._it = self._run = None
        _cleanup(self._path, self._own_dir)
        self._path = self._own_dir = None


class LiteRTRuntime(Runtime):
    """LiteRT (TFLite) interpreter with the default XNNPACK delegate, models from the direct writer."""

    name = "litert"
    requires = (("torch", "torch"), ("ai_edge_litert.interpreter", "ai-edge-litert"))
    precisions = ("fp32", "int8")
    int8_requires = (("ai_edge_quantizer", "ai-edge-quantizer"),)

    def versions(self) -> dict[str, str]:
        v = super().versions()
        v["tflite_writer"] = WRITER_VERSION
        return v

    def compile(self, module: Any, example: Any, num_threads: int = 1, workdir: Any = None,
                precision: str = "fp32", calibration: Sequence[Any] | None = None) -> Compiled:
        self._require()
        self._require_precision(precision)
        import torch

        path, own = _workfile(workdir, ".tflite")
        try:
            with torch.inference_mode():
                if precision == "int8":
                    nhwc = [x.transpose(0, 2, 3, 1) for x in _calibration(calibration, example)]
                    quantize_tflite(tflite_bytes(module, example), path, nhwc)
                else:
                    write_tflite(module, example, path)
            return _LiteRTCompiled(path, own, example, num_threads)
        except BaseException:
            _cleanup(path, own)
            raise


# -- the registry -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuntimeInfo:
    """One registered runtime.

    ``factory(options)`` makes the :class:`Runtime` (``options``: the device spec's ``runtime_options``, checked
    against ``options`` with their defaults filled in, or None); None for a runtime that only a transport's own
    profiler runs (``tflite-benchmark``: the phone's benchmark_model).  ``transports`` are the transports a device
    spec may pair it with (checked when a spec loads); ``description`` is one line for listings and help texts.
    ``options`` are the options it takes (:class:`~ofa_profile.options.Option`: name, type, default, bounds);
    ``section`` is the name of a spec section that may hold them instead of ``runtime_options`` (``cuda``: the
    older spelling of ``torch-cuda``'s, still read), documented in the device schema (a test compares the two).
    """

    name: str
    factory: Callable[[Mapping[str, Any] | None], Runtime] | None
    transports: tuple[str, ...]
    description: str = ""
    options: tuple[Option, ...] = ()
    section: str | None = None


_REGISTRY: dict[str, RuntimeInfo] = {}


def register_runtime(name: str, factory: Callable[[Mapping[str, Any] | None], Runtime] | None, *,
                     transports: Sequence[str] = ("local", "ssh"), description: str = "",
                     options: Sequence[Option] = (), section: str | None = None,
                     replace: bool = False) -> RuntimeInfo:
    """Add a runtime under ``name`` (see :class:`RuntimeInfo`); the device schema's ``runtime`` enum must name it
    (tests/test_architecture.py checks the shipped schema against this registry)."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"runtime {name!r} is already registered")
    info = RuntimeInfo(name, factory, tuple(transports), description, tuple(options), section)
    _REGISTRY[name] = info
    return info


def list_runtimes(transport: str | None = None) -> list[str]:
    """The registered runtime names, in registration order (those a ``transport`` runs, if given); installed
    plug-ins' runtimes included (:func:`ofa_profile.plugins.load_plugins`)."""
    load_plugins()
    return [n for n, i in _REGISTRY.items() if transport is None or transport in i.transports]


def runtime_info(name: str) -> RuntimeInfo:
    """The registry's entry for ``name``; an unknown name raises :class:`OfaProfileError` listing the known ones."""
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise OfaProfileError(f"unknown runtime {name!r}: use one of {', '.join(list_runtimes())}") from None


def get_runtime(name: str, options: Mapping[str, Any] | None = None) -> Runtime:
    """The runtime called ``name`` (``options`` = a device spec's ``runtime_options``).  A name that is
    not registered, or one that runs only through a device's own profiler, raises :class:`OfaProfileError`."""
    load_plugins()
    info = _REGISTRY.get(name)
    if info is None or info.factory is None:
        here = [n for n, i in _REGISTRY.items() if i.factory is not None]
        remote = "; ".join(f"{n} runs on a device through the {'/'.join(i.transports)} transport"
                           for n, i in _REGISTRY.items() if i.factory is None)
        msg = f"unknown runtime {name!r}: use one of {', '.join(here)}"
        raise OfaProfileError(msg + (f" ({remote})" if remote else ""))
    return info.factory(options)


def _cuda(options: Mapping[str, Any] | None) -> Runtime:
    return CudaRuntime.from_spec(options)


#: the CPU runtimes of this module, by name (one instance each: they hold no state)
RUNTIMES: dict[str, Runtime] = {r.name: r for r in (TorchRuntime(), OnnxRuntime(), LiteRTRuntime())}

for _rt in RUNTIMES.values():
    register_runtime(_rt.name, lambda options, rt=_rt: rt,
                     description=(type(_rt).__doc__ or "").strip().splitlines()[0])
register_runtime("tflite-benchmark", None, transports=("adb",),
                 description="TFLite benchmark_model on an Android phone (ofa_profile.transports.adb)")
register_runtime("torch-cuda", _cuda, transports=("local",),
                 description="PyTorch on this machine's CUDA GPU, timed with CUDA events (ofa_profile.cuda)",
                 options=(Option("device_index", "integer", 0, "CUDA device ordinal", minimum=0),
                          Option("cuda_graphs", "boolean", False, "replay captured CUDA graphs"),
                          Option("dtype", "string", "float32", "weights and inputs", choices=("float32", "float16"))),
                 section="cuda")
del _rt
