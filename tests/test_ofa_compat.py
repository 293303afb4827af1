"""Compatibility with OFA's own implementation (PyPI package ``ofa``, installed with ``--no-deps``).

Install: ``pip install --no-deps ofa==0.1.0.post202307202001``.  OFA's package imports torchvision and
``torch._six`` (gone from torch 2) at import time for its data loaders; ``helpers.ofa_networks`` (through ``ofa_profile.ofa_graph.ofa_import_stand_ins``) inserts
tiny stand-in modules for those names only while ``ofa`` imports and removes them right after (no later test
sees a fake torchvision).
"""
from __future__ import annotations

import random
import sys

import pytest
import torch

from ofa_model.supernet import OFAMobileNetV3, load_supernet_weights
from ofa_profile.space import get_space

from helpers import ofa_networks


@pytest.fixture(scope="module")
def ofa_net():
    TheirOFA = ofa_networks().OFAMobileNetV3
    torch.manual_seed(0)
    net = TheirOFA(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    # random, non-trivial BN statistics and kernel-transform matrices so that every tensor matters
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_mean"):
                t.copy_(torch.randn_like(t) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith(("bn.weight", "bn.bn.weight")):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith("_matrix"):
                t.add_(torch.randn_like(t) * 0.05)
    return net.eval()


def test_state_dict_names_and_shapes_match(ofa_net):
    ours = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=1000)
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in ofa_net.state_dict().items()}
    assert a == b
    ours.load_state_dict(ofa_net.state_dict(), strict=True)


@pytest.mark.slow
def test_twenty_random_subnets_same_logits(ofa_net):
    torch.set_num_threads(1)
    ours = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=1000)
    load_supernet_weights(ours, ofa_net.state_dict())
    ours.eval()
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(2024)
    for i in range(20):
        spec = sp.sample(rng, resolution=rng.choice([128, 132, 160]))
        ofa_net.set_active_subnet(ks=list(spec.ks), e=list(spec.e), d=list(spec.d))
        theirs = ofa_net.get_active_subnet(preserve_weight=True).eval()
        ours.set_active_subnet(spec)
        mine = ours.get_active_subnet().eval()
        # the extracted subnets carry the same tensors under the same names
        ts, ms = theirs.state_dict(), mine.state_dict()
        assert set(ts) == set(ms), spec.short()
        x = torch.randn(2, 3, spec.r, spec.r, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            y_theirs = theirs(x)
            y_mine = mine(x)
            y_super = ours(x)           # our supernet with the subnet active
            y_their_super = ofa_net(x)
        assert (y_mine - y_theirs).abs().max().item() <= 1e-5, spec.short()
        assert (y_super - y_their_super).abs().max().item() <= 1e-5, spec.short()


def test_re_organize_middle_weights_matches(ofa_net):
    import copy
    theirs = copy.deepcopy(ofa_net)
    ours = OFAMobileNetV3("ofa-mbv3-w1.0")
    ours.load_state_dict(theirs.state_dict())
    for stage in (0, 1, 2):
        theirs.re_organize_middle_weights(expand_ratio_stage=stage)
        ours.re_organize_middle_weights(expand_ratio_stage=stage)
        ts, ms = theirs.state_dict(), ours.state_dict()
        for k in ts:
            assert torch.equal(ts[k], ms[k]), (stage, k)
    # sorted channels actually moved something
    assert not torch.equal(ofa_net.blocks[1].conv.point_linear.conv.conv.weight,
                           ours.blocks[1].conv.point_linear.conv.conv.weight)


def test_loads_renamed_official_keys(ofa_net):
    """Official checkpoints wrap the dict in {'state_dict': ...} and may use '.mobile_inverted_conv.'."""
    sd = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
          for k, v in ofa_net.state_dict().items()}
    ours = OFAMobileNetV3("ofa-mbv3-w1.0")
    load_supernet_weights(ours, {"state_dict": sd})
    assert torch.equal(ours.blocks[5].conv.depth_conv.conv.conv.weight,
                       ofa_net.blocks[5].conv.depth_conv.conv.conv.weight)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_official_checkpoint_files_load_with_weights_only(ofa_net, tmp_path, legacy):
    """OFA's checkpoint files (``{'state_dict': ...}`` with '.mobile_inverted_conv.' keys, as its RunManager saves
    them with epoch, best_acc and the optimizer; older torch wrote the legacy, non-zip format) load through the
    safe loader: weights_only=True, CRC-32 checked."""
    from ofa_model.bundle import load_supernet
    sd = {k.replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
          for k, v in ofa_net.state_dict().items()}
    opt = torch.optim.SGD(ofa_net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    ck = {"state_dict": sd, "epoch": 3, "best_acc": 71.2, "dataset": "imagenet", "optimizer": opt.state_dict()}
    p = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0.pth"
    torch.save(ck, p, _use_new_zipfile_serialization=not legacy)
    ours = OFAMobileNetV3("ofa-mbv3-w1.0")
    load_supernet_weights(ours, p)
    assert torch.equal(ours.blocks[5].conv.depth_conv.conv.conv.weight,
                       ofa_net.blocks[5].conv.depth_conv.conv.conv.weight)
    model, info = load_supernet(p)
    assert info.n_classes == 1000 and not info.verified


def test_the_import_stand_ins_do_not_outlive_the_import():
    """The fake torchvision (and torch._six) exist only while ``ofa`` imports: the rest of the run sees none."""
    ofa_networks()
    for name in ("torchvision", "torchvision.transforms", "torch._six"):
        mod = sys.modules.get(name)
        assert mod is None or getattr(mod, "__file__", None), f"a stand-in {name} leaked into sys.modules"
