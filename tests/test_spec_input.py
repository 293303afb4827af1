"""Subnet specs, OFA net.configs and device specs as users hand them: every malformed one is one line.

No silent coercion (``r: 160.5`` is not read as 160, ``true`` is not the integer 1), no NaN/Infinity/1e400,
no RecursionError from deeply nested JSON, no KeyError/TypeError from a net.config of the wrong shape, and a
device spec whose timing rules contradict each other (``min_runs`` > ``max_runs``) is refused on load.
A property test feeds generated JSON to ``ofa-profile predict --json`` (with the shipped cpu-ort LUT cut to two
resolutions).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile.cli import main
from ofa_profile.space import SpaceError, SubnetSpec, get_space

ROOT = Path(__file__).resolve().parents[1]


def loads_strict(text: str):
    """Parse JSON as other readers do: no NaN / Infinity."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)

SPACE = "ofa-mbv3-w1.0"
VALID = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 3], "r": 160}


@pytest.fixture(scope="module", autouse=True)
def _small_lut(tmp_path_factory):
    """The shipped cpu-ort LUT cut to r=160 and r=192 without raw times: loading it takes milliseconds, not the
    ~0.6 s of the full one, so the many cases below stay fast."""
    import dataclasses

    from ofa_profile.lut import load_lut, save_lut
    from ofa_profile.ops import ops_at_resolution

    global LUT
    lut = load_lut("cpu-ort")
    keys = {op.key for r in (160, 192) for op in ops_at_resolution(SPACE, r)}
    small = dataclasses.replace(lut, entries={k: dataclasses.replace(e, raw_ms=None) for k, e in lut.entries.items()
                                              if k in keys}, resolutions=(160, 192), calibration=None)
    LUT = tmp_path_factory.mktemp("lut") / "cpu-ort-small.json"
    save_lut(small, LUT)


LUT: Path


def _predict(arch: Path, *extra: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["predict", "--lut", str(LUT), "--arch", str(arch), "--json", *extra])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.stdout, r.stderr


def _refused(arch: Path, needle: str, *extra: str) -> str:
    code, out, err = _predict(arch, *extra)
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 1 and "Traceback" not in err, (code, out, err[-2000:])
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    return lines[0]


def test_valid_spec_is_predicted(tmp_path):
    p = tmp_path / "arch.json"
    p.write_text(json.dumps(VALID))
    code, out, err = _predict(p)
    assert code == 0, err
    assert loads_strict(out)["resolution"] == 160


@pytest.mark.parametrize("text,needle", [
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": 160.5}', "r=160.5 is not an integer"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": true}', "r=True is not an integer"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": "160"}', "r='160' is not an integer"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": [160, 192]}', "not one resolution"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": NaN}', "NaN"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": Infinity}', "Infinity"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": -Infinity}', "Infinity"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": 1e400}', "1e400"),
    ('{"ks": [NaN, 3], "e": @E@, "d": @D@, "r": 160}', "NaN"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": 160, "space": ["x"]}', "not a space name"),
    ('{"ks": @KS@, "e": @E@, "d": @D@, "r": 160, "space": 7}', "not a space name"),
    ("DEEP[", "nests deeper"),
    ('DEEP{"a":', "nests deeper"),
    ('{"ks": [3, 3], "ks": @KS@, "e": @E@, "d": @D@, "r": 160}', 'the key "ks" twice'),   # which one counts?
])
def test_malformed_specs_are_one_line(tmp_path, text, needle):
    text = text.replace("@KS@", json.dumps(VALID["ks"])).replace("@E@", json.dumps(VALID["e"])) \
        .replace("@D@", json.dumps(VALID["d"]))
    if text.startswith("DEEP"):
        opener = text[4:]
        closer = "]" if opener == "[" else "1}"
        text = opener * 100_000 + "1" * (opener == "[") + closer * 100_000
    p = tmp_path / "arch.json"
    p.write_text(text)
    _refused(p, needle)


