"""Modules of exact shape for every op, seeded weights, BN folding, OFA parameter names."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from ofa_profile.blocks import (AvgPool, Classifier, ConvBNAct, FeatureMix, MBConv, fold_bn, op_input,  # noqa: E402
                                op_module, subnet_input, subnet_layers, subnet_module)
from ofa_profile.errors import OfaProfileError  # noqa: E402
from ofa_profile.ops import ops_at_resolution, parse_key, subnet_ops  # noqa: E402
from ofa_profile.space import Space, get_space  # noqa: E402

SE_HS_S2 = "expanded_conv-input:28x28x40-output:14x14x80-expand:240-kernel:5-stride:2-idskip:0-se:1-hs:1"
IDSKIP_SE = "expanded_conv-input:14x14x112-output:14x14x112-expand:672-kernel:7-stride:1-idskip:1-se:1-hs:1"
FIRST = "expanded_conv-input:80x80x16-output:80x80x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0"


def _out_shape(op, batch=1):
    return (batch, op.out_ch) if op.kind == "Logits" else (batch, op.out_ch, op.out_hw, op.out_hw)


def _rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-6))


@pytest.mark.parametrize("space", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"])
def test_every_op_at_r160_has_the_ops_shapes_and_params(space):
    ops = ops_at_resolution(space, 160)
    assert len(ops) == 96
    with torch.inference_mode():
        for op in ops:
            m, x = op_module(op, seed=0), op_input(op, seed=0)
            assert tuple(x.shape) == (1, op.in_ch, 1 if op.kind == "Logits" else op.in_hw,
                                      1 if op.kind == "Logits" else op.in_hw), op.key
            assert tuple(m(x).shape) == _out_shape(op), op.key
            assert sum(p.numel() for p in m.parameters()) == op.params(), op.key
            assert not m.training


def test_module_types_and_structure():
    ops = subnet_ops(get_space("ofa-mbv3-w1.0").sample(0, 128))
    kinds = [type(op_module(op)) for op in ops]
    assert kinds[0] is ConvBNAct and kinds[-4:] == [ConvBNAct, AvgPool, FeatureMix, Classifier]
    assert all(k is MBConv for k in kinds[1:-4])
    first = op_module(parse_key(FIRST))
    assert first.inverted_bottleneck is None and first.idskip
    blk = op_module(parse_key(SE_HS_S2))
    assert isinstance(blk.depth_conv.act, nn.Hardswish) and not blk.idskip
    dw = blk.depth_conv.conv
    assert dw.groups == 240 and dw.stride == (2, 2) and dw.padding == (2, 2) and dw.kernel_size == (5, 5)
    se = blk.depth_conv.se.fc
    assert se.reduce.out_channels == Space.se_channels(240) == 64 and se.reduce.bias is not None
    assert isinstance(se.h_sigmoid, nn.Hardsigmoid)
    stem = op_module(ops[0])
    assert stem.conv.stride == (2, 2) and stem.conv.kernel_size == (3, 3) and isinstance(stem.act, nn.Hardswish)
    fm = op_module(ops[-2])
    assert fm.conv.bias is None and isinstance(fm.bn, nn.Identity) and isinstance(fm.act, nn.Hardswish)


def test_activations_are_ofas():
    x = torch.linspace(-8, 8, 1001)
    relu6 = torch.nn.functional.relu6
    assert torch.allclose(nn.Hardswish()(x), x * relu6(x + 3) / 6, atol=1e-6)
    assert torch.allclose(nn.Hardsigmoid()(x), relu6(x + 3) / 6, atol=1e-6)


def test_batch_argument():
    op = parse_key(SE_HS_S2)
    x = op_input(op, seed=0, batch=3)
    with torch.inference_mode():
        assert tuple(op_module(op)(x).shape) == _out_shape(op, 3)
    spec = get_space("ofa-mbv3-w1.0").smallest(128)
    xs = subnet_input(spec, seed=0, batch=2)
    assert tuple(xs.shape) == (2, 3, 128, 128)
    with torch.inference_mode():
        assert tuple(subnet_module(spec)(xs).shape) == (2, 1000)


def test_seeded_determinism_and_nontrivial_bn():
    op = parse_key(IDSKIP_SE)
    a, b, c = op_module(op, seed=7).state_dict(), op_module(op, seed=7).state_dict(), op_module(op, seed=8).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["point_linear.conv.weight"], c["point_linear.conv.weight"])
    assert torch.equal(op_input(op, seed=7), op_input(op, seed=7))
    assert not torch.equal(op_input(op, seed=7), op_input(op, seed=8))
    # BN statistics and affine parameters are not the identity defaults (so folding is really tested)
    bn = op_module(op, seed=7).depth_conv.bn
    assert (bn.running_var - 1).abs().min() > 0 and bn.running_mean.abs().min() > 0
    assert (bn.weight - 1).abs().max() > 0.1 and bn.bias.abs().max() > 0.01
    spec = get_space("ofa-mbv3-w1.0").sample(3, 128)
    s1, s2 = subnet_module(spec, seed=1).state_dict(), subnet_module(spec, seed=1).state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    s3 = subnet_module(spec, seed=2).state_dict()
    assert not torch.equal(s1["0.conv.weight"], s3["0.conv.weight"])
    # positions are seeded apart: two identical-shape blocks in one subnet differ
    seq = subnet_module(get_space("ofa-mbv3-w1.0").largest(128), seed=0)
    assert not torch.equal(seq[3].point_linear.conv.weight, seq[4].point_linear.conv.weight)


def test_fold_bn_equals_unfolded():
    sp = get_space("ofa-mbv3-w1.0")
    ops = [parse_key(k) for k in (SE_HS_S2, IDSKIP_SE, FIRST)] + subnet_ops(sp.smallest(128))[:1]
    with torch.inference_mode():
        for op in ops:
            m, x = op_module(op, seed=3), op_input(op, seed=3)
            f = fold_bn(m)
            assert not any(isinstance(q, nn.BatchNorm2d) for q in f.modules())
            assert any(isinstance(q, nn.BatchNorm2d) for q in m.modules())  # original untouched
            assert _rel_err(f(x), m(x)) < 1e-5, op.key
        spec = sp.sample(11, 128)
        m, x = subnet_module(spec, seed=5), subnet_input(spec, seed=5)
        assert _rel_err(fold_bn(m)(x), m(x)) < 1e-5


def _randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("_matrix"):
                p.copy_(torch.eye(p.shape[0]) + 0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if name.endswith("bn.weight") else 0.0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return module


def test_names_and_numbers_match_the_supernets_layers():
    """The supernet is built from these modules (one layer library): its elastic blocks write their active
    weights straight into an MBConv and compute the same; OFA's parameter names hold (``blocks.<i>.conv.*`` of
    OFA's ``ResidualBlock`` level, ``conv``/``bn``, ``linear``), so trained weights load strictly."""
    elastic = pytest.importorskip("ofa_model.elastic")
    supernet = pytest.importorskip("ofa_model.supernet")
    sp = get_space("ofa-mbv3-w1.0")
    for key in (SE_HS_S2, IDSKIP_SE):
        op = parse_key(key)
        dyn = elastic.DynamicMBConv(sp, op.in_ch, op.out_ch, op.stride, op.act, bool(op.se))
        dyn.active_kernel_size, dyn.active_expand_ratio = op.kernel, op.mid // op.in_ch
        assert dyn.active_middle_channel() == op.mid
        ofa = _randomize(elastic.ResidualBlock(dyn, bool(op.idskip)), seed=2).eval()
        ours = op_module(op, seed=1)
        assert dyn.copy_active_weights(ours) is ours
        # OFA's static names are its dynamic ones without the inner .conv / .bn level (and the kernel transforms)
        names = {k.replace(".conv.conv.", ".conv.").replace(".bn.bn.", ".bn.") for k in ofa.state_dict()
                 if not k.endswith("_matrix")}
        assert names == set(supernet.MBConvSlot(ours).state_dict())
        x = op_input(op, seed=1)
        with torch.inference_mode():
            assert _rel_err(ours(x), ofa(x)) < 1e-5, key
        with pytest.raises(OfaProfileError, match="does not fit the active elastic block"):
            dyn.copy_active_weights(op_module(parse_key(FIRST)))
    net = supernet.OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10)
    kinds = [type(m) for m in (net.first_conv, net.blocks[0].conv, net.final_expand_layer, net.feature_mix_layer,
                               net.classifier)]
    assert kinds == [ConvBNAct, MBConv, ConvBNAct, FeatureMix, Classifier]
    assert list(net.first_conv.state_dict()) == ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                                 "bn.running_var", "bn.num_batches_tracked"]
    assert list(net.feature_mix_layer.state_dict()) == ["conv.weight"]
    assert list(net.classifier.state_dict()) == ["linear.weight", "linear.bias"]
    first = op_module(parse_key(FIRST), seed=1)
    net.blocks[0].load_state_dict({"conv." + k: v for k, v in first.state_dict().items()}, strict=True)


def test_classifier_dropout_and_class_count():
    spec = get_space("ofa-mbv3-w1.0").sample(2, 128)
    layers = subnet_layers(spec, n_classes=10, dropout=0.5)
    assert [type(m) for m in layers] == [type(m) for m in subnet_module(spec)]
    cls = layers[-1]
    assert cls.linear.out_features == 10 and cls.dropout.p == 0.5 and cls.training
    assert subnet_layers(spec)[-1].linear.out_features == 1000 and subnet_layers(spec)[-1].dropout is None
    x = torch.randn(4, cls.linear.in_features, 1, 1)
    with torch.no_grad():
        torch.manual_seed(0)
        a = cls(x)
        torch.manual_seed(1)
        assert not torch.allclose(a, cls(x))              # train mode: dropout
        cls.eval()
        assert torch.equal(cls(x), cls.linear(x.flatten(1)))


def test_bad_inputs_are_refused():
    with pytest.raises(OfaProfileError):
        MBConv(16, 24, 48, 3, 2, "relu", False, idskip=True)
    with pytest.raises(OfaProfileError):
        op_module(parse_key(FIRST).__class__("Foo", 1, 1, 1, 1, family="mbv3"))
