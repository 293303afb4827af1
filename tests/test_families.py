"""Space families as plug-ins: the registry, the same property tests for every registered space, and the
ProxylessNAS family checked against OFA's own code, OFA's specialized nets and ProxylessNAS's LUT."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest

from ofa_profile.families import family_spaces, list_families
from ofa_profile.family import FAMILIES, get_family, register_family
from ofa_profile.ops import enumerate_ops, grammar, ops_at_resolution, parse_key, split_ops, subnet_ops
from ofa_profile.space import SPACES, SpaceError, SubnetSpec, get_space

ALL = list(SPACES)
FULL = [n for n in SPACES if not SPACES[n].compound]


def test_registry_lists_both_families_and_their_spaces():
    assert list_families() == ["mbv3", "proxyless"]
    assert family_spaces("proxyless") == ["ofa-proxyless-w1.3", "ofa-proxyless-w1.0"]
    assert set(family_spaces("mbv3")) == {"ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "compofa-mbv3-w1.0"}
    assert get_space("ofa_proxyless_d234_e346_k357_w1.3").name == "ofa-proxyless-w1.3"   # OFA's id


@pytest.mark.parametrize("space", ALL)
def test_key_grammar_round_trips_every_op(space):
    sp = get_space(space)
    ops = [op for _, op in enumerate_ops(sp, sp.resolutions[::6])]
    assert ops
    for op in ops:
        assert parse_key(op.key, sp.family) == op
        assert op.family == sp.family


@pytest.mark.parametrize("space", ALL)
def test_enumeration_holds_every_op_of_sampled_subnets(space):
    sp = get_space(space)
    rng = random.Random(7)
    enumerated = {op for _, op in enumerate_ops(sp)}
    for _ in range(300):
        spec = sp.sample(rng)
        ops = subnet_ops(spec)
        assert set(ops) <= enumerated
        fixed, blocks = split_ops(spec, ops)
        assert len(blocks) == len(spec.active_blocks()) == sum(spec.d)
        assert all(op.kind == "expanded_conv" for op in blocks)
        assert fixed[0].kind == "Conv" and fixed[-1].kind == "Logits"


@pytest.mark.parametrize("space", FULL)
def test_every_enumerated_op_occurs_in_some_subnet(space):
    """Enumeration is exact: for each stage position and choice some subnet holds the op."""
    sp = get_space(space)
    r = sp.resolutions[0]
    seen = set()
    for s in range(sp.n_stages):
        for k in sp.kernels:
            for e in sp.expands:
                ks, ee = list(sp.smallest(r).ks), list(sp.smallest(r).e)
                d = list(sp.smallest(r).d)
                d[s] = max(sp.stage_depths(s))
                for b in range(d[s]):
                    ks[s * sp.max_depth + b], ee[s * sp.max_depth + b] = k, e
                seen.update(subnet_ops(SubnetSpec(sp.name, tuple(ks), tuple(ee), tuple(d), r)))
    assert seen == set(ops_at_resolution(sp, r))


@pytest.mark.parametrize("space", ALL)
def test_ofa_spec_round_trip_and_sizes(space):
    sp = get_space(space)
    rng = random.Random(3)
    for _ in range(50):
        spec = sp.sample(rng)
        ofa = spec.to_ofa()
        assert len(ofa["ks"]) == len(sp.ofa_block_slots)
        assert SubnetSpec.from_ofa(ofa, space=sp.name).canonical() == spec.canonical()
    assert sp.size() > 0
    assert sp.largest().validated() and sp.smallest().validated()


def test_bad_keys_name_the_family():
    with pytest.raises(SpaceError, match="not an OFA ProxylessNAS LUT key"):
        parse_key("expanded_conv-input:56x56x24-output:28x28x40-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0",
                  "proxyless")
    with pytest.raises(SpaceError, match="not an OFA MobileNetV3 LUT key"):
        parse_key(grammar("proxyless").example)
    with pytest.raises(SpaceError, match="no key grammar registered"):
        parse_key("Conv-input:1x1x1-output:1x1x1", "resnet")


# -- ProxylessNAS against OFA's own code ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ofa_proxyless():
    from helpers import ofa_networks
    return ofa_networks().OFAProxylessNASNets(n_classes=1000, width_mult=1.3, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                               depth_list=[2, 3, 4])


def _cfg_blocks(cfg):
    out = []
    for b in cfg["blocks"]:
        c = b.get("conv") or b.get("mobile_inverted_conv")
        out.append((c["in_channels"], c["out_channels"], c["kernel_size"], c["stride"],
                    c["mid_channels"] or c["in_channels"], b.get("shortcut") is not None))
    return out


def _our_blocks(spec):
    return [(op.in_ch, op.out_ch, op.kernel, op.stride, op.mid, bool(op.idskip))
            for op in subnet_ops(spec) if op.kind == "expanded_conv"]


def test_proxyless_macro_architecture_is_ofas(ofa_proxyless):
    net = ofa_proxyless
    sp = get_space("ofa-proxyless-w1.3")
    assert [len(g) for g in net.block_group_info] == [max(sp.stage_depths(s)) for s in range(sp.n_stages)]
    assert net.first_conv.config["out_channels"] == sp.stem_ch and net.first_conv.config["act_func"] == "relu6"
    assert net.feature_mix_layer.config["out_channels"] == sp.final_expand_ch
    rng = random.Random(11)
    for _ in range(20):
        random.seed(rng.random())
        cfg = net.sample_active_subnet()
        spec = SubnetSpec.from_ofa({**cfg, "r": 160}, space=sp.name)
        sub = net.get_active_subnet().config
        assert _cfg_blocks(sub) == _our_blocks(spec)
        assert sub["feature_mix_layer"]["in_channels"] == subnet_ops(spec)[-2].in_ch
        assert sub["classifier"]["in_features"] == subnet_ops(spec)[-1].in_ch
        assert spec.to_ofa()["ks"] == cfg["ks"] and spec.to_ofa()["e"] == cfg["e"]


def test_all_16_specialized_proxyless_nets_are_read(shared_data):
    root = shared_data / "reference" / "ofa-specialized"
    names = [p.name for p in sorted(root.iterdir()) if p.name.startswith(("cpu_lat", "1080ti_gpu64", "v100_gpu64",
                                                                           "tx2_gpu16"))]
    assert len(names) == 16
    for n in names:
        spec = SubnetSpec.load(root / n / "net.config")
        assert spec.space == "ofa-proxyless-w1.3"
        cfg = json.loads((root / n / "net.config").read_text())
        assert _our_blocks(spec) == _cfg_blocks(cfg), n
        assert spec.r == json.loads((root / n / "run.config").read_text())["image_size"]


# -- ProxylessNAS's own LUT format -------------------------------------------------------------------------
def test_proxylessnas_mobile_table_imports_for_the_shapes_it_covers(shared_data, tmp_path):
    from ofa_profile.lut import LutError, export_ofa_yaml, import_ofa_yaml
    src = shared_data / "reference" / "proxylessnas-mobile_trim.yaml"
    with pytest.raises(LutError, match="not a block of space ofa-proxyless-w1.0.*--allow-partial"):
        import_ofa_yaml(src)
    lut = import_ofa_yaml(src, allow_partial=True)
    assert lut.space == "ofa-proxyless-w1.0" and lut.resolutions == ()
    assert len(lut.coverage()[224]) == 33
    prov = lut.provenance
    assert prov["partial_resolutions"]["224"]["missing_keys"] == 33           # the expand-4 blocks
    assert prov["ignored_keys"]["count"] == 2                                  # ProxylessNAS's 5x5/7x7 first block
    key = "expanded_conv-input:56x56x24-output:28x28x40-expand:6-kernel:5-stride:2-idskip:0"
    raw = __import__("yaml").safe_load(src.read_text())[key]
    e = lut.entries[key]
    assert e.median_ms == pytest.approx(raw["mean"]) and e.std_ms == pytest.approx(raw["var"] ** 0.5)
    with pytest.raises(LutError, match="proxyless tables, but --space ofa-mbv3-w1.0"):
        import_ofa_yaml(src, space="ofa-mbv3-w1.0", allow_partial=True)
    with pytest.raises(LutError, match="covers no resolution completely"):
        export_ofa_yaml(lut, tmp_path)


def test_proxyless_lut_export_import_round_trip(tmp_path):
    """A complete ProxylessNAS LUT exports in OFA's ProxylessNAS format ({count, mean, var}) and imports back."""
    import yaml

    from ofa_profile.lut import Lut, LutEntry, export_ofa_yaml, import_ofa_yaml
    sp = get_space("ofa-proxyless-w1.3")
    entries = {op.key: LutEntry(median_ms=0.01 * (i + 1), iqr_ms=0.002, count=5, std_ms=0.003)
               for i, op in enumerate(ops_at_resolution(sp, 160))}
    lut = Lut(space=sp.name, device="x", runtime="onnxruntime", entries=entries, resolutions=(160,), batch_size=1)
    (p,) = export_ofa_yaml(lut, tmp_path)
    t = yaml.safe_load(p.read_text())
    some = next(iter(t.values()))
    assert set(some) == {"count", "mean", "var"} and some["var"] == pytest.approx(0.003 ** 2)
    back = import_ofa_yaml(tmp_path)
    assert back.space == sp.name and back.resolutions == (160,)
    spec = sp.sample(1, 160)
    assert back.lut_sum_ms(spec) == pytest.approx(lut.lut_sum_ms(spec))


