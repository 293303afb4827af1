"""The worker run on an SSH board: ``python -m ofa_profile.remote_worker``, requests as JSON lines on stdin.

:class:`ofa_profile.transports.SshProfiler` copies this package to the board and keeps one
worker running per session; it measures with the board's own local runtime (the same
:class:`~ofa_profile.transports.local.LocalProfiler` as on this machine) and prints one line per
record, each ``@@ofa `` + JSON, flushed at once so results survive a dropped connection.
It ends at the end of its input.

request   ``{"id", "cmd": "hello"|"ops"|"subnet"|"file", "runtime", "num_threads", "batch_size", "seed", "timing",
            "ops": [{Op fields}...] | "space" + "subnet": {ks, e, d, r} | "path": a model file on the board}``
records   ``{"type": "hello", "ok", "reason", "versions", "fingerprint", "pid"}``,
          ``{"type": "result", "key", "raw_ms", "warmup_runs", "stopped_by"}``,
          ``{"type": "error", "key", "message"}`` (ends the request), then always ``{"type": "done"}``;
          every record carries the request's ``id``.
Other output on stdout (a library's chatter) is ignored by the reader.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Mapping

from .devices import DeviceSpec
from .model_file import check_model_file
from .ops import Op
from .runtimes import get_runtime
from .space import DEFAULT_SPACE, SubnetSpec
from .timing import TimingConfig, fingerprint, fix_malloc, set_threads
from .transports.local import LocalProfiler

PREFIX = "@@ofa "


def emit(rec: Mapping[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(rec, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _one_line(exc: BaseException) -> str:
    return (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0][:300]


def _device(req: Mapping[str, Any]):
    return DeviceSpec(name="ssh-worker", description="measurement worker on an SSH board", runtime=req["runtime"],
                      transport="local", num_threads=int(req.get("num_threads", 1)),
                      batch_sizes=(int(req.get("batch_size", 1)),), timing=TimingConfig.from_mapping(req.get("timing")),
                      runtime_options=dict(req.get("runtime_options") or {}))


def hello(req: Mapping[str, Any]) -> dict[str, Any]:
    set_threads(int(req.get("num_threads", 1)))
    rec: dict[str, Any] = {"type": "hello", "pid": os.getpid(), "python": sys.version.split()[0]}
    try:
        rt = get_runtime(req["runtime"], req.get("runtime_options"))
        ok, why = rt.check()
        versions = rt.versions() if ok else {}
    except Exception as exc:  # a board without torch, an unknown runtime, ...
        ok, why, versions = False, _one_line(exc), {}
    fix_malloc()
    rec.update(ok=ok, reason=why, versions=versions,
               fingerprint=fingerprint(versions, num_threads=int(req.get("num_threads", 1))))
    return rec


_PROFILERS: dict[str, Any] = {}


def _profiler(req: Mapping[str, Any]):
    """One LocalProfiler per (runtime, threads, batch, timing), kept for the session."""
    k = json.dumps([req["runtime"], req.get("num_threads", 1), req.get("batch_size", 1), req.get("timing"),
                    req.get("runtime_options")], sort_keys=True)
    if k not in _PROFILERS:
        _PROFILERS[k] = LocalProfiler(_device(req))
    prof = _PROFILERS[k]
    prof.use_graph(str(req.get("graph", "ofa-profile")))
    return prof


def _result(rid: Any, key: str, m: Any) -> dict[str, Any]:
    return {"id": rid, "type": "result", "key": key, "raw_ms": [round(x, 6) for x in m.raw_ms],
            "warmup_runs": m.warmup_runs, "stopped_by": m.stopped_by}


def run(req: Mapping[str, Any]) -> None:
    """Answer one request (its records, then ``done``)."""
    rid = req.get("id")
    cmd = req.get("cmd")
    key = None
    try:
        if cmd == "hello":
            emit({"id": rid, **hello(req)})
        elif cmd == "ops":
            prof = _profiler(req)
            seed = int(req.get("seed", 0))
            for d in req["ops"]:
                op = Op(**d)
                key = op.key
                emit(_result(rid, key, prof.measure_op(op, seed)))
        elif cmd == "subnet":
            prof = _profiler(req)
            spec = SubnetSpec.from_ofa(req["subnet"], space=req.get("space", DEFAULT_SPACE))
            key = "subnet"
            classes = req.get("classes")
            emit(_result(rid, key, prof.measure_subnet(spec, int(req.get("seed", 0)),
                                                       int(classes) if classes is not None else None)))
        elif cmd == "file":
            prof = _profiler(req)
            key = "file"
            model = check_model_file(req["path"], batch=int(req.get("batch_size", 1)))
            emit(_result(rid, key, prof.measure_file(model, int(req.get("seed", 0)))))
        else:
            emit({"id": rid, "type": "error", "key": None, "message": f"unknown request {cmd!r}"})
    except Exception as exc:
        emit({"id": rid, "type": "error", "key": key, "message": f"{key}: {_one_line(exc)}" if key else _one_line(exc)})
    emit({"id": rid, "type": "done"})


def main() -> int:
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except json.JSONDecodeError as exc:
                emit({"id": None, "type": "error", "key": None, "message": f"bad request line: {exc}"})
                continue
            run(req)
    finally:
        for prof in _PROFILERS.values():
            prof.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
