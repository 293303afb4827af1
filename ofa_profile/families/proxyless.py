"""OFA's ProxylessNAS family: ``ofa-proxyless-w1.3`` (OFA's third supernet, ``ofa_proxyless_d234_e346_k357_w1.3``,
16 of OFA's 50 specialized nets: its CPU and GPU ones) and the same rules at width 1.0 (``ofa-proxyless-w1.0``,
the shapes of ProxylessNAS's own mobile LUT).

Macro-architecture (OFA's ``OFAProxylessNASNets``, checked against the ``ofa`` package in the tests): stem 3x3
stride 2 -> 40, ReLU6; first block MBConv expand 1, 3x3, 40 -> 24 (no shortcut); elastic stages of widths 32, 56,
104, 128, 248 (strides 2, 2, 2, 1, 2; depth {2,3,4}, kernel {3,5,7}, expand {3,4,6}, ReLU6, no SE) and a last
stage of one elastic block 248 -> 416 (stride 1); a 1x1 conv 416 -> 1664 with BN and ReLU6 *before* the global
pool; the classifier 1664 -> classes.  Base widths (32, 16, 24, 40, 80, 96, 192, 320, 1280) x width multiplier,
rounded by ``make_divisible(., 8)``.

Key grammar: OFA's ProxylessNAS tables (``proxylessnas-mobile_trim.yaml``): ``expand`` is the *ratio*, no
``se``/``hs`` fields, and ``Logits`` takes the un-pooled map (the pool is part of it)::

    Conv-input:224x224x3-output:112x112x40
    expanded_conv-input:112x112x40-output:112x112x24-expand:1-kernel:3-stride:1-idskip:0
    expanded_conv-input:56x56x32-output:28x28x56-expand:6-kernel:5-stride:2-idskip:0
    Conv_1-input:7x7x416-output:7x7x1664
    Logits-input:7x7x1664-output:1000
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from ..family import Family, KeyGrammar, register_family
from ..ops import KeyError_, Op, check_square, shape_key
from ..space import Space, StageDef, make_divisible

FAMILY = "proxyless"
ACT = "relu6"
_BASE_WIDTHS = (32, 16, 24, 40, 80, 96, 192, 320, 1280)
_STRIDES = (2, 2, 2, 1, 2, 1)
_RATIOS = (1, 2, 3, 4, 5, 6, 8)       # expand ratios a key may carry (the first block's is 1)


def proxyless_space(name: str, width_mult: float) -> Space:
    w = [make_divisible(b * width_mult, 8) for b in _BASE_WIDTHS]
    stages = tuple(StageDef(w[2 + i], _STRIDES[i], ACT, False, depths=(1,) if i == 5 else ())
                   for i in range(6))
    return Space(name=name, family=FAMILY, ofa_id=f"ofa_proxyless_d234_e346_k357_w{width_mult:.1f}",
                 width_mult=width_mult, stem_ch=w[0], first_block_ch=w[1], stages=stages, final_expand_ch=w[8],
                 feature_mix_ch=0, depths=(2, 3, 4), expands=(3, 4, 6), kernels=(3, 5, 7))


def _ratio(op: Op) -> int:
    if op.mid == op.in_ch and not op.has_expand_conv:
        return 1
    for e in _RATIOS:
        if make_divisible(round(op.in_ch * e), 8) == op.mid:
            return e
    raise KeyError_(f"middle width {op.mid} of a {op.in_ch}-channel block is no expand ratio of {_RATIOS}")


def key(op: Op) -> str:
    if op.kind != "expanded_conv":
        return shape_key(op, "")
    return shape_key(op, f"expand:{_ratio(op)}-kernel:{op.kernel}-stride:{op.stride}-idskip:{op.idskip}")


_SHAPE = r"(\d+)x(\d+)x(\d+)"
_BLOCK = re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)-stride:(\d+)"
                    rf"-idskip:([01])$")
_LOGITS = re.compile(rf"^Logits-input:{_SHAPE}-output:(\d+)$")
_OTHER = re.compile(rf"^(Conv|Conv_1)-input:{_SHAPE}-output:{_SHAPE}$")
EXAMPLE = "expanded_conv-input:56x56x32-output:28x28x56-expand:6-kernel:5-stride:2-idskip:0"


def parse(k: str) -> Op:
    """Parse a ProxylessNAS LUT key into an :class:`Op` (raises :class:`KeyError_`)."""
    m = _BLOCK.match(k)
    if m:
        g = [int(x) for x in m.groups()]
        check_square(k, g[0], g[1])
        check_square(k, g[3], g[4])
        in_ch, e = g[2], g[6]
        if e not in _RATIOS:
            raise KeyError_(f"{k!r}: expand ratio {e} is not one of {_RATIOS}")
        mid = in_ch if e == 1 else make_divisible(round(in_ch * e), 8)
        return Op("expanded_conv", g[0], in_ch, g[3], g[5], mid=mid, kernel=g[7], stride=g[8], idskip=g[9],
                  activation=ACT, family=FAMILY)
    m = _LOGITS.match(k)
    if m:
        g = [int(x) for x in m.groups()]
        check_square(k, g[0], g[1])
        return Op("Logits", g[0], g[2], 0, g[3], family=FAMILY)
    m = _OTHER.match(k)
    if m:
        g = [int(x) for x in m.groups()[1:]]
        check_square(k, g[0], g[1])
        check_square(k, g[3], g[4])
        return Op(m.group(1), g[0], g[2], g[3], g[5], activation=ACT, family=FAMILY)
    raise KeyError_(f"{k!r} is not an OFA ProxylessNAS LUT key (e.g. '{EXAMPLE}')")


# OFA's ProxylessNAS tables store {count, mean, var}; their block keys carry the expand ratio (possibly written
# as a float) and no se/hs fields, and their logits key names the pooled feature map
_TABLE_BLOCK = re.compile(r"^expanded_conv-input:\d+x\d+x\d+-output:\d+x\d+x\d+-expand:\d+(\.\d+)?-kernel:\d+"
                          r"-stride:\d+-idskip:[01]$")


def recognise(table: Mapping[str, Any]) -> bool:
    """True for a parsed OFA latency table in the ProxylessNAS format (by its statistics or its keys)."""
    keys = [str(k) for k in table]
    return (any(isinstance(v, dict) and "var" in v for v in table.values()) or any(_TABLE_BLOCK.match(k) for k in keys)
            or any(k.startswith("Logits-input:") and not k.startswith("Logits-input:1x1x") for k in keys))


FAMILY_RECORD = register_family(Family(
    name=FAMILY, description="OFA's ProxylessNAS supernets (ReLU6, no squeeze-excite, a one-block last stage)",
    spaces=(proxyless_space("ofa-proxyless-w1.3", 1.3), proxyless_space("ofa-proxyless-w1.0", 1.0)),
    grammar=KeyGrammar(FAMILY, key, parse, EXAMPLE, table_format="proxylessnas-yaml", table_stat="var",
                       table_name="OFA's ProxylessNAS format", recognise=recognise),
    net_config_name="ProxylessNASNets", head=("Conv_1", "Logits"), stem_act=ACT, first_block_act=ACT, head_act=ACT))
GRAMMAR = FAMILY_RECORD.grammar
