"""Latency-constrained search over a supernet: best subnet under a budget, and the whole Pareto frontier.

Inputs are plain batched callables, ``latency_ms_fn(list[SubnetSpec]) -> np.ndarray`` and
``accuracy_fn(list[SubnetSpec]) -> np.ndarray``.  A callable that also has an
``on_arrays(ArchArrays)`` method (:class:`BatchFn`, :class:`~ofa_profile.accuracy.AccuracyPredictor`,
:func:`table_latency_fn`) is called on integer arrays directly: no spec objects are built
in the inner loop, which is what makes a budget take well under a second.

Algorithms (all seeded; the seed is recorded in every result):

:func:`search`           constrained evolution (population, mutation, crossover, tournament-free
                         truncation selection, de-duplication) followed by a greedy local search
                         over every single-gene change of the best subnet until no feasible change
                         improves it.  The default.
:func:`pareto_search`    the frontier: the constrained search over a ladder of budgets, each one
                         warm-started from the archive of everything evaluated so far; returns the
                         non-dominated set of the archive and the best subnet per budget.
:func:`ofa_evolution`    OFA's own ``EvolutionFinder`` (population 100, parents 25 %, mutation 50 %,
                         gene mutation probability 0.1), generation-batched; a baseline.
:func:`random_search`    best of N random feasible subnets; a baseline.

Compound spaces (CompOFA: 243 subnets per resolution) are searched exhaustively by every
entry point: the answer is exact.

A budget that no subnet meets raises :class:`~ofa_profile.errors.OfaProfileError` naming the
fastest latency found in the space.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from .accuracy import ArchArrays
from .adapt import BlockTable, macs_table, params_table
from .errors import OfaProfileError
from .space import Space, SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "SearchResult", "ParetoResult", "BatchFn", "table_latency_fn", "lut_latency_fn", "adapter_latency_fn",
    "macs_latency_fn", "LatencySource", "resolve_latency_source", "search", "pareto_search", "ofa_evolution",
    "random_search", "pareto_front", "fastest_latency_ms", "parse_budget_ms", "NoFeasibleSubnet",
]

SubnetFn = Callable[[Sequence[SubnetSpec]], "np.ndarray"]


class NoFeasibleSubnet(OfaProfileError):
    """No subnet of the space meets the latency budget."""


# -- results -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchResult:
    """One subnet with its predicted latency and accuracy, MACs and parameter count."""
    spec: SubnetSpec
    latency_ms: float
    accuracy: float
    macs: int
    params: int

    def as_dict(self) -> dict[str, Any]:
        return {"arch": {"space": self.spec.space, **self.spec.canonical().to_ofa()}, "short": self.spec.short(),
                "latency_ms": round(self.latency_ms, 6), "accuracy": round(self.accuracy, 6), "macs": self.macs,
                "params": self.params}


@dataclass(frozen=True)
class ParetoResult:
    """The non-dominated subnets (ascending latency) and the best subnet of each budget."""
    space: str
    frontier: tuple[SearchResult, ...]
    budgets_ms: tuple[float, ...]
    best: tuple[SearchResult | None, ...]   # one per budget (None: nothing meets it)
    seed: int
    method: str
    n_evaluated: int
    seconds: float

    def best_under(self, budget_ms: float) -> SearchResult | None:
        ok = [r for r in self.frontier if r.latency_ms <= budget_ms]
        return max(ok, key=lambda r: r.accuracy) if ok else None

    def as_dict(self) -> dict[str, Any]:
        return {"space": self.space, "seed": self.seed, "method": self.method, "n_evaluated": self.n_evaluated,
                "seconds": round(self.seconds, 3),
                "budgets": [{"budget_ms": b, "best": None if r is None else r.as_dict()}
                            for b, r in zip(self.budgets_ms, self.best)],
                "frontier": [r.as_dict() for r in self.frontier]}


# -- batched functions ----------------------------------------------------------------------------------

class BatchFn:
    """A batched subnet function that also takes :class:`ArchArrays` (``on_arrays``), the fast path."""

    def __init__(self, on_arrays: Callable[[ArchArrays], "np.ndarray"], name: str = "") -> None:
        self._fn = on_arrays
        self.name = name

    def on_arrays(self, a: ArchArrays) -> "np.ndarray":
        return self._fn(a)

    def __call__(self, specs: Sequence[SubnetSpec]) -> "np.ndarray":
        return self._fn(specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(list(specs)))

    def __repr__(self) -> str:
        return f"BatchFn({self.name or self._fn!r})"


def table_latency_fn(table: BlockTable, scale: float = 1.0, offset_ms: float = 0.0, name: str = "") -> BatchFn:
    """Latency (ms) as ``offset_ms + scale * table.total(subnet)``, vectorised."""
    return BatchFn(lambda a: offset_ms + scale * table.total(a), name or f"table:{table.name}")


def lut_latency_fn(lut: Any, calibrated: bool = True, resolutions: Sequence[int] | None = None,
                   check: int = 8) -> BatchFn:
    """Batched, vectorised ``lut.predict_ms`` (calibrated when the LUT holds a calibration and
    ``calibrated``) or ``lut.lut_sum_ms``.  The fast path is checked against the LUT's own per-subnet
    prediction on ``check`` seeded subnets; if they disagree (a calibration format this module does
    not know), the exact per-subnet path is used instead, with a warning."""
    import random
    import warnings

    import numpy as np
    from .adapt import BlockTable
    sp = get_space(lut.space)
    table = BlockTable.from_lut(lut, resolutions)
    cal = lut.calibration if calibrated else None
    if cal:
        from .calibrate import CALIBRATION_FORMAT
        names = list(cal.get("feature_names", ()))
        known = (["fixed_ms"] + [f"stage{i + 1}_ms" for i in range(sp.n_stages)] + ["n_blocks", "r_norm"])
        if cal.get("format") != CALIBRATION_FORMAT or names != known:
            raise OfaProfileError(f"LUT {lut.source} has a calibration this version cannot apply "
                                  f"({cal.get('format')}); re-run `ofa-profile calibrate`")
        mean = np.asarray(cal["feature_mean"], dtype=float)
        scale = np.asarray(cal["feature_scale"], dtype=float)
        coef = np.asarray(cal["coef"], dtype=float)
        icpt = float(cal["intercept"])

        def fast(a: ArchArrays) -> "np.ndarray":
            X = np.concatenate([table.fixed_cost(a)[:, None], table.per_stage(a), a.d.sum(axis=1)[:, None],
                                (a.r / 224.0)[:, None]], axis=1)
            return icpt + ((X - mean) / scale) @ coef
    else:
        def fast(a: ArchArrays) -> "np.ndarray":
            return table.total(a)
    name = f"lut:{lut.device}{' calibrated' if cal else ' sum'}"
    rng = random.Random(0)
    probe = [sp.sample(rng, resolution=list(table.resolutions)) for _ in range(check)]
    exact = np.array([lut.predict_ms(s, calibrated=bool(cal)) for s in probe])
    if np.allclose(fast(ArchArrays.from_specs(probe)), exact, rtol=1e-9, atol=1e-9):
        return BatchFn(fast, name)
    warnings.warn(f"vectorised LUT prediction disagrees with {lut.source}'s own; using the (slower) exact path",
                  stacklevel=2)
    return BatchFn(lambda a: np.array([lut.predict_ms(s, calibrated=bool(cal)) for s in a.to_specs()]),
                   name + " (exact path)")


def adapter_latency_fn(adapter: Any, prior_fn: Any = None) -> BatchFn:
    """Batched latency of a few-shot :class:`~ofa_profile.adapt.LatencyAdapter` (with its prior's function
    when it was fitted with one, e.g. :func:`lut_latency_fn` of the same LUT)."""
    if adapter.uses_prior and prior_fn is None:
        raise OfaProfileError(f"adapter for {adapter.device} was fitted with a prior ({adapter.prior}); "
                              f"pass the same LUT (--lut) to use it")

    table = adapter.as_block_table()
    if table is not None:
        return BatchFn(table.total, f"adapter:{adapter.device}")

    def fn(a: ArchArrays) -> "np.ndarray":
        return adapter.predict_ms(a, _call(prior_fn, a) if adapter.uses_prior else None)
    return BatchFn(fn, f"adapter:{adapter.device}")


@dataclass(frozen=True)
class LatencySource:
    """Where a command's latencies come from."""
    fn: Any
    name: str           # device name for titles and file names
    space: str
    resolutions: tuple[int, ...]
    description: str
    # held-out calibration subnets (spec, measured ms) of a calibrated LUT: what --margin auto learns from
    held_out: tuple = ()
    lut: Any = None     # the loaded LUT behind it, if any (what --refresh re-measures against)

    def auto_margin_pct(self, quantile: float = 0.9) -> float:
        """The safety margin (percent of the budget) that covers ``quantile`` of the latency source's own
        under-predictions on its held-out calibration subnets: the q-quantile of measured/predicted - 1,
        at least 0.  Raises when the source holds no such subnets (an uncalibrated LUT, an adapter)."""
        import numpy as np
        if not self.held_out:
            raise OfaProfileError("--margin auto needs a calibrated LUT (its held-out subnets set the margin); "
                                  "give --margin PCT instead")
        specs = [s for s, _ in self.held_out]
        measured = np.array([m for _, m in self.held_out], dtype=float)
        pred = np.asarray(self.fn(specs), dtype=float)
        return float(max(0.0, np.quantile(measured / pred - 1.0, quantile) * 100.0))

    def scaled(self, factor: float, why: str) -> "LatencySource":
        """The same source with every latency multiplied by ``factor`` (e.g. the device's drift since
        calibration, :func:`~ofa_profile.calibrate.measure_drift`).  Held-out figures are scaled too, so
        ``--margin auto`` is unchanged."""
        if not factor > 0:
            raise OfaProfileError(f"a latency scale must be > 0, got {factor}")
        inner = self.fn
        fn = BatchFn(lambda a: factor * _call(inner, a), f"{getattr(inner, 'name', inner)} x {factor:.3f}")
        return LatencySource(fn, self.name, self.space, self.resolutions, f"{self.description}, x {factor:.3f} ({why})",
                             tuple((s, m * factor) for s, m in self.held_out), self.lut)


