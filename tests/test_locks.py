"""One writer per file (ofa_profile.lock): real processes contend for a LUT, a CSV, a run folder.

A second writer is refused in one line naming the holder's pid (exit 1, files unchanged) or, with --wait,
waits and then proceeds; a lock is released on every exit path, and one left by a killed process is harmless.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import FAST_TIMING, fast_spec

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
SHIPPED_LUT = ROOT / "lut" / "cpu-ort.json"
# lock holders and waiters race in real time: a quiet core (`make test` runs these alone, -m serial)
pytestmark = pytest.mark.serial

# takes the lock of argv[1] (a folder's with argv[3] == "folder"), says so, holds it argv[2] seconds ("stdin": until
# a line arrives on its stdin, so a test lets go exactly when it has seen what it waits for)
HOLD = ("import sys, time\n"
        "from ofa_profile.lock import output_lock\n"
        "with output_lock(sys.argv[1], folder=sys.argv[3:] == ['folder'], what='test holder'):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline() if sys.argv[2] == 'stdin' else time.sleep(float(sys.argv[2]))\n")


def _cli(*args, cmd=("-m", "ofa_profile.cli"), timeout=300, **kw):
    return subprocess.run([sys.executable, *cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=ENV, **kw)


def _popen(*args, cmd=("-m", "ofa_profile.cli")):
    from helpers import sigint_default             # these runs get Ctrl-C on purpose
    return subprocess.Popen([sys.executable, *cmd, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, preexec_fn=sigint_default)


def _hold(path, seconds=60.0, folder=False):
    """A real process holding the lock of ``path``; returns once it holds it. ``seconds=None``: until a line is
    written to its stdin."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "stdin" if seconds is None else str(seconds),
                          *(["folder"] if folder else [])],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    line = p.stdout.readline()
    assert line.strip() == "held", p.stderr.read()
    return p


def _stop(p):
    if p.poll() is None:
        p.kill()
    p.communicate()


def _snapshot(folder: Path) -> dict:
    return {q.name: q.read_bytes() for q in sorted(folder.iterdir()) if q.is_file()}


def _refused(r, holder_pid: int, shown: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    line = lines[0]
    assert line.startswith(f"error: {shown} is being written by pid {holder_pid} "), line
    assert "--wait" in line
    return line


def _slow_spec(tmp_path):
    """The fast test device with 10 runs per block: a measure of one resolution takes a few seconds."""
    p = fast_spec(tmp_path, "torch")
    spec = json.loads(p.read_text())
    spec["timing"] = {**FAST_TIMING, "min_runs": 10, "max_runs": 10}
    p.write_text(json.dumps(spec))
    return p


def _wait_for(cond, timeout=120.0, proc=None):
    t0 = time.time()
    while not cond():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.005)


@pytest.mark.slow
def test_two_measures_into_one_out_the_second_is_refused_or_waits_and_nothing_is_lost(tmp_path):
    """The issue's example: measure r=160 and r=224 into one --out. The second is refused while the first runs
    (and the first's journal is untouched); with --wait it waits and then extends the LUT: both resolutions kept."""
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import JOURNAL_SUFFIX
    from ofa_profile.ops import ops_at_resolution
    spec = _slow_spec(tmp_path)
    out = tmp_path / "lut.json"
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    a = _popen("measure", "--device", spec, "--resolutions", "160", "--out", out, "-q")
    try:
        _wait_for(lambda: journal.exists() and journal.stat().st_size > 0, proc=a)
        os.kill(a.pid, signal.SIGSTOP)                    # A holds the lock, mid-run, for as long as we need
        before = journal.read_bytes()
        b = _cli("measure", "--device", spec, "--resolutions", "224", "--out", out, "-q")
        _refused(b, a.pid, str(out))
        assert "ofa-profile measure" in b.stderr
        assert journal.read_bytes() == before and not out.exists()
        # calibrate takes the same lock: a LUT being extended is not calibrated under the measuring run's feet
        out.write_bytes(SHIPPED_LUT.read_bytes())
        c = _cli("calibrate", "--device", spec, "--lut", out, "--samples", 10, "-q")
        _refused(c, a.pid, str(out))
        assert out.read_bytes() == SHIPPED_LUT.read_bytes()
        out.unlink()
        b2 = _popen("measure", "--device", spec, "--resolutions", "224", "--out", out, "-q", "--wait")
        line = b2.stderr.readline()
        assert line.startswith(f"waiting for pid {a.pid} ") and str(out) in line, line
        os.kill(a.pid, signal.SIGCONT)
        assert a.wait(timeout=300) == 0, a.stderr.read()
        b_out, b_err = b2.communicate(timeout=300)
        assert b2.returncode == 0, b_err
    finally:
        for p in (a, locals().get("b2")):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
    lut = load_lut(out)
    assert set(lut.resolutions) == {160, 224}
    keys = {o.key for r in (160, 224) for o in ops_at_resolution("ofa-mbv3-w1.0", r)}
    assert keys <= set(lut.entries)
    assert not journal.exists() and not (tmp_path / ".lut.json.lock").exists()


