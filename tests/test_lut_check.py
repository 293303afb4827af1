"""The speed check of a LUT on this machine (issue 18, part 1): the fingerprint records the machine, `lut check`
re-times a fixed set of a LUT's blocks, and predict/pareto check a shipped LUT on a local device (cached), warn in
one line when it is off by more than 15 % and apply the factor with --rescale.

The timing tests are real (ONNX Runtime on this machine).  Both figures of a ratio come from this machine now:
the shipped LUT is checked first, a copy scaled to this machine ("matched") and one with half of that ("halved")
are written, so the halved one must read about 2x the matched one whatever machine runs the tests.  These VMs
drift 10-20 % between runs seconds apart, hence the bands.
"""
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile import speedcheck, timing
from ofa_profile.cli import main
from ofa_profile.devices import load_device
from ofa_profile.errors import OfaProfileError
from ofa_profile.lut import LutEntry, load_lut, save_lut
from ofa_profile.runtimes import get_runtime
from ofa_profile.lut_format import _keys_at
from ofa_profile.ops import ops_at_resolution
from ofa_profile.measure import LocalProfiler
from ofa_profile.space import get_space
from ofa_profile.speedcheck import NO_CHECK_ENV, SpeedCheck, select_blocks, shipped_lut_check, speed_check
from ofa_profile.timing import Measurement, fingerprint, machine_info

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "examples" / "arch-r160.json"


def cli(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def scaled_copy(lut, factor, path):
    """A copy of ``lut`` with every figure multiplied by ``factor`` (no calibration: predictions are LUT sums)."""
    ents = {k: LutEntry(median_ms=e.median_ms * factor, iqr_ms=e.iqr_ms * factor, count=e.count)
            for k, e in lut.entries.items()}
    save_lut(dataclasses.replace(lut, entries=ents, calibration=None, resolution_entries={}), path)
    return load_lut(path)


def warnings_of(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("warning:")]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The shipped cpu-ort LUT checked here now; a copy scaled to this machine ("matched", checked too) and one
    with half its figures, installed as the shipped cpu-ort LUT of a patched lut/ folder."""
    d = tmp_path_factory.mktemp("speed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(d / "cache"))
        shipped, dev = load_lut("cpu-ort"), load_device("cpu-ort")
        real = speed_check(shipped, dev)
        matched_lut = scaled_copy(shipped, real.factor, d / "matched.json")
        (d / "lut").mkdir()
        halved_lut = scaled_copy(shipped, real.factor / 2, d / "lut" / "cpu-ort.json")
        matched = speed_check(matched_lut, dev)
    return SimpleNamespace(dir=d, real=real, matched=matched, matched_lut=matched_lut, halved_lut=halved_lut, dev=dev)


@pytest.fixture
def halved_shipped(checked, monkeypatch):
    """The halved copy is "the shipped cpu-ort LUT"; the check is on, with the module's cache folder."""
    import ofa_profile.paths as paths
    monkeypatch.setattr(paths, "lut_dir", lambda: checked.dir / "lut")
    monkeypatch.setenv("XDG_CACHE_HOME", str(checked.dir / "cache"))
    monkeypatch.delenv(NO_CHECK_ENV, raising=False)
    return checked


# -- the fingerprint --------------------------------------------------------------------------------------------

def test_fingerprint_records_the_machine():
    fp = fingerprint({"onnxruntime": "1.0"}, num_threads=1)
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo here")
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), None)
    if line is not None:      # the full set, not a chosen few
        assert fp["cpu_flags"] == sorted(set(line.split(":", 1)[1].split()))
    if Path("/sys/devices/system/cpu/cpu0/cache/index0/size").exists():
        caches = fp["cache_kb"]
        assert set(caches) <= {"L1d", "L1i", "L2", "L3", "L4"} and "L1d" in caches
        assert all(isinstance(v, int) and v > 0 for v in caches.values())
    assert fp.get("cpu_max_mhz", fp.get("cpu_mhz", 1)) > 0
    assert fp["mem_total_kb"] > 0
    assert json.loads(json.dumps(fp)) == fp      # plain JSON, as a LUT stores it


