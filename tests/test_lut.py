"""The LUT JSON format: schema, load errors, LUT sums, OFA YAML import/export (golden values on OFA's Note10 LUT)."""
import json
import math
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ofa_profile.lut import (FORMAT, IQR_PER_STD, SCHEMA_VERSION, Lut, LutEntry, LutError, LutMissError, detect_format,
                             export_ofa_yaml, import_ofa_yaml, load_lut, save_lut)
from ofa_profile.ops import ops_at_resolution, subnet_ops
from ofa_profile.space import SubnetSpec, get_space

from helpers import mount_tmpfs

W10, W12 = "ofa-mbv3-w1.0", "ofa-mbv3-w1.2"


def read_yaml(p: Path):
    return yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def tutorial_spec(space=W12):
    """OFA's tutorial subnet (r=192); skipped-block entries filled with 3 (see ../shared/data/README.md)."""
    ks = [5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3]
    e = [3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3]
    return SubnetSpec.from_ofa({"ks": ks, "e": e, "d": [2, 2, 3, 4, 3], "r": 192}, space=space)


def small_lut(space=W10, resolutions=(160,), **kw) -> Lut:
    """A LUT with deterministic figures (MACs-proportional) covering ``resolutions``."""
    entries = {}
    for r in resolutions:
        for op in ops_at_resolution(space, r):
            ms = 0.01 + op.macs() / 1e8
            entries[op.key] = LutEntry(median_ms=ms, iqr_ms=ms / 50, count=30, mean_ms=ms * 1.01, std_ms=ms / 40,
                                       raw_ms=(ms, ms * 1.02, ms * 0.99))
    args = dict(space=space, device="test-dev", runtime="onnxruntime", entries=entries, resolutions=resolutions,
                fingerprint={"cpu_model": "test", "num_threads": 1, "runtime_versions": {"onnxruntime": "1.0"}},
                provenance={"tool": "ofa-profile", "seed": 0, "timing": {"min_runs": 30}, "source": "measured"})
    args.update(kw)
    return Lut(**args)


@pytest.fixture(scope="module")
def note10_dir(shared_data):
    d = shared_data / "reference" / "ofa-note10-lut-w1.2"
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    return d


@pytest.fixture(scope="module")
def note10(note10_dir):
    return import_ofa_yaml(note10_dir)


# -- golden values ------------------------------------------------------------------------------

def test_golden_tutorial_subnet(note10):
    assert round(note10.lut_sum_ms(tutorial_spec()), 2) == 24.73


def test_golden_specialized_net(note10, shared_data):
    cfg = shared_data / "reference" / "ofa-specialized" / "note10_lat-30ms_top1-78.4_finetune-75" / "net.config"
    spec = SubnetSpec.load(cfg)  # r=224 from the sibling run.config
    assert spec.space == W12 and spec.r == 224
    assert round(note10.lut_sum_ms(spec), 2) == 29.97
    assert note10.predict_ms(spec) == note10.lut_sum_ms(spec)  # no calibration in an imported LUT


def test_golden_largest_smallest(note10):
    sp = get_space(W12)
    assert round(note10.lut_sum_ms(sp.largest(224)), 2) == 92.40
    assert round(note10.lut_sum_ms(sp.smallest(224)), 2) == 17.77


def test_sum_equals_ofa_per_table_sum(note10, note10_dir):
    """Our sum at each resolution is exactly OFA's: the sum of 'mean' of that resolution's own table."""
    sp = get_space(W12)
    for r in note10.resolutions:
        table = read_yaml((note10_dir / f"{r}_lookup_table.yaml"))
        for seed in range(5):
            s = sp.sample(seed, resolution=r)
            assert note10.lut_sum_ms(s) == pytest.approx(sum(table[op.key]["mean"] for op in subnet_ops(s)), abs=1e-12)


# -- OFA YAML import / export -------------------------------------------------------------------

