"""The ``ofa`` graph flavour: blocks built from OFA's own layer classes (PyPI package ``ofa``), as an OFA user's
subnet is built by ``OFAMobileNetV3.get_active_subnet()`` and exported through ``torch.onnx``.

OFA's modules compute the same function as the project's layer library (:mod:`ofa_profile.blocks`), but their
graph differs: ``Hswish`` and ``Hsigmoid`` are ``x * relu6(x + 3) / 6`` and export as Add/Clip/Mul/Div chains
(the library's export as single HardSwish / HardSigmoid ops), SE pools with two ``mean`` calls (two ReduceMeans),
the global pool is two means as well, and the classifier flattens with ``view``.  Runtimes fuse little of that, so
the same subnet runs slower in this flavour: a LUT measured with ``measure --graph ofa`` times what an OFA user
deploys.

OFA's package imports torchvision and ``torch._six`` (gone from torch 2) for its data loaders when its layer
module is imported; where they are not installed, tiny stand-ins for exactly those names are put in
``sys.modules`` for the duration of that import only (the layer classes use neither), then taken out again, so
the rest of the process sees no fake torchvision.
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import types
from typing import Any, Iterator

import torch
from torch import nn

from .blocks import _init_weights, seeded_generator
from .errors import OfaProfileError
from .ops import Op, subnet_ops
from .space import SubnetSpec, get_space

__all__ = ["ofa_layers", "ofa_networks", "ofa_import_stand_ins", "ofa_op_module", "ofa_subnet_module", "OFA_FAMILIES"]

#: families whose blocks OFA's MobileNetV3 classes build
OFA_FAMILIES = ("mbv3",)


@contextlib.contextmanager
def ofa_import_stand_ins() -> Iterator[None]:
    """Stand-ins for torchvision and torch._six where they do not import (OFA's data loaders import them), in
    ``sys.modules`` only while the block runs."""
    before = set(sys.modules)
    try:
        importlib.import_module("torchvision.transforms.functional")
    except ImportError:
        tv = types.ModuleType("torchvision")
        tr = types.ModuleType("torchvision.transforms")
        trf = types.ModuleType("torchvision.transforms.functional")
        ds = types.ModuleType("torchvision.datasets")

        class _Stub:  # OFA subclasses transforms.RandomResizedCrop at import time
            def __init__(self, *a: Any, **k: Any) -> None:
                pass

        tr.RandomResizedCrop = _Stub
        tr.InterpolationMode = types.SimpleNamespace(BILINEAR=2, BICUBIC=3)
        tr.functional, tv.transforms, tv.datasets = trf, tr, ds
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tr,
                            "torchvision.transforms.functional": trf, "torchvision.datasets": ds})
    try:
        importlib.import_module("torch._six")
    except ImportError:
        six = types.ModuleType("torch._six")
        six.string_classes = (str, bytes)
        sys.modules["torch._six"] = six
    added = {n for n in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                         "torchvision.datasets", "torch._six") if n not in before and n in sys.modules
             and not getattr(sys.modules[n], "__file__", None)}
    try:
        yield
    finally:
        for n in added:
            sys.modules.pop(n, None)


def ofa_layers() -> types.SimpleNamespace:
    """OFA's layer classes (ConvLayer, MBConvLayer, LinearLayer, ResidualBlock, IdentityLayer, MyGlobalAvgPool2d);
    one line naming the install where the package is absent."""
    try:
        with ofa_import_stand_ins():
            from ofa.utils.layers import ConvLayer, IdentityLayer, LinearLayer, MBConvLayer, ResidualBlock
            from ofa.utils.pytorch_modules import MyGlobalAvgPool2d
    except ImportError as exc:
        raise _no_ofa(exc, "graph flavour 'ofa' needs OFA's package") from None
    return types.SimpleNamespace(ConvLayer=ConvLayer, IdentityLayer=IdentityLayer, LinearLayer=LinearLayer,
                                 MBConvLayer=MBConvLayer, ResidualBlock=ResidualBlock,
                                 MyGlobalAvgPool2d=MyGlobalAvgPool2d)


def ofa_networks() -> types.ModuleType:
    """OFA's ``ofa.imagenet_classification.elastic_nn.networks`` (``OFAMobileNetV3``, ``OFAProxylessNASNets``), as an
    OFA user builds a subnet with it; one line naming the install where the package is absent."""
    try:
        with ofa_import_stand_ins():
            from ofa.imagenet_classification.elastic_nn import networks
    except ImportError as exc:
        raise _no_ofa(exc, "OFA's networks need OFA's package") from None
    return networks


def _no_ofa(exc: ImportError, what: str) -> OfaProfileError:
    return OfaProfileError(f"{what}, which does not import here ({exc}); install it: "
                           f"pip install --no-deps ofa==0.1.0.post202307202001")


class _Flatten(nn.Module):
    """``x.view(x.size(0), -1)``: how OFA's MobileNetV3.forward feeds the classifier."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


def build_ofa_module(op: Op) -> nn.Module:
    """The module of ``op`` as OFA's active subnet builds it (freshly built, train mode)."""
    if op.family not in OFA_FAMILIES:
        raise OfaProfileError(f"graph flavour 'ofa' builds OFA's MobileNetV3 blocks; family {op.family} has none: "
                              f"measure it with --graph ofa-profile")
    L = ofa_layers()
    if op.kind == "Conv":
        return L.ConvLayer(op.in_ch, op.out_ch, kernel_size=3, stride=2, act_func=op.activation)
    if op.kind == "expanded_conv":
        expand = op.mid / op.in_ch if op.has_expand_conv else 1
        conv = L.MBConvLayer(op.in_ch, op.out_ch, kernel_size=op.kernel, stride=op.stride, expand_ratio=expand,
                             mid_channels=op.mid if op.has_expand_conv else None, act_func=op.activation,
                             use_se=bool(op.se))
        return L.ResidualBlock(conv, L.IdentityLayer(op.in_ch, op.in_ch) if op.idskip else None)
    if op.kind == "Conv_1":
        return L.ConvLayer(op.in_ch, op.out_ch, kernel_size=1, act_func=op.activation)
    if op.kind == "AvgPool2D":
        return L.MyGlobalAvgPool2d(keep_dim=True)
    if op.kind == "Conv_2":
        return L.ConvLayer(op.in_ch, op.out_ch, kernel_size=1, bias=False, use_bn=False, act_func=op.activation)
    if op.kind == "Logits":
        return nn.Sequential(_Flatten(), L.LinearLayer(op.in_ch, op.out_ch))
    raise OfaProfileError(f"graph flavour 'ofa' has no module for op kind {op.kind!r}")


def _frozen(m: nn.Module, gen: torch.Generator) -> nn.Module:
    _init_weights(m, gen)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()


def ofa_op_module(op: Op, seed: int = 0) -> nn.Module:
    """:func:`build_ofa_module` in eval mode, weights and BN statistics drawn from ``seed`` (as
    :func:`ofa_profile.blocks.op_module` draws the library's)."""
    return _frozen(build_ofa_module(op), seeded_generator("op-weights", int(seed)))


def ofa_subnet_module(spec: SubnetSpec, seed: int = 0, n_classes: int | None = None) -> nn.Sequential:
    """The subnet's ops as OFA's modules, chained (eval mode); ``n_classes``: the head's outputs (default: the
    space's)."""
    if get_space(spec.space).family not in OFA_FAMILIES:
        raise OfaProfileError(f"graph flavour 'ofa' builds OFA's MobileNetV3 blocks; space {spec.space} has none")
    mods = []
    for i, op in enumerate(subnet_ops(spec, n_classes)):
        mods.append(_frozen(build_ofa_module(op), seeded_generator("subnet-weights", int(seed), i)))
    return nn.Sequential(*mods).eval()
