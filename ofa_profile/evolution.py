"""The constrained evolution of the search and its greedy local search (single-gene changes, then multi-block
moves: Lagrangian re-choices and pairs of changes), on :mod:`ofa_profile.genomes`."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .genomes import Evaluator, Genes, GeneSpace

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["evolution", "local_search"]


def _feasible_init(s: GeneSpace, ev: Evaluator, rng: "np.random.Generator", budget_ms: float, n: int,
                   seed_genes: Genes | None, max_rounds: int = 30) -> Genes:
    """n distinct feasible genomes: the seeds that fit, then random samples, shrunk towards the
    smallest subnet when random ones rarely fit (tight budgets)."""
    import numpy as np
    got: list[Genes] = []
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
            cand = Genes(np.where(rng.random(cand.ks.shape) < shrink, s.kernels.min(), cand.ks),
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
    return Genes.concat(got)


def _select(s: GeneSpace, pop: Genes, ev: Evaluator, budget_ms: float, n: int, per_res: int = 0
            ) -> tuple[Genes, "np.ndarray"]:
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


def _slot_masks(s: GeneSpace, base: Genes, nb: Genes) -> "np.ndarray":
    """[M, n_blocks + n_stages + 1] bool: which blocks / stage depths / resolution each neighbour changes."""
    import numpy as np
    sp = s.sp
    blk = (nb.ks != base.ks) | (nb.e != base.e)
    dch = nb.d != base.d
    blk = blk | np.repeat(dch, sp.max_depth, axis=1)  # a depth change owns its whole stage
    return np.concatenate([blk, dch, (nb.r != base.r)[:, None]], axis=1)


def _pair_moves(s: GeneSpace, base: Genes, nb: Genes, lat: "np.ndarray", acc: "np.ndarray", lat0: float,
                acc0: float, budget_ms: float, n_eval: int) -> Genes | None:
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
    return Genes(*comb)


def _lagrange_moves(s: GeneSpace, base: Genes, nb: Genes, lat: "np.ndarray", acc: "np.ndarray", lat0: float,
                    acc0: float, budget_ms: float, n_lambda: int = 48) -> Genes | None:
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
    return Genes(ks, es, np.repeat(base.d, n, axis=0), np.repeat(base.r, n))


def local_search(s: GeneSpace, g: Genes, ev: Evaluator, budget_ms: float, max_steps: int = 100,
                 pair_evals: int = 512) -> Genes:
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
        multi = Genes.concat(cands)
        plat, pacc = ev(multi.arrays(s.name))
        pscore = np.where(plat <= budget_ms, pacc, -np.inf)
        j = int(np.argmax(pscore))
        if pscore[j] <= acc0 + 1e-12:
            break
        g, lat0, acc0 = multi.take([j]), float(plat[j]), float(pacc[j])
    return g


def evolution(s: GeneSpace, ev: Evaluator, budget_ms: float, rng: "np.random.Generator", *, population: int,
              generations: int, patience: int, seed_genes: Genes | None, local: bool,
              time_limit_s: float | None, per_res: int = 2, local_starts: int = 4) -> Genes | None:
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
        pop, score = _select(s, Genes.concat([pop, mut, cross]), ev, budget_ms, population, per_res)
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
    outs = [local_search(s, pop.take([i]), ev, budget_ms) for i in starts]
    _, accs = ev(Genes.concat(outs).arrays(s.name))
    return outs[int(np.argmax(accs))]
