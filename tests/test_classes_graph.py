"""The classifier head and the graph flavour as LUT dimensions: `measure --classes N` adds a head beside the LUT's
own, predict/pareto/calibrate --classes predict it, an .onnx from `export` is predicted as exported, and
`measure --graph ofa` times OFA's own modules."""
import dataclasses
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main
from ofa_profile.errors import LutMissError
from ofa_profile.lut import LutEntry, load_lut, save_lut
from ofa_profile.ops import enumerate_ops, ops_at_resolution, subnet_ops
from ofa_profile.space import get_space
from ofa_profile.timed import Timed, TimedError

from helpers import fast_spec

ROOT = Path(__file__).resolve().parents[1]
HEAD_1000 = "Logits-input:1x1x1280-output:1000"
HEAD_10 = "Logits-input:1x1x1280-output:10"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def with_head_10(lut, ms=0.01):
    """The shipped LUT with a (made-up) 10-class head figure beside its own: the arithmetic of heads, no timing."""
    return lut.with_entries({**lut.entries, HEAD_10: LutEntry(median_ms=ms, iqr_ms=0.0, count=5)})


def test_ops_take_the_head_size():
    spec = get_space("ofa-mbv3-w1.0").smallest(160)
    assert subnet_ops(spec)[-1].key == HEAD_1000 and subnet_ops(spec, 10)[-1].key == HEAD_10
    assert subnet_ops(spec, 10)[:-1] == subnet_ops(spec)[:-1]
    keys = {op.key for _, op in enumerate_ops("ofa-mbv3-w1.0", [160], classes=10)}
    assert HEAD_10 in keys and HEAD_1000 not in keys and len(keys) == len(ops_at_resolution("ofa-mbv3-w1.0", 160))


def test_another_head_predicts_by_the_heads_difference_calibrated_or_not():
    lut = with_head_10(load_lut("cpu-ort"))
    assert lut.head_classes() == [1000, 10] and lut.timed.classes == 1000
    from ofa_profile.lut_report import lut_summary
    assert lut_summary(lut)["heads_classes"] == [1000, 10]
    ten = lut.with_classes(10)
    assert ten.timed.classes == 10 and ten.timed.graph == lut.timed.graph
    diff = lut.entries[HEAD_1000].median_ms - 0.01
    rng = random.Random(3)
    specs = [get_space("ofa-mbv3-w1.0").sample(rng, resolution=list(lut.resolutions)) for _ in range(20)]
    for s in specs:
        assert ten.lut_sum_ms(s) == pytest.approx(lut.lut_sum_ms(s) - diff, abs=1e-9)
        assert ten.predict_ms(s) == pytest.approx(lut.predict_ms(s) - diff, abs=1e-9)    # calibrated on 1000
    from ofa_profile.latency import lut_latency_fn
    fn = lut_latency_fn(ten)                 # the batch form the search calls
    assert list(fn(specs)) == pytest.approx([ten.predict_ms(s) for s in specs], abs=1e-9)


def test_a_head_the_lut_lacks_is_one_line_naming_the_measure_command():
    with pytest.raises(LutMissError) as ei:
        load_lut("cpu-ort").with_classes(10)
    msg = str(ei.value)
    assert "\n" not in msg and "holds no 10-class classifier head (it holds 1000)" in msg
    assert "ofa-profile measure --device cpu-ort --classes 10" in msg


