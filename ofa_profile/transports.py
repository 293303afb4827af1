"""Devices that are not this process: Android phones over adb, Linux boards over SSH.

A *transport* says where ops run; the LUT format, the journal and resumption are the same
as for local devices (:func:`ofa_profile.measure.measure_lut`).

Phones (``transport: adb``, runtime ``tflite-benchmark``)
    :class:`BenchmarkModelProfiler` writes each op as a ``.tflite`` file (ofa-profile's own
    writer), pushes a chunk of them and a TFLite ``benchmark_model`` binary to the phone, runs
    every block ``repeats`` times as
    ``taskset MASK benchmark_model --graph=B --num_threads=N --warmup_runs=W --num_runs=R
    --use_xnnpack=true`` and parses benchmark_model's own output
    (:mod:`ofa_profile.benchmark_model`).  ``benchmark_model`` reports no per-run times, so
    a block's ``raw_ms`` holds the mean of each invocation (R timed runs each).
    The same profiler runs on this machine with :class:`LocalTarget` (``local=True``): a
    host build of benchmark_model, or ai-edge-litert's ``litert-benchmark``.

Boards (``transport: ssh``)
    :class:`SshProfiler` copies this package's Python sources to the board (a few hundred KB,
    once per version) and runs :mod:`ofa_profile.remote_worker` there with the board's own
    Python and runtime, one ssh session and one worker process per profiler; results stream
    back one JSON line per op and reach the journal as they arrive, so a dropped connection
    loses only the op in flight.

Faults (device unplugged, ssh failing, a binary printing something unexpected) raise
:class:`~ofa_profile.devices.DeviceError` / :class:`~ofa_profile.benchmark_model.BenchmarkOutputError`
with one line; what finished is in the journal and a rerun resumes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .benchmark_model import BenchmarkOutputError, BenchmarkRun, first_lines, parse_benchmark_output
from .devices import DeviceError, DeviceSpec
from .measure import Profiler
from .ops import Op
from .space import SubnetSpec
from .timing import Measurement, TimingConfig

__all__ = ["reachable", "make_remote_profiler", "AdbTarget", "LocalTarget", "BenchmarkModelProfiler", "SshTarget",
           "SshProfiler", "adb_devices", "HOW_TO_CONNECT"]

HOW_TO_CONNECT = ("to connect one: enable USB debugging on the phone (Settings > About phone > tap Build number 7 "
                  "times, then Developer options > USB debugging), plug it in by USB, accept the 'Allow USB "
                  "debugging?' prompt, check that `adb devices` lists it as 'device', and rerun "
                  "(add --serial SERIAL when several are attached)")
ADB_MISSING = ("adb is not installed or not on PATH: install it (`apt-get install adb` on Debian/Ubuntu, or "
               "Android SDK platform-tools) or set OFA_PROFILE_ADB to its path")
DEFAULT_ADB_DIR = "/data/local/tmp/ofa-profile"
DEFAULT_SSH_DIR = ".cache/ofa-profile"
CHUNK_OPS = 32


# ============================================================================================
# public entry points
# ============================================================================================

def reachable(spec: DeviceSpec) -> tuple[bool, str]:
    """(can ``spec`` be measured from here now?, one-line reason) for ``ofa-profile devices``. Cheap: no measuring."""
    if spec.template:
        return False, "template: copy it to a new spec file and fill in the connection details"
    if spec.transport == "adb":
        adb = _adb_path()
        if adb is None:
            return False, ADB_MISSING
        try:
            devs = adb_devices(adb)
        except DeviceError as exc:
            return False, str(exc)
        serial = spec.adb.get("serial")
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
    if spec.transport == "ssh":
        try:
            target = SshTarget.from_spec(spec)
        except DeviceError as exc:
            return False, str(exc)
        return target.probe(timeout_s=3)
    return False, f"transport {spec.transport!r} is not handled by ofa_profile.transports"


def make_remote_profiler(device: DeviceSpec, batch_size: int | None = None, *, benchmark_binary: str | None = None,
                         serial: str | None = None, timing: TimingConfig | None = None, local: bool = False,
                         target: Any = None, tool: str | None = None) -> Profiler:
    """A connected profiler for an adb or ssh device; every reachability check happens here, before any work.

    adb: ``serial`` (or ``adb.serial``) picks the phone, ``benchmark_binary`` (or ``adb.benchmark_binary``) is the
    benchmark_model to push; ``local=True`` runs the same profiler on this machine (:class:`LocalTarget`).
    """
    if device.transport == "adb":
        if target is None:
            if local:
                target = LocalTarget()
            else:
                target = AdbTarget(serial or device.adb.get("serial"))
                target.connect()          # no phone -> one line listing the attached ones and how to connect
        binary = benchmark_binary or device.adb.get("benchmark_binary")
        if not binary:
            raise DeviceError(f"device {device.name} needs a TFLite benchmark_model binary for the phone's CPU: pass "
                              f"--benchmark-binary PATH (prebuilt: TensorFlow's 'TFLite Model Benchmark Tool' "
                              f"nightly for android_aarch64/arm) or set adb.benchmark_binary in the spec")
        return BenchmarkModelProfiler(device, target, Path(binary).expanduser(), batch_size=batch_size,
                                      timing=timing, tool=tool)
    if device.transport == "ssh":
        if benchmark_binary or serial:
            raise DeviceError(f"--benchmark-binary and --serial apply to adb phones, not to ssh board {device.name}")
        return SshProfiler(device, batch_size=batch_size, timing=timing, target=target)
    raise DeviceError(f"device {device.name}: transport {device.transport!r} has no remote profiler")


# ============================================================================================
# adb
# ============================================================================================

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
    hint = spec.adb.get("model_hint")
    model = _model({d[0]: d[2] for d in devs}.get(serial, ""))
    if hint and model and hint.lower().replace(" ", "_") not in model.lower():
        return f" (model {model}, but this spec is for {hint!r}: its LUT would be mislabelled)"
    return ""


def _binary_note(spec: DeviceSpec) -> str:
    return "" if spec.adb.get("benchmark_binary") else "; measuring needs --benchmark-binary PATH"


class AdbTarget:
    """One phone reached with the real ``adb`` binary."""

    kind = "adb"

    def __init__(self, serial: str | None = None, adb: str | None = None):
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
        from .timing import fingerprint
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
                 timing: TimingConfig | None = None, tool: str | None = None):
        self.device = device
        self.target = target
        self.batch_size = batch_size or device.batch_size
        self.timing = timing or device.timing
        cfg = device.adb
        self.cores = tuple(cfg.get("cores") or ())
        self.repeats = int(cfg.get("repeats", 3))
        self.use_xnnpack = bool(cfg.get("use_xnnpack", True))
        self.tool = tool or ("litert-benchmark" if "litert-benchmark" in binary.name else "benchmark_model")
        remote = cfg.get("remote_dir") or DEFAULT_ADB_DIR
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
        return {self.tool: f"sha256:{self._binary_sha[:16]}"}

    def fingerprint(self) -> dict[str, Any]:
        from . import __version__
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

    def _write(self, module_and_input: tuple[Any, Any], path: Path) -> None:
        import torch

        from .tflite import write_tflite
        module, example = module_and_input
        with torch.inference_mode():
            write_tflite(module, example, path)

    def measure_ops(self, ops: Sequence[Op], seed: int, on_result: Callable[[Op, Measurement], None]) -> None:
        from .blocks import op_input, op_module

        total = len(ops)
        done = 0
        for start in range(0, total, CHUNK_OPS):
            chunk = list(ops[start:start + CHUNK_OPS])
            files = []
            for op in chunk:
                p = Path(self._tmp.name) / f"op-{hashlib.sha1(op.key.encode()).hexdigest()[:16]}.tflite"
                self._write((op_module(op, seed=seed), op_input(op, seed=seed, batch=self.batch_size)), p)
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

    def measure_subnet(self, spec: SubnetSpec, seed: int) -> Measurement:
        from .blocks import subnet_input, subnet_module

        p = Path(self._tmp.name) / "subnet.tflite"
        self._write((subnet_module(spec, seed=seed), subnet_input(spec, seed=seed, batch=self.batch_size)), p)
        self.target.push([p], self.remote_dir)
        try:
            return self._run_graph(f"{self.remote_dir}/{p.name}", f"subnet {spec.short()}", "")
        finally:
            p.unlink(missing_ok=True)

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


# ============================================================================================
# ssh
# ============================================================================================

class SshTarget:
    """A Linux board reached with the OpenSSH client, non-interactively (keys only)."""

    kind = "ssh"

    def __init__(self, host: str, port: int = 22, user: str | None = None, identity_file: str | None = None,
                 options: Sequence[str] = (), connect_timeout_s: int = 10):
        self.host, self.port, self.user = host, int(port), user
        self.identity_file = identity_file
        self.options = tuple(options)
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def from_spec(cls, spec: DeviceSpec) -> "SshTarget":
        c = spec.ssh
        if not c.get("host"):
            raise DeviceError(f"device {spec.name} has no ssh.host; fill in the connection details")
        return cls(c["host"], c.get("port", 22), c.get("user"), c.get("identity_file"), c.get("options", ()))

    @property
    def name(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    def argv(self, command: str, connect_timeout_s: int | None = None) -> list[str]:
        ssh = os.environ.get("OFA_PROFILE_SSH") or shutil.which("ssh") or "ssh"
        a = [ssh, "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", f"ConnectTimeout={connect_timeout_s or self.connect_timeout_s}",
             "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self.identity_file:
            a += ["-i", str(Path(self.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        for o in self.options:
            a += ["-o", o]
        a.append(f"{self.user}@{self.host}" if self.user else self.host)
        a.append(command)
        return a

    def run(self, command: str, input: bytes | None = None, timeout_s: float = 120,
            connect_timeout_s: int | None = None) -> tuple[int, str, str]:
        if shutil.which("ssh") is None and not os.environ.get("OFA_PROFILE_SSH"):
            raise DeviceError("the OpenSSH client `ssh` is not installed (`apt-get install openssh-client`)")
        try:
            r = subprocess.run(self.argv(command, connect_timeout_s), input=input, capture_output=True,
                               timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return 124, "", f"ssh to {self.name} timed out after {timeout_s:.0f} s"
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    def probe(self, timeout_s: int = 3) -> tuple[bool, str]:
        try:
            rc, out, err = self.run("true", timeout_s=timeout_s + 10, connect_timeout_s=timeout_s)
        except DeviceError as exc:
            return False, str(exc)
        if rc == 0:
            return True, f"ssh {self.name} answers"
        return False, f"ssh {self.name} failed: {_ssh_error(rc, err)}"


def _ssh_error(rc: int, err: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.strip() and not ln.startswith("Warning: Permanently added")]
    return (lines[-1] if lines else f"exit status {rc}")[:200]


def _remote_path(path: str) -> str:
    """Shell form of a board path: ``~/x`` and relative paths are under the login's home."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _package_tar() -> tuple[bytes, str]:
    """This package's Python sources and schemas as a tar archive, and their digest (version of the worker)."""
    pkg = Path(__file__).resolve().parent
    files = sorted(pkg.glob("*.py")) + sorted((pkg / "schemas").glob("*.json"))
    h = hashlib.sha256()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in files:
            rel = f.relative_to(pkg.parent).as_posix()
            data = f.read_bytes()
            h.update(rel.encode() + b"\0" + data)
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), h.hexdigest()[:12]


