"""Calibration end to end: real whole-net measurements with a real runtime, the fit stored in the LUT."""
import json
import subprocess
import sys
from pathlib import Path

from ofa_profile.calibrate import FEATURE_NAMES, _arch_key, measure_subnets, sample_specs
from ofa_profile.devices import load_device
from ofa_profile.lut import load_lut
from ofa_profile.measure import make_profiler, measure_lut
from test_measure import fast_spec

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_calibrate_command_stores_a_plain_fit_and_reports_on_unseen_subnets(tmp_path):
    spec = fast_spec(tmp_path, "torch")
    lut_path = tmp_path / "t.json"
    measure_lut(load_device(spec), lut_path, [128, 132], progress=False)
    r = _cli("calibrate", "--device", spec, "--lut", lut_path, "--samples", 10, "--test-samples", 4, "-q", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n_fit"] == 10 and rep["n_test"] == 4 and rep["rounds"] == 2
    c = rep["test_calibrated"]
    assert c["n"] == 4 and 0 <= c["within_5pct"] <= 1 and c["rmse_ms"] > 0
    lut = load_lut(lut_path)
    cal = lut.calibration
    assert list(cal["feature_names"]) == list(FEATURE_NAMES) and len(cal["coef"]) == len(FEATURE_NAMES)
    assert all(isinstance(v, float) for v in cal["coef"])          # plain numbers, no pickle
    assert len(cal["samples"]) == 14 and {s["split"] for s in cal["samples"]} == {"fit", "test"}
    assert not list(tmp_path.glob("*.calib-*.jsonl"))               # the journal is gone once stored
    s = sample_specs("ofa-mbv3-w1.0", 1, 99, [132])[0]
    assert lut.predict_ms(s) != lut.predict_ms(s, calibrated=False)
    (tmp_path / "arch.json").write_text(json.dumps(s.to_ofa()))
    p = _cli("predict", "--lut", lut_path, "--arch", tmp_path / "arch.json", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["calibrated"] is True


def test_measure_subnets_takes_the_lowest_pass_and_resumes_from_its_journal(tmp_path):
    dev = load_device(fast_spec(tmp_path, "onnxruntime"))
    specs = sample_specs("ofa-mbv3-w1.0", 3, 5, [128])
    journal = tmp_path / "j.jsonl"
    # a pass already done, as if killed before the second: the slow figures (a loaded machine) are kept
    # for the first pass, plus a torn line
    lines = [json.dumps({"arch": _arch_key(s), "round": 0, "median_ms": 1e3, "iqr_ms": 0, "count": 3}) for s in specs]
    journal.write_text("\n".join(lines) + "\n{\"arch\": \"torn")
    with make_profiler(dev) as prof:
        got = measure_subnets(prof, specs, journal, seed=0, progress=False, rounds=2)
    recs = [json.loads(x) for x in journal.read_text().splitlines()[4:]]
    assert [r["round"] for r in recs] == [1, 1, 1]                   # only the missing pass was measured
    assert [r["arch"] for r in recs] == [_arch_key(s) for s in specs[::-1]]   # the second pass runs backwards
    assert got == [min(1e3, r["median_ms"]) for r in recs[::-1]] and all(0 < g < 1e3 for g in got)
