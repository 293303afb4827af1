"""A non-editable install finds the shipped device specs, schemas and LUTs (package data)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# what setup.py builds from; the build runs in a copy of these, so it writes nothing into the checkout (no
# ofa_profile.egg-info or build/ rewritten under a developer's feet)
SOURCES = ("setup.py", "README.md", "ofa_profile", "ofa_model", "device_specs", "lut")


def _checkout_state() -> dict:
    return {p.relative_to(ROOT).as_posix(): p.stat().st_mtime_ns
            for d in ("ofa_profile.egg-info", "build") for p in [ROOT / d, *(ROOT / d).rglob("*")] if p.exists()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    import shutil
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    target = tmp_path_factory.mktemp("site")
    before = _checkout_state()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(src)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"pip install . failed: {r.stderr[-2000:]}")
    assert _checkout_state() == before, "the install wrote into the checkout"
    return target


def run_installed(target, *args, cwd):
    env = dict(os.environ, PYTHONPATH=str(target))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_installed_package_finds_its_data(installed, tmp_path):
    r = run_installed(installed, "-c", "import ofa_profile, ofa_profile.paths as p; print(ofa_profile.__file__); "
                      "print(p.device_specs_dir()); print(p.lut_dir()); print(p.schemas_dir())", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    mod, specs, luts, schemas = r.stdout.split()
    assert mod.startswith(str(installed))
    for d in (specs, luts, schemas):
        assert d.startswith(str(installed)), d
    assert {"cpu-ort.json", "cpu-torch.json", "cpu-tflite.json"} <= set(os.listdir(specs))
    assert "device.schema.json" in os.listdir(schemas) and "lut.schema.json" in os.listdir(schemas)
    shipped = {p.name for p in (ROOT / "lut").glob("*.json")}
    assert {"cpu-ort.json", "cpu-torch.json", "cpu-tflite.json"} <= shipped <= set(os.listdir(luts))
    assert (installed / "ofa_profile" / "predictors" / "ofa-mbv3-w1.0-imagenet.json").exists()


def test_installed_cli_lists_devices(installed, tmp_path):
    r = run_installed(installed, "-m", "ofa_profile.cli", "devices", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = {row["name"] for row in json.loads(r.stdout)}
    assert {"cpu-ort", "cpu-torch", "cpu-tflite"} <= names


def test_installed_package_holds_every_module(installed):
    """Every module of the source tree is in the wheel: a subpackage missing from setup.py's list would still
    import in a checkout with an editable install (its finder serves it), so compare the files themselves."""
    for pkg in ("ofa_profile", "ofa_model"):
        src = {p.relative_to(ROOT).as_posix() for p in (ROOT / pkg).rglob("*.py")}
        got = {p.relative_to(installed).as_posix() for p in (installed / pkg).rglob("*.py")}
        assert src <= got, f"not installed: {sorted(src - got)[:5]}"
