"""Timing you can trust: warm-up, adaptive repetition, raw times kept, noise reported.

Modelled on ``torch.utils.benchmark.Timer.blocked_autorange`` but taking plain
callables: warm up, then time single calls until the interquartile range relative
to the median is small enough (``target_iqr_rel``), or the median itself is known
precisely enough (``target_ci_rel``: the half-width of its ~95 % confidence interval,
1.57 IQR / sqrt(n), the boxplot notch of McGill, Tukey and Larsen 1978, relative to
the median), with at least ``min_runs`` samples, or ``max_runs`` / ``max_time_s`` is
hit.  On a noisy machine the IQR rule alone rarely fires and every block runs to
``max_runs``; the confidence rule stops once more runs no longer move the median.
The raw times are kept in the :class:`Measurement`; the median and IQR are derived
from them.  This is the only timing loop: what reads a call's time is a :class:`Clock`
(host wall time by default; CUDA events in :mod:`ofa_profile.cuda`).

Also here: the glibc malloc fix (:func:`fix_malloc`) that makes torch-eager
latency unimodal, thread pinning, and the hardware/software :func:`fingerprint`
stored with every LUT.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from . import __version__

__all__ = ["TimingConfig", "Measurement", "Clock", "PerfCounterClock", "measure_callable", "stop_reason", "fix_malloc",
           "fingerprint", "machine_info", "set_threads", "MAX_BATCH_SIZE", "MAX_COUNT", "TIMING_LIMITS"]


#: the largest batch a device spec, a LUT or --batch-size may name (1024 images at r=224 are 0.6 GB of float32
#: already; the device schema and the LUT schema state the same bound: tests/test_devices.py)
MAX_BATCH_SIZE = 1024
#: bounds of each timing setting (inclusive; max_time_s above 0): what a device spec's ``timing`` may hold (its
#: schema states them: tests/test_devices.py), and what a LUT's recorded timing must hold to be reused
TIMING_LIMITS: dict[str, tuple[float, float]] = {
    "warmup_runs": (0, 100_000), "min_runs": (1, 1_000_000), "max_runs": (1, 1_000_000), "max_time_s": (0, 3600),
    "target_iqr_rel": (0, 1), "target_ci_rel": (0, 1), "subnet_min_time_s": (0, 3600)}
#: the most timed runs an entry may stand for (a LUT's or a journal's ``count``; OFA's tables record 100s)
MAX_COUNT = 10 ** 9


@dataclass(frozen=True)
class TimingConfig:
    """How to time one callable. Defaults measure a block in ~0.05-0.2 s."""
    warmup_runs: int = 10
    min_runs: int = 30
    max_runs: int = 200
    max_time_s: float = 2.0
    target_iqr_rel: float = 0.03
    target_ci_rel: float = 0.0   # 0: off (see the module docstring)
    #: a whole network (calibrate, bench, verify, drift: not a LUT block) is timed for at least this long (up to
    #: max_time_s), whatever the stop rules say: a figure of a fast subnet then spans more than one of the
    #: machine's hiccups (0: off)
    subnet_min_time_s: float = 0.0

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None) -> "TimingConfig":
        if not m:
            return cls()
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in m.items() if k in names})

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def problem(self) -> str | None:
        """Why these settings cannot be used (a non-number, a value outside :data:`TIMING_LIMITS`, min_runs >
        max_runs), or None."""
        for k, (lo, hi) in TIMING_LIMITS.items():
            v = getattr(self, k)
            integral = k.endswith("_runs")
            if isinstance(v, bool) or not isinstance(v, int if integral else (int, float)) or not \
                    (lo < v <= hi if k == "max_time_s" else lo <= v <= hi):
                return f"timing.{k}={str(v)[:40]} is not {'an integer' if integral else 'a number'} in " \
                       f"{'(' if k == 'max_time_s' else '['}{lo:g}, {hi:g}]"
        if self.min_runs > self.max_runs:
            return f"timing.min_runs {self.min_runs} > max_runs {self.max_runs}"
        return None


@dataclass(frozen=True)
class Measurement:
    """Raw times of repeated calls (ms) and their summary."""
    raw_ms: tuple[float, ...]
    warmup_runs: int = 0
    stopped_by: str = "iqr"  # "iqr" | "median_ci" | "max_runs" | "max_time"
    median_ms: float = field(init=False)
    iqr_ms: float = field(init=False)
    mean_ms: float = field(init=False)
    std_ms: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.raw_ms:
            raise ValueError("a Measurement needs at least one time")
        xs = sorted(self.raw_ms)
        object.__setattr__(self, "median_ms", statistics.median(xs))
        q1, q3 = _quantile(xs, 0.25), _quantile(xs, 0.75)
        object.__setattr__(self, "iqr_ms", q3 - q1)
        object.__setattr__(self, "mean_ms", statistics.fmean(xs))
        object.__setattr__(self, "std_ms", statistics.pstdev(xs) if len(xs) > 1 else 0.0)

    @property
    def count(self) -> int:
        return len(self.raw_ms)

    @property
    def iqr_rel(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else 0.0


def _quantile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted data (numpy's default method)."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


MEDIAN_CI_FACTOR = 1.57   # half-width of the ~95 % confidence interval of a median = 1.57 IQR / sqrt(n)


def stop_reason(times: list[float], config: TimingConfig) -> str | None:
    """Why timing may stop after these ``times`` (checked every 5 runs from ``min_runs``): "iqr" or
    "median_ci" (see the module docstring), else None."""
    n = len(times)
    if n < config.min_runs or n % 5:
        return None
    xs = sorted(times)
    med = statistics.median(xs)
    if med <= 0:
        return None
    iqr_rel = (_quantile(xs, 0.75) - _quantile(xs, 0.25)) / med
    if iqr_rel <= config.target_iqr_rel:
        return "iqr"
    if config.target_ci_rel > 0 and MEDIAN_CI_FACTOR * iqr_rel / math.sqrt(n) <= config.target_ci_rel:
        return "median_ci"
    return None


class Clock(Protocol):
    """What the timing loop reads: :meth:`ready` once after warm-up (wait for queued work), then per timed
    call :meth:`start` before it and :meth:`stop_ms` after it (the call's time in ms, waiting for it to finish
    where the device is asynchronous).  :class:`PerfCounterClock` (host wall time) is the default;
    ``ofa_profile.cuda.CudaEventClock`` reads CUDA events (GPU-side time)."""

    def ready(self) -> None: ...

    def start(self) -> None: ...

    def stop_ms(self) -> float: ...


class PerfCounterClock:
    """Host wall time by ``time.perf_counter_ns``.  ``sync`` (e.g. ``torch.cuda.synchronize``) is called
    after each call inside the timed region, so asynchronous devices are timed to completion, and once
    after warm-up."""

    def __init__(self, sync: Callable[[], Any] | None = None):
        self.sync = sync
        self._t0 = 0

    def ready(self) -> None:
        if self.sync is not None:
            self.sync()

    def start(self) -> None:
        self._t0 = time.perf_counter_ns()

    def stop_ms(self) -> float:
        if self.sync is not None:
            self.sync()
        return (time.perf_counter_ns() - self._t0) / 1e6


def measure_callable(fn: Callable[[], Any], config: TimingConfig = TimingConfig(),
                     sync: Callable[[], Any] | None = None, clock: Clock | None = None,
                     min_time_s: float = 0.0) -> Measurement:
    """Time ``fn()`` per call: the one timing loop (warm-up, then timed calls until :func:`stop_reason`,
    ``max_runs`` or ``max_time_s``; neither of the first two before ``min_time_s`` has passed, e.g. a whole
    network's :attr:`TimingConfig.subnet_min_time_s`).

    ``clock`` reads each call's time (:class:`Clock`; default :class:`PerfCounterClock`).  ``sync`` (e.g.
    ``torch.cuda.synchronize``) is the default clock's: called after each call, inside the timed region,
    so asynchronous devices are timed to completion.
    """
    if clock is None:
        clock = PerfCounterClock(sync)
    elif sync is not None:
        raise ValueError("pass sync or clock, not both (sync belongs to the default clock)")
    for _ in range(config.warmup_runs):
        fn()
    clock.ready()
    times: list[float] = []
    t_start = time.perf_counter()
    stopped = "max_runs"
    while len(times) < config.max_runs or time.perf_counter() - t_start < min_time_s:
        clock.start()
        fn()
        times.append(clock.stop_ms())
        n = len(times)
        elapsed = time.perf_counter() - t_start
        why = stop_reason(times, config)
        if why and elapsed >= min_time_s:
            stopped = why
            break
        if elapsed > config.max_time_s and n >= min(config.min_runs, 5):
            stopped = "max_time"
            break
    return Measurement(tuple(times), warmup_runs=config.warmup_runs, stopped_by=stopped)


_MALLOC_FIXED = False
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def fix_malloc() -> bool:
    """Raise glibc's mmap/trim thresholds so large tensors are not mmap'ed and freed each call.

    Without it torch-eager latency is bimodal (1.2 ms vs 2.9 ms for one block on this CPU).
    Returns True where applied (glibc), False elsewhere.  Idempotent.
    """
    global _MALLOC_FIXED
    if _MALLOC_FIXED:
        return True
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024) == 1
    ok = (mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024) == 1) and ok
    _MALLOC_FIXED = ok
    return ok


def set_threads(num_threads: int) -> None:
    """Limit BLAS/OpenMP pools before heavy libraries start their threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(num_threads)
    try:
        import torch
        torch.set_num_threads(num_threads)
    except ImportError:  # pragma: no cover
        pass


