"""A search-space family is one record (``register_family(Family(...))``), and one can come from outside the tree:
a small package, built and installed here (``pip install --target``), adds a tiny family through the
``ofa_profile.families`` entry point; with it on the path, the help texts and ``--space`` list its space,
``enumerate`` walks it and ``measure`` builds a LUT for it, with no edit to the project."""
from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cli_with_site, fast_spec, install_plugin
from ofa_profile.errors import SpaceError
from ofa_profile.family import FAMILIES, SPACES, Family, get_family, register_family
from ofa_profile.ops import Op, ops_at_resolution, subnet_ops
from ofa_profile.space import Space, StageDef, get_space

SETUP = """
from setuptools import setup
setup(name="ofa-profile-tinyfam", version="0.1", py_modules=["ofa_profile_tinyfam"],
      entry_points={"ofa_profile.families": ["tiny = ofa_profile_tinyfam"]})
"""

# the plug-in's module: a family of its own (grammar, head, activations), registered with one call
MODULE = '''
"""A tiny family: two stages, depth 1 or 2, kernel 3 or 5, expand 3 or 4, ReLU/ReLU6, SE in its last stage, a
ProxylessNAS-like head (1x1 expand, then a classifier that pools) of 10 classes."""
import re

from ofa_profile.family import Family, KeyGrammar, register_family
from ofa_profile.ops import KeyError_, Op, check_square, shape_key
from ofa_profile.space import Space, StageDef

FAMILY = "tiny"
EXAMPLE = "expanded_conv-input:32x32x8-output:16x16x16-mid:24-kernel:3-stride:2-idskip:0-se:0-act:relu"
_S = r"(\\d+)x(\\d+)x(\\d+)"
_BLOCK = re.compile(rf"^expanded_conv-input:{_S}-output:{_S}-mid:(\\d+)-kernel:(\\d+)-stride:(\\d+)-idskip:([01])"
                    rf"-se:([01])-act:(relu6?)$")
_OTHER = re.compile(rf"^(Conv|Conv_1)-input:{_S}-output:{_S}$")
_LOGITS = re.compile(rf"^Logits-input:{_S}-output:(\\d+)$")


def key(op):
    return shape_key(op, f"mid:{op.mid}-kernel:{op.kernel}-stride:{op.stride}-idskip:{op.idskip}-se:{op.se}"
                         f"-act:{op.activation}")


def parse(k):
    m = _BLOCK.match(k)
    if m:
        g = [int(x) for x in m.groups()[:11]]
        check_square(k, g[0], g[1])
        return Op("expanded_conv", g[0], g[2], g[3], g[5], mid=g[6], kernel=g[7], stride=g[8], idskip=g[9],
                  se=g[10], activation=m.group(12), family=FAMILY)
    m = _OTHER.match(k)
    if m:
        g = [int(x) for x in m.groups()[1:]]
        check_square(k, g[0], g[1])
        return Op(m.group(1), g[0], g[2], g[3], g[5], activation="relu", family=FAMILY)
    m = _LOGITS.match(k)
    if m:
        g = [int(x) for x in m.groups()]
        return Op("Logits", g[0], g[2], 0, g[3], family=FAMILY)
    raise KeyError_(f"{k!r} is not a tiny-family LUT key (e.g. {EXAMPLE!r})")


SPACE = Space(name="tiny-w1.0", family=FAMILY, ofa_id="tiny_d12_e34_k35_w1.0", width_mult=1.0, stem_ch=8,
              first_block_ch=8, stages=(StageDef(16, 2, "relu", False), StageDef(24, 2, "relu6", True)),
              final_expand_ch=48, feature_mix_ch=0, depths=(1, 2), expands=(3, 4), kernels=(3, 5), max_depth=2,
              n_classes=10)
register_family(Family(name=FAMILY, description="a tiny family from a plug-in package", spaces=(SPACE,),
                       grammar=KeyGrammar(FAMILY, key, parse, EXAMPLE), net_config_name="TinyNets",
                       head=("Conv_1", "Logits"), stem_act="relu", first_block_act="relu", head_act="relu"))
'''


@pytest.fixture(scope="module")
def family_site(tmp_path_factory):
    """The package built from source and installed into a folder of its own (a site directory on the path)."""
    root = tmp_path_factory.mktemp("family-plugin")
    src = root / "src"
    src.mkdir()
    (src / "setup.py").write_text(textwrap.dedent(SETUP))
    (src / "ofa_profile_tinyfam.py").write_text(MODULE)
    return install_plugin(src, root / "site", "ofa_profile_tinyfam")




