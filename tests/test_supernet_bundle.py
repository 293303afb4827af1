"""Bundled weights (fp16 + sha256 manifest), the standalone baseline, the model card, the resumable accuracy
dataset and the supernet commands of the CLI, on a tiny synthetic training run."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ofa_model import bundle
from ofa_model.bundle import load_bundled_supernet, load_supernet, save_bundle, sha256_file
from ofa_model.card import build_card, card_specs, read_run, train_command
from ofa_model.data import build_cache
from ofa_model.evaluate import CSV_FIELDS, PARTIAL_SUFFIX, _write_csv_atomic, accuracy_dataset
from ofa_model.supernet import OFAMobileNetV3, WeightsError
from ofa_model.train import TrainConfig, train
from ofa_profile.accuracy import read_accuracy_csv
from ofa_profile.atomic import temp_tag
from ofa_profile.errors import OfaProfileError
from ofa_profile.space import get_space

from helpers import make_folder, run_cli

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cli(*args, **kw):
    return subprocess.run([PY, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True, env=_env(),
                          timeout=300, **kw)


def _one_line_error(r):
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A PS run and a standalone (smallest) run of the same tiny recipe: 6 phases x 1 step."""
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("runs")
    tr, va = make_folder(base / "train", 6), make_folder(base / "val", 3, seed=1)
    common = dict(train_data=str(tr), val_data=str(va), cache_dir=str(base / "cache"), image_size=40,
                  resolutions=(40,), batch_size=4, max_steps_per_phase=1, eval_images=0, calib_images=4, log_every=1)
    ps = train(TrainConfig(out=str(base / "ps"), **common))
    alone = train(TrainConfig(out=str(base / "alone"), standalone="smallest", **common))
    return base, tr, va, Path(ps), Path(alone)


def test_bundle_roundtrip_integrity_and_errors(tmp_path, monkeypatch):
    torch.manual_seed(0)
    m = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3)
    man = save_bundle(m, tmp_path / "w", "tiny", classes=("a", "b", "c"), dataset="synthetic")
    p = tmp_path / "w" / "tiny.pt"
    assert man["sha256"] == sha256_file(p) and man["n_classes"] == 3 and man["dtype"] == "float16"
    assert json.loads((tmp_path / "w" / "manifest.json").read_text()) == man
    raw = torch.load(p, map_location="cpu", weights_only=True)
    assert raw["state_dict"]["classifier.linear.weight"].dtype == torch.float16      # fp16 on disk
    got, info = load_bundled_supernet(p)
    assert info.verified and info.classes == ("a", "b", "c") and info.space == "ofa-mbv3-w1.0"
    w = got.state_dict()["blocks.5.conv.depth_conv.conv.conv.weight"]
    assert w.dtype == torch.float32                                                      # fp32 once loaded
    ref = m.state_dict()["blocks.5.conv.depth_conv.conv.conv.weight"]
    assert torch.allclose(w, ref, rtol=1e-3, atol=1e-4) and not torch.equal(w, ref)
    # load_supernet finds the manifest beside the file and verifies it too
    assert load_supernet(p)[1].verified
    # another space than the caller asks for
    with pytest.raises(WeightsError, match="are for space ofa-mbv3-w1.0, not ofa-mbv3-w1.2"):
        load_bundled_supernet(p, space="ofa-mbv3-w1.2")
    # corrupt: one byte changed -> refused before unpickling
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="is corrupt"):
        load_bundled_supernet(p)
    # missing file / missing manifest / default bundle absent
    with pytest.raises(WeightsError, match="does not exist"):
        load_bundled_supernet(tmp_path / "w" / "nope.pt")
    (tmp_path / "w" / "manifest.json").unlink()
    with pytest.raises(WeightsError, match="manifest .* does not exist"):
        load_bundled_supernet(p)
    monkeypatch.setattr(bundle, "weights_dir", lambda: tmp_path / "empty")
    with pytest.raises(WeightsError, match="bundled supernet weights .* do not exist yet.*--supernet"):
        load_supernet(None)


def test_plain_checkpoint_loads_unverified(tmp_path):
    m = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=5)
    torch.save({"state_dict": m.state_dict()}, tmp_path / "ofa_style.pth")        # OFA's own layout, no meta
    got, info = load_supernet(tmp_path / "ofa_style.pth")
    assert not info.verified and info.n_classes == 5 and info.sha256 == sha256_file(tmp_path / "ofa_style.pth")
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), m.state_dict().values()))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable torch checkpoint"):
        load_supernet(tmp_path / "junk.pt")