def test_lscpu_fallback_reads_the_same_caches(monkeypatch, tmp_path):
    import shutil
    have = machine_info().get("cache_kb")
    if not have or not shutil.which("lscpu"):
        pytest.skip("needs sysfs cache sizes and lscpu to compare")
    monkeypatch.setattr(timing, "_SYS_CPU0", str(tmp_path / "absent"))
    assert timing._cache_sizes_kb() == have


def test_fingerprint_where_nothing_is_readable(monkeypatch, tmp_path):
    import shutil
    for name in ("_CPUINFO", "_MEMINFO", "_SYS_CPU0"):
        monkeypatch.setattr(timing, name, str(tmp_path / "absent" / name))
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    hw = machine_info()
    assert hw["cpu_model"] and hw["cpu_flags"] == []
    assert not {"cache_kb", "cpu_mhz", "cpu_max_mhz", "mem_total_kb", "cpu_family"} & set(hw)
    assert fingerprint(num_threads=1)["cpu_flags"] == []


_SYSFS_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["1", "2", "3", "Data", "Instruction", "Unified",
                                                                  "32K", "1024K", "1M", "0K", "-4K", "K", "99999999G"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_SYSFS_TEXT, _SYSFS_TEXT, _SYSFS_TEXT), max_size=5), st.text(max_size=40),
       st.text(max_size=40))
def test_odd_sysfs_and_proc_never_break_the_fingerprint(monkeypatch, indices, cpuinfo, meminfo):
    import shutil
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with tempfile.TemporaryDirectory() as t:
        for i, (level, kind, size) in enumerate(indices):
            d = Path(t, "cpu0", "cache", f"index{i}")
            d.mkdir(parents=True)
            for f, v in (("level", level), ("type", kind), ("size", size)):
                (d / f).write_text(v)
        Path(t, "cpuinfo").write_text(cpuinfo)
        Path(t, "meminfo").write_text(meminfo)
        monkeypatch.setattr(timing, "_SYS_CPU0", str(Path(t, "cpu0")))
        monkeypatch.setattr(timing, "_CPUINFO", str(Path(t, "cpuinfo")))
        monkeypatch.setattr(timing, "_MEMINFO", str(Path(t, "meminfo")))
        hw = machine_info()
    for name, kb in hw.get("cache_kb", {}).items():
        assert name[0] == "L" and name[1:2].isdigit() and name[2:] in ("", "d", "i") and kb > 0
    assert isinstance(hw["cpu_flags"], list) and hw["cpu_model"]
    assert hw.get("mem_total_kb", 1) > 0 and math.isfinite(hw.get("cpu_mhz", 1))


def test_lut_info_shows_the_machine_and_old_luts_still_load(tmp_path):
    shipped = load_lut("cpu-ort")
    new = tmp_path / "new.json"
    save_lut(dataclasses.replace(shipped, fingerprint=fingerprint({"onnxruntime": "1.0"}, num_threads=1)), new)
    hw = machine_info()
    info = json.loads(cli("lut", "info", new, "--json").stdout)["fingerprint"]
    assert info["cpu_flags"] == hw["cpu_flags"] and info.get("cache_kb") == hw.get("cache_kb")
    assert info.get("mem_total_kb") == hw.get("mem_total_kb")
    text = cli("lut", "info", new).stdout
    machine = next(ln for ln in text.splitlines() if ln.startswith("machine:"))
    assert hw["cpu_model"] in machine
    if hw.get("cache_kb"):
        assert "caches L" in machine and "not recorded" not in machine
    if len(hw["cpu_flags"]) > 12:
        assert f"cpu flags:    {len(hw['cpu_flags'])} flags" in text
    res = cli("lut", "info", "cpu-ort")            # the shipped LUT: an older, shorter fingerprint
    assert res.exit_code == 0, res.output
    assert "cache sizes and clock not recorded" in res.stdout and "cpu flags:    avx2 fma" in res.stdout
    assert json.loads(cli("lut", "info", "cpu-ort", "--json").stdout)["fingerprint"]["cpu_flags"] == ["avx2", "fma"]


