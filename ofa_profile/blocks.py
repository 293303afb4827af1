"""Real torch modules of exact shape for every :class:`~ofa_profile.ops.Op` and for whole subnets.

Each LUT entry is measured on a module built here, so one module per op kind, mirroring OFA's
MobileNetV3 layers and their parameter names (``conv``/``bn``/``act``, ``inverted_bottleneck``,
``depth_conv`` (+ ``se.fc.reduce``/``se.fc.expand``), ``point_linear``, ``linear``), so trained
weights copy straight in:

============  ==============================================================================
op kind       module
============  ==============================================================================
Conv          :class:`ConvBNAct` 3x3 stride 2 (padding 1), BN, h-swish  (the stem)
expanded_conv :class:`MBConv`: [1x1 expand, BN, act] -> kxk depthwise stride s (padding k//2),
              BN, act, [:class:`SqueezeExcite`] -> 1x1 project, BN; identity add iff ``idskip``
Conv_1        :class:`ConvBNAct` 1x1, BN, h-swish  (final expand)
AvgPool2D     :class:`AvgPool` global average pool, keepdim
Conv_2        :class:`FeatureMix` 1x1 conv (no BN, no bias), h-swish
Logits        :class:`Classifier` flatten + linear
============  ==============================================================================

Activations are OFA's: ``h_swish(x) = x * relu6(x + 3) / 6`` (``nn.Hardswish``),
``h_sigmoid(x) = relu6(x + 3) / 6`` (``nn.Hardsigmoid``), ``relu``.

Weights are seeded and non-trivial, and so are the BN running statistics and affine
parameters (random mean/var/gamma/beta), so every converter's BN folding is really exercised.
Inputs are NCHW (``Logits`` takes ``(N, C, 1, 1)``, as the feature mix produces).

    >>> from ofa_profile.ops import parse_key
    >>> op = parse_key("expanded_conv-input:28x28x40-output:14x14x80-expand:240-kernel:5-stride:2-idskip:0-se:0-hs:1")
    >>> m, x = op_module(op, seed=0), op_input(op, seed=0)
    >>> tuple(m(x).shape)
    (1, 80, 14, 14)
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import OfaProfileError
from .ops import Op, subnet_ops
from .space import Space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .space import SubnetSpec

__all__ = ["ConvBNAct", "SqueezeExcite", "MBConv", "AvgPool", "FeatureMix", "Classifier", "build_act",
           "build_module", "op_module", "op_input", "subnet_layers", "subnet_module", "subnet_input", "fold_bn",
           "folded_conv_params", "seeded_generator"]


def build_act(name: str | None) -> nn.Module:
    """``relu`` | ``relu6`` | ``h_swish`` (x * relu6(x + 3) / 6) | ``None`` (identity)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    if name is None:
        return nn.Identity()
    raise OfaProfileError(f"unknown activation {name!r}: use 'relu', 'relu6', 'h_swish' or None")


class ConvBNAct(nn.Module):
    """conv (padding k//2) -> BN -> act; OFA's ``ConvLayer`` names (``conv``, ``bn``, ``act``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, act: str | None = "h_swish",
                 use_bn: bool = True, bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=bias)
        self.bn = nn.BatchNorm2d(out_ch) if use_bn else nn.Identity()
        self.act = build_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class FeatureMix(ConvBNAct):
    """OFA's feature-mix layer (``Conv_2``): 1x1 conv without BN and bias, then h-swish."""

    def __init__(self, in_ch: int, out_ch: int, act: str = "h_swish"):
        super().__init__(in_ch, out_ch, 1, 1, act=act, use_bn=False, bias=False)


