"""An input that is not a regular file (a FIFO with no writer, /dev/zero, /dev/urandom) or is larger than its kind
can be is refused in one line at once, by every reader; the user cache is not read or written through a planted
symlink, and a FIFO in its place does not hang a command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofa_profile.inputs import InputFileError, read_input

ROOT = Path(__file__).resolve().parents[1]
SPECIAL = ["fifo", "/dev/zero", "/dev/urandom"]


@pytest.fixture()
def fifo(tmp_path):
    p = tmp_path / "pipe.json"
    os.mkfifo(p)
    return p


def _path(kind, fifo):
    return fifo if kind == "fifo" else Path(kind)


def _cli(*args, env=None, timeout=60):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    return r, time.monotonic() - t0


def _one_line_error(r):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.serial      # a time limit: a quiet core
@pytest.mark.parametrize("kind", SPECIAL)
def test_the_reader_refuses_within_a_second(kind, fifo):
    t0 = time.monotonic()
    with pytest.raises(InputFileError) as ei:
        read_input(_path(kind, fifo), "arch file", 1 << 20)
    assert time.monotonic() - t0 < 1.0
    msg = str(ei.value)
    assert "not a regular file" in msg and "\n" not in msg


def test_the_reader_caps_the_size(tmp_path):
    p = tmp_path / "big.json"
    p.write_bytes(b" " * 2000)
    with pytest.raises(InputFileError, match="more than the 1000 bytes"):
        read_input(p, "device spec", 1000)
    assert read_input(p, "device spec", 2000) == b" " * 2000


def _commands(p: Path, tmp_path: Path):
    arch = ROOT / "examples" / "arch-r160.json"
    return {
        "--arch": ["predict", "--lut", "cpu-ort", "--arch", p, "--no-speed-check"],
        "--lut": ["predict", "--lut", p, "--arch", arch],
        "lut validate": ["lut", "validate", p],
        "adapt --measurements": ["adapt", "--device", "x", "--measurements", p, "--out", tmp_path / "a.json"],
        "predict-accuracy --predictor": ["predict-accuracy", "--arch", arch, "--predictor", p],
        "predict-accuracy --predictor .pth": ["predict-accuracy", "--arch", arch, "--predictor", p],
        "--device": ["measure", "--device", p, "--out", tmp_path / "l.json"],
        "accuracy-predictor --data": ["accuracy-predictor", "--data", p, "--out", tmp_path / "p.json"],
    }


@pytest.mark.parametrize("which", ["--arch", "--lut", "lut validate", "adapt --measurements",
                                   "predict-accuracy --predictor", "predict-accuracy --predictor .pth", "--device",
                                   "accuracy-predictor --data"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_every_reader_refuses_special_files(which, kind, tmp_path):
    if kind == "fifo":
        p = tmp_path / ("pipe.pth" if which.endswith(".pth") else "pipe.csv" if "csv" in which or "data" in which
                        or "measurements" in which else "pipe.json")
        os.mkfifo(p)
    else:
        p = Path(kind)
        if which.endswith(".pth"):
            p = tmp_path / "zero.pth"
            p.symlink_to("/dev/zero")
    r, secs = _cli(*_commands(p, tmp_path)[which], timeout=60)
    line = _one_line_error(r)
    assert "not a regular file" in line or "is a FIFO" in line or "character device" in line, line


def test_adapt_source_refuses_a_fifo(tmp_path, fifo):
    rows = tmp_path / "m.csv"
    rows.write_text("d,ks,e,r,latency_ms\n")
    r, _ = _cli("adapt", "--device", "x", "--measurements", rows, "--source", fifo, "--out", tmp_path / "a.json")
    line = _one_line_error(r)
    assert "FIFO" in line, line


def test_a_fifo_in_place_of_the_speed_check_cache_does_not_hang(tmp_path, monkeypatch):
    """The cache entry of the shipped LUT on cpu-ort is a FIFO: the check measures again (the entry is ignored and
    replaced by a file), and a planted symlink there is replaced, its target untouched."""
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut
    from ofa_profile.speedcheck import cache_path

    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    path, _ = cache_path(load_lut("cpu-ort"), load_device("cpu-ort"), 1)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    r, secs = _cli("lut", "check", "cpu-ort", "--device", "cpu-ort", "--blocks", "1", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert path.is_file() and not path.is_symlink()
    # a symlink planted in its place: not followed on read, replaced (not written through) on write
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path.unlink()
    path.symlink_to(victim)
    r, _ = _cli("lut", "check", "cpu-ort", "--device", "cpu-ort", "--blocks", "1", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "keep me" and path.is_file() and not path.is_symlink()
    assert json.loads(path.read_text())["format"] == "ofa-profile-speed-check"
