"""Every field of an OFA ``net.config`` read against the space: what it describes is exactly the subnet, or refused.

:meth:`ofa_profile.space.SubnetSpec.from_net_config` reads the choices (kernel, expand ratio, depth, image size);
:func:`check_net_config` then compares every other field with the network the space builds for those choices
(:func:`expected_net_config`: OFA's ``MobileNetV3`` / ``ProxylessNASNets`` config of that subnet): the stem, each
block's in/out channels, stride, activation, squeeze-excite, middle channels and shortcut, the final expand and
feature-mix layers, the classifier, the layer names and the batch-norm epsilon.  A field a config leaves out takes
OFA's default for that layer (as OFA's own ``set_layer_from_config`` does), so a missing ``act_func`` reads as
ReLU; a field OFA's layer does not have is refused too.  The first difference is one :class:`SpaceError` naming
the field, its value and the space's -- nothing is silently dropped or replaced.  Training-only fields
(``dropout_rate``, ``bn.momentum``) may take any value in their range.

The classes and resolutions a net.config may have are :func:`check_head`'s, in one place.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from .errors import SpaceError

__all__ = ["expected_net_config", "check_net_config", "check_head", "accepted_classes", "has_identity_skip", "BN_EPS"]

#: the batch-norm epsilon of each family's networks (OFA: MobileNetV3 1e-5, ProxylessNAS 1e-3)
BN_EPS = {"MobileNetV3": 1e-5, "ProxylessNASNets": 1e-3}
_TOP = {"name", "bn", "first_conv", "blocks", "final_expand_layer", "feature_mix_layer", "classifier", "image_size",
        "r"}
# OFA's constructor defaults of each layer type (what a field left out means), and the fields each may have
_DEFAULTS: dict[str, dict[str, Any]] = {
    "ConvLayer": {"kernel_size": 3, "stride": 1, "dilation": 1, "groups": 1, "bias": False, "has_shuffle": False,
                  "use_se": False, "use_bn": True, "act_func": "relu", "dropout_rate": 0,
                  "ops_order": "weight_bn_act"},
    "LinearLayer": {"bias": True, "use_bn": False, "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"},
    "MBConv": {"kernel_size": 3, "stride": 1, "expand_ratio": 6, "mid_channels": None, "act_func": "relu6",
               "use_se": False, "groups": None},
    "IdentityLayer": {"use_bn": False, "act_func": None, "dropout_rate": 0, "ops_order": "weight_bn_act"},
}
_REQUIRED = {"ConvLayer": ("in_channels", "out_channels"), "LinearLayer": ("in_features", "out_features"),
             "MBConv": ("in_channels", "out_channels"), "IdentityLayer": ("in_channels", "out_channels")}
_MBCONV_NAMES = ("MBInvertedConvLayer", "MBConvLayer")           # OFA before and after its 2020 rename
_BLOCK_NAMES = ("MobileInvertedResidualBlock", "ResidualBlock")


def has_identity_skip(stride: int, in_ch: int, out_ch: int) -> bool:
    """OFA's rule for an MBConv block's identity shortcut: stride 1 and the same width in and out."""
    return stride == 1 and in_ch == out_ch


def accepted_classes(sp: Any) -> tuple[int, ...]:
    """The classifier sizes a net.config of ``sp`` may have: the space's own (1000 for OFA's ImageNet nets).  A
    LUT times the classifier of exactly this size, so another one cannot be predicted yet."""
    return (sp.n_classes,)


def check_head(n_classes: Any, r: int, sp: Any) -> None:
    """The one place that says which classifier sizes and image sizes a net.config may have (a :class:`SpaceError`
    otherwise): :func:`accepted_classes`, and the space's resolutions."""
    ok = accepted_classes(sp)
    if not any(_same(n_classes, c) for c in ok):
        raise SpaceError(f"net.config classifier.out_features is {_show(n_classes)}; space {sp.name} has "
                         f"{' or '.join(map(str, ok))} classes (a LUT times that classifier), so this network cannot "
                         f"be predicted")
    if r not in sp.run_resolutions:     # the space's resolution check: 128..224, and above for latency only
        raise SpaceError(f"net.config image size {r} is not a resolution of space {sp.name} "
                         f"({sp.resolution_text()})")


def _conv(cin: int, cout: int, k: int, stride: int, act: str, use_bn: bool) -> dict[str, Any]:
    return {"name": "ConvLayer", "kernel_size": k, "stride": stride, "dilation": 1, "groups": 1, "bias": False,
            "has_shuffle": False, "use_se": False, "in_channels": cin, "out_channels": cout, "use_bn": use_bn,
            "act_func": act, "ops_order": "weight_bn_act"}