def test_import_maps_fields(note10, note10_dir):
    assert note10.space == W12 and note10.resolutions == (160, 176, 192, 208, 224)
    assert note10.device == "imported" and note10.num_threads is None and note10.calibration is None
    table = read_yaml((note10_dir / "192_lookup_table.yaml"))
    k = "Conv-input:192x192x3-output:96x96x24"
    e, v = note10.entries[k], table[k]
    assert e.median_ms == e.mean_ms == v["mean"] and e.std_ms == v["std"] and e.count == v["count"]
    assert e.iqr_ms == pytest.approx(IQR_PER_STD * v["std"])
    notes = note10.provenance["notes"]
    assert "no median" in notes["median_ms"] and "estimate" in notes["iqr_ms"]
    assert note10.provenance["seed"] is None and note10.provenance["source"].startswith("imported")
    assert [f["resolution"] for f in note10.provenance["files"]] == [160, 176, 192, 208, 224]


def test_import_shared_keys_pooled_and_per_resolution(note10, note10_dir):
    k = "Conv_2-input:1x1x1152-output:1x1x1536"  # the same op in all five tables, measured five times
    tabs = {r: read_yaml((note10_dir / f"{r}_lookup_table.yaml"))[k] for r in note10.resolutions}
    n = sum(v["count"] for v in tabs.values())
    assert note10.entries[k].count == n
    assert note10.entries[k].median_ms == pytest.approx(sum(v["count"] * v["mean"] for v in tabs.values()) / n)
    for r, v in tabs.items():
        assert note10.entry(k, r).median_ms == v["mean"] and note10.entry(k, r).count == v["count"]
    assert len(note10.entries) == len({kk for r in note10.resolutions for kk in
                                       read_yaml((note10_dir / f"{r}_lookup_table.yaml"))})


def test_import_single_file_and_space_checks(note10_dir):
    one = import_ofa_yaml(note10_dir / "224_lookup_table.yaml", device="note10")
    assert one.resolutions == (224,) and len(one.entries) == 96 and one.device == "note10"
    assert not one.resolution_entries
    with pytest.raises(LutError, match="belongs to space ofa-mbv3-w1.2") as ei:
        import_ofa_yaml(note10_dir, space=W10)
    assert "\n" not in str(ei.value)


def test_export_round_trip(note10, note10_dir, tmp_path):
    paths = export_ofa_yaml(note10, tmp_path)
    assert [p.name for p in paths] == [f"{r}_lookup_table.yaml" for r in note10.resolutions]
    for p in paths:  # exactly OFA's data, file by file
        assert read_yaml(p) == read_yaml((note10_dir / p.name))
    again = import_ofa_yaml(tmp_path)
    assert again.entries == note10.entries and again.resolution_entries == note10.resolution_entries
    assert detect_format(paths[0]) == "ofa-mbv3-yaml"


def test_export_measured_lut_needs_complete_resolutions(tmp_path):
    lut = small_lut(resolutions=(160,))
    paths = export_ofa_yaml(lut, tmp_path)
    t = read_yaml(paths[0])
    e = next(iter(lut.entries.values()))
    k = next(iter(lut.entries))
    assert t[k] == {"count": e.count, "mean": e.median_ms, "std": e.std_ms}
    t2 = read_yaml(export_ofa_yaml(lut, tmp_path, value="mean")[0])
    assert t2[k]["mean"] == e.mean_ms
    partial = lut.with_entries(dict(list(lut.entries.items())[:50]))
    with pytest.raises(LutMissError, match="lacks 46 key"):
        export_ofa_yaml(partial, tmp_path)
    with pytest.raises(LutError, match="does not exist"):
        export_ofa_yaml(lut, tmp_path / "missing")


def test_proxylessnas_table_is_recognised(shared_data, tmp_path):
    """ProxylessNAS's own table ({count, mean, var}, expand as a ratio) is read with its family's grammar: it
    imports for the blocks of ofa-proxyless-w1.0 it covers (tests/test_families.py), is refused without
    --allow-partial naming the first foreign key, and is never taken for an ofa-profile LUT."""
    p = shared_data / "reference" / "proxylessnas-mobile_trim.yaml"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    assert detect_format(p) == "proxylessnas-yaml"
    with pytest.raises(LutError) as ei:
        import_ofa_yaml(p)
    msg = str(ei.value)
    assert "ProxylessNAS format" in msg and "ofa-proxyless-w1.0" in msg and "--allow-partial" in msg
    assert "\n" not in msg
    with pytest.raises(LutError, match="OFA YAML latency table, not an ofa-profile LUT; convert it first"):
        load_lut(p)
    # in a folder that looks like OFA's, too
    d = tmp_path / "tables"
    d.mkdir()
    (d / "224_lookup_table.yaml").write_bytes(p.read_bytes())
    with pytest.raises(LutError, match="ProxylessNAS format"):
        import_ofa_yaml(d)
    assert import_ofa_yaml(d, allow_partial=True).space == "ofa-proxyless-w1.0"


