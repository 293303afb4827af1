"""ImageFolder-style datasets without torchvision: decode once into a uint8 cache, augment with torch ops.

A source is a folder ``ROOT/<class>/<image>`` (ImageNet, Imagenette, ...) or a ``.tar`` holding such a
folder (a member's class is its parent folder's name).  :func:`build_cache` decodes every image once (PIL),
resizes its shorter side to ``size`` and centre-crops it square, and writes a memory-mapped ``images.npy``
(uint8, N x size x size x 3), ``labels.npy`` and ``meta.json`` (written last: a cache without it is
incomplete and is rebuilt).  Training then only slices the memmap, so it is compute-bound.

Augmentation runs batched in torch: random-resized-crop + horizontal flip through one ``affine_grid`` /
``grid_sample`` call; evaluation is OFA's resize(r / 0.875) + centre-crop(r), done the same way.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from ofa_profile.atomic import atomic_path, remove_dead_temps, write_text_atomic
from ofa_profile.errors import OfaProfileError
from ofa_profile.jsonio import dumps_strict

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["DataError", "ImageCache", "IMG_EXTS", "scan_source", "build_cache", "open_cache", "default_cache_dir",
           "epoch_batches",
           "train_batch", "eval_batches", "center_crop_batch", "IMAGENET_MEAN", "IMAGENET_STD", "imagenet_val_origin",
           "int8_calibration_images", "INT8_CALIB_IMAGES"]

IMG_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CACHE_VERSION = 1


class DataError(OfaProfileError):
    """A dataset folder that cannot be used (missing, empty, mislabelled, undecodable image)."""


@dataclass(frozen=True)
class ImageCache:
    """A decoded split: ``images`` (uint8 memmap, N x S x S x 3), ``labels`` (int64, N), ``classes``."""
    path: Path
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    size: int
    source: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def imagenet_val_origin(src: str | os.PathLike) -> list[int]:
    """Indices (in the cache's order) of the images of ``src`` whose file name marks ImageNet's *validation* set
    (``ILSVRC2012_val_*``).  Imagenette's val split draws most images from ImageNet's training set: a network
    pretrained on ImageNet has seen those, not these, so top-1 on these images checks for memorisation."""
    _, items = scan_source(src)
    return [i for i, (item, _) in enumerate(items) if Path(item).name.startswith("ILSVRC2012_val_")]


def _is_img(name: str) -> bool:
    return name.lower().endswith(IMG_EXTS)


def scan_source(src: str | os.PathLike) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """List ``(classes, [(item, label)])`` of a folder or tar; raise :class:`DataError` on a bad layout."""
    p = Path(src)
    if not p.exists():
        raise DataError(f"dataset {p} does not exist; pass a folder ROOT/<class>/<image>.jpg (or a .tar of one)")
    pairs: list[tuple[str, str]] = []    # (item, class)
    loose: list[str] = []
    if p.is_file():
        if not tarfile.is_tarfile(p):
            raise DataError(f"dataset {p} is a file but not a tar archive; pass a folder ROOT/<class>/<image>.jpg")
        with tarfile.open(p) as tf:
            names = [m.name for m in tf.getmembers() if m.isfile() and _is_img(m.name)]
        parents = {n.rsplit("/", 1)[0] if "/" in n else "" for n in names}
        depth = {par.count("/") for par in parents}
        for n in names:
            par = n.rsplit("/", 1)[0] if "/" in n else ""
            if par == "" or (len(depth) > 1 and par.count("/") < max(depth)):
                loose.append(n)
            else:
                pairs.append((n, par.rsplit("/", 1)[-1]))
        where = f"{p}"
    else:
        empty: list[str] = []
        for entry in sorted(p.iterdir()):
            if entry.is_dir():
                files = sorted(f for f in entry.rglob("*") if f.is_file() and _is_img(f.name))
                if not files:
                    empty.append(entry.name)
                pairs += [(str(f), entry.name) for f in files]
            elif entry.is_file() and _is_img(entry.name):
                loose.append(entry.name)
        where = f"{p}"
        if empty and pairs:
            raise DataError(f"class folder(s) {', '.join(empty[:3])} in {where} hold no images; remove them or add images")
    if loose:
        raise DataError(f"{len(loose)} image(s) in {where} are not in a class folder (e.g. {loose[0]}); "
                        f"put every image in ROOT/<class>/")
    if not pairs:
        raise DataError(f"dataset {where} has no images in class folders; expected ROOT/<class>/<image>.jpg "
                        f"({', '.join(IMG_EXTS)})")
    classes = tuple(sorted({c for _, c in pairs}))
    if len(classes) < 2:
        raise DataError(f"dataset {where} has only one class folder ({classes[0]}); a classifier needs at least two")
    idx = {c: i for i, c in enumerate(classes)}
    return classes, sorted((item, idx[c]) for item, c in pairs)


def _decode(data: bytes | str, size: int, name: str) -> np.ndarray:
    import numpy as np
    from PIL import Image
    try:
        im = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        im = im.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises many types
        raise DataError(f"cannot decode image {name} ({type(exc).__name__}); remove or replace the file") from None
    w, h = im.size
    s = size / min(w, h)
    if (w, h) != (size, size):
        nw, nh = max(size, round(w * s)), max(size, round(h * s))
        im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return np.asarray(im, dtype=np.uint8)


def _fingerprint(src: Path, items: Sequence[tuple[str, int]], size: int) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}|{src.resolve()}|{size}|".encode())
    for item, label in items:
        h.update(f"{item}:{label};".encode())
    return h.hexdigest()[:16]


def default_cache_dir(src: str | os.PathLike, size: int) -> Path:
    """Where the commands keep the decoded cache of ``src`` when no --cache-dir is given:
    ``$OFA_PROFILE_CACHE`` or ``$XDG_CACHE_HOME/ofa-profile`` (default ``~/.cache/ofa-profile``), then
    ``images/<name>-<hash of the resolved path>-<size>``."""
    root = os.environ.get("OFA_PROFILE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ofa-profile")
    p = Path(src).resolve()
    tag = hashlib.sha256(str(p).encode()).hexdigest()[:10]
    return Path(root) / "images" / f"{p.name.split('.')[0]}-{tag}-{size}"


def open_cache(cache_dir: str | os.PathLike) -> ImageCache:
    import numpy as np
    d = Path(cache_dir)
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise DataError(f"{d} is not a finished image cache (no meta.json); rebuild it with build_cache") from None
    try:    # plain arrays only: an object array (a pickle, which could run code) is refused
        images = np.load(d / "images.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(d / "labels.npy", allow_pickle=False)
        cache = ImageCache(d, images, labels, tuple(meta["classes"]), int(meta["size"]), str(meta["source"]))
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise DataError(f"image cache {d} is damaged ({type(exc).__name__}); delete it to rebuild it") from None
    if (images.dtype != np.uint8 or images.ndim != 4 or labels.ndim != 1 or labels.dtype.kind not in "iu"
            or len(labels) != len(images)):
        raise DataError(f"image cache {d} is damaged (arrays of unexpected type or length); delete it to rebuild it")
    return cache


def _check_classes(src: Path, found: Sequence[str], classes: Sequence[str]) -> None:
    if tuple(classes) != tuple(found):
        missing = sorted(set(classes) - set(found))
        extra = sorted(set(found) - set(classes))
        raise DataError(f"classes of {src} differ from the training set's (missing {missing[:3]}, extra "
                        f"{extra[:3]}); train and val need the same class folders")


Listing = tuple[tuple[str, ...], list[tuple[str, int]]]     # what scan_source returns: (classes, items)


def check_splits(train_src: str | os.PathLike,
                 val_src: str | os.PathLike | None = None) -> tuple[Listing, Listing | None]:
    """Check the layout of the training set and, if given, that the val set has exactly its classes, by listing
    the files only (no decoding), so that a bad split is refused before minutes of decoding. Returns both
    listings, for :func:`build_cache` (``listing=``) not to list them again. Raises :class:`DataError`."""
    train = scan_source(train_src)
    return train, (check_val_classes(val_src, train[0]) if val_src is not None else None)


def check_val_classes(val_src: str | os.PathLike, classes: Sequence[str]) -> Listing:
    """``val_src``'s listing; :class:`DataError` unless it is a valid split with exactly ``classes``."""
    listing = scan_source(val_src)
    _check_classes(Path(val_src), listing[0], classes)
    return listing


def build_cache(src: str | os.PathLike, cache_dir: str | os.PathLike, size: int = 224,
                classes: Sequence[str] | None = None, limit_per_class: int | None = None,
                progress: bool = False, listing: Listing | None = None) -> ImageCache:
    """Decode ``src`` once into ``cache_dir`` (reused when its fingerprint matches).

    ``classes``: the training split's classes; a val split must have exactly these.
    ``limit_per_class``: keep only the first N images of each class (small recipes, tests).
    """
    import numpy as np
    src_p = Path(src)
    found, items = listing if listing is not None else scan_source(src_p)
    if classes is not None:
        _check_classes(src_p, found, classes)
    if limit_per_class is not None:
        kept, count = [], {}
        for item, lab in items:
            if count.get(lab, 0) < limit_per_class:
                kept.append((item, lab))
                count[lab] = count.get(lab, 0) + 1
        items = kept
    fp = _fingerprint(src_p, items, size)
    d = Path(cache_dir)
    meta_p = d / "meta.json"
    if meta_p.exists():
        try:
            if json.loads(meta_p.read_text()).get("fingerprint") == fp:
                return open_cache(d)
        except (OSError, json.JSONDecodeError, AttributeError, DataError):
            pass        # unreadable or damaged: decoded again below
    d.mkdir(parents=True, exist_ok=True)
    if meta_p.exists():
        meta_p.unlink()   # invalidate before rewriting the arrays
    for name in ("images.npy", "labels.npy", "meta.json"):
        remove_dead_temps(d, name)      # a decoding killed outright left its array (GBs for ImageNet)
    n = len(items)
    # a bad image or Ctrl-C removes the half-decoded array (atomic_path); the meta, written last, marks completion
    with atomic_path(d / "images.npy", suffix=".npy") as tmp_img:
        arr = np.lib.format.open_memmap(tmp_img, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        it = range(n)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc=f"decode {src_p.name}", file=__import__("sys").stderr)
        if src_p.is_file():
            with tarfile.open(src_p) as tf:
                members = {m.name: m for m in tf.getmembers()}
                for i in it:
                    f = tf.extractfile(members[items[i][0]])
                    arr[i] = _decode(f.read(), size, f"{src_p}:{items[i][0]}")
        else:
            for i in it:
                arr[i] = _decode(items[i][0], size, items[i][0])
        arr.flush()
        del arr
    with atomic_path(d / "labels.npy", suffix=".npy") as tmp_lab:
        np.save(tmp_lab, np.asarray([lab for _, lab in items], dtype=np.int64))
    meta = {"version": CACHE_VERSION, "source": str(src_p.resolve()), "size": size, "n_images": n,
            "classes": list(found), "fingerprint": fp, "limit_per_class": limit_per_class}
    write_text_atomic(meta_p, dumps_strict(meta, indent=1))
    return open_cache(d)


# ---------------------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------------------
def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  shuffle: bool = True, drop_last: bool = True) -> list[np.ndarray]:
    """Index batches of one epoch for one rank (seeded permutation, split across ranks like
    DistributedSampler: every rank gets the same number of batches)."""
    import numpy as np
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    per_rank = n // world
    mine = order[rank * per_rank:(rank + 1) * per_rank] if world > 1 else order
    nb = len(mine) // batch_size if drop_last else -(-len(mine) // batch_size)
    return [np.sort(mine[i * batch_size:(i + 1) * batch_size]) for i in range(nb)]