def test_spec_from_python_objects_is_strict():
    sp = get_space(SPACE)
    assert SubnetSpec.from_ofa({**VALID, "r": 160.0}, sp).r == 160          # an integral float is an integer
    for bad in (160.5, True, "160", None, float("nan"), float("inf"), [160, 192], {"r": 1}):
        with pytest.raises(SpaceError):
            SubnetSpec.from_ofa({**VALID, "r": bad}, sp)


# -- OFA net.config ----------------------------------------------------------------------------------------

def _net_config(spec: SubnetSpec) -> dict:
    """A MobileNetV3 net.config as OFA writes it for ``spec`` (every field of OFA's layers)."""
    sp = spec.space_def

    def conv(cin: int, cout: int, k: int, e: int, stride: int, act: str = "relu", se: bool = False) -> dict:
        return {"name": "MBInvertedConvLayer", "in_channels": cin, "out_channels": cout, "kernel_size": k,
                "stride": stride, "expand_ratio": e, "mid_channels": None, "act_func": act, "use_se": se}

    def ident(w: int) -> dict:
        return {"name": "IdentityLayer", "in_channels": [w], "out_channels": [w], "use_bn": False, "act_func": None,
                "dropout_rate": 0, "ops_order": "weight_bn_act"}

    def layer(cin: int, cout: int, k: int, stride: int, use_bn: bool) -> dict:
        return {"name": "ConvLayer", "kernel_size": k, "stride": stride, "dilation": 1, "groups": 1, "bias": False,
                "has_shuffle": False, "in_channels": cin, "out_channels": cout, "use_bn": use_bn,
                "act_func": "h_swish", "dropout_rate": 0, "ops_order": "weight_bn_act"}

    blocks = [{"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv(16, 16, 3, 1, 1),
               "shortcut": ident(16)}]
    for s in range(sp.n_stages):
        cin = sp.stage_in_channels(s)
        st = sp.stages[s]
        for b in range(spec.d[s]):
            i = s * sp.max_depth + b
            blocks.append({"name": "MobileInvertedResidualBlock",
                           "mobile_inverted_conv": conv(cin if b == 0 else st.width, st.width, spec.ks[i], spec.e[i],
                                                        st.stride if b == 0 else 1, st.act, st.se),
                           "shortcut": None if b == 0 else ident(st.width)})
    return {"name": "MobileNetV3", "bn": {"momentum": 0.1, "eps": 1e-5},
            "first_conv": layer(3, 16, 3, 2, True), "blocks": blocks,
            "final_expand_layer": layer(sp.stages[-1].width, sp.final_expand_ch, 1, 1, True),
            "feature_mix_layer": layer(sp.final_expand_ch, sp.feature_mix_ch, 1, 1, False),
            "classifier": {"name": "LinearLayer", "in_features": sp.feature_mix_ch, "out_features": 1000,
                           "bias": True, "use_bn": False, "act_func": None, "dropout_rate": 0.1,
                           "ops_order": "weight_bn_act"}}


def _mutate(cfg: dict, how: str) -> dict:
    c = copy.deepcopy(cfg)
    if how == "blocks-not-a-list":
        c["blocks"] = {"0": c["blocks"][0]}
    elif how == "block-is-a-string":
        c["blocks"][3] = "MobileInvertedResidualBlock"
    elif how == "conv-is-a-list":
        c["blocks"][3]["mobile_inverted_conv"] = [3, 4]
    elif how == "no-kernel-size":
        del c["blocks"][2]["mobile_inverted_conv"]["kernel_size"]
    elif how == "expand-ratio-string":
        c["blocks"][2]["mobile_inverted_conv"]["expand_ratio"] = "six"
    elif how == "expand-ratio-null":
        c["blocks"][4]["mobile_inverted_conv"]["expand_ratio"] = None
    elif how == "kernel-size-fraction":
        c["blocks"][2]["mobile_inverted_conv"]["kernel_size"] = 3.5
    elif how == "width-missing":
        del c["blocks"][1]["mobile_inverted_conv"]["out_channels"]
    elif how == "stage-too-deep":
        last = c["blocks"][-1]
        c["blocks"] += [copy.deepcopy(last) for _ in range(3)]
    elif how == "wrong-layer-kind":
        c["blocks"][5]["mobile_inverted_conv"]["name"] = "ConvLayer"
    return c


