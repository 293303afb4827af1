"""Calibration end to end: real whole-net measurements with a real runtime, the fit stored in the LUT."""
import functools
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_profile.calibrate import FEATURE_NAMES, _arch_key, measure_subnets, sample_specs
from ofa_profile.devices import load_device
from ofa_profile.lut import load_lut
from ofa_profile.measure import make_profiler, measure_lut
from ofa_profile.space import SubnetSpec
from helpers import fast_spec, run_cli

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_calibrate_command_stores_a_plain_fit_and_reports_on_unseen_subnets(tmp_path):
    spec = fast_spec(tmp_path, "torch")
    lut_path = tmp_path / "t.json"
    measure_lut(load_device(spec), lut_path, [128, 132], progress=False)
    r = _cli("calibrate", "--device", spec, "--lut", lut_path, "--samples", 10, "--test-samples", 4, "-q", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n_fit"] == 10 and rep["n_test"] == 4 and rep["rounds"] == 2 and rep["n_extremes"] == 4
    c = rep["test_calibrated"]
    # the error per size third of the held-out subnets, and the space's extremes (fitted on), are reported
    assert [t["tercile"] for t in rep["test_by_size"]] == ["small", "middle", "large"]
    assert sum(t["n"] for t in rep["test_by_size"]) == 4
    assert sorted((x["subnet"], x["r"]) for x in rep["extremes"]) == [("largest", 128), ("largest", 132),
                                                                      ("smallest", 128), ("smallest", 132)]
    lut = load_lut(lut_path)
    cal = lut.calibration
    # the held-out figures, by hand from the stored samples (their measured times) and the stored fit
    held = [s for s in cal["samples"] if s["split"] == "test"]
    pred = [lut.predict_ms(SubnetSpec.from_ofa(s["arch"], space=lut.space)) for s in held]
    meas = [s["measured_ms"] for s in held]
    within = sum(abs(p / m - 1) <= 0.05 for p, m in zip(pred, meas)) / len(held)
    rmse = (sum((p - m) ** 2 for p, m in zip(pred, meas)) / len(held)) ** 0.5
    assert c["n"] == len(held) == 4 and c["within_5pct"] == pytest.approx(within)
    assert c["rmse_ms"] == pytest.approx(rmse, abs=1e-5) and rmse > 0     # stored figures: 5 decimals
    assert list(cal["feature_names"]) == list(FEATURE_NAMES) and len(cal["coef"]) == len(FEATURE_NAMES)
    assert all(isinstance(v, float) for v in cal["coef"])          # plain numbers, no pickle
    assert len(cal["samples"]) == 18 and {s["split"] for s in cal["samples"]} == {"fit", "test"}
    from ofa_profile.space import get_space
    fitted = [SubnetSpec.from_ofa(x["arch"]) for x in cal["samples"] if x["split"] == "fit"]
    sp = get_space(lut.space)
    assert all(e in fitted for r in (128, 132) for e in (sp.smallest(r), sp.largest(r)))
    for x in rep["extremes"]:      # the reported error is the stored calibration's, on the stored figure
        e = getattr(sp, x["subnet"])(x["r"])
        assert x["predicted_ms"] == pytest.approx(lut.predict_ms(e), abs=1e-4)
        m = [y["measured_ms"] for y in cal["samples"] if SubnetSpec.from_ofa(y["arch"]) == e]
        assert m == [pytest.approx(x["measured_ms"], abs=1e-4)]
    assert all(x["predicted_ms"] == pytest.approx(lut.predict_ms(SubnetSpec.from_ofa(x["arch"])), abs=1e-4)
               for x in held)
    r = _cli("calibrate", "--device", spec, "--lut", lut_path, "--samples", 10, "--test-samples", 4, "-q")
    assert r.returncode == 0, r.stderr
    assert "small third of the held-out subnets" in r.stdout and "smallest subnet at r=128 (fitted on)" in r.stdout
    assert not list(tmp_path.glob("*.calib-*.jsonl"))               # the journal is gone once stored
    s = sample_specs("ofa-mbv3-w1.0", 1, 99, [132])[0]
    assert lut.predict_ms(s) != lut.predict_ms(s, calibrated=False)
    (tmp_path / "arch.json").write_text(json.dumps(s.to_ofa()))
    p = run_cli("predict", "--lut", lut_path, "--arch", tmp_path / "arch.json", "--json")      # in this process
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
    assert "torn" not in journal.read_text()                          # the torn line is cut off, not kept
    recs = [json.loads(x) for x in journal.read_text().splitlines()[3:]]
    assert [r["round"] for r in recs] == [1, 1, 1]                   # only the missing pass was measured
    assert [r["arch"] for r in recs] == [_arch_key(s) for s in specs[::-1]]   # the second pass runs backwards
    assert got == [min(1e3, r["median_ms"]) for r in recs[::-1]] and all(0 < g < 1e3 for g in got)


@pytest.mark.slow
@pytest.mark.serial      # compares two timings: a quiet core
def test_refresh_measures_the_drift_since_calibration_and_scales_the_search(tmp_path):
    """pareto --refresh N re-measures N held-out calibration subnets and scales the latency model by
    now / then.  The stored figures are halved here, as if the device had run twice as fast when it was
    calibrated: the factor must come out twice that of the LUT as stored, and every predicted latency must be
    scaled by it.  The machine's speed drifts between measurements (10-20 % on a loaded one), so "twice" is
    checked as a ratio of factors measured back to back, with a margin equal to the drift measured between those
    two measurements of the same subnets, not as a fixed band."""
    from click.testing import CliRunner

    from ofa_profile.calibrate import calibrate_device, measure_drift, spread_over_size
    from ofa_profile.cli import main
    from ofa_profile.errors import OfaProfileError
    from ofa_profile.lut import save_lut
    from ofa_profile.space import SubnetSpec

    spec = fast_spec(tmp_path, "onnxruntime")
    dev = load_device(spec)
    lut_path = tmp_path / "o.json"
    measure_lut(dev, lut_path, [128], progress=False)
    with make_profiler(dev) as prof:
        calibrate_device(lut_path, prof, 10, 2, seed=0, progress=False, rounds=1)     # the fewest it fits on
    lut = load_lut(lut_path)
    assert lut.calibration["calibrated_utc"].endswith("Z")
    stored = load_lut(lut_path)
    cal = json.loads(lut_path.read_text())["calibration"]
    for s in cal["samples"]:
        s["measured_ms"] /= 2
    save_lut(lut.with_calibration(cal), lut_path)
    lut = load_lut(lut_path)
    with make_profiler(dev) as prof:
        d0 = measure_drift(stored, prof, 2, progress=False)      # the LUT as calibrated: about 1
        d = measure_drift(lut, prof, 2, progress=False)          # halved, measured right after
    held = spread_over_size([s for s in cal["samples"] if s["split"] == "test"], 2, lut)
    assert len(d.specs) == 2 and d.rounds == 2 and [s.to_ofa() for s in d.specs] == [s["arch"] for s in held]
    assert d.then_ms == tuple(s["measured_ms"] for s in held) and all(b > 0 for b in d.now_ms)
    assert d.factor == pytest.approx(statistics.median(b / a for a, b in zip(d.then_ms, d.now_ms)))
    noise = max(abs(b / a - 1) for a, b in zip(d0.now_ms, d.now_ms))
    assert abs(d.factor / (2 * d0.factor) - 1) <= noise + 1e-9, (d.as_dict(), d0.as_dict())

    base = ["pareto", "--lut", str(lut_path), "--verify-device", str(spec), "--budget", "1000ms", "--no-plot",
            "--effort", "fast", "--n-budgets", "3", "--out-dir", str(tmp_path / "out"), "--json"]
    res = CliRunner().invoke(main, base + ["--refresh", "2"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    f = obj["drift"]["factor"]
    assert obj["drift"]["n_subnets"] == 2 and "refresh" in res.stderr
    now = [s["now_ms"] for s in obj["drift"]["subnets"]]
    assert [s["then_ms"] for s in obj["drift"]["subnets"]] == pytest.approx(d.then_ms, abs=1e-5)
    assert f == pytest.approx(statistics.median(b / a for a, b in zip(d.then_ms, now)), abs=1e-4)
    noise = max(abs(b / a - 1) for a, b in zip(d0.now_ms, now))
    assert abs(f / (2 * d0.factor) - 1) <= noise + 1e-4, (obj["drift"], d0.as_dict())
    best = SubnetSpec.from_ofa(obj["best"]["arch"], space=lut.space)
    assert obj["best"]["latency_ms"] == pytest.approx(f * lut.predict_ms(best), rel=1e-4)
    assert all(p["latency_ms"] == pytest.approx(f * lut.predict_ms(SubnetSpec.from_ofa(p["arch"], space=lut.space)),
                                                rel=1e-4) for p in obj["frontier"])
    # without --refresh: no drift, plain calibrated predictions
    res = CliRunner().invoke(main, base)
    assert res.exit_code == 0 and json.loads(res.stdout)["drift"] is None

    # bad input: one line, exit 1 (usage errors 2)
    res = CliRunner().invoke(main, base + ["--refresh", "2", "--no-calibration"])
    assert res.exit_code == 1 and "--refresh needs a calibrated LUT" in res.stderr and "Traceback" not in res.output
    res = CliRunner().invoke(main, base + ["--refresh", "-1"])
    assert res.exit_code == 2 and "--refresh" in res.stderr
    plain = tmp_path / "plain.json"
    save_lut(lut.with_calibration(None), plain)
    res = CliRunner().invoke(main, [*base[:2], str(plain), *base[3:], "--refresh", "2"])
    assert res.exit_code == 1 and "is not calibrated" in res.stderr
    other = json.loads(lut_path.read_text())
    other["fingerprint"]["cpu_model"] = "another CPU"
    with make_profiler(dev) as prof, pytest.raises(OfaProfileError, match="measured on another setup"):
        measure_drift(load_lut_from(other, tmp_path / "other.json"), prof, 2, progress=False)


def load_lut_from(obj, path):
    path.write_text(json.dumps(obj))
    return load_lut(path)


def test_report_on_under_three_subnets_has_no_spearman_and_stays_json():
    from ofa_profile.calibrate import evaluate
    r = evaluate([10.0, 12.0], [10.5, 11.0])
    assert r.spearman is None and r.n == 2 and r.within_10pct == 1.0
    json.dumps(r.as_dict(), allow_nan=False)
    assert evaluate([1.0, 2.0, 3.0], [1.1, 2.2, 2.9]).spearman == pytest.approx(1.0)


def test_a_fit_never_extrapolates_to_a_non_positive_latency():
    """Few noisy subnets can give a ridge fit whose line crosses zero inside the space (here measured figures
    that fall as the LUT sum grows, as a shared machine can produce); the LUT would then refuse to store it.
    The fit shrinks harder until every extreme subnet has a positive latency."""
    import random

    from ofa_profile.calibrate import apply_calibration, fit_calibration
    from ofa_profile.space import get_space
    lut = load_lut("cpu-ort")
    sp = get_space(lut.space)
    rng = random.Random(0)
    specs = [sp.sample(rng, 160) for _ in range(12)]
    sums = [lut.lut_sum_ms(s) for s in specs]
    measured = [3 * max(sums) - 2.5 * v for v in sums]            # positive, and falling with the LUT sum
    cal = fit_calibration(specs, measured, lut)
    for r in (min(lut.resolutions), max(lut.resolutions)):
        for spec in (sp.smallest(r), sp.largest(r)):
            assert apply_calibration(cal, spec, lut) > 0


def test_corner_features_are_the_features_of_the_corner_subnets():
    """The fit's positivity check composes the corners' features from 4 subnets per resolution: the same rows as
    the features of each corner subnet built whole (all 2,048 of them here)."""
    import numpy as np

    from ofa_profile.calibrate import corner_specs, corners_design, features
    lut = load_lut("cpu-ort")
    specs = corner_specs(lut)
    assert len(specs) == 2 * 4 ** 5 and len({_arch_key(s) for s in specs}) == len(specs)
    from ofa_profile.calibration import extreme_specs        # what check_calibration holds positive: among them
    assert {_arch_key(s) for _, s in extreme_specs(lut)} <= {_arch_key(s) for s in specs}
    want = np.array([features(s, lut, lut.timed.classes) for s in specs])
    got = corners_design(lut)
    assert got.shape == want.shape
    assert np.allclose(np.sort(got, axis=0), np.sort(want, axis=0))
    assert {tuple(np.round(r, 9)) for r in got} == {tuple(np.round(r, 9)) for r in want}


def test_a_fit_with_a_negative_stage_coefficient_stays_positive_at_every_corner():
    """Figures that fall as one stage grows (a shared machine's noise can fit that) give a stage coefficient below
    zero; the line is then lowest where that stage is largest and the others smallest, a subnet the space's
    smallest and largest never test.  The fit shrinks until every such corner is positive too."""
    import random

    import numpy as np

    from ofa_profile.calibrate import apply_calibration, corner_specs, fit_calibration
    from ofa_profile.calibration import features
    from ofa_profile.space import get_space
    lut = load_lut("cpu-ort")
    sp = get_space(lut.space)
    names = list(FEATURE_NAMES)
    w = np.zeros(len(names))
    w[names.index("fixed_ms")] = 1.0
    for i in (1, 2, 4, 5):
        w[names.index(f"stage{i}_ms")] = 1.0
    w[names.index("stage3_ms")] = -4.0                         # the noisy stage
    corners = corner_specs(lut)
    truth = lambda s: float(np.dot(w, features(s, lut, lut.timed.classes)))  # noqa: E731
    rng = random.Random(1)
    specs = [sp.sample(rng, r) for r in (min(lut.resolutions), max(lut.resolutions)) for _ in range(10)]
    ends = [sp.smallest(r) for r in (min(lut.resolutions), max(lut.resolutions))] + \
        [sp.largest(r) for r in (min(lut.resolutions), max(lut.resolutions))]
    c = 0.05 - min(truth(s) for s in specs + ends)               # every fitted subnet and extreme positive
    assert min(truth(s) for s in corners) + c < 0               # but the line itself crosses zero at a corner
    cal = fit_calibration(specs, [truth(s) + c for s in specs], lut)
    assert min(apply_calibration(cal, s, lut) for s in corners) > 0


def _span(lut, specs, r):
    from ofa_profile.space import get_space
    sp = get_space(lut.space)
    lo, hi = lut.lut_sum_ms(sp.smallest(r)), lut.lut_sum_ms(sp.largest(r))
    return [(lut.lut_sum_ms(s) - lo) / (hi - lo) for s in specs if s.r == r]


def test_calibration_subnets_span_the_size_range_where_uniform_ones_do_not():
    """Uniformly drawn subnets pile up in the middle of the LUT-sum range and never come near the smallest or
    largest subnet (where the fit then extrapolates); the stratified draw covers the range evenly."""
    from ofa_profile.calibrate import sample_stratified
    lut = load_lut("cpu-ort")
    uni = _span(lut, sample_specs(lut.space, 60, 0, [160, 224]), 160)
    strat = sample_stratified(lut, 60, 0, [160, 224])
    pos = _span(lut, strat, 160)
    assert len(pos) == 30 and len({_arch_key(s) for s in strat}) == 60
    assert min(uni) > 0.1 and max(uni) < 0.9                     # what calibrate drew before
    assert min(pos) < 0.05 and max(pos) > 0.95
    thirds = [sum(a <= p < b for p in pos) for a, b in ((-1, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2))]
    assert all(9 <= t <= 11 for t in thirds), thirds
    assert sample_stratified(lut, 60, 0, [160, 224]) == strat     # seeded
    assert sample_stratified(lut, 60, 1, [160, 224]) != strat


def test_split_holds_out_subnets_of_every_size():
    from ofa_profile.calibrate import sample_stratified, split_fit_test
    lut = load_lut("cpu-ort")
    specs = sample_stratified(lut, 30, 3, [176])
    fit, test = split_fit_test(specs, 9, lut)
    assert len(test) == 9 and sorted(fit + test) == list(range(30))
    sizes = sorted(lut.lut_sum_ms(s) for s in specs)
    held = sorted(lut.lut_sum_ms(specs[i]) for i in test)
    assert held[0] <= sizes[10] and held[-1] >= sizes[-10]         # from the small third and from the large one


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       res=st.lists(st.sampled_from([128, 160, 196, 224]), min_size=1, max_size=3, unique=True))
def test_stratified_draw_gives_n_distinct_subnets_of_the_asked_resolutions(n, seed, res):
    from ofa_profile.calibrate import extreme_specs_at, sample_stratified
    lut = _shipped()
    ext = [s for _, s in extreme_specs_at(lut.space, res)]
    got = sample_stratified(lut, n, seed, res, exclude=ext)
    assert len(got) == n and len({_arch_key(s) for s in got}) == n
    assert {s.r for s in got} <= set(res) and not set(map(_arch_key, got)) & set(map(_arch_key, ext))
    counts = [sum(s.r == r for s in got) for r in res]
    assert max(counts) - min(counts) <= 1                          # the resolutions take turns


@functools.lru_cache(maxsize=1)
def _shipped():
    return load_lut("cpu-ort")


def test_calibrate_command_calibrates_a_lut_of_ofas_graph(tmp_path):
    """A LUT of OFA's graph flavour (`measure --graph ofa`) is calibrated on whole subnets of that graph: the
    command builds them as the LUT's blocks were built instead of refusing the LUT as another setup's."""
    spec = fast_spec(tmp_path, "onnxruntime")
    lut_path = tmp_path / "ofa-graph.json"
    measure_lut(load_device(spec), lut_path, [128], progress=False, graph="ofa")
    r = _cli("calibrate", "--device", spec, "--lut", lut_path, "--samples", 10, "--test-samples", 2, "--rounds", 1,
             "-q", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["timed"]["graph"] == "ofa" and rep["n_test"] == 2
    assert load_lut(lut_path).calibration["report"]["timed"]["graph"] == "ofa"


def test_whole_subnets_are_timed_for_the_specs_subnet_min_time_but_blocks_are_not():
    """A device's timing.subnet_min_time_s holds for whole subnets (what calibrate, bench and verify time) and not
    for LUT blocks, which stop by their own rules."""
    import dataclasses

    from ofa_profile.ops import subnet_ops
    from ofa_profile.space import get_space
    dev = load_device("cpu-ort")
    dev = dataclasses.replace(dev, timing=dataclasses.replace(dev.timing, warmup_runs=1, min_runs=5, max_runs=5,
                                                              subnet_min_time_s=0.3))
    spec = get_space(dev.space).smallest(128)
    with make_profiler(dev) as prof:
        block = prof.measure_op(subnet_ops(spec)[0], 0)
        whole = prof.measure_subnet(spec, 0)
    assert block.count == 5
    assert sum(whole.raw_ms) >= 0.3 * 1000 * 0.9 and whole.count > 5


def test_a_prediction_for_another_head_than_the_calibrations_says_how_to_calibrate_for_it(tmp_path):
    """predict and pareto with a head other than the one the calibration measured: one `note:` line on stderr
    that names both heads and the calibrate command for the shipped head; none for the calibration's own head.
    (The shipped cpu-ort LUT, calibrated on 1,000-class subnets, with a 10-class head op timed here added.)"""
    from ofa_profile.paths import lut_dir
    from ofa_profile.ops import subnet_ops
    from ofa_profile.space import get_space
    smallest = get_space("ofa-mbv3-w1.0").smallest(160)
    head = subnet_ops(smallest, classes=10)[-1]
    with make_profiler(load_device("cpu-ort")) as prof:
        m = prof.measure_op(head, 0)
    raw = json.loads((lut_dir() / "cpu-ort.json").read_text())
    assert raw["calibration"] and raw["calibration"].get("classes", 1000) == 1000 and head.key not in raw["entries"]
    raw["entries"][head.key] = {"median_ms": m.median_ms, "iqr_ms": m.iqr_ms, "count": m.count}
    lut = tmp_path / "cpu-ort-10.json"
    lut.write_text(json.dumps(raw))
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(smallest.to_ofa()))

    def cli(*args):
        p = subprocess.run([sys.executable, "-m", "ofa_profile", *args], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return [ln for ln in p.stderr.splitlines() if ln.startswith("note:")]

    notes = cli("predict", "--lut", str(lut), "--arch", str(arch), "--classes", "10", "--no-speed-check")
    assert len(notes) == 1 and "1000-class subnets" in notes[0] and "10-class head" in notes[0], notes
    assert "calibrate --device cpu-ort --lut" in notes[0] and "--classes 10" in notes[0]
    assert cli("predict", "--lut", str(lut), "--arch", str(arch), "--no-speed-check") == []
    notes = cli("pareto", "--budget", "20ms", "--lut", str(lut), "--classes", "10", "--no-plot", "--effort", "fast",
                "--no-speed-check")
    assert len(notes) == 1 and "--classes 10" in notes[0], notes
