"""The elastic supernet: mechanics, extraction, BN recalibration, weights loading."""
from __future__ import annotations

import hashlib
import random

import pytest
import torch
import torch.nn as nn

from ofa_model.elastic import sub_filter_start_end
from ofa_model.supernet import OFAMobileNetV3, WeightsError, load_supernet_weights, recalibrate_bn
from ofa_profile.blocks import subnet_module
from ofa_profile.ops import subnet_ops
from ofa_profile.space import SpaceError, SubnetSpec, get_space


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10).eval()


def _randomize_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)


def test_elastic_kernel_is_centre_crop_at_identity(net):
    dc = net.blocks[3].conv.depth_conv.conv
    w7 = dc.conv.weight
    for k in (5, 3):
        s, e = sub_filter_start_end(7, k)
        assert torch.allclose(dc.get_active_filter(w7.size(0), k), w7[:, :, s:e, s:e])
    assert dc.get_parameter("7to5_matrix").shape == (25, 25)
    assert dc.get_parameter("5to3_matrix").shape == (9, 9)


def test_kernel_transform_matrix_is_used():
    m = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10)
    dc = m.blocks[1].conv.depth_conv.conv
    with torch.no_grad():
        dc.get_parameter("5to3_matrix").mul_(2.0)
    s, e = sub_filter_start_end(7, 3)
    assert torch.allclose(dc.get_active_filter(dc.max_in_channels, 3), 2 * dc.conv.weight[:, :, s:e, s:e])
    # 5x5 path does not touch the 5->3 matrix
    s, e = sub_filter_start_end(7, 5)
    assert torch.allclose(dc.get_active_filter(dc.max_in_channels, 5), dc.conv.weight[:, :, s:e, s:e])


def test_extracted_subnet_matches_supernet_and_op_counts(net):
    _randomize_bn(net)
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(7)
    for i in range(4):
        spec = net.sample_active_subnet(rng, resolution=rng.choice([128, 144]))
        sub = net.get_active_subnet().eval()
        assert sub.spec == spec
        n_blocks = 1 + sum(spec.d)
        assert len(sub.blocks) == n_blocks
        x = torch.randn(2, 3, spec.r, spec.r)
        with torch.no_grad():
            assert (sub(x) - net(x)).abs().max().item() < 1e-5
        # parameter count = the op enumerator's (classifier at 10 classes instead of the space's 1000)
        ops = subnet_ops(spec)
        expect = sum(op.params() for op in ops[:-1]) + sp.feature_mix_ch * 10 + 10
        assert sum(p.numel() for p in sub.parameters()) == expect


# A CHANGE DETECTOR, not a correctness check: sha256 (first 16 hex digits) of the ordered "key:shape" lines of the
# supernet's state dict (n_classes=1000) and of its subnet space.sample(4, 160), recorded from this code itself before
# the static layers moved to ofa_profile.blocks. It fails on any rename, reshape or reorder, deliberate or not: bundled
# weights, training checkpoints (the teacher subnet by key, the optimizer by parameter order) rely on them. That the
# names and shapes are right is checked against OFA's own package (test_ofa_compat: its checkpoints load, same logits).
STATE_DICT_DIGESTS = {"ofa-mbv3-w1.0": ("4fb2ec2247c7d080", "2c5367d8a5cad1b5"),
                      "ofa-mbv3-w1.2": ("069ee33ee54aeb0c", "bc34eed97294edf4"),
                      "compofa-mbv3-w1.0": ("4fb2ec2247c7d080", "aaebf5ed8ce4b827")}


