"""OFA's ProxylessNAS family through the command line: enumerate, measure on the three CPU runtimes, predict,
export to ONNX/TFLite with random weights, OFA's ProxylessNAS table format, and search with a user's accuracy CSV."""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main
from ofa_profile.ops import subnet_ops
from ofa_profile.space import SubnetSpec, get_space

from helpers import fast_spec

SPACE = "ofa-proxyless-w1.3"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def lut128(tmp_path_factory):
    """A complete r=128 ProxylessNAS LUT measured with PyTorch eager (fast timing)."""
    d = tmp_path_factory.mktemp("px")
    out = d / "px.json"
    res = run("measure", "--device", fast_spec(d, "torch", name="fast-torch"), "--space", SPACE, "--resolutions", "128",
              "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def specialized(shared_data):
    root = shared_data / "reference" / "ofa-specialized"
    return root / "cpu_lat-10ms_top1-71.1_finetune-25" / "net.config"


def test_enumerate_counts_the_family_ops():
    res = run("enumerate", "--space", SPACE, "--resolutions", "128,224", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert sum(1 for r in rows if r["resolution"] == 224) == 103          # 2 + 5 x 18 + 9 + 2
    assert all("-se:" not in r["key"] for r in rows)                       # the ProxylessNAS grammar


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_measure_on_the_other_cpu_runtimes(tmp_path, runtime):
    from ofa_profile.lut import load_lut
    from ofa_profile.runtimes import get_runtime
    ok, why = get_runtime(runtime).check()
    if not ok:
        pytest.skip(why)
    out = tmp_path / "l.json"
    res = run("measure", "--device", fast_spec(tmp_path, runtime, name=f"fast-{runtime}"), "--space", SPACE, "--resolutions", "160",
              "--out", out, "--limit", "8", "--quiet")
    assert res.exit_code == 0, res.output
    lut = load_lut(out)
    assert lut.space == SPACE and lut.runtime == runtime and len(lut.entries) == 8
    assert all(e.median_ms > 0 for e in lut.entries.values())


def test_measure_default_out_names_the_space(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("measure", "--device", fast_spec(tmp_path, "torch", name="fast-torch"), "--space", SPACE, "--resolutions", "128",
              "--limit", "2", "--quiet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / f"fast-torch-{SPACE}.json").exists()


def test_predict_a_specialized_net_config(lut128, specialized):
    from ofa_profile.lut import load_lut
    res = run("predict", "--lut", lut128, "--arch", specialized, "--resolution", "128", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    spec = SubnetSpec.load(specialized, r=128)
    lut = load_lut(lut128)
    want = sum(lut.entries[op.key].median_ms for op in subnet_ops(spec))
    assert out["lut_sum_ms"] == pytest.approx(want)
    assert spec.space == SPACE


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_random_weights_matches_torch(tmp_path, specialized, fmt):
    out = tmp_path / f"net.{fmt}"
    res = run("export", "--arch", specialized, "--format", fmt, "--out", out, "--random-weights", "--json")
    if fmt == "tflite" and res.exit_code != 0 and "ai-edge-litert" in res.output:
        pytest.skip("ai-edge-litert is not installed")
    assert res.exit_code == 0, res.output
    js = json.loads(res.stdout[res.stdout.index("{"):])
    assert js["space"] == SPACE and js["supernet"] is None and out.exists()
    assert js["max_abs_diff"] < 1e-4


def test_random_weights_with_a_supernet_is_a_usage_error(tmp_path, specialized):
    res = run("export", "--arch", specialized, "--format", "onnx", "--out", tmp_path / "x.onnx", "--random-weights",
              "--supernet", "bundled")
    assert res.exit_code == 2 and "--random-weights" in res.output


def test_ofa_table_export_is_proxylessnas_format(lut128, tmp_path):
    import yaml
    d = tmp_path / "tables"
    d.mkdir()
    res = run("lut", "export-ofa", lut128, "--out", d)
    assert res.exit_code == 0, res.output
    t = yaml.safe_load((d / "128_lookup_table.yaml").read_text())
    assert all(set(v) == {"count", "mean", "var"} for v in t.values())
    assert "Logits-input:4x4x1664-output:1000" in t                       # the pool is part of Logits
    back = tmp_path / "back.json"
    res = run("lut", "import-ofa", d, "--out", back)
    assert res.exit_code == 0, res.output
    assert json.loads(back.read_text())["space"] == SPACE


def _accuracy_csv(path: Path, n: int = 60) -> Path:
    """A user's accuracy file for 60 seeded subnets (here a smooth function of MACs: the search only needs
    numbers to rank by; what they mean is the user's)."""
    sp = get_space(SPACE)
    rng = random.Random(0)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["r", "ks", "e", "d", "accuracy"])
        w.writeheader()
        for _ in range(n):
            s = sp.sample(rng, 128)
            macs = sum(op.macs() for op in subnet_ops(s))
            o = s.to_ofa()
            w.writerow({"r": s.r, "ks": json.dumps(o["ks"]), "e": json.dumps(o["e"]), "d": json.dumps(o["d"]),
                        "accuracy": round(0.5 + 0.03 * math.log(macs / 1e6), 4)})
    return path


def test_pareto_searches_the_family_with_a_users_accuracy_csv(lut128, tmp_path):
    from ofa_profile.lut import load_lut
    acc = _accuracy_csv(tmp_path / "acc.csv")
    lut = load_lut(lut128)
    sp = get_space(SPACE)
    lo, hi = lut.lut_sum_ms(sp.smallest(128)), lut.lut_sum_ms(sp.largest(128))
    budget = round(lo + 0.4 * (hi - lo), 3)          # the budget exactly as the command line gives it
    res = run("pareto", "--budget", f"{budget:.3f}ms", "--lut", lut128, "--space", SPACE, "--accuracy-data", acc,
              "--out-dir", tmp_path / "out", "--json", "--no-plot")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    best = SubnetSpec.from_ofa(out["best"]["arch"], space=SPACE)
    assert best.space == SPACE and best.d[-1] == 1
    assert lut.lut_sum_ms(best) <= budget + 1e-9
    assert out["best"]["latency_ms"] == pytest.approx(lut.lut_sum_ms(best), rel=1e-6)
    # every frontier subnet is a valid ProxylessNAS subnet (the last stage is one block)
    for row in out["frontier"]:
        assert SubnetSpec.from_ofa(row["arch"], space=SPACE).d[-1] == 1


def _documented_csv() -> tuple[list[str], list[dict]]:
    """The accuracy CSV format docs/search-spaces.md shows (its ```csv block): columns and rows."""
    import re
    text = (Path(__file__).resolve().parents[1] / "docs" / "search-spaces.md").read_text()
    block = re.search(r"^```csv\n(.*?)^```", text, re.S | re.M).group(1)
    rows = list(csv.DictReader(block.splitlines()))
    return list(rows[0]), rows


def test_the_documented_accuracy_csv_reads_as_proxyless_subnets(tmp_path):
    from ofa_profile.accuracy_data import read_accuracy_csv
    cols, rows = _documented_csv()
    p = tmp_path / "doc.csv"
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    ds = read_accuracy_csv(p, space=SPACE)
    assert len(ds) == len(rows) and all(s.space == SPACE and s.d[-1] == 1 for s in ds.specs)


def test_pareto_without_accuracies_advises_what_works_and_the_advice_works(lut128, tmp_path):
    """The refusal names --accuracy-data and its CSV format (not OFA's w1.2 .pth, refused for this space); a CSV
    with the documented columns then searches."""
    from ofa_profile.lut import load_lut
    lut = load_lut(lut128)
    sp = get_space(SPACE)
    budget = lut.lut_sum_ms(sp.smallest(128)) * 1.5
    base = ["pareto", "--budget", f"{budget:.3f}ms", "--lut", lut128, "--space", SPACE, "--out-dir", tmp_path,
            "--no-plot", "--effort", "fast", "--n-budgets", "3"]
    res = run(*base)
    errors = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert res.exit_code == 1 and len(errors) == 1, res.output
    line = errors[0]
    assert "--accuracy-data FILE.csv" in line and "docs/search-spaces.md" in line and ".pth" not in line
    cols, _ = _documented_csv()
    acc = _accuracy_csv(tmp_path / "acc.csv")
    with open(acc, newline="") as f:
        assert set(csv.DictReader(f).fieldnames) == set(cols)     # the documented columns
    ok = run(*base, "--accuracy-data", acc)
    assert ok.exit_code == 0, ok.output


def test_calibrate_a_proxyless_lut(lut128, tmp_path, monkeypatch):
    import shutil

    from ofa_profile.lut import load_lut
    monkeypatch.chdir(tmp_path)
    dev = fast_spec(tmp_path, "torch", name="fast-torch")
    lut_path = tmp_path / f"fast-torch-{SPACE}.json"          # measure's default name for this space
    shutil.copy(lut128, lut_path)
    res = run("calibrate", "--device", dev, "--space", "ofa-mbv3-w1.0", "--lut", lut_path, "--samples", "10")
    assert res.exit_code == 2 and "is for space ofa-proxyless-w1.3, not ofa-mbv3-w1.0" in res.output
    res = run("calibrate", "--device", dev, "--space", SPACE, "--samples", "10",
              "--test-samples", "3", "--rounds", "1", "--quiet", "--json")
    assert res.exit_code == 0, res.output
    lut = load_lut(lut_path)
    names = lut.calibration["feature_names"]
    assert list(names[1:7]) == [f"stage{i}_ms" for i in range(1, 7)] and len(names) == 9     # six stages
    spec = get_space(SPACE).sample(5, 128)
    assert lut.predict_ms(spec) > 0 and lut.predict_ms(spec) != lut.lut_sum_ms(spec)
