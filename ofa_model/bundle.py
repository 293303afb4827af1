"""Bundled supernet weights: writing them (fp16 on disk) and loading them with an integrity check.

The bundle lives in ``ofa_model/weights/``: the weights file (``<name>.pt``: ``{"format", "state_dict"
(float tensors in fp16), "meta"}``) and ``manifest.json`` beside it::

    {"format": "ofa_model.bundle/1", "file": "ofa-mbv3-w1.0-imagenette.pt", "sha256": "...",
     "space": "ofa-mbv3-w1.0", "ofa_id": "...", "n_classes": 10, "classes": [...], "dtype": "float16",
     "recipe": {...}, "resolutions": [128, ..., 224], "dataset": "Imagenette"}

:func:`load_bundled_supernet` checks the file's sha256 against the manifest before unpickling anything,
checks the space and class count, and returns an fp32 model in eval mode.  :func:`load_supernet` is what the
commands use: no path = the bundle; a path with a ``manifest.json`` naming it = verified the same way; any
other checkpoint (a training run's ``supernet.pt``, OFA's official ``.pth``) loads strictly by
:func:`~ofa_model.supernet.load_supernet_weights` (its sha256 is still recorded).  Every file is read by
:func:`ofa_model.safeload.load_torch_file`: CRC-32 of a zip archive checked, ``weights_only=True`` (nothing in a
file runs), non-finite tensors refused.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ofa_profile.atomic import write_bytes_atomic, write_text_atomic
from ofa_profile.jsonio import dumps_strict
from ofa_profile.paths import model_weights_dir
from ofa_profile.space import DEFAULT_SPACE, get_space

from .safeload import RefusedWeightsError, load_torch_file
from .supernet import WeightsError

__all__ = ["BUNDLE_FORMAT", "DEFAULT_NAME", "weights_dir", "bundled_weights_path", "sha256_file", "SupernetInfo",
           "read_manifest", "save_bundle", "load_bundled_supernet", "load_supernet"]

BUNDLE_FORMAT = "ofa_model.bundle/1"
DEFAULT_NAME = "ofa-mbv3-w1.0-imagenette"
MANIFEST = "manifest.json"


def weights_dir() -> Path:
    """``ofa_model/weights`` of this installation (checkout or wheel): :func:`ofa_profile.paths.model_weights_dir`."""
    return model_weights_dir()


def bundled_weights_path() -> Path:
    """The bundled weights file: the one the manifest names, else ``weights/<DEFAULT_NAME>.pt``."""
    d = weights_dir()
    try:
        return d / json.loads((d / MANIFEST).read_text())["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return d / f"{DEFAULT_NAME}.pt"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class SupernetInfo:
    """What was loaded: ``verified`` is True when the sha256 matched a manifest."""
    path: str
    sha256: str
    space: str
    n_classes: int
    classes: tuple[str, ...] | None
    verified: bool
    manifest: Mapping[str, Any] | None = None


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a ``manifest.json`` (one-line :class:`WeightsError` when unusable)."""
    p = Path(path)
    try:
        man = json.loads(p.read_text())
    except FileNotFoundError:
        raise WeightsError(f"weights manifest {p} does not exist; the bundle is incomplete: reinstall ofa-profile "
                           f"or pass --supernet PATH") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"weights manifest {p} is unreadable ({type(exc).__name__}); reinstall ofa-profile "
                           f"or pass --supernet PATH") from None
    need = ("format", "file", "sha256", "space", "n_classes")
    if not isinstance(man, dict) or any(k not in man for k in need) or man.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"weights manifest {p} is not an {BUNDLE_FORMAT} manifest (needs {', '.join(need)})")
    return man


def save_bundle(model, out_dir: str | os.PathLike, name: str = DEFAULT_NAME, *,
                classes: Sequence[str] | None = None, recipe: Mapping[str, Any] | None = None,
                resolutions: Sequence[int] | None = None, dataset: str | None = None,
                extra: Mapping[str, Any] | None = None, fp16: bool = True) -> dict[str, Any]:
    """Write ``out_dir/<name>.pt`` (float tensors as fp16 when ``fp16``) and ``out_dir/manifest.json``,
    both atomically, the manifest last.  Returns the manifest."""
    import torch
    out = Path(out_dir)
    sd = {k: (v.detach().to("cpu", torch.float16) if fp16 and v.is_floating_point() else v.detach().cpu()).clone()
          for k, v in model.state_dict().items()}
    meta = {**model.meta(), "classes": list(classes) if classes else None}
    wpath = out / f"{name}.pt"
    buf = io.BytesIO()      # in memory: the archive's inner name (and so the sha256) does not depend on the path
    torch.save({"format": BUNDLE_FORMAT, "state_dict": sd, "meta": meta}, buf)
    write_bytes_atomic(wpath, buf.getvalue())
    man = {"format": BUNDLE_FORMAT, "file": wpath.name, "sha256": sha256_file(wpath), "bytes": wpath.stat().st_size,
           "space": model.space.name, "ofa_id": model.space.ofa_id, "n_classes": model.n_classes,
           "classes": list(classes) if classes else None, "dtype": "float16" if fp16 else "float32",
           "dataset": dataset, "recipe": dict(recipe or {}),
           "resolutions": list(resolutions or model.space.resolutions), **dict(extra or {})}
    write_text_atomic(out / MANIFEST, dumps_strict(man, indent=1) + "\n")
    return man


