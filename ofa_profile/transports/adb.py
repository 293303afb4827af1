"""The ``adb`` transport: Android phones, ops timed by TFLite's ``benchmark_model`` (runtime ``tflite-benchmark``).

:class:`BenchmarkModelProfiler` writes each op as a ``.tflite`` file (ofa-profile's own writer), pushes a chunk of
them and a TFLite ``benchmark_model`` binary to the phone, runs every block ``repeats`` times as
``taskset MASK benchmark_model --graph=B --num_threads=N --warmup_runs=W --num_runs=R --use_xnnpack=true`` and
parses benchmark_model's own output (:mod:`ofa_profile.benchmark_model`).  ``benchmark_model`` reports no per-run
times, so a block's ``raw_ms`` holds the mean of each invocation (R timed runs each).  The same profiler runs on
this machine with :class:`LocalTarget` (``local=True``): a host build of benchmark_model, or ai-edge-litert's
``litert-benchmark``.

Faults (phone unplugged, a binary printing something unexpected) raise
:class:`~ofa_profile.devices.DeviceError` / :class:`~ofa_profile.benchmark_model.BenchmarkOutputError` with one
line; what finished is in the journal and a rerun resumes.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .. import __version__
from ..benchmark_model import BenchmarkOutputError, BenchmarkRun, first_lines, parse_benchmark_output
from ..argsafety import path_problem, serial_problem
from ..devicespec import DeviceError, DeviceSpec, UnsafeDeviceError
from ..model_file import ModelFileError
from ..options import Option
from ..quantize import calibration_inputs, quantize_tflite, tflite_quantizer_available, tflite_quantizer_versions
from ..tflite import tflite_bytes, write_tflite
from ..timing import Measurement, TimingConfig, fingerprint
from .base import Profiler, register_transport

if TYPE_CHECKING:  # pragma: no cover
    from ..ops import Op
    from ..space import SubnetSpec

__all__ = ["AdbTarget", "LocalTarget", "BenchmarkModelProfiler", "adb_devices", "HOW_TO_CONNECT", "ADB_MISSING"]

HOW_TO_CONNECT = ("to connect one: enable USB debugging on the phone (Settings > About phone > tap Build number 7 "
                  "times, then Developer options > USB debugging), plug it in by USB, accept the 'Allow USB "
                  "debugging?' prompt, check that `adb devices` lists it as 'device', and rerun "
                  "(add --serial SERIAL when several are attached)")
ADB_MISSING = ("adb is not installed or not on PATH: install it (`apt-get install adb` on Debian/Ubuntu, or "
               "Android SDK platform-tools) or set OFA_PROFILE_ADB to its path")
DEFAULT_ADB_DIR = "/data/local/tmp/ofa-profile"
CHUNK_OPS = 32



def _adb_path() -> str | None:
    env = os.environ.get("OFA_PROFILE_ADB")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("adb")


def adb_devices(adb: str | None = None, timeout_s: float = 30) -> list[tuple[str, str, str]]:
    """[(serial, state, details)] from ``adb devices -l`` (starts the adb server if needed)."""
    adb = adb or _adb_path()
    if adb is None:
        raise DeviceError(ADB_MISSING)
    try:
        r = subprocess.run([adb, "devices", "-l"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"`adb devices` did not answer in {timeout_s:.0f} s; restart the server "
                          f"(`adb kill-server`) and retry") from None
    except OSError as exc:
        raise DeviceError(f"cannot run adb ({exc}); {ADB_MISSING}") from None
    if r.returncode != 0:
        raise DeviceError(f"`adb devices` failed (exit {r.returncode}): {first_lines(r.stderr + r.stdout)}")
    out = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1], " ".join(parts[2:])))
    return out


def _fmt_devices(devs: Sequence[tuple[str, str, str]]) -> str:
    if not devs:
        return "none"
    return ", ".join(f"{s} ({st}{', ' + _model(d) if _model(d) else ''})" for s, st, d in devs)


def _model(details: str) -> str:
    for part in details.split():
        if part.startswith("model:"):
            return part[6:]
    return ""


def _hint_note(spec: DeviceSpec, devs: Sequence[tuple[str, str, str]], serial: str) -> str:
    """A warning when the attached phone's model does not match the spec's ``adb.model_hint``."""
    hint = spec.transport_options.get("model_hint")
    model = _model({d[0]: d[2] for d in devs}.get(serial, ""))
    if hint and model and hint.lower().replace(" ", "_") not in model.lower():
        return f" (model {model}, but this spec is for {hint!r}: its LUT would be mislabelled)"
    return ""


def _binary_note(spec: DeviceSpec) -> str:
    return "" if spec.transport_options.get("benchmark_binary") else "; measuring needs --benchmark-binary PATH"


class AdbTarget:
    """One phone reached with the real ``adb`` binary."""

    kind = "adb"

    def __init__(self, serial: str | None = None, adb: str | None = None):
        why = serial is not None and serial_problem(serial)
        if why:
            raise UnsafeDeviceError(f"adb serial refused: {why}")
        self.serial = serial
        self._adb = adb

    @property
    def name(self) -> str:
        return f"phone {self.serial}" if self.serial else "phone"

    def connect(self) -> None:
        adb = self._adb or _adb_path()
        if adb is None:
            raise DeviceError(ADB_MISSING)
        self._adb = adb
        devs = adb_devices(adb)
        ready = [d[0] for d in devs if d[1] == "device"]
        if self.serial:
            state = {d[0]: d[1] for d in devs}.get(self.serial)
            if state == "device":
                return
            if state == "unauthorized":
                raise DeviceError(f"phone {self.serial} is attached but unauthorized: unlock it and accept the "
                                  f"'Allow USB debugging?' prompt, then rerun")
            raise DeviceError(f"phone {self.serial} is {'in state ' + state if state else 'not attached'}; attached "
                              f"devices: {_fmt_devices(devs)}; {HOW_TO_CONNECT}")
        if len(ready) == 1:
            self.serial = ready[0]
            return
        if len(ready) > 1:
            raise DeviceError(f"{len(ready)} phones attached ({_fmt_devices(devs)}): choose one with --serial SERIAL")
        raise DeviceError(f"no Android phone attached (adb devices lists: {_fmt_devices(devs)}); {HOW_TO_CONNECT}")

    def _argv(self, *args: str) -> list[str]:
        if self.serial is not None and serial_problem(self.serial):     # connect() may have set it from adb
            raise UnsafeDeviceError(f"adb serial refused: {serial_problem(self.serial)}")
        return [self._adb or "adb", "-s", self.serial or "", *args]

    def run(self, args: Sequence[str], timeout_s: float) -> tuple[int, str]:
        try:
            r = subprocess.run(self._argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return 124, f"adb {' '.join(args[:1])} timed out after {timeout_s:.0f} s"
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def shell(self, command: str, timeout_s: float) -> tuple[int, str]:
        return self.run(["shell", command], timeout_s)

    def push(self, paths: Sequence[Path], remote_dir: str, timeout_s: float = 600) -> None:
        rc, out = self.run(["shell", f"mkdir -p {shlex.quote(remote_dir)}"], 60)
        if rc == 0:
            rc, out = self.run(["push", *[str(p) for p in paths], remote_dir + "/"], timeout_s)
        if rc != 0:
            self._raise_if_lost()
            raise DeviceError(f"adb push to {self.name}:{remote_dir} failed: {first_lines(out)}")

    def lost(self) -> str | None:
        """None while the phone answers; else why not (one line)."""
        rc, out = self.run(["get-state"], 15)
        state = out.strip().splitlines()[-1].strip() if out.strip() else ""
        if rc == 0 and state == "device":
            return None
        return first_lines(out, 1) or f"adb get-state exit {rc}"

    def _raise_if_lost(self, done: str = "") -> None:
        why = self.lost()
        if why:
            raise DeviceError(f"{self.name} disconnected{done} (adb: {why}); finished blocks are kept in the "
                              f"journal: reconnect it (check `adb devices`) and rerun the same command to resume")

    def info(self) -> dict[str, Any]:
        props = ["ro.product.manufacturer", "ro.product.model", "ro.board.platform", "ro.product.cpu.abi",
                 "ro.build.version.release", "ro.build.fingerprint"]
        rc, out = self.shell("; ".join(f"echo \"@@{p}=$(getprop {p})\"" for p in props), 30)
        vals = {}
        for line in out.splitlines():
            if line.startswith("@@") and "=" in line:
                k, v = line[2:].split("=", 1)
                vals[k] = v.strip()
        if rc != 0 or len(vals) < len(props):
            self._raise_if_lost()
            raise DeviceError(f"cannot read the properties of {self.name}: {first_lines(out)}")
        return {"cpu_model": f"{vals['ro.product.manufacturer']} {vals['ro.product.model']} "
                             f"({vals['ro.board.platform']})",
                "machine": vals["ro.product.cpu.abi"], "os": f"Android {vals['ro.build.version.release']}",
                "build_fingerprint": vals["ro.build.fingerprint"], "serial": self.serial}


class LocalTarget:
    """This machine standing in for a phone: a folder is the device's folder, ``/bin/sh`` its shell.

    For a host (Linux) build of benchmark_model, or ai-edge-litert's ``litert-benchmark``.
    """

    kind = "local"
    name = "this machine"
    serial = None

    def __init__(self, root: str | Path | None = None):
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="ofa-profile-local-")
        self.root = Path(root) if root else Path(self._tmp.name)

    def connect(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _local(self, remote_dir: str) -> Path:
        p = Path(remote_dir)
        if p.is_absolute() and p.is_relative_to(self.root):
            return p                      # already mapped by remote_path()
        return self.root / remote_dir.lstrip("/")

    def shell(self, command: str, timeout_s: float) -> tuple[int, str]:
        try:
            r = subprocess.run(["/bin/sh", "-c", command], cwd=self.root, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout_s:.0f} s"
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def push(self, paths: Sequence[Path], remote_dir: str, timeout_s: float = 600) -> None:
        d = self._local(remote_dir)
        d.mkdir(parents=True, exist_ok=True)
        for p in paths:
            shutil.copy2(p, d / Path(p).name)

    def remote_path(self, remote_dir: str) -> str:
        return str(self._local(remote_dir))

    def lost(self) -> str | None:
        return None

    def info(self) -> dict[str, Any]:
        fp = fingerprint()
        return {k: fp[k] for k in ("cpu_model", "machine", "os", "cpu_flags", "logical_cpus") if k in fp}

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _core_mask(cores: Sequence[int]) -> str:
    return format(sum(1 << c for c in set(cores)), "x")


class BenchmarkModelProfiler(Profiler):
    """Blocks as .tflite files timed by a benchmark program on a phone (or on this machine)."""

    def __init__(self, device: DeviceSpec, target: Any, binary: Path, batch_size: int | None = None,
                 timing: TimingConfig | None = None, tool: str | None = None, precision: str = "fp32"):
        if precision != "fp32":
            ok, why = tflite_quantizer_available() if precision == "int8" else (False, f"no {precision} models")
            if not ok:
                raise DeviceError(f"device {device.name} cannot time {precision} blocks: {why}")
        self.precision = precision
        self.device = device
        self.target = target
        self.batch_size = batch_size or device.batch_size
        self.timing = timing or device.timing
        cfg = device.transport_options
        self.cores = tuple(cfg.get("cores") or ())
        self.repeats = int(cfg.get("repeats", 3))
        self.use_xnnpack = bool(cfg.get("use_xnnpack", True))
        self.tool = tool or ("litert-benchmark" if "litert-benchmark" in binary.name else "benchmark_model")
        remote = cfg.get("remote_dir") or DEFAULT_ADB_DIR
        for what, value in (("adb.remote_dir", remote), ("benchmark binary", str(binary))):
            why = path_problem(value)
            if why:
                raise UnsafeDeviceError(f"{what} refused: {why}")
        self.remote_dir = target.remote_path(remote) if hasattr(target, "remote_path") else remote
        if not binary.is_file():
            raise DeviceError(f"benchmark binary {binary} does not exist; pass the path of a benchmark_model "
                              f"built for the device with --benchmark-binary")
        self.binary = binary
        self._binary_sha = _sha256(binary)
        self._tmp = tempfile.TemporaryDirectory(prefix="ofa-profile-tflite-")
        self._remote_bin = f"{self.remote_dir}/{binary.name}"
        target.push([binary], self.remote_dir)
        rc, out = target.shell(f"chmod 755 {shlex.quote(self._remote_bin)}", 60)
        if rc != 0:
            raise DeviceError(f"cannot make {self._remote_bin} executable on {target.name}: {first_lines(out)}")
        self._info = target.info()

    # -- identity ---------------------------------------------------------------------------
    def versions(self) -> dict[str, str]:
        v = {self.tool: f"sha256:{self._binary_sha[:16]}"}
        if self.precision == "int8":
            v.update(tflite_quantizer_versions())
        return v

    def fingerprint(self) -> dict[str, Any]:
        fp = dict(self._info)
        fp.update({"num_threads": self.device.num_threads, "ofa_profile": __version__,
                   "transport": self.target.kind, "cores": list(self.cores), "use_xnnpack": self.use_xnnpack,
                   "runtime_versions": self.versions(),
                   "timing_method": f"{self.tool}: raw_ms = mean of each of {self.repeats} invocations of "
                                    f"{self.timing.min_runs} timed runs after {self.timing.warmup_runs} warm-up runs"})
        return fp

    # -- running ----------------------------------------------------------------------------
    def _argv(self, graph: str) -> list[str]:
        n, w, r = self.device.num_threads, self.timing.warmup_runs, self.timing.min_runs
        if self.tool == "litert-benchmark":
            return [self._remote_bin, f"--model={graph}", f"--num_threads={n}", f"--warmup_runs={w}",
                    f"--num_runs={r}"]
        return [self._remote_bin, f"--graph={graph}", f"--num_threads={n}", f"--warmup_runs={w}",
                "--warmup_min_secs=0", f"--num_runs={r}", "--min_secs=0",
                f"--use_xnnpack={'true' if self.use_xnnpack else 'false'}"]

    def _command(self, graph: str) -> str:
        argv = " ".join(shlex.quote(a) for a in self._argv(graph))
        if self.cores:
            argv = f"taskset {_core_mask(self.cores)} {argv}"
        loop = " ".join(str(i) for i in range(self.repeats))
        return f"for i in {loop}; do echo @@ofa-run; {argv} 2>&1; echo \"@@ofa-rc $?\"; done"

    def _timeout_s(self) -> float:
        return self.repeats * (60.0 + 10 * self.timing.max_time_s)

    def _run_graph(self, graph: str, what: str, progress: str) -> Measurement:
        rc, out = self.target.shell(self._command(graph), self._timeout_s())
        segments = _split_runs(out)
        if rc != 0 or len(segments) < self.repeats:
            if hasattr(self.target, "_raise_if_lost"):
                self.target._raise_if_lost(progress)
            if rc == 124:
                raise DeviceError(f"{self.tool} on {self.target.name} did not finish {what} in "
                                  f"{self._timeout_s():.0f} s{progress}; finished blocks are kept: rerun to resume")
            if len(segments) < self.repeats:   # the shell itself died or was cut off: a transport fault
                raise DeviceError(f"the shell on {self.target.name} failed (exit {rc}) during {what}{progress}: "
                                  f"{first_lines(out)!r}; finished blocks are kept: rerun to resume")
        runs: list[BenchmarkRun] = []
        for seg_rc, text in segments:
            source = f"{self.tool} on {self.target.name} ({what})"
            if seg_rc != 0:
                raise BenchmarkOutputError(f"{source} exited with status {seg_rc}; its output begins: "
                                           f"{first_lines(text)!r}")
            runs.append(parse_benchmark_output(text, source=source))
        return Measurement(tuple(r.avg_ms for r in runs), warmup_runs=self.timing.warmup_runs, stopped_by="max_runs")

    def _write(self, module_and_input: tuple[Any, Any], path: Path, seed: int = 0) -> None:
        """The .tflite file of a module (int8: quantized with ai-edge-quantizer, calibrated on the seeded inputs
        of :func:`ofa_profile.quantize.calibration_inputs`; benchmark_model runs it as it is)."""
        import torch

        module, example = module_and_input
        with torch.inference_mode():
            if self.precision == "int8":
                cal = [c.transpose(0, 2, 3, 1) for c in calibration_inputs(tuple(example.shape), seed)]
                quantize_tflite(tflite_bytes(module, example), path, cal)
            else:
                write_tflite(module, example, path)

    def measure_ops(self, ops: Sequence[Op], seed: int, on_result: Callable[[Op, Measurement], None]) -> None:
        from ..blocks import op_input, op_module

        total = len(ops)
        done = 0
        for start in range(0, total, CHUNK_OPS):
            chunk = list(ops[start:start + CHUNK_OPS])
            files = []
            for op in chunk:
                p = Path(self._tmp.name) / f"op-{hashlib.sha1(op.key.encode()).hexdigest()[:16]}.tflite"
                self._write((op_module(op, seed=seed), op_input(op, seed=seed, batch=self.batch_size)), p, seed)
                files.append(p)
            try:
                self.target.push(files, self.remote_dir)
            except DeviceError as exc:
                raise DeviceError(f"{exc} (after {done} of {total} blocks)") from None
            try:
                for op, p in zip(chunk, files):
                    m = self._run_graph(f"{self.remote_dir}/{p.name}", f"block {op.key}",
                                        f" after {done} of {total} blocks")
                    on_result(op, m)
                    done += 1
            finally:
                for p in files:
                    p.unlink(missing_ok=True)
                if self.target.lost() is None:
                    self.target.shell("rm -f " + " ".join(shlex.quote(f"{self.remote_dir}/{p.name}")
                                                          for p in files), 60)

    def measure_op(self, op: Op, seed: int) -> Measurement:
        got: list[Measurement] = []
        self.measure_ops([op], seed, lambda _op, m: got.append(m))
        return got[0]

    def measure_subnet(self, spec: SubnetSpec, seed: int, classes: int | None = None) -> Measurement:
        from ..blocks import subnet_input, subnet_module

        p = Path(self._tmp.name) / "subnet.tflite"
        self._write((subnet_module(spec, seed=seed, n_classes=classes), subnet_input(spec, seed=seed, batch=self.batch_size)), p, seed)
        self.target.push([p], self.remote_dir)
        try:
            return self._run_graph(f"{self.remote_dir}/{p.name}", f"subnet {spec.short()}", "")
        finally:
            p.unlink(missing_ok=True)

    def measure_file(self, model: Any, seed: int) -> Measurement:
        """A .tflite file pushed and timed by the benchmark program (``seed``: the program feeds its own input)."""
        if model.format != "tflite":
            raise ModelFileError(f"device {self.device.name} times models with {self.tool}, which reads .tflite "
                                 f"files, not {model.format} ({model.path}); bench the .tflite export instead")
        p = Path(self._tmp.name) / f"bench-{model.sha256[:16]}.tflite"
        shutil.copyfile(model.path, p)
        try:
            self.target.push([p], self.remote_dir)
            return self._run_graph(f"{self.remote_dir}/{p.name}", f"model {model.path.name}", "")
        finally:
            p.unlink(missing_ok=True)
            if self.target.lost() is None:
                self.target.shell(f"rm -f {shlex.quote(f'{self.remote_dir}/{p.name}')}", 60)

    def close(self) -> None:
        self._tmp.cleanup()
        if hasattr(self.target, "close"):
            self.target.close()


def _split_runs(out: str) -> list[tuple[int, str]]:
    """[(exit status, output)] of each ``@@ofa-run ... @@ofa-rc N`` segment of a shell transcript."""
    segs: list[tuple[int, str]] = []
    cur: list[str] | None = None
    for line in out.splitlines():
        s = line.strip()
        if s == "@@ofa-run":
            cur = []
        elif s.startswith("@@ofa-rc ") and cur is not None:
            try:
                rc = int(s.split()[1])
            except (IndexError, ValueError):
                rc = -1
            segs.append((rc, "\n".join(cur)))
            cur = None
        elif cur is not None:
            cur.append(line)
    return segs


def _reachable(spec: DeviceSpec) -> tuple[bool, str]:
    """Is a phone attached (and the one the spec names)? One line either way; cheap: ``adb devices``."""
    adb = _adb_path()
    if adb is None:
        return False, ADB_MISSING
    try:
        devs = adb_devices(adb)
    except DeviceError as exc:
        return False, str(exc)
    serial = spec.transport_options.get("serial")
    ready = [d for d in devs if d[1] == "device"]
    if serial:
        st = {d[0]: d[1] for d in devs}.get(serial)
        if st == "device":
            return True, f"phone {serial} attached{_hint_note(spec, devs, serial)}{_binary_note(spec)}"
        return False, (f"phone {serial} is {st}" if st else f"phone {serial} is not attached") + \
            f" (attached: {_fmt_devices(devs)})"
    if len(ready) == 1:
        return True, f"phone {ready[0][0]} attached{_hint_note(spec, devs, ready[0][0])}{_binary_note(spec)}"
    if len(ready) > 1:
        return True, f"{len(ready)} phones attached ({_fmt_devices(devs)}): pick one with --serial"
    return False, f"no Android device attached (adb devices: {_fmt_devices(devs)}); connect one by USB with " \
                  f"USB debugging on"


def _profiler(device: DeviceSpec, batch_size: int | None = None, *, benchmark_binary: str | None = None,
              serial: str | None = None, timing: TimingConfig | None = None, local: bool = False,
              target: Any = None, tool: str | None = None, precision: str = "fp32") -> Profiler:
    """A connected profiler for a phone: ``serial`` (or the spec's ``serial`` option) picks the phone,
    ``benchmark_binary`` (or the spec's ``benchmark_binary``) is the benchmark_model to push; ``local=True`` runs
    the same profiler on this machine (:class:`LocalTarget`)."""
    if target is None:
        if local:
            target = LocalTarget()
        else:
            target = AdbTarget(serial or device.transport_options.get("serial"))
            target.connect()          # no phone -> one line listing the attached ones and how to connect
    binary = benchmark_binary or device.transport_options.get("benchmark_binary")
    if not binary:
        raise DeviceError(f"device {device.name} needs a TFLite benchmark_model binary for the phone's CPU: pass "
                          f"--benchmark-binary PATH (prebuilt: TensorFlow's 'TFLite Model Benchmark Tool' "
                          f"nightly for android_aarch64/arm) or set adb.benchmark_binary in the spec")
    return BenchmarkModelProfiler(device, target, Path(binary).expanduser(), batch_size=batch_size,
                                  timing=timing, tool=tool, precision=precision)


OPTIONS = (
    Option("serial", "string", None, "adb serial of the phone to use; none: the one attached", nullable=True,
           check=serial_problem, flag="--serial"),
    Option("cores", "array", (), "CPU cores benchmark_model is pinned to with taskset; none: no pinning",
           items=Option("core", "integer", minimum=0)),
    Option("benchmark_binary", "string", None, "path of a benchmark_model binary built for the phone, to push",
           nullable=True, check=path_problem, flag="--benchmark-binary"),
    Option("remote_dir", "string", DEFAULT_ADB_DIR, "folder on the phone for the binary and the block files",
           check=path_problem),
    Option("use_xnnpack", "boolean", True, "benchmark_model --use_xnnpack"),
    Option("repeats", "integer", 3, "benchmark_model invocations per block (each one raw_ms sample)",
           minimum=1, maximum=100),
    Option("model_hint", "string", description="part of the phone's model name (a warning if it differs)"),
)

register_transport("adb", _profiler, _reachable, options=OPTIONS, section="adb",
                   description="an Android phone over adb, timed by TFLite benchmark_model (runtime tflite-benchmark)")