NET_CONFIG_CASES = ["blocks-not-a-list", "block-is-a-string", "conv-is-a-list", "no-kernel-size",
                    "expand-ratio-string", "expand-ratio-null", "kernel-size-fraction", "width-missing",
                    "stage-too-deep", "wrong-layer-kind"]      # each a KeyError/TypeError/silent misread before


def test_generated_net_config_loads(tmp_path):
    spec = SubnetSpec.from_ofa(VALID, SPACE)
    d = tmp_path / "net"
    d.mkdir()
    (d / "net.config").write_text(json.dumps(_net_config(spec)))
    (d / "run.config").write_text(json.dumps({"image_size": 160}))
    assert SubnetSpec.load(d / "net.config").canonical() == spec.canonical()
    code, out, err = _predict(d / "net.config")
    assert code == 0 and loads_strict(out)["resolution"] == 160, err


@pytest.mark.parametrize("how", NET_CONFIG_CASES)
def test_malformed_net_configs_are_one_line(tmp_path, how):
    spec = SubnetSpec.from_ofa(VALID, SPACE)
    d = tmp_path / "net"
    d.mkdir()
    (d / "net.config").write_text(json.dumps(_mutate(_net_config(spec), how)))
    (d / "run.config").write_text(json.dumps({"image_size": 160}))
    _refused(d / "net.config", "net.config")


@pytest.mark.parametrize("run_config,needle", [
    ('{"image_size": "big"}', "image_size='big' is not an integer"),
    ('{"image_size": 160.5}', "image_size=160.5 is not an integer"),
    ('{"image_size": true}', "image_size=True is not an integer"),
    ('{"image_size": [128, 160]}', "is not an integer"),
    ('{"image_size": NaN}', "NaN"),
    ('{"image_size": 1e400}', "1e400"),
    ('{"image_size": 160', "not valid JSON"),
])
def test_net_config_with_a_bad_run_config_is_one_line(tmp_path, run_config, needle):
    spec = SubnetSpec.from_ofa(VALID, SPACE)
    d = tmp_path / "net"
    d.mkdir()
    (d / "net.config").write_text(json.dumps(_net_config(spec)))
    (d / "run.config").write_text(run_config)
    line = _refused(d / "net.config", needle)
    assert "run.config" in line
    # --resolution overrides the run.config, so the net.config is still usable
    code, out, err = _predict(d / "net.config", "--resolution", "192")
    assert code == 0 and loads_strict(out)["resolution"] == 192, err


# -- device specs ------------------------------------------------------------------------------------------

def _device(tmp_path: Path, **timing) -> Path:
    spec = json.loads((ROOT / "device_specs" / "cpu-ort.json").read_text())
    spec["timing"] = timing
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(spec))
    return p


def _measure_refused(tmp_path: Path, device: Path, needle: str) -> None:
    r = CliRunner().invoke(main, ["measure", "--device", str(device), "--out", str(tmp_path / "lut.json"), "-q"])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.stderr, (r.exit_code, r.stderr[-2000:])
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert not (tmp_path / "lut.json").exists()


@pytest.mark.parametrize("timing,needle", [
    ({"min_runs": 50, "max_runs": 10}, "min_runs 50 > max_runs 10"),
    ({"max_runs": 10}, "min_runs 30 (the default) > max_runs 10"),
    ({"min_runs": 500}, "min_runs 500 > max_runs 200 (the default)"),
])
def test_device_spec_min_runs_above_max_runs_is_refused(tmp_path, timing, needle):
    from ofa_profile.devices import DeviceError, load_device

    p = _device(tmp_path, **timing)
    with pytest.raises(DeviceError, match="invalid at timing"):
        load_device(p)
    _measure_refused(tmp_path, p, needle)


