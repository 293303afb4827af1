"""Helpers shared by several test modules (kept here, not imported from one test module into another).

Fixtures live in ``conftest.py``; these are plain functions and constants a test calls with its own arguments.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ofa_profile.accuracy import AccuracyDataset, encode
from ofa_profile.space import get_space

if TYPE_CHECKING:
    import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


TUTORIAL = {  # the OFA tutorial subnet (data README), skipped blocks filled with 3
    "d": [2, 2, 3, 4, 3],
    "ks": [5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3],
    "e": [3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3],
    "r": 192,
}


def synthetic_dataset(n=400, seed=0, space="ofa-mbv3-w1.0"):
    """Random subnets with an accuracy that is additive in the choices plus an interaction and noise."""
    sp = get_space(space)
    rng = random.Random(seed)
    specs = [sp.sample(rng, resolution=[128, 160, 192]) for _ in range(n)]
    X = encode(specs, "onehot-depth-r")
    w = np.random.default_rng(seed).normal(0, 0.002, X.shape[1])
    y = 0.7 + X @ w + 0.004 * X[:, -2] * X[:, 5] + np.random.default_rng(seed + 1).normal(0, 0.001, n)
    return AccuracyDataset(tuple(specs), y, "synthetic")


FAST_TIMING = {"warmup_runs": 1, "min_runs": 3, "max_runs": 3, "max_time_s": 0.5, "target_iqr_rel": 1.0}


def fast_spec(tmp_path: Path, runtime: str, name: str = "fast", timing: dict | None = None) -> Path:
    spec = {"format": "ofa-profile-device", "schema_version": 1, "name": name, "description": "test device",
            "runtime": runtime, "transport": "local", "num_threads": 1, "timing": timing or FAST_TIMING}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(spec))
    return p


def make_folder(root: Path, n_per_class: int, n_classes: int = 3, seed: int = 0) -> Path:
    """A tiny ImageFolder of real JPEG files (class = dominant colour channel)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            a = (rng.random((40, 48, 3)) * 60).astype(np.uint8)
            a[..., c % 3] += 150
            Image.fromarray(a).save(d / f"img{i}.jpg", quality=90)
    return root



def tiny_supernet(base: Path):
    """A 3-class supernet (seeded, eval mode) with tiny train (4 per class) and val (3 per class) image caches
    of 40 px built under ``base``: ``(model, train cache, val cache)``, for evaluation tests."""
    import torch

    from ofa_model.data import build_cache
    from ofa_model.supernet import OFAMobileNetV3
    torch.set_num_threads(1)
    tr = build_cache(make_folder(base / "train", 4), base / "ctr", size=40)
    va = build_cache(make_folder(base / "val", 3, seed=2), base / "cva", size=40, classes=tr.classes)
    torch.manual_seed(0)
    return OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3).eval(), tr, va


# the trainer's command line on a tiny folder
def train_cli(train_dir, val_dir, out, *extra):
    """The trainer's command line on a tiny folder; an option given in ``extra`` replaces the default one (the
    trainer refuses an option given twice)."""
    defaults = {"--image-size": "48", "--resolutions": "48", "--batch-size": "4", "--eval-images": "6",
                "--calib-images": "8", "--threads": "1", "--log-every": "1"}
    given = {a for a in map(str, extra) if a.startswith("--")}
    opts = [x for k, v in defaults.items() if k not in given for x in (k, v)]
    return [PY, "-m", "ofa_model.train", "--train-data", str(train_dir), "--val-data", str(val_dir), "--out", str(out),
            *opts, *extra]


def train_env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def lut_from_ops(resolutions=(160, 176), device="fake-cpu", ms_per_mac=5e-8, ms_per_kernel=0.01):
    from ofa_profile.lut import Lut, LutEntry
    from ofa_profile.ops import ops_at_resolution
    entries = {}
    for r in resolutions:
        for op in ops_at_resolution("ofa-mbv3-w1.0", r):
            entries[op.key] = LutEntry(median_ms=0.02 + op.macs() * ms_per_mac + ms_per_kernel * op.kernel,
                                       iqr_ms=0.0, count=5)
    return Lut(space="ofa-mbv3-w1.0", device=device, runtime="fake", entries=entries, resolutions=resolutions,
               provenance={"tool": "ofa-profile", "seed": 0, "timing": None, "source": "synthetic test LUT"})


def write_fake_lut(path, device="fake-cpu", resolutions=(160, 176, 192), **kw):
    from ofa_profile.lut import save_lut
    save_lut(lut_from_ops(tuple(resolutions), device, **kw), path)
    return path