# where the machine tells what it is (module-level so that a test can point them elsewhere)
_CPUINFO = "/proc/cpuinfo"
_MEMINFO = "/proc/meminfo"
_SYS_CPU0 = "/sys/devices/system/cpu/cpu0"


def _cpuinfo() -> dict[str, str]:
    """The fields of the first processor in /proc/cpuinfo, plus machine-wide lines (ARM's ``Hardware``);
    empty where it cannot be read."""
    out: dict[str, str] = {}
    try:
        with open(_CPUINFO) as f:
            for line in f:
                k, sep, v = line.partition(":")
                if sep:
                    out.setdefault(k.strip(), v.strip())
    except (OSError, ValueError):   # unreadable, or not text
        pass
    return out


def _cpu_model(info: Mapping[str, str] | None = None) -> str:
    info = _cpuinfo() if info is None else info
    return info.get("model name") or platform.processor() or platform.machine()


def _cpu_flags(info: Mapping[str, str] | None = None) -> list[str]:
    """The CPU's full flag set (x86 ``flags``, ARM ``Features``), sorted; empty where unknown."""
    info = _cpuinfo() if info is None else info
    return sorted(set((info.get("flags") or info.get("Features") or "").split()))


_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2, "MIB": 1024 ** 2,
               "G": 1024 ** 3, "GB": 1024 ** 3, "GIB": 1024 ** 3}


