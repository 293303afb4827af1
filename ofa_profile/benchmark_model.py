"""Parser of the output of TFLite's ``benchmark_model`` (and of LiteRT's ``litert-benchmark``).

``benchmark_model`` (tensorflow/lite/tools/benchmark) prints, for one model:

* one statistics line per phase, right after ``Running benchmark for at least N iterations ...``:
  first the warm-up phase, then the timed phase, in microseconds::

      count=50 first=58154 curr=53809 min=53077 max=60727 avg=55043.2 std=1562

  (``count=N curr=T(all same)`` when every run took the same time, ``count=0`` for no run;
  TF 1.x printed ``curr=`` before ``count=``: the pairs are read in any order);
* a summary ``Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ...,
  Inference (avg): ...`` (TF 1.x: ``Average inference timings in us: Warmup: ..., Init: ...,
  no stats: ...``).

Lines may carry a prefix (``INFO: ``, or logcat's ``05-30 15:16:44.857  3380  3380 I tflite  : ``)
and numbers may be in scientific notation (``1.53025e+06``).  Op-profiling tables that follow
(``Timings (microseconds): count=...``) are not phase statistics and are ignored.

``litert-benchmark`` (the Python tool shipped in the ``ai-edge-litert`` wheel, a port of
``benchmark_litert_model``) prints a ``BENCHMARK RESULTS`` block in milliseconds instead; it is
parsed too.  Anything else raises :class:`BenchmarkOutputError` with one line quoting the
first lines of the output.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import OfaProfileError

__all__ = ["BenchmarkRun", "BenchmarkOutputError", "parse_benchmark_output", "first_lines"]

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_PAIR = re.compile(rf"\b(count|first|curr|min|max|avg|std)=({_NUM})")
_RUNNING = re.compile(r"Running benchmark for at least (\d+) iterations")
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
    rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})")
_SUMMARY_OLD = re.compile(rf"Average inference timings in us: Warmup: ({_NUM}), Init: ({_NUM}), no stats: ({_NUM})")
_LITERT_ROW = re.compile(rf"^(Model initialization|Warmup \((?:first|avg)\)|Inference \((?:avg|min|max|median|std|p5|p95)\))"
                         rf":\s+({_NUM}) ms(?: \((\d+) runs\))?\s*$")
# lines that explain a failure better than "no timings": shown first in the error message
_FAILURE = re.compile(r"(ERROR|Error|error:|Failed|failed|CANNOT LINK|not executable|not found|No such file|"
                      r"Permission denied|Segmentation fault|Aborted|Traceback|Exec format error|inaccessible)")


class BenchmarkOutputError(OfaProfileError):
    """The benchmark program printed no usable timings."""


@dataclass(frozen=True)
class BenchmarkRun:
    """Timings of one benchmark invocation, in milliseconds (converted from us where needed).

    ``count``/``avg_ms``/... describe the timed phase; ``warmup_*`` the warm-up phase;
    ``first_inference_ms`` the very first run; ``median_ms`` only ``litert-benchmark`` reports.
    Fields the tool did not print are None.
    """
    tool: str                      # "benchmark_model" | "benchmark_model-tf1" | "litert-benchmark"
    count: int | None              # timed runs (None: only the summary line was printed)
    avg_ms: float
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    first_ms: float | None = None  # first timed run
    last_ms: float | None = None   # last timed run ("curr")
    median_ms: float | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_count: int | None = None
    warmup_avg_ms: float | None = None


def first_lines(text: str, n: int = 3, width: int = 160) -> str:
    """The first ``n`` non-empty lines of ``text`` joined by `` | `` (for one-line error messages)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "(no output)"
    out = " | ".join(lines[:n])
    return out if len(out) <= width else out[: width - 3] + "..."


def _fail(text: str, source: str, what: str) -> BenchmarkOutputError:
    bad = [ln.strip() for ln in text.splitlines() if _FAILURE.search(ln)]
    hint = f"; first error line: {bad[0][:160]!r}" if bad else ""
    return BenchmarkOutputError(f"{source} printed {what}{hint}; its output begins: {first_lines(text)!r}")


def _stat(line: str) -> dict[str, float] | None:
    pairs = {k: float(v) for k, v in _PAIR.findall(line)}
    if "count" not in pairs:
        return None
    if pairs["count"] > 0 and "avg" not in pairs:
        if "curr" not in pairs:
            return None
        t = pairs["curr"]  # "count=N curr=T(all same)" or a single run: every run took T
        pairs.update(first=t, min=t, max=t, avg=t, std=0.0)
    return pairs


