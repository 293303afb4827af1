"""`ofa-profile lut ...` and `ofa-profile predict`: golden values through the CLI, one-line errors, no tracebacks."""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ofa_profile.cli import main
from ofa_profile.space import get_space

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = {"ks": [5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3],
            "e": [3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3], "d": [2, 2, 3, 4, 3], "r": 192}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(res, fragment=""):
    assert res.exit_code == 1, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in res.output and "Traceback" not in err
    assert fragment in err, err
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.fixture(scope="module")
def ref(shared_data):
    r = shared_data / "reference"
    if not (r / "ofa-note10-lut-w1.2").is_dir():
        pytest.skip("OFA's Note10 LUT is absent from the reference data")
    return r


@pytest.fixture(scope="module")
def note10_json(ref, tmp_path_factory):
    out = tmp_path_factory.mktemp("lut") / "note10.json"
    res = run("lut", "import-ofa", ref / "ofa-note10-lut-w1.2", "--out", out, "--device", "note10", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["space"] == "ofa-mbv3-w1.2" and summary["entries"] == 450
    return out


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def predict_json(lut, arch, *extra):
    res = run("predict", "--lut", lut, "--arch", arch, "--json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_golden_values_through_predict(note10_json, ref, tmp_path):
    out = predict_json(note10_json, write_json(tmp_path / "tut.json", TUTORIAL))
    assert round(out["latency_ms"], 2) == 24.73 and round(out["lut_sum_ms"], 2) == 24.73
    assert out["calibrated"] is False and out["resolution"] == 192 and out["arch"]["d"] == [2, 2, 3, 4, 3]
    cfg = ref / "ofa-specialized" / "note10_lat-30ms_top1-78.4_finetune-75" / "net.config"
    out = predict_json(note10_json, cfg)
    assert round(out["latency_ms"], 2) == 29.97 and out["resolution"] == 224 and out["space"] == "ofa-mbv3-w1.2"
    sp = get_space("ofa-mbv3-w1.2")
    assert round(predict_json(note10_json, write_json(tmp_path / "l.json", sp.largest(224).to_ofa()))["latency_ms"],
                 2) == 92.40
    assert round(predict_json(note10_json, write_json(tmp_path / "s.json", sp.smallest(224).to_ofa()))["latency_ms"],
                 2) == 17.77
    # --resolution overrides the arch's r
    assert predict_json(note10_json, tmp_path / "s.json", "--resolution", "160")["resolution"] == 160
    res = run("predict", "--lut", note10_json, "--arch", tmp_path / "tut.json")
    assert res.exit_code == 0 and "24.730 ms" in res.stdout


def test_info_validate_export(note10_json, tmp_path):
    res = run("lut", "info", note10_json, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["space"] == "ofa-mbv3-w1.2" and info["resolutions"] == [160, 176, 192, 208, 224]
    assert info["entries"] == 450 and info["coverage"]["complete"] and info["coverage"]["missing_keys"] == 0
    assert info["calibration"] is None and info["fingerprint"]
    assert info["timing"]["settings"] is None            # OFA's YAML does not say how it timed
    res = run("lut", "info", note10_json)
    assert res.exit_code == 0 and "coverage:     complete" in res.stdout and "timing:       not recorded" in res.stdout
    # a measured LUT: its timing settings and how many runs its blocks took
    shipped = json.loads((ROOT / "lut" / "cpu-ort.json").read_text())
    tm = json.loads(run("lut", "info", "cpu-ort", "--json").stdout)["timing"]
    counts = sorted(e["count"] for e in shipped["entries"].values())
    cap = shipped["provenance"]["timing"]["max_runs"]
    assert tm["settings"] == shipped["provenance"]["timing"]
    assert tm["runs_per_block_median"] == statistics.median(counts)
    assert tm["share_at_max_runs"] == round(sum(c >= cap for c in counts) / len(counts), 4)
    assert f"{cap} runs" in run("lut", "info", "cpu-ort").stdout
    res = run("lut", "validate", note10_json)
    assert res.exit_code == 0 and res.stdout.startswith("ok: ")
    res = run("lut", "export-ofa", note10_json, "--out", tmp_path / "yaml")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "yaml").iterdir()) == [f"{r}_lookup_table.yaml" for r in
                                                                     (160, 176, 192, 208, 224)]
    res = run("lut", "import-ofa", tmp_path / "yaml", "--out", tmp_path / "again.json")
    assert res.exit_code == 0, res.output
    a, b = json.loads(note10_json.read_text()), json.loads((tmp_path / "again.json").read_text())
    assert a["entries"] == b["entries"] and a["resolution_entries"] == b["resolution_entries"]


def test_info_reports_missing_coverage(note10_json, tmp_path):
    obj = json.loads(note10_json.read_text())
    gone = [k for k in obj["entries"] if "x96x24" in k or "96x96x" in k]  # some r=192 keys
    for k in gone:
        del obj["entries"][k]
    for m in obj["resolution_entries"].values():
        for k in gone:
            m.pop(k, None)
    p = write_json(tmp_path / "holes.json", obj)
    info = json.loads(run("lut", "info", p, "--json").stdout)
    assert not info["coverage"]["complete"] and info["coverage"]["missing_keys"] == len(gone)
    assert set(info["coverage"]["missing_by_resolution"]["192"]) == set(gone)


BAD = ["truncated", "newer-schema", "w12-lut-w10-arch", "w12-lut-w10-space", "missing-keys", "proxyless-info",
       "proxyless-import", "proxyless-validate", "missing-lut", "missing-arch", "out-missing-dir", "export-missing-dir"]


@pytest.mark.parametrize("case", BAD)
def test_bad_inputs_exit_1_with_one_line(case, note10_json, ref, tmp_path):
    tut = write_json(tmp_path / "tut.json", TUTORIAL)
    proxyless = ref / "proxylessnas-mobile_trim.yaml"
    text = note10_json.read_text()
    if case == "truncated":
        p = tmp_path / "t.json"
        p.write_text(text[: len(text) // 2])
        res, frag = run("lut", "validate", p), "truncated"
    elif case == "newer-schema":
        obj = json.loads(text)
        obj["schema_version"] = 7
        res, frag = run("predict", "--lut", write_json(tmp_path / "v.json", obj), "--arch", tut), \
            "reads schema_version 1"
    elif case == "w12-lut-w10-arch":  # an OFA w1.0 specialized net (stem 16) on the w1.2 Note10 LUT
        cfg = ref / "ofa-specialized" / "LG-G8_lat-11ms_top1-73.0_finetune-25" / "net.config"
        res, frag = run("predict", "--lut", note10_json, "--arch", cfg), "ofa-mbv3-w1.0 but LUT"
    elif case == "w12-lut-w10-space":
        res, frag = run("predict", "--lut", note10_json, "--arch", tut, "--space", "ofa-mbv3-w1.0"), "other channel widths"
    elif case == "missing-keys":
        res, frag = run("predict", "--lut", note10_json, "--arch", tut, "--resolution", "128"), \
            "key(s) at r=128: Conv-input:128x128x3-output:64x64x24"
    elif case == "proxyless-info":
        res, frag = run("lut", "info", proxyless), "convert it first"
    elif case == "proxyless-import":
        res, frag = run("lut", "import-ofa", proxyless, "--out", tmp_path / "p.json"), "ProxylessNAS format"
        assert not (tmp_path / "p.json").exists()
    elif case == "proxyless-validate":
        # validated as an OFA table of its family, like a MobileNetV3 one: the trimmed file has keys of another space
        res, frag = run("lut", "validate", proxyless), "is not a block of space ofa-proxyless-w1.0"
    elif case == "missing-lut":
        res, frag = run("predict", "--lut", tmp_path / "nope.json", "--arch", tut), "does not exist"
    elif case == "missing-arch":
        res, frag = run("predict", "--lut", note10_json, "--arch", tmp_path / "nope.json"), "does not exist"
    elif case == "out-missing-dir":
        res, frag = run("lut", "import-ofa", ref / "ofa-note10-lut-w1.2", "--out", tmp_path / "no" / "x.json"), \
            "does not exist"
    elif case == "export-missing-dir":
        res, frag = run("lut", "export-ofa", note10_json, "--out", tmp_path / "no" / "sub"), "does not exist"
    else:  # pragma: no cover
        raise AssertionError(case)
    assert_one_line_error(res, frag)


def test_failed_import_keeps_existing_output(ref, note10_json, tmp_path):
    out = tmp_path / "keep.json"
    out.write_bytes(note10_json.read_bytes())
    before = out.read_bytes()
    res = run("lut", "import-ofa", ref / "proxylessnas-mobile_trim.yaml", "--out", out)
    assert_one_line_error(res, "ProxylessNAS format")
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["keep.json"]


def _subprocess(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_real_subprocess_predict_and_error(note10_json, tmp_path):
    tut = write_json(tmp_path / "tut.json", TUTORIAL)
    r = _subprocess("predict", "--lut", note10_json, "--arch", tut, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert round(out["latency_ms"], 2) == 24.73 and out["calibrated"] is False
    bad = tmp_path / "bad.json"
    bad.write_text(note10_json.read_text()[:1000])
    r = _subprocess("predict", "--lut", bad, "--arch", tut, "--json", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "truncated" in r.stderr and "Traceback" not in r.stderr
    r = _subprocess("lut", "validate", bad, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_help_texts_have_examples():
    for cmd in (["lut"], ["lut", "import-ofa"], ["lut", "export-ofa"], ["lut", "info"], ["lut", "validate"],
                ["predict"]):
        res = run(*cmd, "--help")
        assert res.exit_code == 0 and "Example:" in res.stdout, cmd
