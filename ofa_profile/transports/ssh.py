"""The ``ssh`` transport: Linux boards reached with the OpenSSH client.

:class:`SshProfiler` copies this package's Python sources to the board (a few hundred KB, once per version) and
runs :mod:`ofa_profile.remote_worker` there with the board's own Python and runtime, one ssh session and one
worker process per profiler; results stream back one JSON line per op and reach the journal as they arrive, so a
dropped connection loses only the op in flight.

Faults (ssh failing, the worker dying) raise :class:`~ofa_profile.devices.DeviceError` with one line; what
finished is in the journal and a rerun resumes.
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
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..argsafety import host_problem, path_problem, ssh_option_refusal, ssh_option_syntax_problem, user_problem
from ..devicespec import DeviceError, DeviceSpec, UnsafeDeviceError
from ..options import REQUIRED, Option
from ..runtimes import list_runtimes
from ..timed import GRAPHS
from ..timing import Measurement, TimingConfig
from .base import Profiler, register_transport

if TYPE_CHECKING:  # pragma: no cover
    from ..ops import Op
    from ..space import SubnetSpec

__all__ = ["SshTarget", "SshProfiler"]

DEFAULT_SSH_DIR = ".cache/ofa-profile"


class SshTarget:
    """A Linux board reached with the OpenSSH client, non-interactively (keys only)."""

    kind = "ssh"

    def __init__(self, host: str, port: int = 22, user: str | None = None, identity_file: str | None = None,
                 options: Sequence[str] = (), connect_timeout_s: int = 10, allow_options: Sequence[str] = ()):
        """Every value that reaches ssh's argv is checked here (:mod:`ofa_profile.argsafety`), whoever built the
        target: ``options`` off the safe list are refused unless ``allow_options`` (the command line's
        ``--allow-ssh-option``) names them; a refusal is :class:`~ofa_profile.devicespec.UnsafeDeviceError`."""
        for field, why in (("host", host_problem(host)), ("user", user and user_problem(user)),
                           ("identity_file", identity_file and path_problem(identity_file))):
            if why:
                raise UnsafeDeviceError(f"ssh.{field} refused: {why}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise UnsafeDeviceError(f"ssh.port refused: {port!r} is not a port number (1..65535)")
        for o in options:
            why = ssh_option_refusal(o, allow_options)
            if why:
                raise UnsafeDeviceError(why)
        self.host, self.port, self.user = host, port, user
        self.identity_file = identity_file
        self.options = tuple(options)
        self.connect_timeout_s = connect_timeout_s

    @classmethod
    def from_spec(cls, spec: DeviceSpec) -> "SshTarget":
        c = spec.transport_options
        if not c.get("host"):
            raise DeviceError(f"device {spec.name} has no ssh.host; fill in the connection details")
        return cls(c["host"], c.get("port", 22), c.get("user"), c.get("identity_file"), c.get("options", ()),
                   allow_options=spec.allow_ssh_options)

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
        a.append("--")              # the end of ssh's options: what follows is the destination and the command
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
    pkg = Path(__file__).resolve().parents[1]          # ofa_profile/, with its subpackages (transports, ...)
    files = sorted(f for f in pkg.rglob("*.py") if "__pycache__" not in f.parts)
    files += sorted((pkg / "schemas").glob("*.json"))
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
    graphs = GRAPHS       # the board's worker builds either (OFA's package needed there for 'ofa')

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
        cfg = device.transport_options
        self.python = cfg.get("remote_python") or "python3"
        self.runtime = cfg.get("remote_runtime") or device.runtime
        for field in ("remote_python", "remote_dir"):
            why = cfg.get(field) and path_problem(cfg[field])
            if why:
                raise UnsafeDeviceError(f"ssh.{field} refused: {why}")
        ok, why = self.target.probe(timeout_s=min(10, self.target.connect_timeout_s))
        if not ok:
            raise DeviceError(f"cannot reach board {device.name}: {why}; check ssh.host/port/user/identity_file "
                              f"(try `ssh -p {self.target.port} -- {shlex.quote(self.target.name.rsplit(':', 1)[0])} true`)")
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
                "graph": self.graph,
                "seed": seed, "timing": self.timing.as_dict(), "runtime_options": dict(self.device.runtime_options)}

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

    def measure_subnet(self, spec: SubnetSpec, seed: int, classes: int | None = None) -> Measurement:
        got: list[dict] = []
        self._call({"cmd": "subnet", "seed": seed, "space": spec.space, "subnet": spec.to_ofa(), "classes": classes},
                   got.append,
                   what=f"subnet {spec.short()}")
        if not got:
            self._fail(f"board {self.device.name} returned no result for subnet {spec.short()}", kill=False)
        return _measurement(got[0])

    def measure_file(self, model: Any, seed: int) -> Measurement:
        """The file copied to the board (by content digest) and timed there by the worker's local runtime."""
        d = f"{self.pkg_dir.rsplit('/', 1)[0]}/models"
        remote = f"{d}/{model.sha256[:16]}{model.path.suffix.lower()}"
        q = _remote_path(d)
        rc, _, err = self.target.run(f"mkdir -p {q} && cat > {_remote_path(remote)}.tmp && "
                                     f"mv {_remote_path(remote)}.tmp {_remote_path(remote)}",
                                     input=model.path.read_bytes(), timeout_s=600)
        if rc != 0:
            raise DeviceError(f"cannot copy {model.path} to {self.target.name}:{remote}: {_ssh_error(rc, err)}")
        got: list[dict] = []
        self._call({"cmd": "file", "seed": seed, "path": remote}, got.append, what=f"model {model.path.name}")
        if not got:
            self._fail(f"board {self.device.name} returned no result for model {model.path.name}", kill=False)
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


