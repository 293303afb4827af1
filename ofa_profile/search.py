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

The parts: latency sources (:mod:`ofa_profile.latency`, re-exported here), genomes and the caching evaluator
(:mod:`ofa_profile.genomes`), evolution and local search (:mod:`ofa_profile.evolution`), the additive model and
its knapsack (:mod:`ofa_profile.knapsack`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from .encodings import ArchArrays, macs_table, params_table  # noqa: F401  (macs_table re-exported)
from .errors import OfaProfileError
from .evolution import evolution, local_search
from .genomes import Evaluator, Genes, GeneSpace
from .knapsack import AdditiveModel
from .latency import (BatchFn, LatencySource, adapter_latency_fn, call_batched,  # noqa: F401  (re-exported)
                      latency_source_from_lut, lut_latency_fn, macs_latency_fn, resolve_latency_source,
                      table_latency_fn)
from .space import Space, SubnetSpec, get_space, parse_resolutions

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "SearchResult", "ParetoResult", "BatchFn", "table_latency_fn", "lut_latency_fn", "adapter_latency_fn",
    "macs_latency_fn", "LatencySource", "resolve_latency_source", "search", "pareto_search", "ofa_evolution",
    "random_search", "pareto_front", "fastest_latency_ms", "parse_budget_ms", "NoFeasibleSubnet",
    "latency_source_from_lut",
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
        s = GeneSpace(sp, res)
        rng = np.random.default_rng(seed)
        smallest = ArchArrays.from_specs([sp.smallest(r) for r in res])
        a = ArchArrays.concat([smallest, s.sample(rng, 256).arrays(sp.name)])
    lat = call_batched(latency_fn, a)
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

def _exhaustive(space: Space, ev: Evaluator, res: Sequence[int]) -> None:
    ev(_compound_all(space, res))


def _archive_seeds(s: GeneSpace, ev: Evaluator, budget_ms: float, n: int, r: int | None = None) -> Genes | None:
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
    return Genes(np.where(a.ks == 0, s.kernels.min(), a.ks), np.where(a.e == 0, s.expands.min(), a.e), a.d, a.r)


def _search_budget(s: GeneSpace, ev: Evaluator, budget_ms: float, rng: "np.random.Generator", *, population: int,
                   generations: int, patience: int, local: bool, refine_resolutions: int,
                   time_limit_s: float | None, additive: "AdditiveModel | None" = None, evolve: bool = True,
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
                outs = [local_search(s, dp.take([i]), ev, budget_ms) for i in order[:local_starts]]
                seeds = Genes.concat(outs + [dp.take(np.asarray(order, dtype=np.int64))])
            else:
                seeds = dp.take(np.asarray(order, dtype=np.int64))
    if not evolve:
        return
    arch = _archive_seeds(s, ev, budget_ms, population // 4)
    seed_genes = Genes.concat([x for x in (seeds, arch) if x is not None]) if (seeds is not None or arch is not None) \
        else None
    evolution(s, ev, budget_ms, rng, population=population, generations=generations, patience=patience,
              seed_genes=seed_genes, local=local, time_limit_s=time_limit_s)
    for _ in range(restarts):  # independent unseeded evolutions: other basins of a rugged predictor
        evolution(s, ev, budget_ms, rng, population=max(16, int(population * refine_population)),
                  generations=generations, patience=max(5, patience // 2), seed_genes=None, local=local,
                  time_limit_s=time_limit_s)
    if refine_resolutions <= 0 or len(s.res) == 1:
        return
    lat, acc = ev.all_lat(), ev.all_acc()
    r_all = ev.all_arrays().r
    ok = lat <= budget_ms
    best_by_r = {int(r): float(acc[ok & (r_all == r)].max()) for r in np.unique(r_all[ok])}
    for r in sorted(best_by_r, key=lambda v: -best_by_r[v])[:refine_resolutions]:
        sub = GeneSpace(s.sp, [r])
        evolution(sub, ev, budget_ms, rng, population=max(16, int(population * refine_population)),
                  generations=generations, patience=max(5, patience // 2), seed_genes=None,
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
    ev = Evaluator(latency_ms_fn, accuracy_fn)
    if sp.compound:
        _exhaustive(sp, ev, res)
    else:
        s = GeneSpace(sp, res)
        _search_budget(s, ev, budget, np.random.default_rng(seed), population=population,
                       generations=generations, patience=patience, local=local,
                       refine_resolutions=refine_resolutions if effort == "full" else 0,
                       time_limit_s=time_limit_s, additive=AdditiveModel.probe(s, ev), evolve=effort != "fast",
                       restarts=1 if effort == "full" else 0)
    return _best_feasible(sp, ev, budget, latency_ms_fn, res, seed)


def _best_feasible(sp: Space, ev: Evaluator, budget: float, latency_fn: Any, res: Sequence[int],
                   seed: int) -> SearchResult:
    import numpy as np
    if ev.n:
        lat, acc = ev.all_lat(), ev.all_acc()
        score = np.where(lat <= budget, acc, -np.inf)
        i = int(np.argmax(score))
        if score[i] > -np.inf:
            return _results(sp.name, ev.all_arrays().take([i]), lat[[i]], acc[[i]])[0]
    fastest, spec = fastest_latency_ms(sp, latency_fn, res, seed)
    if fastest <= budget:
        # the samplers kept nothing under a budget that only a few subnets meet (a latency that is not monotone in
        # the choices: the fastest subnet found is not the smallest one): that subnet is the answer, not an error
        a = ArchArrays.from_specs([spec])
        lat, acc = ev(a)
        return _results(sp.name, a, lat, acc)[0]
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
    ev = Evaluator(latency_ms_fn, accuracy_fn)
    fastest, _ = fastest_latency_ms(sp, latency_ms_fn, res, seed)
    if budgets_ms is None:
        slow = float(call_batched(latency_ms_fn, ArchArrays.from_specs([sp.largest(max(res))]))[0])
        budgets = tuple(float(b) for b in np.linspace(fastest, slow, n_budgets + 1)[1:])
    else:
        budgets = tuple(parse_budget_ms(b) for b in budgets_ms)
    rng = np.random.default_rng(seed)
    if sp.compound:
        _exhaustive(sp, ev, res)
        method = "exhaustive"
    else:
        method = f"knapsack+local+evolution over {len(budgets)} budgets"
        s = GeneSpace(sp, res)
        additive = AdditiveModel.probe(s, ev)
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
    s = GeneSpace(sp, res)
    rng = np.random.default_rng(seed)
    best_acc, best = -np.inf, None
    found = drawn = 0
    while found < n and drawn < max_draws:
        g = s.sample(rng, 4096)
        if sp.compound:
            g = Genes(np.repeat(np.array(sp.compound_kernels), sp.max_depth)[None, :].repeat(len(g), 0),
                      np.vectorize(dict(sp.compound_expand).get)(np.repeat(g.d, sp.max_depth, axis=1)), g.d, g.r)
        drawn += len(g)
        a = g.arrays(sp.name)
        lat = call_batched(latency_ms_fn, a)
        ok = np.flatnonzero(lat <= budget)[: n - found]
        if len(ok) == 0:
            continue
        found += len(ok)
        acc = call_batched(accuracy_fn, a.take(ok))
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
    s = GeneSpace(sp, res)
    rng = np.random.default_rng(seed)

    def feasible(make: Callable[[int], Genes], n: int) -> tuple[Genes, "np.ndarray", "np.ndarray"]:
        parts, lats, accs, have = [], [], [], 0
        for _ in range(200):
            g = make(max(n, 32))
            a = g.arrays(sp.name)
            lat = call_batched(latency_ms_fn, a)
            ok = np.flatnonzero(lat <= budget)[: n - have]
            if len(ok):
                parts.append(g.take(ok)); lats.append(lat[ok]); accs.append(call_batched(accuracy_fn, a.take(ok)))
                have += len(ok)
            if have >= n:
                break
        if not parts:
            fastest, spec = fastest_latency_ms(sp, latency_ms_fn, res, seed)
            raise _no_feasible(sp, budget, fastest, spec)
        return Genes.concat(parts), np.concatenate(lats), np.concatenate(accs)

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
        pop = Genes.concat([parents, mut, cro])
        lat = np.concatenate([plat, mlat, clat])
        acc = np.concatenate([pacc, macc, cacc])
    i = int(np.argmax(acc))
    if acc[i] > best[2]:
        best = (pop.take([i]), lat[i], acc[i])
    a = best[0].arrays(sp.name)
    return _results(sp.name, a, np.array([best[1]]), np.array([best[2]]))[0]
