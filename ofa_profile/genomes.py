"""What the search works on: genomes as gene arrays (:class:`Genes`, the values of skipped blocks kept, as OFA
does), a space's choices as arrays for vectorised sampling, mutation and crossover (:class:`GeneSpace`), and the
caching :class:`Evaluator` that keeps the archive of everything evaluated."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .encodings import ArchArrays
from .errors import OfaProfileError
from .latency import call_batched
from .space import Space, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["Evaluator", "Genes", "GeneSpace"]


class Evaluator:
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
            lat = call_batched(self.latency_fn, sub)
            acc = call_batched(self.accuracy_fn, sub)
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
class Genes:
    ks: "np.ndarray"  # [N, n_blocks] values, skipped blocks included
    e: "np.ndarray"
    d: "np.ndarray"   # [N, n_stages]
    r: "np.ndarray"   # [N]

    def __len__(self) -> int:
        return int(self.r.shape[0])

    def take(self, idx: Any) -> "Genes":
        return Genes(self.ks[idx], self.e[idx], self.d[idx], self.r[idx])

    @staticmethod
    def concat(parts: Sequence["Genes"]) -> "Genes":
        import numpy as np
        return Genes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("ks", "e", "d", "r")))

    def arrays(self, space: str) -> ArchArrays:
        import numpy as np
        sp = get_space(space)
        pos = np.tile(np.arange(sp.max_depth), sp.n_stages)
        act = pos[None, :] < np.repeat(self.d, sp.max_depth, axis=1)
        return ArchArrays(space, np.where(act, self.ks, 0), np.where(act, self.e, 0), self.d, self.r)


class GeneSpace:
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

    def sample(self, rng: "np.random.Generator", n: int) -> Genes:
        import numpy as np
        sp = self.sp
        ks, e = rng.choice(self.kernels, (n, sp.n_blocks)), rng.choice(self.expands, (n, sp.n_blocks))
        if self.uniform:
            d = rng.choice(self.depths, (n, sp.n_stages))
        else:
            d = np.stack([rng.choice(self.stage_choices(st), n) for st in range(sp.n_stages)], axis=1)
        return Genes(ks, e, d, rng.choice(self.res, n))

    def mutate(self, rng: "np.random.Generator", g: Genes, prob: float) -> Genes:
        import numpy as np
        n = len(g)
        fresh = self.sample(rng, n)
        out = []
        for f in ("ks", "e", "d", "r"):
            cur, new = getattr(g, f), getattr(fresh, f)
            m = rng.random(cur.shape) < prob
            out.append(np.where(m, new, cur))
        return Genes(*out)

    def mutate_local(self, rng: "np.random.Generator", g: Genes, prob: float) -> Genes:
        """Like :meth:`mutate`, but the resolution moves to a neighbouring value (small steps)."""
        import numpy as np
        m = self.mutate(rng, g, prob)
        ri = np.searchsorted(self.res, g.r)
        step = rng.choice(np.array([-2, -1, 1, 2]), len(g))
        move = rng.random(len(g)) < prob * 2
        ri = np.clip(np.where(move, ri + step, ri), 0, len(self.res) - 1)
        return Genes(m.ks, m.e, m.d, self.res[ri])

    def crossover(self, rng: "np.random.Generator", a: Genes, b: Genes) -> Genes:
        import numpy as np
        out = []
        for f in ("ks", "e", "d", "r"):
            x, y = getattr(a, f), getattr(b, f)
            out.append(np.where(rng.random(x.shape) < 0.5, x, y))
        return Genes(*out)

    def neighbours(self, g: Genes) -> Genes:
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
        return Genes(np.array(rows_ks), np.array(rows_e), np.array(rows_d), np.array(rows_r))
