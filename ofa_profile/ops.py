"""The device-agnostic op enumerator.

A subnet is a chain of *ops*, one per LUT entry, at OFA's block granularity:
``Conv`` (stem), ``expanded_conv`` (the fixed first block and every elastic MBConv
block), then the head: the layers the family's record lists (:attr:`ofa_profile.family.Family.head`), for
MobileNetV3 ``Conv_1`` (1x1 expand before the pool), ``AvgPool2D``, ``Conv_2`` (feature mix) and ``Logits``
(classifier on 1x1), for ProxylessNAS ``Conv_1`` and one ``Logits`` (pool + classifier).  :class:`Op` is a frozen
record of the shapes; its :attr:`Op.key` is the LUT key in the grammar of the op's *family* (its
:class:`~ofa_profile.family.Family` record, :mod:`ofa_profile.families`), e.g. OFA's MobileNetV3 grammar::

    expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0
    Conv-input:224x224x3-output:112x112x16
    Logits-input:1x1x1280-output:1000

``mid`` is the *middle channel count*.  An ``expanded_conv`` with ``mid == input channels`` has no 1x1
expansion conv (the expand-ratio-1 first block).  The chain itself is built from the space's data
(:class:`~ofa_profile.space.Space`: widths, strides, activations, SE) and its family's record (head, fixed layers'
activations), the same for every family.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from .family import FAMILIES, KeyGrammar, get_family
from .space import Space, SpaceError, SubnetSpec, get_space, has_identity_skip

__all__ = ["Op", "OP_KINDS", "subnet_ops", "enumerate_ops", "ops_at_resolution", "parse_key", "KeyError_",
           "KeyGrammar", "list_grammars", "grammar", "split_ops"]

OP_KINDS = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")


class KeyError_(SpaceError):
    """A string that is not a LUT key of the family's grammar."""