class SqueezeExcite(nn.Module):
    """OFA's SE: global mean -> 1x1 reduce (bias) -> relu -> 1x1 expand (bias) -> h_sigmoid -> scale.

    ``hidden`` defaults to :meth:`Space.se_channels` (``make_divisible(channels // 4, 8)``).
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = Space.se_channels(channels) if hidden is None else hidden
        self.fc = nn.Sequential(OrderedDict([
            ("reduce", nn.Conv2d(channels, hidden, 1, 1, 0, bias=True)),
            ("relu", nn.ReLU(inplace=True)),
            ("expand", nn.Conv2d(hidden, channels, 1, 1, 0, bias=True)),
            ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(F.adaptive_avg_pool2d(x, 1))


class MBConv(nn.Module):
    """An ``expanded_conv`` op: OFA's ``MBConvLayer`` (names ``inverted_bottleneck``, ``depth_conv``,
    ``point_linear``) plus the identity shortcut of its ``ResidualBlock`` (``idskip``)."""

    def __init__(self, in_ch: int, out_ch: int, mid: int, kernel: int, stride: int, act: str, se: bool,
                 idskip: bool, expand: bool | None = None):
        super().__init__()
        expand = (mid != in_ch) if expand is None else expand
        if idskip and (stride != 1 or in_ch != out_ch):
            raise OfaProfileError(f"MBConv {in_ch}->{out_ch} stride {stride} cannot have an identity shortcut")
        if not expand and mid != in_ch:
            raise OfaProfileError(f"MBConv without expand conv needs mid == in_ch, got mid={mid}, in_ch={in_ch}")
        self.in_ch, self.out_ch, self.mid, self.kernel, self.stride = in_ch, out_ch, mid, kernel, stride
        self.idskip = bool(idskip)
        if expand:
            self.inverted_bottleneck = nn.Sequential(OrderedDict([
                ("conv", nn.Conv2d(in_ch, mid, 1, 1, 0, bias=False)),
                ("bn", nn.BatchNorm2d(mid)),
                ("act", build_act(act)),
            ]))
        else:
            self.inverted_bottleneck = None
        dc: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)),
            ("bn", nn.BatchNorm2d(mid)),
            ("act", build_act(act)),
        ]
        if se:
            dc.append(("se", SqueezeExcite(mid)))
        self.depth_conv = nn.Sequential(OrderedDict(dc))
        self.point_linear = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(mid, out_ch, 1, 1, 0, bias=False)),
            ("bn", nn.BatchNorm2d(out_ch)),
        ]))

    @classmethod
    def from_op(cls, op: Op) -> "MBConv":
        return cls(op.in_ch, op.out_ch, op.mid, op.kernel, op.stride, op.act, bool(op.se), bool(op.idskip),
                   expand=op.has_expand_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.inverted_bottleneck is None else self.inverted_bottleneck(x)
        y = self.point_linear(self.depth_conv(y))
        return y + x if self.idskip else y


class AvgPool(nn.Module):
    """Global average pool, keepdim: ``(N, C, H, W) -> (N, C, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class Classifier(nn.Module):
    """[global average pool +] flatten + [dropout +] linear (``linear.weight``/``linear.bias``, OFA's
    ``LinearLayer``).  ``pool``: the ProxylessNAS ``Logits`` op, which takes the un-pooled map.  ``dropout``: the
    probability of :class:`nn.Dropout` before the linear layer (a training-time regulariser, a no-op in eval)."""

    def __init__(self, in_features: int, out_features: int, pool: bool = False, dropout: float = 0.0):
        super().__init__()
        self.pool = AvgPool() if pool else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        x = torch.flatten(x, 1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.linear(x)


# -- seeded construction --------------------------------------------------------------------------

def seeded_generator(*parts: Any) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``parts`` (stable across runs and platforms)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def _init_weights(module: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial, scale-preserving weights and BN statistics, drawn from ``gen`` in module order."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / m.in_features) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)


def build_module(op: Op, dropout: float = 0.0) -> nn.Module:
    """The module of ``op``, freshly built (torch's default initialisation, train mode, weights trainable): the
    one op -> module builder of the profiler (:func:`op_module`, :func:`subnet_module`), of the models the
    ``.tflite`` writer takes and of the supernet (:mod:`ofa_model.supernet`).  ``dropout``: of a ``Logits`` op's
    classifier (see :class:`Classifier`); ignored for the other kinds."""
    if op.kind == "Conv":
        return ConvBNAct(op.in_ch, op.out_ch, 3, 2, act=op.act)
    if op.kind == "expanded_conv":
        return MBConv.from_op(op)
    if op.kind == "Conv_1":
        return ConvBNAct(op.in_ch, op.out_ch, 1, 1, act=op.act)
    if op.kind == "AvgPool2D":
        return AvgPool()
    if op.kind == "Conv_2":
        return FeatureMix(op.in_ch, op.out_ch, act=op.act)
    if op.kind == "Logits":
        return Classifier(op.in_ch, op.out_ch, pool=op.in_hw > 1, dropout=dropout)
    raise OfaProfileError(f"unknown op kind {op.kind!r}: expected one of Conv, expanded_conv, Conv_1, AvgPool2D, "
                          f"Conv_2, Logits")


def op_module(op: Op, seed: int = 0) -> nn.Module:
    """The module of ``op`` in eval mode, weights and BN statistics drawn from ``seed``."""
    m = build_module(op)
    _init_weights(m, seeded_generator("op-weights", int(seed)))
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def op_input_shape(op: Op, batch: int = 1) -> tuple[int, int, int, int]:
    """NCHW input shape of ``op`` (MobileNetV3's ``Logits``: ``(N, C, 1, 1)``)."""
    hw = max(1, op.in_hw)
    return (int(batch), op.in_ch, hw, hw)


def op_input(op: Op, seed: int = 0, batch: int = 1) -> torch.Tensor:
    """A seeded float32 NCHW input of ``op``'s shape."""
    return torch.randn(op_input_shape(op, batch), generator=seeded_generator("op-input", int(seed)))


def subnet_layers(spec: "SubnetSpec", n_classes: int | None = None, dropout: float = 0.0) -> list[nn.Module]:
    """:func:`build_module` of every op of :func:`~ofa_profile.ops.subnet_ops`, in order (freshly built, train
    mode).  ``n_classes``: the classifier's outputs (default: the space's); ``dropout``: the classifier's."""
    ops = subnet_ops(spec)
    if n_classes is not None:
        ops[-1] = dataclasses.replace(ops[-1], out_ch=int(n_classes))
    return [build_module(op, dropout) for op in ops]


def subnet_module(spec: "SubnetSpec", seed: int = 0, n_classes: int | None = None) -> nn.Sequential:
    """The ops of :func:`~ofa_profile.ops.subnet_ops` chained in order (``nn.Sequential``, eval mode).

    Op ``i`` is seeded from ``(seed, i)``.  Output: ``(N, n_classes)`` logits (default: the space's classes).
    """
    mods = subnet_layers(spec, n_classes=n_classes)
    for i, m in enumerate(mods):
        _init_weights(m, seeded_generator("subnet-weights", int(seed), i))
    seq = nn.Sequential(*mods)
    for p in seq.parameters():
        p.requires_grad_(False)
    return seq.eval()


def subnet_input(spec: "SubnetSpec", seed: int = 0, batch: int = 1) -> torch.Tensor:
    """A seeded float32 NCHW image batch ``(batch, 3, r, r)``."""
    return torch.randn((int(batch), 3, spec.r, spec.r), generator=seeded_generator("subnet-input", int(seed)))


# -- BN folding -----------------------------------------------------------------------------------

def folded_conv_params(conv: nn.Conv2d, bn: nn.Module | None) -> tuple["np.ndarray", "np.ndarray"]:
    """``(weight, bias)`` float32 numpy arrays (torch layout) of ``conv`` followed by eval-mode ``bn``.

    ``bn`` may be ``None`` / ``nn.Identity`` (no folding; a missing bias becomes zeros).
    """
    import numpy as np

    w = conv.weight.detach().cpu().float().numpy()
    b = (conv.bias.detach().cpu().double().numpy() if conv.bias is not None
         else np.zeros(w.shape[0], dtype=np.float64))
    if isinstance(bn, nn.BatchNorm2d):
        if bn.running_mean is None or bn.running_var is None:
            raise OfaProfileError("BatchNorm2d without running statistics cannot be folded: "
                                  "build it with track_running_stats=True")
        gamma = bn.weight.detach().cpu().double().numpy() if bn.weight is not None else 1.0
        beta = bn.bias.detach().cpu().double().numpy() if bn.bias is not None else 0.0
        scale = gamma / np.sqrt(bn.running_var.detach().cpu().double().numpy() + bn.eps)  # float64
        w = w * scale.astype(np.float32).reshape(-1, 1, 1, 1)
        b = (b - bn.running_mean.detach().cpu().double().numpy()) * scale + beta
    elif bn is not None and not isinstance(bn, nn.Identity):
        raise OfaProfileError(f"cannot fold {type(bn).__name__} into a conv: only BatchNorm2d")
    return np.array(w, dtype=np.float32), b.astype(np.float32)


def fold_bn(module: nn.Module) -> nn.Module:
    """A copy of ``module`` (eval mode) with every ``conv``+``bn`` pair folded into the conv (bn -> Identity)."""
    out = copy.deepcopy(module).eval()
    for parent in out.modules():
        conv, bn = getattr(parent, "conv", None), getattr(parent, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            w, b = folded_conv_params(conv, bn)
            new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, bias=True)
            with torch.no_grad():
                new.weight.copy_(torch.from_numpy(w))
                new.bias.copy_(torch.from_numpy(b))
            new.requires_grad_(False)
            parent.conv = new
            parent.bn = nn.Identity()
    return out