def resolve_latency_source(device: str | None = None, lut: str | None = None, adapter: str | None = None,
                           calibrated: bool = True) -> LatencySource:
    """``--device NAME`` (its shipped LUT), ``--lut FILE`` or ``--adapter FILE`` (with ``--lut`` for its prior)."""
    from .lut import load_lut
    if device and lut:
        raise OfaProfileError("give either --device (a shipped LUT) or --lut FILE, not both")
    ref = lut or device
    if adapter is not None:
        from .adapt import load_adapter
        ad = load_adapter(adapter)
        prior = None
        if ad.uses_prior:
            if ref is None:
                raise OfaProfileError(f"adapter {adapter} was fitted with a prior ({ad.prior}); pass that LUT with --lut")
            prior_lut = load_lut(ref)
            prior = lut_latency_fn(prior_lut, calibrated=calibrated)
            ad.check(adapter, prior_fn=prior, resolutions=prior_lut.resolutions)  # with its prior, now known
        sp = get_space(ad.space)
        return LatencySource(adapter_latency_fn(ad, prior), ad.device, sp.name, sp.resolutions,
                             f"few-shot adapter {adapter} ({ad.info.get('n_fit', '?')} measured subnets)")
    if ref is None:
        raise OfaProfileError("no latency source: pass --device NAME (a shipped LUT), --lut FILE or --adapter FILE")
    return latency_source_from_lut(load_lut(ref), calibrated=calibrated)


def latency_source_from_lut(lt: Any, calibrated: bool = True) -> LatencySource:
    """The latency source of a loaded LUT (its calibrated predictor unless ``calibrated`` is False)."""
    fn = lut_latency_fn(lt, calibrated=calibrated)
    how = "calibrated LUT" if (lt.calibration and calibrated) else "LUT sum"
    held = ()
    if lt.calibration and calibrated:
        held = tuple((SubnetSpec.from_ofa(x["arch"], space=lt.space), float(x["measured_ms"]))
                     for x in lt.calibration.get("samples", []) if x.get("split") == "test")
    return LatencySource(fn, lt.device, lt.space, tuple(lt.resolutions), f"{how} {lt.source}", held, lt)


def macs_latency_fn(space: str, ms_per_mmac: float = 0.05, ms_per_block: float = 0.1) -> BatchFn:
    """A development stand-in for a device: ``ms_per_mmac * MMACs + ms_per_block * blocks``."""
    t = macs_table(get_space(space).name)

    def fn(a: ArchArrays) -> "np.ndarray":
        return ms_per_mmac * t.total(a) / 1e6 + ms_per_block * a.d.sum(axis=1)
    return BatchFn(fn, f"macs-proxy({ms_per_mmac} ms/MMAC, {ms_per_block} ms/block)")


def _call(fn: Any, a: ArchArrays) -> "np.ndarray":
    import numpy as np
    if len(a) == 0:
        return np.zeros(0)
    fast = getattr(fn, "on_arrays", None)
    out = fast(a) if fast is not None else fn(a.to_specs())
    out = np.asarray(out, dtype=float).reshape(-1)
    if out.shape[0] != len(a):
        raise OfaProfileError(f"a search function returned {out.shape[0]} values for {len(a)} subnets")
    return out