def test_standalone_run_trains_only_its_subnet(runs):
    base, _, _, ps, alone = runs
    ps_run, alone_run = read_run(ps.parent), read_run(alone.parent)
    assert alone_run.standalone == get_space("ofa-mbv3-w1.0").smallest(224)
    assert ps_run.standalone is None
    # the same number of optimizer steps as the whole PS run (6 phases x 1 step)
    assert [p["phase"] for p in ps_run.phases] == ["teacher", "kernel", "depth1", "depth2", "expand1", "expand2"]
    assert ps_run.steps == 6 and alone_run.steps == 6 and [p["phase"] for p in alone_run.phases] == ["standalone"]
    assert alone_run.hardware["device"] == "cpu" and "cpu" in alone_run.hardware
    # blocks outside the smallest subnet (depth 2: blocks 3 and 4 of stage 1) keep their initial weights
    torch.manual_seed(0)
    init = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3, dropout_rate=0.1).state_dict()
    sd = torch.load(alone, map_location="cpu", weights_only=True)["state_dict"]
    skipped = [k for k in sd if k.startswith(("blocks.3.", "blocks.4."))]
    active = [k for k in sd if k.startswith("blocks.1.") and k.endswith("weight")]
    assert skipped and all(torch.equal(sd[k], init[k]) for k in skipped)
    assert any(not torch.equal(sd[k], init[k]) for k in active)


def test_train_command_reproduces_flags():
    line = train_command({"lr_scale": 4.0, "crop_scale_min": 0.25, "channels_last": False, "batch_size": 64,
                          "phase_epochs": [["teacher", 8.0], ["kernel", 1.5]], "resolutions": [96, 128]})
    assert line.endswith("--phase-epochs teacher=8,kernel=1.5 --lr-scale 4.0 --resolutions 96,128 "
                         "--crop-scale-min 0.25 --no-channels-last"), line
    assert "--batch-size" not in line and "--channels-last" not in train_command({"channels_last": True})