def _mbconv(sp: Any, cin: int, cout: int, k: int, stride: int, e: int, act: str, se: bool) -> dict[str, Any]:
    return {"name": _MBCONV_NAMES, "in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride,
            "expand_ratio": e, "mid_channels": (None, sp.mid_channels(cin, e)), "act_func": act, "use_se": se,
            "groups": None}


def _block(conv: dict[str, Any], stride: int, cin: int, cout: int) -> dict[str, Any]:
    skip = has_identity_skip(stride, cin, cout)
    return {"name": _BLOCK_NAMES, "conv": conv,
            "shortcut": {"name": "IdentityLayer", "in_channels": [cin], "out_channels": [cout], "use_bn": False,
                         "act_func": None, "ops_order": "weight_bn_act"} if skip else None}


def expected_net_config(spec: Any) -> dict[str, Any]:
    """The net.config of ``spec``'s network as OFA writes it (a tuple of values: any of them; the block's conv
    under ``conv``, which a config may name ``mobile_inverted_conv``)."""
    sp = spec.space_def
    proxyless = sp.net_config_name == "ProxylessNASNets"
    blocks = [_block(_mbconv(sp, sp.stem_ch, sp.first_block_ch, 3, 1, 1, sp.first_block_act, False), 1,
                     sp.stem_ch, sp.first_block_ch)]
    for s, st in enumerate(sp.stages):
        cin = sp.stage_in_channels(s)
        for b in range(spec.d[s]):
            i = s * sp.max_depth + b
            stride = st.stride if b == 0 else 1
            blocks.append(_block(_mbconv(sp, cin, st.width, spec.ks[i], stride, spec.e[i], st.act, st.se), stride,
                                 cin, st.width))
            cin = st.width
    last = sp.stages[-1].width
    cfg: dict[str, Any] = {"name": sp.net_config_name,
                           "first_conv": _conv(3, sp.stem_ch, 3, 2, sp.stem_act, True), "blocks": blocks}
    if proxyless:       # one 1x1 layer (with batch norm) from the last stage to the head width
        cfg["final_expand_layer"] = None
        cfg["feature_mix_layer"] = _conv(last, sp.final_expand_ch, 1, 1, sp.head_act, True)
        head = sp.final_expand_ch
    else:               # final expand (batch norm), global pool, feature mix (no batch norm)
        cfg["final_expand_layer"] = _conv(last, sp.final_expand_ch, 1, 1, sp.head_act, True)
        cfg["feature_mix_layer"] = _conv(sp.final_expand_ch, sp.feature_mix_ch, 1, 1, sp.head_act, False)
        head = sp.feature_mix_ch
    cfg["classifier"] = {"name": "LinearLayer", "in_features": head, "out_features": sp.n_classes, "bias": True,
                         "use_bn": False, "act_func": None, "ops_order": "weight_bn_act"}
    return cfg


def _same(a: Any, b: Any) -> bool:
    """JSON equality without Python's ``True == 1`` and ``1 == 1.0`` for integers stated as floats."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return type(a) is type(b) and a == b if isinstance(b, int) else float(a) == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _show(v: Any) -> str:
    s = repr(v) if not isinstance(v, str) else f"'{v}'"
    s = "null" if v is None else "true" if v is True else "false" if v is False else s
    return s if len(s) <= 40 else s[:37] + "..."


def _want(v: Any) -> str:
    return " or ".join(_show(x) for x in v) if isinstance(v, tuple) else _show(v)


def _matches(given: Any, want: Any) -> bool:
    return any(_same(given, w) for w in want) if isinstance(want, tuple) else _same(given, want)


def _layer(given: Any, want: Mapping[str, Any] | None, where: str, sp: Any) -> None:
    """Compare one layer's config with the space's; a field left out takes OFA's default for that layer type."""
    if want is None:
        if given is not None:
            raise SpaceError(f"net.config {where} is a layer; space {sp.name}'s network has none there")
        return
    if not isinstance(given, Mapping):
        raise SpaceError(f"net.config {where} is {_show(given)}, not a layer object; space {sp.name} has a "
                         f"{_want(want['name'])} there")
    kind = "MBConv" if want["name"] == _MBCONV_NAMES else want["name"]
    defaults = _DEFAULTS[kind]
    name = given.get("name", want["name"] if kind != "MBConv" else _MBCONV_NAMES[0])
    if not _matches(name, want["name"]):
        raise SpaceError(f"net.config {where}.name is {_show(name)}; space {sp.name} has {_want(want['name'])} there")
    for key in given:
        if key != "name" and key not in defaults and key not in _REQUIRED[kind]:
            raise SpaceError(f"net.config {where} holds the field {_show(key)}, which OFA's {_want(want['name'])} "
                             f"has not; remove it (it would be ignored)")
    for key in _REQUIRED[kind]:
        if key not in given:
            raise SpaceError(f"net.config {where} lacks {key}; space {sp.name} has {_want(want[key])} there")
    for key, default in defaults.items():
        value = given.get(key, default)
        if key == "dropout_rate":    # training only
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise SpaceError(f"net.config {where}.dropout_rate is {_show(value)}; it must be a number in [0, 1)")
            continue
        if not _matches(value, want.get(key, default)):
            raise SpaceError(f"net.config {where}.{key} is {_show(value)}"
                             + ("" if key in given else " (left out: OFA's default)")
                             + f"; space {sp.name} has {_want(want.get(key, default))} there")
    for key in _REQUIRED[kind]:
        if not _matches(given[key], want[key]):
            raise SpaceError(f"net.config {where}.{key} is {_show(given[key])}; space {sp.name} has "
                             f"{_want(want[key])} there")