# -- which blocks -------------------------------------------------------------------------------------------------

_SHIPPED = None


def _shipped():
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = load_lut("cpu-ort")
    return _SHIPPED


@settings(max_examples=25, deadline=None)
@given(st.integers(1, speedcheck.MAX_BLOCKS), st.lists(st.sampled_from(get_space("ofa-mbv3-w1.0").resolutions),
                                                       min_size=1, max_size=4, unique=True))
def test_block_choice_is_a_fixed_spread_rule(n, resolutions):
    full = _shipped()
    keys = {k for r in resolutions for k in _keys_at(full.space, r)}
    lut = dataclasses.replace(full, entries={k: full.entries[k] for k in keys}, resolutions=tuple(resolutions),
                              calibration=None)
    picks = select_blocks(lut, n)
    assert picks == select_blocks(lut, n)                                   # deterministic
    lo, hi = min(resolutions), max(resolutions)
    assert {r for r, _ in picks} <= {lo, hi}
    assert all(op.kind == "expanded_conv" and op.key in lut.entries for _, op in picks)
    assert len({op.key for _, op in picks}) == len(picks)                   # distinct
    at = {r: {op.key for op in ops_at_resolution(lut.space, r) if op.kind == "expanded_conv"} for r in {lo, hi}}
    low_keys = {op.key for q, op in picks if q == lo}
    avail = {lo: len(at[lo]), hi: len(at[hi] - low_keys) if hi != lo else len(at[lo])}
    want = {lo: n} if lo == hi else {lo: n // 2, hi: n - n // 2}
    for r in {lo, hi}:                                                     # n spread, the larger r takes the odd one
        assert sum(1 for q, _ in picks if q == r) == min(want[r], avail[r])
    for r in {lo, hi}:                                                     # small to large within a resolution
        macs = [op.macs() for q, op in picks if q == r]
        assert macs == sorted(macs)
    halved = dataclasses.replace(lut, entries={k: LutEntry(e.median_ms / 2, e.iqr_ms, e.count)
                                               for k, e in lut.entries.items()})
    assert select_blocks(halved, n) == picks                               # the figures do not pick the blocks


@pytest.mark.parametrize("n", [0, -1, speedcheck.MAX_BLOCKS + 1, True, 2.0])
def test_block_count_out_of_range_is_refused(n):
    with pytest.raises(OfaProfileError, match="number of blocks"):
        select_blocks(_shipped(), n)


# -- measuring: the arithmetic with a stand-in profiler, then real timing ----------------------------------------

class _Slower(LocalProfiler):
    """A profiler that reports every block at ``ratio`` x the LUT's figure (and counts the calls)."""

    def __init__(self, device, lut, ratio):
        super().__init__(device)
        self.lut, self.ratio, self.calls = lut, ratio, []

    def measure_op(self, op, seed):
        self.calls.append((op.key, seed))
        return Measurement((self.lut.entries[op.key].median_ms * self.ratio,))


def test_factor_is_the_median_of_now_over_then_with_the_luts_passes_and_seed():
    lut, dev = _shipped(), load_device("cpu-ort")
    prof = _Slower(dev, lut, 1.7)
    try:
        chk = speed_check(lut, dev, 6, profiler=prof)
    finally:
        prof.close()
    assert chk.factor == pytest.approx(1.7) and len(chk.blocks) == 6 and chk.off
    assert chk.passes == lut.provenance["passes"] == 3
    assert len(prof.calls) == 6 * 3 and {s for _, s in prof.calls} == {lut.provenance["seed"]}
    keys = [k for k, _ in prof.calls]
    assert keys[6:12] == keys[:6][::-1]                                     # passes alternate their order
    assert speedcheck.speed_warning(chk, False).startswith("warning: ")
    assert "`ofa-profile measure --device cpu-ort`" in speedcheck.speed_warning(chk, False)
    d = chk.as_dict()
    assert SpeedCheck.from_dict(json.loads(json.dumps(d))).as_dict() == d             # what the cache stores


@pytest.mark.serial
def test_the_real_shipped_lut_gives_a_factor(checked):
    real = checked.real
    assert math.isfinite(real.factor) and real.factor > 0 and len(real.blocks) == speedcheck.DEFAULT_BLOCKS
    assert all(b.now_ms > 0 and b.then_ms > 0 for b in real.blocks)
    assert real.seconds < 60


def _drift(before, after) -> float:
    """How much this machine's speed moved between two checks of the same blocks: the largest relative change of a
    block's time now. Both factors are medians of now / then over the blocks, so a factor expected to be ``k`` times
    another comes out within that drift of it (the median is monotone) however loaded the machine is."""
    def now(c):
        return [(b["key"], b["resolution"], b["now_ms"]) if isinstance(b, dict) else (b.key, b.resolution, b.now_ms)
                for b in (c["per_block"] if isinstance(c, dict) else c.blocks)]
    a, b = now(before), now(after)
    assert [x[:2] for x in a] == [x[:2] for x in b]                     # the same blocks
    return max(abs(y[2] / x[2] - 1) for x, y in zip(a, b))


@pytest.mark.serial
def test_halved_lut_reads_about_twice_the_matched_one(checked):
    """The acceptance test of the issue: a LUT whose stored figures are halved gives a factor near 2. "Near" is
    the drift measured between the checks, not a fixed band (this machine drifts 10-20 % within seconds)."""
    m = checked.matched
    assert abs(m.factor - 1) <= _drift(checked.real, m) + 1e-3, m.as_dict()   # scaled to this machine: about 1
    h = speed_check(checked.halved_lut, checked.dev)
    assert abs(h.factor / (2 * m.factor) - 1) <= _drift(m, h) + 1e-3, (h.as_dict(), m.as_dict())


def test_lut_check_cli_on_the_shipped_lut_never_a_traceback(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "lut", "check", "cpu-ort", "--device", "cpu-ort",
                        "--blocks", "4", "--json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["blocks"] == 4 and math.isfinite(out["factor"]) and out["factor"] > 0 and out["seconds"] > 0
    assert out["off"] == (out["factor"] > 1.15 or out["factor"] < 1 / 1.15)
    assert len(list((tmp_path / "cache" / "ofa-profile" / "speed-check").glob("cpu-ort-*.json"))) == 1


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "lut").glob("*.json")))
def test_every_shipped_lut_checks_or_says_why_in_one_line(name, tmp_path, monkeypatch):
    """Each shipped LUT checks on its own device where its runtime is installed (all three here); where it is not,
    the one line names the missing package."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    res = cli("lut", "check", name, "--device", name, "--blocks", "2")
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    rt = get_runtime(load_device(name).runtime)
    if all(importlib.util.find_spec(mod.split(".")[0]) for mod, _ in rt.requires):
        assert res.exit_code == 0, res.output
        assert res.stdout.startswith(str(ROOT / "lut" / f"{name}.json")) and "factor" in res.stdout
    else:
        assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "pip install" in res.stderr, res.stderr


# -- predict and pareto -----------------------------------------------------------------------------------------

@pytest.mark.serial
def test_predict_warns_once_for_the_halved_shipped_lut_and_caches(halved_shipped):
    res = cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    sc = out["speed_check"]
    assert sc["blocks"] == speedcheck.DEFAULT_BLOCKS and sc["applied"] is False and sc["off"]
    h = sc["factor"]
    assert abs(h / (2 * halved_shipped.matched.factor) - 1) <= _drift(halved_shipped.matched, sc) + 1e-3, sc
    w = warnings_of(res.stderr)
    assert len(w) == 1 and "`ofa-profile measure --device cpu-ort`" in w[0] and "slower than" in w[0], res.stderr
    assert out["latency_ms"] == pytest.approx(out["lut_sum_ms"]) and out["scale"] == 1.0
    again = cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--json")     # second call: the cache
    sc2 = json.loads(again.stdout)["speed_check"]
    assert sc2["cached"] is True and sc2["factor"] == sc["factor"] and sc2["per_block"] == sc["per_block"]
    assert "speed check: timing" not in again.stderr and len(warnings_of(again.stderr)) == 1
    text = cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--rescale")
    assert text.exit_code == 0 and "by the speed check" in text.stdout
    scaled = json.loads(cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--rescale", "--json").stdout)
    assert scaled["speed_check"]["applied"] is True and scaled["scale"] == pytest.approx(h, rel=1e-4)
    assert scaled["latency_ms"] == pytest.approx(out["lut_sum_ms"] * sc["factor"], rel=1e-4)


@pytest.mark.serial
def test_plot_frontier_warns_for_the_halved_shipped_lut(halved_shipped, tmp_path):
    """plot frontier speed-checks a shipped LUT as pareto does: one warning line naming the measure command; none
    with --no-speed-check."""
    base = ["plot", "frontier", "--device", "cpu-ort", "--resolutions", "160", "--n-random", "50"]
    res = cli(*base, "--out", tmp_path / "f.png")
    assert res.exit_code == 0, res.output
    w = warnings_of(res.stderr)
    assert len(w) == 1 and "`ofa-profile measure --device cpu-ort`" in w[0] and "slower than" in w[0], res.stderr
    off = cli(*base, "--no-speed-check", "--out", tmp_path / "g.png")
    assert off.exit_code == 0 and not warnings_of(off.stderr), off.output


@pytest.mark.serial
def test_pareto_warns_and_rescales(halved_shipped, tmp_path):
    base = ["pareto", "--budget", "20ms", "--device", "cpu-ort", "--effort", "fast", "--n-budgets", "3", "--no-plot",
            "--resolutions", "160", "--out-dir", tmp_path, "--json"]
    plain = cli(*base)
    assert plain.exit_code == 0, plain.output
    assert len(warnings_of(plain.stderr)) == 1 and "--device cpu-ort`" in warnings_of(plain.stderr)[0]
    p = json.loads(plain.stdout)
    assert p["speed_check"]["applied"] is False and p["speed_check"]["off"]
    scaled = cli(*base, "--rescale")
    assert scaled.exit_code == 0, scaled.output
    s = json.loads(scaled.stdout)
    f = s["speed_check"]["factor"]
    assert s["speed_check"]["applied"] is True and s["speed_check"]["cached"] is True
    assert abs(f / (2 * halved_shipped.matched.factor) - 1) <= _drift(halved_shipped.matched, s["speed_check"]) + 1e-3
    from ofa_profile.space import SubnetSpec
    for run, scale in ((p, 1.0), (s, f)):
        best = SubnetSpec.from_ofa({k: run["best"]["arch"][k] for k in ("ks", "e", "d", "r")}, space=run["space"])
        assert run["best"]["latency_ms"] == pytest.approx(halved_shipped.halved_lut.lut_sum_ms(best) * scale,
                                                          rel=1e-3)


@pytest.mark.serial
def test_own_lut_file_is_not_checked_and_the_env_switch_skips(checked, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(NO_CHECK_ENV, raising=False)
    res = cli("predict", "--lut", checked.dir / "matched.json", "--arch", ARCH, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["speed_check"] is None and not res.stderr.strip()
    res = cli("predict", "--lut", checked.dir / "matched.json", "--arch", ARCH, "--rescale")
    assert res.exit_code == 0 and "no speed check ran" in res.stderr
    monkeypatch.setenv(NO_CHECK_ENV, "1")
    assert shipped_lut_check(_shipped()) is None
    monkeypatch.delenv(NO_CHECK_ENV)
    assert shipped_lut_check(_shipped(), "pixel") is None            # over adb: not this machine
    assert shipped_lut_check(_shipped(), "no-such-device") is None
    assert not list(tmp_path.rglob("*.json"))                          # nothing was measured or cached


@pytest.mark.serial
def test_no_speed_check_option(halved_shipped):
    res = cli("predict", "--lut", "cpu-ort", "--arch", ARCH, "--no-speed-check", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["speed_check"] is None and not warnings_of(res.stderr)


# -- the cache and bad input -------------------------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=6),
                    max_leaves=20))
def test_cache_contents_are_a_check_or_refused(obj):
    try:
        chk = SpeedCheck.from_dict(obj)
    except ValueError:
        return
    assert chk.factor > 0 and chk.blocks


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_a_damaged_cache_file_is_a_miss(raw):
    with tempfile.TemporaryDirectory() as t:
        p = Path(t, "c.json")
        p.write_bytes(raw)
        assert speedcheck._read_cache(p, "k") is None


@pytest.mark.serial
def test_cache_key_follows_the_lut_file_and_an_unwritable_cache_still_checks(checked, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    a, ka = speedcheck.cache_path(checked.matched_lut, checked.dev)
    b, kb = speedcheck.cache_path(checked.halved_lut, checked.dev)
    assert ka != kb and a != b and a.parent == b.parent == tmp_path / "c" / "ofa-profile" / "speed-check"
    assert speedcheck.cache_path(checked.matched_lut, checked.dev) == (a, ka)
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))          # a file where the cache folder would go
    res = cli("lut", "check", checked.dir / "matched.json", "--device", "cpu-ort", "--blocks", "1")
    assert res.exit_code == 0, res.output
    assert "not cached" in res.stderr and "factor" in res.stdout


def test_lut_check_usage_and_input_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for args in (["cpu-ort"], ["cpu-ort", "--device", "cpu-ort", "--blocks", "0"],
                 ["cpu-ort", "--device", "cpu-ort", "--blocks", "65"], ["cpu-ort", "--device", "cpu-ort", "--blocks",
                                                                        "x"], ["--device", "cpu-ort"]):
        res = cli("lut", "check", *args)
        assert res.exit_code == 2 and "Traceback" not in res.output, (args, res.output)
    spec = json.loads((ROOT / "device_specs" / "cpu-ort.json").read_text())
    two = tmp_path / "two-threads.json"
    two.write_text(json.dumps({**spec, "name": "two-threads", "num_threads": 2}))
    for args, frag in ((["missing.json", "--device", "cpu-ort"], "missing.json"),
                       (["cpu-ort", "--device", "no-such-device"], "unknown device"),
                       (["cpu-ort", "--device", "cpu-torch"], "was measured with onnxruntime"),
                       (["cpu-ort", "--device", two], "thread")):
        res = cli("lut", "check", *args)
        err = res.stderr.strip()
        assert res.exit_code == 1 and len(err.splitlines()) == 1 and err.startswith("error: "), (args, res.output)
        assert frag in err and "Traceback" not in res.output
    assert not list(tmp_path.rglob("speed-check/*.json"))
    help_text = cli("lut", "check", "--help").stdout
    assert "Example:" in help_text and "ofa-profile lut check cpu-ort --device cpu-ort" in help_text


def test_rescale_option_conflicts_are_usage_errors(tmp_path):
    for args in (["predict", "--lut", "cpu-ort", "--arch", ARCH, "--rescale", "--no-speed-check"],
                 ["pareto", "--budget", "20ms", "--rescale", "--no-speed-check", "--out-dir", tmp_path],
                 ["pareto", "--budget", "20ms", "--rescale", "--refresh", "2", "--out-dir", tmp_path],
                 ["pareto", "--budget", "20ms", "--rescale", "--adapter", tmp_path / "a.json", "--out-dir", tmp_path]):
        res = cli(*args)
        assert res.exit_code == 2 and "--rescale" in res.stderr and "Traceback" not in res.output, (args, res.output)


# -- a poisoned cache (issue 24) ---------------------------------------------------------------------------------

@pytest.fixture()
def genuine_cache(tmp_path, monkeypatch):
    """A cache entry written by a real check (a stand-in profiler at 1.3x) of the shipped LUT on cpu-ort."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lut, dev = _shipped(), load_device("cpu-ort")
    prof = _Slower(dev, lut, 1.3)
    try:
        chk = speed_check(lut, dev, speedcheck.DEFAULT_BLOCKS, profiler=prof)
    finally:
        prof.close()
    path, key = speedcheck.cache_path(lut, dev)
    speedcheck._write_cache(path, key, chk, print)
    return SimpleNamespace(lut=lut, dev=dev, path=path, key=key, obj=json.loads(path.read_text()))