@pytest.mark.slow
def test_model_card_from_a_run(runs, tmp_path):
    base, tr, va, ps, alone = runs
    out = tmp_path / "pkg"
    kw = dict(name="tiny", dataset="Synthetic", standalone_dirs=[str(alone.parent)], resolutions=(128,),
              n_random=1, n_calib=8, n_val=0, batch_size=8, device="cpu", progress=False)
    card = build_card(str(ps.parent), str(tr), str(va), str(out), **kw)
    text = card.read_text()
    man = json.loads((out / "weights" / "manifest.json").read_text())
    assert man["sha256"] == sha256_file(out / "weights" / "tiny.pt") and man["sha256"] in text
    assert man["recipe"]["steps"] == 6 and man["classes"] == ["class0", "class1", "class2"]
    for needle in ("| largest |", "| smallest |", "| random-0 |", "| teacher | 1 |", "Trained on CPU only",
                   "trained alone", "| smallest | 6 | 6 |", "smallest at 224: >= 80 % -> measured – %: not measured",
                   # the reproduce line carries the non-default evaluation settings
                   "--standalone " + str(alone.parent) + " --resolutions 128 --n-random 1 --n-calib 8 --batch-size 8\n"):
        assert needle in text, needle
    # ... and the baseline's own training line, written to the folder the card line reads
    alone_line = next(ln for ln in text.splitlines() if f"--out {alone.parent} " in ln)
    assert alone_line.startswith("python -m ofa_model.train ") and "--standalone smallest" in alone_line
    cache = json.loads((ps.parent / "card_eval.json").read_text())
    assert len(cache) == 3 and all(v["n_val"] == 9 for v in cache.values())
    # each evaluation is a count of 9 images and is the figure the card prints
    assert all(round(v["top1"] * 9, 6) == round(v["top1"] * 9) and f"{100 * v['top1']:.2f}" in text
               for v in cache.values()), (cache, text)
    # a rerun reuses every evaluation and writes the same card
    before = (ps.parent / "card_eval.json").stat().st_mtime_ns
    card2 = build_card(str(ps.parent), str(tr), str(va), str(tmp_path / "pkg2"), **kw)
    assert card2.read_text().replace(str(tmp_path / "pkg2"), str(out)) == text
    assert (ps.parent / "card_eval.json").stat().st_mtime_ns == before
    # the BN statistics depend on the recalibration batch: the card says which, and another batch is evaluated
    # afresh rather than served from the cache under the old batch's figures
    assert "batches of 8: the statistics depend slightly on the batch, so pass `--batch-size 8`" in text
    card3 = build_card(str(ps.parent), str(tr), str(va), str(tmp_path / "pkg3"), **{**kw, "batch_size": 3})
    assert "batches of 3:" in card3.read_text() and "--batch-size 3\n" in card3.read_text()
    cache3 = json.loads((ps.parent / "card_eval.json").read_text())
    assert len(cache3) == 6 and sorted(k for k in cache3 if k not in cache) == sorted(
        k.replace("b8|", "b3|") for k in cache)
    # the card's fixed random subnets are fixed
    assert card_specs("ofa-mbv3-w1.0", 3) == card_specs("ofa-mbv3-w1.0", 3)
    # a standalone run is refused as --run, in one line
    r = subprocess.run([PY, "-m", "ofa_model.card", "--run", str(alone.parent), "--train-data", str(tr), "--val-data",
                        str(va), "--out", str(tmp_path / "x")], capture_output=True, text=True, env=_env())
    assert r.returncode == 1 and "is a --standalone run" in r.stderr and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_model_card_checks_the_accuracy_dataset(runs, tmp_path):
    """With OUT/weights/accuracy-dataset.csv beside the bundle, the card describes it and evaluates its first rows
    again with the rows' own settings: the same weights give the same top-1; an edited row shows as a difference."""
    base, tr, va, ps, _ = runs
    out = tmp_path / "pkg"
    kw = dict(name="tiny", dataset="Synthetic", resolutions=(128,), n_random=0, n_calib=8, n_val=0, batch_size=8,
              device="cpu", progress=False, n_dataset_check=2)
    build_card(str(ps.parent), str(tr), str(va), str(out), **kw)
    assert "## Accuracy dataset" not in (out / "MODEL_CARD.md").read_text()
    model, _ = load_bundled_supernet(out / "weights" / "tiny.pt")
    ctr = build_cache(base / "train", base / "cache" / "train", 40)
    cva = build_cache(base / "val", base / "cache" / "val", 40, classes=ctr.classes)
    data = out / "weights" / "accuracy-dataset.csv"
    accuracy_dataset(model, ctr, cva, data, 3, seed=3, resolutions=(128, 132), n_val=5, n_calib=4, batch_size=8,
                     device="cpu")
    text = build_card(str(ps.parent), str(tr), str(va), str(out), **kw).read_text()
    assert "3 seeded random subnets (seed 3) over 2 resolution(s) (128-132)" in text, text
    assert "rows 0-1 evaluated again with the same settings: largest difference 0.00 points" in text, text
    assert "subnets/min in one process" in text
    rows = list(csv.DictReader(open(data)))
    rows[1]["accuracy"] = str(float(rows[1]["accuracy"]) + 0.2 if float(rows[1]["accuracy"]) < 0.5 else
                              float(rows[1]["accuracy"]) - 0.2)
    _write_csv_atomic(rows, data)
    text = build_card(str(ps.parent), str(tr), str(va), str(out), **kw).read_text()
    assert "largest difference 20.00 points" in text
    # a file of another seed's subnets is refused in one line, the card left as it was
    rows[0]["arch"] = rows[2]["arch"]
    _write_csv_atomic(rows, data)
    with pytest.raises(OfaProfileError, match="row 0 is not subnet 0 of seed 3"):
        build_card(str(ps.parent), str(tr), str(va), str(out), **kw)
    assert (out / "MODEL_CARD.md").read_text() == text
    # ... and a card of other weights that fails there publishes nothing: the package keeps its weights, manifest
    # and card together (the new bundle lived in the run's staging folder, now gone)
    other = train(TrainConfig(out=str(base / "ps-seed1"), train_data=str(tr), val_data=str(va), seed=1,
                              cache_dir=str(base / "cache"), image_size=40, resolutions=(40,), batch_size=4,
                              max_steps_per_phase=1, eval_images=0, calib_images=4))
    before = {f.name: f.read_bytes() for f in (out / "weights").iterdir()}
    killed = other.parent / f".card-bundle.4194305-{temp_tag().split('-', 1)[1]}.x"
    killed.mkdir()                                   # a killed card's staging folder: removed by the next one
    with pytest.raises(OfaProfileError, match="row 0 is not subnet 0 of seed 3"):
        build_card(str(other.parent), str(tr), str(va), str(out), **kw)
    assert {f.name: f.read_bytes() for f in (out / "weights").iterdir()} == before
    assert (out / "MODEL_CARD.md").read_text() == text and not list(other.parent.glob(".card-bundle.*"))
    # ... and so is a file that is not an accuracy dataset at all
    data.write_text("a,b\n1,2\n")
    with pytest.raises(OfaProfileError, match="is not an accuracy-dataset CSV"):
        build_card(str(ps.parent), str(tr), str(va), str(out), **kw)
    assert (out / "MODEL_CARD.md").read_text() == text