def test_predict_and_pareto_classes_state_the_head(tmp_path):
    p = tmp_path / "two-heads.json"
    save_lut(with_head_10(load_lut("cpu-ort")), p)
    arch = ROOT / "examples" / "arch-r160.json"
    a = json.loads(run("predict", "--lut", p, "--arch", arch, "--json").stdout)
    b = json.loads(run("predict", "--lut", p, "--arch", arch, "--json", "--classes", "10").stdout)
    assert a["timed"]["classes"] == 1000 and b["timed"]["classes"] == 10 and b["latency_ms"] < a["latency_ms"]
    assert "10-class head" in run("predict", "--lut", p, "--arch", arch, "--classes", "10").stdout
    res = run("predict", "--lut", "cpu-ort", "--arch", arch, "--classes", "10")
    assert res.exit_code == 1 and "holds no 10-class classifier head" in res.stderr
    res = run("pareto", "--budget", "8ms", "--lut", p, "--classes", "10", "--out-dir", tmp_path, "--no-plot",
              "--effort", "fast", "--n-budgets", "2", "--json")
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["timed"]["classes"] == 10 and "10-class head" in obj["timed_label"]


def test_an_export_is_predicted_as_exported(tmp_path):
    """`export` with the bundled weights writes a 10-class head: predict --arch net.onnx predicts that head."""
    out = tmp_path / "net.onnx"
    res = run("export", "--arch", ROOT / "examples" / "arch-r160.json", "--format", "onnx", "--out", out, "--no-check")
    assert res.exit_code == 0, res.output
    p = tmp_path / "two-heads.json"
    save_lut(with_head_10(load_lut("cpu-ort")), p)
    got = json.loads(run("predict", "--lut", p, "--arch", out, "--json").stdout)
    want = json.loads(run("predict", "--lut", p, "--arch", ROOT / "examples" / "arch-r160.json", "--classes", "10",
                          "--json").stdout)
    assert got["timed"]["classes"] == 10 and got["latency_ms"] == want["latency_ms"] and got["arch"] == want["arch"]
    plain = tmp_path / "plain.onnx"
    import torch
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3).eval(), (torch.randn(1, 3, 8, 8),), str(plain), dynamo=False)
    res = run("predict", "--lut", p, "--arch", plain)
    assert res.exit_code == 1 and "does not name the subnet it holds" in res.stderr


def test_measure_classes_adds_the_head_beside_the_luts_own(tmp_path):
    dev = fast_spec(tmp_path, "onnxruntime")
    out = tmp_path / "lut.json"
    res = run("measure", "--device", dev, "--resolutions", "128", "--out", out, "--limit", "3", "--quiet")
    assert res.exit_code == 0, res.output
    res = run("measure", "--device", dev, "--resolutions", "128", "--out", out, "--classes", "10", "--quiet",
              "--json")
    assert res.exit_code == 0, res.output
    lut = load_lut(out)
    assert lut.timed.classes == 1000 and HEAD_10 in lut.entries   # its own head stays; the 10-class one is added
    assert HEAD_1000 not in lut.entries or lut.resolutions == ()
    fresh = tmp_path / "ten.json"
    res = run("measure", "--device", dev, "--resolutions", "128", "--out", fresh, "--classes", "10", "--limit", "2",
              "--quiet")
    assert res.exit_code == 0, res.output


def test_measure_graph_ofa_times_ofas_modules_and_is_never_mixed(tmp_path):
    dev = fast_spec(tmp_path, "onnxruntime")
    out = tmp_path / "ofa.json"
    res = run("measure", "--device", dev, "--resolutions", "128", "--out", out, "--graph", "ofa", "--limit", "2",
              "--quiet")
    assert res.exit_code == 0, res.output
    lut = load_lut(out)
    assert lut.timed == Timed(graph="ofa", classes=1000, precision="fp32", threads=1) and len(lut.entries) == 2
    assert "ofa graph" in run("lut", "info", out).stdout
    res = run("measure", "--device", dev, "--resolutions", "128", "--out", out, "--limit", "1", "--quiet")
    assert res.exit_code == 1 and "graph ofa vs ofa-profile" in res.stderr and res.stderr.count("\n") == 1
    for device in (fast_spec(tmp_path, "litert"), "pixel"):      # refused before any device is reached
        res = run("measure", "--device", device, "--graph", "ofa", "--out", tmp_path / "x.json", "--quiet")
        assert res.exit_code == 1 and "graph flavour 'ofa' is OFA's torch modules" in res.stderr, res.output