def _build_and_load(state: Mapping[str, Any], space: str, n_classes: int, device: str):
    from .supernet import OFAMobileNetV3, load_supernet_weights
    model = OFAMobileNetV3(space, n_classes=n_classes)
    load_supernet_weights(model, state)     # casts fp16 -> fp32 (the model's dtype)
    return model.to(device).eval()


def _torch_load(p: Path) -> Any:
    """Safe load (:func:`~ofa_model.safeload.load_torch_file`: CRC-32, ``weights_only=True``, finite tensors)."""
    return load_torch_file(p, "weights file", "pass a checkpoint saved by ofa-profile or a plain state dict "
                                              "(--supernet)")


def load_bundled_supernet(path: str | os.PathLike | None = None, *, space: str | None = None,
                          device: str = "cpu"):
    """Load verified weights: ``path`` (default: the bundled file) must be named by the ``manifest.json`` in
    its folder and match its sha256.  ``space``: refuse weights of a supernet with another macro-architecture.
    Returns ``(OFAMobileNetV3 in eval mode, fp32, SupernetInfo)``.  Every failure is one :class:`WeightsError`
    line."""
    from .supernet import same_macro
    default = path is None
    p = Path(path) if path is not None else bundled_weights_path()
    if not p.is_file():
        if default:
            raise WeightsError(f"the bundled supernet weights {p} do not exist yet (not trained/shipped in this "
                               f"version); pass --supernet PATH (e.g. a run's supernet.pt from `python -m "
                               f"ofa_model.train`)")
        raise WeightsError(f"weights file {p} does not exist; pass the path of a supernet checkpoint")
    man = read_manifest(p.parent / MANIFEST)
    if man["file"] != p.name:
        raise WeightsError(f"manifest {p.parent / MANIFEST} describes {man['file']}, not {p.name}; "
                           f"pass the file it names")
    digest = sha256_file(p)
    if digest != man["sha256"]:
        raise RefusedWeightsError(f"weights file {p} is corrupt (sha256 {digest[:12]}... != {man['sha256'][:12]}... in "
                           f"{MANIFEST}); reinstall ofa-profile or pass --supernet PATH")
    if space is not None and not same_macro(get_space(space), get_space(man["space"])):
        raise WeightsError(f"weights {p.name} are for space {man['space']}, not {get_space(space).name}; "
                           f"use --space {man['space']} or other weights")
    obj = _torch_load(p)
    if not isinstance(obj, Mapping) or obj.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"weights file {p} is not an {BUNDLE_FORMAT} bundle; rewrite it with "
                           f"`python -m ofa_model.card`")
    model = _build_and_load(obj, man["space"], int(man["n_classes"]), device)
    classes = tuple(man["classes"]) if man.get("classes") else None
    return model, SupernetInfo(str(p), digest, man["space"], int(man["n_classes"]), classes, True, man)


def _n_classes_of(sd: Mapping[str, Any]) -> int | None:
    for k, v in sd.items():
        if k.endswith("classifier.linear.weight") or k.endswith("classifier.linear.linear.weight"):
            return int(v.shape[0])
    return None


def load_supernet(path: str | os.PathLike | None = None, *, space: str | None = None, device: str = "cpu"):
    """The supernet a command works on: ``path`` None -> the bundle (verified); a file named by a
    ``manifest.json`` in its folder -> verified the same way; any other checkpoint (``supernet.pt`` of a run,
    a phase checkpoint, OFA's official ``.pth``) -> loaded strictly, its space from its metadata or
    ``space`` (default ``ofa-mbv3-w1.0``), its class count from the classifier.
    Returns ``(model, SupernetInfo)``."""
    from .supernet import same_macro
    if path is None:
        return load_bundled_supernet(None, space=space, device=device)
    p = Path(path)
    mp = p.parent / MANIFEST
    if p.is_file() and mp.is_file():
        try:
            named = json.loads(mp.read_text()).get("file")
        except (OSError, ValueError, AttributeError):
            named = None
        if named == p.name:
            return load_bundled_supernet(p, space=space, device=device)
    if not p.is_file():
        raise WeightsError(f"weights file {p} does not exist; pass the path of a supernet checkpoint")
    obj = _torch_load(p)
    meta: Mapping[str, Any] = {}
    sd = obj
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        meta = obj.get("meta") or {}
        sd = obj["state_dict"]
    if not isinstance(sd, Mapping):
        raise WeightsError(f"{p} holds no state dict; pass a supernet checkpoint")
    sp_name = meta.get("space") or space or DEFAULT_SPACE
    if space is not None and not same_macro(get_space(space), get_space(sp_name)):
        raise WeightsError(f"checkpoint {p.name} is for space {sp_name}, not {get_space(space).name}; "
                           f"use --space {sp_name} or other weights")
    n_classes = _n_classes_of(sd)
    if n_classes is None:
        raise WeightsError(f"{p} has no classifier weights; it is not an OFA MobileNetV3 supernet checkpoint")
    model = _build_and_load(sd, sp_name, n_classes, device)
    classes = tuple(meta["classes"]) if meta.get("classes") else None
    return model, SupernetInfo(str(p), sha256_file(p), get_space(sp_name).name, n_classes, classes, False, None)