class _Evaluator:
    """Evaluates and caches (latency, accuracy) by canonical subnet; keeps the archive."""

    def __init__(self, latency_fn: Any, accuracy_fn: Any) -> None:
        self.latency_fn = latency_fn
        self.accuracy_fn = accuracy_fn
        self.cache: dict[bytes, int] = {}
        self.parts: list[ArchArrays] = []
        self.lat: list["np.ndarray"] = []
        self.acc: list["np.ndarray"] = []
        self.n = 0

    def __call__(self, a: ArchArrays) -> tuple["np.ndarray", "np.ndarray"]:
        import numpy as np
        keys = a.row_keys()
        idx = np.empty(len(a), dtype=np.int64)
        new_rows: list[int] = []
        pending: dict[bytes, int] = {}
        for i, k in enumerate(keys.tolist()):
            j = self.cache.get(k)
            if j is None:
                j = pending.get(k)
                if j is None:
                    j = self.n + len(new_rows)
                    pending[k] = j
                    new_rows.append(i)
            idx[i] = j
        if new_rows:
            sub = a.take(np.asarray(new_rows))
            lat = _call(self.latency_fn, sub)
            acc = _call(self.accuracy_fn, sub)
            if not (np.isfinite(lat).all() and np.isfinite(acc).all()):
                raise OfaProfileError("a latency or accuracy function returned NaN/inf; check the LUT covers "
                                      "these resolutions and the predictor is valid")
            self.parts.append(sub)
            self.lat.append(lat)
            self.acc.append(acc)
            self.cache.update(pending)
            self.n += len(new_rows)
        all_lat = self.all_lat()
        all_acc = self.all_acc()
        return all_lat[idx], all_acc[idx]

    def all_lat(self) -> "np.ndarray":
        import numpy as np
        if len(self.lat) > 1:
            self.lat = [np.concatenate(self.lat)]
        return self.lat[0] if self.lat else np.zeros(0)

    def all_acc(self) -> "np.ndarray":
        import numpy as np
        if len(self.acc) > 1:
            self.acc = [np.concatenate(self.acc)]
        return self.acc[0] if self.acc else np.zeros(0)

    def all_arrays(self) -> ArchArrays:
        if len(self.parts) > 1:
            self.parts = [ArchArrays.concat(self.parts)]
        return self.parts[0]


# -- genomes: full gene arrays (values of skipped blocks kept, as OFA does) -------------------------------------

@dataclass(frozen=True, eq=False)
class _Genes:
    ks: "np.ndarray"  # [N, n_blocks] values, skipped blocks included
    e: "np.ndarray"
    d: "np.ndarray"   # [N, n_stages]
    r: "np.ndarray"   # [N]

    def __len__(self) -> int:
        return int(self.r.shape[0])

    def take(self, idx: Any) -> "_Genes":
        return _Genes(self.ks[idx], self.e[idx], self.d[idx], self.r[idx])

    @staticmethod
    def concat(parts: Sequence["_Genes"]) -> "_Genes":
        import numpy as np
        return _Genes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ks", "e", "d", "r")))

    def arrays(self, space: str) -> ArchArrays:
        import numpy as np
        sp = get_space(space)
        pos = np.tile(np.arange(sp.max_depth), sp.n_stages)
        act = pos[None, :] < np.repeat(self.d, sp.max_depth, axis=1)
        return ArchArrays(space, np.where(act, self.ks, 0), np.where(act, self.e, 0), self.d, self.r)


class _Space:
    """Choice arrays of a space for vectorised sampling and mutation."""

    def __init__(self, space: Space, resolutions: Sequence[int]) -> None:
        import numpy as np
        self.sp = space
        self.name = space.name
        self.kernels = np.array(space.kernels)
        self.expands = np.array(space.expands)
        stage_d = [tuple(space.stage_depths(s)) for s in range(space.n_stages)]
        self.depths = np.array(sorted(set().union(*stage_d)))          # every depth some stage allows
        self.uniform = len(set(stage_d)) == 1                          # MobileNetV3: one choice set
        # [n_stages, len(depths)]: which depth each stage allows; per-stage smallest and largest
        self.dvalid = np.array([[d in sd for d in self.depths] for sd in stage_d])
        self.dmin = np.array([min(sd) for sd in stage_d])
        self.dmax = np.array([max(sd) for sd in stage_d])
        self.res = np.array(sorted(resolutions))

    def stage_choices(self, st: int) -> "np.ndarray":
        return self.depths[self.dvalid[st]]

    def sample(self, rng: "np.random.Generator", n: int) -> _Genes:
        import numpy as np
        sp = self.sp
        ks, e = rng.choice(self.kernels, (n, sp.n_blocks)), rng.choice(self.expands, (n, sp.n_blocks))
        if self.uniform:
            d = rng.choice(self.depths, (n, sp.n_stages))
        else:
            d = np.stack([rng.choice(self.stage_choices(st), n) for st in range(sp.n_stages)], axis=1)
        return _Genes(ks, e, d, rng.choice(self.res, n))

    def mutate(self, rng: "np.random.Generator", g: _Genes, prob: float) -> _Genes:
        import numpy as np
        n = len(g)
        fresh = self.sample(rng, n)
        out = []
        for f in ("ks", "e", "d", "r"):
            cur, new = getattr(g, f), getattr(fresh, f)
            m = rng.random(cur.shape) < prob
            out.append(np.where(m, new, cur))
        return _Genes(*out)

    def mutate_local(self, rng: "np.random.Generator", g: _Genes, prob: float) -> _Genes:
        """Like :meth:`mutate`, but the resolution moves to a neighbouring value (small steps)."""
        import numpy as np
        m = self.mutate(rng, g, prob)
        ri = np.searchsorted(self.res, g.r)
        step = rng.choice(np.array([-2, -1, 1, 2]), len(g))
        move = rng.random(len(g)) < prob * 2
        ri = np.clip(np.where(move, ri + step, ri), 0, len(self.res) - 1)
        return _Genes(m.ks, m.e, m.d, self.res[ri])

    def crossover(self, rng: "np.random.Generator", a: _Genes, b: _Genes) -> _Genes:
        import numpy as np
        out = []
        for f in ("ks", "e", "d", "r"):
            x, y = getattr(a, f), getattr(b, f)
            out.append(np.where(rng.random(x.shape) < 0.5, x, y))
        return _Genes(*out)

    def neighbours(self, g: _Genes) -> _Genes:
        """Every single-gene change of one genome (block k/e, stage depth, resolution)."""
        import numpy as np
        sp = self.sp
        ks, e, d, r = g.ks[0], g.e[0], g.d[0], int(g.r[0])
        rows_ks, rows_e, rows_d, rows_r = [], [], [], []

        def add(k2: "np.ndarray", e2: "np.ndarray", d2: "np.ndarray", r2: int) -> None:
            rows_ks.append(k2); rows_e.append(e2); rows_d.append(d2); rows_r.append(r2)
        for s in range(sp.n_stages):
            for b in range(int(d[s])):
                i = s * sp.max_depth + b
                for kk in self.kernels:
                    for ee in self.expands:
                        if kk == ks[i] and ee == e[i]:
                            continue
                        k2 = ks.copy(); e2 = e.copy(); k2[i] = kk; e2[i] = ee
                        add(k2, e2, d, r)
            for dd in self.stage_choices(s):
                if dd == d[s]:
                    continue
                d2 = d.copy(); d2[s] = dd
                if dd > d[s]:  # a new block: try each of its choices
                    i = s * sp.max_depth + int(dd) - 1
                    for kk in self.kernels:
                        for ee in self.expands:
                            k2 = ks.copy(); e2 = e.copy(); k2[i] = kk; e2[i] = ee
                            add(k2, e2, d2, r)
                else:
                    add(ks, e, d2, r)
        for r2 in self.res:
            if r2 != r:
                add(ks, e, d, int(r2))
        return _Genes(np.array(rows_ks), np.array(rows_e), np.array(rows_d), np.array(rows_r))


# -- helpers ---------------------------------------------------------------------------------------------

