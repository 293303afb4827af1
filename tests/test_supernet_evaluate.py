"""Accuracy-dataset logic: seeded subnets, BN recalibration, MACs/params, atomic CSV, shards."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from ofa_model.evaluate import (CSV_FIELDS, accuracy_dataset, evaluate_spec, merge_shards, subnet_macs_params,
                                val_subset)
from ofa_profile.ops import subnet_ops
from ofa_profile.space import SubnetSpec, get_space

from helpers import tiny_supernet


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval")
    return (*tiny_supernet(base), base)


def test_macs_params_match_module(setup):
    model = setup[0]
    spec = get_space("ofa-mbv3-w1.0").sample(11, resolution=160)
    model.set_active_subnet(spec)
    sub = model.get_active_subnet()
    macs, params = subnet_macs_params(spec, 3)
    assert params == sum(p.numel() for p in sub.parameters())
    full = sum(op.macs() for op in subnet_ops(spec))
    assert macs == full - 1280 * 1000 + 1280 * 3


def test_accuracy_dataset_csv_and_shards(setup, tmp_path):
    model, tr, va, _ = setup
    res = (128, 132)
    p = accuracy_dataset(model, tr, va, tmp_path / "acc.csv", n_subnets=3, seed=5, resolutions=res, n_val=6,
                         n_calib=8, batch_size=8)
    rows = list(csv.DictReader(open(p)))
    assert [r["index"] for r in rows] == ["0", "1", "2"] and tuple(rows[0]) == CSV_FIELDS
    for r in rows:
        spec = SubnetSpec("ofa-mbv3-w1.0", tuple(json.loads(r["ks"])), tuple(json.loads(r["e"])),
                          tuple(json.loads(r["d"])), int(r["r"])).validated()
        assert spec.r in res and int(r["n_val"]) == 6
        # any row can be reproduced alone: this subnet, the run's val subset and calibration seed (the seed's)
        alone = evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8, val_indices=val_subset(len(va), 6, 5),
                              calib_seed=5)
        assert float(r["accuracy"]) == pytest.approx(alone, abs=1e-4) and round(alone * 6) == alone * 6
        assert int(r["macs"]) == subnet_macs_params(spec, 3)[0]
    # shards reproduce the same rows
    a = accuracy_dataset(model, tr, va, tmp_path / "s0.csv", 3, seed=5, resolutions=res, n_val=6, n_calib=8,
                         batch_size=8, shard=(0, 2))
    b = accuracy_dataset(model, tr, va, tmp_path / "s1.csv", 3, seed=5, resolutions=res, n_val=6, n_calib=8,
                         batch_size=8, shard=(1, 2))
    merged = list(csv.DictReader(open(merge_shards([a, b], tmp_path / "m.csv"))))
    assert merged == rows
    assert not list(tmp_path.glob(".*tmp"))


def test_evaluate_spec_is_deterministic(setup):
    model, tr, va, _ = setup
    spec = get_space("ofa-mbv3-w1.0").smallest(128)
    a = evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8)
    b = evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8)
    assert a == b   # seeded calibration: deterministic


def test_onnxruntime_engine_matches_torch(setup):
    """The CPU val pass through onnxruntime gives torch's logits and the same top-1."""
    from ofa_model.evaluate import _ort_runner
    from ofa_profile.errors import OfaProfileError

    model, tr, va, _ = setup
    spec = get_space("ofa-mbv3-w1.0").sample(7, resolution=136)
    model.set_active_subnet(spec)
    sub = model.get_active_subnet().eval()
    x = torch.randn(5, 3, 136, 136, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = sub(x).numpy()
    got = _ort_runner(sub, 136)(x.numpy())
    assert got.shape == ref.shape == (5, 3)
    assert abs(got - ref).max() <= 1e-4 * max(1.0, abs(ref).max())
    a = evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8, engine="torch")
    b = evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8, engine="onnxruntime")
    assert a == b
    with pytest.raises(OfaProfileError, match="unknown evaluation engine"):
        evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8, engine="tvm")