@dataclass(frozen=True, order=True)
class Op:
    """One LUT entry: a block of the network with its exact shapes.

    ``in_hw``/``out_hw`` are square feature-map sizes; ``out_hw`` is 0 for ``Logits`` (whose ``in_hw`` > 1
    means the global pool is part of it).  MBConv fields (mid, kernel, stride, idskip, se) are 0 for the other
    kinds.  ``activation`` names the op's activation (``relu``, ``relu6``, ``h_swish``; empty for the pool and the
    classifier); ``family`` (keyword only, always given) picks the key grammar.
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
    activation: str = ""
    family: str = field(kw_only=True)

    @property
    def key(self) -> str:
        return grammar(self.family).key(self)

    @property
    def act(self) -> str:
        return self.activation

    @property
    def hs(self) -> int:
        """1 for an h-swish op (the ``hs`` field of OFA's MobileNetV3 keys)."""
        return int(self.activation == "h_swish")

    @property
    def has_expand_conv(self) -> bool:
        return self.kind == "expanded_conv" and self.mid != self.in_ch

    def macs(self, space: Space | str | None = None) -> int:
        """Multiply-accumulates of the op (convs, SE and linear layers; BN/activations/pooling excluded)."""
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


# -- key grammars: one per family, a field of its record (ofa_profile.family) -------------------------------
def list_grammars() -> list[KeyGrammar]:
    """Every registered key grammar (one per family), in registration order."""
    return [f.grammar for f in FAMILIES.values()]


def grammar(family: str) -> KeyGrammar:
    if family not in FAMILIES:
        raise SpaceError(f"no key grammar registered for family {family!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[family].grammar


def parse_key(key: str, family: str = "mbv3") -> Op:
    """Parse a LUT key of ``family``'s grammar into an :class:`Op` (raises :class:`KeyError_`)."""
    return grammar(family).parse(key)


def shape_key(op: Op, block_fields: str) -> str:
    """The key parts every family shares: ``KIND-input:HxWxC-output:HxWxC`` (``Logits``: ``-output:N``), and for
    an ``expanded_conv`` the family's ``block_fields`` after it."""
    inp = f"input:{op.in_hw}x{op.in_hw}x{op.in_ch}"
    if op.kind == "Logits":
        return f"Logits-{inp}-output:{op.out_ch}"
    key = f"{op.kind}-{inp}-output:{op.out_hw}x{op.out_hw}x{op.out_ch}"
    return f"{key}-{block_fields}" if op.kind == "expanded_conv" else key


def check_square(key: str, h: int, w: int) -> None:
    if h != w:
        raise KeyError_(f"{key!r}: only square feature maps are supported, got {h}x{w}")


def split_ops(spec: SubnetSpec, ops: Sequence[Op]) -> tuple[list[Op], list[Op]]:
    """``(fixed, blocks)``: the ops every subnet of the space has (stem, first block, head) and the elastic
    blocks, in order (``blocks[j]`` is the j-th active block of :meth:`SubnetSpec.active_blocks`)."""
    n = len(spec.active_blocks())
    return list(ops[:2]) + list(ops[2 + n:]), list(ops[2:2 + n])


def _block(sp: Space, in_hw: int, in_ch: int, out_hw: int, out_ch: int, mid: int, kernel: int, stride: int,
           idskip: int, se: bool, act: str) -> Op:
    return Op("expanded_conv", in_hw, in_ch, out_hw, out_ch, mid=mid, kernel=kernel, stride=stride, idskip=idskip,
              se=int(se), activation=act, family=sp.family)


def _fixed(sp: Space, kind: str, in_hw: int, in_ch: int, out_hw: int, out_ch: int, act: str = "") -> Op:
    return Op(kind, in_hw, in_ch, out_hw, out_ch, activation=act, family=sp.family)


def _head_ops(sp: Space, hw: int, in_ch: int, classes: int | None = None) -> list[Op]:
    """The head's ops, walking the family's head layers (:attr:`ofa_profile.family.Family.head`): MobileNetV3's
    1x1 expand, pool, 1x1 feature mix and classifier on 1x1; ProxylessNAS's 1x1 expand and a classifier that
    pools."""
    n = sp.n_classes if classes is None else int(classes)
    ops = []
    for kind in get_family(sp.family).head:
        if kind == "Conv_1":
            out_hw, out_ch, act = hw, sp.final_expand_ch, sp.head_act
        elif kind == "AvgPool2D":
            out_hw, out_ch, act = 1, in_ch, ""
        elif kind == "Conv_2":
            out_hw, out_ch, act = hw, sp.feature_mix_ch, sp.head_act
        else:                    # Logits
            out_hw, out_ch, act = 0, n, ""
        ops.append(_fixed(sp, kind, hw, in_ch, out_hw, out_ch, act))
        hw, in_ch = out_hw, out_ch
    return ops


def _stem_ops(sp: Space, r: int) -> list[Op]:
    hw = (r + 1) // 2
    return [_fixed(sp, "Conv", r, 3, hw, sp.stem_ch, sp.stem_act),
            _block(sp, hw, sp.stem_ch, hw, sp.first_block_ch, sp.stem_ch, 3, 1,
                   int(has_identity_skip(1, sp.stem_ch, sp.first_block_ch)), False, sp.first_block_act)]


def subnet_ops(spec: SubnetSpec, classes: int | None = None) -> list[Op]:
    """The ops of one subnet, in execution order (OFA's LUT sum walks exactly these); ``classes``: outputs of the
    classifier head (default: the space's)."""
    sp = get_space(spec.space)
    r = spec.r
    hw = (r + 1) // 2
    ops = _stem_ops(sp, r)
    in_ch = sp.first_block_ch
    for i, s, b in spec.active_blocks():
        st = sp.stages[s]
        stride = st.stride if b == 0 else 1
        out_hw = (hw - 1) // stride + 1
        idskip = int(has_identity_skip(stride, in_ch, st.width))
        ops.append(_block(sp, hw, in_ch, out_hw, st.width, sp.mid_channels(in_ch, spec.e[i]), spec.ks[i], stride,
                          idskip, st.se, st.act))
        hw, in_ch = out_hw, st.width
    return ops + _head_ops(sp, hw, in_ch, classes)


def enumerate_ops(space: Space | str, resolutions: Iterable[int] | None = None,
                  classes: int | None = None) -> list[tuple[int, Op]]:
    """Every distinct op of the space over the given resolutions (default: the supernet's), as
    ``(first resolution, op)``.

    The order is deterministic (resolution, then network position).  An op shared by
    several resolutions is listed once, under the first resolution that has it.
    """
    sp = get_space(space)
    res = tuple(sp.resolutions if resolutions is None else resolutions)
    seen: dict[Op, int] = {}
    for r in res:
        for op in ops_at_resolution(sp, r, classes):
            seen.setdefault(op, r)
    return [(r, op) for op, r in seen.items()]


def ops_at_resolution(space: Space | str, r: int, classes: int | None = None) -> list[Op]:
    """Distinct ops of all subnets of the space at resolution ``r`` (96 for OFA MobileNetV3); ``classes``: outputs
    of the classifier head (default: the space's)."""
    sp = get_space(space)
    if r not in sp.run_resolutions:
        raise SpaceError(f"resolution {r} not in space {sp.name} ({sp.resolution_text()})")
    out: dict[Op, None] = {}
    for op in _stem_ops(sp, r):
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
        for pos in range(min(2, max(sp.stage_depths(s)))):  # the first block of a stage, then the later ones
            i_ch = in_ch if pos == 0 else st.width
            i_hw = hw if pos == 0 else out_hw
            stride = st.stride if pos == 0 else 1
            idskip = int(has_identity_skip(stride, i_ch, st.width))
            for k, e in choices_by_stage[s]:
                out[_block(sp, i_hw, i_ch, out_hw, st.width, sp.mid_channels(i_ch, e), k, stride, idskip, st.se,
                           st.act)] = None
        hw, in_ch = out_hw, st.width
    for op in _head_ops(sp, hw, in_ch, classes):
        out[op] = None
    return list(out)


def ops_of_many(specs: Sequence[SubnetSpec]) -> Iterator[Op]:
    for spec in specs:
        yield from subnet_ops(spec)
