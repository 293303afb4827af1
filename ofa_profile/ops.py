"""The device-agnostic op enumerator.

A subnet is a chain of *ops*, one per LUT entry, at OFA's block granularity:
``Conv`` (stem), ``expanded_conv`` (the fixed first block and every elastic MBConv
block), ``Conv_1`` (final 1x1 expand), ``AvgPool2D``, ``Conv_2`` (feature mix) and
``Logits`` (classifier).  :class:`Op` is a frozen record; its :attr:`Op.key` is
exactly OFA's LUT key grammar, e.g.::

    expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0
    Conv-input:224x224x3-output:112x112x16
    Logits-input:1x1x1280-output:1000

``expand`` is the *middle channel count* (OFA's MobileNetV3 LUT convention).  An
``expanded_conv`` with ``expand == input channels`` has no 1x1 expansion conv
(the expand-ratio-1 first block).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from .space import Space, SpaceError, SubnetSpec, get_space

__all__ = ["Op", "OP_KINDS", "subnet_ops", "enumerate_ops", "ops_at_resolution", "parse_key", "KeyError_"]

OP_KINDS = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")


class KeyError_(SpaceError):
    """A string that is not a LUT key of OFA's MobileNetV3 grammar."""


@dataclass(frozen=True, order=True)
class Op:
    """One LUT entry: a block of the network with its exact shapes.

    ``in_hw``/``out_hw`` are square feature-map sizes; ``out_hw`` is 0 for ``Logits``.
    MBConv fields (mid, kernel, stride, idskip, se, hs) are 0 for the other kinds.
    """
    kind: str
    in_hw: int
    in_ch: int
    out_hw: int
    out_ch: int
    mid: int = 0
    kernel: int = 0
    stride: int = 0
    idskip: int = 0
    se: int = 0
    hs: int = 0

    @property
    def key(self) -> str:
        inp = f"input:{self.in_hw}x{self.in_hw}x{self.in_ch}"
        if self.kind == "Logits":
            return f"Logits-{inp}-output:{self.out_ch}"
        out = f"output:{self.out_hw}x{self.out_hw}x{self.out_ch}"
        if self.kind == "expanded_conv":
            return (f"expanded_conv-{inp}-{out}-expand:{self.mid}-kernel:{self.kernel}-stride:{self.stride}"
                    f"-idskip:{self.idskip}-se:{self.se}-hs:{self.hs}")
        return f"{self.kind}-{inp}-{out}"

    @property
    def act(self) -> str:
        return "h_swish" if self.hs else "relu"

    @property
    def has_expand_conv(self) -> bool:
        return self.kind == "expanded_conv" and self.mid != self.in_ch

    def macs(self, space: Space | str | None = None) -> int:
        """Multiply-accumulates of the op (convs, SE and linear layers; BN/activations excluded)."""
        o2 = self.out_hw * self.out_hw
        i2 = self.in_hw * self.in_hw
        if self.kind == "Conv":
            return o2 * 3 * 3 * self.in_ch * self.out_ch
        if self.kind in ("Conv_1", "Conv_2"):
            return o2 * self.in_ch * self.out_ch
        if self.kind == "Logits":
            return self.in_ch * self.out_ch
        if self.kind == "AvgPool2D":
            return 0
        m = 0
        if self.has_expand_conv:
            m += i2 * self.in_ch * self.mid
        m += o2 * self.kernel * self.kernel * self.mid
        if self.se:
            se_mid = Space.se_channels(self.mid)
            m += 2 * self.mid * se_mid
        m += o2 * self.mid * self.out_ch
        return m

    def params(self) -> int:
        """Weights of the op (conv/linear weights and biases, BN as scale+shift)."""
        if self.kind == "Conv":
            return 9 * self.in_ch * self.out_ch + 2 * self.out_ch
        if self.kind == "Conv_1":
            return self.in_ch * self.out_ch + 2 * self.out_ch
        if self.kind == "Conv_2":
            return self.in_ch * self.out_ch
        if self.kind == "Logits":
            return self.in_ch * self.out_ch + self.out_ch
        if self.kind == "AvgPool2D":
            return 0
        p = 0
        if self.has_expand_conv:
            p += self.in_ch * self.mid + 2 * self.mid
        p += self.kernel * self.kernel * self.mid + 2 * self.mid
        if self.se:
            s = Space.se_channels(self.mid)
            p += self.mid * s + s + s * self.mid + self.mid
        p += self.mid * self.out_ch + 2 * self.out_ch
        return p


_SHAPE = r"(\d+)x(\d+)x(\d+)"
_KEY_RE = {
    "expanded_conv": re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)-stride:(\d+)"
                                rf"-idskip:([01])-se:([01])-hs:([01])$"),
    "Logits": re.compile(rf"^Logits-input:{_SHAPE}-output:(\d+)$"),
    "other": re.compile(rf"^(Conv|Conv_1|AvgPool2D|Conv_2)-input:{_SHAPE}-output:{_SHAPE}$"),
}


