"""OFA's MobileNetV3 family: the w1.0 and w1.2 spaces, CompOFA's compound space, and OFA's LUT key grammar.

Key grammar (OFA's ``<r>_lookup_table.yaml`` for MobileNetV3; ``expand`` is the middle channel count)::

    Conv-input:224x224x3-output:112x112x16
    expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0
    Conv_1-input:7x7x160-output:7x7x960
    AvgPool2D-input:7x7x960-output:1x1x960
    Conv_2-input:1x1x960-output:1x1x1280
    Logits-input:1x1x1280-output:1000
"""
from __future__ import annotations

import re

from ..family import Family, KeyGrammar, register_family
from ..ops import KeyError_, Op, check_square, shape_key
from ..space import Space, StageDef, make_divisible

FAMILY = "mbv3"
# Base (width 1.0) macro-architecture of OFA MobileNetV3 (ofa/imagenet_classification/elastic_nn/networks/ofa_mbv3.py)
_BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
_STRIDES = (2, 2, 2, 1, 2)
_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
_SE = (False, True, False, True, True)
# CompOFA: expand ratio as a function of stage depth, and the fixed kernel of each stage
_COMPOUND_EXPAND = ((2, 3), (3, 4), (4, 6))
_COMPOUND_KERNELS = (3, 5, 3, 3, 5)


def mbv3_space(name: str, width_mult: float, compound: bool = False) -> Space:
    w = [make_divisible(b * width_mult, 8) for b in _BASE_WIDTHS]
    stages = tuple(StageDef(w[2 + i], _STRIDES[i], _ACTS[i], _SE[i]) for i in range(5))
    ofa_id = f"ofa_mbv3_d234_e346_k357_w{width_mult:.1f}"
    return Space(name=name, family=FAMILY, ofa_id=ofa_id, width_mult=width_mult, stem_ch=w[0], first_block_ch=w[1],
                 stages=stages, final_expand_ch=w[7], feature_mix_ch=w[8], depths=(2, 3, 4), expands=(3, 4, 6),
                 kernels=(3, 5, 7), compound=compound,
                 compound_expand=_COMPOUND_EXPAND if compound else (), compound_kernels=_COMPOUND_KERNELS if compound else ())


def key(op: Op) -> str:
    fields = f"expand:{op.mid}-kernel:{op.kernel}-stride:{op.stride}-idskip:{op.idskip}-se:{op.se}-hs:{op.hs}"
    return shape_key(op, fields if op.kind == "expanded_conv" else "")


_SHAPE = r"(\d+)x(\d+)x(\d+)"
_KEY_RE = {
    "expanded_conv": re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)-stride:(\d+)"
                                rf"-idskip:([01])-se:([01])-hs:([01])$"),
    "Logits": re.compile(rf"^Logits-input:{_SHAPE}-output:(\d+)$"),
    "other": re.compile(rf"^(Conv|Conv_1|AvgPool2D|Conv_2)-input:{_SHAPE}-output:{_SHAPE}$"),
}
EXAMPLE = "expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0"


def parse(k: str) -> Op:
    """Parse an OFA MobileNetV3 LUT key into an :class:`Op` (raises :class:`KeyError_`)."""
    m = _KEY_RE["expanded_conv"].match(k)
    if m:
        g = [int(x) for x in m.groups()]
        check_square(k, g[0], g[1])
        check_square(k, g[3], g[4])
        return Op("expanded_conv", g[0], g[2], g[3], g[5], mid=g[6], kernel=g[7], stride=g[8], idskip=g[9],
                  se=g[10], activation="h_swish" if g[11] else "relu", family=FAMILY)
    m = _KEY_RE["Logits"].match(k)
    if m:
        g = [int(x) for x in m.groups()]
        check_square(k, g[0], g[1])
        return Op("Logits", g[0], g[2], 0, g[3], family=FAMILY)
    m = _KEY_RE["other"].match(k)
    if m:
        kind = m.group(1)
        g = [int(x) for x in m.groups()[1:]]
        check_square(k, g[0], g[1])
        check_square(k, g[3], g[4])
        # the stem, the final expand and the feature mix are h-swish layers; the pool has no activation
        return Op(kind, g[0], g[2], g[3], g[5], activation="" if kind == "AvgPool2D" else "h_swish", family=FAMILY)
    raise KeyError_(f"{k!r} is not an OFA MobileNetV3 LUT key (e.g. '{EXAMPLE}')")


FAMILY_RECORD = register_family(Family(
    name=FAMILY, description="OFA's MobileNetV3 supernets (h-swish, squeeze-excite) and CompOFA's compound space",
    spaces=(mbv3_space("ofa-mbv3-w1.0", 1.0), mbv3_space("ofa-mbv3-w1.2", 1.2),
            mbv3_space("compofa-mbv3-w1.0", 1.0, compound=True)),
    grammar=KeyGrammar(FAMILY, key, parse, EXAMPLE, table_format="ofa-mbv3-yaml", table_stat="std",
                       table_name="OFA's MobileNetV3 format"),
    net_config_name="MobileNetV3", head=("Conv_1", "AvgPool2D", "Conv_2", "Logits"),
    stem_act="h_swish", first_block_act="relu", head_act="h_swish"))
GRAMMAR = FAMILY_RECORD.grammar
