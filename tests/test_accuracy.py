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
    assert tuple(pred.trained_resolutions) == (128, 160, 192)
    ds = read_accuracy_csv(shared_data / "reference" / "ofa-w1.0-imagenet-accuracy.csv")
    err = np.abs(pred.predict(list(ds.specs)) - np.asarray(ds.accuracy))
    assert np.mean(err <= 0.01) >= 0.95 and err.max() < 0.03
    sp = get_space("ofa-mbv3-w1.0")
    big, small = pred.predict([sp.largest(192), sp.smallest(128)])
    assert big > small + 0.05
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