class SshProfiler(Profiler):
    """Runs :mod:`ofa_profile.remote_worker` on a board over SSH and streams the results back.

    One ssh session and one worker process per profiler: the board's Python imports torch and
    the runtime once; every request (hello, a batch of ops, a subnet) is one JSON line in, its
    records and a ``done`` line out.
    """

    def __init__(self, device: DeviceSpec, batch_size: int | None = None, timing: TimingConfig | None = None,
                 target: SshTarget | None = None):
        self.device = device
        self.batch_size = batch_size or device.batch_size
        self.timing = timing or device.timing
        self.target = target or SshTarget.from_spec(device)
        self.worker_pid: int | None = None    # pid of the worker process on the board
        self._proc: subprocess.Popen | None = None
        self._dead: str | None = None
        self._next_id = 0
        cfg = device.ssh
        self.python = cfg.get("remote_python") or "python3"
        self.runtime = cfg.get("remote_runtime") or device.runtime
        ok, why = self.target.probe(timeout_s=min(10, self.target.connect_timeout_s))
        if not ok:
            raise DeviceError(f"cannot reach board {device.name}: {why}; check ssh.host/port/user/identity_file "
                              f"(try `ssh -p {self.target.port} {self.target.name.rsplit(':', 1)[0]} true`)")
        self.pkg_dir = self._upload(cfg.get("remote_dir") or DEFAULT_SSH_DIR)
        self._start()
        got: list[dict] = []
        self._call({"cmd": "hello"}, got.append, what="the worker's start-up")
        hello = got[0]
        self.worker_pid = hello.get("pid")
        if not hello.get("ok"):
            self.close()
            raise DeviceError(f"board {device.name} cannot run {self.runtime}: {hello.get('reason')}")
        self._hello = hello

    # -- setup ------------------------------------------------------------------------------
    def _upload(self, remote_dir: str) -> str:
        data, digest = _package_tar()
        d = f"{remote_dir.rstrip('/')}/pkg-{digest}"
        q = _remote_path(d)
        rc, out, err = self.target.run(f"test -f {q}/.complete && echo present || echo absent", timeout_s=60)
        if rc != 0:
            raise DeviceError(f"ssh {self.target.name} failed: {_ssh_error(rc, err)}")
        if out.strip() != "present":
            rc, out, err = self.target.run(f"mkdir -p {q} && tar -xf - -C {q} && touch {q}/.complete",
                                           input=data, timeout_s=300)
            if rc != 0:
                raise DeviceError(f"cannot copy the ofa-profile worker to {self.target.name}:{d}: "
                                  f"{_ssh_error(rc, err)}")
        return d

    def _worker_command(self) -> str:
        q = _remote_path(self.pkg_dir)
        return f"cd {q} && PYTHONPATH=. exec {shlex.quote(self.python)} -m ofa_profile.remote_worker"

    def _start(self) -> None:
        self._proc = subprocess.Popen(self.target.argv(self._worker_command()), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lines: "queue.Queue[bytes | None]" = queue.Queue()
        self._err_tail: deque[str] = deque(maxlen=20)
        self._other: deque[str] = deque(maxlen=5)
        proc = self._proc

        def pump_out() -> None:
            for raw in proc.stdout:
                self._lines.put(raw)
            self._lines.put(None)

        def pump_err() -> None:
            for raw in proc.stderr:
                self._err_tail.append(raw.decode("utf-8", "replace").rstrip())

        self._pumps = [threading.Thread(target=pump_out, daemon=True), threading.Thread(target=pump_err, daemon=True)]
        for t in self._pumps:
            t.start()

    # -- requests ---------------------------------------------------------------------------
    def _base_request(self, seed: int = 0) -> dict[str, Any]:
        return {"runtime": self.runtime, "num_threads": self.device.num_threads, "batch_size": self.batch_size,
                "seed": seed, "timing": self.timing.as_dict(), "cuda": dict(self.device.cuda)}

    def _call(self, req: Mapping[str, Any], handle: Callable[[dict], None], what: str,
              progress: Callable[[], str] = lambda: "") -> None:
        """Send one request and call ``handle`` on each of its hello/result records as they arrive."""
        if self._dead:
            raise DeviceError(self._dead)
        timeout = max(120.0, 30 * self.timing.max_time_s)
        self._next_id += 1
        rid = self._next_id
        line = json.dumps({**self._base_request(req.get("seed", 0)), **req, "id": rid}) + "\n"
        try:
            self._proc.stdin.write(line.encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass   # the reader below sees the end of the stream and says why
        while True:
            try:
                raw = self._lines.get(timeout=timeout)
            except queue.Empty:
                self._fail(f"board {self.device.name} sent nothing for {timeout:.0f} s during {what}{progress()}; "
                           f"finished ones are kept: rerun to resume")
            if raw is None:
                self._lost(what, progress())
            text = raw.decode("utf-8", "replace").rstrip()
            if not text.startswith("@@ofa "):
                self._other.append(text)
                continue
            try:
                rec = json.loads(text[6:])
            except json.JSONDecodeError:
                self._other.append(text)
                continue
            kind = rec.get("type")
            if rec.get("id") not in (None, rid):
                continue   # a late record of an earlier, abandoned request
            if kind == "done":
                return
            if kind == "error":
                self._fail(f"board {self.device.name} failed during {what}{progress()}: {rec.get('message')}; "
                           f"finished ones are kept", kill=False)
            if kind in ("result", "hello"):
                handle(rec)

    def _fail(self, msg: str, kill: bool = True) -> None:
        if kill:
            self._dead = msg
            self._kill()
        raise DeviceError(msg)

    def _lost(self, what: str, progress: str) -> None:
        proc = self._proc
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        for t in self._pumps:
            t.join(timeout=5)
        detail = _ssh_error(rc, "\n".join(list(self._err_tail) + list(self._other)))
        if rc == 255:
            msg = (f"ssh connection to {self.target.name} lost during {what}{progress} (ssh: {detail}); finished "
                   f"ones are kept: rerun the same command to resume")
        elif rc == 127 or "No module named" in detail or "not found" in detail:
            msg = (f"board {self.device.name} cannot start the worker with {self.python!r} ({detail}); set "
                   f"ssh.remote_python to a Python 3.10+ with torch")
        else:
            msg = (f"the worker on {self.device.name} stopped during {what}{progress} (exit {rc}: {detail}); "
                   f"finished ones are kept: rerun to resume")
        self._fail(msg)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- Profiler -----------------------------------------------------------------------------
    def versions(self) -> dict[str, str]:
        return dict(self._hello.get("versions", {}))

    def fingerprint(self) -> dict[str, Any]:
        fp = dict(self._hello.get("fingerprint", {}))
        fp.update({"transport": "ssh", "host": self.target.host})
        return fp

    def measure_ops(self, ops: Sequence[Op], seed: int, on_result: Callable[[Op, Measurement], None]) -> None:
        if not ops:
            return
        from dataclasses import asdict
        by_key = {op.key: op for op in ops}
        done = [0]

        def handle(rec: dict) -> None:
            on_result(by_key[rec["key"]], _measurement(rec))
            done[0] += 1

        self._call({"cmd": "ops", "seed": seed, "ops": [asdict(op) for op in ops]}, handle, what="measuring blocks",
                   progress=lambda: f" (after {done[0]} of {len(ops)} blocks)")
        if done[0] != len(ops):
            self._fail(f"board {self.device.name} answered {done[0]} of {len(ops)} blocks; rerun to resume")

    def measure_op(self, op: Op, seed: int) -> Measurement:
        got: list[Measurement] = []
        self.measure_ops([op], seed, lambda _op, m: got.append(m))
        return got[0]

    def measure_subnet(self, spec: SubnetSpec, seed: int) -> Measurement:
        got: list[dict] = []
        self._call({"cmd": "subnet", "seed": seed, "space": spec.space, "subnet": spec.to_ofa()}, got.append,
                   what=f"subnet {spec.short()}")
        if not got:
            self._fail(f"board {self.device.name} returned no result for subnet {spec.short()}", kill=False)
        return _measurement(got[0])

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        try:
            proc.stdin.close()          # the worker ends at end of input
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for t in getattr(self, "_pumps", ()):
            t.join(timeout=5)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


def _measurement(rec: Mapping[str, Any]) -> Measurement:
    return Measurement(tuple(float(x) for x in rec["raw_ms"]), warmup_runs=int(rec.get("warmup_runs", 0)),
                       stopped_by=str(rec.get("stopped_by", "iqr")))
