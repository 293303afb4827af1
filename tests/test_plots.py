import random

import numpy as np
import pytest

from ofa_profile.accuracy import fit_accuracy_predictor
from ofa_profile.adapt import macs_table, params_table
from ofa_profile.errors import OfaProfileError
from ofa_profile.plots import plot_frontier, plot_lut_heatmap, plot_predicted_vs_measured, plot_rank_comparison
from ofa_profile.search import macs_latency_fn, pareto_search
from ofa_profile.space import get_space

from helpers import synthetic_dataset


def check_png(path, min_w=300, min_h=250):
    import matplotlib.image as mpimg
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    gray = img[..., :3].mean(axis=2)
    assert gray.std() > 0.05          # not a blank canvas
    assert (gray < 0.5).mean() > 0.005  # some dark ink (axes, text, data)
    assert not list(path.parent.glob("*.tmp*"))  # atomic write left nothing behind


@pytest.fixture(scope="module")
def specs():
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(0)
    return [sp.sample(rng, resolution=[160, 192]) for _ in range(300)]


def test_frontier_plot(tmp_path, specs):
    acc = fit_accuracy_predictor(synthetic_dataset(300), model="ridge")
    fronts, clouds, best = {}, {}, {}
    for name, lat in (("dev-a", macs_latency_fn("ofa-mbv3-w1.0")), ("dev-b", macs_latency_fn("ofa-mbv3-w1.0", 0.03, 0.3))):
        pr = pareto_search("ofa-mbv3-w1.0", lat, acc, n_budgets=3, resolutions=(160, 192), effort="fast")
        fronts[name], clouds[name], best[name] = pr.frontier, (lat(specs), acc(specs)), pr.best_under(10.0)
    p = plot_frontier(tmp_path / "f.png", fronts, clouds, budget_ms=10.0, best=best, title="frontier")
    check_png(p, min_w=600)


def test_predicted_vs_measured_plot(tmp_path, specs):
    m = macs_latency_fn("ofa-mbv3-w1.0")(specs)
    p = plot_predicted_vs_measured(tmp_path / "pvm.png", m * np.random.default_rng(0).normal(1, 0.04, len(m)), m)
    check_png(p)
    with pytest.raises(OfaProfileError, match="one length"):
        plot_predicted_vs_measured(tmp_path / "x.png", [1.0, 2.0], [1.0])


def test_lut_heatmap(tmp_path):
    tables = {"macs": macs_table("ofa-mbv3-w1.0"), "params": params_table("ofa-mbv3-w1.0")}
    check_png(plot_lut_heatmap(tmp_path / "h.png", tables, resolution=160, unit="count"), min_w=600)
    with pytest.raises(OfaProfileError, match="no resolution"):
        plot_lut_heatmap(tmp_path / "h2.png", tables, resolution=100)


def test_rank_comparison(tmp_path, specs):
    a = macs_latency_fn("ofa-mbv3-w1.0")(specs[:20])
    b = macs_latency_fn("ofa-mbv3-w1.0", 0.02, 0.5)(specs[:20])
    p = plot_rank_comparison(tmp_path / "r.png", {"ort": a, "litert": b}, labels=[s.short()[:10] for s in specs[:20]])
    check_png(p)
    with pytest.raises(OfaProfileError, match="two runtimes"):
        plot_rank_comparison(tmp_path / "r2.png", {"ort": a})


def test_plot_commands(tmp_path):
    from click.testing import CliRunner

    from ofa_profile.cli import main
    from helpers import write_fake_lut
    a = str(write_fake_lut(tmp_path / "a.json", "fake-a"))
    b = str(write_fake_lut(tmp_path / "b.json", "fake-b", ms_per_mac=2e-8, ms_per_kernel=0.05))
    acc = str(fit_accuracy_predictor(synthetic_dataset(300), model="ridge").save(tmp_path / "acc.json"))
    run = CliRunner()
    for args, name in ((["heatmap", "--lut", a, "--lut", b, "--resolution", "176"], "heat.png"),
                       (["ranks", "--lut", a, "--lut", b, "--n", "15"], "ranks.png"),
                       (["frontier", "--lut", a, "--lut", b, "--budget", "9ms", "--predictor", acc, "--n-random", "300"],
                        "front.png")):
        res = run.invoke(main, ["plot", *args, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        check_png(tmp_path / name)
    res = run.invoke(main, ["plot", "ranks", "--lut", a, "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 1 and "at least two LUTs" in res.stderr