def _reachable(spec: DeviceSpec) -> tuple[bool, str]:
    """Does the board answer ``ssh ... true`` within 3 s?"""
    try:
        target = SshTarget.from_spec(spec)
    except DeviceError as exc:
        return False, str(exc)
    return target.probe(timeout_s=3)


def _profiler(device: DeviceSpec, batch_size: int | None = None, *, benchmark_binary: str | None = None,
              serial: str | None = None, timing: TimingConfig | None = None, target: SshTarget | None = None,
              **_other: Any) -> Profiler:
    """A connected profiler for a board (``--benchmark-binary`` and ``--serial`` are the phones' and refused)."""
    if benchmark_binary or serial:
        raise DeviceError(f"--benchmark-binary and --serial apply to adb phones, not to ssh board {device.name}")
    return SshProfiler(device, batch_size=batch_size, timing=timing, target=target)


def _remote_runtimes() -> list[str]:
    return list_runtimes("ssh")


OPTIONS = (
    Option("host", "string", REQUIRED, "the board's host name or address", min_length=1, check=host_problem),
    Option("port", "integer", 22, "its SSH port", minimum=1, maximum=65535),
    Option("user", "string", None, "login; none: ssh's default", nullable=True, check=user_problem),
    Option("identity_file", "string", None, "private key file; none: ssh's default", nullable=True,
           check=path_problem),
    Option("remote_python", "string", "python3", "the board's Python 3", check=path_problem),
    Option("remote_dir", "string", DEFAULT_SSH_DIR, "folder on the board for the worker (relative: under home)",
           check=path_problem),
    Option("remote_runtime", "string", description="the runtime the worker runs [default: the spec's]",
           choices=_remote_runtimes),
    Option("options", "array", (), "further ssh -o options, Name=value: the harmless ones of "
           "ofa_profile.argsafety.SAFE_SSH_OPTIONS (others need --allow-ssh-option NAME on the command line)",
           items=Option("option", "string", check=ssh_option_syntax_problem)),
)

register_transport("ssh", _profiler, _reachable, options=OPTIONS, section="ssh",
                   description="a Linux board over SSH, running ofa_profile.remote_worker with its own runtime")
