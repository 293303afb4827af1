"""The LUT builder end to end with real runtimes: resumable after SIGKILL, never a corrupt file."""
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofa_profile.devices import load_device
from ofa_profile.measure import JOURNAL_SUFFIX, measure_lut
from ofa_profile.ops import ops_at_resolution

from helpers import FAST_TIMING, fast_spec


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "litert"])
def test_measure_one_resolution_each_runtime(tmp_path, runtime):
    from ofa_profile.lut import load_lut
    from ofa_profile.runtimes import get_runtime
    ok, why = get_runtime(runtime).check()
    if not ok:
        pytest.skip(why)
    dev = load_device(fast_spec(tmp_path, runtime))
    out = tmp_path / "lut.json"
    r = measure_lut(dev, out, [128], progress=False, limit=None if runtime == "torch" else 12)
    lut = load_lut(out)
    assert lut.runtime == runtime and lut.space == "ofa-mbv3-w1.0"
    assert len(lut.entries) == (96 if runtime == "torch" else 12) == r.measured
    e = next(iter(lut.entries.values()))
    assert e.count == 3 and e.median_ms > 0 and len(e.raw_ms) == 3
    assert lut.fingerprint["runtime_versions"]


def _journal_lines(j: Path) -> int:
    return len(j.read_bytes().splitlines()) if j.exists() else 0


@pytest.mark.serial      # kills the run at a moment in real time: a quiet core
def test_sigkill_mid_run_resumes_without_remeasuring(tmp_path):
    from ofa_profile.lut import load_lut
    spec = fast_spec(tmp_path, "torch")
    out = tmp_path / "k.json"
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    cmd = [sys.executable, "-m", "ofa_profile.cli", "measure", "--device", str(spec), "--resolutions", "128,132",
           "--out", str(out), "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while _journal_lines(journal) < 30 and time.time() - t0 < 120 and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, "finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not out.exists()  # the LUT is only written at the end, atomically
    before = {}
    for line in journal.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn last line
        if rec.get("type") == "entry":
            before[rec["key"]] = rec["entry"]["raw_ms"]
    assert len(before) >= 25
    r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    total = len({o.key for res in (128, 132) for o in ops_at_resolution("ofa-mbv3-w1.0", res)})
    assert summary["total"] == total and summary["complete"]
    assert summary["measured"] == total - len(before)
    lut = load_lut(out)
    assert len(lut.entries) == total
    for k, raw in before.items():  # kept, not re-measured
        assert list(lut.entries[k].raw_ms) == raw
    assert not journal.exists()
    assert lut.resolutions == (128, 132)
    # the noise summary: the median block IQR/median and the share of blocks at the run cap, from the LUT itself
    rel = sorted(e.iqr_ms / e.median_ms for e in lut.entries.values())
    nz = summary["noise"]
    assert nz["iqr_rel_median"] == pytest.approx(statistics.median(rel), abs=1e-5)
    at_cap = sum(len(e.raw_ms) >= FAST_TIMING["max_runs"] for e in lut.entries.values()) / len(lut.entries)
    assert nz["max_runs"] == FAST_TIMING["max_runs"] and nz["share_at_max_runs"] == pytest.approx(at_cap, abs=1e-4)
    assert "noise: block IQR/median" in r.stderr


def test_existing_lut_is_extended(tmp_path):
    from ofa_profile.lut import load_lut
    dev = load_device(fast_spec(tmp_path, "torch"))
    out = tmp_path / "x.json"
    measure_lut(dev, out, [224], progress=False)
    first = load_lut(out)
    r = measure_lut(dev, out, [220, 224], progress=False)
    lut = load_lut(out)
    assert r.reused >= 96 - 1 and r.measured < 96
    assert lut.resolutions == (220, 224)
    for k, e in first.entries.items():
        assert lut.entries[k] == e


def test_foreign_lut_at_out_is_not_overwritten(tmp_path):
    load_device(fast_spec(tmp_path, "torch"))       # the spec file the command reads, valid
    out = tmp_path / "x.json"
    out.write_text("{truncated")
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "measure", "--device", str(tmp_path / "fast.json"),
                        "--resolutions", "128", "--out", str(out), "-q"], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "--fresh" in r.stderr
    assert out.read_text() == "{truncated"


def test_passes_keep_the_lowest_median_and_resume(tmp_path):
    """--passes 3: each block measured in 3 passes over the list (journalled per pass, so a stopped run
    resumes), its entry the pass with the lowest median; provenance records the passes."""
    from ofa_profile.lut import load_lut
    dev = load_device(fast_spec(tmp_path, "onnxruntime"))
    out = tmp_path / "p.json"
    n_ops = len(ops_at_resolution("ofa-mbv3-w1.0", 128))
    r = measure_lut(dev, out, [128], progress=False, passes=3, limit=n_ops + 10)   # pass 1 + part of pass 2
    assert r.measured == n_ops + 10 and not r.complete and r.missing == n_ops
    assert load_lut(out).entries == {}                 # no op has its 3 passes yet: nothing half-done is kept
    r = measure_lut(dev, out, [128], progress=False, passes=3)
    assert r.measured == 2 * n_ops - 10 and r.complete
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    assert not journal.exists()
    lut = load_lut(out)
    assert len(lut.entries) == n_ops and lut.provenance["passes"] == 3
    with pytest.raises(Exception, match="passes must be >= 1"):
        measure_lut(dev, tmp_path / "q.json", [128], progress=False, passes=0)


def test_passes_entry_is_the_minimum_of_the_journalled_passes(tmp_path):
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import _read_journal
    dev = load_device(fast_spec(tmp_path, "onnxruntime"))
    out = tmp_path / "m.json"
    n_ops = len(ops_at_resolution("ofa-mbv3-w1.0", 128))
    measure_lut(dev, out, [128], progress=False, passes=2, limit=2 * n_ops - 1)   # all but one measurement
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    _, runs = _read_journal(journal)
    assert sum(len(v) for v in runs.values()) == 2 * n_ops - 1 and {len(v) for v in runs.values()} == {1, 2}
    # pass 2 runs in reverse order: the op left without its second pass is the first of the list
    first = ops_at_resolution("ofa-mbv3-w1.0", 128)[0].key
    assert set(runs[first]) == {1}
    partial = load_lut(out)
    assert len(partial.entries) == n_ops - 1 and first not in partial.entries
    for k, e in partial.entries.items():
        assert e.median_ms == min(runs[k][1]["median_ms"], runs[k][2]["median_ms"])
    r = measure_lut(dev, out, [128], progress=False, passes=2)
    assert r.measured == 1 and r.complete and len(load_lut(out).entries) == n_ops


def test_a_journal_is_not_resumed_under_other_timing_settings(tmp_path):
    """Blocks timed under one stop rule are not mixed with blocks timed under another: one clear error."""
    from ofa_profile.errors import OfaProfileError
    spec = fast_spec(tmp_path, "onnxruntime")
    out = tmp_path / "t.json"
    r = measure_lut(load_device(spec), out, [128], progress=False, limit=3)
    assert not r.complete
    obj = json.loads(spec.read_text())
    obj["timing"] = dict(obj["timing"], target_ci_rel=0.05)
    spec.write_text(json.dumps(obj))
    with pytest.raises(OfaProfileError, match="timing: .* pass --fresh"):
        measure_lut(load_device(spec), out, [128], progress=False)
    r = measure_lut(load_device(spec), out, [128], progress=False, fresh=True)
    assert r.complete and r.reused == 0
