"""PyTorch on a CUDA GPU as a runtime (``torch-cuda``): synchronised timing, batch 1 and 64, optional CUDA graphs.

GPU work is asynchronous: a call returns once its kernels are queued.  Every timed call is
therefore followed by :meth:`CudaRuntime.sync` (``torch.cuda.synchronize``) inside the timed
region (``measure_callable(fn, config, sync=runtime.sync)``), so a figure is launch + execution
+ synchronisation, as an application waiting for its result sees it.  At batch 1 the
launch overhead (a few us a kernel) is a large share of a block's time; a whole net pays one
synchronisation, a LUT sum one per block: ``benchmarks/gpu_lut.py`` models that.
:func:`measure_cuda_events` times the same calls with CUDA events (GPU-side time between two
markers) as a cross-check.

Compilation (:meth:`CudaRuntime.compile`) moves the module and input to the GPU, lets cuDNN
autotune (``cudnn.benchmark``) during warm-up, and with ``cuda_graphs=True`` captures one
forward pass in a CUDA graph (on a side stream, after warm-up, as PyTorch documents) so that
a call is one ``graph.replay()``.

Without a GPU, :meth:`CudaRuntime.check` says why in one line and nothing else runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import OfaProfileError
from .timing import Measurement, TimingConfig, measure_callable

__all__ = ["CudaRuntime", "CudaCompiled", "CudaEventClock", "measure_cuda_events", "cuda_status"]


def cuda_status(device_index: int = 0) -> tuple[bool, str]:
    """(is cuda:``device_index`` usable by torch here?, one-line reason)."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if getattr(torch.version, "cuda", None) is None and getattr(torch.version, "hip", None) is None:
        return False, (f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None); install a CUDA "
                       f"build of torch on a machine with an NVIDIA GPU")
    try:
        available = torch.cuda.is_available()
        n = torch.cuda.device_count() if available else 0
    except Exception as exc:  # driver errors surface here
        return False, f"CUDA initialisation failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if not available or n == 0:
        vis = os.environ.get("CUDA_VISIBLE_DEVICES")
        return False, (f"no usable CUDA GPU: torch.cuda.is_available() is False (torch {torch.__version__}, CUDA "
                       f"{torch.version.cuda}; no NVIDIA driver/GPU"
                       f"{'' if vis is None else f', CUDA_VISIBLE_DEVICES={vis!r}'})")
    if device_index >= n:
        return False, f"cuda:{device_index} does not exist ({n} GPU(s) visible); set cuda.device_index"
    p = torch.cuda.get_device_properties(device_index)
    return True, (f"cuda:{device_index} {p.name} ({p.total_memory / 2**30:.0f} GiB, compute capability "
                  f"{p.major}.{p.minor}, CUDA {torch.version.cuda})")


class CudaCompiled:
    """One module ready to run on the GPU; :meth:`run` queues one forward pass (asynchronous)."""

    def __init__(self, module: Any, example: Any, device_index: int, dtype: str, cuda_graphs: bool,
                 warmup_calls: int = 3):
        import torch

        self._torch = torch
        self.device = torch.device("cuda", device_index)
        tdtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
        torch.backends.cudnn.benchmark = True      # autotune conv algorithms for these exact shapes
        self.module = module.to(device=self.device, dtype=tdtype).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.x = example.to(device=self.device, dtype=tdtype)
        self.out = None
        self.graph = None
        with torch.inference_mode():
            for _ in range(warmup_calls):          # cuDNN autotuning happens here, not in timed calls
                self.out = self.module(self.x)
        torch.cuda.synchronize(self.device)
        if cuda_graphs:
            # capture after warm-up on a side stream (torch.cuda.graphs docs); inputs stay in self.x
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(warmup_calls):
                    self.out = self.module(self.x)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(self.graph):
                self.out = self.module(self.x)
            torch.cuda.synchronize(self.device)

    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        with self._torch.inference_mode():
            self.out = self.module(self.x)

    def output(self) -> Any:
        """The last output as a float32 numpy array (synchronises)."""
        self._torch.cuda.synchronize(self.device)
        return self.out.float().cpu().numpy()

    def close(self) -> None:
        self.graph = None
        self.module = self.x = self.out = None


