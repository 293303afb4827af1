"""``accuracy-dataset --merge`` of malformed shard CSVs: one line, exit 1, the output left as it was."""
from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main

FIELDS = ("index", "space", "seed", "r", "d", "ks", "e", "accuracy", "macs", "params", "n_val", "n_calib",
          "batch_size", "arch")


def _row(i: int, **kw) -> dict:
    row = {"index": i, "space": "ofa-mbv3-w1.0", "seed": 0, "r": 160, "d": json.dumps([2] * 5),
           "ks": json.dumps([3] * 20), "e": json.dumps([3] * 20), "accuracy": 0.5 + (i / 100 if isinstance(i, int) else 0), "macs": 100000,
           "params": 2000, "n_val": 10, "n_calib": 10, "batch_size": 25, "arch": f"arch{i}"}
    row.update(kw)
    return row


def _csv(rows: list[dict], fields=FIELDS) -> str:
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return f.getvalue()


def _merge(tmp_path, *texts: str) -> tuple[int, str, str]:
    paths = []
    for n, t in enumerate(texts):
        p = tmp_path / f"shard{n}.csv"
        p.write_text(t)
        paths += ["--merge", str(p)]
    r = CliRunner().invoke(main, ["accuracy-dataset", *paths, "--out", str(tmp_path / "acc.csv")])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.stdout, r.stderr


def test_merge_of_good_shards(tmp_path):
    code, out, err = _merge(tmp_path, _csv([_row(0), _row(2)]), _csv([_row(1)]))
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "acc.csv").open()))
    assert [r["index"] for r in rows] == ["0", "1", "2"]


@pytest.mark.parametrize("case,needle", [
    ("no-index-column", "no column index"),
    ("other-columns", "not an accuracy-dataset CSV"),
    ("index-not-a-number", "line 3"),
    ("accuracy-nan", "accuracy=nan"),
    ("accuracy-above-one", "accuracy=7"),
    ("d-not-a-list", "d="),
    ("ks-with-nan", "ks="),
    ("short-row", "fewer fields"),
    ("long-row", "more fields"),
    ("another-seed", "another run"),
    ("not-utf8", "not UTF-8"),
])
def test_malformed_shards_are_one_line_and_leave_the_output(tmp_path, case, needle):
    good = _csv([_row(0), _row(2)])
    bad = {
        "no-index-column": _csv([_row(1)], fields=FIELDS[1:]),
        "other-columns": "a,b\n1,2\n",
        "index-not-a-number": _csv([_row(1), _row("three")]),
        "accuracy-nan": _csv([_row(1, accuracy="nan")]),
        "accuracy-above-one": _csv([_row(1, accuracy=7)]),
        "d-not-a-list": _csv([_row(1, d="2,2,2,2,2")]),
        "ks-with-nan": _csv([_row(1, ks="[NaN, 3]")]),
        "short-row": _csv([_row(1)]) + "5,ofa-mbv3-w1.0\n",
        "long-row": _csv([_row(1)]) + _csv([_row(5)]).splitlines()[1] + ",extra\n",
        "another-seed": _csv([_row(1, seed=7)]),
        "not-utf8": None,
    }[case]
    (tmp_path / "acc.csv").write_text("keep me\n")
    if bad is None:
        (tmp_path / "shard1.csv").write_bytes(b"\xff\xfe\x00garbage")
        r = CliRunner().invoke(main, ["accuracy-dataset", "--merge", str(tmp_path / "shard1.csv"), "--out",
                                      str(tmp_path / "acc.csv")])
        code, err = r.exit_code, r.stderr
    else:
        code, _, err = _merge(tmp_path, good, bad)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, (code, err[-2000:])
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert (tmp_path / "acc.csv").read_text() == "keep me\n"
