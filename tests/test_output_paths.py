"""No output escapes its folder: names taken from file contents are plain file names, --out-dir is checked
before any work, and a symlinked --out is written through (the link stays a link, its target gets the file)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import fast_spec, read_only_dir

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
SHIPPED_LUT = ROOT / "lut" / "cpu-ort.json"
HIJACK = "x/../../../../elsewhere/hijacked"


def _cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=cwd)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _one_error_line(r) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.parametrize("text, name", [
    ("cpu-ort", "cpu-ort"), ("pixel7-b4.v2", "pixel7-b4.v2"), (HIJACK, "x-elsewhere-hijacked"),
    ("/etc/passwd", "etc-passwd"), ("..", "unnamed"), ("", "unnamed"), (".hidden", "hidden"), ("-rf", "rf"),
    ("Pixel 7 (b1)", "Pixel-7-b1"), ("a\\b\x00c", "a-b-c"), ("x" * 300, "x" * 80)])
def test_safe_name(text, name):
    from ofa_profile.paths import safe_name
    assert safe_name(text) == name
    assert "/" not in name and not name.startswith((".", "-"))


def test_a_hijacking_device_name_in_a_lut_writes_only_under_out_dir(tmp_path):
    """The issue's LUT: its device field climbs out of --out-dir; every file (json, best.json, png) lands
    directly in --out-dir, and nothing is created anywhere else."""
    lut = json.loads(SHIPPED_LUT.read_text())
    lut["device"] = HIJACK
    src = tmp_path / "in" / "hijack.json"
    src.parent.mkdir()
    src.write_text(json.dumps(lut))
    out = tmp_path / "a" / "b" / "c"
    out.mkdir(parents=True)
    r = _cli("pareto", "--budget", "20ms", "--lut", src, "--out-dir", out, "--effort", "fast", "--n-budgets", "3")
    assert r.returncode == 0, r.stderr
    stem = "pareto-hijack-20ms"        # named by the LUT file, not its device field
    assert _files(tmp_path) == {"in/hijack.json"} | {f"a/b/c/{stem}{ext}" for ext in (".json", ".best.json", ".png")}
    assert [p.name for p in out.iterdir() if p.is_dir()] == []
    assert json.loads((out / f"{stem}.json").read_text())["device"] == HIJACK     # the data keeps the name


def test_a_hijacking_device_name_in_adapt_and_an_adapter_stays_in_its_folder(tmp_path, shared_data):
    """`adapt --device` picks the default file name, and the adapter then carries the name into `pareto`."""
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    r = _cli("adapt", "--device", HIJACK, "--measurements", shared_data / "reference" / "help-ofa-gpu-latency.csv",
             "--column", "lat_ms_titan_rtx_1", "--k", 20, cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path) == {"a/b/c/x-elsewhere-hijacked.adapter.json"}
    ad = cwd / "x-elsewhere-hijacked.adapter.json"
    assert json.loads(ad.read_text())["device"] == HIJACK
    r = _cli("pareto", "--budget", "8ms", "--adapter", ad, "--out-dir", cwd, "--effort", "fast", "--n-budgets", "3",
             "--no-plot")
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path) == {"a/b/c/x-elsewhere-hijacked.adapter.json", "a/b/c/pareto-x-elsewhere-hijacked-8ms.json",
                                "a/b/c/pareto-x-elsewhere-hijacked-8ms.best.json"}


def test_an_unusable_out_dir_fails_in_one_line_before_the_search(tmp_path):
    """Checked before any work: with a budget nothing meets, the old code reported the search's failure (or
    searched and then failed to write); now the folder's problem is the one line, and no search ran."""
    base = ["pareto", "--budget", "1ms", "--device", "cpu-ort", "--effort", "fast", "--no-plot"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    r = _cli(*base, "--out-dir", a_file / "sub")                    # its parent is a file
    line = _one_error_line(r)
    assert f"--out-dir {a_file / 'sub'}" in line and "latency:" not in r.stderr
    r = _cli(*base, "--out-dir", tmp_path / "no" / "such")           # neither it nor its parent exist
    line = _one_error_line(r)
    assert "does not exist" in line and "latency:" not in r.stderr
    assert _files(tmp_path) == {"file.txt"} and not (tmp_path / "no").exists()
    # a new folder whose parent exists is made (and not left behind empty when the command then fails)
    r = _cli(*base, "--out-dir", tmp_path / "new")                  # fails in the search
    assert r.returncode == 1 and "meets 1 ms" in r.stderr and not (tmp_path / "new").exists()
    r = _cli(*base[:2], "20ms", *base[3:], "--n-budgets", 3, "--out-dir", tmp_path / "new")
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path) == {"file.txt", "new/pareto-cpu-ort-shipped-20ms.json",
                                "new/pareto-cpu-ort-shipped-20ms.best.json"}


def test_a_read_only_out_dir_fails_in_one_line_before_the_search(tmp_path):
    base = ["pareto", "--budget", "1ms", "--device", "cpu-ort", "--effort", "fast", "--no-plot"]
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only_dir(ro):                    # root too: a read-only bind mount, which a chmod is not for root
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        r = _cli(*base, "--out-dir", ro)
        line = _one_error_line(r)
        assert "not writable" in line and "latency:" not in r.stderr
    assert not list(ro.iterdir())


# -- symlinked outputs are written through ----------------------------------------------------------------