def test_an_installed_family_is_listed_enumerated_and_measured(family_site, tmp_path):
    r = cli_with_site(["pareto", "--help"], family_site)
    assert r.returncode == 0 and "tiny-w1.0" in r.stdout and "ofa-proxyless-w1.3" in r.stdout, r.stderr
    r = cli_with_site(["enumerate", "--space", "tiny-w1.0", "--resolutions", "128", "--json"], family_site)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    keys = [row["key"] for row in (out["ops"] if isinstance(out, dict) else out)]
    # stem, first block, 2 stages x 2 positions x 4 (kernel, expand) choices, the two head ops
    assert len(keys) == 2 + 2 * 2 * 4 + 2 == len(set(keys))
    assert "Conv_1-input:16x16x24-output:16x16x48" in keys and "Logits-input:16x16x48-output:10" in keys
    assert "expanded_conv-input:32x32x16-output:16x16x24-mid:48-kernel:5-stride:2-idskip:0-se:1-act:relu6" in keys
    spec = fast_spec(tmp_path, "onnxruntime")
    lut_path = tmp_path / "tiny.json"
    r = cli_with_site(["measure", "--device", spec, "--space", "tiny-w1.0", "--resolutions", "128", "--out", lut_path,
              "--quiet"], family_site, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lut = json.loads(lut_path.read_text())
    assert lut["space"] == "tiny-w1.0" and sorted(lut["entries"]) == sorted(keys)
    assert all(e["median_ms"] > 0 for e in lut["entries"].values())


def test_without_the_package_its_space_is_unknown(family_site):
    r = cli_with_site(["enumerate", "--space", "tiny-w1.0", "--resolutions", "128"])
    assert r.returncode == 2 and "tiny-w1.0" in r.stderr and "Traceback" not in r.stderr


def test_a_broken_family_plugin_is_one_line_naming_it(tmp_path):
    site = tmp_path / "site"
    dist = site / "ofa_profile_badfam-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ofa-profile-badfam\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ofa_profile.families]\nbadfam = ofa_profile_badfam\n")
    (site / "ofa_profile_badfam.py").write_text(
        "from ofa_profile.family import Family, register_family\n"
        "from ofa_profile.families.mbv3 import FAMILY_RECORD\n"
        "import dataclasses\n"
        "register_family(dataclasses.replace(FAMILY_RECORD, name='badfam'))\n")   # grammar of another family
    r = cli_with_site(["enumerate", "--space", "ofa-mbv3-w1.0", "--resolutions", "128"], site)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "plug-in 'badfam'" in line and "ofa-profile-badfam" in line
    assert "key grammar is family 'mbv3'" in line


# -- the record itself, in process ----------------------------------------------------------------------------
def _tiny(name="tiny-inproc", family="tinyin", **kw):
    return Space(name=name, family=family, ofa_id=name, width_mult=1.0, stem_ch=8, first_block_ch=8,
                 stages=(StageDef(16, 2, "relu", False),), final_expand_ch=32, feature_mix_ch=kw.pop("mix", 0),
                 depths=(1, 2), expands=(3,), kernels=(3,), max_depth=2, n_classes=10, **kw)


@pytest.fixture
def tiny_family():
    mb = get_family("mbv3").grammar
    fam = Family(name="tinyin", description="a family registered by a test", spaces=(_tiny(),),
                 grammar=dataclasses.replace(mb, family="tinyin"), net_config_name="TinyNets",
                 head=("Conv_1", "Logits"), stem_act="relu6", first_block_act="relu", head_act="relu6")
    yield fam
    FAMILIES.pop("tinyin", None)
    SPACES.pop("tiny-inproc", None)


def test_the_head_and_the_fixed_activations_are_the_familys(tiny_family):
    register_family(tiny_family)
    sp = get_space("tiny-inproc")
    assert (sp.stem_act, sp.first_block_act, sp.head_act, sp.net_config_name) == ("relu6", "relu", "relu6",
                                                                                   "TinyNets")
    ops = subnet_ops(sp.largest(128))
    assert [o.kind for o in ops] == ["Conv", "expanded_conv", "expanded_conv", "expanded_conv", "Conv_1", "Logits"]
    assert ops[0].activation == "relu6" and ops[-2].activation == "relu6" and ops[-1] == Op(
        "Logits", 32, 32, 0, 10, family="tinyin")
    assert len(ops_at_resolution(sp, 128)) == 2 + 2 + 2
    # another head is another family datum: with a pool, the classifier runs on 1x1
    pooled = dataclasses.replace(tiny_family, name="tinypool", head=("Conv_1", "AvgPool2D", "Logits"),
                                 grammar=dataclasses.replace(tiny_family.grammar, family="tinypool"),
                                 spaces=(_tiny("tiny-pool", "tinypool"),))
    register_family(pooled)
    try:
        assert [(o.kind, o.in_hw, o.out_hw) for o in subnet_ops(get_space("tiny-pool").largest(128))[-3:]] == [
            ("Conv_1", 32, 32), ("AvgPool2D", 32, 1), ("Logits", 1, 0)]
    finally:
        FAMILIES.pop("tinypool"), SPACES.pop("tiny-pool")


