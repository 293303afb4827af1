"""Shared by the timing benchmarks: run on one core at raised priority (where permitted)."""
from __future__ import annotations

import os


def pin_to_one_core(cpu: int | None = None) -> None:
    """Pin this process (and the threads it starts later) to ``cpu`` (default: the last core), nice -10."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu if cpu is not None else max(os.sched_getaffinity(0))})
    try:
        os.nice(-10)
    except (PermissionError, OSError):
        pass