@pytest.mark.parametrize("pairing", [{"runtime": "torch", "transport": "adb"},
                                     {"runtime": "tflite-benchmark", "transport": "local"},
                                     {"runtime": "torch-cuda", "transport": "ssh", "ssh": {"host": "board"}}])
def test_device_spec_with_a_runtime_its_transport_cannot_run_is_refused(tmp_path, pairing):
    spec = json.loads((ROOT / "device_specs" / "cpu-ort.json").read_text())
    p = tmp_path / "dev.json"
    p.write_text(json.dumps({**spec, **pairing}))
    _measure_refused(tmp_path, p, f"runtime {pairing['runtime']} over transport {pairing['transport']}")


@pytest.mark.parametrize("text,needle", [
    ("[" * 100_000 + "]" * 100_000, "nests deeper"),
    ('{"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "x", '
     '"runtime": "onnxruntime", "transport": "local", "timing": {"max_time_s": NaN}}', "NaN"),
    ('{"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "x", '
     '"runtime": "onnxruntime", "transport": "local", "timing": {"max_time_s": 1e400}}', "1e400"),
    ('{"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "x", '
     '"runtime": "onnxruntime", "transport": "local", "batch_sizes": [1, 1]}', "batch_sizes"),
])
def test_malformed_device_specs_are_one_line(tmp_path, text, needle):
    p = tmp_path / "dev.json"
    p.write_text(text)
    _measure_refused(tmp_path, p, needle)


# -- property: generated JSON as a spec file ----------------------------------------------------------------

_num = (st.integers(-3, 300) | st.sampled_from([3, 4, 5, 6, 7, 160, 224, 3.0, 3.5, 160.5, True, False, 10**20])
        | st.floats(allow_nan=True, allow_infinity=True))
_leaf = st.none() | _num | st.text(max_size=5)
_json = st.recursive(_leaf, lambda c: st.lists(c, max_size=5) | st.dictionaries(
    st.sampled_from(["ks", "e", "d", "r", "space", "arch", "image_size", "blocks", "first_conv", "x"]), c, max_size=5),
    max_leaves=30)
_near_spec = st.fixed_dictionaries(
    {"ks": st.lists(_num, min_size=19, max_size=21), "e": st.lists(_num, min_size=19, max_size=21),
     "d": st.lists(_num, min_size=4, max_size=6), "r": _num | st.lists(_num, max_size=2)},
    optional={"space": st.sampled_from([SPACE, "compofa-mbv3-w1.0", "nope", 3, None]), "image_size": _num})


_one_field_off = st.builds(lambda k, v, i: {**VALID, k: (v if i is None else
                                                        [*VALID[k][:i], v, *VALID[k][i + 1:]] if k != "r" else v)},
                           st.sampled_from(["ks", "e", "d", "r"]), _num | _json, st.none() | st.integers(0, 4))


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=_json | _near_spec | _near_spec.map(lambda s: {"arch": s}) | _one_field_off,
       deep=st.sampled_from([0, 0, 0, 200]))
def test_property_generated_specs_exit_0_1_or_2_without_traceback(tmp_path, value, deep):
    text = json.dumps(value)               # NaN / Infinity written as the tokens Python's json writes
    text = "[" * deep + text + "]" * deep
    p = tmp_path / "gen.json"
    p.write_text(text)
    code, out, err = _predict(p)
    assert code in (0, 1, 2), (code, err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out
    if code == 0:
        res = loads_strict(out)                       # strict JSON: no NaN / Infinity
        assert res["resolution"] in get_space(res["space"]).resolutions
    else:
        assert out == "" and len(err.strip().splitlines()) == 1, err[-2000:]
