import random

import pytest

from ofa_profile.ops import KeyError_, Op, enumerate_ops, ops_at_resolution, parse_key, subnet_ops
from ofa_profile.space import SubnetSpec, get_space


def _key_counts_from_the_space_rules() -> tuple[int, int]:
    """(keys per resolution, distinct keys over r = 128..224 step 4), counted from the space's rules as the design
    notes state them, not from ofa_profile.ops: a key is an op at one input size. A stride-2 conv (padding k // 2)
    maps n to ceil(n / 2). Per resolution: the stem (input r), the first block (r/2), per stage a first block and
    the blocks 2..4 (which share one shape), each in 3 kernels x 3 expands, then the final 1x1 expand, the pooling,
    the feature mix and the classifier. Over resolutions a key repeats wherever its input size does."""
    import math
    strides = (2, 2, 2, 1, 2)
    sizes_by_op: dict[tuple, set[int]] = {}
    per_r = set()
    for r in range(128, 225, 4):
        n = math.ceil(r / 2)                            # after the stem
        ops = [("stem", r), ("first_block", n)]
        for stage, s in enumerate(strides):
            for k in (3, 5, 7):
                for e in (3, 4, 6):
                    ops.append((f"stage{stage}-first-k{k}-e{e}", n))
            n = math.ceil(n / s)
            for k in (3, 5, 7):
                for e in (3, 4, 6):
                    ops.append((f"stage{stage}-rest-k{k}-e{e}", n))
        ops += [("final_expand", n), ("pool", n), ("feature_mix", 1), ("classifier", 1)]
        per_r.add(len(ops))
        for name, size in ops:
            sizes_by_op.setdefault(name, set()).add(size)
    (n_per_r,) = per_r
    return n_per_r, sum(len(v) for v in sizes_by_op.values())


@pytest.mark.parametrize("space", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"])
def test_96_ops_per_resolution_and_1257_overall(space):
    per_r, overall = _key_counts_from_the_space_rules()
    assert (per_r, overall) == (96, 1257)
    sp = get_space(space)
    for r in sp.resolutions:
        assert len(ops_at_resolution(sp, r)) == per_r
    assert len(enumerate_ops(sp)) == overall


def test_key_grammar_round_trip():
    for _, op in enumerate_ops("ofa-mbv3-w1.0"):
        assert parse_key(op.key) == op
    k = "expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0"
    assert parse_key(k).key == k
    assert parse_key("Logits-input:1x1x1280-output:1000") == Op("Logits", 1, 1280, 0, 1000, family="mbv3")


@pytest.mark.parametrize("bad", ["", "Conv-input:1x2x3-output:1x1x1", "expanded_conv-input:5x5x5",
                                 "Logits-input:7x7x1280", "Foo-input:1x1x1-output:1x1x1"])
def test_bad_keys_are_refused(bad):
    with pytest.raises(KeyError_):
        parse_key(bad)


def test_first_ops_of_a_subnet():
    s = get_space("ofa-mbv3-w1.0").largest(224)
    ops = subnet_ops(s)
    assert ops[0].key == "Conv-input:224x224x3-output:112x112x16"
    assert ops[1].key == ("expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1"
                          "-se:0-hs:0")
    assert ops[2].key == ("expanded_conv-input:112x112x16-output:56x56x24-expand:96-kernel:7-stride:2-idskip:0"
                          "-se:0-hs:0")
    assert [o.kind for o in ops[-4:]] == ["Conv_1", "AvgPool2D", "Conv_2", "Logits"]
    assert ops[-4].key == "Conv_1-input:7x7x160-output:7x7x960"
    assert len(ops) == 2 + 20 + 4


def _covering_subnets(space, r):
    """For each elastic (stage, position, k, e) a subnet holding that block."""
    sp = get_space(space)
    out = []
    for s in range(sp.n_stages):
        for k in sp.kernels:
            for e in sp.expands:
                ks = [3] * 20
                ee = [3] * 20
                for b in range(2):
                    ks[s * 4 + b] = k
                    ee[s * 4 + b] = e
                out.append(SubnetSpec(sp.name, tuple(ks), tuple(ee), (2,) * 5, r))
    return out


def test_enumeration_is_exact_property():
    """Every op of 10,000 random subnets is enumerated; every enumerated op occurs in some subnet."""
    sp = get_space("ofa-mbv3-w1.0")
    enumerated = {op for _, op in enumerate_ops(sp)}
    rng = random.Random(2026)
    seen = set()
    for _ in range(10_000):
        seen.update(subnet_ops(sp.sample(rng)))
    assert seen <= enumerated
    for r in sp.resolutions:
        for s in _covering_subnets(sp, r):
            seen.update(subnet_ops(s))
    assert seen == enumerated


def test_compound_ops_subset():
    c = get_space("compofa-mbv3-w1.0")
    enumerated = {op for _, op in enumerate_ops(c, [160])}
    seen = {op for s in c.iter_compound(160) for op in subnet_ops(s)}
    assert seen == enumerated


def test_macs_match_ofa_names(shared_data):
    """OFA names two specialised nets by their MACs: 389M and 482M."""
    base = shared_data / "reference" / "ofa-specialized"
    for name, mmacs in (("flops-389M_top1-79.1_finetune-75", 389), ("flops-482M_top1-79.6_finetune-75", 482)):
        s = SubnetSpec.load(base / name / "net.config")
        assert round(sum(o.macs() for o in subnet_ops(s)) / 1e6) == mmacs


def _conv_out(hw: int, kernel: int, stride: int) -> int:
    """PyTorch's conv output size with OFA's padding (get_same_padding: kernel // 2)."""
    return (hw + 2 * (kernel // 2) - kernel) // stride + 1


@pytest.mark.parametrize("r", [228, 236, 240, 260, 320])
def test_ops_above_224_follow_ofas_shape_rules(r):
    """A LUT may hold resolutions above the supernet's (OFA's specialized nets go to 260): the feature maps of
    every op follow OFA's conv arithmetic (3x3 stem stride 2, each stage's first block its stride, padding k//2),
    e.g. 260 -> 130 -> 65 -> 33 -> 17 -> 17 -> 9."""
    for name in ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2"):
        sp = get_space(name)
        spec = sp.largest(r)
        ops = subnet_ops(spec)
        hw = _conv_out(r, 3, 2)
        assert ops[0].in_hw == r and ops[0].out_hw == hw
        for op, (i, s, b) in zip(ops[2:], spec.active_blocks()):
            stride = sp.stages[s].stride if b == 0 else 1
            out = _conv_out(hw, spec.ks[i], stride)
            assert (op.in_hw, op.out_hw, op.stride) == (hw, out, stride)
            hw = out
        assert {op.key for op in ops} <= {op.key for op in ops_at_resolution(sp, r)}
    if r == 260:
        sizes = [op.out_hw for op in subnet_ops(get_space("ofa-mbv3-w1.0").smallest(260))][:12]
        assert sizes[0] == 130 and 65 in sizes and 33 in sizes and 17 in sizes and 9 in sizes