def test_shipped_mbv3_keys_are_unchanged():
    """The refactor keeps MobileNetV3's op counts (96 per resolution, 1,257 overall) and its grammar."""
    sp = get_space("ofa-mbv3-w1.0")
    assert len(ops_at_resolution(sp, 224)) == 96 and len(enumerate_ops(sp)) == 1257
    ops = subnet_ops(sp.largest(224))
    assert ops[1].key == "expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0"


def test_ofa_table_formats_come_from_the_family_grammars(tmp_path):
    """Which OFA table format a YAML file is, and the spread statistic it stores, are the family grammar's: a
    grammar registered at run time with its own marks is recognised with no other change."""
    from ofa_profile import ops
    from ofa_profile.lut import detect_format
    from ofa_profile.lut_ofa import _classify_yaml
    assert {g.family: (g.table_format, g.table_stat) for g in ops.list_grammars()} == {
        "mbv3": ("ofa-mbv3-yaml", "std"), "proxyless": ("proxylessnas-yaml", "var")}
    fake = ops.KeyGrammar("fakefam", ops.grammar("mbv3").key, ops.grammar("mbv3").parse, "Fake-key",
                          table_format="fake-yaml", table_stat="mad", table_name="a fake format",
                          recognise=lambda t: "Fake-marker" in t)
    space = dataclasses.replace(get_space("ofa-mbv3-w1.0"), name="fake-space", family="fakefam")
    register_family(dataclasses.replace(get_family("mbv3"), name="fakefam", spaces=(space,), grammar=fake))
    try:
        f = tmp_path / "160_lookup_table.yaml"
        f.write_text("Fake-marker: {count: 1, mean: 1.0, mad: 0.1}\n")
        assert detect_format(f) == "fake-yaml"
        assert _classify_yaml({"Fake-marker": {}}, f) is fake
    finally:
        del FAMILIES["fakefam"], SPACES["fake-space"]
    from ofa_profile.errors import LutError
    with pytest.raises(LutError, match="not an OFA MobileNetV3 LUT key"):
        detect_format(f)                                   # unregistered: no family claims the file
