import itertools
import random

import numpy as np
import pytest

from ofa_profile.accuracy import ArchArrays, fit_accuracy_predictor
from ofa_profile.errors import OfaProfileError
from ofa_profile.ops import subnet_ops
from ofa_profile.search import (BatchFn, NoFeasibleSubnet, fastest_latency_ms, macs_latency_fn, ofa_evolution,
                                pareto_front, pareto_search, parse_budget_ms, random_search, search)
from ofa_profile.space import get_space

from helpers import lut_from_ops as _lut_from_ops, synthetic_dataset, write_fake_lut

RES = (128, 144, 160, 176, 192)


@pytest.fixture(scope="module")
def acc():
    # ridge + a few boosted trees: mostly additive, partly not (as the real predictors are)
    return fit_accuracy_predictor(synthetic_dataset(500), model="ridge+gbm", gbm_trees=40)


@pytest.fixture(scope="module")
def lat():
    return macs_latency_fn("ofa-mbv3-w1.0")


@pytest.mark.parametrize("text,ms", [("20ms", 20.0), ("20", 20.0), ("0.02s", 20.0), (" 12.5 ms", 12.5),
                                     (7, 7.0), ("1500us", 1.5)])
def test_parse_budget(text, ms):
    assert parse_budget_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("bad", ["fast", "-3ms", "0", "nan"])
def test_parse_budget_refuses(bad):
    with pytest.raises(OfaProfileError, match="budget"):
        parse_budget_ms(bad)


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    lat, acc = rng.random(300), rng.random(300)
    front = pareto_front(lat, acc)
    brute = [i for i in range(300) if not any((lat[j] <= lat[i] and acc[j] >= acc[i]) and
                                              (lat[j] < lat[i] or acc[j] > acc[i]) for j in range(300))]
    assert sorted(front.tolist()) == sorted(brute)
    assert np.all(np.diff(lat[front]) >= 0) and np.all(np.diff(acc[front]) > 0)


def test_search_beats_baselines_and_meets_budget(acc, lat):
    sp = get_space("ofa-mbv3-w1.0")
    budget = 9.0
    best = search(sp, lat, acc, budget, seed=0, resolutions=RES)
    assert best.latency_ms <= budget and best.spec.r in RES
    assert best.latency_ms == pytest.approx(float(lat([best.spec])[0]))
    assert best.accuracy == pytest.approx(float(acc.predict([best.spec])[0]))
    assert best.macs == sum(op.macs() for op in subnet_ops(best.spec))
    assert best.params == sum(op.params() for op in subnet_ops(best.spec))
    rnd = random_search(sp, lat, acc, budget, n=2000, seed=0, resolutions=RES)
    evo = ofa_evolution(sp, lat, acc, budget, seed=0, resolutions=RES, generations=40)
    assert rnd.latency_ms <= budget and evo.latency_ms <= budget
    assert best.accuracy >= max(rnd.accuracy, evo.accuracy) - 1e-9


def test_search_is_reproducible_and_takes_plain_callables(acc, lat):
    sp = get_space("ofa-mbv3-w1.0")
    a = search(sp, lat, acc, "7ms", seed=3, resolutions=RES, effort="fast")
    b = search(sp, lat, acc, "7ms", seed=3, resolutions=RES, effort="fast")
    assert a == b
    calls = []

    def plain_latency(specs):  # no on_arrays: receives SubnetSpec lists
        calls.append(len(specs))
        assert all(s.space == sp.name for s in specs)
        return lat(specs)
    c = search(sp, plain_latency, lambda specs: acc.predict(specs), "7ms", seed=3, resolutions=RES, effort="fast")
    assert calls and c.accuracy == pytest.approx(a.accuracy)


def test_infeasible_budget_names_fastest_latency(acc, lat):
    sp = get_space("ofa-mbv3-w1.0")
    fastest, spec = fastest_latency_ms(sp, lat, RES)
    assert fastest == pytest.approx(float(lat([sp.smallest(128)])[0]))
    for fn in (search, random_search, ofa_evolution):
        with pytest.raises(NoFeasibleSubnet, match=f"{fastest:.3f} ms") as ei:
            fn(sp, lat, acc, fastest * 0.9, resolutions=RES)
        assert "\n" not in str(ei.value)