def test_ofa_yaml_errors_are_one_line(tmp_path):
    good = {"Conv-input:160x160x3-output:80x80x16": {"count": 5, "mean": 1.0, "std": 0.1}}
    cases = {
        "160_lookup_table.yaml": ({"Conv-input:160x160x3-output:80x80x16": {"count": 5, "mean": 1.0}}, "lacks std"),
        "164_lookup_table.yaml": (good, "file name says r=164"),
        "168_lookup_table.yaml": ({"Foo-input:1x1x1-output:1x1x1": {"count": 1, "mean": 1.0, "std": 0.0}},
                                  "not an OFA MobileNetV3 LUT key"),
        "172_lookup_table.yaml": ({"Conv-input:172x172x3-output:86x86x16": {"count": 1, "mean": -1.0, "std": 0.0}},
                                  "finite mean"),
    }
    for name, (data, frag) in cases.items():
        f = tmp_path / name
        f.write_text(yaml.safe_dump(data))
        with pytest.raises(LutError) as ei:
            import_ofa_yaml(f)
        assert frag in str(ei.value) and "\n" not in str(ei.value) and name in str(ei.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LutError, match="no <r>_lookup_table.yaml"):
        import_ofa_yaml(empty)


# -- JSON format --------------------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    from ofa_profile.paths import schemas_dir
    schema = json.loads((schemas_dir() / "lut.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")


def test_json_round_trip_and_schema(tmp_path):
    from jsonschema import Draft202012Validator

    from ofa_profile.paths import schemas_dir
    lut = small_lut(resolutions=(160, 164))
    p = tmp_path / "l.json"
    save_lut(lut, p)
    obj = json.loads(p.read_text())
    Draft202012Validator(json.loads((schemas_dir() / "lut.schema.json").read_text())).validate(obj)
    assert obj["format"] == FORMAT and obj["schema_version"] == SCHEMA_VERSION
    assert obj["provenance"]["tool"].startswith("ofa-profile ") and obj["provenance"]["seed"] == 0
    back = load_lut(p)
    assert back.entries == lut.entries and back.resolutions == (160, 164) and back.source == str(p)
    assert back.fingerprint == lut.fingerprint and back.created_utc == lut.created_utc
    assert Lut.from_json(back.to_json()) == back
    assert detect_format(p) == FORMAT


def test_records_are_frozen():
    lut = small_lut()
    with pytest.raises(TypeError):
        lut.entries["x"] = LutEntry(1.0, 0.0, 1)  # type: ignore[index]
    with pytest.raises(Exception):
        lut.space = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        lut.fingerprint["cpu_model"] = "y"  # type: ignore[index]
    e = next(iter(lut.entries.values()))
    assert isinstance(e.raw_ms, tuple)
    with pytest.raises(LutError, match="finite"):
        LutEntry(float("nan"), 0.0, 1)
    with pytest.raises(LutError, match="count"):
        LutEntry(1.0, 0.0, 0)


def _write_variant(tmp_path: Path, name: str, mutate) -> Path:
    obj = small_lut().to_json()
    text = mutate(obj)
    p = tmp_path / name
    p.write_text(text if isinstance(text, str) else json.dumps(obj))
    return p


def _first_key(obj):
    return next(iter(obj["entries"]))


BAD_FILES = {
    "truncated": (lambda o: json.dumps(o, indent=1)[:5000], "truncated"),
    "wrong-format": (lambda o: o.update(format="ofa-profile-device"), "not an ofa-profile LUT"),
    "no-format": (lambda o: o.pop("format") and None, "no 'format' field"),
    "newer-version": (lambda o: o.update(schema_version=2), "this ofa-profile reads schema_version 1"),
    "unknown-version": (lambda o: o.update(schema_version=0), "unknown LUT schema_version 0"),
    "string-version": (lambda o: o.update(schema_version="1"), "not an integer"),
    "schema-bad-type": (lambda o: o["entries"][_first_key(o)].update(median_ms="fast"),
                        "violates the LUT schema at $.entries"),
    "schema-missing-field": (lambda o: o.pop("runtime") and None, "violates the LUT schema at $: 'runtime' is a required"),
    "schema-negative": (lambda o: o["entries"][_first_key(o)].update(raw_ms=[1.0, -2.0]), "raw_ms[1]"),
    "schema-extra-field": (lambda o: o["entries"][_first_key(o)].update(median_s=1.0), "Additional properties"),
    "other-space-key": (lambda o: o["entries"].update({"Conv-input:160x160x3-output:80x80x24":
                                                       {"median_ms": 1.0, "iqr_ms": 0.0, "count": 1}}),
                        "belongs to space ofa-mbv3-w1.2"),
    "unparsable-key": (lambda o: o["entries"].update({"conv3x3": {"median_ms": 1.0, "iqr_ms": 0.0, "count": 1}}),
                       "'conv3x3' is not an OFA MobileNetV3 LUT key"),
    "bad-resolution": (lambda o: o.update(resolutions=[160, 230]), "resolution(s) [230] are not in space"),
    "unknown-space": (lambda o: o.update(space="resnet50"), "unknown space 'resnet50'"),
    "nan": (lambda o: json.dumps(o).replace('"median_ms": ' + str(o["entries"][_first_key(o)]["median_ms"]),
                                            '"median_ms": NaN', 1), "non-finite number NaN"),
    "not-json": (lambda o: "this: is: not [json", "neither JSON nor valid YAML"),
    "top-level-list": (lambda o: "[1, 2]", "not an object"),
    "empty": (lambda o: "  \n", "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_failures_are_one_clear_line(tmp_path, case):
    mutate, fragment = BAD_FILES[case]
    p = _write_variant(tmp_path, f"{case}.json", mutate)
    with pytest.raises(LutError) as ei:
        load_lut(p)
    msg = str(ei.value)
    assert fragment in msg, msg
    assert str(p) in msg and "\n" not in msg and len(msg) < 600


def test_load_missing_file_and_device_names(tmp_path, monkeypatch):
    with pytest.raises(LutError, match="does not exist"):
        load_lut(tmp_path / "nope.json")
    with pytest.raises(LutError, match="neither a LUT file nor a device with a shipped LUT"):
        load_lut("no-such-device")
    import ofa_profile.paths as paths
    save_lut(small_lut(), tmp_path / "mydev.json")
    monkeypatch.setattr(paths, "lut_dir", lambda: tmp_path)
    assert load_lut("mydev").device == "test-dev"


def test_load_ofa_yaml_says_import_it(note10_dir):
    with pytest.raises(LutError, match="lut import-ofa"):
        load_lut(note10_dir / "160_lookup_table.yaml")
    with pytest.raises(LutError, match="is a folder"):
        load_lut(note10_dir)


# -- sums, misses, spaces -----------------------------------------------------------------------

def test_lut_sum_is_sum_of_medians():
    lut = small_lut()
    s = get_space(W10).sample(7, resolution=160)
    assert lut.lut_sum_ms(s) == pytest.approx(sum(lut.entries[o.key].median_ms for o in subnet_ops(s)))
    assert lut.missing_keys(s) == [] and lut.predict_ms(s) == lut.lut_sum_ms(s)


def test_miss_names_keys_and_fix():
    lut = small_lut()
    s = get_space(W10).sample(3, resolution=224)
    miss = lut.missing_keys(s)
    assert miss and all(k in {o.key for o in subnet_ops(s)} for k in miss)
    assert lut.missing_keys([s, s]) == miss
    with pytest.raises(LutMissError) as ei:
        lut.lut_sum_ms(s)
    msg = str(ei.value)
    assert f"lacks {len(miss)} key(s) at r=224" in msg and miss[0] in msg and f"{len(miss) - 3} more" in msg
    assert "--resolutions 224" in msg and "\n" not in msg
    with pytest.raises(LutMissError):
        lut.predict_ms(s)


def test_space_mismatch_is_clear(note10):
    lut = small_lut()
    s12 = get_space(W12).smallest(160)
    with pytest.raises(LutError, match="arch is for space ofa-mbv3-w1.2 but LUT") as ei:
        lut.lut_sum_ms(s12)
    assert not isinstance(ei.value, LutMissError)
    with pytest.raises(LutError, match="ofa-mbv3-w1.0 but LUT"):
        note10.lut_sum_ms(tutorial_spec(space=W10))
    # CompOFA shares w1.0's widths: its subnets are priced by a w1.0 LUT
    c = get_space("compofa-mbv3-w1.0").compound_spec([2, 3, 4, 2, 3], 160)
    assert lut.lut_sum_ms(c) > 0


def test_predict_applies_stored_calibration():
    from ofa_profile.calibrate import fit_calibration
    lut = small_lut()
    sp = get_space(W10)
    specs = [sp.sample(i, resolution=160) for i in range(12)]
    measured = [1.25 * lut.lut_sum_ms(s) + 0.1 for s in specs]
    cal = fit_calibration(specs, measured, lut, seed=0)
    cl = lut.with_calibration(cal)
    s = sp.sample(99, resolution=160)
    assert cl.predict_ms(s, calibrated=False) == lut.lut_sum_ms(s)
    assert cl.predict_ms(s) == pytest.approx(1.25 * lut.lut_sum_ms(s) + 0.1, rel=0.02)
    assert lut.predict_ms(s) == lut.lut_sum_ms(s)


def test_with_entries_and_coverage(note10):
    lut = small_lut(resolutions=(160,))
    assert lut.coverage() == {160: []}  # shared head keys do not make other resolutions "begun"
    keys = list(lut.entries)
    part = lut.with_entries({k: lut.entries[k] for k in keys[:90]})
    assert len(part.entries) == 90 and lut.coverage()[160] == [] and len(part.coverage()[160]) == 6
    # per-resolution figures survive for untouched keys only
    k = "Conv_2-input:1x1x1152-output:1x1x1536"
    changed = note10.with_entries({**note10.entries, k: LutEntry(1.0, 0.0, 1)})
    assert all(k not in m for m in changed.resolution_entries.values())
    assert sum(map(len, changed.resolution_entries.values())) == sum(map(len, note10.resolution_entries.values())) - 5


# -- atomic writes ------------------------------------------------------------------------------

def test_save_is_atomic(tmp_path):
    """On a real filesystem that fills up (a small tmpfs, as root) a save that does not fit fails in one error and
    leaves the old file whole and no temporary behind."""
    fs = tmp_path / "fs"
    if not mount_tmpfs(fs, "256k"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        p = fs / "l.json"
        save_lut(small_lut(), p)
        before = p.read_bytes()
        page = os.statvfs(fs).f_frsize
        with open(fs / "filler", "wb") as f:            # one page free: the bigger LUT's temporary cannot fit
            f.write(b"\0" * (os.statvfs(fs).f_bavail * page - page))
        bigger = small_lut(resolutions=(160, 164, 168))
        assert len(json.dumps(bigger.to_json()).encode()) > page
        with pytest.raises(LutError, match="No space left"):
            save_lut(bigger, p)
        assert p.read_bytes() == before and sorted(os.listdir(fs)) == ["filler", "l.json"]
    finally:
        subprocess.run(["umount", str(fs)], capture_output=True)
    fs.rmdir()
    p = tmp_path / "l.json"
    save_lut(small_lut(), p)
    before = p.read_bytes()
    # an invalid LUT is refused before anything is written
    bad = small_lut(provenance={"tool": "ofa-profile", "seed": 0, "timing": None})
    with pytest.raises(LutError, match="'source' is a required property"):
        save_lut(bad, p)
    assert p.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["l.json"]
    with pytest.raises(LutError, match="does not exist"):
        save_lut(small_lut(), tmp_path / "no" / "l.json")


def test_measure_style_construction_loads(tmp_path):
    """measure.py builds Luts from plain dicts of LutEntry with tool 'ofa-profile': that must save and load."""
    ref = small_lut()
    lut = Lut(space=W10, device="cpu-x", runtime="torch", entries=dict(ref.entries), resolutions=(),
              batch_size=1, num_threads=1, fingerprint={"cpu_model": "x"},
              provenance={"tool": "ofa-profile", "seed": 3, "timing": {}, "source": "measured"},
              calibration=None, created_utc="2026-01-01T00:00:00Z")
    save_lut(lut, tmp_path / "m.json")
    back = load_lut(tmp_path / "m.json")
    assert back.resolutions == () and back.entries == ref.entries and back.provenance["seed"] == 3
    assert math.isclose(sum(e.median_ms for e in back.entries.values()), sum(e.median_ms for e in ref.entries.values()))
