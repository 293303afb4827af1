"""The latency source model (few-shot transfer from other devices) and its use by `adapt`."""
import csv
import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile.adapt import (DEFAULT_FEATURES, LatencyAdapter, LatencyData, evaluate_few_shot, fit_adapter,
                               fit_chosen, load_adapter, read_latency_csv)
from ofa_profile.encodings import ArchArrays
from ofa_profile.errors import OfaProfileError
from ofa_profile.latency_source import (SourceColumn, SourceModel, column_groups, fit_source_model, load_source,
                                        shipped_source)
from ofa_profile.space import get_space

SPACE = "ofa-mbv3-w1.0"


def _known_model(seed=0, scale=1.0):
    sp = get_space(SPACE)
    rng = np.random.default_rng(seed)
    shape = (sp.n_stages, len(sp.kernels), len(sp.expands))
    cols = []
    for name, bs, over, comp in (("b1", 1, 0.15, 0.02), ("b32", 32, 0.01, 0.6)):
        block = np.stack([rng.uniform(0.5, 1.5, shape) * over, rng.uniform(0.5, 1.5, shape) * comp], axis=-1) * scale
        cols.append(SourceColumn(name, bs, ("dev",), (0.8 * scale, 2.0 * scale), block))
    return SourceModel(sp.name, 224, tuple(cols))


def _specs(n, seed=0, space=SPACE):
    sp = get_space(space)
    rng = random.Random(seed)
    return [sp.sample(rng) for _ in range(n)]


def _write_csv(path, specs, columns):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", *columns])
        for i, s in enumerate(specs):
            w.writerow([json.dumps({**s.to_ofa(), "space": s.space}), *[f"{columns[c][i]:.9g}" for c in columns]])
    return path


def test_fit_recovers_a_known_additive_model_and_pools_devices(tmp_path):
    specs = _specs(600)
    truth = _known_model()
    y = truth.predict(specs)
    data = read_latency_csv(_write_csv(tmp_path / "m.csv", specs, {
        "lat_ms_devA_1": y[:, 0], "lat_ms_devA_32": y[:, 1], "lat_ms_devB_1": 2 * y[:, 0], "lat_ms_devB_32": 2 * y[:, 1]}))
    fitted = fit_source_model(data)
    assert fitted.names == ("b1", "b32") and fitted.column("b32").batch_size == 32
    assert fitted.column("b1").devices == ("devA", "devB")
    test = _specs(200, seed=1)
    # devB runs exactly 2x devA: each is normalised to its mean, so the pool is devA's model x 1.5
    np.testing.assert_allclose(fitted.predict(test), 1.5 * truth.predict(test), rtol=2e-3)
    cv = fitted.column("b32").info["cross_validated"]
    assert cv["devA"]["spearman"] > 0.999 and cv["devB"]["within_10pct"] == 1.0
    only_a = fit_source_model(data, exclude_devices=["devB"])
    np.testing.assert_allclose(only_a.predict(test), truth.predict(test), rtol=2e-3)
    assert only_a.column("b1").devices == ("devA",)


def test_block_table_equals_predict_and_json_round_trip(tmp_path):
    m = _known_model()
    specs = _specs(300) + [get_space(SPACE).largest(224), get_space(SPACE).smallest(128)]
    a = ArchArrays.from_specs(specs)
    for j, name in enumerate(m.names):
        np.testing.assert_allclose(m.block_table(name).total(a), m.predict(a)[:, j], rtol=1e-12)
    p = m.save(tmp_path / "src.json")
    back = load_source(p)
    np.testing.assert_allclose(back.predict(a), m.predict(a), rtol=1e-12)
    assert json.loads(p.read_text())["format"] == "ofa-profile-latency-source"


def test_too_few_rows_and_no_columns(tmp_path):
    specs = _specs(50)
    y = _known_model().predict(specs)
    data = read_latency_csv(_write_csv(tmp_path / "m.csv", specs, {"lat_ms_a_1": y[:, 0]}))
    with pytest.raises(OfaProfileError, match="at least 368 measured subnets"):
        fit_source_model(data)
    with pytest.raises(OfaProfileError, match="no latency column left"):
        fit_source_model(data, exclude_devices=["a"])


def test_column_groups():
    g = column_groups(["lat_ms_titan_rtx_1", "lat_ms_titan_xp_1", "lat_ms_titan_xp_64", "latency_ms"])
    assert g == {"b1": [("titan_rtx", "lat_ms_titan_rtx_1"), ("titan_xp", "lat_ms_titan_xp_1")],
                 "b64": [("titan_xp", "lat_ms_titan_xp_64")], "latency_ms": [("latency_ms", "latency_ms")]}


