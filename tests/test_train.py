"""Progressive-shrinking trainer: data cache, phases, checkpoint/resume after SIGKILL, DDP (gloo), errors."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_model.data import (DataError, build_cache, center_crop_batch, check_splits, epoch_batches,
                            scan_source, train_batch)
from ofa_model.supernet import OFAMobileNetV3, load_supernet_weights
from ofa_model.train import TrainConfig, recipe_phases, train
from ofa_profile.atomic import temp_tag
from ofa_profile.paths import shared_data_dir

from helpers import make_folder, train_cli as _cli, train_env as _env

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    return make_folder(base / "train", 8), make_folder(base / "val", 3, seed=1)


def test_cache_and_augment(data, tmp_path):
    tr = build_cache(data[0], tmp_path / "c", size=32)
    assert tr.images.shape == (24, 32, 32, 3) and tr.images.dtype == np.uint8
    assert tr.classes == ("class0", "class1", "class2")
    assert build_cache(data[0], tmp_path / "c", size=32).path == tr.path     # reused
    # the colour class survives decoding
    assert all(int(np.argmax(tr.images[i].reshape(-1, 3).mean(0))) == tr.labels[i] for i in range(len(tr)))
    g = torch.Generator().manual_seed(0)
    x, y = train_batch(tr, np.arange(5), 40, g)
    assert x.shape == (5, 3, 40, 40) and y.tolist() == tr.labels[:5].tolist()
    x2, _ = train_batch(tr, np.arange(5), 40, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    # the resampling can run on the training device: same crops (the generator stays on the CPU)
    x3, _ = train_batch(tr, np.arange(5), 40, torch.Generator().manual_seed(0), device=torch.device("cpu"))
    assert torch.equal(x, x3)
    xc, _ = center_crop_batch(tr, np.arange(2), 32, crop_frac=1.0)   # identity crop reproduces the image
    ref = (torch.from_numpy(np.array(tr.images[:2])).permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert (xc - ref).abs().max() < 1e-3
    b = epoch_batches(24, 4, 0, 0, rank=1, world=2)
    assert len(b) == 3 and not set(np.concatenate(b)) & set(np.concatenate(epoch_batches(24, 4, 0, 0, 0, 2)))


def test_bad_dataset_folders(tmp_path, data):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in class folders"):
        scan_source(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        scan_source(tmp_path / "nope")
    loose = make_folder(tmp_path / "loose", 2)
    (loose / "stray.jpg").write_bytes((loose / "class0" / "img0.jpg").read_bytes())
    with pytest.raises(DataError, match="not in a class folder"):
        scan_source(loose)
    one = make_folder(tmp_path / "one", 2, n_classes=1)
    with pytest.raises(DataError, match="only one class"):
        scan_source(one)
    other = make_folder(tmp_path / "other", 2, n_classes=4)
    with pytest.raises(DataError, match="differ from the training set"):
        build_cache(other, tmp_path / "c", size=32, classes=("class0", "class1", "class2"))
    bad = make_folder(tmp_path / "bad", 2)
    (bad / "class1" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot decode image"):
        build_cache(bad, tmp_path / "c2", size=32)
    assert list((tmp_path / "c2").iterdir()) == []     # no half-decoded array left behind
    # ... nor one of a decoding killed outright (no finally ran): the next build removes it, not a live one's
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        host = temp_tag().split("-", 1)[1]
        dead = tmp_path / "c2" / f".images.npy.4194305-{host}.x1.npy"           # above Linux's largest pid
        live = tmp_path / "c2" / f".images.npy.{proc.pid}-{host}.x2.npy"
        elsewhere = tmp_path / "c2" / ".images.npy.4194305-another-machine.x3.npy"  # a pid there means nothing here
        for f in (dead, live, elsewhere):
            f.write_bytes(b"x" * 1000)
        build_cache(make_folder(tmp_path / "good", 2), tmp_path / "c2", size=32)
        assert not dead.exists() and live.exists() and elsewhere.exists()
        assert (tmp_path / "c2" / "meta.json").exists()
    finally:
        proc.kill()
    # the CLI: one line, exit 1, nothing written in the run folder
    r = subprocess.run(_cli(tmp_path / "empty", data[1], tmp_path / "run"), capture_output=True, text=True, env=_env())
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: dataset")
    assert not (tmp_path / "run").exists()          # not even the --out folder it would have made
    # a folder the user made stays, with what it held
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    r = subprocess.run(_cli(tmp_path / "empty", data[1], tmp_path / "mine"), capture_output=True, text=True, env=_env())
    assert r.returncode == 1 and (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    # a val set of other classes is refused before the training set is decoded: nothing is written at all
    r = subprocess.run(_cli(data[0], other, tmp_path / "run2"), capture_output=True, text=True, env=_env())
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(f"error: classes of {other} differ")
    assert "decode" not in r.stderr and not (tmp_path / "run2").exists()
    with pytest.raises(DataError, match="differ from the training set"):
        check_splits(data[0], other)
    tr_list, va_list = check_splits(data[0], data[1])
    assert tr_list[0] == ("class0", "class1", "class2") and va_list == scan_source(data[1])


def test_recipes():
    ofa = recipe_phases("ofa", "ofa-mbv3-w1.0")
    assert [p.name for p in ofa] == ["teacher", "kernel", "depth1", "depth2", "expand1", "expand2"]
    assert [p.n_subnets for p in ofa] == [1, 1, 2, 2, 4, 4]
    assert ofa[2].d == (3, 4) and ofa[4].e == (4, 6) and ofa[4].reorganize == 1 and ofa[5].reorganize == 2
    comp = recipe_phases("compofa", "compofa-mbv3-w1.0", epoch_scale=0.1)
    assert [p.name for p in comp] == ["teacher", "kernel", "compound"] and comp[-1].compound
    assert comp[0].epochs == pytest.approx(18)


def test_compofa_run_in_process(data, tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(train_data=str(data[0]), val_data=str(data[1]), out=str(tmp_path / "run"),
                      space="compofa-mbv3-w1.0", recipe="compofa", image_size=48, resolutions=(48,), batch_size=4,
                      max_steps_per_phase=2, eval_images=6, calib_images=8, log_every=1)
    final = train(cfg)
    m = OFAMobileNetV3("compofa-mbv3-w1.0", n_classes=3)
    load_supernet_weights(m, final)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    ends = [r["phase_end"] for r in log if "phase_end" in r]
    assert [e["phase"] for e in ends] == ["teacher", "kernel", "compound"]
    # the last phase's check is that of the saved weights: the same evaluation of the file gives the same figures
    from ofa_model.evaluate import evaluate_spec
    from ofa_profile.space import get_space
    tr = build_cache(data[0], tmp_path / "c" / "train", size=48)
    va = build_cache(data[1], tmp_path / "c" / "val", size=48, classes=tr.classes)
    sp = get_space("compofa-mbv3-w1.0")
    r_spec = sp.resolutions[0]                        # 48 is below the space's: specs at its first, run at 48
    again = {tag: evaluate_spec(m.eval(), spec, tr, va, n_val=6, n_calib=8, batch_size=50, resolution=48)
             for tag, spec in (("largest", sp.largest(r_spec)), ("smallest", sp.smallest(r_spec)))}
    assert ends[-1]["val_top1"] == pytest.approx(again, abs=1e-4) and ends[-1]["val_resolution"] == 48
    assert all(r["img_s"] > 0 for r in log if "img_s" in r)


def test_bf16_autocast_run(data, tmp_path):
    """--amp bf16 (meant for GPUs) runs the forward passes under bfloat16 autocast; on the CPU too, so the
    path is tested here: every phase trains with finite losses and the weights stay fp32."""
    torch.set_num_threads(1)
    cfg = TrainConfig(train_data=str(data[0]), out=str(tmp_path / "run"), image_size=48, resolutions=(48,),
                      batch_size=4, max_steps_per_phase=1, eval_images=0, log_every=1, amp="bf16")
    final = train(cfg)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 6 and all(np.isfinite(v) and v > 0 for v in losses)
    sd = torch.load(final, map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)
    assert all(v.dtype in (torch.float32, torch.int64) for v in sd.values() if torch.is_tensor(v))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["amp"] == "bf16"
    r = subprocess.run([sys.executable, "-m", "ofa_model.train", "--train-data", str(data[0]), "--out",
                        str(tmp_path / "bad"), "--amp", "fp8"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 2 and "--amp" in r.stderr and "Traceback" not in r.stderr


def test_channels_last_same_training(data, tmp_path):
    """The NHWC layout (the default, ~2x faster on CPU) computes the same net as NCHW: same logits and, to
    float32 tolerance, the same gradients for subnets that use every elastic path; a run in each layout
    starts from the same loss, and the saved weights are in the plain NCHW layout either way."""
    import copy
    import random

    import torch.nn.functional as F
    torch.set_num_threads(1)
    torch.manual_seed(0)
    m0 = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3)
    m1 = copy.deepcopy(m0).to(memory_format=torch.channels_last)
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 3, (8,))
    for i in range(3):
        spec = m0.sample_active_subnet(random.Random(i), 128)
        m1.set_active_subnet(spec)
        grads = []
        for m, xx in ((m0, x), (m1, x.contiguous(memory_format=torch.channels_last))):
            torch.manual_seed(i)                      # the same dropout mask
            logits = m(xx)
            F.cross_entropy(logits, y).backward()
            grads.append((logits.detach(), torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])))
            m.zero_grad()
        (l0, g0), (l1, g1) = grads
        assert torch.allclose(l0, l1, rtol=1e-4, atol=1e-5)
        # fp32 rounding differs between the layouts' kernels and is amplified by train-mode BN; a wrong
        # gradient would be off by O(1), rounding here by < 2 %
        assert float((g0 - g1).norm() / g0.norm()) < 0.02
    runs = {}
    for cl in (True, False):
        out = tmp_path / f"cl{int(cl)}"
        cfg = TrainConfig(train_data=str(data[0]), out=str(out), image_size=48, resolutions=(48,), batch_size=4,
                          max_steps_per_phase=1, eval_images=0, log_every=1, channels_last=cl)
        sd = torch.load(train(cfg), map_location="cpu", weights_only=True)["state_dict"]
        losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()
                  if '"loss"' in line]
        runs[cl] = (losses, sd)
    (l1, sd1), (l0, sd0) = runs[True], runs[False]
    assert len(l1) == len(l0) == 6 and all(np.isfinite(l1)) and abs(l1[0] - l0[0]) < 1e-4 * abs(l0[0])
    assert all(v.is_contiguous() for v in sd1.values()) and sd1.keys() == sd0.keys()
    r = subprocess.run([PY, "-m", "ofa_model.train", "--help"], capture_output=True, text=True, env=_env())
    assert "--no-channels-last" in r.stdout


def _serve_log_until(log: Path, proc: subprocess.Popen, last: tuple[str, int]) -> list[dict]:
    """Serve the trainer's log (a FIFO at its path) one append at a time until the step record ``last`` (phase,
    step) has been read; returns the records read.  Each append of the trainer opens the log, which waits for a
    reader: once this one stops reading, the trainer is held at its next append, a known point of its run."""
    recs: list[dict] = []
    deadline = time.time() + 240
    while not recs or (recs[-1].get("phase"), recs[-1].get("step")) != last:
        fd = os.open(log, os.O_RDONLY | os.O_NONBLOCK)      # the trainer's next append pairs with this reader
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            buf = b""
            while True:                                     # until the trainer has closed the log again
                assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before step {last} was logged"
                assert time.time() < deadline, f"step {last} not logged in time; read {recs[-3:]}"
                if not poller.poll(50):
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
        finally:
            os.close(fd)
        recs += [json.loads(line) for line in buf.decode().splitlines()]
        assert (last[0], last[1] + 1) not in [(r.get("phase"), r.get("step")) for r in recs], \
            "the trainer logged past the kill point before this reader let go of the log"
    return recs


@pytest.mark.slow
def test_kill_and_resume(data, tmp_path, capsys):
    """A SIGKILL leaves exactly the checkpoint saved last before it; the rerun resumes from that step (the channel
    re-sorting of an expand phase is not done twice), redoes only the steps after it and ends with the weights of
    the same run never killed, bit for bit.  The kill lands at a known point: the run's log is a FIFO this test
    serves, so the trainer waits at its next append once the test stops reading."""
    out = tmp_path / "run"
    # 24 images, batch 4: 6 steps an epoch; every phase one step but expand1 (pi 4, re-sorts channels first): 4 steps,
    # a checkpoint after step 2 (--ckpt-every 2; none after the last step of a phase, none by time)
    args = ("--max-steps-per-phase", "4", "--ckpt-every", "2", "--ckpt-minutes", "60", "--eval-images", "0",
            "--phase-epochs", "teacher=0,kernel=0,depth1=0,depth2=0,expand2=0")
    cmd = _cli(data[0], data[1], out, *args)
    out.mkdir()
    log = out / "train_log.jsonl"
    os.mkfifo(log)
    with open(tmp_path / "killed.err", "w") as err:
        p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
    try:
        # the trainer logs step 3 of expand1 (saved last: step 2, before that record), then trains step 4 and waits
        # at the log for its record: no checkpoint is written in between
        served = _serve_log_until(log, p, ("expand1", 3))
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    ck = torch.load(out / "ckpt-last.pt", map_location="cpu", weights_only=True)
    assert (ck["phase_index"], ck["phase"], ck["step"], ck["reorganized"]) == (4, "expand1", 2, True)
    assert ck["optimizer"] is not None and not (out / "supernet.pt").exists()
    log.unlink()                                # the log as the killed run wrote it, a plain file from here on
    log.write_text("".join(json.dumps(r) + "\n" for r in served))
    from ofa_model.train import main            # the rerun and the others in this process: same command line
    argv = [str(a) for a in cmd[3:]]
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"resuming from {out / 'ckpt-last.pt'}: phase 4 step 2" in err, err[-2000:]
    # the rerun trains steps 3 and 4 of expand1 (step 3 a second time: it came after the checkpoint), then expand2
    steps = _logged_steps(log)
    assert steps[steps.index(("depth2", 1)) + 1:] == [("expand1", 1), ("expand1", 2), ("expand1", 3),
                                                      ("expand1", 3), ("expand1", 4), ("expand2", 1)], steps
    # the same run never killed
    ref = tmp_path / "ref"
    assert main([str(a) for a in _cli(data[0], data[1], ref, *args)[3:]]) == 0
    got, want = (torch.load(d / "supernet.pt", map_location="cpu", weights_only=True)["state_dict"] for d in (out, ref))
    assert got.keys() == want.keys()
    assert [k for k in want if not torch.equal(got[k], want[k])] == []
    # a run folder of another configuration is refused, in one line
    capsys.readouterr()
    assert main(argv + ["--seed", "5"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "belongs to another run" in line, line


def _logged_steps(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [(r["phase"], r["step"]) for r in recs if "step" in r and "phase" in r]


def _stop_with(sig, cmd, log: Path, phase: str, after: int):
    """Start the run, send ``sig`` once ``phase`` has logged ``after`` steps, return the finished process."""
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not any(ph == phase and st >= after for ph, st in _logged_steps(log)):
        assert p.poll() is None, p.communicate()[1][-2000:]
        time.sleep(0.02)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


@pytest.mark.slow
@pytest.mark.serial      # signals a step in flight, in real time: a quiet core
def test_sigint_and_sigterm_stop_after_a_step_with_a_checkpoint(data, tmp_path):
    """Ctrl-C or a preemption's SIGTERM: the step in flight finishes, a checkpoint is written, exit 128 + signal in
    one line; the rerun resumes from exactly that step, so no step is lost or done twice (a SIGKILL repeats the
    steps since the last periodic checkpoint)."""
    out = tmp_path / "run"
    log = out / "train_log.jsonl"
    # the two phases it stops in run 6 steps; the four after them one step each (they only have to run once)
    cmd = _cli(data[0], data[1], out, "--max-steps-per-phase", "6", "--eval-images", "0", "--ckpt-minutes", "60",
               "--phase-epochs", "depth1=0,depth2=0,expand1=0,expand2=0")
    for sig, phase, pi in ((signal.SIGINT, "teacher", 0), (signal.SIGTERM, "kernel", 1)):
        rc, err = _stop_with(sig, cmd, log, phase, 3)
        assert rc == 128 + sig, err[-2000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"stopped by {sig.name} after step ") and "Traceback" not in err, err[-2000:]
        ck = torch.load(out / "ckpt-last.pt", map_location="cpu", weights_only=True)
        done = max(st for ph, st in _logged_steps(log) if ph == phase)
        assert (ck["phase_index"], ck["step"]) == (pi, done) and 3 <= done < 6, (ck["phase_index"], ck["step"], done)
        assert f"of phase {phase}; checkpoint" in last and not (out / "supernet.pt").exists()
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and f"phase 1 step {done}" in r.stderr, r.stderr[-2000:]
    steps = _logged_steps(log)
    for phase, n in (("teacher", 6), ("kernel", 6), ("depth1", 1), ("depth2", 1), ("expand1", 1), ("expand2", 1)):
        assert [st for ph, st in steps if ph == phase] == list(range(1, n + 1)), phase


@pytest.mark.slow
def test_ddp_two_cpu_processes_stay_in_sync(data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ofa_model.train",
           *_cli(data[0], data[1], out, "--max-steps-per-phase", "2", "--eval-images", "0",
                 "--phase-epochs", "depth1=0,depth2=0,expand1=0")[3:]]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    checks = [rec["sync_check"] for rec in log if "sync_check" in rec]
    assert checks and all(len(c) == 2 and c[0] == c[1] for c in checks)
    assert all(rec["world"] == 2 for rec in log if "img_s" in rec)


@pytest.mark.skipif(shared_data_dir() is None or not (shared_data_dir() / "imagenette2-224" / "train.tar").exists(),
                    reason="../shared/data/imagenette2-224/train.tar not present")
def test_real_imagenette_images(tmp_path):
    tar = shared_data_dir() / "imagenette2-224" / "train.tar"
    vtar = shared_data_dir() / "imagenette2-224" / "val.tar"
    tr = build_cache(tar, tmp_path / "tr", size=64, limit_per_class=2)
    assert len(tr) == 20 and len(tr.classes) == 10 and tr.classes[0] == "n01440764"
    va = build_cache(vtar, tmp_path / "va", size=64, classes=tr.classes, limit_per_class=1)
    assert len(va) == 10
    torch.set_num_threads(1)
    cfg = TrainConfig(train_data=str(tar), out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                      recipe="compofa", space="compofa-mbv3-w1.0", image_size=64, resolutions=(64,), batch_size=10,
                      limit_per_class=2, max_steps_per_phase=1, eval_images=0, log_every=1,
                      phase_epochs=(("kernel", 0), ("compound", 0)))
    final = train(cfg)
    m = OFAMobileNetV3("compofa-mbv3-w1.0", n_classes=10)
    load_supernet_weights(m, final)