def check_net_config(cfg: Mapping[str, Any], spec: Any) -> None:
    """Refuse (one :class:`SpaceError` naming the field, its value and the space's) a ``cfg`` that describes any
    other network than ``spec`` (read from it): see the module's docstring."""
    sp = spec.space_def
    want = expected_net_config(spec)
    for key in cfg:
        if key not in _TOP:
            raise SpaceError(f"net.config holds the field {_show(key)}, which an OFA {sp.net_config_name} net.config "
                             f"has not; remove it (it would be ignored)")
    bn = cfg.get("bn", {"momentum": 0.1, "eps": BN_EPS[sp.net_config_name]})
    if not isinstance(bn, Mapping) or set(bn) - {"momentum", "eps"}:
        raise SpaceError(f"net.config bn is {_show(bn)}; space {sp.name} has {{momentum, eps: "
                         f"{BN_EPS[sp.net_config_name]:g}}}")
    mom = bn.get("momentum", 0.1)
    if isinstance(mom, bool) or not isinstance(mom, (int, float)) or not 0 < mom <= 1:
        raise SpaceError(f"net.config bn.momentum is {_show(mom)}; it must be a number in (0, 1]")
    eps = bn.get("eps", BN_EPS[sp.net_config_name])
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isclose(eps, BN_EPS[sp.net_config_name],
                                                                                       rel_tol=1e-9):
        raise SpaceError(f"net.config bn.eps is {_show(eps)}; space {sp.name} has {BN_EPS[sp.net_config_name]:g}")
    classifier = cfg.get("classifier")
    if isinstance(classifier, Mapping) and "out_features" in classifier:
        check_head(classifier["out_features"], spec.r, sp)
    _layer(cfg.get("first_conv"), want["first_conv"], "first_conv", sp)
    blocks = cfg.get("blocks")
    if not isinstance(blocks, list) or len(blocks) != len(want["blocks"]):
        n = len(blocks) if isinstance(blocks, list) else _show(blocks)
        raise SpaceError(f"net.config blocks holds {n} blocks; space {sp.name} builds {len(want['blocks'])} for "
                         f"these depths")
    for i, (blk, wb) in enumerate(zip(blocks, want["blocks"])):
        where = f"blocks[{i}]"
        if not isinstance(blk, Mapping):
            raise SpaceError(f"net.config {where} is {_show(blk)}, not a block object")
        if not _matches(blk.get("name", _BLOCK_NAMES[0]), wb["name"]):
            raise SpaceError(f"net.config {where}.name is {_show(blk.get('name'))}; space {sp.name} has "
                             f"{_want(wb['name'])} there")
        conv_key = "mobile_inverted_conv" if "mobile_inverted_conv" in blk else "conv"
        for key in blk:
            if key not in ("name", "shortcut", conv_key):
                raise SpaceError(f"net.config {where} holds the field {_show(key)}, which OFA's blocks have not "
                                 f"(or holds both conv and mobile_inverted_conv); remove it")
        _layer(blk.get(conv_key), wb["conv"], f"{where}.{conv_key}", sp)
        if "shortcut" not in blk:
            raise SpaceError(f"net.config {where} lacks shortcut; space {sp.name} has "
                             f"{'an IdentityLayer' if wb['shortcut'] else 'null'} there")
        _layer(blk["shortcut"], wb["shortcut"], f"{where}.shortcut", sp)
    for key in ("final_expand_layer", "feature_mix_layer", "classifier"):
        if key not in cfg and want[key] is not None:
            raise SpaceError(f"net.config lacks {key}; space {sp.name}'s network has a {want[key]['name']} there")
        _layer(cfg.get(key), want[key], key, sp)
