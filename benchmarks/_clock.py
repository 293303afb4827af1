"""Shared by the timing benchmarks: a thread-CPU-time clock, for a machine more loaded than it has cores.

Wall time on an oversubscribed machine measures the scheduler as much as the model (a subnet measured here at
load average 10 on 2 cores read 57 ms wall for 8.8 ms of its thread's CPU time).  ONNX Runtime with one intra-op
thread computes in the calling thread, so that thread's CPU time (``time.thread_time_ns``) is the model's
compute time without the time it waited for a core; caches shared with other processes still inflate it.
``--clock thread-cpu`` in a benchmark times everything it compares (LUT, calibration and models) with it, so the
comparison stays consistent; figures from it are labelled as such, never mixed with wall-time ones.
"""
from __future__ import annotations

import time
from typing import Any

CLOCKS = ("wall", "thread-cpu")


class ThreadCpuClock:
    """The calling thread's CPU time (a :class:`ofa_profile.timing.Clock`)."""

    def ready(self) -> None:
        pass

    def start(self) -> None:
        self._t0 = time.thread_time_ns()

    def stop_ms(self) -> float:
        return (time.thread_time_ns() - self._t0) / 1e6


def make_clock(name: str) -> Any:
    """None (the harness's own wall clock) or a :class:`ThreadCpuClock`."""
    if name not in CLOCKS:
        raise SystemExit(f"--clock: one of {', '.join(CLOCKS)}")
    return ThreadCpuClock() if name == "thread-cpu" else None


def make_profiler_with_clock(device: Any, clock: str, **kw: Any) -> Any:
    """The device's own profiler (``clock`` wall), or for ``thread-cpu`` its local profiler timing every op and
    subnet by the thread's CPU time (same runtime, export, timing settings and fingerprint)."""
    from ofa_profile.measure import make_profiler
    if clock == "wall":
        return make_profiler(device, **kw)
    if device.transport != "local":
        raise SystemExit("--clock thread-cpu times this process's thread: a local device only")
    from ofa_profile.transports import local

    class CpuClockProfiler(local.LocalProfiler):
        """The local profiler, its one timing call (``local.measure_callable``) given the thread-CPU clock."""

        def _time(self, *args: Any, **kw: Any):
            plain = local.measure_callable
            local.measure_callable = lambda fn, config, sync=None: plain(fn, config, clock=ThreadCpuClock())
            try:
                return super()._time(*args, **kw)
            finally:
                local.measure_callable = plain
    return CpuClockProfiler(device, **kw)
