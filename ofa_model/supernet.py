"""The elastic OFA MobileNetV3 supernet and its static extracted subnets.

The macro-architecture comes from :mod:`ofa_profile.space` (one source of truth).  Parameter names and
shapes are those of OFA's ``OFAMobileNetV3`` (``ofa_mbv3_d234_e346_k357_w1.0`` for the default space), so
an official checkpoint loads strictly with :func:`load_supernet_weights`.

One layer library: the supernet's fixed layers (stem, first block, head) and every extracted subnet are the
modules :func:`ofa_profile.blocks.build_module` builds for the subnet's ops (those the profiler measures and the
``.tflite`` writer takes); only the elastic blocks are :mod:`ofa_model.elastic` layers, which write their active
weights into the subnet's MBConvs themselves.

    >>> net = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10)
    >>> spec = net.sample_active_subnet(0)           # seeded; also sets it active
    >>> sub = net.get_active_subnet().eval()          # ofa_profile.blocks layers with copied weights
"""
from __future__ import annotations

import dataclasses
import os
import random
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from ofa_profile.blocks import MBConv, build_module, subnet_layers
from ofa_profile.errors import OfaProfileError
from ofa_profile.families.mbv3 import FAMILY as MBV3_FAMILY
from ofa_profile.ops import split_ops, subnet_ops
from ofa_profile.space import (DEFAULT_SPACE, Space, SpaceError, SubnetSpec, compound_space,  # noqa: F401 (re-exported)
                               full_space, get_space, has_identity_skip)

from .elastic import DynamicMBConv, ResidualBlock
from .safeload import check_finite, load_torch_file

__all__ = ["OFAMobileNetV3", "MobileNetV3Subnet", "MBConvSlot", "recalibrate_bn", "load_supernet_weights",
           "WeightsError", "same_macro", "full_space", "compound_space"]


from .safeload import WeightsError  # noqa: E402 - re-exported: where callers have always imported it


def same_macro(a: Space, b: Space) -> bool:
    """True when two spaces share the macro-architecture (so one supernet serves both)."""
    return a.macro() == b.macro()


class MBConvSlot(nn.Sequential):
    """OFA's ``ResidualBlock`` level around a static :class:`ofa_profile.blocks.MBConv`: only the name ``conv``
    (keys ``blocks.<i>.conv.*``, as in OFA's checkpoints), no parameters; the MBConv adds its own identity
    shortcut (``idskip``).  A ``Sequential``, so the ``.tflite`` writer walks through it."""

    def __init__(self, conv: MBConv):
        super().__init__(OrderedDict([("conv", conv)]))


class MobileNetV3Subnet(nn.Sequential):
    """An extracted subnet: the layers :func:`ofa_profile.blocks.subnet_layers` builds for ``spec``, chained under
    OFA's ``MobileNetV3`` names (``first_conv``, ``blocks.<i>.conv``, ``final_expand_layer``, ``pool``,
    ``feature_mix_layer``, ``classifier``), so its state dict is that of OFA's extracted subnet and the ``.tflite``
    writer takes it as it is.  ``spec`` records what it is."""

    def __init__(self, layers: Sequence[nn.Module], spec: SubnetSpec):
        stem, *mbconvs, final_expand, pool, feature_mix, classifier = layers
        super().__init__(OrderedDict([
            ("first_conv", stem), ("blocks", nn.Sequential(*(MBConvSlot(b) for b in mbconvs))),
            ("final_expand_layer", final_expand), ("pool", pool), ("feature_mix_layer", feature_mix),
            ("classifier", classifier),
        ]))
        self.spec = spec


def _copy_layer(dst: nn.Module, src: nn.Module) -> None:
    """``src``'s tensors into ``dst`` (a layer of the same class and shapes), BN eps and momentum too."""
    dst.load_state_dict(src.state_dict(), strict=True)
    bns = [[m for m in mod.modules() if isinstance(m, nn.BatchNorm2d)] for mod in (dst, src)]
    for d, s in zip(*bns):
        d.eps, d.momentum = s.eps, s.momentum