def test_ofa_graph_blocks_compute_the_librarys_function():
    """The two flavours are the same network (same weights drawn in the same order): only the graph differs."""
    import torch

    from ofa_profile.blocks import op_input, op_module, subnet_input, subnet_module
    from ofa_profile.ofa_graph import ofa_op_module, ofa_subnet_module
    spec = get_space("ofa-mbv3-w1.0").smallest(128)
    with torch.no_grad():
        x = subnet_input(spec)
        assert torch.allclose(ofa_subnet_module(spec)(x), subnet_module(spec)(x), atol=1e-3)
        for op in subnet_ops(spec)[:4] + subnet_ops(spec)[-4:]:
            xi = op_input(op)
            assert torch.allclose(ofa_op_module(op)(xi).flatten(1), op_module(op)(xi).flatten(1), atol=1e-3), op.key


def test_calibrate_with_another_head_records_it(tmp_path):
    """A calibration measured with a 10-class head stores it; predicting the LUT's own head adds the difference."""
    lut = with_head_10(load_lut("cpu-ort"))
    cal = dict(lut.calibration)
    cal["classes"] = 10
    two = lut.with_calibration(cal)
    rng = random.Random(5)
    s = get_space("ofa-mbv3-w1.0").sample(rng, resolution=list(lut.resolutions))
    diff = lut.entries[HEAD_1000].median_ms - 0.01
    assert two.predict_ms(s) == pytest.approx(two.with_classes(10).predict_ms(s) + diff, abs=1e-9)
    with pytest.raises(TimedError):
        dataclasses.replace(lut, timed=lut.timed).timed.require_same(Timed(graph="ofa"), "a", "b")


def test_auto_margin_compares_held_out_subnets_with_the_head_predicted():
    """--margin auto with another head: the held-out subnets (measured with the calibration's head) are shifted by
    the heads' LUT difference, so the margin is the same as with the calibration's own head."""
    from ofa_profile.latency import latency_source_from_lut
    lut = with_head_10(load_lut("cpu-ort"))
    own, ten = latency_source_from_lut(lut), latency_source_from_lut(lut.with_classes(10))
    assert len(ten.held_out) == len(own.held_out) > 0
    diff = lut.entries[HEAD_1000].median_ms - 0.01
    assert [m for _, m in ten.held_out] == pytest.approx([m - diff for _, m in own.held_out], abs=1e-9)
    assert ten.auto_margin_pct() == pytest.approx(own.auto_margin_pct(), abs=2.0)


def test_a_calibration_that_records_its_head_still_predicts_another_head(tmp_path):
    """A calibration written by this version records what its subnets were timed as (head included): predicting
    another head of the LUT is the heads' difference, not a mixing of records; another precision still is."""
    from ofa_profile.errors import LutError
    lut = with_head_10(load_lut("cpu-ort"))
    cal = dict(lut.calibration)
    cal["report"] = {**dict(cal.get("report") or {}), "timed": lut.timed.to_json()}   # 1000-class subnets
    own = lut.with_calibration(cal)
    s = get_space("ofa-mbv3-w1.0").sample(random.Random(7), resolution=list(lut.resolutions))
    diff = lut.entries[HEAD_1000].median_ms - 0.01
    assert own.with_classes(10).predict_ms(s) == pytest.approx(own.predict_ms(s) - diff, abs=1e-9)
    save_lut(own, tmp_path / "l.json")
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps(s.to_ofa()))
    r = run("predict", "--lut", tmp_path / "l.json", "--arch", arch, "--classes", "10", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["timed"]["classes"] == 10
    cal["report"]["timed"] = {**lut.timed.to_json(), "precision": "int8"}
    with pytest.raises(LutError, match="cannot be mixed"):
        lut.with_calibration(cal)
