"""The search's additive surrogate of (latency, accuracy) and its multiple-choice knapsack, solved by dynamic
programming over latency bins: the first seeds of every budget."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .genomes import Evaluator, Genes, GeneSpace

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["AdditiveModel"]


@dataclass(frozen=True, eq=False)
class AdditiveModel:
    """First-order additive model of (latency, accuracy) at each resolution, probed around the deepest
    subnet with every block at the smallest choice:  f = f0[r] + sum over active blocks of
    blk[r, i, c] + sum over stages of dep[r, s, d].  Exact for LUT sums, calibrated LUTs, adapters and
    ridge predictors; a guide for the rest (the real functions always judge)."""
    res: tuple[int, ...]
    f0: "np.ndarray"    # [R, 2]   (latency, accuracy)
    blk: "np.ndarray"   # [R, n_blocks, n_choices, 2]  relative to choice 0
    dep: "np.ndarray"   # [R, n_stages, n_depths, 2]   relative to the deepest

    @classmethod
    def probe(cls, s: GeneSpace, ev: Evaluator) -> "AdditiveModel":
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
        g = Genes(np.array([x[0] for x in rows]), np.array([x[1] for x in rows]), np.array([x[2] for x in rows]),
                  np.array([x[3] for x in rows]))
        lat, acc = ev(g.arrays(s.name))
        v = np.stack([lat, acc], axis=1).reshape(len(s.res), -1, 2)
        f0 = v[:, 0]
        blk = np.zeros((len(s.res), sp.n_blocks, nc, 2))
        blk[:, :, 1:] = v[:, 1:1 + sp.n_blocks * (nc - 1)].reshape(len(s.res), sp.n_blocks, nc - 1, 2) - f0[:, None, None]
        dep = np.zeros((len(s.res), sp.n_stages, nd, 2))
        dep[:, :, :-1] = v[:, 1 + sp.n_blocks * (nc - 1):].reshape(len(s.res), sp.n_stages, nd - 1, 2) - f0[:, None, None]
        return cls(tuple(int(r) for r in s.res), f0, blk, dep)

    def solve(self, s: GeneSpace, budget_ms: float, n_bins: int = 1500) -> Genes:
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
        return Genes(np.array(out_ks), np.array(out_e), np.array(out_d), np.array(out_r))
