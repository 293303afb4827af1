"""The figures of ``ofa-profile plot``: each function gathers its data (latency sources, LUTs, predictors,
frontiers) and draws it with :mod:`ofa_profile.plots`; each returns the path it wrote."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .adapt import read_latency_csv, score_latency
from .encodings import ArchArrays, BlockTable
from .errors import OfaProfileError
from .latency import lut_latency_fn
from .lut import load_lut
from .pareto import predictor_block, resolve_predictor, search_resolutions, source_title, speed_check_source
from .plots import plot_frontier, plot_lut_heatmap, plot_predicted_vs_measured, plot_rank_comparison
from .search import pareto_search, resolve_latency_source
from .space import get_space

__all__ = ["frontier_figure", "predicted_figure", "heatmap_figure", "ranks_figure"]


def _quiet(msg: str) -> None:
    pass


def _timed_label(lut: Any) -> str:
    """What a latency source's figures time (a LUT's :class:`~ofa_profile.timed.Timed`; an adapter: not recorded)."""
    return lut.timed.label(lut.runtime) if lut is not None else "a few-shot adapter (what was timed: its LUTs')"


def frontier_figure(out: str, refs: Sequence[tuple[str | None, str | None]], budget_ms: float | None = None, *,
                    space: str | None = None, resolutions: str | None = None, accuracy: str | None = None,
                    predictor: str | None = None, accuracy_data: str | None = None, n_random: int = 2000,
                    seed: int = 0, speed_check: bool = False, rescale: bool = False,
                    log: Callable[[str], None] = _quiet) -> Path:
    """The Pareto frontier of each latency source over a cloud of ``n_random`` random subnets; ``refs``: one
    ``(device, None)`` or ``(None, lut_file)`` per source; with ``budget_ms``, the budget and the best subnet
    under it.  Each panel names its device and LUT file.  ``speed_check``: a shipped LUT used on a device of this
    machine is speed-checked as ``pareto`` does (one warning line when off; ``rescale`` scales by its factor)."""
    import random

    fronts, clouds, best, timed = {}, {}, {}, []
    pred = None
    for d, f in refs:
        src = resolve_latency_source(d, f)
        _, src = speed_check_source(src, d, speed_check, rescale, log=log)
        sp = get_space(space or src.space)
        if pred is None:
            pred, why = resolve_predictor(predictor, accuracy_data, accuracy, sp.name, log=log)
        pred.check_space(sp.name)
        res = search_resolutions(resolutions, sp.name, src.resolutions, pred, src.lut, log=log)
        label = predictor_block(pred, why, res, log=log)["label"]
        pr = pareto_search(sp, src.fn, pred, seed=seed, resolutions=res, effort="fast")
        rng = random.Random(seed)
        cloud = [sp.sample(rng, resolution=list(res)) for _ in range(n_random)]
        name = f"{src.name}: {source_title(src)}"
        if name in fronts:
            name = f"{name} ({f or d})"
        fronts[name], clouds[name] = pr.frontier, (src.fn(cloud), pred.predict(cloud))
        best[name] = pr.best_under(budget_ms) if budget_ms is not None else None
        timed.append(f"{name}: {_timed_label(src.lut)}")
    return plot_frontier(out, fronts, clouds, budget_ms=budget_ms, best=best, accuracy_label=label,
                         title="\n".join(timed))


def predicted_figure(out: str, measurements: str, column: str | None = None, lut: str | None = None,
                     adapter: str | None = None, band: float = 0.05, calibrated: bool = True) -> Path:
    """Predicted (by a LUT or a few-shot adapter) vs measured latency of the subnets of a CSV, with the
    relative ``band`` around y = x; the title gives the share within +-5 % and Spearman."""
    data = read_latency_csv(measurements)
    y = data.column(column)
    src = resolve_latency_source(None, lut, adapter, calibrated=calibrated)
    pred = src.fn.on_arrays(ArchArrays.from_specs(list(data.specs)))
    sc = score_latency(pred, y)
    return plot_predicted_vs_measured(out, pred, y, band=band,
                                      title=f"{src.name}: {sc.within_5pct * 100:.1f} % within +-5 %, "
                                            f"Spearman {sc.spearman:.3f} (n={sc.n})\n{_timed_label(src.lut)}")


def heatmap_figure(out: str, lut_refs: Sequence[str], resolution: int | None = None) -> Path:
    """A heat map of each LUT (file or device) at ``resolution`` [default: the largest all of them cover]."""
    lut_list = [load_lut(x) for x in lut_refs]
    if not lut_list:
        raise OfaProfileError("give at least one --device or --lut")
    common = set.intersection(*(set(lt.resolutions) for lt in lut_list))
    r = resolution if resolution is not None else (max(common) if common else None)
    if r is None or r not in common:
        raise OfaProfileError(f"resolution {r} is not covered by every LUT (common: {sorted(common) or 'none'}); "
                              f"pass --resolution")
    tables: dict[str, Any] = {}
    for lt in lut_list:
        name = lt.device if lt.device not in tables else f"{lt.device} ({lt.source})"
        tables[name] = BlockTable.from_lut(lt, [r])
    title = "\n".join(f"{name}: {_timed_label(lt)}" for name, lt in zip(tables, lut_list))
    return plot_lut_heatmap(out, tables, r, title=title)


def ranks_figure(out: str, lut_refs: Sequence[str], n_subnets: int = 25, resolution: int | None = None,
                 seed: int = 0, calibrated: bool = True) -> Path:
    """The same ``n_subnets`` seeded random subnets ranked by latency on each LUT (at least two), at
    ``resolution`` [default: random among those all of them cover]."""
    import random

    lut_list = [load_lut(x) for x in lut_refs]
    if len(lut_list) < 2:
        raise OfaProfileError("give at least two LUTs (--device / --lut) to compare rankings")
    common = sorted(set.intersection(*(set(lt.resolutions) for lt in lut_list)))
    if not common or (resolution is not None and resolution not in common):
        raise OfaProfileError(f"the LUTs share no resolution{'' if resolution is None else f' {resolution}'} "
                              f"(common: {common or 'none'})")
    sp = get_space(lut_list[0].space)
    rng = random.Random(seed)
    specs = [sp.sample(rng, resolution=[resolution] if resolution else common) for _ in range(n_subnets)]
    lats = {}
    for lt in lut_list:
        name = lt.device if lt.device not in lats else f"{lt.device} ({lt.source})"
        lats[name] = lut_latency_fn(lt, calibrated=calibrated)(specs)
    note = "\n".join(f"{name}: {_timed_label(lt)}" for name, lt in zip(lats, lut_list))
    return plot_rank_comparison(out, lats, labels=[s.short()[:14] for s in specs], note=note)
