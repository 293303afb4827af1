"""No code runs from a data file (issue 15, section 1) and the integrity of weights (section 4).

A crafted checkpoint whose pickle calls ``os.system`` (zip and legacy torch formats) goes through every entry
point that takes one; each must refuse it in one line (exit 1) without running the payload (the marker file it
would create must not exist).  A flipped byte in a weights file outside a manifest folder fails the archive's
CRC-32; non-finite weights are refused on load; an export whose comparison with torch is NaN fails."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ofa_model.bundle import BUNDLE_FORMAT, load_bundled_supernet, read_manifest, save_bundle, weights_dir
from ofa_model.supernet import OFAMobileNetV3, WeightsError, load_supernet_weights
from ofa_profile.cli import main as cli
from ofa_profile.space import get_space

CLASSES = ["class0", "class1", "class2"]


class Payload:
    """Unpickles by calling ``os.system("touch MARKER")``: a stand-in for any code a crafted file can run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


@pytest.fixture(scope="module")
def sd3():
    torch.manual_seed(0)
    return OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3).state_dict()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from helpers import make_folder
    base = tmp_path_factory.mktemp("data")
    return make_folder(base / "train", 2), make_folder(base / "val", 1, seed=1)


@pytest.fixture
def arch(tmp_path):
    p = tmp_path / "arch.json"
    p.write_text(json.dumps(get_space("ofa-mbv3-w1.0").smallest(128).to_ofa()))
    return p