def parse_benchmark_output(text: str, source: str = "benchmark_model") -> BenchmarkRun:
    """Timings of one run of ``benchmark_model`` or ``litert-benchmark`` from its combined output."""
    if "BENCHMARK RESULTS" in text:
        return _parse_litert(text, source)
    lines = text.splitlines()
    phases: list[tuple[int, dict[str, float] | None]] = []   # (min iterations, stats)
    waiting: int | None = None
    for line in lines:
        m = _RUNNING.search(line)
        if m:
            if waiting is not None:
                phases.append((waiting, None))   # a phase without statistics (crashed mid-phase)
            waiting = int(m.group(1))
            continue
        if waiting is not None and "count=" in line:
            phases.append((waiting, _stat(line)))
            waiting = None
    if waiting is not None:
        phases.append((waiting, None))
    summaries = [m for m in (_SUMMARY.search(ln) for ln in lines) if m]
    olds = [m for m in (_SUMMARY_OLD.search(ln) for ln in lines) if m]
    if len(summaries) + len(olds) > 1 or len(phases) > 2:
        raise _fail(text, source, f"{max(len(summaries) + len(olds), (len(phases) + 1) // 2)} runs in one output "
                                  f"(expected one)")
    summary = summaries[0] if summaries else None
    old = olds[0] if olds else None
    us = 1e-3

    if not phases and summary:
        # only the summary line, e.g. grepped from logcat: no count, min, max or std
        avg = float(summary.group(4))
        if not math.isfinite(avg) or avg <= 0:
            raise _fail(text, source, f"an invalid 'Inference (avg)' ({summary.group(4)})")
        return BenchmarkRun(tool="benchmark_model", count=None, avg_ms=avg * us, init_ms=float(summary.group(1)) * us,
                            first_inference_ms=float(summary.group(2)) * us,
                            warmup_avg_ms=_ms_or_none(summary.group(3)))
    if len(phases) < 2 or phases[-1][1] is None:
        if not phases and not old:
            raise _fail(text, source, "no timings (no 'Running benchmark ...' phase, no 'Inference timings' line)")
        raise _fail(text, source, f"no statistics for its timed runs ({sum(1 for _, s in phases if s)} of 2 phases "
                                  f"reported)")
    warm, timed = phases[0][1], phases[-1][1]
    if timed["count"] < 1:
        raise _fail(text, source, "'count=0' for its timed runs (no inference finished)")
    if not math.isfinite(timed["avg"]) or timed["avg"] <= 0:
        raise _fail(text, source, f"an invalid average time ({timed['avg']})")
    init_ms = first_inf_ms = None
    if summary or old:
        avg_summary = float(summary.group(4) if summary else old.group(3))
        # the summary repeats the timed average (printed to 6 significant digits): they must agree
        if abs(avg_summary - timed["avg"]) > 1e-4 * max(avg_summary, timed["avg"]) + 1:
            raise _fail(text, source, f"inconsistent averages (stats line avg={timed['avg']:g}, "
                                      f"summary {avg_summary:g})")
        init_ms = float(summary.group(1) if summary else old.group(2)) * us
        first_inf_ms = float(summary.group(2)) * us if summary else None
    return BenchmarkRun(
        tool="benchmark_model-tf1" if old else "benchmark_model",
        count=int(timed["count"]), avg_ms=timed["avg"] * us, min_ms=timed["min"] * us, max_ms=timed["max"] * us,
        std_ms=timed["std"] * us, first_ms=timed["first"] * us if "first" in timed else None,
        last_ms=timed["curr"] * us if "curr" in timed else None, init_ms=init_ms, first_inference_ms=first_inf_ms,
        warmup_count=int(warm["count"]) if warm else None,
        warmup_avg_ms=warm["avg"] * us if warm and warm.get("count", 0) > 0 else None)


def _ms_or_none(us_text: str) -> float | None:
    x = float(us_text)
    return x * 1e-3 if math.isfinite(x) else None


def _parse_litert(text: str, source: str) -> BenchmarkRun:
    rows: dict[str, tuple[float, int | None]] = {}
    for line in text.splitlines():
        m = _LITERT_ROW.match(line.strip())
        if m:
            rows[m.group(1)] = (float(m.group(2)), int(m.group(3)) if m.group(3) else None)
    if "Inference (avg)" not in rows or rows["Inference (avg)"][1] is None:
        raise _fail(text, source, "a 'BENCHMARK RESULTS' block without 'Inference (avg): X ms (N runs)'")
    avg, count = rows["Inference (avg)"]
    if count < 1 or not math.isfinite(avg) or avg <= 0:
        raise _fail(text, source, f"invalid timed-run figures (avg {avg} ms over {count} runs)")

    def get(name: str) -> float | None:
        return rows[name][0] if name in rows else None

    return BenchmarkRun(tool="litert-benchmark", count=count, avg_ms=avg, min_ms=get("Inference (min)"),
                        max_ms=get("Inference (max)"), std_ms=get("Inference (std)"),
                        median_ms=get("Inference (median)"), init_ms=get("Model initialization"),
                        first_inference_ms=get("Warmup (first)"),
                        warmup_count=rows["Warmup (avg)"][1] if "Warmup (avg)" in rows else None,
                        warmup_avg_ms=get("Warmup (avg)"))
