"""``ofa-profile bench``: the end-to-end latency of the artefact a user ships.

A model file (``.onnx``, ``.tflite``: :mod:`ofa_profile.model_file`) or a subnet (a spec JSON or net.config,
built as ``ofa-profile export --random-weights`` builds it: the project's layer library, seeded weights, the
classifier head of ``classes`` outputs, written in the format the device's runtime reads) is timed on any device
(local runtimes, adb, ssh) by the device's own profiler, with the device spec's timing settings, the way
``calibrate`` times a subnet: ``rounds`` passes, each one median of the timing loop, and the figure is the pass
with the lowest median (:mod:`ofa_profile.replicates`' policy: load from elsewhere only ever slows a run down).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ofa_model.export import export_random, onnx_export

from .devicespec import DeviceSpec
from .errors import OfaProfileError
from .model_file import FORMAT_RUNTIMES, ModelFile, check_model_file, describe_inputs
from .space import SubnetSpec, get_space
from .timed import Timed
from .timing import Measurement
from .transports import make_profiler

__all__ = ["BenchResult", "bench_model", "arch_format"]


def _quiet(msg: str) -> None:
    pass


@dataclass(frozen=True)
class BenchResult:
    """One bench: the pass with the lowest median (its raw times), the medians of all passes, what was timed."""
    device: DeviceSpec
    runtime: str                         # the runtime that ran the model (ssh: the board's)
    measurement: Measurement             # the pass with the lowest median
    round_medians_ms: tuple[float, ...]
    fingerprint: Mapping[str, Any]
    model: ModelFile | None              # the file timed (None: a subnet timed in torch, no file)
    arch: SubnetSpec | None              # the subnet, with --arch
    timed: Timed | None                  # None: a file whose graph flavour it does not record
    seed: int

    def as_dict(self) -> dict[str, Any]:
        m = self.measurement
        return {"median_ms": round(m.median_ms, 6), "iqr_ms": round(m.iqr_ms, 6), "runs": m.count,
                "mean_ms": round(m.mean_ms, 6), "stopped_by": m.stopped_by,
                "round_medians_ms": [round(x, 6) for x in self.round_medians_ms], "rounds": len(self.round_medians_ms),
                "device": self.device.name, "transport": self.device.transport, "runtime": self.runtime,
                "timing": self.device.timing.as_dict(), "seed": self.seed,
                "model": self.model.as_dict() if self.model is not None else None,
                "arch": ({"space": self.arch.space, **self.arch.to_ofa()} if self.arch is not None else None),
                "timed": self.timed.to_json() if self.timed is not None else None,
                "timed_label": self.timed.label(self.runtime) if self.timed is not None else None,
                "fingerprint": dict(self.fingerprint)}

    def describe(self) -> list[str]:
        """The text output: the figure, what was timed, where."""
        m = self.measurement
        what = (f"{self.model.path} ({self.model.format}, input {describe_inputs(self.model)})" if self.model
                else f"subnet {self.arch.short()} (torch module)" if self.arch else "?")
        if self.arch is not None and self.model is not None:
            what = f"subnet {self.arch.short()} as {self.model.format}, input {describe_inputs(self.model)}"
        rounds = ", ".join(f"{x:.3f}" for x in self.round_medians_ms)
        label = (self.timed.label(self.runtime) if self.timed is not None else
                 f"{self.runtime}, {self.device.num_threads} thread(s); graph flavour not recorded in the file"
                 + (f", {self.model.classes}-class head" if self.model and self.model.classes else ""))
        return [f"{m.median_ms:.3f} ms median (IQR {m.iqr_ms:.3f} ms, {m.count} runs; lowest of {len(self.round_medians_ms)}"
                f" round median(s): {rounds} ms) for {what} on {self.device.name}",
                f"timed: {label}"]


def _runtime_of(device: DeviceSpec) -> str:
    """The runtime that runs models on ``device`` (an ssh board: its remote runtime)."""
    return str(device.transport_options.get("remote_runtime") or device.runtime)


def arch_format(device: DeviceSpec) -> str | None:
    """The model format ``export`` writes for ``device``'s runtime (None: a runtime that reads no file: torch)."""
    rt = _runtime_of(device)
    for fmt, rts in FORMAT_RUNTIMES.items():
        if rt in rts:
            return fmt
    return None


def _file_timed(model: ModelFile, device: DeviceSpec) -> Timed | None:
    if model.graph is None or model.classes is None:
        return None
    return Timed(graph=model.graph, classes=model.classes, precision=model.precision, threads=device.num_threads)