def _normalize(x):
    import torch
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


def _crop_resize(u8, boxes, flips, r: int, device=None):
    """``u8``: uint8 tensor (B,S,S,3); ``boxes``: (B,4) as (x0, y0, w, h) fractions; flips: bool (B).
    With ``device`` the uint8 batch moves there first (a quarter of the float bytes) and the resampling runs
    there: on a GPU the augmentation then costs next to nothing instead of bounding the step."""
    import torch
    import torch.nn.functional as F
    if device is not None:
        u8, boxes, flips = (t.to(device, non_blocking=True) for t in (u8, boxes, flips))
    x = u8.permute(0, 3, 1, 2).float()
    b = x.size(0)
    x0, y0, w, h = boxes.unbind(1)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = torch.where(flips, -w, w)
    theta[:, 0, 2] = 2 * (x0 + w / 2) - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * (y0 + h / 2) - 1
    grid = F.affine_grid(theta, [b, 3, r, r], align_corners=False)
    return _normalize(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))


def train_batch(cache: ImageCache, idx: np.ndarray, r: int, gen, scale: tuple[float, float] = (0.08, 1.0),
                ratio: tuple[float, float] = (3 / 4, 4 / 3), device=None):
    """Augmented float batch (B,3,r,r) and labels for indices ``idx``; ``gen`` a (CPU) torch.Generator, so
    the crops are the same wherever the resampling runs (``device``: see :func:`_crop_resize`)."""
    import numpy as np
    import math
    import torch
    u8 = torch.from_numpy(np.ascontiguousarray(cache.images[idx]))
    b = u8.size(0)
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=gen)
    logr = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    ar = torch.exp(logr)
    w = torch.sqrt(area * ar).clamp(max=1.0)
    h = torch.sqrt(area / ar).clamp(max=1.0)
    x0 = torch.rand(b, generator=gen) * (1 - w)
    y0 = torch.rand(b, generator=gen) * (1 - h)
    flips = torch.rand(b, generator=gen) < 0.5
    x = _crop_resize(u8, torch.stack([x0, y0, w, h], 1), flips, r, device)
    return x, torch.from_numpy(cache.labels[idx])