def _size_kb(text: str) -> int | None:
    """``32K``, ``1024K``, ``1M``, ``33554432`` (bytes) -> KiB; None where it is not a size."""
    t = text.strip().upper().replace(" ", "")
    num = t.rstrip("BGIKM")
    unit = t[len(num):]
    if not num.isdigit() or unit not in _SIZE_UNITS:
        return None
    return int(num) * _SIZE_UNITS[unit] // 1024


def _cache_name(level: str, kind: str) -> str | None:
    suffix = {"data": "d", "instruction": "i", "unified": ""}.get(kind.strip().lower())
    return f"L{level.strip()}{suffix}" if level.strip().isdigit() and suffix is not None else None


def _cache_sizes_kb() -> dict[str, int]:
    """Per-core view of the caches of CPU 0 (``{"L1d": 32, "L1i": 32, "L2": 1024, "L3": 32768}``, KiB): from
    /sys/devices/system/cpu/cpu0/cache, else ``lscpu``; empty where neither answers."""
    out: dict[str, int] = {}
    base = f"{_SYS_CPU0}/cache"
    try:
        indices = sorted(d for d in os.listdir(base) if d.startswith("index"))
    except OSError:
        indices = []
    for d in indices:
        try:
            level, kind, size = (Path(base, d, f).read_text() for f in ("level", "type", "size"))
        except (OSError, ValueError):
            continue
        name, kb = _cache_name(level, kind), _size_kb(size)
        if name and kb:
            out[name] = kb
    if out:
        return out
    import shutil
    import subprocess
    exe = shutil.which("lscpu")
    if not exe:
        return out
    try:
        text = subprocess.run([exe, "-C=NAME,ONE-SIZE", "-B"], capture_output=True, text=True, timeout=2,
                              env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.SubprocessError):
        return out
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[0][:1] == "L" and parts[0][1:2].isdigit():
            kb = _size_kb(parts[1])
            if kb:
                out[parts[0]] = kb
    return out


