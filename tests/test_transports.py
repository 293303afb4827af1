"""Phones over adb, with the real `adb` binary (no phone here), and the benchmark_model profiler end to end on
this machine with ai-edge-litert's real `litert-benchmark` standing in for the phone's benchmark_model."""
import os
import shutil
import socket
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from ofa_profile.benchmark_model import BenchmarkOutputError
from ofa_profile.devices import DeviceError, load_device
from ofa_profile.timing import TimingConfig

ADB = shutil.which("adb")
_skip_without_adb = pytest.mark.skipif(ADB is None, reason="adb is not installed (apt-get install adb)")


def needs_adb(f):
    """The real adb binary (a device marker: -m 'not device' leaves these out)."""
    return pytest.mark.device(_skip_without_adb(f))
LITERT_BENCHMARK = Path(sys.executable).with_name("litert-benchmark")
needs_litert_benchmark = pytest.mark.skipif(not LITERT_BENCHMARK.exists(),
                                            reason="litert-benchmark (ai-edge-litert wheel) is not installed")


def _adb_server_running() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", int(os.environ.get("ANDROID_ADB_SERVER_PORT", "5037")))) == 0


@pytest.fixture(scope="module")
def adb_server():
    """The tests start the adb server (as `adb devices` does); stop it afterwards only if they started it."""
    if ADB is None:
        pytest.skip("adb is not installed (apt-get install adb)")
    was_running = _adb_server_running()
    yield ADB
    if not was_running:
        subprocess.run([ADB, "kill-server"], capture_output=True, timeout=30)


def _attached(adb):
    r = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=60)
    return [ln for ln in r.stdout.splitlines()[1:] if ln.strip()]


def test_measure_pixel_without_phone_is_one_clear_line(adb_server, tmp_path):
    if _attached(adb_server):
        pytest.skip("a device is attached to this machine")
    out = tmp_path / "pixel.json"
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "measure", "--device", "pixel", "--out", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert line.startswith("error: no Android phone attached")
    assert "adb devices lists: none" in line                      # the attached devices
    assert "USB debugging" in line and "`adb devices`" in line and "--serial" in line   # how to connect one
    assert not out.exists() and not list(tmp_path.iterdir())      # no work was started


def test_unknown_serial_names_attached_devices(adb_server):
    if _attached(adb_server):
        pytest.skip("a device is attached to this machine")
    from ofa_profile.transports import make_remote_profiler
    with pytest.raises(DeviceError) as ei:
        make_remote_profiler(load_device("pixel"), serial="FA6AB0301234", benchmark_binary="/nonexistent")
    msg = str(ei.value)
    assert "phone FA6AB0301234 is not attached" in msg and "attached devices: none" in msg and "\n" not in msg


def test_vanished_phone_is_detected_with_the_real_adb(adb_server):
    from ofa_profile.transports import AdbTarget
    t = AdbTarget("FA6AB0301234", adb=adb_server)
    why = t.lost()
    assert why and "FA6AB0301234" in why and "\n" not in why      # real adb: "error: device '...' not found"
    with pytest.raises(DeviceError) as ei:
        t._raise_if_lost(" after 7 of 96 blocks")
    msg = str(ei.value)
    assert "disconnected after 7 of 96 blocks" in msg and "rerun the same command to resume" in msg
    assert "\n" not in msg


def test_reachable_for_devices_listing(adb_server):
    from ofa_profile.transports import reachable
    if _attached(adb_server):
        pytest.skip("a device is attached to this machine")
    ok, why = reachable(load_device("pixel"))
    assert not ok and "no Android device attached" in why and "\n" not in why
    ok, why = reachable(load_device("ssh-board"))
    assert not ok and why.startswith("template")