def test_shipped_source_loads_and_names_its_data():
    m = shipped_source()
    assert m.names == ("b1", "b32", "b64") and m.info["name"] == "gpu"
    assert m.info["data"] == "help-ofa-gpu-latency.csv"
    assert all(c.devices == ("titan_rtx", "titan_xp") for c in m.columns)
    assert load_source("gpu").to_json() == m.to_json()
    y = m.predict([get_space(SPACE).smallest(128), get_space(SPACE).largest(224)])
    assert (y[0] < y[1]).all()                       # bigger subnets are slower under every column


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=False) | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                     max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.sampled_from(["space", "r_ref", "columns", "info", "format", "version", 0, "name", "fixed",
                                      "block", "batch_size", "devices", 1]), min_size=1, max_size=4), value=_JSON)
def test_any_corrupted_field_is_one_line_or_loads(tmp_path, path, value):
    obj = _known_model().to_json()
    node = obj
    for key in path[:-1]:
        if isinstance(node, dict) and isinstance(key, str) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    p = tmp_path / "s.json"
    p.write_text(json.dumps(obj))
    try:
        m = load_source(p)
    except OfaProfileError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert np.isfinite(m.predict([get_space(SPACE).largest(224)])).all()


def test_adapter_with_source_round_trips_and_folds_into_a_block_table(tmp_path):
    src = _known_model()
    specs = _specs(40)
    y = 0.3 + 1.7 * src.predict(specs)[:, 1]
    ad = fit_adapter(specs, y, "new-gpu", source=src)
    assert ad.feature_names == ("src:b1", "src:b32") and ad.source is src
    test = _specs(100, seed=3)
    np.testing.assert_allclose(ad.predict_ms(test), 0.3 + 1.7 * src.predict(test)[:, 1], rtol=1e-3)
    back = load_adapter(ad.save(tmp_path / "a.json"))
    np.testing.assert_allclose(back.predict_ms(test), ad.predict_ms(test), rtol=1e-12)
    np.testing.assert_allclose(ad.as_block_table().total(test), ad.predict_ms(test), rtol=1e-10)
    obj = json.loads((tmp_path / "a.json").read_text())
    obj["source"] = None
    (tmp_path / "b.json").write_text(json.dumps(obj))
    with pytest.raises(OfaProfileError, match="src:\\* features need a 'source' model"):
        load_adapter(tmp_path / "b.json")


def test_choice_keeps_the_source_where_it_fits_and_drops_it_where_it_does_not():
    src = _known_model()
    specs = _specs(20)
    y_src = 1.3 * src.predict(specs)[:, 0] * np.random.default_rng(0).normal(1, 0.01, 20)
    assert fit_chosen(specs, y_src, "g", source=src, choose=True).info["model"] in ("transfer", "combined")
    from ofa_profile.adapt import arch_features
    y_arch = 0.5 + arch_features(specs) @ np.array([0.1, 0.05, 0.004, 0.02, 0.01])
    ad = fit_chosen(specs, y_arch, "g", source=src, choose=True)
    assert ad.info["model"] == "features" and ad.source is None and ad.feature_names == DEFAULT_FEATURES
    assert set(ad.info["cv_mape_pct"]) == {"transfer", "combined", "features"}


def test_transfer_from_the_other_gpu_on_unseen_subnets(shared_data):
    """Leave-one-device-out on real measurements: Titan Xp at batch 32 from a source fitted on the Titan RTX's
    measurements of the other half of the subnets only (the benchmark does this for every setting)."""
    data = read_latency_csv(shared_data / "reference" / "help-ofa-gpu-latency.csv")
    a = ArchArrays.from_specs(list(data.specs))
    perm = np.random.default_rng(0).permutation(len(a))
    half_a, half_b = np.sort(perm[:2500]), np.sort(perm[2500:])
    src = fit_source_model(LatencyData(tuple(data.specs[i] for i in half_a),
                                       {c: v[half_a] for c, v in data.latency_ms.items()}),
                           exclude_devices=["titan_xp"])
    assert src.column("b32").devices == ("titan_rtx",)
    y = data.column("lat_ms_titan_xp_32")[half_b]
    ad, sc = evaluate_few_shot(a.take(half_b), y, 20, 0, source=src)
    assert ad.feature_names == ("src:b1", "src:b32", "src:b64")
    assert sc.spearman >= 0.95 and sc.within_10pct >= 0.85
    # without the source columns and without the architecture features, there is nothing to fit
    with pytest.raises(OfaProfileError):
        fit_adapter(a.take(half_b[:5]), y[:5], "x", features=("src:b1",))