def randomize(model: "nn.Module", seed: int = 0, bn_scale: tuple[float, float] = (0.5, 1.5),
              linear_gain: float = 1.0) -> "nn.Module":
    """Trained-like weights: scale-preserving convs, random BN affine (scales uniform in ``bn_scale``) + statistics,
    perturbed kernel transforms (a freshly built supernet's logits are its classifier bias, which would hide any
    export error).  BN scales above ~1.2 make the deepest random subnets' logits blow up; (0.4, 1.1) with
    ``linear_gain=10`` keeps them of order 1."""
    import torch
    import torch.nn as nn
    g = torch.Generator().manual_seed(seed)
    lo, hi = bn_scale
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_matrix"):
                p.copy_(torch.eye(p.shape[0]) + 0.05 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(lo + (hi - lo) * torch.rand(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * linear_gain / m.in_features ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def sigint_default() -> None:
    """In the child before exec: Ctrl-C back to its default. A suite started in the background by a
    non-interactive shell inherits SIGINT *ignored*, which the command lines rightly keep ignoring (as Python
    does); these tests send Ctrl-C on purpose."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def run_cli(*args, env: dict | None = None):
    """``ofa-profile ARGS`` run in this process (click's runner) and returned as a subprocess would be
    (``returncode``, ``stdout``, ``stderr``), without the 2-3 s of CPU a fresh interpreter spends importing torch.
    An exception the command did not turn into an exit status is re-raised here: where a process would have printed
    a traceback, the test fails with it."""
    import subprocess

    from click.testing import CliRunner

    from ofa_profile.cli import main
    res = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return subprocess.CompletedProcess(["ofa-profile", *map(str, args)], res.exit_code, res.stdout, res.stderr)


# a real OpenSSH server on loopback (the ``sshd`` fixture of conftest.py) as a Linux board
SSHD = "/usr/sbin/sshd"
HAVE_SSH = bool(Path(SSHD).exists() and shutil.which("ssh") and shutil.which("ssh-keygen"))
NO_SSH = "OpenSSH server/client not installed (apt-get install openssh-server openssh-client)"
RUNTIME = "onnxruntime"


def needs_sshd(f):
    """The real OpenSSH server and client (a device marker)."""
    return pytest.mark.device(pytest.mark.skipif(not HAVE_SSH, reason=NO_SSH)(f))


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def board_spec(sshd, tmp_path, port=None, host="127.0.0.1", **over):
    obj = {
        "format": "ofa-profile-device", "schema_version": 1, "name": "loopback-board",
        "description": "this machine as an SSH board (test)", "runtime": RUNTIME, "transport": "ssh",
        "num_threads": 1, "batch_sizes": [1],
        "timing": {"warmup_runs": 2, "min_runs": 5, "max_runs": 8, "max_time_s": 0.5, "target_iqr_rel": 0.5},
        "ssh": {"host": host, "port": port or sshd["port"], "user": os.environ.get("USER") or None,
                "identity_file": sshd["key"], "remote_python": sys.executable,
                "remote_dir": str(tmp_path / "board"),
                "options": [f"UserKnownHostsFile={sshd['known_hosts']}", "StrictHostKeyChecking=no"]},
    }
    obj["ssh"].update(over)
    if obj["ssh"]["user"] is None:
        del obj["ssh"]["user"]
    path = tmp_path / "loopback-board.json"
    path.write_text(json.dumps(obj))
    from ofa_profile.devices import parse_device
    return parse_device(obj, str(path)), path


def mount_tmpfs(where: Path, size: str) -> bool:
    """Mount a real tmpfs of ``size`` (e.g. "512k") on the new folder ``where``; False where that needs a root this
    process is not (the caller skips). Unmount with ``umount``."""
    import subprocess
    import uuid
    where.mkdir()
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", f"ofa-test-{uuid.uuid4().hex[:8]}", str(where)],
                       capture_output=True, text=True)
    return r.returncode == 0


@contextlib.contextmanager
def read_only_dir(where: Path):
    """``where`` (an existing folder) made unwritable for this process for the ``with`` block: as root, a read-only
    bind mount of it (a chmod does not stop root); otherwise chmod 555. Skips where neither can be done."""
    import subprocess
    if os.geteuid() != 0:
        where.chmod(0o555)
        try:
            yield where
        finally:
            where.chmod(0o755)
        return
    r = subprocess.run(["mount", "--bind", str(where), str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"a read-only bind mount is not possible here: {r.stderr.strip()}")
    try:
        r = subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"a read-only bind mount is not possible here: {r.stderr.strip()}")
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def accuracy_row(index: int) -> dict:
    """Row ``index`` of the bundled accuracy dataset (ofa_model/weights/accuracy-dataset.csv), as read by csv."""
    import csv

    from ofa_model.bundle import weights_dir
    with open(weights_dir() / "accuracy-dataset.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if int(r["index"]) == index)


# Row 780 of that file: the cheapest subnet at r=128 in it (65.5 M MACs, top-1 0.893 on its 2,000 val images)
KNOWN_ROW = 780


def ofa_networks():
    """OFA's ``elastic_nn.networks`` module, imported with the stand-ins of :mod:`ofa_profile.ofa_graph` (visible
    only while ``ofa`` imports); the test skips, naming the install, where ``ofa`` is absent."""
    from ofa_profile.errors import OfaProfileError
    from ofa_profile.ofa_graph import ofa_networks as networks
    try:
        return networks()
    except OfaProfileError as exc:
        pytest.skip(str(exc))


def install_plugin(src: Path, site: Path, dist: str) -> Path:
    """``pip install --target site`` of the package whose source is ``src`` (a plug-in built in a test, offline);
    fails the test in one message where the build fails; checks that the distribution ``dist`` declares its entry
    points.  Returns ``site``, a folder to put on ``PYTHONPATH`` (:func:`cli_with_site`)."""
    import subprocess
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail(f"building the plug-in package failed: {r.stderr[-2000:]}")
    assert list(site.glob(f"{dist}-0.1*.dist-info/entry_points.txt"))
    return site


def cli_with_site(args, site: Path | None = None, cwd=None):
    """``python -m ofa_profile.cli ARGS`` in a process of its own, with ``site`` (a plug-in's install folder)
    first on ``PYTHONPATH``."""
    import subprocess
    env = {**os.environ}
    if site is not None:
        env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)