def test_adb_missing_is_one_line(monkeypatch, tmp_path):
    from ofa_profile.transports import make_remote_profiler, reachable
    monkeypatch.setenv("OFA_PROFILE_ADB", str(tmp_path / "no-adb-here"))
    ok, why = reachable(load_device("android"))
    assert not ok and "adb is not installed" in why and "apt-get install adb" in why
    with pytest.raises(DeviceError, match="adb is not installed"):
        make_remote_profiler(load_device("android"))


def test_core_mask():
    from ofa_profile.transports import _core_mask
    assert _core_mask([4, 5, 6, 7]) == "f0" and _core_mask([2, 3]) == "c" and _core_mask([0]) == "1"


def test_split_runs():
    from ofa_profile.transports import _split_runs
    out = "noise\n@@ofa-run\na\nb\n@@ofa-rc 0\n@@ofa-run\nc\n@@ofa-rc 139\n@@ofa-run\ncut"
    assert _split_runs(out) == [(0, "a\nb"), (139, "c")]


# ---- the benchmark_model profiler on this machine ------------------------------------------------

def _local_spec(tmp_path, cores=None, repeats=2):
    cpu = sorted(os.sched_getaffinity(0))[-1] if hasattr(os, "sched_getaffinity") else 0
    d = load_device("android")
    return replace(d, name="local-bench", timing=TimingConfig(warmup_runs=2, min_runs=5, max_runs=5, max_time_s=1.0),
                   transport_options={**d.transport_options, "cores": [cpu] if cores is None else cores,
                                      "repeats": repeats})


@needs_litert_benchmark
def test_local_benchmark_lut_end_to_end(tmp_path):
    """Push (copy), taskset-pinned runs of a real benchmark program, its own output parsed, journal, resume."""
    pytest.importorskip("ai_edge_litert")
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import JOURNAL_SUFFIX, measure_lut
    from ofa_profile.transports import make_remote_profiler

    spec = _local_spec(tmp_path)
    out = tmp_path / "local-bench.json"
    with make_remote_profiler(spec, benchmark_binary=str(LITERT_BENCHMARK), local=True) as prof:
        fp = prof.fingerprint()
        assert fp["transport"] == "local" and fp["runtime_versions"]["litert-benchmark"].startswith("sha256:")
        assert "mean of each of 2 invocations" in fp["timing_method"]
        r = measure_lut(spec, out, [128], progress=False, profiler=prof, limit=2)
        assert r.measured == 2
        lut = load_lut(out)
        assert len(lut.entries) == 2 and lut.runtime == "tflite-benchmark"
        for e in lut.entries.values():
            assert e.count == 2 and len(e.raw_ms) == 2 and 0 < e.median_ms < 1000
        journal = out.with_name(out.name + JOURNAL_SUFFIX)
        assert sum(1 for ln in journal.read_text().splitlines() if '"entry"' in ln) == 2
        r2 = measure_lut(spec, out, [128], progress=False, profiler=prof, limit=1)   # resume
        assert r2.measured == 1 and len(load_lut(out).entries) == 3


def _script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def test_unexpected_output_is_one_clear_line(tmp_path):
    """A real program that prints something else than benchmark_model's output."""
    pytest.importorskip("ai_edge_litert")
    from ofa_profile.measure import measure_lut
    from ofa_profile.transports import make_remote_profiler

    spec = _local_spec(tmp_path, cores=[])
    binary = _script(tmp_path, "benchmark_model", "echo 'Hello from a wrong binary'\necho 'version 0.0'\n")
    out = tmp_path / "x.json"
    with make_remote_profiler(spec, benchmark_binary=str(binary), local=True) as prof:
        with pytest.raises(BenchmarkOutputError) as ei:
            measure_lut(spec, out, [128], progress=False, profiler=prof, limit=2)
    msg = str(ei.value)
    assert "\n" not in msg and "Hello from a wrong binary | version 0.0" in msg and "no timings" in msg