def test_compofa_search_is_exhaustive_and_exact(acc, lat):
    sp = get_space("compofa-mbv3-w1.0")
    budget = 6.0
    best = search(sp, lat, acc, budget, resolutions=RES)
    specs = [sp.compound_spec(d, r) for r in RES for d in itertools.product((2, 3, 4), repeat=5)]
    L, A = lat(specs), acc.predict(specs)
    assert best.accuracy == pytest.approx(A[L <= budget].max())
    best.spec.validated()
    front = pareto_search(sp, lat, acc, [4.0, 6.0, 8.0], resolutions=RES)
    assert front.method == "exhaustive" and front.n_evaluated == len(specs)
    assert front.best[1].accuracy == pytest.approx(best.accuracy)


def test_pareto_search_frontier(acc, lat):
    sp = get_space("ofa-mbv3-w1.0")
    pr = pareto_search(sp, lat, acc, n_budgets=5, seed=1, resolutions=RES, effort="fast")
    assert len(pr.budgets_ms) == 5 and len(pr.frontier) >= 5
    L = np.array([r.latency_ms for r in pr.frontier])
    A = np.array([r.accuracy for r in pr.frontier])
    assert np.all(np.diff(L) >= 0) and np.all(np.diff(A) > 0)
    for b, r in zip(pr.budgets_ms, pr.best):
        assert r is not None and r.latency_ms <= b
        # the frontier's best under b is at least as good as a random search's
        assert r.accuracy >= random_search(sp, lat, acc, b, n=500, seed=0, resolutions=RES).accuracy
    d = pr.as_dict()
    assert d["seed"] == 1 and len(d["frontier"]) == len(pr.frontier) and "arch" in d["frontier"][0]


def test_batchfn_accepts_specs_and_arrays(lat):
    sp = get_space("ofa-mbv3-w1.0")
    specs = [sp.sample(random.Random(i)) for i in range(5)]
    np.testing.assert_array_equal(lat(specs), lat.on_arrays(ArchArrays.from_specs(specs)))
    assert isinstance(lat, BatchFn)


def test_lut_latency_fn_matches_lut_sum_and_calibration():
    from ofa_profile.calibrate import fit_calibration
    from ofa_profile.search import lut_latency_fn
    lut = _lut_from_ops()
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(5)
    specs = [sp.sample(rng, resolution=[160, 176]) for _ in range(60)]
    fn = lut_latency_fn(lut)
    assert "exact path" not in fn.name
    np.testing.assert_allclose(fn(specs), [lut.lut_sum_ms(s) for s in specs], rtol=1e-12)
    measured = [1.1 * lut.lut_sum_ms(s) + 0.3 + 0.02 * sum(s.d) for s in specs[:30]]
    cal = lut.with_calibration(fit_calibration(specs[:30], measured, lut))
    fn = lut_latency_fn(cal)
    assert "calibrated" in fn.name and "exact path" not in fn.name
    np.testing.assert_allclose(fn(specs), [cal.predict_ms(s) for s in specs], rtol=1e-10)
    best = search(sp, fn, lambda specs: -lat_sum(specs), 9.0, resolutions=(160, 176), effort="fast")
    assert best.latency_ms <= 9.0
    with pytest.raises(OfaProfileError):
        lut_latency_fn(lut, resolutions=[224])


def lat_sum(specs):
    return np.array([sum(s.d) for s in specs], dtype=float)


def test_lut_latency_fn_on_ofa_note10_tables(shared_data):
    from ofa_profile.lut import import_ofa_yaml
    from ofa_profile.search import lut_latency_fn
    from ofa_profile.space import SubnetSpec
    from helpers import TUTORIAL
    lut = import_ofa_yaml(shared_data / "reference" / "ofa-note10-lut-w1.2")
    fn = lut_latency_fn(lut)
    spec = SubnetSpec.from_ofa(TUTORIAL, space="ofa-mbv3-w1.2")
    assert float(fn([spec])[0]) == pytest.approx(24.73, abs=0.005)
    sp = get_space("ofa-mbv3-w1.2")
    assert float(fn([sp.largest(224)])[0]) == pytest.approx(92.40, abs=0.005)


