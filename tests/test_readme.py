"""Every command of the README runs, so none goes stale.

The README's shell blocks are read from the file itself and run in order in a temporary folder (the main job end
to end: measure -> calibrate -> predict -> pareto -> export on this machine's CPU), then the commands its text
names in code spans.  Two kinds of settings are made small where a flag allows, and nothing else is changed: the
device spec's timing (a copy of ``cpu-ort`` with 3 runs per block, passed by path) and the size of the work
(``measure --resolutions 160``; ``calibrate --samples 10 --test-samples 2 --rounds 1``; ``lut check --blocks 2``).
``make`` lines are checked with ``make -n`` (what they would run), not run: ``make demo`` must run the README's
main job, in the same order.  ``console`` blocks show a command and the start of its output: the command runs and
its output starts as shown (up to the ``...``).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FAST_TIMING = {"warmup_runs": 1, "min_runs": 3, "max_runs": 3, "max_time_s": 0.5, "target_iqr_rel": 1.0}
# the work made small (appended where the README's command does not set the option itself)
SMALL = {"measure": ["--resolutions", "160", "--quiet"],
         "calibrate": ["--samples", "10", "--test-samples", "2", "--rounds", "1", "--quiet"],
         "lut check": ["--blocks", "2"]}


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block of a Markdown text."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def commands(body: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def readme_commands() -> list[list[str]]:
    return [c for lang, body in blocks(README.read_text(encoding="utf-8")) if lang == "sh" for c in commands(body)]


def inline_commands() -> list[list[str]]:
    """The commands the README's text names in code spans (`ofa-profile ...`)."""
    text = re.sub(r"^```.*?^```", "", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    return [shlex.split(m) for m in re.findall(r"`(ofa-profile [^`]+)`", text)]


def test_the_readme_is_short_and_its_commands_are_the_tools():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    cmds = readme_commands()
    assert cmds and {c[0] for c in cmds} <= {"ofa-profile", "make"}, cmds
    # the main job searches with the LUT it measured, never the shipped one of another machine
    main_job = [c for c in cmds if c[0] == "ofa-profile"]
    subs = [c[1] for c in main_job]
    assert subs.index("measure") < subs.index("calibrate") < subs.index("pareto")
    measured = next(c for c in main_job if c[1] == "measure")
    lut = measured[measured.index("--out") + 1]
    for c in main_job:
        if c[1] in ("calibrate", "predict", "pareto"):
            assert c[c.index("--lut") + 1] == lut, c
        if c[1] in ("predict", "pareto"):
            assert "--device" not in c, c


def _small(cmd: list[str], spec: Path) -> list[str]:
    args = [str(spec) if (i > 0 and cmd[i - 1] == "--device" and a == "cpu-ort") else a for i, a in enumerate(cmd)]
    extra = SMALL.get(" ".join(cmd[1:3]), SMALL.get(cmd[1], []))
    i = 0
    while i < len(extra):            # an option the README sets itself is left as it is
        opt, has_value = extra[i], i + 1 < len(extra) and not extra[i + 1].startswith("--")
        if opt not in args:
            args += extra[i:i + 1 + has_value]
        i += 1 + has_value
    return args[1:]


# its search ranks the whole space by a calibration fitted on 10 subnets timed 3 runs each: noise from another
# test on the other core can bend that fit below zero somewhere; run alone (`make test`, -m serial)
@pytest.mark.serial
def test_every_readme_command_runs_in_order(tmp_path, monkeypatch):
    """The main job end to end in an empty folder (with the repository's examples/), every file a later command
    reads written by an earlier one: measure's LUT, pareto's .best.json (named by the LUT file) for export."""
    spec = json.loads((ROOT / "device_specs" / "cpu-ort.json").read_text())
    spec["timing"] = FAST_TIMING
    (tmp_path / "specs").mkdir()
    fast = tmp_path / "specs" / "cpu-ort.json"          # the same device (name, runtime), timed briefly
    fast.write_text(json.dumps(spec))
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))      # lut check's cache: not the user's
    ran = []
    for cmd in readme_commands():
        if cmd[0] == "make":
            assert cmd[1:] in (["demo"], ["test"]), cmd
            continue
        res = CliRunner().invoke(main, _small(cmd, fast))
        assert res.exit_code == 0, (cmd, res.output)
        ran.append((cmd[1], res.stdout))
    # the commands the text names inline, run in the same folder after the main job (a bare `ofa-profile CMD`
    # names a command: its --help)
    for cmd in inline_commands():
        args = _small(cmd, fast) if len(cmd) > 2 else [cmd[1], "--help"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (cmd, res.output)
    out = dict(ran)
    assert set(out) >= {"devices", "measure", "calibrate", "predict", "pareto", "export"}
    assert re.search(r"^cpu-ort\.json: \d+ measured, \d+ reused of 96 ops, complete", out["measure"], re.M)
    assert "test_calibrated" in out["calibrate"] and "test_lut_sum" in out["calibrate"]
    # predict's line as the README explains it
    assert re.match(r"\d+\.\d+ ms \(calibrated; LUT sum \d+\.\d+ ms\) for r160-d42243-\S+ on cpu-ort \[cpu-ort\.json\]",
                    out["predict"]), out["predict"]
    for name in ("pareto-cpu-ort-8ms.json", "pareto-cpu-ort-8ms.best.json", "pareto-cpu-ort-8ms.png", "best.onnx"):
        assert (tmp_path / name).is_file(), name
    best = json.loads((tmp_path / "pareto-cpu-ort-8ms.best.json").read_text())
    assert best["lut"]["path"] == "cpu-ort.json" and not best["lut"]["shipped"] and best["latency_ms"] <= 8


def test_console_blocks_print_what_they_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shown = [body for lang, body in blocks(README.read_text(encoding="utf-8")) if lang == "console"]
    assert shown
    for body in shown:
        lines = body.splitlines()
        assert lines[0].startswith("$ ofa-profile ")
        cmd = shlex.split(lines[0][2:])
        res = CliRunner().invoke(main, cmd[1:])
        expected = "\n".join(lines[1:]).split("...")[0].strip()
        if expected.startswith("error:"):
            assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.output
            if cmd[1] == "measure" and "pixel" in cmd and shutil.which("adb") is None:
                continue            # without adb the line names the missing tool instead
            assert res.stderr.startswith(expected), res.stderr
        else:
            assert res.exit_code == 0 and res.stdout.startswith(expected), res.output


def _make_n(target: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-n", target, "OUT=demo-out"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_make_demo_runs_the_readme_main_job():
    """`make demo` runs the README's ofa-profile commands in the README's order, with the README's arguments (the
    demo may add settings that make it small, and gives the example its path)."""
    demo = []
    for line in _make_n("demo"):
        words = shlex.split(line.split("&&")[-1])
        if words and words[0].endswith("/ofa-profile"):
            demo.append(words[1:])
    readme = [c[1:] for c in readme_commands() if c[0] == "ofa-profile"]
    assert [d[0] for d in demo] == [r[0] for r in readme]
    for d, r in zip(demo, readme):
        given = [a if not a.startswith("examples/") else str(ROOT / a) for a in r]
        assert all(a in d for a in given), (d, r)


def test_make_test_runs_the_suite():
    assert any("pytest" in line and "tests" in line for line in _make_n("test"))


def test_make_test_runs_every_test_once_and_the_serial_ones_alone():
    """`make test`: all but the `serial` tests on both cores (pytest-xdist), then the `serial` ones in one process;
    the two selections are complements, so every test runs exactly once."""
    runs = [(w := shlex.split(line))[w.index("pytest") + 1:] for line in _make_n("test") if "pytest" in line]
    assert len(runs) == 2, runs
    (par, ser) = runs
    assert par[par.index("-m") + 1] == "not serial" and par[par.index("-n") + 1] == "2" and par[-1] == "tests"
    assert ser[ser.index("-m") + 1] == "serial" and "-n" not in ser and ser[-1] == "tests"
    pins = (ROOT / "requirements-test.txt").read_text().split()
    assert any(p.startswith("pytest-xdist==") for p in pins)
