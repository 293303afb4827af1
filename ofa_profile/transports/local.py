"""The ``local`` transport: ops as real modules of exact shape, compiled by a runtime of this machine
(:func:`ofa_profile.runtimes.get_runtime`: torch, onnxruntime, litert, torch-cuda ...)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..devicespec import DeviceError, DeviceSpec
from ..model_file import open_model
from ..quantize import calibration_inputs
from ..runtimes import get_runtime
from ..timed import GRAPHS
from ..timing import Measurement, TimingConfig, fix_malloc, measure_callable, set_threads
from .base import Profiler, register_transport

if TYPE_CHECKING:  # pragma: no cover
    from ..ops import Op
    from ..space import SubnetSpec

__all__ = ["LocalProfiler"]


class LocalProfiler(Profiler):
    """Ops as real modules of exact shape, compiled by a runtime of this machine.

    ``precision="int8"``: every op and subnet is quantized before it is timed (:mod:`ofa_profile.quantize`; an
    op calibrated on :func:`~ofa_profile.quantize.calibration_inputs` of its input shape and the run's seed)."""

    def __init__(self, device: DeviceSpec, batch_size: int | None = None, timing: TimingConfig | None = None,
                 precision: str = "fp32"):
        self.device = device
        self.batch_size = batch_size or device.batch_size
        self.timing = timing or device.timing
        self.runtime = get_runtime(device.runtime, device.runtime_options or None)
        ok, why = self.runtime.check()
        if not ok:
            raise DeviceError(f"device {device.name} cannot run here: {why}")
        ok, why = self.runtime.check_precision(precision)
        if not ok:
            raise DeviceError(f"device {device.name} cannot time {precision} blocks: {why}")
        self.precision = precision
        fix_malloc()
        set_threads(device.num_threads)
        self._tmp = tempfile.TemporaryDirectory(prefix="ofa-profile-")
        self._sync = getattr(self.runtime, "sync", None)

    def versions(self) -> dict[str, str]:
        v = self.runtime.versions()
        if self.precision == "int8":
            v.update(self.runtime.int8_versions())
        return v

    def _time(self, module: Any, example: Any, seed: int, min_time_s: float = 0.0) -> Measurement:
        cal = calibration_inputs(tuple(example.shape), seed) if self.precision == "int8" else None
        compiled = self.runtime.compile(module, example, num_threads=self.device.num_threads,
                                        workdir=Path(self._tmp.name), precision=self.precision, calibration=cal)
        try:
            return measure_callable(compiled.run, self.timing, sync=self._sync, min_time_s=min_time_s)
        finally:
            compiled.close()

    graphs = GRAPHS       # the project's layer library and OFA's own modules (ofa_profile.ofa_graph)

    def measure_op(self, op: Op, seed: int) -> Measurement:
        from ..blocks import op_input, op_module
        if self.graph == "ofa":
            from ..ofa_graph import ofa_op_module as op_module
        return self._time(op_module(op, seed=seed), op_input(op, seed=seed, batch=self.batch_size), seed)

    def measure_subnet(self, spec: SubnetSpec, seed: int, classes: int | None = None) -> Measurement:
        from ..blocks import subnet_input, subnet_module
        if self.graph == "ofa":
            from ..ofa_graph import ofa_subnet_module as subnet_module
        return self._time(subnet_module(spec, seed=seed, n_classes=classes),
                          subnet_input(spec, seed=seed, batch=self.batch_size), seed, self.timing.subnet_min_time_s)

    def measure_file(self, model: Any, seed: int) -> Measurement:
        compiled = open_model(model, self.device.runtime, num_threads=self.device.num_threads, seed=seed)
        try:
            return measure_callable(compiled.run, self.timing, sync=self._sync,
                                    min_time_s=self.timing.subnet_min_time_s)
        finally:
            compiled.close()

    def close(self) -> None:
        self._tmp.cleanup()


def _profiler(device: DeviceSpec, batch_size: int | None = None, *, timing: TimingConfig | None = None,
              precision: str = "fp32", **_other: Any) -> LocalProfiler:
    """The local profiler (options of other transports, such as ``serial``, do not apply here and are ignored)."""
    return LocalProfiler(device, batch_size=batch_size, timing=timing, precision=precision)


def _reachable(spec: DeviceSpec) -> tuple[bool, str]:
    return get_runtime(spec.runtime, spec.runtime_options or None).check()


register_transport("local", _profiler, _reachable, description="this machine, in this process")
