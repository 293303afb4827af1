"""A runtime from outside the tree: a small package, built and installed here (``pip install --target``), adds a
runtime and a device spec through entry points; with it on the path, ``ofa-profile devices`` lists the device and
``measure`` builds a LUT with it, with no edit to the project.  Without it, the device is unknown."""
from __future__ import annotations

import json
import textwrap

import pytest
from helpers import cli_with_site, install_plugin

FAST_TIMING = {"warmup_runs": 1, "min_runs": 3, "max_runs": 3, "max_time_s": 0.5, "target_iqr_rel": 1.0}

SETUP = """
from setuptools import setup
setup(name="ofa-profile-testrt", version="0.1", packages=["ofa_profile_testrt"],
      package_data={"ofa_profile_testrt": ["specs/*.json"]},
      entry_points={"ofa_profile.runtimes": ["test-ort = ofa_profile_testrt"],
                    "ofa_profile.device_specs": ["test-ort = ofa_profile_testrt:spec_dir"]})
"""

MODULE = '''
"""A plug-in runtime: ONNX Runtime under a name of its own (what a package for a new accelerator would register)."""
from pathlib import Path

from ofa_profile.runtimes import OnnxRuntime, register_runtime

register_runtime("test-ort", lambda options: OnnxRuntime(), transports=("local",),
                 description="ONNX Runtime, registered by the ofa-profile-testrt package")


def spec_dir():
    return Path(__file__).parent / "specs"
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The package built from source and installed into a folder of its own (a site directory on the path)."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    pkg = src / "ofa_profile_testrt"
    (pkg / "specs").mkdir(parents=True)
    (src / "setup.py").write_text(textwrap.dedent(SETUP))
    (pkg / "__init__.py").write_text(MODULE)
    spec = {"format": "ofa-profile-device", "schema_version": 1, "name": "test-ort",
            "description": "this CPU through the plug-in runtime", "runtime": "test-ort", "transport": "local",
            "num_threads": 1, "timing": FAST_TIMING}
    (pkg / "specs" / "test-ort.json").write_text(json.dumps(spec))
    return install_plugin(src, root / "site", "ofa_profile_testrt")




def test_an_installed_plugin_runtime_shows_in_devices_and_measures_a_lut(plugin_site, tmp_path):
    r = cli_with_site(["devices", "--json"], plugin_site)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["test-ort"]["runtime"] == "test-ort" and rows["test-ort"]["available"], rows.get("test-ort")
    assert {"cpu-ort", "pixel"} <= set(rows)                          # the shipped devices are still there
    out = tmp_path / "test-ort.json"
    r = cli_with_site(["measure", "--device", "test-ort", "--resolutions", "128", "--out", out, "--quiet"], plugin_site,
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lut = json.loads(out.read_text())
    assert lut["runtime"] == "test-ort" and lut["device"] == "test-ort" and len(lut["entries"]) == 96


def test_without_the_plugin_its_device_is_unknown(plugin_site, tmp_path):
    r = cli_with_site(["measure", "--device", "test-ort", "--resolutions", "128", "--out", tmp_path / "x.json"],
             cwd=tmp_path)
    assert r.returncode == 1 and "unknown device 'test-ort'" in r.stderr and "Traceback" not in r.stderr


def test_a_broken_plugin_is_one_line_naming_it(tmp_path):
    """A plug-in whose module fails to import: every command that asks the registry ends with one line naming the
    plug-in and its package."""
    site = tmp_path / "site"
    dist = site / "ofa_profile_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ofa-profile-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ofa_profile.runtimes]\nbroken = ofa_profile_broken\n")
    (site / "ofa_profile_broken.py").write_text("raise RuntimeError('no such accelerator here')\n")
    r = cli_with_site(["devices"], site)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and "plug-in 'broken'" in line and "ofa-profile-broken" in line
    assert "no such accelerator here" in line
