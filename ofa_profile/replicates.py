"""The replicate policy: N passes over a list, alternating order, the lowest median per item.

A machine shared with other work (a VM, a busy laptop) slows down for seconds at a time, and a burst of
load only ever makes a figure larger.  So a figure that matters is measured in ``passes`` passes over the
whole list, each pass after the previous one (minutes apart on a long list), every second pass in reverse
order so that no item always runs first or last; an item's figure is its pass with the lowest median, which
is inflated only if the item was slow in every pass.

:func:`run_passes` is that policy, once: ``measure --passes`` (:func:`ofa_profile.measure.measure_lut`),
``calibrate --rounds`` (:func:`ofa_profile.calibrate.measure_subnets`), ``pareto --refresh``
(:func:`ofa_profile.calibrate.measure_drift`) and ``pareto --verify`` all call it.  Results already at hand
(a journal of a killed run) are passed in and not measured again; ``limit`` stops early (a rerun goes on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Mapping, Sequence, TypeVar

__all__ = ["Replicates", "run_passes", "per_item", "pass_order", "median_of"]

T = TypeVar("T")
R = TypeVar("R")

Record = Callable[[Any, Any], None]
MeasureBatch = Callable[[list, int, Record], None]


def median_of(result: Any) -> float:
    """The median (ms) of one pass's result: a number itself, an entry mapping's ``median_ms``, or the
    ``median_ms`` attribute of a :class:`~ofa_profile.timing.Measurement`."""
    if isinstance(result, (int, float)):
        return float(result)
    if isinstance(result, Mapping):
        return float(result["median_ms"])
    return float(result.median_ms)


def pass_order(items: Sequence[T], pass_index: int) -> list[T]:
    """The order of pass ``pass_index`` (0-based): passes 0, 2, 4, ... forwards, passes 1, 3, ... backwards."""
    return list(items) if pass_index % 2 == 0 else list(items)[::-1]


@dataclass(frozen=True)
class Replicates(Generic[R]):
    """What :func:`run_passes` measured and kept."""
    passes: int
    runs: Mapping[Hashable, Mapping[int, R]]     # per item key, per pass (0-based): given + measured results
    lowest: Mapping[Hashable, R]                 # items with every pass 0..passes-1: the lowest-median result
    planned: tuple[tuple[int, Hashable], ...]    # (pass, key) measured by this call, in the order measured
    remaining: int                               # (item, pass) measurements missing before this call's limit

    def medians(self, key: Hashable) -> list[float]:
        """The median of each of an item's passes 0..passes-1 (those it has)."""
        by_pass = self.runs.get(key, {})
        return [median_of(by_pass[p]) for p in range(self.passes) if p in by_pass]


def run_passes(items: Sequence[T], passes: int, measure: MeasureBatch, *,
               key: Callable[[T], Hashable] | None = None,
               have: Mapping[Hashable, Mapping[int, R]] | None = None,
               limit: int | None = None, on_plan: Callable[[int], None] | None = None) -> Replicates[R]:
    """Measure ``items`` in ``passes`` passes (pass ``p`` in :func:`pass_order`), keep each item's lowest median.

    ``measure(batch, p, record)`` measures the items of ``batch`` (a list, in that order) for pass ``p`` and
    calls ``record(item, result)`` as each one finishes (a remote profiler measures a whole batch in one
    session; :func:`per_item` adapts a plain ``fn(item, p) -> result``).  A result is a number (ms), an entry
    mapping with ``median_ms`` or a :class:`~ofa_profile.timing.Measurement`.  ``key(item)`` names an item
    (default: the item itself); items with the same key are measured once a pass.  ``have`` holds results
    already at hand, ``{key: {pass: result}}`` (a journal): those are not measured again, and count towards
    the lowest median (passes beyond ``passes`` included).  ``limit``: at most that many measurements this call.
``on_plan(remaining)`` is called once, before any measurement, with the number missing (before ``limit``):
to size a progress bar.

    An item's kept result (:attr:`Replicates.lowest`) is its result with the lowest median, the first such in
    the order the results came (``have``, then measured), once it has every pass 0..passes-1.
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    name: Callable[[T], Hashable] = key or (lambda x: x)
    runs: dict[Hashable, dict[int, R]] = {k: dict(v) for k, v in (have or {}).items()}
    plan: list[tuple[int, T]] = []
    seen: set[tuple[int, Hashable]] = set()
    for p in range(passes):
        for item in pass_order(items, p):
            k = name(item)
            if p in runs.get(k, {}) or (p, k) in seen:
                continue
            seen.add((p, k))
            plan.append((p, item))
    remaining = len(plan)
    if on_plan is not None:
        on_plan(remaining)
    if limit is not None:
        plan = plan[:limit]
    for p in range(passes):
        batch = [item for q, item in plan if q == p]
        if not batch:
            continue

        def record(item: T, result: R, p: int = p) -> None:
            runs.setdefault(name(item), {})[p] = result
        measure(batch, p, record)
    lowest = {k: min(by_pass.values(), key=median_of) for k, by_pass in runs.items()
              if all(p in by_pass for p in range(passes))}
    return Replicates(passes, runs, lowest, tuple((p, name(item)) for p, item in plan), remaining)


def per_item(fn: Callable[[T, int], R]) -> MeasureBatch:
    """A ``measure`` for :func:`run_passes` from ``fn(item, pass) -> result``: the batch one item at a time."""
    def measure(batch: list, p: int, record: Record) -> None:
        for item in batch:
            record(item, fn(item, p))
    return measure
