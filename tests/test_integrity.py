"""Integrity of what users hand us (issue 15, sections 4-5): LUT coverage, partial OFA tables, calibrations,
adapters and accuracy predictors checked on load, malformed and deeply nested JSON, NaN in CSVs, fits that
produce unusable numbers, strict --json output, and --refresh on an uncalibrated LUT.  Every failure is one
line `error: ...` and exit 1, never a traceback."""
import csv
import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.accuracy import PREDICTOR_FORMAT, load_accuracy_predictor, read_accuracy_csv
from ofa_profile.adapt import ADAPTER_FORMAT, load_adapter, read_latency_csv
from ofa_profile.cli import main
from ofa_profile.errors import OfaProfileError
from ofa_profile.lut import _keys_at, load_lut
from ofa_profile.space import get_space

ROOT = Path(__file__).resolve().parents[1]
W10 = "ofa-mbv3-w1.0"
DEEP = "[" * 100000 + "]" * 100000


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(res, *fragments):
    assert res.exit_code == 1, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = res.stderr.strip().splitlines()   # progress logs may come first; the error is one line, the last
    err = lines[-1] if lines else ""
    assert err.startswith("error: ") and sum(x.startswith("error") for x in lines) == 1, res.stderr
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in err, (f, err)
    return err


def _no_constant(name):
    raise AssertionError(f"{name} in JSON output")


def strict_loads(text):
    return json.loads(text, parse_constant=_no_constant)


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def cpu_ort():
    return json.loads((ROOT / "lut" / "cpu-ort.json").read_text())


def _small(cpu_ort, r=160, calibration=False):
    """The shipped cpu-ort LUT cut to one resolution (small and fast to load)."""
    obj = json.loads(json.dumps(cpu_ort))
    obj["entries"] = {k: {f: v for f, v in obj["entries"][k].items() if f != "raw_ms"} for k in _keys_at(W10, r)}
    obj["resolutions"] = [r]
    if not calibration:
        obj["calibration"] = None
    return obj


@pytest.fixture(scope="module")
def small_lut(cpu_ort, tmp_path_factory):
    return write_json(tmp_path_factory.mktemp("lut") / "small.json", _small(cpu_ort))


@pytest.fixture(scope="module")
def arch_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("arch")
    sp = get_space(W10)
    return {"smallest": write_json(d / "s.json", sp.smallest(160).to_ofa()),
            "largest": write_json(d / "l.json", sp.largest(160).to_ofa())}


# -- 4: LUT coverage ------------------------------------------------------------------------------------

def test_lut_validate_names_the_missing_keys_of_a_listed_resolution(cpu_ort, tmp_path):
    obj = _small(cpu_ort)
    keys = _keys_at(W10, 160)
    cut = [keys[5], keys[17], keys[30], keys[41], keys[60]]
    for k in cut:
        del obj["entries"][k]
    p = write_json(tmp_path / "holes.json", obj)
    err = assert_one_line_error(run("lut", "validate", p), "r=160", "5 key(s) missing", cut[0], "and 2 more")
    assert str(p) in err
    # the full one-resolution LUT is ok
    res = run("lut", "validate", write_json(tmp_path / "ok.json", _small(cpu_ort)))
    assert res.exit_code == 0 and res.stdout.startswith("ok: "), res.output


