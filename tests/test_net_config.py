"""A net.config that describes another network than the subnet it names is refused, naming the field (issue 24):
every field is read against the space (ofa_profile/netconfig.py), starting from OFA's own specialised net.configs
(MobileNetV3 w1.0 and w1.2, ProxylessNAS w1.3), which all load as they are."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ofa_profile.errors import SpaceError
from ofa_profile.space import SubnetSpec

ROOT = Path(__file__).resolve().parents[1]


def _specialized() -> Path:
    base = Path(os.environ.get("OFA_PROFILE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return base / "reference" / "ofa-specialized"


needs_data = pytest.mark.skipif(not _specialized().is_dir(), reason="OFA's specialised net.configs (shared data) "
                                                                    "are not here")
MBV3 = "note10_lat-8ms_top1-71.4_finetune-25"          # w1.0, r 160 in its run.config
PROXYLESS = "cpu_lat-10ms_top1-71.1_finetune-25"


def _cfg(name: str = MBV3) -> dict:
    return json.loads((_specialized() / name / "net.config").read_text())


def _load(cfg: dict, tmp_path: Path, r: int = 160) -> SubnetSpec:
    d = tmp_path / "net"
    d.mkdir(exist_ok=True)
    (d / "net.config").write_text(json.dumps(cfg))
    (d / "run.config").write_text(json.dumps({"image_size": r}))
    return SubnetSpec.load(d / "net.config")


@needs_data
def test_every_specialised_net_config_within_the_resolutions_loads():
    n = 0
    for p in sorted(_specialized().glob("*/net.config")):
        r = json.loads((p.parent / "run.config").read_text())["image_size"]
        if r <= 224:
            SubnetSpec.load(p)
            n += 1
    assert n >= 40


def _conv(c, i):
    return c["blocks"][i]["mobile_inverted_conv"]


# (mutation, the words the one-line refusal must hold: the field's path and the space's value)
MUTATIONS = {
    "out-channels-huge": (lambda c: _conv(c, 2).update(out_channels=10 ** 9), ["blocks[2]", "out_channels", "24"]),
    "out-channels-negative": (lambda c: _conv(c, 3).update(out_channels=-5), ["out_channels", "-5"]),
    "stride-0": (lambda c: _conv(c, 2).update(stride=0), ["blocks[2]", "stride", "is 0", "2"]),
    "stride-3": (lambda c: _conv(c, 1).update(stride=3), ["blocks[1]", "stride", "is 3", "2"]),
    "in-channels": (lambda c: _conv(c, 4).update(in_channels=48), ["blocks[4]", "in_channels", "48"]),
    "classes": (lambda c: c["classifier"].update(out_features=10 ** 10), ["out_features", "10000000000", "1000"]),
    "classes-10": (lambda c: c["classifier"].update(out_features=10), ["out_features", "1000"]),
    "no-feature-mix": (lambda c: c.pop("feature_mix_layer"), ["feature_mix_layer"]),
    "no-final-expand": (lambda c: c.pop("final_expand_layer"), ["final_expand_layer"]),
    "layer-name": (lambda c: c["first_conv"].update(name="os.system"), ["first_conv.name", "os.system",
                                                                         "ConvLayer"]),
    "block-name": (lambda c: c["blocks"][3].update(name="os.system"), ["blocks[3].name", "os.system"]),
    "conv-name": (lambda c: _conv(c, 3).update(name="MBInvertedConvLayer2"), ["blocks[3]", "MBInvertedConvLayer2"]),
    "shortcut-name": (lambda c: c["blocks"][0]["shortcut"].update(name="Zero"), ["blocks[0].shortcut.name",
                                                                                 "IdentityLayer"]),
    "activation": (lambda c: _conv(c, 5).update(act_func="sigmoid"), ["blocks[5]", "act_func", "sigmoid"]),
    "activation-missing": (lambda c: c["first_conv"].pop("act_func"), ["first_conv.act_func", "left out",
                                                                        "h_swish"]),
    "se-off": (lambda c: _conv(c, 3).update(use_se=False), ["blocks[3]", "use_se", "true"]),
    "se-on": (lambda c: _conv(c, 1).update(use_se=True), ["blocks[1]", "use_se", "false"]),
    "mid-channels": (lambda c: _conv(c, 1).update(mid_channels=4096), ["mid_channels", "4096"]),
    "shortcut-dropped": (lambda c: c["blocks"][2].update(shortcut=None), ["shortcut", "stages"]),
    "shortcut-added": (lambda c: c["blocks"][1].update(shortcut=copy.deepcopy(c["blocks"][2]["shortcut"])),
                       ["blocks[1]", "shortcut"]),
    "stem-stride": (lambda c: c["first_conv"].update(stride=1), ["first_conv.stride", "2"]),
    "stem-kernel": (lambda c: c["first_conv"].update(kernel_size=7), ["first_conv.kernel_size", "3"]),
    "head-width": (lambda c: c["feature_mix_layer"].update(out_channels=2048), ["feature_mix_layer.out_channels",
                                                                                "1280"]),
    "head-in": (lambda c: c["classifier"].update(in_features=2048), ["classifier.in_features", "1280"]),
    "final-expand-bn": (lambda c: c["final_expand_layer"].update(use_bn=False), ["final_expand_layer.use_bn"]),
    "bias": (lambda c: c["feature_mix_layer"].update(bias=True), ["feature_mix_layer.bias"]),
    "groups": (lambda c: c["first_conv"].update(groups=3), ["first_conv.groups"]),
    "dilation": (lambda c: c["final_expand_layer"].update(dilation=2), ["final_expand_layer.dilation"]),
    "unknown-layer-field": (lambda c: c["first_conv"].update(padding=5), ["first_conv", "padding"]),
    "unknown-top-field": (lambda c: c.update(extra_layer={"name": "ConvLayer"}), ["extra_layer"]),
    "bn-eps": (lambda c: c["bn"].update(eps=0.5), ["bn.eps", "1e-05"]),
    "dropout": (lambda c: c["classifier"].update(dropout_rate=5), ["dropout_rate"]),
    "bool-for-int": (lambda c: _conv(c, 1).update(stride=True), ["blocks[1]", "stride"]),
    "identity-width": (lambda c: c["blocks"][0]["shortcut"].update(in_channels=[17]), ["blocks[0].shortcut"]),
}


@needs_data
@pytest.mark.parametrize("how", sorted(MUTATIONS))
def test_a_field_that_describes_another_network_is_refused(how, tmp_path):
    cfg = _cfg()
    mutate, words = MUTATIONS[how]
    mutate(cfg)
    with pytest.raises(SpaceError) as ei:
        _load(cfg, tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg and "net.config" in msg, msg
    for w in words:
        assert w in msg, (w, msg)


@needs_data
@pytest.mark.parametrize("how", ["stride-3", "feature-mix-act", "classes"])
def test_proxylessnas_fields_are_checked_too(how, tmp_path):
    cfg = _cfg(PROXYLESS)
    _load(cfg, tmp_path, 160)
    if how == "stride-3":
        _conv(cfg, 1)["stride"] = 3
    elif how == "feature-mix-act":
        cfg["feature_mix_layer"]["act_func"] = "h_swish"
    else:
        cfg["classifier"]["out_features"] = 10
    with pytest.raises(SpaceError):
        _load(cfg, tmp_path, 160)


@needs_data
def test_newer_ofa_spellings_and_training_fields_are_accepted(tmp_path):
    """OFA renamed MobileInvertedResidualBlock/mobile_inverted_conv/MBInvertedConvLayer to
    ResidualBlock/conv/MBConvLayer; dropout and batch-norm momentum are training settings."""
    cfg = _cfg()
    want = _load(cfg, tmp_path)
    for b in cfg["blocks"]:
        b["name"] = "ResidualBlock"
        b["conv"] = b.pop("mobile_inverted_conv")
        b["conv"]["name"] = "MBConvLayer"
    cfg["classifier"]["dropout_rate"] = 0.3
    cfg["bn"]["momentum"] = 0.01
    assert _load(cfg, tmp_path).canonical() == want.canonical()


@needs_data
def test_predict_and_export_refuse_in_one_line_and_keep_an_existing_export(tmp_path):
    cfg = _cfg()
    MUTATIONS["stride-3"][0](cfg)
    d = tmp_path / "net"
    d.mkdir()
    (d / "net.config").write_text(json.dumps(cfg))
    (d / "run.config").write_text(json.dumps({"image_size": 160}))
    out = tmp_path / "net.onnx"
    out.write_bytes(b"an earlier export")
    for args in (["predict", "--lut", "cpu-ort", "--arch", d / "net.config", "--no-speed-check"],
                 ["export", "--arch", d / "net.config", "--format", "onnx", "--out", out, "--random-weights"]):
        r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True,
                           text=True, timeout=300, cwd=ROOT)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 1 and len(lines) == 1 and "stride" in lines[0] and "Traceback" not in r.stderr, \
            r.stderr
    assert out.read_bytes() == b"an earlier export"
