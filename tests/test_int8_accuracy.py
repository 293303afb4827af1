"""Int8 accuracy datasets: `accuracy-dataset --precision int8` rows, their precision on reading (never mixed), the
drop model's data, and the search's accuracy precision against its LUT's."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_profile.accuracy_data import read_accuracy_csv, read_accuracy_csvs
from ofa_profile.errors import OfaProfileError

from helpers import tiny_supernet

BUNDLED_CSV = "ofa_model/weights/accuracy-dataset.csv"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_supernet(tmp_path_factory.mktemp("acc8"))


def test_int8_dataset_rows_are_evaluate_int8_and_resume(tiny, tmp_path):
    """Each row holds the subnet's int8 top-1 and its fp32 top-1 as evaluate --precision int8 measures them (same
    val subset, BN and int8 calibration seeds); a rerun keeps the rows; the precision is recorded and read back."""
    from ofa_model.evaluate import accuracy_dataset, csv_fields, dataset_spec, evaluate_precisions, val_subset
    model, tr, va = tiny
    kw = dict(seed=5, resolutions=(128,), n_val=6, n_calib=8, batch_size=8, precision="int8", n_int8_calib=4)
    p = accuracy_dataset(model, tr, va, tmp_path / "a8.csv", 2, **kw)
    rows = list(csv.DictReader(open(p)))
    assert tuple(rows[0]) == csv_fields("int8") and [r["precision"] for r in rows] == ["int8", "int8"]
    spec = dataset_spec("ofa-mbv3-w1.0", 5, 1, (128,))
    both = evaluate_precisions(model, spec, tr, va, n_calib=8, n_int8_calib=4, batch_size=8, calib_seed=5,
                               val_indices=val_subset(len(va), 6, 5))
    assert float(rows[1]["accuracy"]) == pytest.approx(both["int8"], abs=1e-6)
    assert float(rows[1]["accuracy_fp32"]) == pytest.approx(both["fp32"], abs=1e-6)
    ds = read_accuracy_csv(p)
    assert ds.precision == "int8" and ds.accuracy_fp32 is not None
    assert np.allclose(ds.drop().accuracy, ds.accuracy - ds.accuracy_fp32)
    # resumable: a longer run keeps the two rows (not re-evaluated: their text is unchanged) and adds one
    before = p.read_text()
    p = accuracy_dataset(model, tr, va, p, 3, **kw)
    assert p.read_text().startswith(before) and len(list(csv.DictReader(open(p)))) == 3
    # one file, one precision: an fp32 run into it, or an int8 run with other int8 calibration, is refused
    with pytest.raises(OfaProfileError, match="int8 accuracies and this run measures fp32"):
        accuracy_dataset(model, tr, va, p, 3, **{**kw, "precision": "fp32"})
    with pytest.raises(OfaProfileError, match="int8-calib-images"):
        accuracy_dataset(model, tr, va, p, 3, **{**kw, "n_int8_calib": 5})


def test_int8_shards_merge_and_mixed_shards_are_refused(tiny, tmp_path):
    from ofa_model.evaluate import accuracy_dataset, merge_shards
    model, tr, va = tiny
    kw = dict(seed=1, resolutions=(128,), n_val=4, n_calib=8, batch_size=8)
    a = accuracy_dataset(model, tr, va, tmp_path / "s0.csv", 2, shard=(0, 2), precision="int8", n_int8_calib=4,
                         **kw)
    b = accuracy_dataset(model, tr, va, tmp_path / "s1.csv", 2, shard=(1, 2), precision="int8", n_int8_calib=4,
                         **kw)
    m = merge_shards([a, b], tmp_path / "m.csv")
    assert read_accuracy_csv(m).precision == "int8" and len(read_accuracy_csv(m)) == 2
    c = accuracy_dataset(model, tr, va, tmp_path / "f1.csv", 2, shard=(1, 2), **kw)
    with pytest.raises(OfaProfileError, match="merge shards of one precision"):
        merge_shards([a, c], tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def _int8_csv(path, n=40, precisions=None):
    """An int8 dataset CSV: the bundled fp32 rows with precision columns (accuracy lowered by a made-up drop)."""
    from ofa_model.evaluate import csv_fields
    with open(BUNDLED_CSV) as f:
        rows = list(csv.DictReader(f))[:n]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=csv_fields("int8"))
        w.writeheader()
        for i, r in enumerate(rows):
            prec = precisions[i] if precisions else "int8"
            w.writerow({**r, "accuracy": f"{float(r['accuracy']) - 0.001 * (i % 7):.6f}", "precision": prec,
                        "accuracy_fp32": r["accuracy"], "n_int8_calib": 100})
    return path


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["int8", "fp32", ""]), min_size=2, max_size=6))
def test_mixed_precision_rows_are_refused_in_one_line(tmp_path_factory, precisions):
    p = _int8_csv(tmp_path_factory.mktemp("mix") / "a.csv", len(precisions), precisions)
    kinds = {x or "fp32" for x in precisions}
    if len(kinds) == 1:
        assert read_accuracy_csv(p).precision == kinds.pop()
        return
    with pytest.raises(OfaProfileError, match="one precision") as e:
        read_accuracy_csv(p)
    assert "\n" not in str(e.value)


def test_files_of_two_precisions_are_refused(tmp_path):
    p = _int8_csv(tmp_path / "a8.csv")
    with pytest.raises(OfaProfileError, match="different precisions"):
        read_accuracy_csvs([p, BUNDLED_CSV])
    bad = tmp_path / "b.csv"
    bad.write_text(p.read_text().replace(",int8,", ",int4,", 1))
    with pytest.raises(OfaProfileError, match="precision 'int4'"):
        read_accuracy_csv(bad)


def test_a_predictor_fitted_on_int8_data_says_int8_and_pareto_checks_the_lut(tmp_path):
    """A predictor of int8 top-1 records its precision; the search refuses it with an fp32 LUT, labels it int8 with
    an int8 LUT, and says so when an int8 LUT is searched with fp32 accuracy."""
    from ofa_profile.accuracy import fit_accuracy_predictor
    from ofa_profile.pareto import accuracy_precision
    p8 = fit_accuracy_predictor(_int8_csv(tmp_path / "a8.csv"), model="ridge")
    p32 = fit_accuracy_predictor(BUNDLED_CSV, model="ridge")
    assert p8.info["precision"] == "int8" and "precision" not in p32.info
    assert accuracy_precision(p8, "int8") == "int8"
    said = []
    assert accuracy_precision(p32, "int8", log=said.append) == "fp32" and "fp32 top-1" in said[0]
    with pytest.raises(OfaProfileError, match="int8 top-1 but the latency source times fp32"):
        accuracy_precision(p8, "fp32")


def test_pareto_with_int8_accuracy_data_cli(tmp_path):
    """`pareto --accuracy-data` of an int8 dataset: refused (one line, exit 1) with an fp32 LUT; with an int8 LUT
    its JSON says the accuracy is int8."""
    a8 = _int8_csv(tmp_path / "a8.csv")
    p = subprocess.run([sys.executable, "-m", "ofa_profile", "pareto", "--budget", "30ms", "--lut", "lut/cpu-ort.json",
                        "--accuracy-data", str(a8), "--no-plot", "--out-dir", str(tmp_path), "--effort", "fast"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "int8 top-1 but the latency source times fp32" in p.stderr
    # an int8 LUT: the shipped figures relabelled int8 (the search reads the figures; the precision is the check)
    l8 = tmp_path / "cpu-ort-int8.json"
    raw = json.loads(open("lut/cpu-ort.json").read())
    raw["timed"] = {**(raw.get("timed") or {"graph": "ofa-profile", "classes": 1000, "threads": 1}),
                    "precision": "int8"}
    raw["calibration"] = None
    l8.write_text(json.dumps(raw))
    p = subprocess.run([sys.executable, "-m", "ofa_profile", "pareto", "--budget", "30ms", "--lut", str(l8),
                        "--accuracy-data", str(a8), "--no-plot", "--out-dir", str(tmp_path), "--effort", "fast",
                        "--json"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["accuracy_predictor"]["precision"] == "int8" and out["accuracy_predictor"]["label"].startswith("int8 ")


@pytest.mark.parametrize("args, words", [
    (["--int8-calib-images", "5"], "--int8-calib-images applies to --precision int8"),
    (["--precision", "int8", "--engine", "torch"], "ONNX Runtime on the CPU"),
    (["--precision", "int4"], "int4"),
])
def test_accuracy_dataset_int8_usage_errors(tmp_path, args, words):
    p = subprocess.run([sys.executable, "-m", "ofa_profile", "accuracy-dataset", "--n", "2", "--out",
                        str(tmp_path / "a.csv"), *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr and words in p.stderr, p.stderr
    assert not (tmp_path / "a.csv").exists()