class OFAMobileNetV3(nn.Module):
    """Elastic MobileNetV3 (kernel, expand, depth, resolution) over a registered space."""

    def __init__(self, space: str | Space = DEFAULT_SPACE, n_classes: int = 1000, dropout_rate: float = 0.1,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        super().__init__()
        sp = get_space(space)
        if sp.family != MBV3_FAMILY:
            raise SpaceError(f"the supernet implements OFA's MobileNetV3 family; space {sp.name} is of family "
                             f"{sp.family}")
        self.space, self.n_classes, self.dropout_rate = sp, int(n_classes), dropout_rate
        # the fixed layers are those of every subnet: built, in OFA's order, from the ops of one
        smallest = sp.smallest()
        stem_op, first_op, final_expand_op, _pool, feature_mix_op, logits_op = \
            split_ops(smallest, subnet_ops(smallest))[0]
        self.first_conv = build_module(stem_op)
        blocks: list[nn.Module] = [MBConvSlot(build_module(first_op))]
        self.block_group_info: list[list[int]] = []
        feature = sp.first_block_ch
        for st in sp.stages:
            self.block_group_info.append(list(range(len(blocks), len(blocks) + sp.max_depth)))
            for i in range(sp.max_depth):
                stride = st.stride if i == 0 else 1
                conv = DynamicMBConv(sp, feature, st.width, stride, st.act, st.se)
                blocks.append(ResidualBlock(conv, has_identity_skip(stride, feature, st.width)))
                feature = st.width
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = build_module(final_expand_op)
        self.feature_mix_layer = build_module(feature_mix_op)
        self.classifier = build_module(dataclasses.replace(logits_op, out_ch=self.n_classes), dropout_rate)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum, m.eps = bn_momentum, bn_eps
        self.runtime_depth = [sp.max_depth] * sp.n_stages
        self.active_spec: SubnetSpec = sp.largest()

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        x = self.blocks[0](x)
        for s, idx in enumerate(self.block_group_info):
            for i in idx[: self.runtime_depth[s]]:
                x = self.blocks[i](x)
        x = self.final_expand_layer(x)
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(torch.flatten(x, 1))

    # -- active subnet ----------------------------------------------------------------------------
    def set_active_subnet(self, spec: SubnetSpec) -> None:
        """Activate ``spec`` (its space must share this supernet's macro-architecture)."""
        ssp = get_space(spec.space)
        if not same_macro(ssp, self.space) or not set(ssp.kernels) <= set(self.space.kernels) \
                or not set(ssp.expands) <= set(self.space.expands):
            raise SpaceError(f"spec of space {spec.space} does not fit a supernet of space {self.space.name}")
        spec.validated()
        for j, blk in enumerate(self.blocks[1:]):
            blk.conv.active_kernel_size = spec.ks[j]
            blk.conv.active_expand_ratio = spec.e[j]
        self.runtime_depth = list(spec.d)
        self.active_spec = spec

    def set_max_net(self, r: int = 224) -> SubnetSpec:
        """Activate the full net (largest kernel, expand and depth of the supernet, even for a compound space)."""
        spec = full_space(self.space).largest(r)
        self.set_active_subnet(spec)
        return spec

    def sample_active_subnet(self, rng: random.Random | int, resolution: int | None = None) -> SubnetSpec:
        """Sample a subnet of the space (seeded), activate it and return its spec."""
        spec = self.space.sample(rng, resolution)
        self.set_active_subnet(spec)
        return spec

    @property
    def active_resolution(self) -> int:
        return self.active_spec.r

    def get_active_subnet(self) -> MobileNetV3Subnet:
        """The active subnet, built by the layer library (:func:`ofa_profile.blocks.subnet_layers` of the active
        spec, with this supernet's classes and dropout) with the active weights written in: the fixed layers
        copied, each elastic block through :meth:`DynamicMBConv.copy_active_weights`.  Same device and train/eval
        mode as the supernet; BN eps and momentum kept."""
        spec = self.active_spec
        dropout = self.classifier.dropout.p if self.classifier.dropout is not None else 0.0
        w = self.classifier.linear.weight
        sub = MobileNetV3Subnet(subnet_layers(spec, self.n_classes, dropout), spec).to(w.device, w.dtype)
        active = [self.blocks[i] for s, idx in enumerate(self.block_group_info) for i in idx[: self.runtime_depth[s]]]
        if len(active) != len(sub.blocks) - 1:
            raise OfaProfileError(f"the active depths {self.runtime_depth} are not those of {spec.short()} (a bug)")
        with torch.no_grad():
            for dst, src in ((sub.first_conv, self.first_conv), (sub.blocks[0].conv, self.blocks[0].conv),
                             (sub.final_expand_layer, self.final_expand_layer),
                             (sub.feature_mix_layer, self.feature_mix_layer), (sub.classifier, self.classifier)):
                _copy_layer(dst, src)
            for slot, blk in zip(sub.blocks[1:], active):
                blk.conv.copy_active_weights(slot.conv)
        return sub.train(self.training)

    def re_organize_middle_weights(self, expand_ratio_stage: int = 0) -> None:
        """Elastic width: sort every block's middle channels by L1 importance (see DynamicMBConv)."""
        for blk in self.blocks[1:]:
            blk.conv.re_organize_middle_weights(expand_ratio_stage)

    def meta(self) -> dict[str, Any]:
        return {"space": self.space.name, "ofa_id": self.space.ofa_id, "n_classes": self.n_classes}


# ---------------------------------------------------------------------------------------------------------
def _rename_ofa_key(key: str, model_keys: set[str]) -> str:
    """Map the naming variants of OFA checkpoints onto ours (as OFA's own load_state_dict does)."""
    k = key.replace(".mobile_inverted_conv.", ".conv.")
    if k.startswith("module."):
        k = k[len("module."):]
    if k in model_keys:
        return k
    for a, b in ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"), (".linear.linear.", ".linear."),
                 (".linear.", ".linear.linear."), ("bn.", "bn.bn."), ("conv.weight", "conv.conv.weight")):
        if a in k and k.replace(a, b) in model_keys:
            return k.replace(a, b)
    return k


