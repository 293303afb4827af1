import csv
import json
import random

import numpy as np
import pytest

from ofa_profile.accuracy import (ENCODINGS, AccuracyPredictor, ArchArrays, encode,
                                  evaluate_accuracy_predictor, fit_accuracy_predictor, load_accuracy_predictor,
                                  load_official_predictor, read_accuracy_csv, split_dataset)
from ofa_profile.errors import OfaProfileError
from ofa_profile.space import SubnetSpec, get_space

from helpers import TUTORIAL, synthetic_dataset  # noqa: F401

def test_ofa_encoding_layout():
    spec = SubnetSpec.from_ofa(TUTORIAL)
    x = encode([spec], "ofa-onehot")[0]
    assert x.shape == (128,)
    n_active = sum(TUTORIAL["d"])
    assert x[:60].sum() == n_active and x[60:120].sum() == n_active
    assert x[120:].sum() == 1 and x[120 + (192 - 112) // 16] == 1
    # first block: kernel 5 -> slot 1, expand 3 -> slot 0; a skipped block (index 2) is all zeros
    assert list(x[0:3]) == [0, 1, 0] and list(x[60:63]) == [1, 0, 0]
    assert x[6:9].sum() == 0 and x[66:69].sum() == 0


def test_rich_encoding_and_skipped_entries_ignored():
    spec = SubnetSpec.from_ofa(TUTORIAL)
    other = SubnetSpec.from_ofa({**TUTORIAL, "ks": [5, 3, 7, 7] + TUTORIAL["ks"][4:]})  # differs in skipped blocks
    for enc in ENCODINGS:
        assert np.array_equal(encode([spec], enc), encode([other], enc))
    x = encode([spec], "onehot-depth-r")[0]
    assert x.shape == (137,)
    assert x[120:135].sum() == 5  # one depth one-hot per stage
    assert x[135] == pytest.approx((192 - 176) / 48)


def test_arch_arrays_round_trip():
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(3)
    specs = [sp.sample(rng) for _ in range(50)]
    a = ArchArrays.from_specs(specs)
    assert [s.canonical() for s in specs] == a.to_specs()
    assert len(set(a.row_keys().tolist())) == len({s.canonical() for s in specs})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("model", ["ridge", "gbm", "ridge+gbm", "mlp"])
def test_json_reload_gives_identical_predictions_to_sklearn(model, tmp_path):
    ds = synthetic_dataset()
    pred, sk = fit_accuracy_predictor(ds, model=model, gbm_trees=60, mlp_hidden=(16,), mlp_max_iter=300,
                                      return_sklearn=True)
    test = synthetic_dataset(100, seed=9)
    X = encode(list(test.specs), pred.encoding)
    if model == "mlp":
        c = pred.components[0]
        expected = sk[0].predict((X - c["x_mean"]) / c["x_scale"]) * c["y_scale"] + c["y_mean"]
    else:
        expected = sum(m.predict(X) for m in sk)
    got = pred.predict(list(test.specs))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    path = pred.save(tmp_path / "acc.json")
    text = path.read_text()
    assert "pickle" not in text and json.loads(text)["format"] == "ofa-profile-accuracy-predictor"
    again = load_accuracy_predictor(path)
    np.testing.assert_array_equal(again.predict(list(test.specs)), got)
    assert again.trained_resolutions == (128, 160, 192)


def test_predictor_learns_the_synthetic_ranking():
    tr, te = split_dataset(synthetic_dataset(600), 0.2, seed=0)
    score = evaluate_accuracy_predictor(fit_accuracy_predictor(tr, model="ridge"), te)
    assert score.n == 120 and score.kendall_tau > 0.6 and score.spearman > 0.8


def test_split_is_seeded_and_disjoint():
    ds = synthetic_dataset(50)
    a1, b1 = split_dataset(ds, 0.2, seed=4)
    a2, b2 = split_dataset(ds, 0.2, seed=4)
    assert a1.specs == a2.specs and b1.specs == b2.specs and len(b1) == 10
    assert not set(a1.specs) & set(b1.specs)
    assert split_dataset(ds, 0.2, seed=5)[1].specs != b1.specs


def test_predictor_refuses_another_supernet():
    pred = fit_accuracy_predictor(synthetic_dataset(), model="ridge")
    compofa = get_space("compofa-mbv3-w1.0").compound_spec([2, 3, 4, 3, 2], 160)
    assert pred.predict([compofa]).shape == (1,)  # same macro-architecture: fine
    with pytest.raises(OfaProfileError, match="different supernet"):
        pred.predict([get_space("ofa-mbv3-w1.2").largest(160)])


def test_bundled_csv_format_and_percentages(tmp_path):
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(1)
    p = tmp_path / "bundled.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["space", "d", "ks", "e", "r", "accuracy", "macs", "params"])
        for i in range(30):
            s = sp.sample(rng)
            w.writerow([sp.name, json.dumps(list(s.d)), json.dumps(list(s.ks)), json.dumps(list(s.e)), s.r,
                        60 + i * 0.5, 1, 1])
    ds = read_accuracy_csv(p)
    assert len(ds) == 30 and ds.accuracy.max() == pytest.approx(0.745)
    pred = fit_accuracy_predictor(p, model="ridge")
    assert pred.info["source"] == "bundled.csv"


def test_csv_errors_are_one_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("d,ks,accuracy\n[2],[3],0.5\n")
    with pytest.raises(OfaProfileError, match="lacks column"):
        read_accuracy_csv(p)
    p.write_text('image_size,d,ks,e,accuracy\n192,"[2, 2, 2, 2, 2]","[3]","[3]",0.5\n')
    with pytest.raises(OfaProfileError, match="row 2"):
        read_accuracy_csv(p)
    with pytest.raises(OfaProfileError, match="does not exist"):
        read_accuracy_csv(tmp_path / "nope.csv")
    with pytest.raises(OfaProfileError, match="does not exist"):
        load_official_predictor(tmp_path / "nope.pth")


def test_bad_predictor_json_is_refused(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(OfaProfileError, match="not an accuracy predictor"):
        load_accuracy_predictor(p)
    pred = fit_accuracy_predictor(synthetic_dataset(), model="ridge").to_json()
    pred["version"] = 99
    with pytest.raises(OfaProfileError, match="version"):
        AccuracyPredictor.from_json(pred)


# -- on the real reference data ------------------------------------------------------------------------

def test_official_predictor_reproduces_tutorial_value(shared_data):
    off = load_official_predictor(shared_data / "reference" / "ofa-acc-predictor.pth")
    tut = SubnetSpec.from_ofa(TUTORIAL, space="ofa-mbv3-w1.2")      # OFA's tutorial runs its w1.2 supernet
    assert off.space == "ofa-mbv3-w1.2" and off.info["dataset"] == "imagenet" and "w1.2" in off.info["describes"]
    assert off.predict_one(tut) == pytest.approx(0.8171, abs=5e-5)
    again = AccuracyPredictor.from_json(json.loads(json.dumps(off.to_json())))
    assert again.predict_one(tut) == off.predict_one(tut)


def test_our_predictor_ranks_better_than_official_on_imagenet_split(shared_data):
    ds = read_accuracy_csv(shared_data / "reference" / "ofa-w1.0-imagenet-accuracy.csv")
    assert len(ds) == 2610 and ds.resolutions == (128, 160, 192)
    tr, te = split_dataset(ds, 0.2, seed=0)
    ours = evaluate_accuracy_predictor(fit_accuracy_predictor(tr, model="ridge"), te)
    off = evaluate_accuracy_predictor(load_official_predictor(shared_data / "reference" / "ofa-acc-predictor.pth",
                                                              space="ofa-mbv3-w1.0"), te)
    assert ours.kendall_tau > off.kendall_tau and ours.spearman > off.spearman
    assert ours.kendall_tau_within_r > off.kendall_tau_within_r
    assert ours.rmse < off.rmse


def test_accuracy_predictor_command(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    ds = synthetic_dataset(200)
    p = tmp_path / "acc.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_size", "d", "ks", "e", "accuracy"])
        for s, y in zip(ds.specs, ds.accuracy):
            w.writerow([s.r, json.dumps(list(s.d)), json.dumps(list(s.ks)), json.dumps(list(s.e)), y])
    out = tmp_path / "pred.json"
    res = CliRunner().invoke(main, ["accuracy-predictor", "--data", str(p), "--out", str(out), "--model", "ridge",
                                    "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["held_out"]["n"] == 40 and rep["held_out"]["n_train"] == 160
    pred = load_accuracy_predictor(out)
    assert pred.info["n_train"] == 200 and pred.info["held_out"]["kendall_tau"] == rep["held_out"]["kendall_tau"]
    import hashlib
    assert pred.info["source_sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
    assert "supernet_sha256" not in pred.info
    # --supernet records the weights the CSV was measured with (here: a stand-in file)
    w = tmp_path / "w.pt"
    w.write_bytes(b"weights")
    res = CliRunner().invoke(main, ["accuracy-predictor", "--data", str(p), "--out", str(out), "--model", "ridge",
                                    "--supernet", str(w)])
    assert res.exit_code == 0, res.output
    assert load_accuracy_predictor(out).info["supernet_sha256"] == hashlib.sha256(b"weights").hexdigest()
    res = CliRunner().invoke(main, ["accuracy-predictor", "--data", str(p), "--out", str(tmp_path / "x.json"),
                                    "--supernet", str(tmp_path / "none.pt")])
    assert res.exit_code == 1 and "do not exist" in res.stderr and not (tmp_path / "x.json").exists()


def test_bundled_predictor_is_used_only_with_its_weights(tmp_path, monkeypatch):
    """The default is the shipped ImageNet predictor (what a user deploys).  --accuracy bundled: the bundled
    predictor records the sha256 of the supernet its dataset was measured with; after the weights change (a new
    manifest) it is refused, saying why."""
    import dataclasses

    import ofa_profile.accuracy as A
    bundle = tmp_path / "weights"
    bundle.mkdir()
    monkeypatch.setattr(A, "bundled_predictor_path", lambda: bundle / A.BUNDLED_PREDICTOR)
    pred = fit_accuracy_predictor(synthetic_dataset(60), model="ridge")
    (bundle / "manifest.json").write_text(json.dumps({"sha256": "a" * 64}))
    dataclasses.replace(pred, info={**pred.info, "supernet_sha256": "a" * 64}).save(bundle / A.BUNDLED_PREDICTOR)
    said = []
    got = A.resolve_accuracy_predictor(log=said.append)
    assert got.info == load_accuracy_predictor(A.imagenet_predictor_path()).info and "imagenet" in said[-1]
    got = A.resolve_accuracy_predictor(accuracy="bundled", log=said.append)
    assert got.info["supernet_sha256"] == "a" * 64 and "bundled" in said[-1]
    (bundle / "manifest.json").write_text(json.dumps({"sha256": "b" * 64}))
    with pytest.raises(OfaProfileError, match="not the bundled supernet's.*rebuild it"):
        A.resolve_accuracy_predictor(accuracy="bundled")
    dataclasses.replace(pred).save(bundle / A.BUNDLED_PREDICTOR)      # records no sha: not trusted either
    with pytest.raises(OfaProfileError, match="records no supernet sha256"):
        A.resolve_accuracy_predictor(accuracy="bundled")


def test_shipped_imagenet_predictor_loads_and_matches_ofa_measurements(shared_data):
    """ofa_profile/predictors/: fitted on OFA's ImageNet accuracies, the default when no supernet predictor
    is bundled (so `pareto` works in a plain `pip install`)."""
    import numpy as np

    from ofa_profile.accuracy import imagenet_predictor_path, load_accuracy_predictor, resolve_accuracy_predictor
    from ofa_profile.space import get_space
    p = imagenet_predictor_path()
    assert p.exists() and p.stat().st_mode & 0o044 == 0o044          # readable by everyone once installed
    pred = load_accuracy_predictor(p)
    assert tuple(pred.trained_resolutions) == (128, 160, 192, 224)
    for name in ("ofa-w1.0-imagenet-accuracy.csv", "dynast-w1.0-r224-accuracy.csv"):
        ds = read_accuracy_csv(shared_data / "reference" / name)
        err = np.abs(pred.predict(list(ds.specs)) - np.asarray(ds.accuracy))
        assert np.mean(err <= 0.01) >= 0.95 and err.max() < 0.03, name
    sp = get_space("ofa-mbv3-w1.0")
    big, small = pred.predict([sp.largest(224), sp.smallest(128)])
    assert big > small + 0.05
    # a higher resolution buys accuracy: the same subnets at 224 above 192 (what a search must see to pay for it)
    lo, hi = pred.predict([sp.largest(192), sp.smallest(192)]), pred.predict([sp.largest(224), sp.smallest(224)])
    assert (hi > lo).all()
    assert resolve_accuracy_predictor().info == pred.info             # the default of pareto, bundled or not
    assert pred.info["dataset"] == "imagenet" and "w1.0" in pred.info["describes"]


def _accuracy_csv(path, specs, acc, with_space):
    import csv
    import json
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow((["space"] if with_space else []) + ["d", "ks", "e", "r", "accuracy"])
        for s, a in zip(specs, acc):
            w.writerow(([s.space] if with_space else []) + [json.dumps(list(s.d)), json.dumps(list(s.ks)),
                                                            json.dumps(list(s.e)), s.r, a])
    return path


def test_rows_without_a_space_are_read_in_the_searched_space_and_a_space_column_wins(tmp_path):
    from ofa_profile.accuracy import resolve_accuracy_predictor
    prox = synthetic_dataset(60, space="ofa-proxyless-w1.3")
    bare = _accuracy_csv(tmp_path / "prox.csv", prox.specs, prox.accuracy, with_space=False)
    assert {s.space for s in read_accuracy_csv(bare, "ofa-proxyless-w1.3").specs} == {"ofa-proxyless-w1.3"}
    mb = synthetic_dataset(60)
    labelled = _accuracy_csv(tmp_path / "mb.csv", mb.specs, mb.accuracy, with_space=True)
    # the rows say what they are: a default for unlabelled rows does not relabel them
    assert {s.space for s in read_accuracy_csv(labelled, "ofa-proxyless-w1.3").specs} == {"ofa-mbv3-w1.0"}
    assert resolve_accuracy_predictor(data=bare, space="ofa-proxyless-w1.3", model="ridge").space == \
        "ofa-proxyless-w1.3"
    # a compound space's rows are subnets of the full space it is carved from
    mb_bare = _accuracy_csv(tmp_path / "mb-bare.csv", mb.specs, mb.accuracy, with_space=False)
    assert resolve_accuracy_predictor(data=mb_bare, space="compofa-mbv3-w1.0", model="ridge").space == "ofa-mbv3-w1.0"
    w12 = synthetic_dataset(60, space="ofa-mbv3-w1.2")
    w12_bare = _accuracy_csv(tmp_path / "w12.csv", w12.specs, w12.accuracy, with_space=False)
    assert resolve_accuracy_predictor(data=w12_bare, space="ofa-mbv3-w1.2", model="ridge").space == "ofa-mbv3-w1.2"


def test_shipped_imagenet_predictor_is_made_by_the_command_it_records(shared_data, tmp_path):
    """The shipped ImageNet predictor is plain JSON made by `ofa-profile accuracy-predictor` from OFA's reference
    CSVs: its recorded command line, run again on those files (cross-validation left out, it changes no fitted
    number), writes the same predictor: every component and every recorded figure of the fit."""
    import shlex

    from click.testing import CliRunner

    from ofa_profile.accuracy import imagenet_predictor_path
    from ofa_profile.cli import main
    shipped_path = imagenet_predictor_path()
    shipped = json.loads(shipped_path.read_text())
    made_by = shipped["info"]["made_by"]
    argv = shlex.split(made_by)
    assert argv[:2] == ["ofa-profile", "accuracy-predictor"]
    args = argv[2:]
    for i, a in enumerate(args):
        if args[i - 1] == "--data":
            args[i] = str(shared_data / "reference" / a)        # the recorded names are of OFA's reference files
        if args[i - 1] == "--cv-folds":
            args[i] = "0"
    out = tmp_path / "again.json"
    res = CliRunner().invoke(main, ["accuracy-predictor", *args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    again = json.loads(out.read_text())
    assert again["components"] == shipped["components"]
    assert {k: v for k, v in again.items() if k != "info"} == {k: v for k, v in shipped.items() if k != "info"}
    skip = {"cross_validated", "made_by"}
    assert {k: v for k, v in again["info"].items() if k not in skip} == \
        {k: v for k, v in shipped["info"].items() if k not in skip}
    assert shipped["info"]["cross_validated"]["folds"] >= 5 and "--cv-folds" in made_by


def test_rspline_encoding_interpolates_between_knot_resolutions():
    """onehot-depth-rspline: the block one-hots of onehot-depth-r, then a hat basis over 128/160/192/224 that
    puts r=208 halfway between 192 and 224 and holds r > 224 at 224."""
    sp = get_space("ofa-mbv3-w1.0")
    base = sp.largest(160)
    X = encode([dataclasses_replace(base, r=r) for r in (128, 160, 208, 224, 260)], "onehot-depth-rspline")
    plain = encode([base], "onehot-depth-r")[0][:-2]
    assert (X[:, :len(plain)] == plain).all()
    assert X[:, len(plain):].tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0, 1], [0, 0, 0, 1]]


def dataclasses_replace(spec, **kw):
    import dataclasses
    return dataclasses.replace(spec, **kw)


def _two_files(tmp_path, n=40):
    """Two accuracy CSVs: synthetic subnets at 128..192, and some of the same subnets again at 224 (plus others)."""
    ds = synthetic_dataset(n)
    low = tmp_path / "low.csv"
    high = tmp_path / "high.csv"
    for path, specs, acc in ((low, ds.specs, ds.accuracy),
                             (high, [dataclasses_replace(s, r=224) for s in ds.specs[:10]]
                              + [dataclasses_replace(s, r=224) for s in synthetic_dataset(20, seed=3).specs], None)):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["d", "ks", "e", "r", "accuracy"])
            for i, sp in enumerate(specs):
                a = acc[i] if acc is not None else 0.75 + 0.0001 * i
                w.writerow([json.dumps(list(sp.d)), json.dumps(list(sp.ks)), json.dumps(list(sp.e)), sp.r, a])
    return low, high


def test_grouped_folds_never_split_one_subnet(tmp_path):
    from ofa_profile.accuracy import grouped_folds, read_accuracy_csvs, subnet_groups
    low, high = _two_files(tmp_path)
    ds = read_accuracy_csvs([low, high])
    assert len(ds) == 70 and ds.resolutions[-1] == 224 and " + " in ds.source
    g = subnet_groups(ds)
    assert g[0] == g[40]                      # the same subnet at 128..192 and at 224: one group
    folds = grouped_folds(ds, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(70))
    for k, test in enumerate(folds):
        train = np.setdiff1d(np.arange(70), test)
        assert not set(g[test]) & set(g[train])
    assert [f.tolist() for f in grouped_folds(ds, 5, seed=0)] == [f.tolist() for f in folds]   # seeded
    with pytest.raises(OfaProfileError, match="folds need"):
        grouped_folds(ds, 100)


def test_accuracy_predictor_on_two_files_with_cv_weights_and_label(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.accuracy import describe_predictor, predictor_label
    from ofa_profile.cli import main
    low, high = _two_files(tmp_path)
    out = tmp_path / "p.json"
    res = CliRunner().invoke(main, ["accuracy-predictor", "--data", str(low), "--data", str(high), "--out", str(out),
                                    "--model", "ridge+gbm", "--encoding", "onehot-depth-rspline", "--gbm-trees", "20",
                                    "--gbm-depth", "2", "--resolution-weight", "224=3", "--cv-folds", "3",
                                    "--test-frac", "0", "--dataset", "imagenet", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert set(rep["cross_validated"]["bands"]) == {"128", "160", "192", "224", "128..224"}
    assert rep["cross_validated"]["bands"]["224"]["n"] == 30
    pred = load_accuracy_predictor(out)
    assert pred.trained_resolutions == (128, 160, 192, 224) and pred.info["resolution_weights"] == {"224": 3.0}
    assert pred.info["source"] == "low.csv + high.csv" and len(pred.info["source_sha256"]) == 2
    assert pred.info["made_by"] == ("ofa-profile accuracy-predictor --data low.csv --data high.csv --model ridge+gbm "
                                    "--encoding onehot-depth-rspline --gbm-trees 20 --gbm-depth 2 "
                                    "--resolution-weight 224=3 --test-frac 0 --cv-folds 3 --seed 0 --dataset imagenet")
    lab = predictor_label(pred)
    assert lab.text == ("ImageNet top-1 of OFA's w1.0 supernet; measured at r=128,160,192,224, the 21 others in "
                        "128..224 interpolated")
    d = describe_predictor(str(out))
    assert d["interpolated_resolutions"] == [r for r in range(132, 224, 4) if r not in (160, 192)]
    assert d["fitted_range"] == [128, 224] and d["cross_validated"]["folds"] == 3
    text = CliRunner().invoke(main, ["predictor", "info", str(out)])
    assert text.exit_code == 0 and lab.fitted in text.stdout and "made by" in text.stdout
    # the weight moves the fit: a heavier r=224 share changes the predictions
    plain = fit_accuracy_predictor(read_accuracy_csvs_of(low, high), model="ridge", encoding="onehot-depth-rspline")
    heavy = fit_accuracy_predictor(read_accuracy_csvs_of(low, high), model="ridge", encoding="onehot-depth-rspline",
                                   resolution_weights={224: 10.0})
    specs = list(synthetic_dataset(5, seed=9).specs)
    assert not np.allclose(plain.predict(specs), heavy.predict(specs))


def read_accuracy_csvs_of(*paths):
    from ofa_profile.accuracy import read_accuracy_csvs
    return read_accuracy_csvs(list(paths))


@pytest.mark.parametrize("bad", ["224", "224=0", "224=-1", "225=2", "x=1", "224=nan", "224=inf", "=3"])
def test_resolution_weight_is_a_usage_error_when_malformed(tmp_path, bad):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    low, _ = _two_files(tmp_path, n=25)
    res = CliRunner().invoke(main, ["accuracy-predictor", "--data", str(low), "--out", str(tmp_path / "p.json"),
                                    "--resolution-weight", bad])
    assert res.exit_code == 2 and "--resolution-weight" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "p.json").exists()


def test_predictor_info_of_the_shipped_default_names_its_resolutions():
    from click.testing import CliRunner

    from ofa_profile.cli import main
    res = CliRunner().invoke(main, ["predictor", "info", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["measured_resolutions"] == [128, 160, 192, 224] and d["fitted_range"] == [128, 224]
    assert 196 in d["interpolated_resolutions"] and 220 in d["interpolated_resolutions"]
    assert d["label"].startswith("ImageNet top-1 of OFA's w1.0 supernet; measured at r=128,160,192,224")
    res = CliRunner().invoke(main, ["predictor", "info", "no-such-file.json"])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1 and "neither" in res.stderr


def test_resolution_weight_parsing_takes_only_run_resolutions_and_positive_weights():
    import click
    from hypothesis import given
    from hypothesis import strategies as st

    from ofa_profile.commands.accuracy import _resolution_weights
    from ofa_profile.space import RUN_RESOLUTIONS

    @given(st.text(max_size=12))
    def check(text):
        try:
            got = _resolution_weights((text,))
        except click.BadParameter:
            return
        ((r, w),) = got.items()
        assert r in RUN_RESOLUTIONS and w > 0 and w == w and w != float("inf")
    check()
    assert _resolution_weights(("224=4", "192=0.5")) == {224: 4.0, 192: 0.5}


def test_cv_folds_of_one_is_a_usage_error(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    low, _ = _two_files(tmp_path, n=25)
    res = CliRunner().invoke(main, ["accuracy-predictor", "--data", str(low), "--out", str(tmp_path / "p.json"),
                                    "--cv-folds", "1"])
    assert res.exit_code == 2 and "at least 2 folds" in res.stderr and not (tmp_path / "p.json").exists()