# -- the pareto command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, acc):
    d = tmp_path_factory.mktemp("cli")
    return {"lut": str(write_fake_lut(d / "lut-a.json", "fake-a")), "predictor": str(acc.save(d / "acc.json")),
            "dir": d}


def test_pareto_command_json_and_files(cli_files):
    import json

    from click.testing import CliRunner

    from ofa_profile.cli import main
    out = cli_files["dir"] / "out"
    args = ["pareto", "--budget", "0.009s", "--lut", cli_files["lut"], "--predictor", cli_files["predictor"],
            "--out-dir", str(out), "--seed", "2", "--n-budgets", "5", "--effort", "fast"]
    res = CliRunner().invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["budget_ms"] == 9.0 and obj["seed"] == 2 and obj["resolutions"] == [160, 176, 192]
    assert obj["timed"] == {"graph": "ofa-profile", "classes": 1000, "precision": "fp32", "threads": 1}
    assert obj["best"]["latency_ms"] <= 9.0 and set(obj["best"]) >= {"arch", "latency_ms", "accuracy", "macs", "params"}
    assert obj["frontier"] and obj["best"]["arch"] in [f["arch"] for f in obj["frontier"]]
    assert json.loads((out / "pareto-lut-a-9ms.json").read_text())["best"] == obj["best"]
    assert (out / "pareto-lut-a-9ms.png").stat().st_size > 10_000
    from ofa_profile.space import SubnetSpec
    spec = SubnetSpec.load(out / "pareto-lut-a-9ms.best.json")
    assert spec.canonical().to_ofa() == {k: v for k, v in obj["best"]["arch"].items() if k != "space"}
    text = CliRunner().invoke(main, args + ["--no-plot"])
    assert text.exit_code == 0 and "best under 9 ms on fake-a" in text.stdout and "frontier:" in text.stdout
    assert "  timed     fake fp32, 1 thread, ofa-profile graph, 1000-class head" in text.stdout.splitlines()


def test_pareto_command_errors_are_one_line(cli_files):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    base = ["pareto", "--lut", cli_files["lut"], "--predictor", cli_files["predictor"], "--out-dir",
            str(cli_files["dir"] / "o2"), "--no-plot", "--effort", "fast"]
    res = CliRunner().invoke(main, base + ["--budget", "1ms"])
    assert res.exit_code == 1
    err = res.stderr.strip().splitlines()[-1]
    assert err.startswith("error: no subnet of ofa-mbv3-w1.0 meets 1 ms: the fastest found takes")
    res = CliRunner().invoke(main, base + ["--budget", "soon"])
    assert res.exit_code == 2 and "bad latency budget" in res.stderr      # a usage error (issue 15)
    res = CliRunner().invoke(main, base + ["--budget", "9", "--resolutions", "224"])
    assert res.exit_code == 1 and "does not cover resolution(s) [224]" in res.stderr


