"""Subnets as arrays: :class:`ArchArrays` (a batch of one space as integer arrays), the accuracy predictors'
encodings (:func:`encode`) and additive per-block cost tables (:class:`BlockTable`: MACs, params, LUT sums).

The fast form every batched consumer shares (search, accuracy predictors, few-shot adapters, plots); it depends
on the space and its op grammar only.

Encodings (:data:`ENCODINGS`), all computed vectorised from :class:`ArchArrays`:

``ofa-onehot``      OFA's own 128 features: 60 kernel one-hots (3/5/7) and 60 expand
                    one-hots (3/4/6) for the 20 elastic blocks (zeros for skipped
                    blocks), then an 8-slot resolution one-hot at ``(r - 112) // 16``.
``onehot-depth-r``  the 120 block one-hots, a one-hot of each stage's depth (15), and
                    the resolution as numbers ``(r - 176) / 48`` and its square: it
                    interpolates between trained resolutions instead of binning them.
``onehot-depth-rspline``  the same 135 one-hots, and the resolution as a piecewise-linear
                    (hat) basis with knots at :data:`R_KNOTS` (128, 160, 192, 224): an offset
                    per knot resolution, linearly interpolated between knots (196..220 lie
                    between 192 and 224), held constant outside them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import OfaProfileError
from .ops import Op, split_ops, subnet_ops
from .space import Space, SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["ENCODINGS", "DEFAULT_ENCODING", "same_macro_architecture", "ArchArrays", "as_arrays", "encode",
           "BlockTable", "op_cost_table", "macs_table", "params_table"]

ENCODINGS = ("ofa-onehot", "onehot-depth-r", "onehot-depth-rspline")
DEFAULT_ENCODING = "onehot-depth-r"
R_KNOTS = (128, 160, 192, 224)   # knots of onehot-depth-rspline's resolution basis


def same_macro_architecture(a: Space | str, b: Space | str) -> bool:
    """True if two spaces share widths, strides and blocks (e.g. OFA w1.0 and CompOFA w1.0)."""
    sa, sb = get_space(a), get_space(b)
    return sa.macro() == sb.macro() and sa.n_classes == sb.n_classes


# -- architectures as arrays ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ArchArrays:
    """A batch of subnets of one space as integer arrays (the fast form for encodings and search).

    ``ks``/``e``: ``[N, n_blocks]`` with 0 for skipped blocks; ``d``: ``[N, n_stages]``; ``r``: ``[N]``.
    """
    space: str
    ks: "np.ndarray"
    e: "np.ndarray"
    d: "np.ndarray"
    r: "np.ndarray"

    def __len__(self) -> int:
        return int(self.r.shape[0])

    @property
    def active(self) -> "np.ndarray":
        """``[N, n_blocks]`` bool: block is active (its index in the stage is below the stage depth)."""
        import numpy as np
        sp = get_space(self.space)
        pos = np.tile(np.arange(sp.max_depth), sp.n_stages)
        return pos[None, :] < np.repeat(self.d, sp.max_depth, axis=1)

    @classmethod
    def from_specs(cls, specs: Sequence[SubnetSpec], space: str | None = None) -> "ArchArrays":
        import numpy as np
        specs = list(specs)
        if not specs:
            if space is None:
                raise OfaProfileError("no subnets given: pass at least one spec (or a space for an empty batch)")
            sp = get_space(space)
            z = np.zeros((0, sp.n_blocks), dtype=np.int64)
            return cls(sp.name, z, z.copy(), np.zeros((0, sp.n_stages), dtype=np.int64), np.zeros(0, dtype=np.int64))
        name = space or specs[0].space
        bad = [s.space for s in specs if s.space != name]
        if bad:
            raise OfaProfileError(f"subnets of several spaces in one batch ({name}, {bad[0]}); pass one space at a time")
        ks = np.array([s.ks for s in specs], dtype=np.int64)
        e = np.array([s.e for s in specs], dtype=np.int64)
        d = np.array([s.d for s in specs], dtype=np.int64)
        r = np.array([s.r for s in specs], dtype=np.int64)
        out = cls(get_space(name).name, ks, e, d, r)
        act = out.active
        return cls(out.space, np.where(act, ks, 0), np.where(act, e, 0), d, r)

    def to_specs(self) -> list[SubnetSpec]:
        """Back to specs (skipped entries set to the space minimum, i.e. canonical form)."""
        import numpy as np
        sp = get_space(self.space)
        ks = np.where(self.ks == 0, min(sp.kernels), self.ks).tolist()
        e = np.where(self.e == 0, min(sp.expands), self.e).tolist()
        d = self.d.tolist()
        r = self.r.tolist()
        return [SubnetSpec(sp.name, tuple(ks[i]), tuple(e[i]), tuple(d[i]), int(r[i])) for i in range(len(r))]

    def take(self, idx: Any) -> "ArchArrays":
        return ArchArrays(self.space, self.ks[idx], self.e[idx], self.d[idx], self.r[idx])

    def row_keys(self) -> "np.ndarray":
        """One hashable key per row (the bytes of the packed row), for de-duplication."""
        import numpy as np
        packed = np.concatenate([self.ks, self.e, self.d, self.r[:, None]], axis=1).astype(np.int16)
        return np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1] * 2))).ravel()

    @staticmethod
    def concat(parts: Sequence["ArchArrays"]) -> "ArchArrays":
        import numpy as np
        return ArchArrays(parts[0].space, np.concatenate([p.ks for p in parts]), np.concatenate([p.e for p in parts]),
                          np.concatenate([p.d for p in parts]), np.concatenate([p.r for p in parts]))


def as_arrays(specs: "Sequence[SubnetSpec] | ArchArrays") -> ArchArrays:
    return specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(specs)


def _onehot(values: "np.ndarray", choices: Sequence[int]) -> "np.ndarray":
    """[N, B] ints (0 = none) -> [N, B*len(choices)] one-hot, block-major (OFA's order)."""
    import numpy as np
    n, b = values.shape
    out = np.zeros((n, b, len(choices)), dtype=np.float64)
    for j, c in enumerate(choices):
        out[:, :, j] = values == c
    return out.reshape(n, b * len(choices))


def encode(specs: "Sequence[SubnetSpec] | ArchArrays", encoding: str = DEFAULT_ENCODING) -> "np.ndarray":
    """Encode subnets as a float matrix ``[N, F]`` (see :data:`ENCODINGS`)."""
    import numpy as np
    a = as_arrays(specs)
    sp = get_space(a.space)
    if encoding not in ENCODINGS:
        raise OfaProfileError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    blocks = [_onehot(a.ks, sp.kernels), _onehot(a.e, sp.expands)]
    if encoding == "ofa-onehot":
        slot = (a.r - 112) // 16
        if len(a) and (slot.min() < 0 or slot.max() > 7):
            raise OfaProfileError("OFA's encoding covers resolutions 112..239 only")
        res = np.zeros((len(a), 8))
        res[np.arange(len(a)), slot] = 1.0
        return np.concatenate(blocks + [res], axis=1)
    if encoding == "onehot-depth-rspline":
        return np.concatenate(blocks + [_onehot(a.d, sp.depths), _hat_basis(a.r, R_KNOTS)], axis=1)
    rn = (a.r.astype(np.float64) - 176.0) / 48.0
    return np.concatenate(blocks + [_onehot(a.d, sp.depths), rn[:, None], (rn ** 2)[:, None]], axis=1)


def _hat_basis(r: "np.ndarray", knots: Sequence[int]) -> "np.ndarray":
    """``[N, len(knots)]`` piecewise-linear interpolation weights of each ``r`` between the knots (they sum to 1;
    a resolution outside the knots takes the nearest knot's)."""
    import numpy as np
    k = np.asarray(knots, dtype=np.float64)
    rc = np.clip(r.astype(np.float64), k[0], k[-1])
    return np.stack([np.interp(rc, k, np.eye(len(k))[j]) for j in range(len(k))], axis=1)


# -- per-block cost tables (vectorised MACs / params / LUT sums) ---------------------------------------

@dataclass(frozen=True, eq=False)
class BlockTable:
    """An additive cost over a subnet's ops, tabulated: ``fixed[r] + sum of block[r, i, k, e]`` over active blocks.

    ``fixed`` holds the stem, the fixed first block and the head; ``block[ri, i, ki, ei]`` the
    elastic block ``i`` with kernel ``kernels[ki]`` and expand ``expands[ei]`` at ``resolutions[ri]``.
    """
    space: str
    resolutions: tuple[int, ...]
    fixed: "np.ndarray"
    block: "np.ndarray"
    name: str = ""

    @classmethod
    def from_op_cost(cls, space: str, cost: Callable[[Op], float], resolutions: Sequence[int] | None = None,
                     name: str = "") -> "BlockTable":
        """Tabulate ``cost(op)`` over every block choice (shapes from :func:`ofa_profile.ops.subnet_ops`)."""
        return cls.from_op_cost_at(space, lambda op, r: cost(op), resolutions, name)

    @classmethod
    def from_op_cost_at(cls, space: str, cost: Callable[[Op, int], float], resolutions: Sequence[int] | None = None,
                        name: str = "", classes: int | None = None) -> "BlockTable":
        """Like :meth:`from_op_cost` with a cost that may depend on the resolution: ``cost(op, r)``; ``classes``:
        outputs of the classifier head (default: the space's)."""
        import numpy as np
        sp = get_space(space)
        res = tuple(resolutions) if resolutions is not None else sp.resolutions
        fixed = np.zeros(len(res))
        block = np.zeros((len(res), sp.n_blocks, len(sp.kernels), len(sp.expands)))
        for ri, r in enumerate(res):
            for ki, k in enumerate(sp.kernels):
                for ei, e in enumerate(sp.expands):
                    # a deepest subnet with every block at (k, e): its ops give every block position
                    deep = tuple(max(sp.stage_depths(s)) for s in range(sp.n_stages))
                    spec = SubnetSpec(sp.name, (k,) * sp.n_blocks, (e,) * sp.n_blocks, deep, r)
                    fixed_ops, block_ops = split_ops(spec, subnet_ops(spec, classes))
                    for (i, _, _), op in zip(spec.active_blocks(), block_ops):
                        block[ri, i, ki, ei] = cost(op, r)
                    if ki == 0 and ei == 0:
                        fixed[ri] = sum(cost(op, r) for op in fixed_ops)
        return cls(sp.name, res, fixed, block, name)

    @classmethod
    def from_lut(cls, lut: Any, resolutions: Sequence[int] | None = None,
                 classes: int | None = None) -> "BlockTable":
        """The LUT's ``median_ms`` per block (its per-resolution figures where it has them), with the LUT's
        classifier head (or one of ``classes`` outputs).

        Resolutions default to those the LUT covers completely; a miss raises the LUT's own error.
        """
        timed = getattr(lut, "timed", None)
        if classes is None and timed is not None:
            classes = timed.classes
        res = tuple(resolutions) if resolutions is not None else tuple(lut.resolutions)
        if not res:
            gaps = lut.gaps() if hasattr(lut, "gaps") else {}
            part = f" (partly covered: {lut.gaps_text(gaps)})" if gaps else ""
            raise OfaProfileError(f"LUT {getattr(lut, 'source', '')} covers no resolution completely{part}; measure "
                                  f"one")
        return cls.from_op_cost_at(lut.space, lambda op, r: float(lut.entry(op.key, r).median_ms), res,
                                   name=f"lut:{lut.device}", classes=classes)

    def restricted(self, resolutions: Sequence[int]) -> "BlockTable":
        """The same table at some of its resolutions only (in that order)."""
        idx = [self.resolutions.index(int(r)) for r in resolutions]
        return BlockTable(self.space, tuple(int(r) for r in resolutions), self.fixed[idx], self.block[idx], self.name)

    def _index(self, a: ArchArrays) -> tuple["np.ndarray", "np.ndarray", "np.ndarray", "np.ndarray"]:
        import numpy as np
        if not same_macro_architecture(a.space, self.space):
            raise OfaProfileError(f"cost table {self.name or ''} is for {self.space}, not {a.space}")
        sp = get_space(self.space)
        rmap = np.full(max(max(self.resolutions), int(a.r.max()) if len(a) else 0) + 1, -1, dtype=np.int64)
        rmap[list(self.resolutions)] = np.arange(len(self.resolutions))
        ri = rmap[a.r]
        if (ri < 0).any():
            bad = sorted(set(a.r[ri < 0].tolist()))
            raise OfaProfileError(f"cost table {self.name or ''} has no resolution(s) {bad[:5]}; it covers "
                                  f"{','.join(map(str, self.resolutions))}: use those or measure the others")
        kmap = np.zeros(max(sp.kernels) + 1, dtype=np.int64)
        kmap[list(sp.kernels)] = np.arange(len(sp.kernels))
        emap = np.zeros(max(sp.expands) + 1, dtype=np.int64)
        emap[list(sp.expands)] = np.arange(len(sp.expands))
        return ri, kmap[a.ks], emap[a.e], a.active

    def block_costs(self, a: ArchArrays) -> "np.ndarray":
        """``[N, n_blocks]`` cost of each block (0 for skipped blocks)."""
        import numpy as np
        ri, ki, ei, act = self._index(a)
        nb = self.block.shape[1]
        vals = self.block[ri[:, None], np.arange(nb)[None, :], ki, ei]
        return np.where(act, vals, 0.0)

    def total(self, a: "ArchArrays | Sequence[SubnetSpec]") -> "np.ndarray":
        a = a if isinstance(a, ArchArrays) else ArchArrays.from_specs(a)
        ri = self._index(a)[0]
        return self.fixed[ri] + self.block_costs(a).sum(axis=1)

    def per_stage(self, a: ArchArrays) -> "np.ndarray":
        """``[N, n_stages]`` cost of each stage's active blocks (fixed part excluded)."""
        sp = get_space(self.space)
        return self.block_costs(a).reshape(len(a), sp.n_stages, sp.max_depth).sum(axis=2)

    def fixed_cost(self, a: ArchArrays) -> "np.ndarray":
        return self.fixed[self._index(a)[0]]


def _dw_macs(op: Op) -> float:
    return float(op.out_hw ** 2 * op.kernel ** 2 * op.mid) if op.kind == "expanded_conv" else 0.0


def _mid_act(op: Op) -> float:
    return float((op.in_hw ** 2 + op.out_hw ** 2) * op.mid) if op.kind == "expanded_conv" else 0.0


_COSTS: dict[str, Callable[[Op], float]] = {
    "macs": lambda op: float(op.macs()),
    "params": lambda op: float(op.params()),
    "dw_macs": _dw_macs,
    "mid_act": _mid_act,
}


@functools.lru_cache(maxsize=32)
def op_cost_table(space: str, cost: str) -> BlockTable:
    """Cached :class:`BlockTable` of a named op cost: ``macs``, ``params``, ``dw_macs`` or ``mid_act``."""
    if cost not in _COSTS:
        raise OfaProfileError(f"unknown op cost {cost!r}; choose one of {', '.join(_COSTS)}")
    sp = get_space(space)   # every resolution a subnet may run at (MACs of OFA's r=260 nets too)
    return BlockTable.from_op_cost(sp.name, _COSTS[cost], resolutions=sp.run_resolutions, name=cost)


def macs_table(space: str) -> BlockTable:
    return op_cost_table(get_space(space).name, "macs")


def params_table(space: str) -> BlockTable:
    return op_cost_table(get_space(space).name, "params")