def _poison(c, **check):
    obj = json.loads(json.dumps(c.obj))
    obj["check"].update(check)
    c.path.write_text(json.dumps(obj))
    return speedcheck._read_cache(c.path, c.key, c.lut, c.dev)


def test_a_genuine_cache_entry_is_read(genuine_cache):
    c = genuine_cache
    hit = speedcheck._read_cache(c.path, c.key, c.lut, c.dev)
    assert hit is not None and hit.factor == pytest.approx(1.3) and hit.lut == c.lut.source


def _blocks_times(c, k):
    return [{**b, "then_ms": b["then_ms"] * k, "now_ms": b["now_ms"] * k} for b in c.obj["check"]["per_block"]]


@pytest.mark.parametrize("change", [
    {"factor": 1e300}, {"factor": 1e-300}, {"factor": "1.3"}, {"factor": True}, {"factor": 2.0},
    {"passes": "3"}, {"passes": 10 ** 9}, {"device": "$(touch /tmp/x)"}, {"device": "cpu-torch"},
    "per-block-rescaled", "then-not-the-luts", "ratios-huge", "resolution-as-string"])
def test_a_poisoned_cache_entry_is_discarded(genuine_cache, change):
    c = genuine_cache
    blocks = c.obj["check"]["per_block"]
    if change == "per-block-rescaled":     # consistent with its own ratios, but not the LUT's figures
        change = {"per_block": _blocks_times(c, 2.0)}
    elif change == "then-not-the-luts":
        change = {"per_block": [{**b, "then_ms": b["then_ms"] * 1.01} for b in blocks]}
    elif change == "ratios-huge":          # factor and ratios agree, and are absurd
        change = {"per_block": [{**b, "now_ms": b["then_ms"] * 1e6, "ratio": 1e6} for b in blocks], "factor": 1e6}
    elif change == "resolution-as-string":
        change = {"per_block": [{**b, "resolution": str(b["resolution"])} for b in blocks]}
    assert _poison(c, **change) is None


def test_a_poisoned_cache_is_measured_again_and_replaced(genuine_cache, monkeypatch):
    c = genuine_cache
    _poison(c, factor=1e300)
    calls = []
    real = speedcheck.speed_check

    def counted(lut, dev, n, **kw):
        calls.append(n)
        prof = _Slower(dev, lut, 1.1)
        try:
            return real(lut, dev, n, profiler=prof)
        finally:
            prof.close()
    monkeypatch.setattr(speedcheck, "speed_check", counted)
    chk = speedcheck.cached_speed_check(c.lut, c.dev)
    assert calls == [speedcheck.DEFAULT_BLOCKS] and chk.factor == pytest.approx(1.1) and not chk.cached
    assert json.loads(c.path.read_text())["check"]["factor"] == pytest.approx(1.1)   # rewritten


def test_the_lut_and_device_of_a_cache_never_reach_a_printed_command(genuine_cache):
    c = genuine_cache
    hit = _poison(c, lut="$(touch /tmp/pwned)")
    assert hit is not None and hit.lut == c.lut.source                # the file's string is not used
    assert speedcheck.measure_hint("a b;$(touch x)") == "`ofa-profile measure --device 'a b;$(touch x)'` (then " \
                                                        "--lut a-b-touch-x.json)"
