"""Resolutions above the supernet's 224, for latency (issue 27): OFA's specialized nets run at up to 260.

A LUT may hold them, `predict` and `lut import-ofa` take them, and every one of OFA's 50 specialized
net.configs either gets a latency or one line naming the resolution or space the LUT lacks.
"""
import json

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from ofa_profile.cli import main
from ofa_profile.lut_format import Lut, LutEntry, save_lut
from ofa_profile.ops import ops_at_resolution, subnet_ops
from ofa_profile.space import SpaceError, SubnetSpec, get_space, parse_resolutions

HIGH = (228, 236, 240, 260)


def run(args):
    return CliRunner().invoke(main, args)


def _high_lut(tmp_path, space="ofa-mbv3-w1.2", resolutions=HIGH):
    """A LUT of every op of ``space`` at ``resolutions``, each op's figure its MACs / 1e8 ms (a real Lut: the
    shapes and keys are the op enumerator's, the figures a known function of them)."""
    entries = {}
    for r in resolutions:
        for op in ops_at_resolution(space, r):
            entries[op.key] = LutEntry(median_ms=op.macs() / 1e8, iqr_ms=0.0, count=1)
    lut = Lut(space=space, device="synthetic-high", runtime="onnxruntime", entries=entries, resolutions=resolutions,
              provenance={"tool": "ofa-profile test", "seed": None, "timing": None,
                          "source": "each op's MACs / 1e8 (a test table)"})
    p = tmp_path / "high.json"
    save_lut(lut, p)
    return p


def test_every_specialized_net_config_gets_a_latency_or_one_line(shared_data, tmp_path):
    base = shared_data / "reference" / "ofa-specialized"
    dirs = sorted(d for d in base.iterdir() if (d / "net.config").is_file())
    assert len(dirs) == 50
    high = _high_lut(tmp_path)
    ok_shipped, ok_high = 0, []
    for d in dirs:
        cfg = str(d / "net.config")
        res = run(["predict", "--lut", "cpu-ort", "--arch", cfg, "--no-speed-check", "--json"])
        if res.exit_code == 0:
            assert json.loads(res.stdout)["latency_ms"] > 0
            ok_shipped += 1
        else:
            assert res.exit_code == 1, res.output
            err = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("error:")]
            assert len(err) == 1 and "Traceback" not in res.output
            assert "space" in err[0] or "lacks" in err[0], err[0]
        res = run(["predict", "--lut", str(high), "--arch", cfg, "--json"])
        if res.exit_code == 0:
            ok_high.append(d.name)
            spec = SubnetSpec.load(cfg)
            want = sum(op.macs() for op in subnet_ops(spec)) / 1e8
            assert json.loads(res.stdout)["latency_ms"] == pytest.approx(want, abs=1e-6)
        else:
            assert res.exit_code == 1 and res.stderr.count("error:") == 1, res.output
    # the shipped w1.0 LUT (128..224) serves every w1.0 MobileNetV3 net (24 of the 50, all at r <= 224)
    specs = [SubnetSpec.load(d / "net.config") for d in dirs]
    assert ok_shipped == sum(s.space == "ofa-mbv3-w1.0" and s.r <= 224 for s in specs) == 24
    # the four at r = 228..260 (all w1.2) work with a LUT measured there, and only those
    assert sorted(json.loads((base / n / "run.config").read_text())["image_size"] for n in ok_high) == list(HIGH)


def test_a_resolution_the_lut_lacks_is_named_with_the_command_to_measure_it(tmp_path):
    cfg = tmp_path / "a.json"
    cfg.write_text(json.dumps(get_space("ofa-mbv3-w1.0").largest(224).to_ofa()))
    res = run(["predict", "--lut", "cpu-ort", "--arch", str(cfg), "--resolution", "260", "--no-speed-check"])
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert "at r=260" in res.stderr and "--resolutions 260" in res.stderr


def test_high_resolution_lut_round_trips_through_ofa_tables(tmp_path):
    """`lut export-ofa` writes <r>_lookup_table.yaml for r = 228..260 and `lut import-ofa` takes them back."""
    src = _high_lut(tmp_path, space="ofa-mbv3-w1.0", resolutions=(240, 260))
    out = tmp_path / "tables"
    res = run(["lut", "export-ofa", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["240_lookup_table.yaml", "260_lookup_table.yaml"]
    back = tmp_path / "back.json"
    res = run(["lut", "import-ofa", str(out), "--out", str(back), "--json"])
    assert res.exit_code == 0, res.output
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(get_space("ofa-mbv3-w1.0").smallest(260).to_ofa()))
    a = json.loads(run(["predict", "--lut", str(src), "--arch", str(spec), "--json"]).stdout)["latency_ms"]
    b = json.loads(run(["predict", "--lut", str(back), "--arch", str(spec), "--json"]).stdout)["latency_ms"]
    assert a == pytest.approx(b, rel=1e-6)


def test_enumerate_and_measure_accept_resolutions_above_224():
    res = run(["enumerate", "--space", "ofa-mbv3-w1.2", "--resolutions", "228-260", "--json"])
    assert res.exit_code == 0, res.output
    ops = json.loads(res.stdout)
    assert {o["resolution"] for o in ops} == set(range(228, 261, 4))
    assert "Conv-input:260x260x3-output:130x130x24" in {o["key"] for o in ops}
    res = run(["measure", "--device", "cpu-ort", "--resolutions", "324", "--out", "x.json"])
    assert res.exit_code == 2 and "228..320 for latency only" in res.stderr


@given(st.integers(min_value=-10, max_value=400))
def test_parse_resolutions_takes_exactly_the_run_resolutions(r):
    sp = get_space("ofa-mbv3-w1.0")
    ok = 128 <= r <= 320 and r % 4 == 0
    if ok:
        assert parse_resolutions(str(r)) == (r,) and r in sp.run_resolutions
        assert (r in sp.resolutions) == (r <= 224)        # search and sampling keep to the supernet's
    else:
        with pytest.raises(SpaceError):
            parse_resolutions(str(r))


def test_accuracy_above_the_fitted_range_is_flagged_not_silent(tmp_path):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(get_space("ofa-mbv3-w1.0").largest(240).to_ofa()))
    res = run(["predict-accuracy", "--arch", str(spec), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["r"] == 240 and row["within_trained_range"] is False
    assert "240 lie outside those it was fitted on (128..224)" in res.stderr
    text = run(["predict-accuracy", "--arch", str(spec)])
    assert "(outside the fitted resolutions)" in text.stdout


def test_pareto_keeps_to_the_supernets_resolutions_unless_asked(tmp_path):
    """A LUT holding only resolutions above 224: the default search has none of the supernet's to search (one
    line); --resolutions searches there anyway, each accuracy flagged as outside the predictor's fitted range."""
    lut = _high_lut(tmp_path, space="ofa-mbv3-w1.0", resolutions=(240,))
    base = ["pareto", "--budget", "1000ms", "--lut", str(lut), "--out-dir", str(tmp_path), "--no-plot", "--effort",
            "fast", "--n-budgets", "2"]
    res = run(base)
    assert res.exit_code == 1 and res.stderr.count("error:") == 1
    assert "above the supernet's 128..224" in res.stderr and "--resolutions" in res.stderr
    res = run(base + ["--resolutions", "240", "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["resolutions"] == [240] and obj["accuracy_predictor"]["outside_trained_range"] == [240]
    assert "240 lie outside those it was fitted on (128..224)" in res.stderr