def test_failing_binary_is_one_clear_line(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from ofa_profile.measure import measure_lut
    from ofa_profile.transports import make_remote_profiler

    spec = _local_spec(tmp_path, cores=[])
    binary = _script(tmp_path, "benchmark_model", "echo 'ERROR: Could not open model.' >&2\nexit 1\n")
    with make_remote_profiler(spec, benchmark_binary=str(binary), local=True) as prof:
        with pytest.raises(BenchmarkOutputError) as ei:
            measure_lut(spec, tmp_path / "x.json", [128], progress=False, profiler=prof, limit=1)
    msg = str(ei.value)
    assert "exited with status 1" in msg and "Could not open model" in msg and "\n" not in msg


def test_missing_binary_is_one_clear_line(tmp_path):
    from ofa_profile.transports import make_remote_profiler
    spec = _local_spec(tmp_path)
    with pytest.raises(DeviceError, match="--benchmark-binary"):
        make_remote_profiler(spec, local=True)
    with pytest.raises(DeviceError, match="does not exist"):
        make_remote_profiler(spec, local=True, benchmark_binary=str(tmp_path / "nope"))


def test_command_line_of_benchmark_model(tmp_path):
    """The exact flags sent to benchmark_model (taskset mask, threads, runs, XNNPACK)."""
    from ofa_profile.transports import LocalTarget, make_remote_profiler
    spec = load_device("pixel")
    binary = _script(tmp_path, "benchmark_model", "exit 0\n")
    prof = make_remote_profiler(spec, benchmark_binary=str(binary), target=LocalTarget(tmp_path / "phone"))
    try:
        cmd = prof._command("/data/local/tmp/ofa-profile/op.tflite")
    finally:
        prof.close()
    assert "taskset c " in cmd and "--graph=/data/local/tmp/ofa-profile/op.tflite" in cmd
    assert "--num_threads=1" in cmd and "--warmup_runs=10" in cmd and "--num_runs=30" in cmd
    assert "--use_xnnpack=true" in cmd and "--min_secs=0" in cmd and cmd.count("@@ofa-run") == 1
    assert "for i in 0 1 2;" in cmd


@needs_litert_benchmark
def test_shell_dying_mid_run_keeps_finished_blocks_and_resumes(tmp_path):
    """The device's shell is killed during the 3rd block (a wrapper kills its parent shell): one clear line,
    the two finished blocks stay in the journal, and a rerun measures only the rest."""
    pytest.importorskip("ai_edge_litert")
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import JOURNAL_SUFFIX, measure_lut
    from ofa_profile.transports import make_remote_profiler

    spec = _local_spec(tmp_path, cores=[], repeats=2)
    count = tmp_path / "count"
    flaky = _script(tmp_path, "flaky-litert-benchmark",
                    f'n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}\n'
                    f'if [ $n -gt 4 ]; then kill -9 $PPID; exit 1; fi\n'
                    f'exec {LITERT_BENCHMARK} "$@"\n')
    out = tmp_path / "lut.json"
    with make_remote_profiler(spec, benchmark_binary=str(flaky), local=True) as prof:
        with pytest.raises(DeviceError) as ei:
            measure_lut(spec, out, [128], progress=False, profiler=prof, limit=4)
    msg = str(ei.value)
    assert "\n" not in msg and "after 2 of 4 blocks" in msg and "rerun to resume" in msg, msg
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    assert sum('"entry"' in ln for ln in journal.read_text().splitlines()) == 2 and not out.exists()
    with make_remote_profiler(spec, benchmark_binary=str(LITERT_BENCHMARK), local=True) as prof:
        # another binary is another setup: the journal's fingerprint check says so...
        with pytest.raises(Exception, match="different setup"):
            measure_lut(spec, out, [128], progress=False, profiler=prof, limit=2)
    count.write_text("-1000")   # ...so resume with the same binary, now healthy
    with make_remote_profiler(spec, benchmark_binary=str(flaky), local=True) as prof:
        r = measure_lut(spec, out, [128], progress=False, profiler=prof, limit=2)
    assert r.measured == 2 and len(load_lut(out).entries) == 4
