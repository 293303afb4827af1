import json
import random

import numpy as np
import pytest

from ofa_profile.accuracy import ArchArrays
from ofa_profile.adapt import (BlockTable, LatencyAdapter, arch_features, evaluate_few_shot, fit_adapter,
                               load_adapter, macs_table, params_table, read_latency_csv, score_latency)
from ofa_profile.errors import OfaProfileError
from ofa_profile.ops import subnet_ops
from ofa_profile.space import SPACES, get_space


@pytest.mark.parametrize("space", list(SPACES))
def test_block_tables_match_op_sums(space):
    sp = get_space(space)
    rng = random.Random(0)
    specs = [sp.sample(rng) for _ in range(40)] + [sp.largest(224), sp.smallest(128)]
    a = ArchArrays.from_specs(specs)
    macs = [sum(op.macs() for op in subnet_ops(s)) for s in specs]
    params = [sum(op.params() for op in subnet_ops(s)) for s in specs]
    np.testing.assert_array_equal(macs_table(space).total(a), macs)
    np.testing.assert_array_equal(params_table(space).total(a), params)


def test_block_table_from_any_op_cost_and_missing_resolution():
    t = BlockTable.from_op_cost("ofa-mbv3-w1.0", lambda op: 1.0, resolutions=[160], name="ones")
    sp = get_space("ofa-mbv3-w1.0")
    s = sp.sample(1, resolution=160)
    assert t.total([s])[0] == len(subnet_ops(s))
    with pytest.raises(OfaProfileError, match="no resolution"):
        t.total([sp.largest(224)])


def test_arch_features():
    sp = get_space("ofa-mbv3-w1.0")
    s = sp.largest(224)
    f = arch_features([s], ("n_blocks", "n_se_blocks", "macs_m", "pw_macs_m", "dw_macs_m", "r"))[0]
    assert f[0] == 20 and f[1] == 12 and f[5] == 224
    assert f[3] + f[4] == pytest.approx(f[2])
    with pytest.raises(OfaProfileError, match="unknown feature"):
        arch_features([s], ("flops",))


def _synthetic(n=300, seed=0):
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(seed)
    specs = [sp.sample(rng) for _ in range(n)]
    F = arch_features(specs)
    y = 0.8 + F @ np.array([0.12, 0.05, 0.004, 0.02, 0.01])
    return specs, y


def test_fit_recovers_a_linear_device_from_ten_samples(tmp_path):
    specs, y = _synthetic()
    ad = fit_adapter(specs[:10], y[:10], "fake-gpu", seed=0)
    np.testing.assert_allclose(ad.predict_ms(specs[10:]), y[10:], rtol=1e-6)
    p = ad.save(tmp_path / "ad.json")
    again = load_adapter(p)
    np.testing.assert_array_equal(again.predict_ms(specs), ad.predict_ms(specs))
    assert json.loads(p.read_text())["device"] == "fake-gpu" and all(c >= 0 for c in again.coef)


def test_one_outlier_does_not_drag_the_robust_fit():
    specs, y = _synthetic()
    y_fit = y[:20].copy()
    y_fit[3] *= 1.8  # a latency spike
    robust = score_latency(fit_adapter(specs[:20], y_fit, "g").predict_ms(specs[20:]), y[20:])
    plain = score_latency(fit_adapter(specs[:20], y_fit, "g", robust=False).predict_ms(specs[20:]), y[20:])
    assert robust.within_5pct == 1.0
    assert robust.mape_pct < plain.mape_pct


def test_prior_feature_and_its_absence():
    specs, y = _synthetic()
    prior = y * 3.0 + 1.0
    ad = fit_adapter(specs[:10], y[:10], "g", prior_ms=prior[:10], prior="lut:test")
    assert ad.uses_prior and ad.prior == "lut:test"
    assert ad.predict_ms(specs[10:], prior[10:]).shape == (290,)
    with pytest.raises(OfaProfileError, match="prior"):
        ad.predict_ms(specs[10:])


def test_input_errors():
    specs, y = _synthetic(20)
    with pytest.raises(OfaProfileError, match="positive"):
        fit_adapter(specs, -y, "g")
    with pytest.raises(OfaProfileError, match="latencies for"):
        fit_adapter(specs, y[:5], "g")
    with pytest.raises(OfaProfileError, match="not a latency adapter"):
        LatencyAdapter.from_json({"format": "x"})