class CudaRuntime:
    """Runtime ``torch-cuda``: the :mod:`ofa_profile.runtimes` interface (check/versions/compile) plus ``sync``."""

    name = "torch-cuda"

    def __init__(self, device_index: int = 0, cuda_graphs: bool = False, dtype: str = "float32"):
        if dtype not in ("float32", "float16"):
            raise OfaProfileError(f"cuda.dtype must be float32 or float16, not {dtype!r}")
        self.device_index = int(device_index)
        self.cuda_graphs = bool(cuda_graphs)
        self.dtype = dtype

    @classmethod
    def from_spec(cls, cuda: Mapping[str, Any] | None) -> "CudaRuntime":
        """From a device spec's ``runtime_options`` (device_index, cuda_graphs, dtype: declared where
        :mod:`ofa_profile.runtimes` registers ``torch-cuda``; the spec's ``cuda`` section is the older spelling)."""
        c = dict(cuda or {})
        return cls(c.get("device_index", 0), c.get("cuda_graphs", False), c.get("dtype", "float32"))

    def check(self) -> tuple[bool, str]:
        return cuda_status(self.device_index)

    def sync(self) -> None:
        """Wait for every queued kernel on this GPU (called after each timed call)."""
        import torch
        torch.cuda.synchronize(self.device_index)

    def versions(self) -> dict[str, str]:
        import torch
        v = {"torch": torch.__version__, "cuda": str(torch.version.cuda), "dtype": self.dtype,
             "cuda_graphs": str(self.cuda_graphs).lower()}
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(self.device_index)
            v.update({"cudnn": str(torch.backends.cudnn.version()), "gpu": p.name,
                      "gpu_capability": f"{p.major}.{p.minor}", "gpu_memory_gib": f"{p.total_memory / 2**30:.0f}"})
        return v

    #: the precisions compile() builds (fp16 is the spec's ``dtype`` option, not a precision of the LUT record)
    precisions = ("fp32",)

    def check_precision(self, precision: str) -> tuple[bool, str]:
        if precision in self.precisions:
            return True, f"runtime {self.name}: {precision}"
        return False, (f"runtime {self.name} times fp32 only, not {precision}; int8 is timed on onnxruntime and "
                       f"litert devices")

    def int8_versions(self) -> dict[str, str]:
        return {}

    def compile(self, module: Any, example: Any, num_threads: int = 1, workdir: Path | None = None,
                precision: str = "fp32", calibration: Any = None) -> CudaCompiled:
        ok, why = self.check_precision(precision)
        if not ok:
            raise OfaProfileError(why)
        ok, why = self.check()
        if not ok:
            raise OfaProfileError(f"runtime torch-cuda is unavailable: {why}")
        import torch
        torch.set_num_threads(max(1, num_threads))   # host-side threads of the launching process
        return CudaCompiled(module, example, self.device_index, self.dtype, self.cuda_graphs)


class CudaEventClock:
    """A :class:`~ofa_profile.timing.Clock` reading CUDA events recorded around each call on the current
    stream (GPU-side time).  Each call is waited for (``end.synchronize()``) before the next starts, so calls
    never overlap."""

    def __init__(self, device_index: int = 0):
        import torch

        self._torch = torch
        self.device_index = device_index
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def ready(self) -> None:
        self._torch.cuda.synchronize(self.device_index)

    def start(self) -> None:
        self._start.record()

    def stop_ms(self) -> float:
        self._end.record()
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


def measure_cuda_events(fn: Callable[[], Any], config: TimingConfig = TimingConfig(), device_index: int = 0) -> Measurement:
    """Time ``fn()`` with CUDA events recorded around each call on the current stream (GPU-side time):
    :func:`ofa_profile.timing.measure_callable` (the one timing loop, same stopping rules) with a
    :class:`CudaEventClock`."""
    return measure_callable(fn, config, clock=CudaEventClock(device_index))
