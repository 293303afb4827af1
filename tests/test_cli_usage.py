"""Usage errors exit 2 and runtime errors exit 1, with one line each, in all three command lines.

A value typed for an option that does not parse or lies outside its range (``--batch-size -4``, ``--budget abc``,
a bad ``--resolutions``) is a usage error: one line ``error: ...`` naming the option, exit 2, before any work.
What the value refers to (a missing file, an unknown device) is a runtime error: one line, exit 1.  The trainer
(``python -m ofa_model.train``, ``ofa-profile train``) and the card (``python -m ofa_model.card``) end the same way
as ``ofa-profile`` (ofa_profile/clierrors.py).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_LUT = ROOT / "lut" / "cpu-ort.json"


def _ofa(args: list) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.stdout, r.stderr


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


# (command line, the option the message must name); every value here is malformed or out of range
OFA_PROFILE_USAGE = [
    (["measure", "--device", "cpu-ort", "--batch-size", "-4"], "--batch-size"),
    (["measure", "--device", "cpu-ort", "--batch-size", "0"], "--batch-size"),
    (["measure", "--device", "cpu-ort", "--limit", "-1"], "--limit"),
    (["measure", "--device", "cpu-ort", "--limit", "0"], "--limit"),
    (["measure", "--device", "cpu-ort", "--seed", "-1"], "--seed"),
    (["measure", "--device", "cpu-ort", "--passes", "0"], "--passes"),
    (["measure", "--device", "cpu-ort", "--resolutions", "abc"], "--resolutions"),
    (["measure", "--device", "cpu-ort", "--resolutions", "130"], "--resolutions"),
    (["calibrate", "--device", "cpu-ort", "--samples", "5"], "--samples"),
    (["calibrate", "--device", "cpu-ort", "--test-samples", "-1"], "--test-samples"),
    (["calibrate", "--device", "cpu-ort", "--rounds", "0"], "--rounds"),
    (["calibrate", "--device", "cpu-ort", "--lut", "{lut}", "--resolutions", "160-x"], "--resolutions"),
    (["enumerate", "--space", "nope"], "--space"),
    (["enumerate", "--resolutions", "12,13"], "--resolutions"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "0"], "--n"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--batch-size", "-4"], "--batch-size"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--n-val", "-1"], "--n-val"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--n-calib", "0"], "--n-calib"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--seed", "-5"], "--seed"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--shard", "5/2"], "--shard"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--device", "gpu"], "--device"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--space", "nope"], "--space"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "3", "--resolutions", "abc"], "--resolutions"),
    (["export", "--arch", "x.json", "--format", "onnx", "--out", "{tmp}/n.onnx", "--n-calib", "-1"], "--n-calib"),
    (["export", "--arch", "x.json", "--format", "onnx", "--out", "{tmp}/n.onnx", "--space", "nope"], "--space"),
    (["predict", "--lut", "cpu-ort", "--arch", "x.json", "--resolution", "130"], "--resolution"),
    (["predict", "--lut", "cpu-ort", "--arch", "x.json", "--resolution", "abc"], "--resolution"),
    (["predict", "--lut", "cpu-ort", "--arch", "x.json", "--space", "nope"], "--space"),
    (["lut", "import-ofa", "x", "--out", "{tmp}/l.json", "--space", "nope"], "--space"),
    (["pareto", "--budget", "abc"], "--budget"),
    (["pareto", "--budget", "-3"], "--budget"),
    (["pareto", "--budget", "nan"], "--budget"),
    (["pareto", "--budget", "1e400ms"], "--budget"),
    (["pareto", "--budget", "20", "--n-budgets", "-3"], "--n-budgets"),
    (["pareto", "--budget", "20", "--n-budgets", "0"], "--n-budgets"),
    (["pareto", "--budget", "20", "--margin", "abc"], "--margin"),
    (["pareto", "--budget", "20", "--margin", "100"], "--margin"),
    (["pareto", "--budget", "20", "--refresh", "-1"], "--refresh"),
    (["pareto", "--budget", "20", "--seed", "-1"], "--seed"),
    (["pareto", "--budget", "20", "--verify-images", "-1"], "--verify-images"),
    (["pareto", "--budget", "20", "--verify-calib-images", "0"], "--verify-calib-images"),
    (["pareto", "--budget", "20", "--verify-rounds", "0"], "--verify-rounds"),
    (["pareto", "--budget", "20", "--space", "nope"], "--space"),
    (["pareto", "--budget", "20", "--resolutions", "1-2-3"], "--resolutions"),
    (["pareto", "--budget", "20", "--effort", "max"], "--effort"),
    (["plot", "frontier", "--device", "cpu-ort", "--out", "{tmp}/f.png", "--n-random", "0"], "--n-random"),
    (["plot", "frontier", "--device", "cpu-ort", "--out", "{tmp}/f.png", "--budget", "abc"], "--budget"),
    (["plot", "frontier", "--device", "cpu-ort", "--out", "{tmp}/f.png", "--resolutions", "x"], "--resolutions"),
    (["plot", "predicted", "--measurements", "m.csv", "--out", "{tmp}/p.png", "--band", "2"], "--band"),
    (["plot", "predicted", "--measurements", "m.csv", "--out", "{tmp}/p.png", "--band", "nan"], "--band"),
    (["plot", "heatmap", "--device", "cpu-ort", "--out", "{tmp}/h.png", "--resolution", "130"], "--resolution"),
    (["plot", "ranks", "--device", "cpu-ort", "--out", "{tmp}/r.png", "--n", "1"], "--n"),
    (["plot", "ranks", "--device", "cpu-ort", "--out", "{tmp}/r.png", "--resolution", "131"], "--resolution"),
    (["adapt", "--device", "d", "--measurements", "m.csv", "--k", "0"], "--k"),
    (["adapt", "--device", "d", "--measurements", "m.csv", "--seed", "-1"], "--seed"),
    (["accuracy-predictor", "--data", "d.csv", "--out", "{tmp}/p.json", "--test-frac", "1"], "--test-frac"),
    (["accuracy-predictor", "--data", "d.csv", "--out", "{tmp}/p.json", "--test-frac", "-0.1"], "--test-frac"),
    (["accuracy-predictor", "--data", "d.csv", "--out", "{tmp}/p.json", "--test-frac", "nan"], "--test-frac"),
    (["measure", "--device", "cpu-ort", "--no-such-option"], "--no-such-option"),
    # --transport-option KEY=VALUE: malformed, or a key or value the device's transport does not declare
    (["measure", "--device", "pixel", "--transport-option", "cores"], "--transport-option"),
    (["measure", "--device", "pixel", "--transport-option", "=3"], "--transport-option"),
    (["measure", "--device", "pixel", "--transport-option", "no_such=1"], "--transport-option"),
    (["measure", "--device", "pixel", "--transport-option", "repeats=abc"], "--transport-option"),
    (["measure", "--device", "pixel", "--transport-option", "repeats=0"], "--transport-option"),
    (["measure", "--device", "pixel", "--transport-option", "cores=2,x"], "--transport-option"),
    (["measure", "--device", "cpu-ort", "--transport-option", "serial=X"], "--transport-option"),
    (["measure", "--device", "pixel", "--serial", "A", "--transport-option", "serial=B"], "--serial"),
    # huge counts: a usage error, not a numpy traceback, an out-of-memory kill or an endless loop
    (["pareto", "--budget", "20", "--n-budgets", "99999999999999999999999"], "--n-budgets"),
    (["plot", "frontier", "--device", "cpu-ort", "--out", "{tmp}/f.png", "--n-random", "1" + "0" * 20], "--n-random"),
    (["plot", "ranks", "--device", "cpu-ort", "--out", "{tmp}/r.png", "--n", "1" + "0" * 20], "--n"),
    (["accuracy-dataset", "--out", "{tmp}/a.csv", "--n", "1" + "0" * 20], "--n"),
    (["measure", "--device", "cpu-ort", "--passes", "1" + "0" * 20], "--passes"),
    (["measure", "--device", "cpu-ort", "--batch-size", "1" + "0" * 20], "--batch-size"),
    # an empty value (`--out ''`, an unset shell variable) is not the current folder, the default or a file ''
    (["accuracy-predictor", "--data", "d.csv", "--out", ""], "--out"),
    (["adapt", "--device", "d", "--measurements", "m.csv", "--out", ""], "--out"),
    (["lut", "export-ofa", "cpu-ort", "--out", ""], "--out"),
    (["lut", "validate", ""], "PATH"),
    (["pareto", "--budget", "20", "--out-dir", ""], "--out-dir"),
    (["pareto", "--budget", "20", "--resolutions", ""], "--resolutions"),
    (["predict", "--lut", "", "--arch", "x.json"], "--lut"),
    (["plot", "heatmap", "--device", "cpu-ort", "--device", "", "--out", "{tmp}/h.png"], "--device"),
]


@pytest.mark.parametrize("args,option", OFA_PROFILE_USAGE, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OFA_PROFILE_USAGE])
def test_ofa_profile_usage_errors_exit_2_in_one_line(tmp_path, args, option):
    lut = tmp_path / "cpu-ort.json"
    if "{lut}" in args:
        lut.write_bytes(SHIPPED_LUT.read_bytes())
    args = [a.replace("{tmp}", str(tmp_path)).replace("{lut}", str(lut)) for a in args]
    code, out, err = _ofa(args)
    line = _one_line(err)
    assert code == 2, (code, err)
    assert line.startswith("error: ") and option in line, line
    assert out == ""


@pytest.mark.parametrize("args,needle", [
    (["measure", "--device", "nokia3310"], "unknown device"),
    (["predict", "--lut", "cpu-ort", "--arch", "{tmp}/missing.json"], "does not exist"),
    (["predict", "--lut", "{tmp}/missing-lut.json", "--arch", "{tmp}/missing.json"], "missing-lut.json"),
    (["accuracy-dataset", "--merge", "{tmp}/none.csv", "--out", "{tmp}/a.csv"], "does not exist"),
])
def test_ofa_profile_runtime_errors_exit_1_in_one_line(tmp_path, args, needle):
    code, out, err = _ofa([a.replace("{tmp}", str(tmp_path)) for a in args])
    line = _one_line(err)
    assert code == 1 and line.startswith("error: ") and needle in line, (code, err)


TRAIN_USAGE = [
    (["--batch-size", "-4"], "--batch-size"),
    (["--batch-size", "0"], "--batch-size"),
    (["--resolutions", "abc"], "--resolutions"),
    (["--resolutions", "30,31"], "--resolutions"),
    (["--phase-epochs", "teacher=x"], "--phase-epochs"),
    (["--phase-epochs", "teacher=nan"], "--phase-epochs"),
    (["--phase-epochs", "teacher=-1"], "--phase-epochs"),
    (["--phase-epochs", "nosuch=1"], "--phase-epochs"),
    (["--space", "nope"], "--space"),
    (["--epoch-scale", "-1"], "--epoch-scale"),
    (["--epoch-scale", "inf"], "--epoch-scale"),
    (["--lr-scale", "0"], "--lr-scale"),
    (["--crop-scale-min", "0"], "--crop-scale-min"),
    (["--crop-scale-min", "1.5"], "--crop-scale-min"),
    (["--image-size", "8"], "--image-size"),
    (["--max-steps-per-phase", "-1"], "--max-steps-per-phase"),
    (["--ckpt-every", "-1"], "--ckpt-every"),
    (["--ckpt-minutes", "nan"], "--ckpt-minutes"),
    (["--eval-images", "-1"], "--eval-images"),
    (["--calib-images", "0"], "--calib-images"),
    (["--limit-per-class", "0"], "--limit-per-class"),
    (["--seed", "-1"], "--seed"),
    (["--device", "gpu"], "--device"),
    (["--threads", "-2"], "--threads"),
    (["--log-every", "0"], "--log-every"),
    (["--amp", "fp8"], "--amp"),
    (["--threads", "99999999999999999999"], "--threads"),   # was torch's "Overflow when unpacking long long"
    (["--cache-dir", ""], "--cache-dir"),
]


@pytest.mark.parametrize("extra,option", TRAIN_USAGE, ids=[" ".join(a) for a, _ in TRAIN_USAGE])
def test_trainer_usage_errors_exit_2_in_one_line(tmp_path, capsys, extra, option):
    from ofa_model.train import main as train_main

    code = train_main(["--train-data", str(tmp_path / "no-data"), "--out", str(tmp_path / "run"), *extra])
    err = capsys.readouterr().err
    line = _one_line(err)
    assert code == 2 and line.startswith("error: ") and option in line, (code, err)
    assert not (tmp_path / "run").exists()


def test_trainer_runtime_error_is_one_error_line_exit_1(tmp_path, capsys):
    from ofa_model.train import main as train_main

    code = train_main(["--train-data", str(tmp_path / "no-data"), "--out", str(tmp_path / "run")])
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and line.startswith("error: ") and "no-data" in line


CARD_USAGE = [
    (["--batch-size", "-4"], "--batch-size"),
    (["--resolutions", "130"], "--resolutions"),
    (["--resolutions", "abc"], "--resolutions"),
    (["--n-random", "-1"], "--n-random"),
    (["--n-calib", "0"], "--n-calib"),
    (["--n-val", "-1"], "--n-val"),
    (["--dataset-check", "-1"], "--dataset-check"),
    (["--device", "tpu"], "--device"),
    (["--n-random", "1" + "0" * 20], "--n-random"),
    (["--name", ""], "--name"),
]


@pytest.mark.parametrize("extra,option", CARD_USAGE, ids=[" ".join(a) for a, _ in CARD_USAGE])
def test_card_usage_errors_exit_2_in_one_line(tmp_path, capsys, extra, option):
    from ofa_model.card import main as card_main

    code = card_main(["--run", str(tmp_path / "run"), "--train-data", str(tmp_path / "t"), "--val-data",
                      str(tmp_path / "v"), "--out", str(tmp_path / "pkg"), *extra])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("error: ") and option in line, (code, line)
    assert not (tmp_path / "pkg").exists()


def test_card_runtime_error_is_one_error_line_exit_1(tmp_path, capsys):
    from ofa_model.card import main as card_main

    code = card_main(["--run", str(tmp_path / "run"), "--train-data", str(tmp_path / "t"), "--val-data",
                      str(tmp_path / "v"), "--out", str(tmp_path / "pkg")])
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and line.startswith("error: ") and "run" in line


def test_the_three_command_lines_end_the_same_way_as_processes(tmp_path):
    """Run as programs (not in-process): the same one line and exit code from each command line."""
    env_run = dict(capture_output=True, text=True, cwd=ROOT, timeout=120)
    cases = [
        ([sys.executable, "-m", "ofa_profile", "measure", "--device", "cpu-ort", "--batch-size", "-4"], 2, "--batch-size"),
        ([sys.executable, "-m", "ofa_profile.cli", "train", "--train-data", "x", "--out", str(tmp_path / "r"),
          "--batch-size", "-4"], 2, "--batch-size"),
        ([sys.executable, "-m", "ofa_model.train", "--train-data", "x", "--out", str(tmp_path / "r"),
          "--resolutions", "abc"], 2, "--resolutions"),
        ([sys.executable, "-m", "ofa_model.card", "--run", "r", "--train-data", "t", "--val-data", "v",
          "--batch-size", "-4"], 2, "--batch-size"),
        ([sys.executable, "-m", "ofa_model.card", "--run", str(tmp_path / "r"), "--train-data", "t", "--val-data", "v",
          "--out", str(tmp_path / "pkg")], 1, "error: "),
    ]
    for cmd, code, needle in cases:
        r = subprocess.run(cmd, **env_run)
        line = _one_line(r.stderr)
        assert r.returncode == code and line.startswith("error: ") and needle in line, (cmd, r.returncode, r.stderr)
