import json
import random

import pytest

from ofa_profile.space import SpaceError, SubnetSpec, get_space, make_divisible, parse_resolutions


def test_widths_w10_and_w12():
    a = get_space("ofa-mbv3-w1.0")
    assert (a.stem_ch, a.first_block_ch) == (16, 16)
    assert [s.width for s in a.stages] == [24, 40, 80, 112, 160]
    assert (a.final_expand_ch, a.feature_mix_ch) == (960, 1280)
    assert [s.stride for s in a.stages] == [2, 2, 2, 1, 2]
    assert [s.se for s in a.stages] == [False, True, False, True, True]
    b = get_space("ofa-mbv3-w1.2")
    assert (b.stem_ch, b.first_block_ch) == (24, 24)
    assert [s.width for s in b.stages] == [32, 48, 96, 136, 192]
    assert (b.final_expand_ch, b.feature_mix_ch) == (1152, 1536)
    assert get_space("ofa_mbv3_d234_e346_k357_w1.0") is a


def test_make_divisible_matches_ofa():
    assert make_divisible(16 * 1.2, 8) == 24
    assert make_divisible(112 * 1.2, 8) == 136
    assert make_divisible(240 // 4, 8) == 64
    assert get_space("ofa-mbv3-w1.0").mid_channels(40, 3) == 120


def test_space_sizes():
    assert len(get_space("ofa-mbv3-w1.0").resolutions) == 25
    assert 1e19 < get_space("ofa-mbv3-w1.0").size() < 3e19
    c = get_space("compofa-mbv3-w1.0")
    assert c.size() == 243
    subnets = list(c.iter_compound(160))
    assert len(subnets) == 243 and len(set(subnets)) == 243
    for s in subnets[:20]:
        for i, st, b in s.active_blocks():
            assert s.ks[i] == c.compound_kernels[st]
            assert s.e[i] == dict(c.compound_expand)[s.d[st]]


def test_sampling_is_seeded_and_valid():
    sp = get_space("ofa-mbv3-w1.0")
    a = [sp.sample(random.Random(7)) for _ in range(3)]
    b = [sp.sample(random.Random(7)) for _ in range(3)]
    assert a == b
    rng = random.Random(1)
    many = [sp.sample(rng) for _ in range(300)]
    assert len({s.r for s in many}) > 15
    assert {d for s in many for d in s.d} == {2, 3, 4}
    for s in many:
        s.validated()
    c = get_space("compofa-mbv3-w1.0").sample(3, resolution=224)
    assert c.r == 224 and c.space == "compofa-mbv3-w1.0"


def test_ofa_dict_round_trip():
    sp = get_space("ofa-mbv3-w1.0")
    s = sp.sample(11)
    assert SubnetSpec.from_ofa(json.loads(json.dumps(s.to_ofa()))) == s
    # OFA writes r as a one-element list
    d = s.to_ofa()
    d["r"] = [d["r"]]
    assert SubnetSpec.from_ofa(d) == s


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(ks=d["ks"][:19]), "field 'ks' has 19 entries"),
    (lambda d: d["e"].__setitem__(0, 5), "e[0]=5 is not one of [3, 4, 6]"),
    (lambda d: d["d"].__setitem__(2, 1), "d[2]=1 is not one of [2, 3, 4]"),
    (lambda d: d.update(r=130), "r=130 is not in the space"),
    (lambda d: d.update(r=324), "r=324 is not in the space: use 128..224 (the supernet's; 228..320 for latency"),
    (lambda d: d.pop("d"), "lacks field(s) d"),
    (lambda d: d.update(r=None), "lacks the resolution"),
    (lambda d: d["ks"].__setitem__(0, "x"), "ks[0]='x' is not an integer"),
])
def test_validation_names_the_bad_field(mutate, needle):
    d = get_space("ofa-mbv3-w1.0").largest(224).to_ofa()
    mutate(d)
    with pytest.raises(SpaceError) as ei:
        SubnetSpec.from_ofa(d)
    assert needle in str(ei.value)
    assert "\n" not in str(ei.value)


def test_skipped_block_entries_are_ignored():
    d = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160}
    d["ks"][3] = 99  # block 3 of stage 0 is skipped at depth 2
    s = SubnetSpec.from_ofa(d)
    assert s.canonical().ks[3] == 3


def test_compound_rule_enforced():
    c = get_space("compofa-mbv3-w1.0")
    s = c.largest(224).to_ofa()
    s["ks"][0] = 7
    with pytest.raises(SpaceError, match="compound rule"):
        SubnetSpec.from_ofa(s, space=c)


def test_parse_resolutions():
    assert parse_resolutions("160,224") == (160, 224)
    assert parse_resolutions("128-140") == (128, 132, 136, 140)
    assert len(parse_resolutions("all")) == 25       # the supernet's
    # above the supernet's 224, for latency (OFA's specialized nets go to 260)
    assert parse_resolutions("228-260") == tuple(range(228, 261, 4))
    assert parse_resolutions("228,236,240,260") == (228, 236, 240, 260)
    for bad in ("130", "324", "124", "230"):
        with pytest.raises(SpaceError, match="228..320 for latency only"):
            parse_resolutions(bad)
    with pytest.raises(SpaceError):
        parse_resolutions("130")
    with pytest.raises(SpaceError):
        parse_resolutions("abc")


def test_specialized_net_configs(shared_data):
    base = shared_data / "reference" / "ofa-specialized"
    parsed, refused = 0, 0
    for d in sorted(base.iterdir()):
        cfg = json.loads((d / "net.config").read_text())
        try:
            s = SubnetSpec.load(d / "net.config")
        except SpaceError as exc:
            refused += 1
            msg = str(exc)
            assert ("ProxylessNASNets" in msg) or ("not in the space" in msg), msg
            continue
        parsed += 1
        assert s.r == json.loads((d / "run.config").read_text())["image_size"]
        # every block of the config is reproduced with its kernel and expand ratio
        convs = [b["mobile_inverted_conv"] for b in cfg["blocks"][1:]]
        assert [(c["kernel_size"], c["expand_ratio"]) for c in convs] == [(s.ks[i], s.e[i]) for i, _, _ in s.active_blocks()]
    assert parsed == 50 and refused == 0     # OFA's 50 specialized nets, the four at r=228..260 included