def _write_arch(spec: SubnetSpec, fmt: str, classes: int, seed: int, folder: Path, graph: str,
                precision: str = "fp32") -> Path:
    """The subnet as ``export --random-weights --seed SEED [--precision int8]`` writes it (the layer library,
    seeded weights; the same function), with a head of ``classes`` outputs; graph ``ofa``: built from OFA's own
    modules (:mod:`ofa_profile.ofa_graph`) and exported through ``torch.onnx`` (opset 17), as an OFA user exports
    it (fp32 only)."""
    out = folder / f"subnet.{fmt}"
    if graph == "ofa":
        from .blocks import subnet_input
        from .ofa_graph import ofa_subnet_module
        onnx_export(ofa_subnet_module(spec, seed=seed, n_classes=classes), subnet_input(spec, seed=seed), str(out),
                    opset=17)
        return out
    export_random(spec, fmt, out, check=False, weights_seed=seed, n_classes=classes, precision=precision)
    return out


def bench_model(device: DeviceSpec, model_path: str | Path | None = None, *, arch: str | Path | None = None,
                space: str | None = None, classes: int | None = None, graph: str = "ofa-profile", rounds: int = 2,
                seed: int = 0, batch_size: int | None = None, profiler_options: Mapping[str, Any] | None = None,
                log: Callable[[str], None] = _quiet, precision: str = "fp32") -> BenchResult:
    """Time ``model_path`` or the subnet ``arch`` on ``device`` (see the module's text).  Every input is checked
    before the device is connected: a bad file or arch is one :class:`~ofa_profile.errors.OfaProfileError` line."""
    if (model_path is None) == (arch is None):
        raise OfaProfileError("give a model file or --arch FILE (one of them)")
    if rounds < 1:
        raise OfaProfileError(f"rounds must be >= 1, got {rounds}")
    batch = batch_size or device.batch_size
    spec = None
    model = None
    timed: Timed | None = None
    if model_path is not None:
        if classes is not None or graph != "ofa-profile" or space is not None or precision != "fp32":
            raise OfaProfileError("--classes, --graph, --space and --precision describe a subnet built from --arch; "
                                  "a model file is timed as it is (its precision read from the file)")
        model = check_model_file(model_path, batch=batch)
        fmt = model.format
        if arch_format(device) != fmt:
            raise OfaProfileError(f"device {device.name} runs {_runtime_of(device)}, which does not read {fmt} "
                                  f"files; bench it on a device whose runtime is {' or '.join(FORMAT_RUNTIMES[fmt])}")
        timed = _file_timed(model, device)
    else:
        spec = SubnetSpec.load(arch, space=space or device.space)
        n = get_space(spec.space).n_classes if classes is None else classes
        timed = Timed(graph=graph, classes=n, precision=precision, threads=device.num_threads)
        fmt = arch_format(device)
        if graph == "ofa" and fmt == "tflite":
            raise OfaProfileError(f"--graph ofa builds OFA's modules, which are exported through torch.onnx; device "
                                  f"{device.name} reads .tflite: bench it on an onnxruntime or torch device")
        if precision != "fp32" and (fmt is None or graph != "ofa-profile"):
            raise OfaProfileError(f"--precision {precision} builds the subnet as `export --precision {precision}` "
                                  f"does: the ofa-profile graph on a device that runs a model file (onnxruntime, "
                                  f"litert), not {'an fp32 torch module on ' + device.name if fmt is None else 'graph ' + graph}")
    with tempfile.TemporaryDirectory(prefix="ofa-profile-bench-") as tmp:
        if spec is not None and fmt is not None:
            model = check_model_file(_write_arch(spec, fmt, timed.classes, seed, Path(tmp), graph, precision),
                                     batch=batch)
        with make_profiler(device, batch_size=batch, **dict(profiler_options or {})) as prof:
            if model is None:
                prof.use_graph(graph)
            fp = prof.fingerprint()
            runs: list[Measurement] = []
            for r in range(rounds):
                m = (prof.measure_file(model, seed) if model is not None
                     else prof.measure_subnet(spec, seed, timed.classes))
                runs.append(m)
                log(f"bench round {r + 1}/{rounds}: median {m.median_ms:.3f} ms (IQR {m.iqr_ms:.3f} ms, "
                    f"{m.count} runs)")
    best = min(runs, key=lambda m: m.median_ms)
    if spec is not None and model is not None:   # the temporary file is gone: name what it was
        model = replace(model, path=Path(f"{Path(str(arch)).name} built as {model.format}"))
    return BenchResult(device, _runtime_of(device), best, tuple(m.median_ms for m in runs), fp, model, spec, timed,
                       seed)
