"""Elastic (dynamic) layers of the OFA MobileNetV3 supernet.

Module and parameter names follow OFA (``ofa.imagenet_classification.elastic_nn.modules``) exactly, so that
OFA's checkpoints load strictly:

* :class:`DynamicConv2d` (``.conv``): 1x1 conv whose active output channels are a prefix of the full weight.
* :class:`DynamicSeparableConv2d` (``.conv`` + ``{L}to{S}_matrix``): depthwise conv, elastic kernel.  A
  smaller kernel is the centre crop of the next larger one passed through a learned ``S^2 x S^2`` transform
  (7->5: 25x25, 5->3: 9x9), initialised to identity and shared across channels.
* :class:`DynamicBatchNorm2d` (``.bn``): BN over the first ``C`` channels of the full BN.
* :class:`DynamicSE` (``.fc.reduce`` / ``.fc.expand``): squeeze-excite over a channel prefix.
* :class:`DynamicMBConv`: ``inverted_bottleneck`` / ``depth_conv`` (+ ``se``) / ``point_linear``, with
  :meth:`DynamicMBConv.re_organize_middle_weights` (elastic width: channels sorted by L1 importance) and
  :meth:`DynamicMBConv.copy_active_weights` (the active kernel and width into a static MBConv).
* :class:`ResidualBlock` (``.conv``): the identity shortcut around a :class:`DynamicMBConv`, no parameters.

There are no static layers here: the supernet's fixed layers and every extracted subnet are built by the
layer library, :mod:`ofa_profile.blocks` (the modules the profiler measures and the ``.tflite`` writer takes).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ofa_profile.blocks import MBConv, build_act
from ofa_profile.errors import OfaProfileError

__all__ = [
    "sub_filter_start_end", "DynamicConv2d", "DynamicSeparableConv2d", "DynamicBatchNorm2d", "DynamicSE",
    "DynamicMBConv", "ResidualBlock",
]


def sub_filter_start_end(kernel_size: int, sub_kernel_size: int) -> tuple[int, int]:
    """Index range of the centred ``sub_kernel_size`` crop of a ``kernel_size`` filter."""
    center, dev = kernel_size // 2, sub_kernel_size // 2
    return center - dev, center + dev + 1


def _copy_bn(target: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    n = target.num_features
    with torch.no_grad():
        target.weight.copy_(src.weight[:n])
        target.bias.copy_(src.bias[:n])
        target.running_mean.copy_(src.running_mean[:n])
        target.running_var.copy_(src.running_var[:n])
        target.num_batches_tracked.copy_(src.num_batches_tracked)
    target.momentum, target.eps = src.momentum, src.eps


# ---------------------------------------------------------------------------------------------------------
# elastic layers
# ---------------------------------------------------------------------------------------------------------
class DynamicConv2d(nn.Module):
    """1x1 (or k x k, groups=1) conv over a prefix of input and output channels."""

    def __init__(self, max_in_channels: int, max_out_channels: int, kernel_size: int = 1, stride: int = 1):
        super().__init__()
        self.max_in_channels, self.max_out_channels = max_in_channels, max_out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv2d(max_in_channels, max_out_channels, kernel_size, stride=stride, bias=False)
        self.active_out_channel = max_out_channels

    def get_active_filter(self, out_channel: int, in_channel: int) -> torch.Tensor:
        return self.conv.weight[:out_channel, :in_channel, :, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.get_active_filter(self.active_out_channel, x.size(1)).contiguous()
        return F.conv2d(x, w, None, self.stride, self.kernel_size // 2)


class DynamicSeparableConv2d(nn.Module):
    """Depthwise conv with an elastic kernel (centre crop through learned transform matrices)."""

    def __init__(self, max_in_channels: int, kernel_size_list: Sequence[int], stride: int = 1):
        super().__init__()
        self.max_in_channels = max_in_channels
        self.kernel_size_list = sorted(set(int(k) for k in kernel_size_list))
        self.stride = stride
        kmax = max(self.kernel_size_list)
        self.conv = nn.Conv2d(max_in_channels, max_in_channels, kmax, stride, groups=max_in_channels, bias=False)
        for small, large in zip(self.kernel_size_list[:-1], self.kernel_size_list[1:]):
            self.register_parameter(f"{large}to{small}_matrix", nn.Parameter(torch.eye(small * small)))
        self.active_kernel_size = kmax

    def get_active_filter(self, in_channel: int, kernel_size: int) -> torch.Tensor:
        kmax = max(self.kernel_size_list)
        filt = self.conv.weight[:in_channel, :in_channel, :, :]
        if kernel_size == kmax:
            return filt
        if kernel_size not in self.kernel_size_list:
            raise ValueError(f"kernel {kernel_size} not in {self.kernel_size_list}")
        ks = self.kernel_size_list
        for i in range(len(ks) - 1, 0, -1):
            src, dst = ks[i], ks[i - 1]
            if src <= kernel_size:
                break
            s, e = sub_filter_start_end(src, dst)
            crop = filt[:, :, s:e, s:e].contiguous().view(-1, dst * dst)
            crop = F.linear(crop, getattr(self, f"{src}to{dst}_matrix"))
            filt = crop.view(in_channel, 1, dst, dst)
        return filt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        k = self.active_kernel_size
        w = self.get_active_filter(c, k).contiguous()
        return F.conv2d(x, w, None, self.stride, k // 2, 1, c)


class DynamicBatchNorm2d(nn.Module):
    """BatchNorm over the first ``C`` channels of a full-width BN (running stats updated in place)."""

    def __init__(self, max_feature_dim: int):
        super().__init__()
        self.max_feature_dim = max_feature_dim
        self.bn = nn.BatchNorm2d(max_feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, c = self.bn, x.size(1)
        if c == bn.num_features:
            return bn(x)
        factor = 0.0
        if bn.training and bn.track_running_stats:
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                            bn.training or not bn.track_running_stats, factor, bn.eps)


class DynamicSE(nn.Module):
    """Squeeze-excite over a channel prefix; hidden width = space.se_channels(C)."""

    def __init__(self, max_channel: int, se_channels):
        super().__init__()
        self.channel = max_channel
        self._se_channels = se_channels
        mid = se_channels(max_channel)
        self.fc = nn.Sequential(OrderedDict([
            ("reduce", nn.Conv2d(max_channel, mid, 1, 1, 0, bias=True)),
            ("relu", nn.ReLU(inplace=True)),
            ("expand", nn.Conv2d(mid, max_channel, 1, 1, 0, bias=True)),
            ("h_sigmoid", nn.Hardsigmoid(inplace=True)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.size(1)
        mid = self._se_channels(c)
        y = x.mean(3, keepdim=True).mean(2, keepdim=True)
        y = F.conv2d(y, self.fc.reduce.weight[:mid, :c].contiguous(), self.fc.reduce.bias[:mid])
        y = F.relu(y)
        y = F.conv2d(y, self.fc.expand.weight[:c, :mid].contiguous(), self.fc.expand.bias[:c])
        return x * F.hardsigmoid(y)


class DynamicMBConv(nn.Module):
    """Elastic MBConv block (kernel and expand ratio); the space supplies the channel rules."""

    def __init__(self, space, in_channels: int, out_channels: int, stride: int, act: str, use_se: bool):
        super().__init__()
        self.space = space
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size_list = sorted(space.kernels)
        self.expand_ratio_list = sorted(space.expands)
        self.stride, self.act_func, self.use_se = stride, act, use_se
        max_mid = space.mid_channels(in_channels, max(self.expand_ratio_list))
        self.inverted_bottleneck = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(in_channels, max_mid)),
            ("bn", DynamicBatchNorm2d(max_mid)),
            ("act", build_act(act)),
        ]))
        dc = [("conv", DynamicSeparableConv2d(max_mid, self.kernel_size_list, stride)),
              ("bn", DynamicBatchNorm2d(max_mid)),
              ("act", build_act(act))]
        if use_se:
            dc.append(("se", DynamicSE(max_mid, space.se_channels)))
        self.depth_conv = nn.Sequential(OrderedDict(dc))
        self.point_linear = nn.Sequential(OrderedDict([
            ("conv", DynamicConv2d(max_mid, out_channels)),
            ("bn", DynamicBatchNorm2d(out_channels)),
        ]))
        self.active_kernel_size = max(self.kernel_size_list)
        self.active_expand_ratio = max(self.expand_ratio_list)

    def active_middle_channel(self, in_channel: int | None = None) -> int:
        return self.space.mid_channels(in_channel or self.in_channels, self.active_expand_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inverted_bottleneck.conv.active_out_channel = self.active_middle_channel(x.size(1))
        self.depth_conv.conv.active_kernel_size = self.active_kernel_size
        x = self.inverted_bottleneck(x)
        x = self.depth_conv(x)
        return self.point_linear(x)

    @torch.no_grad()
    def copy_active_weights(self, dst: MBConv) -> MBConv:
        """Write the active kernel size and width into ``dst``, a static :class:`ofa_profile.blocks.MBConv` of
        that shape (as :func:`ofa_profile.blocks.build_module` builds it for the subnet's op): the depthwise kernel
        through :meth:`DynamicSeparableConv2d.get_active_filter`, every channel axis a prefix, BN statistics,
        eps and momentum copied.  Returns ``dst``."""
        mid = self.active_middle_channel()
        k = self.active_kernel_size
        want = (self.in_channels, self.out_channels, mid, k, self.stride, self.use_se, True)
        got = (dst.in_ch, dst.out_ch, dst.mid, dst.kernel, dst.stride, hasattr(dst.depth_conv, "se"),
               dst.inverted_bottleneck is not None)
        if got != want:
            raise OfaProfileError(f"static MBConv (in, out, mid, kernel, stride, se, expand) = {got} does not fit the "
                                  f"active elastic block {want} (a bug: report it)")
        ib, dc, pl = dst.inverted_bottleneck, dst.depth_conv, dst.point_linear
        ib.conv.weight.copy_(self.inverted_bottleneck.conv.get_active_filter(mid, self.in_channels))
        _copy_bn(ib.bn, self.inverted_bottleneck.bn.bn)
        dc.conv.weight.copy_(self.depth_conv.conv.get_active_filter(mid, k))
        _copy_bn(dc.bn, self.depth_conv.bn.bn)
        if self.use_se:
            se_mid = self.space.se_channels(mid)
            src, fc = self.depth_conv.se.fc, dc.se.fc
            fc.reduce.weight.copy_(src.reduce.weight[:se_mid, :mid])
            fc.reduce.bias.copy_(src.reduce.bias[:se_mid])
            fc.expand.weight.copy_(src.expand.weight[:mid, :se_mid])
            fc.expand.bias.copy_(src.expand.bias[:mid])
        pl.conv.weight.copy_(self.point_linear.conv.get_active_filter(self.out_channels, mid))
        _copy_bn(pl.bn, self.point_linear.bn.bn)
        return dst

    @torch.no_grad()
    def re_organize_middle_weights(self, expand_ratio_stage: int = 0) -> None:
        """Sort middle channels by L1 importance (point-linear input weights), as OFA does before an expand
        phase.  ``expand_ratio_stage`` k > 0 keeps the channels of the k+1 largest ratios in their own groups
        (OFA's trick that only re-sorts inside the newly exposed widths)."""
        importance = self.point_linear.conv.conv.weight.abs().sum(dim=(0, 2, 3))
        if expand_ratio_stage > 0:
            widths = [self.space.mid_channels(self.in_channels, e) for e in sorted(self.expand_ratio_list, reverse=True)]
            right = len(importance)
            base = -len(widths) * 1e5
            for i in range(expand_ratio_stage + 1):
                left = widths[i]
                importance[left:right] += base
                base += 1e5
                right = left
        idx = torch.sort(importance, dim=0, descending=True)[1]

        def sel(t: torch.Tensor, dim: int) -> None:
            t.data = torch.index_select(t.data, dim, idx)

        sel(self.point_linear.conv.conv.weight, 1)
        for bn in (self.depth_conv.bn.bn, self.inverted_bottleneck.bn.bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                sel(t, 0)
        sel(self.depth_conv.conv.conv.weight, 0)
        sel(self.inverted_bottleneck.conv.conv.weight, 0)
        if self.use_se:
            fc = self.depth_conv.se.fc
            sel(fc.expand.weight, 0)
            sel(fc.expand.bias, 0)
            sel(fc.reduce.weight, 1)
            se_idx = torch.sort(fc.expand.weight.abs().sum(dim=(0, 2, 3)), dim=0, descending=True)[1]
            fc.expand.weight.data = torch.index_select(fc.expand.weight.data, 1, se_idx)
            fc.reduce.weight.data = torch.index_select(fc.reduce.weight.data, 0, se_idx)
            fc.reduce.bias.data = torch.index_select(fc.reduce.bias.data, 0, se_idx)


class ResidualBlock(nn.Module):
    """``conv`` (a :class:`DynamicMBConv`) plus an optional identity shortcut (no parameters, as in OFA)."""

    def __init__(self, conv: nn.Module, shortcut: bool):
        super().__init__()
        self.conv = conv
        self.shortcut = bool(shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x if self.shortcut else self.conv(x)