def parse_budget_ms(text: str | float | int) -> float:
    """``"20ms"``, ``"20"``, ``"0.02s"``, ``"20 ms"``, ``"1.5e1ms"`` -> milliseconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        v = float(text)
    else:
        t = str(text).strip().lower().replace(" ", "")
        mult = 1.0
        if t.endswith("ms"):
            t = t[:-2]
        elif t.endswith("us"):
            t, mult = t[:-2], 1e-3
        elif t.endswith("s"):
            t, mult = t[:-1], 1e3
        try:
            v = float(t) * mult
        except ValueError:
            raise OfaProfileError(f"bad latency budget {text!r}; write e.g. 20ms, 20 or 0.02s") from None
    if not math.isfinite(v) or v <= 0:
        raise OfaProfileError(f"latency budget must be a positive number of ms, got {text!r}")
    return v


def pareto_front(latency_ms: "np.ndarray", accuracy: "np.ndarray") -> "np.ndarray":
    """Indices of the non-dominated points (lower latency, higher accuracy), ascending latency."""
    import numpy as np
    lat = np.asarray(latency_ms, dtype=float)
    acc = np.asarray(accuracy, dtype=float)
    order = np.lexsort((-acc, lat))  # by latency, ties: best accuracy first
    best = -np.inf
    keep = []
    for i in order.tolist():
        if acc[i] > best:
            keep.append(i)
            best = acc[i]
    return np.array(keep, dtype=np.int64)


def _resolutions(space: Space, resolutions: Iterable[int] | None) -> tuple[int, ...]:
    from .space import parse_resolutions
    if resolutions is None:
        return space.resolutions
    return parse_resolutions(list(resolutions), space)


def _compound_all(space: Space, res: Sequence[int]) -> ArchArrays:
    specs = [s for r in res for s in space.iter_compound(r)]
    return ArchArrays.from_specs(specs)


def fastest_latency_ms(space: str | Space, latency_fn: Any, resolutions: Iterable[int] | None = None,
                       seed: int = 0) -> tuple[float, SubnetSpec]:
    """The fastest subnet found: the smallest subnet at each resolution (and, for a compound space,
    every subnet), plus a few hundred random ones in case latency is not monotone."""
    import numpy as np
    sp = get_space(space)
    res = _resolutions(sp, resolutions)
    if sp.compound:
        a = _compound_all(sp, res)
    else:
        s = _Space(sp, res)
        rng = np.random.default_rng(seed)
        smallest = ArchArrays.from_specs([sp.smallest(r) for r in res])
        a = ArchArrays.concat([smallest, s.sample(rng, 256).arrays(sp.name)])
    lat = _call(latency_fn, a)
    i = int(np.argmin(lat))
    return float(lat[i]), a.take([i]).to_specs()[0]


def _results(space: str, a: ArchArrays, lat: "np.ndarray", acc: "np.ndarray") -> list[SearchResult]:
    import numpy as np
    if len(a) == 0:
        return []
    macs = np.rint(macs_table(space).total(a)).astype(np.int64)
    params = np.rint(params_table(space).total(a)).astype(np.int64)
    specs = a.to_specs()
    return [SearchResult(specs[i], float(lat[i]), float(acc[i]), int(macs[i]), int(params[i])) for i in range(len(a))]


def _no_feasible(space: Space, budget_ms: float, fastest: float, spec: SubnetSpec) -> NoFeasibleSubnet:
    return NoFeasibleSubnet(f"no subnet of {space.name} meets {budget_ms:g} ms: the fastest found takes "
                            f"{fastest:.3f} ms ({spec.short()}); raise the budget to at least that")


# -- the constrained search -------------------------------------------------------------------------------

def _feasible_init(s: _Space, ev: _Evaluator, rng: "np.random.Generator", budget_ms: float, n: int,
                   seed_genes: _Genes | None, max_rounds: int = 30) -> _Genes:
    """n distinct feasible genomes: the seeds that fit, then random samples, shrunk towards the
    smallest subnet when random ones rarely fit (tight budgets)."""
    import numpy as np
    got: list[_Genes] = []
    have = 0
    if seed_genes is not None and len(seed_genes):
        lat, _ = ev(seed_genes.arrays(s.name))
        ok = np.flatnonzero(lat <= budget_ms)
        if len(ok):
            got.append(seed_genes.take(ok[:n]))
            have += min(len(ok), n)
    shrink = 0.0
    for _ in range(max_rounds):
        if have >= n:
            break
        cand = s.sample(rng, max(2 * n, 64))
        if shrink > 0:  # bias towards small choices: push a share of genes to their minimum
            cand = _Genes(np.where(rng.random(cand.ks.shape) < shrink, s.kernels.min(), cand.ks),
                          np.where(rng.random(cand.e.shape) < shrink, s.expands.min(), cand.e),
                          np.where(rng.random(cand.d.shape) < shrink, s.dmin[None, :], cand.d),
                          np.where(rng.random(len(cand)) < shrink, s.res.min(), cand.r))
        lat, _ = ev(cand.arrays(s.name))
        ok = np.flatnonzero(lat <= budget_ms)
        if len(ok) < len(cand) // 8:
            shrink = min(1.0, shrink + 0.15)
        if len(ok):
            take = ok[: n - have]
            got.append(cand.take(take))
            have += len(take)
    if not got:
        return s.sample(rng, 0)
    return _Genes.concat(got)


def _select(s: _Space, pop: _Genes, ev: _Evaluator, budget_ms: float, n: int, per_res: int = 0
            ) -> tuple[_Genes, "np.ndarray"]:
    """Keep the n most accurate feasible, distinct genomes (by active architecture), sorted by accuracy.

    With ``per_res`` > 0, the best ``per_res`` of every resolution are kept first (niching): a
    resolution whose subnets need several coordinated changes to win is not lost early.
    """
    import numpy as np
    a = pop.arrays(s.name)
    lat, acc = ev(a)
    keys = a.row_keys()
    score = np.where(lat <= budget_ms, acc, -np.inf)
    order = np.argsort(-score, kind="stable")
    seen: set[bytes] = set()
    keep: list[int] = []
    per: dict[int, int] = {}
    rs = pop.r.tolist()
    rest: list[int] = []
    for i in order.tolist():
        if score[i] == -np.inf:
            break
        k = keys[i].tobytes()
        if k in seen:
            continue
        seen.add(k)
        if per_res and per.get(rs[i], 0) < per_res:
            per[rs[i]] = per.get(rs[i], 0) + 1
            keep.append(i)
        else:
            rest.append(i)
    keep = keep[:n]
    keep += rest[: n - len(keep)]
    idx = np.asarray(sorted(keep, key=lambda i: -score[i]), dtype=np.int64)
    return pop.take(idx), score[idx]


def _slot_masks(s: _Space, base: _Genes, nb: _Genes) -> "np.ndarray":
    """[M, n_blocks + n_stages + 1] bool: which blocks / stage depths / resolution each neighbour changes."""
    import numpy as np
    sp = s.sp
    blk = (nb.ks != base.ks) | (nb.e != base.e)
    dch = nb.d != base.d
    blk = blk | np.repeat(dch, sp.max_depth, axis=1)  # a depth change owns its whole stage
    return np.concatenate([blk, dch, (nb.r != base.r)[:, None]], axis=1)


def _pair_moves(s: _Space, base: _Genes, nb: _Genes, lat: "np.ndarray", acc: "np.ndarray", lat0: float,
                acc0: float, budget_ms: float, n_eval: int) -> _Genes | None:
    """Combine two non-overlapping single changes whose estimated (additive) effect fits the budget and
    improves accuracy; return the ``n_eval`` most promising combinations for real evaluation."""
    import numpy as np
    dl, da = lat - lat0, acc - acc0
    # only useful pairs: one change that gains accuracy (usually costs latency), one that frees latency
    gain = np.flatnonzero(da > 0)
    free = np.flatnonzero(dl < 0)
    if len(gain) == 0 or len(free) == 0:
        return None
    gain = gain[np.argsort(-da[gain])[:256]]
    free = free[np.argsort(da[free] / np.minimum(dl[free], -1e-12))[:256]]  # least accuracy lost per ms freed
    masks = _slot_masks(s, base, nb)
    est_l = lat0 + dl[gain][:, None] + dl[free][None, :]
    est_a = acc0 + da[gain][:, None] + da[free][None, :]
    overlap = (masks[gain].astype(np.int8) @ masks[free].T.astype(np.int8)) > 0
    ok = (est_l <= budget_ms) & (est_a > acc0) & ~overlap
    gi, fi = np.nonzero(ok)
    if len(gi) == 0:
        return None
    order = np.argsort(-est_a[gi, fi])[:n_eval]
    g1, g2 = gain[gi[order]], free[fi[order]]
    comb = []
    for f in ("ks", "e", "d", "r"):
        b = getattr(base, f)
        x1, x2 = getattr(nb, f)[g1], getattr(nb, f)[g2]
        comb.append(np.where(x1 != b, x1, x2))
    return _Genes(*comb)


def _lagrange_moves(s: _Space, base: _Genes, nb: _Genes, lat: "np.ndarray", acc: "np.ndarray", lat0: float,
                    acc0: float, budget_ms: float, n_lambda: int = 48) -> _Genes | None:
    """Re-choose every active block at once: with the single-block deltas as an additive model, the
    Lagrangian ``max sum(d_acc - lam * d_lat)`` separates by block; one candidate per ``lam`` whose
    estimated latency fits the budget (the multiple-choice knapsack's convex hull)."""
    import numpy as np
    sp = s.sp
    same = (nb.d == base.d).all(axis=1) & (nb.r == base.r)
    changed = (nb.ks != base.ks) | (nb.e != base.e)
    one = same & (changed.sum(axis=1) == 1)
    if not one.any():
        return None
    rows = np.flatnonzero(one)
    blk = changed[rows].argmax(axis=1)
    nblk = sp.n_blocks
    nk, ne = len(s.kernels), len(s.expands)
    ki = np.searchsorted(s.kernels, nb.ks[rows, blk])
    ei = np.searchsorted(s.expands, nb.e[rows, blk])
    dl = np.zeros((nblk, nk * ne))
    da = np.full((nblk, nk * ne), -np.inf)  # unavailable choices
    dl[blk, ki * ne + ei] = lat[rows] - lat0
    da[blk, ki * ne + ei] = acc[rows] - acc0
    cur_k = np.searchsorted(s.kernels, base.ks[0])
    cur_e = np.searchsorted(s.expands, base.e[0])
    da[np.arange(nblk), cur_k * ne + cur_e] = 0.0  # keeping a block as it is
    dl[np.arange(nblk), cur_k * ne + cur_e] = 0.0
    pos = np.abs(da[np.isfinite(da) & (dl != 0)])
    lat_scale = np.abs(dl[dl != 0])
    if pos.size == 0 or lat_scale.size == 0:
        return None
    ratio = np.median(pos) / np.median(lat_scale)
    lams = np.concatenate([[0.0], ratio * np.geomspace(1e-3, 1e3, n_lambda - 1)])
    obj = da[None, :, :] - lams[:, None, None] * dl[None, :, :]      # [L, blocks, choices]
    pick = np.where(np.isfinite(obj), obj, -np.inf).argmax(axis=2)  # [L, blocks]
    est_l = lat0 + np.take_along_axis(dl[None], pick[:, :, None], axis=2)[:, :, 0].sum(axis=1)
    est_a = acc0 + np.take_along_axis(np.where(np.isfinite(da), da, 0)[None], pick[:, :, None], axis=2)[:, :, 0].sum(1)
    ok = (est_l <= budget_ms * 1.02) & (est_a > acc0)  # 2 % slack: the additive model is approximate
    if not ok.any():
        return None
    pick = np.unique(pick[ok], axis=0)
    ks = s.kernels[pick // ne]
    es = s.expands[pick % ne]
    n = len(pick)
    return _Genes(ks, es, np.repeat(base.d, n, axis=0), np.repeat(base.r, n))


def _local_search(s: _Space, g: _Genes, ev: _Evaluator, budget_ms: float, max_steps: int = 100,
                  pair_evals: int = 512) -> _Genes:
    """Greedy: move to the best feasible single-gene change while one improves accuracy; when none
    does, try multi-block moves: Lagrangian re-choices of every block from the single-change deltas,
    and the most promising pairs of changes (one gains accuracy, the other frees latency)."""
    import numpy as np
    lat0, acc0 = (float(v[0]) for v in ev(g.arrays(s.name)))
    for _ in range(max_steps):
        nb = s.neighbours(g)
        lat, acc = ev(nb.arrays(s.name))
        score = np.where(lat <= budget_ms, acc, -np.inf)
        j = int(np.argmax(score))
        if score[j] > acc0 + 1e-12:
            g, lat0, acc0 = nb.take([j]), float(lat[j]), float(acc[j])
            continue
        cands = [c for c in (_lagrange_moves(s, g, nb, lat, acc, lat0, acc0, budget_ms),
                             _pair_moves(s, g, nb, lat, acc, lat0, acc0, budget_ms, pair_evals) if pair_evals
                             else None) if c is not None and len(c)]
        if not cands:
            break
        multi = _Genes.concat(cands)
        plat, pacc = ev(multi.arrays(s.name))
        pscore = np.where(plat <= budget_ms, pacc, -np.inf)
        j = int(np.argmax(pscore))
        if pscore[j] <= acc0 + 1e-12:
            break
        g, lat0, acc0 = multi.take([j]), float(plat[j]), float(pacc[j])
    return g


def _evolve(s: _Space, ev: _Evaluator, budget_ms: float, rng: "np.random.Generator", *, population: int,
            generations: int, patience: int, seed_genes: _Genes | None, local: bool,
            time_limit_s: float | None, per_res: int = 2, local_starts: int = 4) -> _Genes | None:
    import numpy as np
    t0 = time.perf_counter()
    pop = _feasible_init(s, ev, rng, budget_ms, population, seed_genes)
    if len(pop) == 0:
        return None
    pop, score = _select(s, pop, ev, budget_ms, population, per_res)
    best = float(score[0])
    stale = 0
    n_par = max(2, population // 4)
    for _ in range(generations):
        # parents: the best quarter plus the niche keepers (best of each resolution)
        par_idx = np.unique(np.concatenate([np.arange(min(n_par, len(pop))),
                                            np.unique(pop.r, return_index=True)[1]]))
        parents = pop.take(par_idx)
        pi = rng.integers(0, len(parents), population)
        mut = s.mutate_local(rng, parents.take(pi), 0.1)
        a_i = rng.integers(0, len(parents), population)
        b_i = rng.integers(0, len(parents), population)
        cross = s.crossover(rng, parents.take(a_i), parents.take(b_i))
        cross = s.mutate_local(rng, cross, 0.05)
        pop, score = _select(s, _Genes.concat([pop, mut, cross]), ev, budget_ms, population, per_res)
        if score[0] > best + 1e-12:
            best, stale = float(score[0]), 0
        else:
            stale += 1
        if stale >= patience:
            break
        if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
            break
    if not local:
        return pop.take([0])
    # local search from the best genome of each of the best few resolutions
    starts = []
    seen_r: set[int] = set()
    for i, r in enumerate(pop.r.tolist()):
        if r not in seen_r:
            seen_r.add(r)
            starts.append(i)
        if len(starts) >= local_starts:
            break
    outs = [_local_search(s, pop.take([i]), ev, budget_ms) for i in starts]
    _, accs = ev(_Genes.concat(outs).arrays(s.name))
    return outs[int(np.argmax(accs))]


# -- additive surrogate + knapsack DP ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Additive:
    """First-order additive model of (latency, accuracy) at each resolution, probed around the deepest
    subnet with every block at the smallest choice:  f = f0[r] + sum over active blocks of
    blk[r, i, c] + sum over stages of dep[r, s, d].  Exact for LUT sums, calibrated LUTs, adapters and
    ridge predictors; a guide for the rest (the real functions always judge)."""
    res: tuple[int, ...]
    f0: "np.ndarray"    # [R, 2]   (latency, accuracy)
    blk: "np.ndarray"   # [R, n_blocks, n_choices, 2]  relative to choice 0
    dep: "np.ndarray"   # [R, n_stages, n_depths, 2]   relative to the deepest

    @classmethod
    def probe(cls, s: _Space, ev: _Evaluator) -> "_Additive":
        import numpy as np
        sp = s.sp
        nk, ne, nd = len(s.kernels), len(s.expands), len(s.depths)
        nc = nk * ne
        rows = []
        for r in s.res:
            base_ks = np.full(sp.n_blocks, s.kernels[0]); base_e = np.full(sp.n_blocks, s.expands[0])
            base_d = s.dmax.copy()
            rows.append((base_ks, base_e, base_d, r))
            for i in range(sp.n_blocks):
                for c in range(1, nc):
                    k2 = base_ks.copy(); e2 = base_e.copy()
                    k2[i] = s.kernels[c // ne]; e2[i] = s.expands[c % ne]
                    rows.append((k2, e2, base_d, r))
            for st in range(sp.n_stages):
                for di in range(nd - 1):
                    d2 = base_d.copy()
                    if s.dvalid[st, di]:          # a depth the stage does not allow: probed as the base
                        d2[st] = s.depths[di]
                    rows.append((base_ks, base_e, d2, r))
        g = _Genes(np.array([x[0] for x in rows]), np.array([x[1] for x in rows]), np.array([x[2] for x in rows]),
                   np.array([x[3] for x in rows]))
        lat, acc = ev(g.arrays(s.name))
        v = np.stack([lat, acc], axis=1).reshape(len(s.res), -1, 2)
        f0 = v[:, 0]
        blk = np.zeros((len(s.res), sp.n_blocks, nc, 2))
        blk[:, :, 1:] = v[:, 1:1 + sp.n_blocks * (nc - 1)].reshape(len(s.res), sp.n_blocks, nc - 1, 2) - f0[:, None, None]
        dep = np.zeros((len(s.res), sp.n_stages, nd, 2))
        dep[:, :, :-1] = v[:, 1 + sp.n_blocks * (nc - 1):].reshape(len(s.res), sp.n_stages, nd - 1, 2) - f0[:, None, None]
        return cls(tuple(int(r) for r in s.res), f0, blk, dep)

    def solve(self, s: _Space, budget_ms: float, n_bins: int = 1500) -> _Genes:
        """Per resolution, the subnet maximising the additive accuracy under the additive latency
        (multiple-choice knapsack by dynamic programming over latency bins, costs rounded up)."""
        import numpy as np
        sp = s.sp
        ne = len(s.expands)
        out_ks, out_e, out_d, out_r = [], [], [], []
        for ri, r in enumerate(self.res):
            bl, ba = self.blk[ri, :, :, 0], self.blk[ri, :, :, 1]
            dl, da = self.dep[ri, :, :, 0], self.dep[ri, :, :, 1]
            # shift every group to non-negative costs; the shifts go to the constant part
            dl_min = np.where(s.dvalid, dl, np.inf).min(axis=1, keepdims=True)
            const = self.f0[ri, 0] + bl.min(axis=1).sum() + dl_min.sum()
            cap = budget_ms - const
            if cap < 0:
                continue
            unit = max(cap, 1e-9) / n_bins
            bcost = np.ceil((bl - bl.min(axis=1, keepdims=True)) / unit - 1e-9).astype(np.int64)
            dcost = np.ceil(np.where(s.dvalid, dl - dl_min, 0.0) / unit - 1e-9).astype(np.int64)
            T = np.full(n_bins + 1, -np.inf)
            T[0] = 0.0
            trace = []   # per stage: (block choice tables, depth choice)
            for st in range(sp.n_stages):
                tables = []
                choices = []
                cur = T
                for b in range(sp.max_depth):
                    i = st * sp.max_depth + b
                    cand = np.full((bcost.shape[1], n_bins + 1), -np.inf)
                    for c in range(bcost.shape[1]):
                        k = bcost[i, c]
                        if k <= n_bins:
                            cand[c, k:] = cur[: n_bins + 1 - k] + ba[i, c]
                    ch = cand.argmax(axis=0)
                    cur = cand[ch, np.arange(n_bins + 1)]
                    tables.append(cur); choices.append(ch)
                # depth d keeps the first d blocks: the table after block d-1, plus the depth term
                dcand = np.full((len(s.depths), n_bins + 1), -np.inf)
                for di, dv in enumerate(s.depths):
                    if not s.dvalid[st, di]:
                        continue
                    k = dcost[st, di]
                    if k <= n_bins:
                        dcand[di, k:] = tables[dv - 1][: n_bins + 1 - k] + da[st, di]
                dch = dcand.argmax(axis=0)
                T = dcand[dch, np.arange(n_bins + 1)]
                trace.append((choices, dch))
            if not np.isfinite(T).any():
                continue
            bin_ = int(np.argmax(T))
            ks = np.full(sp.n_blocks, s.kernels[0]); es = np.full(sp.n_blocks, s.expands[0])
            d = np.zeros(sp.n_stages, dtype=np.int64)
            for st in reversed(range(sp.n_stages)):
                choices, dch = trace[st]
                di = int(dch[bin_]); dv = int(s.depths[di])
                d[st] = dv
                bin_ -= int(dcost[st, di])
                for b in reversed(range(dv)):
                    i = st * sp.max_depth + b
                    c = int(choices[b][bin_])
                    ks[i] = s.kernels[c // ne]; es[i] = s.expands[c % ne]
                    bin_ -= int(bcost[i, c])
            out_ks.append(ks); out_e.append(es); out_d.append(d); out_r.append(r)
        if not out_r:
            return s.sample(np.random.default_rng(0), 0)
        return _Genes(np.array(out_ks), np.array(out_e), np.array(out_d), np.array(out_r))


def _exhaustive(space: Space, ev: _Evaluator, res: Sequence[int]) -> None:
    ev(_compound_all(space, res))


def _archive_seeds(s: _Space, ev: _Evaluator, budget_ms: float, n: int, r: int | None = None) -> _Genes | None:
    """The n most accurate feasible subnets evaluated so far (optionally at one resolution), as genomes."""
    import numpy as np
    if not ev.n:
        return None
    lat, acc = ev.all_lat(), ev.all_acc()
    a_all = ev.all_arrays()
    ok = lat <= budget_ms
    if r is not None:
        ok &= a_all.r == r
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return None
    top = idx[np.argsort(-acc[idx], kind="stable")[:n]]
    a = a_all.take(top)
    return _Genes(np.where(a.ks == 0, s.kernels.min(), a.ks), np.where(a.e == 0, s.expands.min(), a.e), a.d, a.r)


def _search_budget(s: _Space, ev: _Evaluator, budget_ms: float, rng: "np.random.Generator", *, population: int,
                   generations: int, patience: int, local: bool, refine_resolutions: int,
                   time_limit_s: float | None, additive: "_Additive | None" = None, evolve: bool = True,
                   local_starts: int = 4, refine_population: float = 0.5, restarts: int = 0) -> None:
    """1. the knapsack optimum of the additive model at every resolution, then local search from the
    best few (real functions);  2. evolution over all resolutions seeded with those;  3. for the
    ``refine_resolutions`` best resolutions, a fresh focused evolution + local search (fresh:
    seeding it from the archive collapses its diversity onto the optimum already found)."""
    import numpy as np
    seeds = None
    if additive is not None:
        dp = additive.solve(s, budget_ms)
        if len(dp):
            lat, acc = ev(dp.arrays(s.name))
            order = [i for i in np.argsort(-np.where(lat <= budget_ms, acc, -np.inf)) if lat[i] <= budget_ms]
            if local:
                outs = [_local_search(s, dp.take([i]), ev, budget_ms) for i in order[:local_starts]]
                seeds = _Genes.concat(outs + [dp.take(np.asarray(order, dtype=np.int64))])
            else:
                seeds = dp.take(np.asarray(order, dtype=np.int64))
    if not evolve:
        return
    arch = _archive_seeds(s, ev, budget_ms, population // 4)
    seed_genes = _Genes.concat([x for x in (seeds, arch) if x is not None]) if (seeds is not None or arch is not None) \
        else None
    _evolve(s, ev, budget_ms, rng, population=population, generations=generations, patience=patience,
            seed_genes=seed_genes, local=local, time_limit_s=time_limit_s)
    for _ in range(restarts):  # independent unseeded evolutions: other basins of a rugged predictor
        _evolve(s, ev, budget_ms, rng, population=max(16, int(population * refine_population)),
                generations=generations, patience=max(5, patience // 2), seed_genes=None, local=local,
                time_limit_s=time_limit_s)
    if refine_resolutions <= 0 or len(s.res) == 1:
        return
    lat, acc = ev.all_lat(), ev.all_acc()
    r_all = ev.all_arrays().r
    ok = lat <= budget_ms
    best_by_r = {int(r): float(acc[ok & (r_all == r)].max()) for r in np.unique(r_all[ok])}
    for r in sorted(best_by_r, key=lambda v: -best_by_r[v])[:refine_resolutions]:
        sub = _Space(s.sp, [r])
        _evolve(sub, ev, budget_ms, rng, population=max(16, int(population * refine_population)), generations=generations,
                patience=max(5, patience // 2), seed_genes=None,
                local=local, time_limit_s=time_limit_s, per_res=0, local_starts=1)


def search(space: str | Space, latency_ms_fn: Any, accuracy_fn: Any, budget_ms: float | str, *, seed: int = 0,
           resolutions: Iterable[int] | None = None, population: int = 128, generations: int = 300,
           patience: int = 30, local: bool = True, refine_resolutions: int = 3, effort: str = "full",
           time_limit_s: float | None = None) -> SearchResult:
    """The most accurate subnet whose predicted latency is <= ``budget_ms``.

    ``effort``: ``"fast"`` (additive-model knapsack + local search only), ``"medium"`` (+ an evolution
    seeded with those) or ``"full"`` (+ one unseeded evolution and a focused evolution at each of the
    ``refine_resolutions`` best resolutions; the default: boosted-tree predictors are rugged enough
    that one evolution can settle in a slightly worse basin).  Raises :class:`NoFeasibleSubnet` (an
    :class:`OfaProfileError`) naming the fastest latency found when nothing meets the budget.
    """
    import numpy as np
    sp = get_space(space)
    budget = parse_budget_ms(budget_ms)
    res = _resolutions(sp, resolutions)
    if effort not in ("fast", "medium", "full"):
        raise OfaProfileError(f"unknown search effort {effort!r}; choose fast, medium or full")
    ev = _Evaluator(latency_ms_fn, accuracy_fn)
    if sp.compound:
        _exhaustive(sp, ev, res)
    else:
        s = _Space(sp, res)
        _search_budget(s, ev, budget, np.random.default_rng(seed), population=population,
                       generations=generations, patience=patience, local=local,
                       refine_resolutions=refine_resolutions if effort == "full" else 0,
                       time_limit_s=time_limit_s, additive=_Additive.probe(s, ev), evolve=effort != "fast",
                       restarts=1 if effort == "full" else 0)
    return _best_feasible(sp, ev, budget, latency_ms_fn, res, seed)


def _best_feasible(sp: Space, ev: _Evaluator, budget: float, latency_fn: Any, res: Sequence[int],
                   seed: int) -> SearchResult:
    import numpy as np
    if ev.n:
        lat, acc = ev.all_lat(), ev.all_acc()
        score = np.where(lat <= budget, acc, -np.inf)
        i = int(np.argmax(score))
        if score[i] > -np.inf:
            return _results(sp.name, ev.all_arrays().take([i]), lat[[i]], acc[[i]])[0]
    fastest, spec = fastest_latency_ms(sp, latency_fn, res, seed)
    if fastest <= budget:  # pragma: no cover - the sampler found nothing although something fits
        raise OfaProfileError(f"the search found no subnet under {budget:g} ms although one takes {fastest:.3f} ms; "
                              f"rerun with another --seed")
    raise _no_feasible(sp, budget, fastest, spec)


# -- the frontier -----------------------------------------------------------------------------------------

def pareto_search(space: str | Space, latency_ms_fn: Any, accuracy_fn: Any,
                  budgets_ms: Sequence[float | str] | None = None, *, n_budgets: int = 20, seed: int = 0,
                  resolutions: Iterable[int] | None = None, population: int = 64, generations: int = 100,
                  patience: int = 10, local: bool = True, effort: str = "medium") -> ParetoResult:
    """The Pareto frontier (latency vs accuracy) and the best subnet under each budget.

    Without ``budgets_ms``, ``n_budgets`` budgets are spread evenly between the fastest and the
    slowest subnet of the space.  Budgets are searched from the tightest up (additive-model knapsack,
    local search, then an evolution warm-started from the archive of everything evaluated so far);
    the frontier is the non-dominated set of that whole archive.
    """
    import numpy as np
    t0 = time.perf_counter()
    sp = get_space(space)
    res = _resolutions(sp, resolutions)
    ev = _Evaluator(latency_ms_fn, accuracy_fn)
    fastest, _ = fastest_latency_ms(sp, latency_ms_fn, res, seed)
    if budgets_ms is None:
        slow = float(_call(latency_ms_fn, ArchArrays.from_specs([sp.largest(max(res))]))[0])
        budgets = tuple(float(b) for b in np.linspace(fastest, slow, n_budgets + 1)[1:])
    else:
        budgets = tuple(parse_budget_ms(b) for b in budgets_ms)
    rng = np.random.default_rng(seed)
    if sp.compound:
        _exhaustive(sp, ev, res)
        method = "exhaustive"
    else:
        method = f"knapsack+local+evolution over {len(budgets)} budgets"
        s = _Space(sp, res)
        additive = _Additive.probe(s, ev)
        for b in sorted(set(budgets)):
            if b < fastest:
                continue
            _search_budget(s, ev, b, rng, population=population, generations=generations, patience=patience,
                           local=local, refine_resolutions=0, time_limit_s=None, additive=additive,
                           evolve=effort != "fast", local_starts=2)
    lat, acc = ev.all_lat(), ev.all_acc()
    front = pareto_front(lat, acc)
    frontier = tuple(_results(sp.name, ev.all_arrays().take(front), lat[front], acc[front]))
    best: list[SearchResult | None] = []
    for b in budgets:
        ok = [r for r in frontier if r.latency_ms <= b]
        best.append(max(ok, key=lambda r: r.accuracy) if ok else None)
    return ParetoResult(space=sp.name, frontier=frontier, budgets_ms=budgets, best=tuple(best), seed=seed,
                        method=method, n_evaluated=ev.n, seconds=time.perf_counter() - t0)


# -- baselines --------------------------------------------------------------------------------------------

def random_search(space: str | Space, latency_ms_fn: Any, accuracy_fn: Any, budget_ms: float | str, *,
                  n: int = 10_000, seed: int = 0, resolutions: Iterable[int] | None = None,
                  max_draws: int = 2_000_000) -> SearchResult:
    """Best of ``n`` uniformly random *feasible* subnets (drawn in batches until n fit)."""
    import numpy as np
    sp = get_space(space)
    budget = parse_budget_ms(budget_ms)
    res = _resolutions(sp, resolutions)
    fastest, fspec = fastest_latency_ms(sp, latency_ms_fn, res, seed)
    if fastest > budget:
        raise _no_feasible(sp, budget, fastest, fspec)
    s = _Space(sp, res)
    rng = np.random.default_rng(seed)
    best_acc, best = -np.inf, None
    found = drawn = 0
    while found < n and drawn < max_draws:
        g = s.sample(rng, 4096)
        if sp.compound:
            g = _Genes(np.repeat(np.array(sp.compound_kernels), sp.max_depth)[None, :].repeat(len(g), 0),
                       np.vectorize(dict(sp.compound_expand).get)(np.repeat(g.d, sp.max_depth, axis=1)), g.d, g.r)
        drawn += len(g)
        a = g.arrays(sp.name)
        lat = _call(latency_ms_fn, a)
        ok = np.flatnonzero(lat <= budget)[: n - found]
        if len(ok) == 0:
            continue
        found += len(ok)
        acc = _call(accuracy_fn, a.take(ok))
        j = int(np.argmax(acc))
        if acc[j] > best_acc:
            best_acc = float(acc[j])
            best = _results(sp.name, a.take([ok[j]]), lat[[ok[j]]], acc[[j]])[0]
    if best is None:
        raise OfaProfileError(f"no random subnet of {drawn:,} met {budget:g} ms although the fastest takes "
                              f"{fastest:.3f} ms; use search() for budgets this tight")
    return best


def ofa_evolution(space: str | Space, latency_ms_fn: Any, accuracy_fn: Any, budget_ms: float | str, *,
                  seed: int = 0, resolutions: Iterable[int] | None = None, population: int = 100,
                  generations: int = 500, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                  mutate_prob: float = 0.1) -> SearchResult:
    """OFA's ``EvolutionFinder``: random feasible population; each generation keeps the best
    ``parent_ratio`` as parents and fills up with feasible mutants (each gene resampled with
    ``mutate_prob``) and feasible uniform crossovers.  Candidates are drawn in batches and the
    infeasible ones discarded, which is OFA's resample-until-feasible loop, vectorised."""
    import numpy as np
    sp = get_space(space)
    if sp.compound:
        return search(sp, latency_ms_fn, accuracy_fn, budget_ms, seed=seed, resolutions=resolutions)
    budget = parse_budget_ms(budget_ms)
    res = _resolutions(sp, resolutions)
    fastest, fspec = fastest_latency_ms(sp, latency_ms_fn, res, seed)
    if fastest > budget:
        raise _no_feasible(sp, budget, fastest, fspec)
    s = _Space(sp, res)
    rng = np.random.default_rng(seed)

    def feasible(make: Callable[[int], _Genes], n: int) -> tuple[_Genes, "np.ndarray", "np.ndarray"]:
        parts, lats, accs, have = [], [], [], 0
        for _ in range(200):
            g = make(max(n, 32))
            a = g.arrays(sp.name)
            lat = _call(latency_ms_fn, a)
            ok = np.flatnonzero(lat <= budget)[: n - have]
            if len(ok):
                parts.append(g.take(ok)); lats.append(lat[ok]); accs.append(_call(accuracy_fn, a.take(ok)))
                have += len(ok)
            if have >= n:
                break
        if not parts:
            fastest, spec = fastest_latency_ms(sp, latency_ms_fn, res, seed)
            raise _no_feasible(sp, budget, fastest, spec)
        return _Genes.concat(parts), np.concatenate(lats), np.concatenate(accs)

    pop, lat, acc = feasible(lambda m: s.sample(rng, m), population)
    n_par = int(round(population * parent_ratio))
    n_mut = int(round(population * mutation_ratio))
    best_i = int(np.argmax(acc))
    best = (pop.take([best_i]), lat[best_i], acc[best_i])
    for _ in range(generations):
        order = np.argsort(-acc, kind="stable")[:n_par]
        parents, plat, pacc = pop.take(order), lat[order], acc[order]
        if pacc[0] > best[2]:
            best = (parents.take([0]), plat[0], pacc[0])
        mut, mlat, macc = feasible(lambda m: s.mutate(rng, parents.take(rng.integers(0, len(parents), m)),
                                                      mutate_prob), n_mut)
        cro, clat, cacc = feasible(lambda m: s.crossover(rng, parents.take(rng.integers(0, len(parents), m)),
                                                         parents.take(rng.integers(0, len(parents), m))),
                                   population - n_par - n_mut)
        pop = _Genes.concat([parents, mut, cro])
        lat = np.concatenate([plat, mlat, clat])
        acc = np.concatenate([pacc, macc, cacc])
    i = int(np.argmax(acc))
    if acc[i] > best[2]:
        best = (pop.take([i]), lat[i], acc[i])
    a = best[0].arrays(sp.name)
    return _results(sp.name, a, np.array([best[1]]), np.array([best[2]]))[0]
