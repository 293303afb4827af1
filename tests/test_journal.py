"""The measure journal read back and written strictly: a corrupt line is one error naming the journal and
``--fresh`` (only a torn last line, from a kill mid-write, is dropped); a full disk while journalling is one
line, exit 1, with the LUT as it was and no half line left in the journal; the calibration journal likewise."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main
from ofa_profile.measure import JOURNAL_SUFFIX

from helpers import mount_tmpfs

FAST_TIMING = {"warmup_runs": 1, "min_runs": 3, "max_runs": 3, "max_time_s": 0.5, "target_iqr_rel": 1.0}


def _spec(folder: Path) -> Path:
    p = folder / "fast.json"
    p.write_text(json.dumps({"format": "ofa-profile-device", "schema_version": 1, "name": "fast",
                             "description": "test device", "runtime": "torch", "transport": "local",
                             "num_threads": 1, "timing": FAST_TIMING}))
    return p


def _measure(spec: Path, out: Path, *extra: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["measure", "--device", str(spec), "--resolutions", "128", "--out", str(out), "-q",
                                  *extra])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.stderr


def _valid_lines(journal: Path) -> list[dict]:
    """Every line of the journal is a whole JSON record, and the file ends with a newline."""
    data = journal.read_bytes()
    assert data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """A LUT with 3 measured blocks and the journal of that unfinished run (copied by each test)."""
    d = tmp_path_factory.mktemp("started")
    spec = _spec(d)
    code, err = _measure(spec, d / "lut.json", "--limit", "3")
    assert code == 0, err
    return d


def _copy(started: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    for name in ("lut.json", "lut.json" + JOURNAL_SUFFIX, "fast.json"):
        (tmp_path / name).write_bytes((started / name).read_bytes())
    return tmp_path / "fast.json", tmp_path / "lut.json", tmp_path / ("lut.json" + JOURNAL_SUFFIX)


def _entry_line(journal: Path) -> dict:
    return next(r for r in _valid_lines(journal) if r.get("type") == "entry")


@pytest.mark.parametrize("bad", ["garbage", "truncated", "wrong-type", "nan", "negative", "list", "pass-zero",
                                 "unknown-type", "extra-field", "no-key"])
def test_a_corrupt_journal_line_is_one_error_naming_the_journal_and_fresh(started, tmp_path, bad):
    spec, out, journal = _copy(started, tmp_path)
    rec = _entry_line(journal)
    e = rec["entry"]
    line = {
        "garbage": "hello, this is not a record",
        "truncated": json.dumps(rec)[:40],
        "wrong-type": json.dumps({**rec, "entry": {**e, "median_ms": "fast"}}),
        "nan": json.dumps({**rec, "entry": {**e, "median_ms": float("nan")}}),
        "negative": json.dumps({**rec, "entry": {**e, "iqr_ms": -1.0}}),
        "list": json.dumps([rec]),
        "pass-zero": json.dumps({**rec, "pass": 0}),
        "unknown-type": json.dumps({**rec, "type": "entri"}),
        "extra-field": json.dumps({**rec, "entry": {**e, "p99_ms": 1.0}}),
        "no-key": json.dumps({k: v for k, v in rec.items() if k != "key"}),
    }[bad]
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")     # a bad line in the middle
    lut_before, journal_before = out.read_bytes(), journal.read_bytes()
    code, err = _measure(spec, out, "--limit", "1")
    msg = err.strip().splitlines()
    assert code == 1 and len(msg) == 1 and "Traceback" not in err, (code, err[-2000:])
    assert msg[0].startswith(f"error: journal {journal} line 2 is corrupt") and "--fresh" in msg[0], msg[0]
    assert out.read_bytes() == lut_before and journal.read_bytes() == journal_before
    # --fresh discards it and measures again
    code, err = _measure(spec, out, "--limit", "1", "--fresh")
    assert code == 0, err
    assert len([r for r in _valid_lines(journal) if r["type"] == "entry"]) == 1


def test_a_torn_last_line_is_dropped_and_cut_off(started, tmp_path):
    spec, out, journal = _copy(started, tmp_path)
    n_entries = len([r for r in _valid_lines(journal) if r["type"] == "entry"])
    with open(journal, "ab") as f:
        f.write(json.dumps(_entry_line(journal)).encode()[:50])        # a kill mid-write: no newline
    code, err = _measure(spec, out, "--limit", "1")
    assert code == 0, err
    recs = _valid_lines(journal)                                        # the torn bytes are gone
    assert len([r for r in recs if r["type"] == "entry"]) == n_entries + 1
    code, err = _measure(spec, out, "--limit", "1")                     # and a further run reads it back
    assert code == 0, err


def test_a_journal_that_is_not_a_file_is_one_line(started, tmp_path):
    spec, out, journal = _copy(started, tmp_path)
    journal.unlink()
    journal.mkdir()
    code, err = _measure(spec, out, "--limit", "1")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--fresh" in err and str(journal) in err, err


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_a_full_disk_while_journalling_is_one_line_and_leaves_no_half_line(started, tmp_path):
    """A real small filesystem (tmpfs, needs root) fills up while the journal grows: one line and exit 1; the
    LUT is unchanged and the journal holds whole records only; with space again the run resumes."""
    fs = tmp_path / "fs"
    if not mount_tmpfs(fs, "512k"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        spec, out, journal = _copy(started, fs)
        lut_before = out.read_bytes()
        n_before = len([r for r in _valid_lines(journal) if r["type"] == "entry"])
        page = os.statvfs(fs).f_frsize
        with open(fs / "filler", "wb") as f:              # leave one page free beyond the journal's last one
            f.write(b"\0" * (_free_bytes(fs) - page))
        code, err = _measure(spec, out, "--limit", "60")
        msg = err.strip().splitlines()
        assert code == 1 and len(msg) == 1 and "Traceback" not in err, (code, err[-2000:])
        assert msg[0].startswith(f"error: cannot write journal {journal}") and "No space left" in msg[0], msg[0]
        assert out.read_bytes() == lut_before
        kept = len([r for r in _valid_lines(journal) if r["type"] == "entry"])
        assert n_before < kept < n_before + 60                       # what fitted is kept, whole lines only
        (fs / "filler").unlink()
        r = CliRunner().invoke(main, ["measure", "--device", str(spec), "--resolutions", "128", "--out", str(out),
                                      "-q", "--limit", "60", "--json"])
        assert r.exit_code == 0, r.stderr
        from ofa_profile.lut import load_lut
        assert json.loads(r.stdout)["measured"] == 60
        assert len(load_lut(out).entries) == kept + 60              # resumed: what was journalled is not lost
    finally:
        subprocess.run(["umount", str(fs)], capture_output=True)


def test_a_corrupt_calibration_journal_line_is_one_error(tmp_path):
    from ofa_profile.calibrate import _arch_key, measure_subnets
    from ofa_profile.errors import OfaProfileError
    from ofa_profile.space import get_space

    specs = [get_space("ofa-mbv3-w1.0").sample(i, resolution=160) for i in range(2)]
    journal = tmp_path / "lut.json.calib-s0.jsonl"
    good = json.dumps({"arch": _arch_key(specs[0]), "round": 0, "median_ms": 3.0, "iqr_ms": 0.1, "count": 10})
    for bad in ("garbage", json.dumps({"arch": _arch_key(specs[1]), "round": 0, "median_ms": float("nan")}),
                json.dumps({"arch": _arch_key(specs[1]), "round": "0", "median_ms": 2.0}), "[1, 2]"):
        journal.write_text(f"{good}\n{bad}\n{good}\n")
        with pytest.raises(OfaProfileError, match=f"journal {journal} line 2 is corrupt .*rm {journal}"):
            measure_subnets(None, specs, journal, 0, progress=False, rounds=1)