@pytest.mark.parametrize("change, why", [
    (dict(head=("Conv_1", "AvgPool2D")), "ending in Logits"),
    (dict(head=("Logits", "Conv_1", "Logits")), "ending in Logits"),
    (dict(stem_act="swish"), "stem_act='swish'"),
    (dict(head=("Conv_1", "AvgPool2D", "Conv_2", "Logits")), "feature_mix_ch 0 do not fit"),
    (dict(spaces=()), "no space"),
    (dict(spaces=(_tiny(family="other"),)), "says family 'other'"),
    (dict(spaces=(dataclasses.replace(_tiny(), name="ofa-mbv3-w1.0"),)), "space ofa-mbv3-w1.0 of family 'tinyin' "
                                                                          "is already registered"),
    (dict(name="mbv3"), "key grammar is family 'tinyin'"),
])
def test_a_family_that_cannot_work_is_refused_in_one_line(tiny_family, change, why):
    with pytest.raises(SpaceError, match="cannot be registered|already registered") as e:
        register_family(dataclasses.replace(tiny_family, **change))
    assert why in str(e.value) and "\n" not in str(e.value)
    assert "tinyin" not in FAMILIES or change.get("name") == "mbv3"


def test_no_family_defaults_in_space_or_op():
    """A space and an op say their family (and a space its choice sets): nothing falls back to MobileNetV3's."""
    with pytest.raises(TypeError, match="family"):
        Op("Logits", 1, 1280, 0, 1000)
    with pytest.raises(TypeError, match="family"):
        Space(name="x", ofa_id="x", width_mult=1.0, stem_ch=8, first_block_ch=8, stages=(), final_expand_ch=8,
              feature_mix_ch=0, depths=(1,), expands=(3,), kernels=(3,))
    with pytest.raises(SpaceError, match="compound space"):
        _tiny(compound=True)
    with pytest.raises(SpaceError, match="registered twice"):
        register_family(dataclasses.replace(get_family("mbv3"), description="another"))
    assert register_family(get_family("mbv3")) is get_family("mbv3")     # the same record again: a no-op


def test_a_device_spec_may_name_a_registered_familys_space(tiny_family, tmp_path):
    """The device schema's space enum is the registry's now: a spec naming a plug-in's space loads once its family
    is registered; an unknown space is the registry's one line."""
    from ofa_profile.devices import DeviceError, parse_device
    spec = {"format": "ofa-profile-device", "schema_version": 1, "name": "t", "description": "d",
            "runtime": "onnxruntime", "transport": "local", "space": "tiny-inproc"}
    with pytest.raises(DeviceError, match="invalid at space: unknown space 'tiny-inproc'; choose one of ofa-mbv3"):
        parse_device(spec)
    register_family(tiny_family)
    assert parse_device(spec).space == "tiny-inproc"
    assert parse_device({**spec, "space": "ofa_mbv3_d234_e346_k357_w1.2"}).space == "ofa_mbv3_d234_e346_k357_w1.2"


@settings(max_examples=60, deadline=None)
@given(head=st.lists(st.sampled_from(["Conv_1", "AvgPool2D", "Conv_2", "Logits", "Conv", "", "logits"]),
                     max_size=5))
def test_any_head_is_registered_or_refused_in_one_line(head):
    """A head is accepted exactly when it is a sub-sequence of the head kinds ending in Logits, with Conv_1 (the
    tiny space has a final expand) and without Conv_2 (it has no feature mix); anything else is one SpaceError."""
    mb = get_family("mbv3").grammar
    fam = Family(name="tinyhyp", description="d", spaces=(_tiny("tiny-hyp", "tinyhyp"),),
                 grammar=dataclasses.replace(mb, family="tinyhyp"), net_config_name="T", head=tuple(head),
                 stem_act="relu", first_block_act="relu", head_act="relu")
    ok = head in (["Conv_1", "Logits"], ["Conv_1", "AvgPool2D", "Logits"])
    try:
        register_family(fam)
        assert ok, head
        assert [o.kind for o in subnet_ops(get_space("tiny-hyp").largest(128))][-len(head):] == head
    except SpaceError as exc:
        assert not ok and "\n" not in str(exc), head
    finally:
        FAMILIES.pop("tinyhyp", None), SPACES.pop("tiny-hyp", None)