def craft(path: Path, sd, marker: Path, *, legacy: bool = False, fmt: str | None = None) -> Path:
    """A checkpoint that is a valid supernet checkpoint except for one object whose unpickling runs code."""
    obj = {"state_dict": sd, "meta": {"space": "ofa-mbv3-w1.0", "n_classes": 3, "classes": CLASSES,
                                      "note": Payload(marker)}}
    if fmt:
        obj["format"] = fmt
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def refused(code: int, stderr: str, needle: str = "needs arbitrary unpickling", *, only_line: bool = True) -> str:
    """Exit 1 with one `error:` line naming the refusal, no traceback; returns that line."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert code == 1, stderr
    assert "Traceback" not in stderr and lines and lines[-1].startswith("error: "), stderr
    assert sum(ln.startswith("error:") for ln in lines) == 1, stderr
    if only_line:
        assert len(lines) == 1, stderr
    assert needle in lines[-1], lines[-1]
    return lines[-1]


def run_cli(args) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.stdout, res.stderr


# -- 1. every entry point refuses a crafted checkpoint; its payload does not run -------------------------------

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_load_supernet_weights_refuses_code(tmp_path, sd3, legacy):
    marker = tmp_path / "PWNED"
    p = craft(tmp_path / "evil.pt", sd3, marker, legacy=legacy)
    model = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3)
    with pytest.raises(WeightsError, match=r"needs arbitrary unpickling \(it holds posix\.system\), which could "
                                           r"run code; refused"):
        load_supernet_weights(model, p)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_export_refuses_code(tmp_path, sd3, arch, legacy):
    marker = tmp_path / "PWNED"
    p = craft(tmp_path / "evil.pt", sd3, marker, legacy=legacy)
    code, out, err = run_cli(["export", "--arch", arch, "--format", "onnx", "--out", tmp_path / "net.onnx",
                              "--supernet", p])
    line = refused(code, err)
    assert str(p) in line and "posix.system" in line
    assert not marker.exists() and not (tmp_path / "net.onnx").exists()


def test_manifest_with_the_files_own_sha256_does_not_make_it_safe(tmp_path, sd3, arch):
    marker = tmp_path / "PWNED"
    p = craft(tmp_path / "w" / "evil.pt", sd3, marker, fmt=BUNDLE_FORMAT)
    man = {"format": BUNDLE_FORMAT, "file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
           "space": "ofa-mbv3-w1.0", "n_classes": 3, "classes": CLASSES}
    (p.parent / "manifest.json").write_text(json.dumps(man))
    code, _, err = run_cli(["export", "--arch", arch, "--format", "onnx", "--out", tmp_path / "net.onnx",
                            "--supernet", p])
    refused(code, err)
    assert not marker.exists()
    with pytest.raises(WeightsError, match="needs arbitrary unpickling"):
        load_bundled_supernet(p)
    assert not marker.exists()


def test_accuracy_dataset_refuses_code(tmp_path, sd3, data):
    marker = tmp_path / "PWNED"
    p = craft(tmp_path / "evil.pt", sd3, marker)
    tr, va = data
    code, _, err = run_cli(["accuracy-dataset", "--supernet", p, "--n", 2, "--out", tmp_path / "acc.csv",
                            "--train-data", tr, "--val-data", va, "--cache-dir", tmp_path / "cache",
                            "--n-val", 3, "--n-calib", 3])
    refused(code, err)
    assert not marker.exists() and not (tmp_path / "acc.csv").exists()


def test_pareto_verify_fails_on_a_refused_supernet(tmp_path, sd3, data):
    """pareto --verify used to record the refusal as `top1_error` and exit 0; an unsafe file fails the command."""
    from ofa_profile.accuracy import fit_accuracy_predictor
    from helpers import synthetic_dataset, write_fake_lut
    marker = tmp_path / "PWNED"
    p = craft(tmp_path / "evil.pt", sd3, marker)
    lut = write_fake_lut(tmp_path / "lut-a.json", "fake-a")
    pred = fit_accuracy_predictor(synthetic_dataset(120), model="ridge").save(tmp_path / "acc.json")
    tr, va = data
    code, out, err = run_cli(["pareto", "--budget", "9ms", "--lut", lut, "--predictor", pred,
                              "--out-dir", tmp_path / "out", "--no-plot", "--effort", "fast", "--n-budgets", 2,
                              "--verify", "--verify-device", "cpu-ort", "--supernet", p, "--train-data", tr,
                              "--val-data", va, "--cache-dir", tmp_path / "cache", "--verify-images", 3,
                              "--verify-calib-images", 3])
    refused(code, err, only_line=False)       # the search logs its margin before the verification
    assert not marker.exists()
    assert not (tmp_path / "out" / "pareto-lut-a-9ms.json").exists()


def _train_args(tr, va, out, *extra):
    return ["--train-data", str(tr), "--val-data", str(va), "--out", str(out), "--batch-size", "4",
            "--threads", "1", *map(str, extra)]


def test_train_init_refuses_code(tmp_path, sd3, data, capsys):
    from ofa_model.train import main as train_main
    marker = tmp_path / "PWNED"
    p = craft(tmp_path / "evil.pt", sd3, marker)
    tr, va = data
    code = train_main(_train_args(tr, va, tmp_path / "run", "--init", p, "--max-steps-per-phase", 1))
    refused(code, capsys.readouterr().err)
    assert not marker.exists()
    assert not (tmp_path / "run").exists()       # refused before anything was written


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_train_resume_refuses_a_crafted_checkpoint(tmp_path, sd3, data, capsys, legacy):
    from ofa_model.train import CKPT_FORMAT
    from ofa_model.train import main as train_main
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    p = craft(run / "ckpt-last.pt", sd3, marker, legacy=legacy, fmt=CKPT_FORMAT)
    before = p.read_bytes()
    tr, va = data
    code = train_main(_train_args(tr, va, run, "--image-size", 40, "--resolutions", 40, "--max-steps-per-phase", 1,
                                  "--cache-dir", tmp_path / "cache"))
    line = refused(code, capsys.readouterr().err, only_line=False)   # (notes on the data cache come first)
    assert "ckpt-last.pt" in line
    assert not marker.exists() and p.read_bytes() == before


@pytest.mark.parametrize("standalone", [False, True], ids=["ps-run", "standalone-run"])
def test_model_card_refuses_code(tmp_path, sd3, data, capsys, standalone):
    from ofa_model.card import main as card_main
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    craft(run / "supernet.pt", sd3, marker)
    (run / "config.json").write_text(json.dumps({"space": "ofa-mbv3-w1.0", "standalone": standalone and "smallest"
                                                 or None}))
    (run / "train_log.jsonl").write_text("")
    tr, va = data
    code = card_main(["--run", str(run), "--train-data", str(tr), "--val-data", str(va), "--out",
                      str(tmp_path / "pkg")])
    refused(code, capsys.readouterr().err)
    assert not marker.exists()
    assert not (tmp_path / "pkg" / "MODEL_CARD.md").exists() and not (tmp_path / "pkg" / "weights").exists()


def test_a_plain_pickle_or_numpy_content_is_refused_too(tmp_path, sd3):
    import pickle

    import numpy as np
    marker = tmp_path / "PWNED"
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"state_dict": sd3, "x": Payload(marker)}))
    torch.save({"state_dict": sd3, "rng": np.zeros(3)}, tmp_path / "np.pt")
    model = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3)
    with pytest.raises(WeightsError, match="could run code; refused"):
        load_supernet_weights(model, tmp_path / "plain.pkl")
    with pytest.raises(WeightsError, match=r"needs arbitrary unpickling \(it holds numpy\..*_reconstruct\)"):
        load_supernet_weights(model, tmp_path / "np.pt")
    assert not marker.exists()


def test_image_cache_with_a_pickled_array_is_refused_and_rebuilt(tmp_path, data):
    """The decoded-image cache (--cache-dir) is read with allow_pickle=False: an object array is refused in one
    line without running anything, and build_cache decodes the split again instead of using it."""
    import numpy as np

    from ofa_model.data import DataError, build_cache, open_cache
    tr, _ = data
    marker = tmp_path / "PWNED"
    cache = build_cache(tr, tmp_path / "cache", 40, progress=False)
    labels = cache.labels.copy()
    np.save(tmp_path / "cache" / "labels.npy", np.array([Payload(marker)] * len(labels), dtype=object),
            allow_pickle=True)
    with pytest.raises(DataError, match="image cache .* is damaged"):
        open_cache(tmp_path / "cache")
    again = build_cache(tr, tmp_path / "cache", 40, progress=False)
    assert np.array_equal(again.labels, labels) and not marker.exists()


# -- 2. the shipped bundle and training checkpoints load with weights_only=True -------------------------------

def test_shipped_bundle_is_unchanged_and_loads_safely():
    from ofa_model.bundle import bundled_weights_path, sha256_file
    from ofa_model.safeload import check_zip_crc, load_torch_file
    p = bundled_weights_path()
    if not p.is_file():
        pytest.skip("no bundled weights in this installation")
    man = read_manifest(weights_dir() / "manifest.json")
    assert sha256_file(p) == man["sha256"]
    assert check_zip_crc(p)
    obj = load_torch_file(p)
    assert obj["format"] == BUNDLE_FORMAT and obj["state_dict"]
    assert load_bundled_supernet()[1].verified


# -- 3. integrity: CRC-32 outside a manifest folder, non-finite weights, NaN comparisons ---------------------

def _flip_in_tensor_data(p: Path) -> str:
    """Flip one bit in the middle of the largest tensor's bytes of a torch zip archive; returns the entry."""
    import struct
    with zipfile.ZipFile(p) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(p.read_bytes())
    n, e = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    raw[info.header_offset + 30 + n + e + info.file_size // 2] ^= 0x01
    p.write_bytes(bytes(raw))
    return info.filename


def test_flipped_byte_outside_a_manifest_folder_is_refused(tmp_path, sd3, arch):
    p = tmp_path / "plain.pt"
    torch.save({"state_dict": sd3}, p)
    assert torch.load(p, weights_only=True)["state_dict"].keys()     # loads before the flip
    entry = _flip_in_tensor_data(p)
    torch.load(p, weights_only=True)            # torch itself does not notice: the archive's CRC-32 does
    code, _, err = run_cli(["export", "--arch", arch, "--format", "onnx", "--out", tmp_path / "net.onnx",
                            "--supernet", p])
    line = refused(code, err, "fails the archive's CRC-32 check")
    assert entry in line and not (tmp_path / "net.onnx").exists()
    with pytest.raises(WeightsError, match="CRC-32"):
        load_supernet_weights(OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3), p)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused_on_load(tmp_path, sd3, arch, bad):
    key = "blocks.5.conv.depth_conv.conv.conv.weight"
    sd = {k: v.clone() for k, v in sd3.items()}
    sd[key].view(-1)[7] = bad
    kind = "NaN" if bad != bad else "Inf"
    # a plain checkpoint through the command line
    torch.save({"state_dict": sd}, tmp_path / "nan.pt")
    code, _, err = run_cli(["export", "--arch", arch, "--format", "onnx", "--out", tmp_path / "net.onnx",
                            "--supernet", tmp_path / "nan.pt"])
    line = refused(code, err, f"non-finite values ({kind}) in state_dict/{key}")
    assert not (tmp_path / "net.onnx").exists() and line
    # a verified bundle (fp16 on disk), and a state dict handed over in memory
    model = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3)
    model.load_state_dict(sd)
    save_bundle(model, tmp_path / "w", "bad", classes=CLASSES)
    with pytest.raises(WeightsError, match=rf"non-finite values \({kind}\) in state_dict/{key}"):
        load_bundled_supernet(tmp_path / "w" / "bad.pt")
    with pytest.raises(WeightsError, match=rf"non-finite values \({kind}\) in {key}"):
        load_supernet_weights(OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3), sd)


def test_export_comparison_yielding_nan_fails_and_writes_nothing(tmp_path, arch):
    """Finite weights whose logits overflow to +-inf: torch and ONNX Runtime both give non-finite logits, so
    max |diff| would be NaN.  That is a failure (exit 1, one line), and an existing --out is not replaced."""
    from helpers import randomize
    model = randomize(OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3))
    with torch.no_grad():
        model.classifier.linear.weight.fill_(3e38)      # finite, but the logits overflow
    torch.save({"state_dict": model.state_dict()}, tmp_path / "big.pt")
    out = tmp_path / "net.onnx"
    out.write_bytes(b"an earlier export")
    code, _, err = run_cli(["export", "--arch", arch, "--format", "onnx", "--out", out, "--supernet",
                            tmp_path / "big.pt", "--json"])
    refused(code, err, "against torch is undefined", only_line=False)    # after the note on BN statistics
    assert out.read_bytes() == b"an earlier export"
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".net.onnx.") and not f.name.endswith(".lock")]
    # --no-check writes it (nothing is compared)
    code, _, err = run_cli(["export", "--arch", arch, "--format", "onnx", "--out", out, "--supernet",
                            tmp_path / "big.pt", "--no-check"])
    assert code == 0, err