def _cpu_mhz(info: Mapping[str, str]) -> dict[str, float]:
    """``{"cpu_max_mhz": ...}`` from cpufreq (the rated maximum), else ``{"cpu_mhz": ...}`` (the clock
    /proc/cpuinfo reports, as a VM's guest sees it); empty where neither is readable."""
    try:
        khz = int(Path(_SYS_CPU0, "cpufreq", "cpuinfo_max_freq").read_text().strip())
        if khz > 0:
            return {"cpu_max_mhz": round(khz / 1000, 1)}
    except (OSError, ValueError):
        pass
    try:
        mhz = float(info.get("cpu MHz", ""))
        if mhz > 0 and math.isfinite(mhz):
            return {"cpu_mhz": round(mhz, 1)}
    except ValueError:
        pass
    return {}


def _mem_total_kb() -> int | None:
    try:
        with open(_MEMINFO) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """The hardware part of :func:`fingerprint`: CPU model, vendor/family/model/stepping, the full flag set,
    cache sizes, clock and memory.  Whatever this machine does not tell (no /proc, no sysfs) is absent."""
    try:
        info = _cpuinfo()
    except Exception:  # never a traceback for a fingerprint
        info = {}
    out: dict[str, Any] = {"cpu_model": _cpu_model(info), "cpu_flags": _cpu_flags(info)}
    for field_, key in (("cpu_vendor", "vendor_id"), ("cpu_family", "cpu family"), ("cpu_model_number", "model"),
                        ("cpu_stepping", "stepping")):
        if info.get(key):
            out[field_] = info[key]
    try:  # an odd /sys, /proc or lscpu: the field is absent, never a traceback
        caches = _cache_sizes_kb()
    except Exception:
        caches = {}
    if caches:
        out["cache_kb"] = caches
    try:
        out.update(_cpu_mhz(info))
    except Exception:
        pass
    mem = _mem_total_kb()
    if mem:
        out["mem_total_kb"] = mem
    return out


def fingerprint(runtime_versions: Mapping[str, str] | None = None, num_threads: int | None = None,
                extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Hardware and software that a latency figure depends on (stored in every LUT)."""
    import numpy
    hw = machine_info()
    fp: dict[str, Any] = {
        "cpu_model": hw.pop("cpu_model"),
        "cpu_flags": hw.pop("cpu_flags"),
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "ofa_profile": __version__,
        "num_threads": num_threads,
        "malloc_fix": _MALLOC_FIXED,
        **hw,
    }
    if runtime_versions:
        fp["runtime_versions"] = dict(runtime_versions)
    if extra:
        fp.update(extra)
    return fp


def fingerprint_mismatch(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Fields that differ in a way that invalidates mixing measurements (CPU, threads, runtime versions)."""
    out = []
    for k in ("cpu_model", "machine", "num_threads"):
        if a.get(k) != b.get(k):
            out.append(f"{k}: {a.get(k)!r} != {b.get(k)!r}")
    ra, rb = a.get("runtime_versions") or {}, b.get("runtime_versions") or {}
    for k in sorted(set(ra) | set(rb)):
        if ra.get(k) != rb.get(k):
            out.append(f"{k}: {ra.get(k)!r} != {rb.get(k)!r}")
    return out