@pytest.mark.slow
def test_accuracy_dataset_resumes(runs, tmp_path):
    base, _, _, ps, _ = runs
    model, info = load_supernet(ps)
    tr = build_cache(base / "train", base / "cache" / "train", 40)
    va = build_cache(base / "val", base / "cache" / "val", 40, classes=tr.classes)
    kw = dict(seed=3, resolutions=(128, 132), n_val=5, n_calib=4, batch_size=8, device="cpu")
    out = tmp_path / "acc.csv"
    accuracy_dataset(model, tr, va, out, 2, **kw)
    rows = list(csv.DictReader(open(out)))
    assert tuple(rows[0]) == CSV_FIELDS and [r["index"] for r in rows] == ["0", "1"]
    # mark row 0: a resumed run must keep it, not re-evaluate it; row 2 sits in a partial file cut mid-line
    rows[0]["accuracy"] = "0.123456"
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    accuracy_dataset(model, tr, va, tmp_path / "full.csv", 4, **kw)
    full = list(csv.DictReader(open(tmp_path / "full.csv")))
    part = tmp_path / ("acc.csv" + PARTIAL_SUFFIX)
    with open(part, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerow({**full[2], "accuracy": "0.654321"})
        f.write(",".join(full[3][k] for k in CSV_FIELDS[:5]))      # a row cut by a kill
    accuracy_dataset(model, tr, va, out, 4, **kw)
    got = list(csv.DictReader(open(out)))
    assert [r["index"] for r in got] == ["0", "1", "2", "3"] and not part.exists()
    assert got[0]["accuracy"] == "0.123456" and got[2]["accuracy"] == "0.654321"
    assert got[3] == full[3] and got[1] == full[1]
    # the predictor's reader takes the file as it is
    ds = read_accuracy_csv(out)
    assert len(ds) == 4 and set(ds.resolutions) <= {128, 132}
    # rows of another run (another seed) are refused, nothing overwritten
    with pytest.raises(Exception, match="holds row 0 of another run"):
        accuracy_dataset(model, tr, va, out, 4, **{**kw, "seed": 4})
    assert list(csv.DictReader(open(out))) == got


@pytest.mark.slow
def test_cli_train_help_accuracy_dataset_and_errors(runs, tmp_path):
    base, tr, va, ps, _ = runs
    r = _cli("train", "--help")                       # a real process; the runs below in this one (faster)
    assert r.returncode == 0 and "Usage: ofa-profile train" in r.stdout and "--standalone" in r.stdout
    out = tmp_path / "acc.csv"
    args = ["accuracy-dataset", "--supernet", ps, "--n", 2, "--seed", 1, "--out", out, "--resolutions", "128",
            "--train-data", tr, "--val-data", va, "--cache-dir", tmp_path / "c", "--n-val", 4, "--n-calib", 4,
            "--batch-size", 8, "--device", "cpu", "-q", "--json"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["rows"] == 2 and summary["supernet_sha256"] == sha256_file(ps) and not summary["verified"]
    rows = list(csv.DictReader(open(out)))
    assert {row["r"] for row in rows} == {"128"} and {row["n_val"] for row in rows} == {"4"}
    # shards + merge give the same rows
    for k in (0, 1):
        a = [str(x) for x in args]
        a[a.index("--out") + 1] = str(tmp_path / f"s{k}.csv")
        assert run_cli(*a, "--shard", f"{k}/2").returncode == 0
    r = run_cli("accuracy-dataset", "--merge", tmp_path / "s0.csv", "--merge", tmp_path / "s1.csv", "--out",
             tmp_path / "m.csv")
    assert r.returncode == 0 and list(csv.DictReader(open(tmp_path / "m.csv"))) == rows
    # torchrun: one shard per process (gloo barrier), rank 0 merges
    a = [str(x) for x in args]
    a[a.index("--out") + 1] = str(tmp_path / "tr.csv")
    a[a.index("--n")] = "--n-subnets"      # torchrun's own parser would take --n for --nnodes/--nproc-per-node
    r = subprocess.run([PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                        "ofa_profile.cli", *a, "--shard", "auto"], capture_output=True, text=True, env=_env(),
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert list(csv.DictReader(open(tmp_path / "tr.csv"))) == rows
    assert (tmp_path / "tr.shard1of2.csv").exists()
    # bad input: one line, exit 1, nothing written
    err = _one_line_error(run_cli(*[str(x) if x != tr else str(base / "nope") for x in args]))
    assert "does not exist" in err
    err = _one_line_error(run_cli("accuracy-dataset", "--supernet", tmp_path / "none.pt", "--n", 1, "--out",
                               tmp_path / "n.csv"))
    assert "weights file" in err and not (tmp_path / "n.csv").exists()
    wrong = make_folder(tmp_path / "wrong", 2, n_classes=4)
    fresh = [str(x) if x != tmp_path / "c" else str(tmp_path / "c-new") for x in args]
    err = _one_line_error(run_cli(*[x if x != str(tr) else str(wrong) for x in fresh]))
    assert "has other classes than the supernet" in err
    err = _one_line_error(run_cli(*[x if x != str(va) else str(wrong) for x in fresh]))
    assert f"classes of {wrong} differ from the training set's" in err
    assert not (tmp_path / "c-new").exists()        # both refused from the listing, before any decoding


def test_shipped_bundle_loads_and_verifies_its_sha256():
    from ofa_model.bundle import bundled_weights_path
    if not bundled_weights_path().exists():
        pytest.skip("no bundled weights in this checkout")
    model, info = load_bundled_supernet()
    assert info.verified and info.n_classes == 10 and info.space == "ofa-mbv3-w1.0"
    assert info.sha256 == sha256_file(bundled_weights_path()) and len(info.classes) == 10


def test_shipped_accuracy_dataset_and_predictor_belong_to_the_bundled_weights():
    """ofa_model/weights/accuracy-dataset.csv: >= 1,000 seeded subnets of the bundled supernet over the 25
    resolutions; accuracy_predictor.json was fitted on exactly that file for exactly those weights."""
    import hashlib

    from ofa_model.bundle import weights_dir
    from ofa_model.evaluate import dataset_spec
    from ofa_profile.accuracy import bundled_predictor_path, load_accuracy_predictor, resolve_accuracy_predictor
    d = weights_dir()
    data, pred_path = d / "accuracy-dataset.csv", bundled_predictor_path()
    if not (data.exists() and pred_path.exists()):
        pytest.skip("no bundled accuracy dataset / predictor in this checkout")
    man = json.loads((d / "manifest.json").read_text())
    rows = list(csv.DictReader(open(data)))
    assert tuple(rows[0]) == CSV_FIELDS and len(rows) >= 1000
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    res = get_space(man["space"]).resolutions
    assert {int(r["r"]) for r in rows} == set(res) and len(res) == 25
    for r in rows[:: max(1, len(rows) // 50)]:     # the rows are the seeded subnets the command draws
        assert dataset_spec(man["space"], int(r["seed"]), int(r["index"]), res).short() == r["arch"]
    # the top-1 range is the one the model card publishes for this file, and every subnet meets the project's bar
    # for the smallest one (80 %)
    import re
    card = (d.parent / "MODEL_CARD.md").read_text()
    lo, hi = map(float, re.search(r"\(batch \d+\): ([\d.]+)-([\d.]+) %", card).groups())
    acc = [float(r["accuracy"]) for r in rows]
    assert (round(100 * min(acc), 2), round(100 * max(acc), 2)) == (lo, hi) and min(acc) >= 0.80
    pred = load_accuracy_predictor(pred_path)
    assert pred.info["supernet_sha256"] == man["sha256"]
    assert pred.info["source_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert pred.info["n_train"] == len(rows) and tuple(pred.trained_resolutions) == tuple(res)
    assert resolve_accuracy_predictor(accuracy="bundled").info == pred.info      # pareto --accuracy bundled
    assert pred.info["dataset"] == "imagenette" and pred.info["describes"] == \
        f"bundled supernet {man['sha256'][:12]} (Imagenette)"