def test_calibrate_is_refused_while_the_lut_is_locked_and_waits_with_wait(tmp_path):
    lut = tmp_path / "cpu-ort.json"
    lut.write_bytes(SHIPPED_LUT.read_bytes())
    h = _hold(lut)
    try:
        before = _snapshot(tmp_path)
        r = _cli("calibrate", "--device", "cpu-ort", "--lut", lut, "--samples", 10, "-q")
        line = _refused(r, h.pid, str(lut))
        assert "test holder" in line and "since " in line
        assert _snapshot(tmp_path) == before
    finally:
        _stop(h)
    # --wait: calibrate says it waits, and waits (still running while the holder holds); the holder lets go only
    # then, and calibrate goes on (to its next check, a resolution the space lacks: past the lock, before any
    # measuring). Event-driven: no timing assumption about how fast the child starts on a loaded machine.
    h = _hold(lut, seconds=None)
    try:
        c = _popen("calibrate", "--device", "cpu-ort", "--lut", lut, "--samples", 10, "--resolutions", 999, "-q",
                   "--wait")
        line = c.stderr.readline()
        assert line.startswith(f"waiting for pid {h.pid} ") and str(lut) in line, line
        time.sleep(0.2)
        assert c.poll() is None                          # it waits for the holder rather than going on
        h.communicate("go\n", timeout=60)
        _, err = c.communicate(timeout=300)
    finally:
        _stop(h)
    assert c.returncode == 2 and "resolution(s) [999] not in the space" in err, err
    assert not (tmp_path / ".cpu-ort.json.lock").exists()