def load_supernet_weights(model: nn.Module, src: str | os.PathLike | Mapping[str, torch.Tensor]) -> None:
    """Load a supernet checkpoint strictly: a path (``.pth``/``.pt``, OFA's ``{"state_dict": ...}`` or ours)
    or a state dict.  A path is read safely (:func:`ofa_model.safeload.load_torch_file`: ``weights_only=True``,
    CRC-32 checked); non-finite tensors are refused either way.  Raises :class:`WeightsError` (one line) when it
    does not fit."""
    if isinstance(src, (str, os.PathLike)):
        obj = load_torch_file(src, "weights file")
    else:
        obj = src
        check_finite(obj, "checkpoint")
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        meta = obj.get("meta") or {}
        want = getattr(model, "space", None)
        if meta.get("space") and want is not None and not same_macro(get_space(meta["space"]), want):
            raise WeightsError(f"checkpoint is for space {meta['space']}, the model is {want.name}; "
                               f"build the model with --space {meta['space']}")
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsError("checkpoint holds no state dict")
    mine = model.state_dict()
    keys = set(mine)
    sd = {_rename_ofa_key(k, keys): v for k, v in obj.items()}
    missing = sorted(keys - set(sd))
    unexpected = sorted(set(sd) - keys)
    shapes = [k for k in keys & set(sd) if tuple(sd[k].shape) != tuple(mine[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            k = sorted(shapes)[0]
            parts.append(f"{len(shapes)} shape mismatch(es), e.g. {k} {tuple(sd[k].shape)} vs {tuple(mine[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise WeightsError("checkpoint does not fit the supernet (another space or n_classes?): " + "; ".join(parts))
    model.load_state_dict({k: v.to(mine[k].dtype) for k, v in sd.items()}, strict=True)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Iterable, n_images: int = 2000) -> int:
    """Re-estimate every BatchNorm's running mean/var of ``model`` (a static subnet, or a supernet with an
    active subnet) from up to ``n_images`` images of ``loader`` (yields tensors or (tensor, label) pairs,
    already at the subnet's resolution).  Statistics are the equal-weight average over batches (momentum=None).
    Returns the number of images used; the model is left in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    seen = 0
    try:
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            if seen >= n_images:
                break
            x = x[: n_images - seen]
            model(x)
            seen += x.size(0)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    if seen == 0:
        raise OfaProfileError("BN recalibration got no images; give a non-empty training set")
    return seen