@pytest.fixture
def half_tables(shared_data, tmp_path):
    src = shared_data / "reference" / "ofa-note10-lut-w1.2"
    if not src.is_dir():
        pytest.skip("OFA's Note10 LUT is absent from the reference data")
    d = tmp_path / "tables"
    shutil.copytree(src, d)
    t = d / "192_lookup_table.yaml"
    lines = t.read_text().splitlines(keepends=True)   # 4 lines per key: the first half of the keys
    t.write_text("".join(lines[: len(lines) // 8 * 4]))
    return d


def test_import_of_a_half_table_is_refused_unless_allow_partial_then_recorded_partial(half_tables, tmp_path):
    out = tmp_path / "note10.json"
    assert_one_line_error(run("lut", "import-ofa", half_tables, "--out", out), "192_lookup_table lacks",
                          "--allow-partial")
    assert not out.exists()
    assert_one_line_error(run("lut", "validate", half_tables), "192_lookup_table lacks")
    res = run("lut", "import-ofa", half_tables, "--out", out, "--allow-partial", "--json")
    assert res.exit_code == 0, res.output
    summary = strict_loads(res.stdout)
    assert summary["resolutions"] == [160, 176, 208, 224] and int(summary["partial_resolutions"]["192"]) > 0
    lut = load_lut(out)
    assert 192 not in lut.resolutions and lut.coverage()[192] and 192 in lut.resolution_entries
    assert lut.provenance["partial_resolutions"]["192"]["missing_keys"] == len(lut.coverage()[192])
    info = strict_loads(run("lut", "info", out, "--json").stdout)
    assert info["coverage"]["partial_resolutions"] == {"192": len(lut.coverage()[192])}
    assert run("lut", "validate", out).exit_code == 0
    sp = get_space("ofa-mbv3-w1.2")
    arch = write_json(tmp_path / "a.json", sp.largest(192).to_ofa())
    assert_one_line_error(run("predict", "--lut", out, "--arch", arch), "lacks", "r=192", lut.coverage()[192][0])
    assert run("predict", "--lut", out, "--arch", arch, "--resolution", "160").exit_code == 0


# -- 4: calibrations, adapters and predictors checked on load ---------------------------------------------

CALIBRATION_CASES = {
    "intercept-minus-1000": (lambda c: c.update(intercept=-1000.0), "predicts -"),
    "coef-huge-negative": (lambda c: c.update(coef=[-1e9] * len(c["coef"])), "predicts -"),
    "coef-short": (lambda c: c.update(coef=c["coef"][:3]), "'coef' is not a list of 8"),
    "coef-strings": (lambda c: c.update(coef=[str(x) for x in c["coef"]]), "'coef' is not a list of 8"),
    "scale-zero": (lambda c: c.update(feature_scale=[0.0] * 8), "feature_scale"),
    "intercept-missing": (lambda c: c.pop("intercept"), "intercept=None"),
    "samples-garbage": (lambda c: c.update(samples=[{"arch": [[1]], "measured_ms": 1.0, "split": "test"}]), "samples[0]"),
    "samples-not-list": (lambda c: c.update(samples=5), "'samples' is a number, not a list"),
    "report-list": (lambda c: c.update(report=[1]), "'report' is a list, not an object"),
}


@pytest.mark.parametrize("case", list(CALIBRATION_CASES))
def test_calibration_predicting_nonsense_or_malformed_is_refused_on_load(case, cpu_ort, arch_files, tmp_path):
    intact = load_lut(write_json(tmp_path / "intact.json", _small(cpu_ort, calibration=True)))
    assert intact.calibration and intact.predict_ms(get_space(W10).smallest(160)) > 0
    obj = _small(cpu_ort, calibration=True)
    change, frag = CALIBRATION_CASES[case]
    change(obj["calibration"])
    p = write_json(tmp_path / "cal.json", obj)
    assert_one_line_error(run("predict", "--lut", p, "--arch", arch_files["smallest"]), str(p), frag)
    assert_one_line_error(run("lut", "validate", p), frag)


def adapter_obj(**kw):
    obj = {"format": ADAPTER_FORMAT, "version": 1, "device": "gpu-x", "space": W10,
           "feature_names": ["n_blocks", "pw_macs_m"], "coef": [0.1, 0.01], "intercept_ms": 0.5, "prior": None,
           "info": {"n_fit": 10}}
    obj.update(kw)
    return obj


def test_adapter_with_huge_negative_coefficients_is_refused(small_lut, tmp_path):
    p = write_json(tmp_path / "neg.adapter.json", adapter_obj(coef=[1.0, -1e6]))
    with pytest.raises(OfaProfileError, match="predicts -"):
        load_adapter(p)
    assert_one_line_error(run("pareto", "--budget", "20ms", "--adapter", p, "--out-dir", tmp_path, "--no-plot",
                              "--effort", "fast", "--n-budgets", "2"), str(p), "predicts -", "smallest")
    ok = write_json(tmp_path / "ok.adapter.json", adapter_obj())
    assert load_adapter(ok).predict_ms([get_space(W10).smallest(160)])[0] > 0


ADAPTER_CASES = {
    "coef-strings": adapter_obj(coef=["0.1", "0.01"]),
    "coef-short": adapter_obj(coef=[0.1]),
    "coef-nested": adapter_obj(coef=[[0.1], {"a": 1}]),
    "intercept-missing": {k: v for k, v in adapter_obj().items() if k != "intercept_ms"},
    "intercept-string": adapter_obj(intercept_ms="0.5"),
    "feature-names-string": adapter_obj(feature_names="n_blocks"),
    "feature-names-nested": adapter_obj(feature_names=[["n_blocks"], "pw_macs_m"]),
    "device-number": adapter_obj(device=7),
    "space-list": adapter_obj(space=["x"]),
    "info-list": adapter_obj(info=[1, 2]),
    "prior-number": adapter_obj(prior=3),
    "empty-object": {},
    "not-object": [1, 2, 3],
}
ADAPTER_TEXT_CASES = {"nan": json.dumps(adapter_obj()).replace("0.5", "NaN"), "overflow":
                      json.dumps(adapter_obj()).replace("0.5", "1e400"), "deep": DEEP}


@pytest.mark.parametrize("case", list(ADAPTER_CASES) + list(ADAPTER_TEXT_CASES))
def test_malformed_adapter_is_one_line(case, tmp_path):
    p = tmp_path / "bad.adapter.json"
    p.write_text(ADAPTER_TEXT_CASES[case] if case in ADAPTER_TEXT_CASES else json.dumps(ADAPTER_CASES[case]))
    with pytest.raises(OfaProfileError) as ei:
        load_adapter(p)
    assert len(str(ei.value).splitlines()) == 1 and str(p) in str(ei.value)
    assert_one_line_error(run("pareto", "--budget", "20ms", "--adapter", p, "--out-dir", tmp_path, "--no-plot",
                              "--effort", "fast", "--n-budgets", "2"), str(p))


def _f():
    from ofa_profile.accuracy import encode
    sp = get_space(W10)
    return encode([sp.smallest(160)], "onehot-depth-r").shape[1]


def predictor_obj(**kw):
    f = _f()
    obj = {"format": PREDICTOR_FORMAT, "version": 1, "space": W10, "encoding": "onehot-depth-r", "model": "ridge+gbm",
           "trained_resolutions": [160], "info": {"n_train": 20},
           "components": [{"type": "linear", "coef": [0.001] * f, "intercept": 0.7},
                          {"type": "trees", "feature": [[0, -1, -1]], "threshold": [[0.5, 0.0, 0.0]],
                           "left": [[1, 0, 0]], "right": [[2, 0, 0]], "value": [[0.0, 0.01, -0.01]], "init": 0.0,
                           "learning_rate": 1.0, "max_depth": 1},
                          {"type": "mlp", "activation": "relu", "layers": [[[[0.0]] * f, [0.0]], [[[0.0]], [0.0]]],
                           "x_mean": [0.0] * f, "x_scale": [1.0] * f, "y_mean": 0.0, "y_scale": 1.0}]}
    obj.update(kw)
    return obj


def _comp(i, **kw):
    obj = predictor_obj()
    obj["components"][i].update(kw)
    return obj


PREDICTOR_CASES = {
    "no-components": {k: v for k, v in predictor_obj().items() if k != "components"},
    "empty-components": predictor_obj(components=[]),
    "components-string": predictor_obj(components="ridge"),
    "component-number": predictor_obj(components=[5]),
    "component-unknown-type": predictor_obj(components=[{"type": "forest"}]),
    "component-type-list": predictor_obj(components=[{"type": ["linear"]}]),
    "coef-wrong-length": _comp(0, coef=[0.1, 0.2, 0.3]),
    "coef-missing": predictor_obj(components=[{"type": "linear", "intercept": 0.7}]),
    "coef-strings": _comp(0, coef=["0.001"] * _f()),
    "coef-nulls": _comp(0, coef=[None] * _f()),
    "coef-nested-garbage": _comp(0, coef=[[1, [2]], {"a": 1}]),
    "intercept-string": _comp(0, intercept="0.7"),
    "trees-misshaped": _comp(1, threshold=[[0.5, 0.0]]),
    "trees-node-out-of-range": _comp(1, left=[[99, 0, 0]]),
    "trees-feature-out-of-range": _comp(1, feature=[[10 ** 6, -1, -1]]),
    "trees-huge-depth": _comp(1, max_depth=10 ** 12),
    "trees-flat": _comp(1, feature=[0, -1, -1]),
    "mlp-wrong-input-width": _comp(2, layers=[[[[0.0]] * 3, [0.0]], [[[0.0]], [0.0]]]),
    "mlp-layer-not-pair": _comp(2, layers=[[1, 2, 3]]),
    "mlp-two-outputs": _comp(2, layers=[[[[0.0, 0.0]] * _f(), [0.0, 0.0]]]),
    "mlp-zero-scale": _comp(2, x_scale=[0.0] * _f()),
    "space-number": predictor_obj(space=5),
    "space-unknown": predictor_obj(space="resnet"),
    "encoding-list": predictor_obj(encoding=["onehot-depth-r"]),
    "trained-resolutions-strings": predictor_obj(trained_resolutions=["160"]),
    "trained-resolutions-nested": predictor_obj(trained_resolutions=[[160]]),
    "info-list": predictor_obj(info=[]),
    "version-string": predictor_obj(version="1"),
    "accuracy-above-one": _comp(0, intercept=5.0),
    "accuracy-negative": _comp(0, intercept=-3.0),
    "empty-object": {},
    "not-object": [],
}
PREDICTOR_TEXT_CASES = {"nan": json.dumps(predictor_obj()).replace('"intercept": 0.7', '"intercept": NaN'),
                        "infinity": json.dumps(predictor_obj()).replace('"init": 0.0', '"init": -Infinity'),
                        "overflow": json.dumps(predictor_obj()).replace('"intercept": 0.7', '"intercept": 1e400'),
                        "deep": DEEP, "deep-objects": '{"a":' * 100000 + "1" + "}" * 100000}


def _write_predictor(p, case):
    if case in PREDICTOR_TEXT_CASES:
        p.write_text(PREDICTOR_TEXT_CASES[case])
    else:
        p.write_text(json.dumps(PREDICTOR_CASES[case]))
    return p


@pytest.mark.parametrize("case", list(PREDICTOR_CASES) + list(PREDICTOR_TEXT_CASES))
def test_malformed_predictor_is_one_line(case, small_lut, tmp_path):
    ok = load_accuracy_predictor(write_json(tmp_path / "ok.json", predictor_obj()))  # the intact one loads
    assert len(ok.components) == 3 and 0 < ok.predict_one(get_space(W10).largest(160)) < 1
    p = _write_predictor(tmp_path / "bad.json", case)
    with pytest.raises(OfaProfileError) as ei:
        load_accuracy_predictor(p)
    assert len(str(ei.value).splitlines()) == 1 and str(p) in str(ei.value)
    assert_one_line_error(run("pareto", "--budget", "20ms", "--lut", small_lut, "--predictor", p, "--out-dir",
                              tmp_path, "--no-plot", "--effort", "fast", "--n-budgets", "2"), str(p))
    assert not list(tmp_path.glob("pareto-*"))


@pytest.mark.parametrize("case", ["no-components", "accuracy-above-one", "deep", "nan"])
def test_malformed_predictor_is_one_line_in_plot_frontier(case, small_lut, tmp_path):
    p = _write_predictor(tmp_path / "bad.json", case)
    assert_one_line_error(run("plot", "frontier", "--lut", small_lut, "--predictor", p, "--out", tmp_path / "f.png"),
                          str(p))
    assert not (tmp_path / "f.png").exists()


# -- 5: deep nesting, NaN in CSVs, unusable fits ------------------------------------------------------------

def test_deeply_nested_json_as_a_lut_is_one_line(arch_files, cpu_ort, tmp_path):
    p = tmp_path / "deep.json"
    p.write_text(DEEP)
    assert_one_line_error(run("lut", "validate", p), str(p), "nests deeper")
    assert_one_line_error(run("predict", "--lut", p, "--arch", arch_files["smallest"]), str(p), "nests deeper")
    assert_one_line_error(run("lut", "info", p), "nests deeper")
    q = tmp_path / "deep-objects.json"
    q.write_text('{"format": "ofa-profile-lut", "x": ' + '{"a":' * 100000 + "1" + "}" * 100000 + "}")
    assert_one_line_error(run("lut", "validate", q), "nests deeper")
    # deep but under the limit (free-form fingerprint): loads, validates against the schema, prints strict JSON
    obj = _small(cpu_ort)
    node = obj["fingerprint"]["nested"] = {}
    for _ in range(55):
        node["a"] = {}
        node = node["a"]
    ok = write_json(tmp_path / "deep-ok.json", obj)
    assert run("lut", "validate", ok).exit_code == 0
    res = run("lut", "info", ok, "--json")
    assert res.exit_code == 0 and strict_loads(res.stdout)["entries"] == len(obj["entries"])


def _specs(n=30, r=(160,), seed=0):
    sp = get_space(W10)
    rng = random.Random(seed)
    return [sp.sample(rng, resolution=list(r)) for _ in range(n)]


def _accuracy_csv(path, accuracies, specs=None):
    specs = specs or _specs(len(accuracies))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_size", "d", "ks", "e", "accuracy"])
        for s, a in zip(specs, accuracies):
            w.writerow([s.r, json.dumps(list(s.d)), json.dumps(list(s.ks)), json.dumps(list(s.e)), a])
    return path


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN", "1e400", "-0.3"])
def test_nan_or_junk_in_an_accuracy_csv_is_one_line_naming_the_row(bad, tmp_path):
    acc = [0.7 + 0.001 * i for i in range(30)]
    acc[4] = bad
    p = _accuracy_csv(tmp_path / "acc.csv", acc)
    with pytest.raises(OfaProfileError, match="row 6"):
        read_accuracy_csv(p)
    out = tmp_path / "p.json"
    assert_one_line_error(run("accuracy-predictor", "--data", p, "--out", out, "--model", "ridge"), "row 6")
    assert not out.exists()


@pytest.mark.parametrize("cell", [DEEP, "[2, 2, 2, 2, 1e400]", "[" * 5000 + "]" * 5000])
def test_malformed_arch_cell_in_an_accuracy_csv_is_one_line(cell, tmp_path):
    p = _accuracy_csv(tmp_path / "acc.csv", [0.7 + 0.001 * i for i in range(30)])
    rows = list(csv.reader(p.open()))
    rows[3][1] = cell
    with open(p, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert_one_line_error(run("accuracy-predictor", "--data", p, "--out", tmp_path / "p.json", "--model", "ridge"),
                          "row 4")


@pytest.mark.parametrize("bad", ["nan", "inf", "-2"])
def test_nan_in_a_latency_csv_is_one_line_naming_the_row(bad, tmp_path):
    p = tmp_path / "lat.csv"
    specs = _specs(12)
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for i, s in enumerate(specs):
            w.writerow([json.dumps(s.to_ofa()), bad if i == 2 else 5.0 + i])
    with pytest.raises(OfaProfileError, match="row 4"):
        read_latency_csv(p)
    out = tmp_path / "a.json"
    assert_one_line_error(run("adapt", "--device", "x", "--measurements", p, "--out", out), "row 4")
    assert not out.exists()


@pytest.mark.parametrize("model", ["ridge", "ridge+gbm"])
def test_predictor_fit_on_constant_accuracies_is_refused_and_nothing_written(model, tmp_path):
    p = _accuracy_csv(tmp_path / "const.csv", [0.5] * 30)
    out = tmp_path / "p.json"
    assert_one_line_error(run("accuracy-predictor", "--data", p, "--out", out, "--model", model, "--json"),
                          "are equal", "nothing was written")
    assert not out.exists()


def test_adapt_on_degenerate_measurements_is_refused_and_nothing_written(tmp_path):
    """Subnormal latencies (1e-320 ms) overflow the relative-error weights: one line, no adapter file."""
    p = tmp_path / "tiny.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for i, s in enumerate(_specs(12)):
            w.writerow([json.dumps(s.to_ofa()), 1e-320 * (1 + i)])
    out = tmp_path / "tiny.adapter.json"
    assert_one_line_error(run("adapt", "--device", "x", "--measurements", p, "--out", out), "adapter fit")
    assert not out.exists()


# -- 5: strict JSON out ----------------------------------------------------------------------------------

def test_json_outputs_hold_no_nan_where_a_figure_is_undefined(tmp_path):
    """adapt on constant latencies: Spearman is undefined, printed and saved as null (not NaN)."""
    p = tmp_path / "lat.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for s in _specs(12):
            w.writerow([json.dumps(s.to_ofa()), 5.0])
    out = tmp_path / "c.adapter.json"
    res = run("adapt", "--device", "c", "--measurements", p, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    rep = strict_loads(res.stdout)
    assert rep["cross_validated"]["spearman"] is None
    saved = strict_loads(out.read_text())
    assert saved["info"]["cross_validated"]["spearman"] is None
    assert load_adapter(out).predict_ms(_specs(2)).tolist() == pytest.approx([5.0, 5.0])


def test_echo_json_and_atomic_json_writes_are_strict(tmp_path):
    import click

    from ofa_profile.atomic import write_json_atomic
    from ofa_profile.cli import echo_json

    @click.command()
    def cmd():
        echo_json({"a": float("nan"), "b": [float("inf"), 1.5]})

    res = CliRunner().invoke(cmd, [])
    assert strict_loads(res.stdout) == {"a": None, "b": [None, 1.5]}
    p = write_json_atomic(tmp_path / "x.json", {"rho": float("nan")}, indent=None)
    assert strict_loads(p.read_text()) == {"rho": None}


def test_lut_info_json_is_strict_on_odd_free_form_fields(cpu_ort, tmp_path):
    obj = _small(cpu_ort, calibration=True)
    obj["provenance"]["timing"] = {"max_runs": "many", "warmup_runs": None}
    obj["calibration"]["report"] = {"test_calibrated": [1, 2], "seed": 0}
    p = write_json(tmp_path / "odd.json", obj)
    res = run("lut", "info", p, "--json")
    assert res.exit_code == 0, res.output
    s = strict_loads(res.stdout)
    assert s["timing"]["share_at_max_runs"] is None and "test" not in s["calibration"]
    assert run("lut", "info", p).exit_code == 0


# -- 5: --refresh on an uncalibrated LUT -------------------------------------------------------------------

def test_refresh_on_an_uncalibrated_lut_says_so_before_resolving_a_device(shared_data, tmp_path):
    src = shared_data / "reference" / "ofa-note10-lut-w1.2"
    if not src.is_dir():
        pytest.skip("OFA's Note10 LUT is absent from the reference data")
    lut = tmp_path / "note10.json"
    assert run("lut", "import-ofa", src, "--out", lut, "--device", "note10").exit_code == 0
    res = run("pareto", "--budget", "30ms", "--lut", lut, "--refresh", "2", "--out-dir", tmp_path, "--no-plot")
    err = assert_one_line_error(res, f"LUT {lut} is not calibrated", "--refresh re-measures",
                                "ofa-profile calibrate")
    assert "Android" not in err and "adb" not in err


def test_a_lut_of_zero_medians_is_refused_not_a_free_subnet(cpu_ort, arch_files, tmp_path):
    """A LUT whose every median is 0 predicted 0.000 ms (exit 0), and pareto then picked the largest subnet under
    a 1 ms budget; a LUT whose plain sum for the smallest subnet is not a positive finite latency is refused on
    load, with or without --no-calibration."""
    for value, shown in ((0.0, "sum to 0 ms"), (1e308, "sum to inf ms")):
        obj = _small(cpu_ort)
        for e in obj["entries"].values():
            e["median_ms"] = value
        p = write_json(tmp_path / "zero.json", obj)
        assert_one_line_error(run("lut", "validate", p), shown, "smallest subnet at r=160")
        assert_one_line_error(run("predict", "--lut", p, "--arch", arch_files["smallest"], "--no-calibration"),
                              shown)
    obj = _small(cpu_ort)   # one zero median (a block too fast for the timer) is no reason to refuse a LUT
    obj["entries"][next(iter(obj["entries"]))]["median_ms"] = 0.0
    assert run("lut", "validate", write_json(tmp_path / "one-zero.json", obj)).exit_code == 0


def test_a_duplicate_key_in_any_json_input_is_one_line(cpu_ort, small_lut, arch_files, tmp_path):
    """Python's json keeps the last of two equal keys, other readers the first: such a file means different
    things to different tools, and is refused in one line (LUT, adapter, predictor, arch)."""
    text = small_lut.read_text().replace('"device": ', '"device": "a", "device": ', 1)
    p = tmp_path / "dup-lut.json"
    p.write_text(text)
    assert_one_line_error(run("lut", "validate", p), 'the key "device" twice')
    p = tmp_path / "dup-adapter.json"
    p.write_text('{"format": "x", "format": "y"}')
    assert_one_line_error(run("pareto", "--budget", "20", "--adapter", p, "--no-plot", "--out-dir", tmp_path),
                          'the key "format" twice')
    p = tmp_path / "dup-pred.json"
    p.write_text('{"format": "x", "components": [], "components": []}')
    assert_one_line_error(run("predict-accuracy", "--predictor", p, "--arch", arch_files["smallest"]),
                          'the key "components" twice')


def test_a_csv_with_a_byte_order_mark_reads_as_without_one(tmp_path):
    """Excel writes a UTF-8 BOM: it made the first column '\\ufeffindex', so `accuracy-dataset --merge` said the
    shard had no column index, and a CSV whose first column the reader needs was refused."""
    from ofa_profile.accuracy import read_specs_csv
    src = _accuracy_csv(tmp_path / "plain.csv", [0.7 + 0.001 * i for i in range(30)])
    text = src.read_text()
    cols = text.splitlines()[0].split(",")
    assert cols[0] == "image_size"        # the column the reader needs comes first
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert read_specs_csv(bom) == read_specs_csv(src)
    assert list(read_accuracy_csv(bom).accuracy) == list(read_accuracy_csv(src).accuracy)
    from ofa_model.evaluate import CSV_FIELDS, dataset_spec
    spec = dataset_spec(W10, 0, 0, (160,))
    shard = tmp_path / "shard.csv"
    with open(shard, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerow({"index": 0, "space": spec.space, "seed": 0, "r": spec.r, "d": json.dumps(list(spec.d)),
                    "ks": json.dumps(list(spec.ks)), "e": json.dumps(list(spec.e)), "accuracy": 0.5,
                    "macs": 100, "params": 10, "n_val": 100, "n_calib": 100, "batch_size": 25, "arch": spec.short()})
    res = run("accuracy-dataset", "--merge", shard, "--out", tmp_path / "merged.csv")
    assert res.exit_code == 0, res.output