def _link(tmp_path: Path, name: str, target_name: str, content: bytes | None = b"old\n") -> tuple[Path, Path]:
    """``tmp/out/<name>`` -> ``../real/<target_name>`` (a relative link into another folder)."""
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "real").mkdir(exist_ok=True)
    target = tmp_path / "real" / target_name
    if content is not None:
        target.write_bytes(content)
    link = tmp_path / "out" / name
    link.symlink_to(Path("..") / "real" / target_name)
    return link, target


def test_measure_writes_a_symlinked_lut_through(tmp_path):
    from ofa_profile.lut import load_lut
    link, target = _link(tmp_path, "lut.json", "target-lut.json", content=None)      # a dangling link: created
    spec = fast_spec(tmp_path, "torch")
    r = _cli("measure", "--device", spec, "--resolutions", 128, "--out", link, "-q", "--limit", 3)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == "../real/target-lut.json"
    assert len(load_lut(target).entries) == 3
    r = _cli("measure", "--device", spec, "--resolutions", 128, "--out", link, "-q", "--limit", 2)   # extended
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and len(load_lut(target).entries) == 5
    assert not [p for p in (tmp_path / "real").iterdir() if p.name.startswith(".")]          # no temp, no lock left


def test_lut_import_and_accuracy_predictor_write_a_symlinked_out_through(tmp_path, shared_data):
    """lut.py's own atomic writer (import-ofa) and the generic one (accuracy-predictor, JSON) both write through."""
    from ofa_profile.lut import load_lut
    link, target = _link(tmp_path, "note10.json", "t.json")
    r = _cli("lut", "import-ofa", shared_data / "reference" / "ofa-note10-lut-w1.2", "--out", link, "--device", "n10")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and load_lut(target).device == "n10"
    plink, ptarget = _link(tmp_path, "acc.json", "acc-target.json")
    r = _cli("accuracy-predictor", "--data", shared_data / "reference" / "ofa-w1.0-imagenet-accuracy.csv",
             "--model", "ridge", "--test-frac", 0, "--out", plink)
    assert r.returncode == 0, r.stderr
    assert plink.is_symlink() and json.loads(ptarget.read_text())["format"]


def test_accuracy_dataset_merge_writes_a_symlinked_csv_through(tmp_path):
    from ofa_model.evaluate import CSV_FIELDS, dataset_spec
    shards = []
    for k in range(2):
        spec = dataset_spec("ofa-mbv3-w1.0", 0, k, (160,))
        p = tmp_path / f"s{k}.csv"
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerow({"index": k, "space": spec.space, "seed": 0, "r": spec.r, "d": json.dumps(list(spec.d)),
                        "ks": json.dumps(list(spec.ks)), "e": json.dumps(list(spec.e)), "accuracy": 0.5 + k / 10,
                        "macs": 100, "params": 10, "n_val": 100, "n_calib": 100, "batch_size": 25,
                        "arch": spec.short()})
        shards.append(p)
    link, target = _link(tmp_path, "acc.csv", "acc-real.csv")
    r = _cli("accuracy-dataset", "--merge", shards[0], "--merge", shards[1], "--out", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink()
    rows = list(csv.DictReader(open(target, newline="")))
    assert [r["index"] for r in rows] == ["0", "1"]


def test_atomic_writers_replace_the_target_of_a_link_chain(tmp_path):
    from ofa_profile.atomic import write_text_atomic
    from ofa_profile.lut import _atomic_write
    target = tmp_path / "t.txt"
    target.write_text("old")
    (tmp_path / "l1").symlink_to("t.txt")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    write_text_atomic(tmp_path / "l2", "new")
    assert (tmp_path / "l2").is_symlink() and (tmp_path / "l1").is_symlink() and target.read_text() == "new"
    _atomic_write(tmp_path / "l2", b"newer", "LUT")
    assert (tmp_path / "l2").is_symlink() and target.read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l1", "l2", "t.txt"]


def test_an_out_that_is_a_fifo_or_device_is_refused_not_replaced(tmp_path):
    """Renaming the finished file onto an existing FIFO or device (``--out /dev/null`` as root) replaced it
    with a plain file: such an output, or a link to one, is refused in one line and stays what it was."""
    import stat

    from ofa_profile.atomic import write_text_atomic
    from ofa_profile.errors import OfaProfileError
    from ofa_profile.lut import _atomic_write
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to("fifo")
    for p in (fifo, tmp_path / "link"):
        with pytest.raises(OfaProfileError, match="FIFO"):
            write_text_atomic(p, "x")
        with pytest.raises(OfaProfileError, match="FIFO"):
            _atomic_write(p, b"x", "LUT")
    r = _cli("plot", "heatmap", "--device", "cpu-ort", "--out", tmp_path / "link")
    assert "FIFO" in _one_error_line(r)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link"]    # no lock file or temporary left


def test_a_device_name_with_mathtext_or_control_characters_is_drawn_as_written(tmp_path):
    """A LUT's device name is drawn in titles and legends: "$\\x{$" was parsed as mathtext (a ParseFatalException
    traceback at draw time) and a NUL or bidi override made matplotlib warn on stderr; both draw as plain text."""
    obj = json.loads(SHIPPED_LUT.read_text())
    for i, device in enumerate(["$\\undefinedcmd{$", "a\x00b\u202ec\nd"]):
        obj["device"] = device
        lut = tmp_path / f"l{i}.json"
        lut.write_text(json.dumps(obj))
        r = _cli("plot", "heatmap", "--lut", lut, "--resolution", "160", "--out", tmp_path / f"h{i}.png")
        assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]
        assert (tmp_path / f"h{i}.png").stat().st_size > 0
