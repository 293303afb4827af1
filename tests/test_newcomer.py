"""What a newcomer meets: error hints that name something that exists, options given twice refused, outputs that
name their sources (pareto's JSON, .best.json and PNG; lut info), and the files of two LUTs of one device kept
apart."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile.cli import main
from ofa_profile.devices import DeviceError, load_device
from ofa_profile.errors import LutError
from ofa_profile.lut import load_lut

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "examples" / "arch-r160.json"
SPECS = sorted(p.stem for p in (ROOT / "device_specs").glob("*.json"))
SHIPPED = sorted(p.stem for p in (ROOT / "lut").glob("*.json"))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(res, code=1) -> str:
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.stderr
    return lines[0]


# -- hints --------------------------------------------------------------------------------------------------

def test_an_unknown_device_suggests_the_nearest_known_name():
    with pytest.raises(DeviceError) as ei:
        load_device("cpu-ortt")
    assert "did you mean cpu-ort?" in str(ei.value)
    line = one_line(cli("measure", "--device", "cpu-ortt"))
    assert "did you mean cpu-ort?" in line and "measure --device cpu-ortt" not in line


def test_an_unknown_lut_name_suggests_the_nearest_shipped_lut_not_a_measure_of_it():
    line = one_line(cli("pareto", "--budget", "5ms", "--device", "cpu-ortt", "--no-plot"))
    assert "did you mean cpu-ort?" in line and "measure --device cpu-ortt" not in line


def test_a_lut_name_with_its_file_beside_it_suggests_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "lut" / "cpu-ort.json", tmp_path / "cpu-ort-mine.json")
    line = one_line(cli("predict", "--lut", "cpu-ort-mine", "--arch", ARCH))
    assert "cpu-ort-mine.json lies here: pass it" in line and "measure --device cpu-ort-mine" not in line
    assert cli("predict", "--lut", "cpu-ort-mine.json", "--arch", ARCH).exit_code == 0     # the advice works


def test_a_device_name_with_its_spec_file_beside_it_suggests_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "device_specs" / "cpu-ort.json", tmp_path / "my-cpu.json")
    line = one_line(cli("lut", "check", "cpu-ort", "--device", "my-cpu", "--blocks", "1"))
    assert "my-cpu.json lies here: pass it" in line


def test_a_device_without_a_shipped_lut_is_told_how_to_measure_it():
    with pytest.raises(LutError, match="build one with `ofa-profile measure --device cuda`"):
        load_lut("cuda")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0-", min_size=1, max_size=14))
def test_a_lut_hint_never_proposes_measuring_an_unknown_device(name, tmp_path_factory, monkeypatch):
    """Whatever name is given, the command a hint proposes measures a known device (or says DEVICE), and a name it
    asks about is a shipped LUT."""
    monkeypatch.chdir(tmp_path_factory.mktemp("empty"))
    if name in SHIPPED:
        return
    with pytest.raises(LutError) as ei:
        load_lut(name)
    msg = str(ei.value)
    assert "\n" not in msg
    for dev in re.findall(r"measure --device (\S+?)`", msg):
        assert dev in SPECS or dev == "DEVICE", msg
    for near in re.findall(r"did you mean (\S+)\?", msg):
        assert near in SHIPPED, msg


# -- options given twice --------------------------------------------------------------------------------------

def test_an_option_of_one_value_given_twice_is_a_usage_error():
    line = one_line(cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--arch", ROOT / "examples" / "arch-r224.json"),
                    code=2)
    assert "--arch" in line and "more than once" in line
    one_line(cli("pareto", "--budget", "5ms", "--budget", "6ms", "--no-plot"), code=2)
    one_line(cli("predict", "--lut", "cpu-ort", "--lut", "cpu-torch", "--arch", ARCH), code=2)


def test_repeatable_options_and_repeated_flags_still_work(tmp_path):
    res = cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--json", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["lut"].endswith("cpu-ort.json"), res.output
    res = cli("plot", "heatmap", "--device", "cpu-ort", "--device", "cpu-torch", "--resolution", "160",
              "--out", tmp_path / "h.png")
    assert res.exit_code == 0 and (tmp_path / "h.png").is_file(), res.output


# -- outputs name their sources ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_luts(tmp_path_factory):
    """pareto on the shipped cpu-ort LUT and on a LUT of the same device in a file ./cpu-ort.json (here a copy of it,
    as `measure --device cpu-ort --out cpu-ort.json` would name one), in one folder, at one budget."""
    d = tmp_path_factory.mktemp("two")
    mine = d / "cpu-ort.json"
    shutil.copy(ROOT / "lut" / "cpu-ort.json", mine)
    base = ["pareto", "--budget", "8ms", "--effort", "fast", "--n-budgets", "3", "--resolutions", "160",
            "--out-dir", d]
    runs = {}
    for key, src in (("shipped", ["--device", "cpu-ort"]), ("mine", ["--lut", mine])):
        res = cli(*base, *src)
        assert res.exit_code == 0, res.output
        runs[key] = res.stdout
    return d, mine, runs


def test_runs_on_two_luts_of_one_device_keep_their_own_files(two_luts):
    d, mine, _ = two_luts
    names = {p.name for p in d.iterdir() if p.name.startswith("pareto-")}
    assert names == {f"pareto-cpu-ort{s}-8ms{ext}" for s in ("", "-shipped") for ext in (".json", ".best.json", ".png")}


def test_best_json_names_the_lut_the_predictor_and_what_was_timed(two_luts):
    d, mine, _ = two_luts
    for stem, path, shipped in (("pareto-cpu-ort-8ms", mine, False),
                                ("pareto-cpu-ort-shipped-8ms", ROOT / "lut" / "cpu-ort.json", True)):
        best = json.loads((d / f"{stem}.best.json").read_text())
        full = json.loads((d / f"{stem}.json").read_text())
        lut = best["lut"]
        assert Path(lut["path"]).resolve() == path.resolve() and lut["shipped"] is shipped
        assert lut["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (lut["runtime"], lut["batch_size"]) == ("onnxruntime", 1)
        assert lut["timed"] == {"graph": "ofa-profile", "classes": 1000, "precision": "fp32", "threads": 1}
        assert lut["timed_label"] == "onnxruntime fp32, 1 thread, ofa-profile graph, 1000-class head"
        pred = best["accuracy_predictor"]
        assert pred["dataset"] == "imagenet" and "w1.0" in pred["label"] and Path(pred["file"]).is_file()
        assert pred["fitted_on"] and pred["n_train"] > 0
        assert best["accuracy"] == full["best"]["accuracy"] and full["lut"] == lut     # one record, two files
        assert full["accuracy_predictor"]["file"] == pred["file"]


def test_the_png_names_its_lut(two_luts):
    from PIL import Image
    d, _, _ = two_luts
    with Image.open(d / "pareto-cpu-ort-8ms.png") as im:
        assert "LUT cpu-ort.json" in im.text["Title"] and "shipped" not in im.text["Title"]
        assert "ImageNet top-1" in im.text["Description"]
    with Image.open(d / "pareto-cpu-ort-shipped-8ms.png") as im:
        assert "LUT cpu-ort.json (shipped)" in im.text["Title"]


def test_the_frontier_table_says_it_is_a_sample(two_luts):
    d, _, runs = two_luts
    text = runs["mine"]
    n = len(json.loads((d / "pareto-cpu-ort-8ms.json").read_text())["frontier"])
    head = re.search(r"^frontier: (\d+) subnets .*$", text, re.M)
    assert head and int(head.group(1)) == n
    rows = [line for line in text.splitlines() if re.match(r"^\s+\d+\.\d{3}\s+\d", line)]
    if n > 25:
        assert f"the table shows {len(rows)} of them" in head.group(0) and len(rows) < n
    else:
        assert "the table shows" not in head.group(0) and len(rows) == n


def test_plot_frontier_panels_share_one_accuracy_scale_and_name_their_lut(tmp_path):
    from PIL import Image

    from ofa_profile.plots import frontier_panels
    from ofa_profile.search import SearchResult
    from ofa_profile.space import get_space
    sp = get_space("ofa-mbv3-w1.0")
    a = [SearchResult(sp.smallest(160), 3.0, 0.60, 1, 1), SearchResult(sp.largest(160), 9.0, 0.70, 1, 1)]
    b = [SearchResult(sp.smallest(160), 2.0, 0.74, 1, 1), SearchResult(sp.largest(160), 5.0, 0.78, 1, 1)]
    fig = frontier_panels({"x: LUT a.json": a, "y: LUT b.json": b})
    lims = [ax.get_ylim() for ax in fig.get_axes()]
    assert lims[0] == lims[1] and lims[0][0] <= 60 and lims[0][1] >= 78
    res = cli("plot", "frontier", "--device", "cpu-ort", "--lut", ROOT / "lut" / "cpu-torch.json", "--n-random", 50,
              "--resolutions", "160", "--out", tmp_path / "f.png")
    assert res.exit_code == 0, res.output
    with Image.open(tmp_path / "f.png") as im:
        assert "cpu-ort: calibrated LUT cpu-ort.json (shipped)" in im.text["Title"]
        assert "cpu-torch: calibrated LUT cpu-torch.json (shipped)" in im.text["Title"]


def test_lut_info_prints_the_calibration_readably_and_the_noise():
    text = cli("lut", "info", "cpu-ort")
    js = json.loads(cli("lut", "info", "cpu-ort", "--json").stdout)
    assert text.exit_code == 0
    cal, tm = js["calibration"], js["timing"]
    line = next(x for x in text.stdout.splitlines() if x.startswith("calibration:"))
    assert "{" not in line and "=" not in line
    assert f"on {cal['n_fit']} measured subnets" in line and f"on {cal['test']['n']} held-out subnets" in line
    assert f"MAPE {cal['test']['mape_pct']:.1f} %" in line
    noise = next(x for x in text.stdout.splitlines() if x.startswith("noise:"))
    assert f"{100 * tm['iqr_rel_median']:.1f} %" in noise


# -- ProxylessNAS: the advice that works ----------------------------------------------------------------------

def test_pareto_help_lists_every_registered_space():
    from ofa_profile.space import SPACES
    res = cli("pareto", "--help")
    flat = re.sub(r"-\s+", "-", " ".join(res.stdout.split()))
    for name in SPACES:
        assert name in flat, name