def test_pareto_margin_fixed_and_auto(cli_files):
    """--margin PCT searches under budget x (1 - PCT/100); --margin auto takes the 90th percentile of the
    calibrated LUT's under-predictions on its held-out subnets. The shipped cpu-ort LUT is given 11 held-out
    subnets measured, by construction, (1 + x) times their prediction for x = -4 % .. +12 %: the 90th percentile of
    11 sorted values is the 10th under any usual definition (linear interpolation: position 0.9 x 10 = 9, exactly),
    here 8 %."""
    import json

    from click.testing import CliRunner

    from ofa_profile.cli import main
    from ofa_profile.lut import load_lut
    from ofa_profile.space import SubnetSpec
    out = str(cli_files["dir"] / "om")
    base = ["pareto", "--predictor", cli_files["predictor"], "--out-dir", out, "--no-plot", "--effort", "fast",
            "--n-budgets", "3", "--json"]
    res = CliRunner().invoke(main, base + ["--lut", cli_files["lut"], "--budget", "9ms", "--margin", "10"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["margin_pct"] == 10 and obj["search_budget_ms"] == pytest.approx(8.1)
    assert obj["best"]["latency_ms"] <= 8.1
    from ofa_profile.lut import save_lut
    lut = load_lut("cpu-ort")
    x = [-0.04, 0.12, -0.02, 0.0, 0.05, -0.03, 0.01, 0.08, -0.01, 0.03, 0.02]      # sorted: 10th is 0.08
    held = [s for s in lut.calibration["samples"] if s["split"] == "test"][:len(x)]
    samples = [s for s in lut.calibration["samples"] if s["split"] == "fit"] + [
        {**s, "measured_ms": (1 + xi) * lut.predict_ms(SubnetSpec.from_ofa(s["arch"], space=lut.space))}
        for s, xi in zip(held, x)]
    designed = cli_files["dir"] / "designed-cpu-ort.json"
    save_lut(lut.with_calibration({**lut.calibration, "samples": samples}), designed)
    res = CliRunner().invoke(main, base + ["--lut", str(designed), "--budget", "9ms", "--margin", "auto",
                                           "--resolutions", "160-176"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["margin_pct"] == pytest.approx(8.0, abs=1e-3)
    assert obj["search_budget_ms"] == pytest.approx(9 * 0.92) and obj["best"]["latency_ms"] <= 9 * 0.92 + 1e-9
    # an uncalibrated LUT has no held-out subnets: one line, exit 1; a bad value: usage error, exit 2
    res = CliRunner().invoke(main, base + ["--lut", cli_files["lut"], "--budget", "9ms", "--margin", "auto"])
    assert res.exit_code == 1 and "--margin auto needs a calibrated LUT" in res.stderr
    for bad in ("abc", "100", "-1"):
        res = CliRunner().invoke(main, base + ["--lut", cli_files["lut"], "--budget", "9ms", "--margin", bad])
        assert res.exit_code == 2 and "--margin" in res.stderr


def test_pareto_verify_measures_on_the_device_and_evaluates_with_the_supernet(cli_files, tmp_path):
    """--verify: a real end-to-end ONNX Runtime measurement and a real evaluation of the chosen subnet."""
    import json

    import torch
    from click.testing import CliRunner

    from ofa_model.bundle import save_bundle
    from ofa_model.supernet import OFAMobileNetV3
    from ofa_profile.cli import main
    from helpers import make_folder

    tr, va = make_folder(tmp_path / "train", 6), make_folder(tmp_path / "val", 3, seed=1)
    torch.manual_seed(0)
    save_bundle(OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3), tmp_path / "w", "tiny",
                classes=("class0", "class1", "class2"), dataset="Synthetic")
    args = ["pareto", "--budget", "9ms", "--lut", cli_files["lut"], "--predictor", cli_files["predictor"],
            "--out-dir", str(tmp_path / "out"), "--no-plot", "--effort", "fast", "--n-budgets", "3",
            "--verify", "--verify-device", "cpu-ort", "--supernet", str(tmp_path / "w" / "tiny.pt"),
            "--train-data", str(tr), "--val-data", str(va), "--cache-dir", str(tmp_path / "cache"),
            "--verify-images", "0", "--verify-calib-images", "8"]
    res = CliRunner().invoke(main, args + ["--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    v = obj["verify"]
    assert v["device"] == "cpu-ort" and v["measured_latency_ms"] > 0 and v["runs"] >= 10
    # the lowest median of 2 passes (--verify-rounds), as calibration measures its subnets
    assert len(v["pass_medians_ms"]) == 2 and v["measured_latency_ms"] == min(v["pass_medians_ms"])
    assert v["within_budget_plus_3pct"] == (v["measured_latency_ms"] <= 9 * 1.03)
    assert v["predicted_latency_ms"] == pytest.approx(obj["best"]["latency_ms"], abs=1e-3)
    assert 0.0 <= v["top1"] <= 1.0 and v["n_val"] == 9 and v["dataset"] == "Synthetic"
    assert json.loads((tmp_path / "out" / "pareto-lut-a-9ms.json").read_text())["verify"] == v
    # without weights: the latency is still verified, the missing accuracy is named
    res = CliRunner().invoke(main, args[:-12] + ["--supernet", str(tmp_path / "none.pt"), "--verify-images", "0"])
    assert res.exit_code == 0, res.output
    assert "measured" in res.stdout and "top-1     not evaluated:" in res.stdout and "none.pt" in res.stdout