def center_crop_batch(cache: ImageCache, idx: np.ndarray, r: int, crop_frac: float = 0.875):
    """OFA's eval transform (resize to r/0.875, centre-crop r) on cached images, batched."""
    import numpy as np
    import torch
    u8 = torch.from_numpy(np.ascontiguousarray(cache.images[idx]))
    b = u8.size(0)
    off = (1 - crop_frac) / 2
    boxes = torch.tensor([[off, off, crop_frac, crop_frac]]).expand(b, 4)
    return _crop_resize(u8, boxes, torch.zeros(b, dtype=torch.bool), r), torch.from_numpy(cache.labels[idx])


def eval_batches(cache: ImageCache, r: int, batch_size: int = 100,
                 indices: Sequence[int] | None = None) -> Iterator[tuple]:
    """Centre-crop batches over ``indices`` (default: all) in order."""
    import numpy as np
    idx = np.arange(len(cache)) if indices is None else np.asarray(indices)
    for i in range(0, len(idx), batch_size):
        yield center_crop_batch(cache, idx[i:i + batch_size], r)


INT8_CALIB_IMAGES = 100   # training images (eval transform, seeded) an int8 subnet's activation ranges come from
INT8_CALIB_CHUNK = 8      # images per calibration array (as evaluate.ORT_CHUNK: one onnxruntime call each)


def int8_calibration_images(train_cache, r: int, n: int = INT8_CALIB_IMAGES, seed: int = 0,
                            chunk: int = INT8_CALIB_CHUNK) -> list:
    """``n`` seeded training images (their own draw: ``numpy.random.default_rng([8, seed])``) under the
    evaluation transform (centre crop at ``r``), as float32 NCHW arrays of ``chunk`` images: the inputs an int8
    subnet's activation ranges are calibrated on."""
    import numpy as np

    order = np.sort(np.random.default_rng([8, int(seed)]).permutation(len(train_cache))[:max(1, int(n))])
    return [center_crop_batch(train_cache, order[i:i + chunk], r)[0].numpy() for i in range(0, len(order), chunk)]
