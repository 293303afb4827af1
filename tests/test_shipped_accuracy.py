"""The bundled accuracy dataset and predictor are data the package ships: these tests hold them to the bar a
user relies on when searching with ``--accuracy bundled`` or ``pareto --verify`` (a thin, stale or flat file
fails here, not in a user's search).

- the dataset: >= 1,000 seeded subnets over all 25 resolutions, each measured on >= 2,000 val images, measured
  with the shipped weights, and a landscape worth searching (Kendall tau between MACs and top-1 >= 0.5);
- the predictor: fitted on exactly that file for exactly those weights, and a fit of the same model on 80 % of
  the rows ranks the other 20 % with Kendall tau >= 0.7 (refitted here, not read from the file).
"""
from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from scipy.stats import kendalltau

from ofa_profile.accuracy import bundled_predictor_path, fit_with_held_out, load_accuracy_predictor
from ofa_profile.space import get_space

WEIGHTS = bundled_predictor_path().parent
DATASET = WEIGHTS / "accuracy-dataset.csv"
MANIFEST = WEIGHTS / "manifest.json"

pytestmark = pytest.mark.skipif(not (DATASET.exists() and bundled_predictor_path().exists() and MANIFEST.exists()),
                                reason="no bundled accuracy dataset, predictor or manifest in this checkout")


def _rows() -> list[dict]:
    with open(DATASET, newline="") as f:
        return list(csv.DictReader(f))


def test_shipped_dataset_covers_the_space_with_enough_images():
    rows = _rows()
    space = get_space(json.loads(MANIFEST.read_text())["space"])
    assert len(rows) >= 1000
    assert len({int(r["index"]) for r in rows}) == len(rows)          # distinct seeded subnets
    assert {int(r["r"]) for r in rows} == set(space.resolutions)      # all 25 resolutions
    assert min(int(r["n_val"]) for r in rows) >= 2000


def test_shipped_dataset_is_a_landscape_worth_searching():
    rows = _rows()
    macs = np.array([float(r["macs"]) for r in rows])
    top1 = np.array([float(r["accuracy"]) for r in rows])
    tau = kendalltau(macs, top1).statistic
    assert tau >= 0.5, f"Kendall tau(MACs, top-1) = {tau:.3f}"


def test_shipped_predictor_belongs_to_the_shipped_dataset_and_weights():
    info = load_accuracy_predictor(bundled_predictor_path()).info
    man = json.loads(MANIFEST.read_text())
    assert info["supernet_sha256"] == man["sha256"]
    assert info["source_sha256"] == hashlib.sha256(DATASET.read_bytes()).hexdigest()
    assert info["dataset"] == "imagenette" and man["sha256"][:12] in info["describes"]


def test_shipped_predictor_model_ranks_held_out_subnets():
    """The held-out figures of `ofa-profile accuracy-predictor` (the command that made the file), recomputed."""
    pred = load_accuracy_predictor(bundled_predictor_path())
    _, report = fit_with_held_out(DATASET, pred.model, pred.encoding, test_frac=0.2, seed=0)
    held = report["held_out"]
    assert held["n"] >= 200
    assert held["kendall_tau"] >= 0.7, f"held-out Kendall tau {held['kendall_tau']:.3f}"
