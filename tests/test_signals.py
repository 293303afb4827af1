"""Ctrl-C (SIGINT) or SIGTERM at any moment ends a command with one line and exit 130 / 143.

Real processes get real signals at several moments: while Python imports click, torch and onnxruntime
(where a KeyboardInterrupt used to surface as a RecursionError, exit 1, and a 70-line traceback), while
blocks are measured, and in the trainer before it trains.  The journal keeps every finished block and a rerun
resumes from it.  The delays count from the moment the process has installed its handlers (read from
/proc/PID/status): before that the interpreter itself is still starting.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import sigint_default

ROOT = Path(__file__).resolve().parents[1]
CONSOLE = "import sys; from ofa_profile.console import console_main; sys.exit(console_main())"   # = the script
FAST_TIMING = {"warmup_runs": 1, "min_runs": 3, "max_runs": 3, "max_time_s": 0.5, "target_iqr_rel": 1.0}

# signals land at moments measured in real time: a quiet core (`make test` runs these alone, -m serial)
pytestmark = [pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status"),
              pytest.mark.serial]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _handlers_installed(pid: int, timeout: float = 60.0) -> bool:
    """Wait until the process catches SIGTERM (Python alone does not: only our handlers do)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return True
        time.sleep(0.005)
    return False


def _journal_ok(journal: Path) -> int:
    """Every line of the journal is a whole record; returns the number of entries."""
    if not journal.exists():
        return 0
    data = journal.read_bytes()
    assert not data or data.endswith(b"\n"), data[-300:]
    recs = [json.loads(line) for line in data.splitlines()]
    return sum(r["type"] == "entry" for r in recs)


class _Run(threading.Thread):
    """Start ``cmd``, send ``sig`` ``delay`` s after its handlers are installed (or once ``when()`` is true)."""

    def __init__(self, cmd: list, sig: int, delay: float, when=None, wait_s: float = 60.0):
        super().__init__(daemon=True)
        self.cmd, self.sig, self.delay, self.when, self.wait_s = cmd, sig, delay, when, wait_s
        self.rc: int | None = None
        self.err = ""

    def run(self) -> None:
        p = subprocess.Popen(self.cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=sigint_default)
        try:
            if _handlers_installed(p.pid, self.wait_s) or p.poll() is None:
                deadline = time.time() + 120
                while self.when is not None and not self.when() and p.poll() is None and time.time() < deadline:
                    time.sleep(0.01)
                time.sleep(self.delay)
                if p.poll() is None:
                    p.send_signal(self.sig)
            _, self.err = p.communicate(timeout=120)
            self.rc = p.returncode
        finally:
            if p.poll() is None:
                p.kill()


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.mark.slow
def test_ctrl_c_and_sigterm_at_any_moment_of_measure(tmp_path):
    runs = []
    for i, (sig, delay) in enumerate([(signal.SIGINT, d) for d in (0.05, 0.3, 0.8, 1.5)]
                                     + [(signal.SIGTERM, d) for d in (0.1, 0.6)]):
        out = tmp_path / f"lut{i}.json"
        runs.append((_Run([sys.executable, "-c", CONSOLE, "measure", "--device", "cpu-ort", "--resolutions", "160",
                           "--out", str(out), "-q"], sig, delay), out))
    # a run stopped while it measures: the journal keeps its blocks and the rerun goes on from them
    spec = tmp_path / "fast-torch.json"
    spec.write_text(json.dumps({"format": "ofa-profile-device", "schema_version": 1, "name": "fast-torch",
                                "description": "test", "runtime": "torch", "transport": "local",
                                "num_threads": 1, "timing": FAST_TIMING}))
    mid = tmp_path / "mid.json"
    mid_journal = mid.with_name(mid.name + ".journal.jsonl")
    runs.append((_Run([sys.executable, "-c", CONSOLE, "measure", "--device", str(spec), "--resolutions", "160",
                       "--out", str(mid), "-q"], signal.SIGTERM, 0.0,
                      when=lambda: mid_journal.exists() and mid_journal.read_bytes().count(b"\n") >= 3), mid))
    for r, _ in runs:
        r.start()
    for r, _ in runs:
        r.join(240)
    for r, out in runs:
        assert r.rc == 128 + r.sig, (r.sig, r.delay, r.rc, r.err[-3000:])
        line = _one_line(r.err)
        assert line.startswith(f"stopped by {signal.Signals(r.sig).name}: ") and "rerun" in line, line
        _journal_ok(out.with_name(out.name + ".journal.jsonl"))
        assert not out.exists()                 # the LUT is only written when the run ends
    kept = _journal_ok(mid_journal)
    assert kept >= 2
    from ofa_profile.devices import load_device
    from ofa_profile.measure import measure_lut

    res = measure_lut(load_device(spec), mid, [160], progress=False, limit=1)    # the rerun goes on from the journal
    assert res.measured == 1 and res.reused == kept


def _image_folder(root: Path) -> Path:
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")
    return root


@pytest.mark.slow
def test_trainer_stopped_in_its_first_second(tmp_path):
    """In its first second (imports, decoding, the first steps) a signal stops the trainer: 128 + signal, no
    traceback, its last line the stop (before the steps at once, during them after the step in flight)."""
    data = _image_folder(tmp_path / "data")
    runs = [_Run([sys.executable, "-m", "ofa_model.train", "--train-data", str(data), "--out", str(tmp_path / f"r{i}"),
                  "--image-size", "128", "--resolutions", "128", "--batch-size", "4", "--eval-images", "0"], sig, delay)
            # each signal is sent `delay` after the trainer has installed its handlers (read from /proc, however
            # long a loaded machine takes to get there; a fixed 1 s cap sent it into the interpreter's start-up,
            # exit -2): they are installed before torch is imported, so it lands in the imports or the decoding
            for i, (sig, delay) in enumerate([(signal.SIGINT, 0.05), (signal.SIGTERM, 0.2), (signal.SIGINT, 0.4)])]
    for r in runs:
        r.start()
    for r in runs:
        r.join(240)
    for r in runs:
        assert r.rc == 128 + r.sig and "Traceback" not in r.err, (r.sig, r.delay, r.rc, r.err[-3000:])
        last = r.err.strip().splitlines()[-1]
        # the stop line ends the output; a decoding bar cut mid-line may still share its line (see the note on
        # _end_progress_bars in ofa_profile/clierrors.py)
        assert f"stopped by {signal.Signals(r.sig).name}: " in last and last.endswith("to resume"), r.err[-3000:]
        if "decode data" not in r.err:          # stopped before it printed anything: only the one line
            _one_line(r.err)


def test_the_stop_line_is_a_line_of_its_own_after_a_progress_bar():
    """A signal during a progress bar (decoding a dataset, measuring blocks) must not append the one line to the
    bar's open line (seen in CI: 'decode data:   0%| ... stopped by SIGINT: ...')."""
    import subprocess
    import sys

    code = ("import sys\nfrom tqdm import tqdm\nfrom ofa_profile import clierrors\n"
            "b = tqdm(total=8, desc='decode data', file=sys.stderr)\nb.update(1)\n"
            "sys.exit(clierrors._interrupted(2, 'finished work is kept'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130
    assert r.stderr.splitlines()[-1] == "stopped by SIGINT: finished work is kept", r.stderr
