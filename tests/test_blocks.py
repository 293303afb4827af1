"""Modules of exact shape for every op, seeded weights, BN folding, OFA parameter names."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from ofa_profile.blocks import (AvgPool, Classifier, ConvBNAct, FeatureMix, MBConv, fold_bn, op_input,  # noqa: E402
                                op_module, subnet_input, subnet_module)
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


def test_names_and_numbers_match_ofa_static_layers():
    """Trained weights of an extracted OFA subnet load strictly into these modules and compute the same."""
    elastic = pytest.importorskip("ofa_model.elastic")
    for key in (SE_HS_S2, IDSKIP_SE, FIRST):
        op = parse_key(key)
        ofa = elastic.ResidualBlock(
            elastic.MBConvLayer(op.in_ch, op.out_ch, op.kernel, op.stride, op.mid, op.act, bool(op.se),
                                se_channels=Space.se_channels, expand=op.has_expand_conv), bool(op.idskip))
        ours = op_module(op, seed=1)
        sd = {k[len("conv."):]: v for k, v in ofa.state_dict().items()}
        assert sd.keys() == ours.state_dict().keys()
        ofa.load_state_dict({"conv." + k: v for k, v in ours.state_dict().items()}, strict=True)
        ofa.eval()
        x = op_input(op, seed=1)
        with torch.inference_mode():
            assert _rel_err(ours(x), ofa(x)) < 1e-6
    stem = elastic.ConvLayer(3, 16, 3, 2, act="h_swish")
    assert stem.state_dict().keys() == ConvBNAct(3, 16, 3, 2).state_dict().keys()
    assert elastic.ConvLayer(960, 1280, 1, use_bn=False, act="h_swish").state_dict().keys() == \
        FeatureMix(960, 1280).state_dict().keys()
    assert elastic.LinearLayer(1280, 1000).state_dict().keys() == Classifier(1280, 1000).state_dict().keys()


def test_bad_inputs_are_refused():
    with pytest.raises(OfaProfileError):
        MBConv(16, 24, 48, 3, 2, "relu", False, idskip=True)
    with pytest.raises(OfaProfileError):
        op_module(parse_key(FIRST).__class__("Foo", 1, 1, 1, 1))