def _digest(module: nn.Module) -> str:
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(STATE_DICT_DIGESTS))
def test_state_dict_names_shapes_and_order_are_fixed(name):
    """Change detector (see STATE_DICT_DIGESTS): a deliberate change of the state dict updates the digests here and
    says what it does to the shipped weights and old checkpoints."""
    net = OFAMobileNetV3(name, n_classes=1000)
    net.set_active_subnet(get_space(name).sample(4, 160))
    sub = net.get_active_subnet()
    assert (_digest(net), _digest(sub)) == STATE_DICT_DIGESTS[name]
    assert [k for k, _ in net.named_parameters()] == [k for k, v in net.state_dict().items() if v.is_floating_point()
                                                      and not k.endswith(("running_mean", "running_var"))]
    for key in ("first_conv.bn.running_var", "blocks.0.conv.depth_conv.conv.weight",
                "blocks.1.conv.depth_conv.conv.conv.weight", "final_expand_layer.conv.weight",
                "feature_mix_layer.conv.weight", "classifier.linear.weight"):
        assert key in net.state_dict()
    for key in ("blocks.0.conv.depth_conv.conv.weight", "blocks.1.conv.depth_conv.conv.weight",
                "classifier.linear.bias"):
        assert key in sub.state_dict()


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-like weights with logits of order 1 even for the deepest subnet (see test_export.randomize)."""
    from helpers import randomize
    return randomize(model, seed, bn_scale=(0.4, 1.1), linear_gain=10.0)


@pytest.mark.parametrize("name", sorted(STATE_DICT_DIGESTS))
def test_active_subnet_computes_the_supernet(name):
    """The extracted subnet is the supernet with that subnet active: the same logits in eval mode; in train mode
    the same BN batch statistics, running-statistics update (eps/momentum kept) and dropout."""
    net = _randomize(OFAMobileNetV3(name, n_classes=7, dropout_rate=0.3, bn_momentum=0.05, bn_eps=1e-3))
    sp = get_space(name)
    for spec in (sp.largest(128), sp.smallest(128), sp.sample(random.Random(3), 160)):
        net.set_active_subnet(spec)
        sub = net.eval().get_active_subnet()
        assert not sub.training and sub.spec == spec
        x = torch.randn(4, 3, spec.r, spec.r, generator=torch.Generator().manual_seed(spec.r))
        with torch.no_grad():
            ref = net(x)
            assert float(ref.std()) > 0.05                     # not a constant output
            assert (sub(x) - ref).abs().max().item() < 1e-5, spec.short()
        assert {(m.eps, m.momentum) for m in sub.modules() if isinstance(m, nn.BatchNorm2d)} == {(1e-3, 0.05)}
        sub = net.train().get_active_subnet()
        assert sub.training
        outs = []
        for m in (sub, net):
            torch.manual_seed(11)                              # the same dropout mask
            with torch.no_grad():
                outs.append(m(x))
        assert (outs[0] - outs[1]).abs().max().item() < 1e-4, spec.short()
        for a, b in ((sub.first_conv.bn, net.first_conv.bn), (sub.final_expand_layer.bn, net.final_expand_layer.bn),
                     (sub.blocks[1].conv.depth_conv.bn, net.blocks[1].conv.depth_conv.bn.bn)):
            c = a.num_features
            assert torch.allclose(a.running_mean, b.running_mean[:c], atol=1e-6)
            assert torch.allclose(a.running_var, b.running_var[:c], atol=1e-6)
        torch.manual_seed(12)
        with torch.no_grad():
            assert (sub(x) - outs[0]).abs().max().item() > 1e-3      # dropout is active in train mode
        net.eval()


def test_subnet_is_plain_torch_from_the_layer_library(net):
    spec = get_space("ofa-mbv3-w1.0").smallest(128)
    net.set_active_subnet(spec)
    sub = net.get_active_subnet()
    allowed = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Hardswish, nn.Hardsigmoid, nn.Linear, nn.Dropout,
               nn.Identity, nn.Sequential, nn.ModuleList)
    for m in sub.modules():
        if not m.__module__.startswith(("ofa_model", "ofa_profile.blocks")):
            assert isinstance(m, allowed), type(m)
    # no dynamic layer survives extraction
    assert not any(type(m).__name__.startswith("Dynamic") for m in sub.modules())
    # the layers are those the profiler measures (blocks.subnet_module), in order, under OFA's names
    ours = [sub.first_conv, *(b.conv for b in sub.blocks), sub.final_expand_layer, sub.pool, sub.feature_mix_layer,
            sub.classifier]
    assert [type(m) for m in ours] == [type(m) for m in subnet_module(spec)]
    assert [tuple(v.shape) for v in sub.state_dict().values()] == \
        [tuple(v.shape) for v in subnet_module(spec).state_dict().values()][:-2] + [(10, 1280), (10,)]


def test_depth_and_expand_change_the_net(net):
    sp = get_space("ofa-mbv3-w1.0")
    x = torch.randn(1, 3, 128, 128)
    outs = []
    for spec in (sp.largest(128), sp.smallest(128)):
        net.set_active_subnet(spec)
        with torch.no_grad():
            outs.append(net(x))
    assert (outs[0] - outs[1]).abs().max() > 1e-4
    assert net.runtime_depth == [2] * 5


def test_bad_spec_and_other_space_rejected(net):
    sp = get_space("ofa-mbv3-w1.0")
    bad = SubnetSpec(sp.name, (9,) * 20, (6,) * 20, (4,) * 5, 224)
    with pytest.raises(SpaceError):
        net.set_active_subnet(bad)
    with pytest.raises(SpaceError):
        net.set_active_subnet(get_space("ofa-mbv3-w1.2").largest(224))
    # compound specs share the macro-architecture: accepted
    net.set_active_subnet(get_space("compofa-mbv3-w1.0").smallest(160))


def test_weights_of_other_space_or_classes_refused(tmp_path):
    a = OFAMobileNetV3("ofa-mbv3-w1.2", n_classes=10)
    b = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10)
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_supernet_weights(b, a.state_dict())
    torch.save({"state_dict": a.state_dict(), "meta": a.meta()}, tmp_path / "w12.pt")
    with pytest.raises(WeightsError, match="space ofa-mbv3-w1.2"):
        load_supernet_weights(b, tmp_path / "w12.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        load_supernet_weights(b, tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="does not exist"):
        load_supernet_weights(b, tmp_path / "missing.pt")


def test_recalibrate_bn_supernet_equals_subnet():
    torch.manual_seed(1)
    m = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10)
    spec = get_space("ofa-mbv3-w1.0").sample(3, resolution=128)
    m.set_active_subnet(spec)
    data = [torch.randn(4, 3, 128, 128) for _ in range(3)]
    sub = m.get_active_subnet()
    before = sub.blocks[2].conv.depth_conv.bn.running_var.clone()
    assert recalibrate_bn(sub, data, n_images=10) == 10
    assert not torch.allclose(before, sub.blocks[2].conv.depth_conv.bn.running_var)
    assert not sub.training
    recalibrate_bn(m, data, n_images=10)
    sub2 = m.get_active_subnet().eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert (sub(x) - sub2(x)).abs().max().item() < 1e-4


def test_other_spaces_build():
    for name in ("ofa-mbv3-w1.2", "compofa-mbv3-w1.0"):
        m = OFAMobileNetV3(name, n_classes=10).eval()
        spec = m.sample_active_subnet(0, resolution=128)
        with torch.no_grad():
            assert m(torch.randn(1, 3, 128, 128)).shape == (1, 10)
        assert get_space(spec.space).name == name