def test_read_latency_csv_both_forms(tmp_path):
    sp = get_space("ofa-mbv3-w1.0")
    s = sp.sample(2)
    a = tmp_path / "a.csv"
    a.write_text("arch,latency_ms\n" + '"' + json.dumps(s.to_ofa()).replace('"', '""') + '",3.5\n')
    d = read_latency_csv(a)
    assert d.specs == (s,) and d.column()[0] == 3.5
    b = tmp_path / "b.csv"
    b.write_text(f'r,d,ks,e,lat_ms_x,lat_ms_y\n{s.r},"{list(s.d)}","{list(s.ks)}","{list(s.e)}",1,2\n')
    d = read_latency_csv(b)
    assert d.columns == ("lat_ms_x", "lat_ms_y") and d.column("lat_ms_y")[0] == 2
    with pytest.raises(OfaProfileError, match="several latency columns"):
        d.column()
    c = tmp_path / "c.csv"
    c.write_text("r,d\n1,2\n")
    with pytest.raises(OfaProfileError, match="no latency column"):
        read_latency_csv(c)


def test_few_shot_on_help_gpu_data(shared_data):
    data = read_latency_csv(shared_data / "reference" / "help-ofa-gpu-latency.csv")
    assert len(data.specs) == 5000 and len(data.columns) == 6
    a = ArchArrays.from_specs(list(data.specs))
    ad, sc = evaluate_few_shot(a, data.column("lat_ms_titan_rtx_64"), k=20, seed=0)
    assert ad.info["n_fit"] == 20 and sc.n == 4980
    assert sc.spearman >= 0.95 and sc.within_10pct >= 0.90


def test_adapter_folds_into_one_block_table():
    specs, y = _synthetic()
    ad = fit_adapter(specs[:15], y[:15] * np.random.default_rng(0).normal(1, 0.03, 15), "g",
                     features=("n_blocks", "n_se_blocks", "pw_macs_m", "dw_macs_m", "mid_act_m", "params_m", "r"))
    t = ad.as_block_table()
    np.testing.assert_allclose(t.total(specs), ad.predict_ms(specs), rtol=1e-10)
    assert fit_adapter(specs[:10], y[:10], "g", prior_ms=y[:10]).as_block_table() is None


def _write_measurements(path, specs, y):
    import csv
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for s, v in zip(specs, y):
            w.writerow([json.dumps(s.to_ofa()), v])
    return path


def test_adapt_command(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    specs, y = _synthetic(60)
    y = y * np.random.default_rng(0).normal(1, 0.01, len(y))
    m = _write_measurements(tmp_path / "m.csv", specs, y)
    out = tmp_path / "dev.adapter.json"
    res = CliRunner().invoke(main, ["adapt", "--device", "dev", "--measurements", str(m), "--k", "20", "--out",
                                    str(out), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["k"] == 20 and rep["held_out"]["n"] == 40 and rep["held_out"]["within_10pct"] == 1.0
    ad = load_adapter(out)
    assert ad.device == "dev" and ad.info["held_out"]["n"] == 40
    res = CliRunner().invoke(main, ["adapt", "--device", "dev", "--measurements", str(m), "--out", str(out)])
    assert res.exit_code == 0 and "10-fold cross-validated" in res.stdout
    res = CliRunner().invoke(main, ["adapt", "--device", "dev", "--measurements", str(tmp_path / "none.csv")])
    assert res.exit_code == 1 and "does not exist" in res.stderr


def test_pareto_with_adapter(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.accuracy import fit_accuracy_predictor
    from ofa_profile.cli import main
    from helpers import synthetic_dataset
    specs, y = _synthetic(40)
    ad = fit_adapter(specs, y, "gpu-x").save(tmp_path / "gpu.json")
    acc = fit_accuracy_predictor(synthetic_dataset(300), model="ridge").save(tmp_path / "acc.json")
    res = CliRunner().invoke(main, ["pareto", "--budget", "20ms", "--adapter", str(ad), "--predictor", str(acc),
                                    "--out-dir", str(tmp_path), "--no-plot", "--effort", "fast", "--n-budgets", "4",
                                    "--json"])
    assert res.exit_code == 0, res.output
    best = json.loads(res.stdout)["best"]
    assert best["latency_ms"] <= 20.0 and json.loads(res.stdout)["device"] == "gpu-x"
