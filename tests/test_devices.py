import json
import subprocess
import sys

import pytest

from ofa_profile.devices import DeviceError, list_devices, load_device


def test_cpu_specs_load():
    names = {d.name for d in list_devices()}
    assert {"cpu-ort", "cpu-torch", "cpu-tflite"} <= names
    d = load_device("cpu-ort")
    assert d.runtime == "onnxruntime" and d.transport == "local" and d.num_threads == 1


def test_unknown_device_lists_known():
    with pytest.raises(DeviceError) as ei:
        load_device("nokia3310")
    assert "unknown device 'nokia3310'" in str(ei.value) and "cpu-ort" in str(ei.value)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "d",
                 "runtime": "onnxruntime", "transport": "local", "num_threads": 0}), "num_threads"),
    (json.dumps({"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "d",
                 "runtime": "tensorflow", "transport": "local"}), "runtime"),
    (json.dumps({"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "d",
                 "runtime": "litert", "transport": "ssh"}), "ssh"),
])
def test_malformed_specs(tmp_path, content, needle):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(DeviceError) as ei:
        load_device(p)
    assert needle in str(ei.value) and "\n" not in str(ei.value)


def test_cli_unknown_device_is_one_line():
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "measure", "--device", "nokia3310"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "unknown device" in r.stderr and "Traceback" not in r.stderr


def test_cli_usage_error_exits_2():
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "measure"], capture_output=True, text=True)
    assert r.returncode == 2