def test_accuracy_dataset_is_refused_while_its_csv_or_shard_is_locked(tmp_path):
    out = tmp_path / "acc.csv"
    out.write_text("index\n")
    (tmp_path / "acc.csv.partial.csv").write_text("index\n")
    h = _hold(out)
    try:
        before = _snapshot(tmp_path)
        r = _cli("accuracy-dataset", "--n", 2, "--out", out, "-q")
        _refused(r, h.pid, str(out))
        shard = tmp_path / "s0.csv"
        shard.write_text("index,space\n")
        r = _cli("accuracy-dataset", "--merge", shard, "--out", out)            # --merge writes --out too
        _refused(r, h.pid, str(out))
        assert _snapshot(tmp_path) == {**before, "s0.csv": shard.read_bytes()}
    finally:
        _stop(h)
    # under torchrun each process writes its own shard file: rank 1 locks only acc.shard1of2.csv
    shard1 = tmp_path / "acc.shard1of2.csv"
    h = _hold(shard1)
    try:
        r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "accuracy-dataset", "--n-subnets", "4",
                            "--shard", "auto", "--out", str(out), "-q"], capture_output=True, text=True, timeout=300,
                           env={**ENV, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
        _refused(r, h.pid, str(shard1))
    finally:
        _stop(h)


def test_a_second_training_run_into_one_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    h = _hold(run, folder=True)
    try:
        before = _snapshot(run)
        r = _cli("--train-data", tmp_path / "none.tar", "--out", run, cmd=("-m", "ofa_model.train"))
        _refused(r, h.pid, str(run))
        assert _snapshot(run) == before
    finally:
        _stop(h)


@pytest.mark.parametrize("cmd", ["adapt", "accuracy-predictor", "export", "lut-import", "lut-export", "pareto"])
def test_other_writers_are_refused_while_their_output_is_locked(tmp_path, cmd, shared_data):
    ref = shared_data / "reference"
    out = tmp_path / "out.json"
    args = {
        "adapt": ["adapt", "--device", "d", "--measurements", ref / "help-ofa-gpu-latency.csv", "--out", out],
        "accuracy-predictor": ["accuracy-predictor", "--data", ref / "ofa-w1.0-imagenet-accuracy.csv", "--out", out],
        "export": ["export", "--arch", ROOT / "examples" / "arch-r160.json", "--format", "onnx", "--out", out],
        "lut-import": ["lut", "import-ofa", ref / "ofa-note10-lut-w1.2", "--out", out],
        "lut-export": ["lut", "export-ofa", SHIPPED_LUT, "--out", tmp_path],
        "pareto": ["pareto", "--budget", "20ms", "--device", "cpu-ort", "--out-dir", tmp_path, "--no-plot"],
    }[cmd]
    target = {"lut-export": tmp_path, "pareto": tmp_path / "pareto-cpu-ort-shipped-20ms.json"}.get(cmd, out)
    out.write_text("old\n")
    h = _hold(target, folder=cmd == "lut-export")
    try:
        before = _snapshot(tmp_path)
        r = _cli(*args)
        _refused(r, h.pid, str(target))
        assert _snapshot(tmp_path) == before
    finally:
        _stop(h)


def test_ctrl_c_and_errors_release_the_lock_and_a_killed_holder_leaves_a_harmless_file(tmp_path):
    from ofa_profile.lock import LockBusy, output_lock
    from ofa_profile.measure import JOURNAL_SUFFIX
    spec = _slow_spec(tmp_path)
    out = tmp_path / "lut.json"
    lock_file = tmp_path / ".lut.json.lock"
    # Ctrl-C in the middle of a measure: exit 130, the lock (and its file) gone
    a = _popen("measure", "--device", spec, "--resolutions", "160", "--out", out, "-q")
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    _wait_for(lambda: journal.exists() and journal.stat().st_size > 0, proc=a)
    assert lock_file.exists() and json.loads(lock_file.read_text())["pid"] == a.pid
    os.kill(a.pid, signal.SIGINT)
    _, err = a.communicate(timeout=120)
    assert a.returncode == 130, err
    assert not lock_file.exists()
    # an exception inside the block releases it too (in-process)
    with pytest.raises(RuntimeError):
        with output_lock(out):
            assert lock_file.exists()
            raise RuntimeError("boom")
    assert not lock_file.exists()
    # re-entrant within a process; another process is refused while held
    with output_lock(out) as lf, output_lock(out):
        assert lf == lock_file
        r = subprocess.run([sys.executable, "-c", HOLD, str(out), "0"], capture_output=True, text=True, env=ENV)
        assert r.returncode == 1 and f"pid {os.getpid()}" in r.stderr
    # SIGKILL: the kernel drops the lock, the file stays and is harmless
    h = _hold(out)
    os.kill(h.pid, signal.SIGKILL)
    h.wait()
    assert lock_file.exists()
    with output_lock(out):
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    assert not lock_file.exists()
    h = _hold(out)
    try:
        with pytest.raises(LockBusy, match=f"pid {h.pid} "):
            with output_lock(out):
                pass
    finally:
        _stop(h)


def test_a_lock_file_planted_as_a_symlink_or_fifo_is_refused_and_its_target_untouched(tmp_path):
    """A lock file that is a link to another file was opened through the link and that file overwritten with
    the holder's line; one that is no regular file is refused too (one line, exit 1)."""
    from ofa_profile.errors import OfaProfileError
    from ofa_profile.lock import output_lock
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / ".out.json.lock").symlink_to(victim)
    with pytest.raises(OfaProfileError, match="symlink"):
        with output_lock(tmp_path / "out.json"):
            pass
    assert victim.read_text() == "keep" and (tmp_path / ".out.json.lock").is_symlink()
    os.mkfifo(tmp_path / ".f.json.lock")
    with pytest.raises(OfaProfileError, match="not a regular file"):
        with output_lock(tmp_path / "f.json"):
            pass
    r = _cli("lut", "import-ofa", tmp_path / "none", "--out", tmp_path / "out.json")
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert r.stderr.startswith("error: ") and victim.read_text() == "keep"