def test_adapt_and_adapt_source_commands(tmp_path, shared_data):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    help_csv = str(shared_data / "reference" / "help-ofa-gpu-latency.csv")
    out = tmp_path / "src.json"
    res = CliRunner().invoke(main, ["adapt-source", "--measurements", help_csv, "--exclude-device", "titan_xp",
                                    "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["name"] == "titan_rtx" and [c["name"] for c in rep["columns"]] == ["b1", "b32", "b64"]
    res = CliRunner().invoke(main, ["adapt", "--device", "xp", "--measurements", help_csv, "--column",
                                    "lat_ms_titan_xp_64", "--k", "10", "--source", str(out), "--out",
                                    str(tmp_path / "xp.json"), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["model"] == "transfer" and rep["source"] == "titan_rtx" and rep["held_out"]["spearman"] > 0.95
    assert isinstance(load_adapter(tmp_path / "xp.json"), LatencyAdapter)
    res = CliRunner().invoke(main, ["adapt", "--device", "x", "--measurements", help_csv, "--column",
                                    "lat_ms_titan_xp_64", "--source", str(tmp_path / "missing.json")])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1 and "does not exist" in res.stderr


def test_auto_source_falls_back_on_another_space(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.adapt import arch_features
    from ofa_profile.cli import main
    space = "ofa-proxyless-w1.3"
    specs = _specs(30, space=space)
    y = 0.5 + arch_features(specs) @ np.array([0.1, 0.05, 0.004, 0.02, 0.01])
    m = _write_csv(tmp_path / "p.csv", specs, {"latency_ms": y})
    res = CliRunner().invoke(main, ["adapt", "--device", "p", "--measurements", str(m), "--out",
                                    str(tmp_path / "p.json"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model"] == "features"
    res = CliRunner().invoke(main, ["adapt", "--device", "p", "--measurements", str(m), "--source", "gpu",
                                    "--out", str(tmp_path / "q.json")])
    assert res.exit_code == 1 and "fitted on ofa-mbv3-w1.0, not ofa-proxyless-w1.3" in res.stderr


def test_adapter_carries_its_margin_and_pareto_margin_auto_uses_it(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.accuracy import fit_accuracy_predictor
    from ofa_profile.cli import main
    from helpers import synthetic_dataset
    from ofa_profile.adapt import DEFAULT_FEATURES
    src = _known_model()
    specs = _specs(10)
    y = 0.3 + 1.7 * src.predict(specs)[:, 1] * np.random.default_rng(1).normal(1, 0.04, 10)
    ad = fit_chosen(specs, y, "gpu-m", source=src, choose=True)
    # the 90th percentile of the cross-validated under-predictions, derived here without the module's folds: with
    # 10 subnets (at most 10 folds) the cross-validation leaves one out, so each prediction is the chosen design
    # (fit_chosen's doc: the source's columns, the architecture features, or both) fitted on the other 9; the 90th
    # percentile of 10 sorted values by linear interpolation sits at position 0.9 x 9 = 8.1
    designs = {"transfer": (src, tuple(f"src:{n}" for n in src.names)), "features": (None, tuple(DEFAULT_FEATURES)),
               "combined": (src, tuple(DEFAULT_FEATURES) + tuple(f"src:{n}" for n in src.names))}
    s, f = designs[ad.info["model"]]
    loo = [fit_chosen(specs[:i] + specs[i + 1:], np.delete(y, i), "gpu-m", source=s, features=f, seed=0,
                      margin=False).predict_ms([specs[i]])[0] for i in range(10)]
    u = sorted(float(m / p - 1) for m, p in zip(y, loo))
    want = max(0.0, u[8] + 0.1 * (u[9] - u[8])) * 100
    assert ad.info["margin_p90_pct"] == pytest.approx(want, abs=1e-3) and 1 < want < 20, (ad.info, want)
    path = ad.save(tmp_path / "gpu-m.json")
    acc = fit_accuracy_predictor(synthetic_dataset(300), model="ridge").save(tmp_path / "acc.json")
    res = CliRunner().invoke(main, ["pareto", "--budget", "40ms", "--adapter", str(path), "--predictor", str(acc),
                                    "--margin", "auto", "--out-dir", str(tmp_path), "--no-plot", "--effort", "fast",
                                    "--n-budgets", "4", "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["margin_pct"] == pytest.approx(ad.info["margin_p90_pct"], abs=1e-3)
    assert obj["search_budget_ms"] == pytest.approx(40 * (1 - obj["margin_pct"] / 100), rel=1e-6)
    assert "adapter's cross-validated under-predictions" in res.stderr
