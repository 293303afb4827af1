"""Values out of any plausible range are refused in one line, never a traceback or a normal-looking result (issue
24, items 5 and 6): device-spec bounds (batch size, runs, times, threads), OFA YAML counts of thousands of digits,
a LUT's calibration format, empty resolutions, absurd batch sizes and counts, journal entries (absurd counts,
keys of no block) naming the journal and --fresh, and OFA's official acc_predictor.pth against its sha256."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main
from ofa_profile.devices import DeviceError, load_device
from ofa_profile.timing import MAX_BATCH_SIZE, TIMING_LIMITS

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "examples" / "arch-r160.json"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def one_line_error(res, code=1):
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == code and len(lines) == 1 and lines[0].startswith("error: "), (res.exit_code, res.output)
    assert "Traceback" not in res.output
    return lines[0]


def _spec(tmp_path, **over):
    obj = json.loads((ROOT / "device_specs" / "cpu-ort.json").read_text())
    timing = over.pop("timing", {})
    obj.update(over)
    obj["timing"] = {**obj.get("timing", {}), **timing}
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.parametrize("over,field", [
    ({"batch_sizes": [10 ** 12]}, "batch_sizes/0"), ({"batch_sizes": [MAX_BATCH_SIZE + 1]}, "batch_sizes/0"),
    ({"timing": {"max_time_s": 1e308}}, "timing/max_time_s"), ({"timing": {"warmup_runs": 10 ** 12}}, "warmup_runs"),
    ({"timing": {"min_runs": 10 ** 9, "max_runs": 10 ** 9}}, "timing/m"), ({"timing": {"target_iqr_rel": 1e9}},
                                                                              "target_iqr_rel"),
    ({"num_threads": 10 ** 6}, "num_threads")])
def test_device_spec_bounds(tmp_path, over, field):
    p = _spec(tmp_path, **over)
    with pytest.raises(DeviceError) as ei:
        load_device(p)
    assert field in str(ei.value) and "\n" not in str(ei.value)
    one_line_error(run("measure", "--device", p, "--resolutions", "160", "--out", tmp_path / "l.json", "--quiet"))


def test_the_schema_states_the_code_s_bounds():
    schema = json.loads((ROOT / "ofa_profile" / "schemas" / "device.schema.json").read_text())
    t = schema["properties"]["timing"]["properties"]
    for k, (lo, hi) in TIMING_LIMITS.items():
        assert t[k]["maximum"] == hi and t[k].get("minimum", t[k].get("exclusiveMinimum")) == lo, k
    assert schema["properties"]["batch_sizes"]["items"]["maximum"] == MAX_BATCH_SIZE
    lut = json.loads((ROOT / "ofa_profile" / "schemas" / "lut.schema.json").read_text())
    assert lut["properties"]["batch_size"]["maximum"] == MAX_BATCH_SIZE


def test_batch_size_option_is_bounded(tmp_path):
    one_line_error(run("measure", "--device", "cpu-ort", "--batch-size", 10 ** 12, "--out", tmp_path / "l.json"), 2)


# -- OFA YAML ----------------------------------------------------------------------------------------------------

@pytest.fixture()
def yaml_dir(tmp_path):
    base = Path(os.environ.get("OFA_PROFILE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "reference"
    src = base / "ofa-note10-lut-w1.2"
    if not src.is_dir():
        pytest.skip("OFA's Note10 tables (shared data) are not here")
    d = tmp_path / "tables"
    shutil.copytree(src, d)
    return d


@pytest.mark.parametrize("count", ["1" * 5000, "0x" + "f" * 5000, str(10 ** 12)])
def test_yaml_counts_out_of_range_are_one_line(yaml_dir, tmp_path, count):
    t = sorted(yaml_dir.glob("*_lookup_table.yaml"))[0]
    lines = t.read_text().splitlines(keepends=True)
    i = next(n for n, ln in enumerate(lines) if ln.strip().startswith("count:"))
    lines[i] = lines[i].split("count:")[0] + f"count: {count}\n"
    t.write_text("".join(lines))
    one_line_error(run("lut", "validate", yaml_dir))
    one_line_error(run("lut", "import-ofa", yaml_dir, "--out", tmp_path / "x.json"))


# -- LUT fields --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lut_obj():
    return json.loads((ROOT / "lut" / "cpu-ort.json").read_text())


def _lut(tmp_path, obj):
    p = tmp_path / "l.json"
    p.write_text(json.dumps(obj))
    return p


def test_lut_validate_refuses_an_unknown_calibration_format(tmp_path, lut_obj):
    obj = json.loads(json.dumps(lut_obj))
    obj["calibration"]["format"] = "x"
    line = one_line_error(run("lut", "validate", _lut(tmp_path, obj)))
    assert "format 'x'" in line and "calibrate" in line


@pytest.mark.parametrize("change,words", [
    (lambda o: o.update(resolutions=[]), ["resolutions: []"]),
    (lambda o: o.update(batch_size=10 ** 30), ["batch_size"]),
    (lambda o: next(iter(o["entries"].values())).update(count=10 ** 40), ["count"])])
def test_absurd_lut_fields_are_refused_by_predict_and_validate(tmp_path, lut_obj, change, words):
    obj = json.loads(json.dumps(lut_obj))
    change(obj)
    p = _lut(tmp_path, obj)
    for args in (["predict", "--lut", p, "--arch", ARCH, "--no-speed-check"], ["lut", "validate", p]):
        line = one_line_error(run(*args))
        for w in words:
            assert w in line, line


# -- the journal -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry,words", [
    ({"key": None, "entry": {"median_ms": 0.1, "iqr_ms": 0.01, "count": 10 ** 30}}, ["count", "line 1"]),
    ({"key": "expanded_conv-input:1x1x1-output:1x1x1-expand:1-kernel:3-stride:1-idskip:0-se:0-hs:0",
      "entry": {"median_ms": 0.1, "iqr_ms": 0.01, "count": 5}}, ["no block of space"])])
def test_journal_entries_out_of_range_name_the_journal_and_fresh(tmp_path, entry, words):
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import JOURNAL_SUFFIX

    out = tmp_path / "cpu-ort.json"
    key = entry["key"] or next(iter(load_lut("cpu-ort").entries))
    j = out.with_name(out.name + JOURNAL_SUFFIX)
    j.write_text(json.dumps({"type": "entry", "key": key, "pass": 1, "entry": entry["entry"]}) + "\n")
    line = one_line_error(run("measure", "--device", "cpu-ort", "--resolutions", "160", "--out", out, "--quiet"))
    assert str(j) in line and "--fresh" in line, line
    for w in words:
        assert w in line, line


# -- OFA's official predictor ------------------------------------------------------------------------------------

def test_a_changed_official_predictor_is_refused(tmp_path):
    base = Path(os.environ.get("OFA_PROFILE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "reference"
    src = base / "ofa-acc-predictor.pth"
    if not src.is_file():
        pytest.skip("OFA's acc_predictor.pth (shared data) is not here")
    data = bytearray(src.read_bytes())
    data[-100] ^= 0x01                # a bit of the last layer's weights: still a loadable state dict
    p = tmp_path / "acc_predictor.pth"
    p.write_bytes(bytes(data))
    arch = tmp_path / "a.json"
    from ofa_profile.space import get_space
    arch.write_text(json.dumps(get_space("ofa-mbv3-w1.2").smallest(192).to_ofa()))
    line = one_line_error(run("predict-accuracy", "--arch", arch, "--space", "ofa-mbv3-w1.2", "--predictor", p))
    assert "sha256" in line and "official" in line
    ok = run("predict-accuracy", "--arch", arch, "--space", "ofa-mbv3-w1.2", "--predictor", src, "--json")
    assert ok.exit_code == 0, ok.output