def parse_key(key: str) -> Op:
    """Parse an OFA MobileNetV3 LUT key into an :class:`Op` (raises :class:`KeyError_`)."""
    m = _KEY_RE["expanded_conv"].match(key)
    if m:
        g = [int(x) for x in m.groups()]
        _check_square(key, g[0], g[1]); _check_square(key, g[3], g[4])
        return Op("expanded_conv", g[0], g[2], g[3], g[5], mid=g[6], kernel=g[7], stride=g[8], idskip=g[9],
                  se=g[10], hs=g[11])
    m = _KEY_RE["Logits"].match(key)
    if m:
        g = [int(x) for x in m.groups()]
        _check_square(key, g[0], g[1])
        return Op("Logits", g[0], g[2], 0, g[3])
    m = _KEY_RE["other"].match(key)
    if m:
        kind = m.group(1)
        g = [int(x) for x in m.groups()[1:]]
        _check_square(key, g[0], g[1]); _check_square(key, g[3], g[4])
        return Op(kind, g[0], g[2], g[3], g[5])
    raise KeyError_(f"{key!r} is not an OFA MobileNetV3 LUT key (e.g. "
                    f"'expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0')")


def _check_square(key: str, h: int, w: int) -> None:
    if h != w:
        raise KeyError_(f"{key!r}: only square feature maps are supported, got {h}x{w}")


def subnet_ops(spec: SubnetSpec) -> list[Op]:
    """The ops of one subnet, in execution order (OFA's LUT sum walks exactly these)."""
    sp = get_space(spec.space)
    r = spec.r
    hw = (r + 1) // 2
    ops = [Op("Conv", r, 3, hw, sp.stem_ch)]
    ops.append(Op("expanded_conv", hw, sp.stem_ch, hw, sp.first_block_ch, mid=sp.stem_ch, kernel=3, stride=1,
                  idskip=int(sp.stem_ch == sp.first_block_ch), se=0, hs=0))
    in_ch = sp.first_block_ch
    for i, s, b in spec.active_blocks():
        st = sp.stages[s]
        stride = st.stride if b == 0 else 1
        out_hw = (hw - 1) // stride + 1
        idskip = int(stride == 1 and in_ch == st.width)
        ops.append(Op("expanded_conv", hw, in_ch, out_hw, st.width, mid=sp.mid_channels(in_ch, spec.e[i]),
                      kernel=spec.ks[i], stride=stride, idskip=idskip, se=int(st.se), hs=int(st.act == "h_swish")))
        hw, in_ch = out_hw, st.width
    ops.append(Op("Conv_1", hw, in_ch, hw, sp.final_expand_ch))
    ops.append(Op("AvgPool2D", hw, sp.final_expand_ch, 1, sp.final_expand_ch))
    ops.append(Op("Conv_2", 1, sp.final_expand_ch, 1, sp.feature_mix_ch))
    ops.append(Op("Logits", 1, sp.feature_mix_ch, 0, sp.n_classes))
    return ops


def enumerate_ops(space: Space | str, resolutions: Iterable[int] | None = None) -> list[tuple[int, Op]]:
    """Every distinct op of the space over the given resolutions, as ``(first resolution, op)``.

    The order is deterministic (resolution, then network position).  An op shared by
    several resolutions is listed once, under the first resolution that has it.
    """
    sp = get_space(space)
    res = tuple(sp.resolutions if resolutions is None else resolutions)
    seen: dict[Op, int] = {}
    for r in res:
        for op in ops_at_resolution(sp, r):
            seen.setdefault(op, r)
    return [(r, op) for op, r in seen.items()]


def ops_at_resolution(space: Space | str, r: int) -> list[Op]:
    """Distinct ops of all subnets of the space at resolution ``r`` (96 for OFA MobileNetV3)."""
    sp = get_space(space)
    if r not in sp.resolutions:
        raise SpaceError(f"resolution {r} not in space {sp.name}")
    out: dict[Op, None] = {}
    # stem + first block + head from any subnet, elastic blocks enumerated explicitly
    base = subnet_ops(sp.smallest(r))
    for op in base[:2]:
        out[op] = None
    hw = (r + 1) // 2
    in_ch = sp.first_block_ch
    if sp.compound:
        emap = dict(sp.compound_expand)
        choices_by_stage = [[(sp.compound_kernels[s], e) for e in sorted(set(emap.values()))] for s in range(sp.n_stages)]
    else:
        choices_by_stage = [[(k, e) for k in sp.kernels for e in sp.expands] for _ in range(sp.n_stages)]
    for s, st in enumerate(sp.stages):
        out_hw = (hw - 1) // st.stride + 1
        for pos in range(2):  # the first block of a stage, then the (identical-shape) later ones
            i_ch = in_ch if pos == 0 else st.width
            i_hw = hw if pos == 0 else out_hw
            stride = st.stride if pos == 0 else 1
            idskip = int(stride == 1 and i_ch == st.width)
            for k, e in choices_by_stage[s]:
                out[Op("expanded_conv", i_hw, i_ch, out_hw, st.width, mid=sp.mid_channels(i_ch, e), kernel=k,
                       stride=stride, idskip=idskip, se=int(st.se), hs=int(st.act == "h_swish"))] = None
        hw, in_ch = out_hw, st.width
    for op in base[-4:]:
        out[op] = None
    return list(out)


def ops_of_many(specs: Sequence[SubnetSpec]) -> Iterator[Op]:
    for spec in specs:
        yield from subnet_ops(spec)
